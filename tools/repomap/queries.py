"""Tree-sitter queries per language: `@def` captures a definition's name, `@ref` a use of a
name (calls, constructors, type names). Written for tree-sitter-language-pack 0.13.0's grammars;
tests/tools/test_repomap.py compiles every one and checks it on a sample."""

from __future__ import annotations

EXTENSIONS = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".jsx": "javascript",
    ".mjs": "javascript", ".cjs": "javascript", ".ts": "typescript", ".mts": "typescript",
    ".tsx": "tsx", ".go": "go", ".rs": "rust", ".java": "java", ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".rb": "ruby",
}

_JS_DEFS = """
(function_declaration name: (identifier) @def)
(generator_function_declaration name: (identifier) @def)
(method_definition name: (property_identifier) @def)
(variable_declarator name: (identifier) @def value: [(arrow_function) (function_expression)])
(call_expression function: [(identifier) @ref
                            (member_expression property: (property_identifier) @ref)])
(new_expression constructor: (identifier) @ref)
"""

_TS_EXTRA = """
(class_declaration name: (type_identifier) @def)
(abstract_class_declaration name: (type_identifier) @def)
(interface_declaration name: (type_identifier) @def)
(type_alias_declaration name: (type_identifier) @def)
(enum_declaration name: (identifier) @def)
(method_signature name: (property_identifier) @def)
(abstract_method_signature name: (property_identifier) @def)
(type_identifier) @ref
"""

_C_COMMON = """
(function_definition declarator: (function_declarator declarator: (identifier) @def))
(function_definition declarator: (pointer_declarator
    declarator: (function_declarator declarator: (identifier) @def)))
(declaration declarator: (function_declarator declarator: (identifier) @def))
(struct_specifier name: (type_identifier) @def body: (_))
(union_specifier name: (type_identifier) @def body: (_))
(enum_specifier name: (type_identifier) @def body: (_))
(type_definition declarator: (type_identifier) @def)
(preproc_function_def name: (identifier) @def)
(type_identifier) @ref
"""

QUERIES = {
    "python": """
(class_definition name: (identifier) @def)
(function_definition name: (identifier) @def)
(call function: [(identifier) @ref (attribute attribute: (identifier) @ref)])
(class_definition superclasses: (argument_list (identifier) @ref))
(type (identifier) @ref)
""",
    "javascript": _JS_DEFS + "(class_declaration name: (identifier) @def)\n",
    "typescript": _JS_DEFS + _TS_EXTRA,
    "tsx": _JS_DEFS + _TS_EXTRA,
    "go": """
(function_declaration name: (identifier) @def)
(method_declaration name: (field_identifier) @def)
(type_spec name: (type_identifier) @def)
(call_expression function: [(identifier) @ref
                            (selector_expression field: (field_identifier) @ref)])
(type_identifier) @ref
""",
    "rust": """
(function_item name: (identifier) @def)
(function_signature_item name: (identifier) @def)
(struct_item name: (type_identifier) @def)
(enum_item name: (type_identifier) @def)
(trait_item name: (type_identifier) @def)
(type_item name: (type_identifier) @def)
(macro_definition name: (identifier) @def)
(call_expression function: [(identifier) @ref
                            (field_expression field: (field_identifier) @ref)
                            (scoped_identifier name: (identifier) @ref)])
(macro_invocation macro: (identifier) @ref)
(type_identifier) @ref
""",
    "java": """
(class_declaration name: (identifier) @def)
(interface_declaration name: (identifier) @def)
(enum_declaration name: (identifier) @def)
(record_declaration name: (identifier) @def)
(method_declaration name: (identifier) @def)
(constructor_declaration name: (identifier) @def)
(method_invocation name: (identifier) @ref)
(type_identifier) @ref
""",
    "c": _C_COMMON + "(call_expression function: (identifier) @ref)\n",
    "cpp": _C_COMMON + """
(class_specifier name: (type_identifier) @def body: (_))
(namespace_definition name: (namespace_identifier) @def)
(function_definition declarator: (function_declarator
    declarator: [(field_identifier) @def (qualified_identifier name: (identifier) @def)]))
(field_declaration declarator: (function_declarator declarator: (field_identifier) @def))
(call_expression function: [(identifier) @ref
                            (field_expression field: (field_identifier) @ref)
                            (qualified_identifier name: (identifier) @ref)])
""",
    "ruby": """
(method name: (identifier) @def)
(singleton_method name: (identifier) @def)
(class name: (constant) @def)
(module name: (constant) @def)
(call method: (identifier) @ref)
(constant) @ref
""",
}
