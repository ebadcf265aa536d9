"""The grammar of one V4 reply in llguidance's Lark dialect (llguidance docs/syntax.md), built per
request from its tools, `tool_choice` and `response_format`; guide.py compiles it into a token
mask. Pure text: nothing here imports llguidance.

    ReplyGrammar(tools, "auto", None, thinking=True, dsml=128825, think_close=128822).text()

The reply (parse.py reads the same text back; DeepSeek's parser is the reference):

    [reasoning] </think>  content  [ "<" ｜DSML｜ "tool_calls>\\n" invoke ("\\n" invoke)*
                                     "\\n" "</" ｜DSML｜ "tool_calls>" ]        then EOS
    invoke = "<" ｜DSML｜ `invoke name="N">\\n` (param "\\n")+ "</" ｜DSML｜ "invoke>"
             (no parameters: `invoke name="N">\\n\\n</｜DSML｜invoke>`)
    param  = "<" ｜DSML｜ `parameter name="P" string="true">` raw text "</" ｜DSML｜ "parameter>"
           | "<" ｜DSML｜ `parameter name="P" string="false">` JSON "</" ｜DSML｜ "parameter>"

`｜DSML｜` and `</think>` are matched as their special tokens (the ids the real tokenizer gives
them), so no payload holds them: a JSON string cannot swallow the parameter's end. Payload text
(reasoning, content, raw values) is cut at every `<` into `<`-free chunks, and what follows a
`<` may not spell out a terminator the parser would see in the text (`</think>`, EOS; in content
`<｜DSML｜`, BOS, `<think>`; in a value `</｜DSML｜parameter>`): a chunk is `[^<]+`, which
llguidance's slicer recognises (guide.py's slices), so a mask in free text does not walk the
whole vocabulary.

Tool names and parameter names are literals from the schemas; parameters come in any order,
each at most once, required ones before the invoke closes (a parametric rule over a bit set;
schema order past 64 properties). A `string="false"` value is `%json` of its property's full
schema in the official encoder's JSON style (`", "` and `": "`, no other whitespace). A string
value is raw text (`string="true"`, as DeepSeek's encoder writes every string), limited by its
`enum`/`const`, `pattern`, `minLength`/`maxLength` where it has them; a property that admits
strings and more (anyOf, a type list) may take either form. A schema llguidance cannot compile
is loosened to `{}` (any JSON) through `loose`.

Lexing note: llguidance lexes greedily with one byte of look-ahead, so a lexeme must be decided
by the byte after it: no literal is a prefix of another that may stand in the same place
(`"\\n" "</"`, never `"\\n</"` beside `"\\n"`), and a constrained raw value is a lazy lexeme
holding its `</`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

# JSON as the official encoder writes it (json.dumps defaults); llguidance's options
_TOOL_JSON = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False,
              "lenient": True}
_REPLY_JSON = {"whitespace_pattern": "[\\x20\\x0A\\x0D\\x09]{1,64}", "lenient": True}
_MAX_BITS = 64  # parametric rules carry one 64-bit parameter
# keywords that make a schema more than "strings with these limits": such a one is JSON only
_COMPOUND = {"allOf", "not", "if", "then", "else", "$ref", "$dynamicRef", "dependentSchemas"}
# token slices for llguidance's slicer, first match claims a token: `<`-free text (payload
# chunks and JSON strings), then JSON-string text with `<`, then `<`-free text with quotes,
# backslashes or control characters (payload only)
SLICES = ['[^<"\\\\\\x00-\\x1F\\x7F]{1,10}', '[^<"\\\\\\x00-\\x1F\\x7F]{1,30}',
          '[^<"\\\\\\x00-\\x1F\\x7F]+', '[^"\\\\\\x00-\\x1F\\x7F]+', '[^<]+']


def _re(text: str) -> str:
    """`text` as a literal inside a Lark /regex/."""
    return re.escape(text).replace("/", "\\/")


def _lit(text: str) -> str:
    """`text` as a Lark string literal."""
    return json.dumps(text, ensure_ascii=False)


def _not_after_lt(heads: Iterable[str]) -> str:
    """A `<`-free chunk right after a `<`, not starting with any of `heads`."""
    return "/[^<]+/ & ~/(" + "|".join(_re(h) for h in heads) + ")(?s:.*)/"


_TRUE, _FALSE = _lit('"true">'), _lit('"false">')
_BOS, _EOS = "｜begin▁of▁sentence｜>", "｜end▁of▁sentence｜>"  # (after their `<`)
_TERMINALS = f"""
CHUNK: /[^<]+/
RUNIT: {_not_after_lt(("/think>", "think>", _BOS, _EOS))}
CUNIT: {_not_after_lt(("｜DSML｜", "/think>", "think>", _BOS, _EOS))}
VUNIT: /[^<\\/][^<]*/
VEND: {_not_after_lt(("｜DSML｜",))}
reasoning: CHUNK? ("<" RUNIT?)*
content: CHUNK? ("<" CUNIT?)*
raw: CHUNK? ("<" VUNIT? | "</" VEND?)* "</"
"""


def function_of(tool) -> dict:
    """The OpenAI function object of a tool: `{"type": "function", "function": {...}}`, the
    bare function, or render.Tool."""
    if isinstance(tool, dict):
        return tool.get("function", tool)
    return tool.function()


def apply_choice(tools: list, choice: str | dict) -> tuple[list[dict], bool]:
    """OpenAI `tool_choice` → (functions the reply may call, whether it must call one):
    "auto", "none", "required", a tool name, or `{"type": "function", "function": {"name"}}`."""
    functions = [function_of(t) for t in tools]
    if choice == "auto":
        return functions, False
    if choice == "none":
        return [], False
    if choice == "required":
        return functions, True
    name = choice["function"]["name"] if isinstance(choice, dict) else choice
    picked = [f for f in functions if f.get("name") == name]
    if not picked:
        raise ValueError(f"tool_choice names {name!r}, which is not among the tools")
    return picked, True


def json_schema_of(response_format: dict | None) -> dict | None:
    """The schema a JSON `response_format` asks for (None: not a JSON format)."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else {"type": "object"}
    return None


def string_form(schema) -> tuple[str | None, bool]:
    """How a property's string values are written raw (`string="true"`, as DeepSeek's encoder
    writes every str): (a Lark terminal body for them, "" for any text, None when the schema
    admits no string; whether it admits strings only, so `string="false"` JSON is never
    needed). A constrained raw string holds no `<` (its end could not be told apart)."""
    if not isinstance(schema, dict):
        return ("", False) if schema is not False else (None, False)
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else list(schema["enum"] or ())
        texts = [v for v in dict.fromkeys(v for v in values if isinstance(v, str))
                 if "<" not in v]
        body = "(" + " | ".join(_lit(v) for v in texts) + ")" if texts else None
        return body, body is not None and len(texts) == len(values)
    branches = schema.get("anyOf", schema.get("oneOf"))
    if set(schema) & _COMPOUND:
        return None, False
    if isinstance(branches, list):
        forms = [string_form(b) for b in branches]
        bodies = [b for b, _ in forms if b is not None]
        if not bodies:
            return None, False
        only = all(o for _, o in forms)
        return ("" if "" in bodies else " | ".join(f"({b})" for b in bodies)), only
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds and "string" not in kinds:
        return None, False
    return _string_body(schema), kinds == ["string"]


def _string_body(schema: dict) -> str:
    lo, hi = int(schema.get("minLength", 0)), schema.get("maxLength")
    pattern = schema.get("pattern")
    if not isinstance(pattern, str) and not lo and hi is None:
        return ""
    chars = f"/[^<]{{{lo},{'' if hi is None else int(hi)}}}/"  # sliceable when alone
    return chars if not isinstance(pattern, str) else f"/{_anchored(pattern)}/ & {chars}"


def _anchored(pattern: str) -> str:
    """A JSON-Schema pattern (a search, ECMA-262 classes) as a whole-text regex."""
    body = pattern.replace("/", "\\/")
    body = body[1:] if body.startswith("^") else "(?s:.*)" + body
    body = body[:-1] if body.endswith("$") and not body.endswith("\\$") else body + "(?s:.*)"
    for cls, ascii_cls in (("\\d", "[0-9]"), ("\\w", "[0-9A-Za-z_]")):
        body = body.replace(cls, ascii_cls)
    return body


class ReplyGrammar:
    """Builds the Lark text. `json_parts` lists (key, schema) of every `%json` in it and
    `raw_parts` (key, terminal body) of every constrained raw string, so that one llguidance
    refuses can be named and loosened: a key in `loose` ("tool.param") takes any JSON (and
    any raw text if it admits strings)."""

    def __init__(self, tools: list, tool_choice: str | dict = "auto",
                 response_format: dict | None = None, thinking: bool = True, *, dsml: int,
                 think_close: int, loose: frozenset = frozenset()) -> None:
        self.functions, self.force = apply_choice(list(tools), tool_choice)
        self.reply_schema = json_schema_of(response_format)
        if self.reply_schema is not None and self.force:
            raise ValueError("a JSON response_format and a forced tool call exclude each "
                             "other: the reply is either a JSON object or a call")
        self.thinking, self.loose = thinking, loose
        self.d, self.tc = f"<[{dsml}]>", f"<[{think_close}]>"
        self.rules: list[str] = []
        self.json_parts: list[tuple[str, dict]] = []
        self.raw_parts: list[tuple[str, str]] = []

    def text(self) -> str:
        head = f"reasoning {self.tc} tail" if self.thinking else "tail"
        self.rules, self.n_terms = ["%llguidance {}", f"start: {head}"], 0
        self.json_parts, self.raw_parts = [], []
        self.rules.append(f"tail: {self._tail()}")
        if self.reply_schema is None:
            self._calls()
        return "\n".join(self.rules) + "\n" + _TERMINALS

    def _tail(self) -> str:
        if self.reply_schema is not None:
            return self._json("reply", self.reply_schema, _REPLY_JSON)
        if not self.functions:
            return "content"
        if self.force:
            return f'"\\n\\n<" {self.d} block'
        return f'content ("<" {self.d} block)?'

    def _calls(self) -> None:
        if not self.functions:
            return
        d = self.d
        by_name = {f["name"]: f for f in self.functions}  # a repeated name: the last one
        calls = " | ".join(f"call_{k}" for k in range(len(by_name)))
        self.rules += [
            f'block: "tool_calls>\\n" invoke ("\\n" invoke)* "\\n" "</" {d} "tool_calls>"',
            f'invoke: "<" {d} ({calls})',
        ]
        for k, (name, f) in enumerate(by_name.items()):
            self._call(k, name, f.get("parameters"))

    def _call(self, k: int, name: str, params) -> None:
        props, required = _properties(params)
        nl, close = _lit("\n"), f'"</" {self.d} "invoke>"'
        head = f"call_{k}: " + _lit(f'invoke name="{name}">\n')
        if props is None:  # no properties listed: any names, any values
            self.rules.append(f"{head} ({nl} | (anyp_{k} {nl})+) {close}")
            self.rules.append(f"anyp_{k}: {self._any_param(k)}")
            return
        order = [p for p in props if p in required] + [p for p in props if p not in required]
        params = [f"p_{k}_{i}" for i in range(len(order))]
        for rule, p in zip(params, order, strict=True):
            self.rules.append(f"{rule}: {self._param(name, p, props[p])}")
        if not order:
            body = nl
        elif len(order) <= _MAX_BITS:
            body = f"ps_{k}::0x0"
            self.rules += _any_order(f"ps_{k}", params, len(required))
        else:
            body = f"ps_{k}"
            self.rules += _in_order(f"ps_{k}", params, len(required))
        empty = "" if required else f" | {nl}"  # no parameters: `">\n\n</｜DSML｜invoke>`
        self.rules.append(f"{head} ({body}{empty}) {close}")

    def _param(self, tool: str, name: str, schema) -> str:
        opener = f'"<" {self.d} ' + _lit(f'parameter name="{name}" string=')
        end = f'{self.d} "parameter>"'
        key = f"{tool}.{name}"
        body, only = string_form(schema)
        if key in self.loose:  # not enforceable: any text, any JSON
            body, only = ("" if body is not None else None), False
        forms = []
        if body == "":
            forms.append(f"{_TRUE} raw {end}")
        elif body is not None:
            self.n_terms += 1
            term = f"SV{self.n_terms}"
            self.raw_parts.append((key, body))
            # the body apart: `&` binds looser than concatenation
            self.rules += [f"{term}B: {body}", f'{term}: {term}B "</"',
                           f"{term.lower()}[lazy]: {term}"]
            forms.append(f"{_TRUE} {term.lower()} {end}")
        if not only:
            value = self._json(key, schema, _TOOL_JSON)
            forms.append(f'{_FALSE} {value} "</" {end}')
        return f"{opener} ({' | '.join(forms)})"

    def _any_param(self, k: int) -> str:
        opener = f'"<" {self.d} "parameter name=" /"[A-Za-z_][A-Za-z0-9_.-]{{0,63}}" string=/'
        end = f'{self.d} "parameter>"'
        value = self._json(f"#{k}", {}, _TOOL_JSON)
        return (f'{opener} {_TRUE} raw {end} | '
                f'{opener} {_FALSE} {value} "</" {end}')

    def _json(self, key: str, schema, options: dict) -> str:
        if key in self.loose or schema is True or not isinstance(schema, dict):
            schema = {}
        full = {**schema, "x-guidance": options}
        self.json_parts.append((key, full))
        return "%json " + json.dumps(full, ensure_ascii=False)


def _properties(params) -> tuple[dict | None, set[str]]:
    """(properties or None for "any names", required names) of a tool's parameters schema.
    Root `$defs`/`definitions` travel into each property schema, so local `$ref`s resolve."""
    if not isinstance(params, dict):
        return None, set()
    props = params.get("properties")
    required = [r for r in params.get("required") or () if isinstance(r, str)]
    if not isinstance(props, dict):
        if not required:
            return None, set()
        props = {}
    props = {**props, **{r: {} for r in required if r not in props}}
    defs = {k: params[k] for k in ("$defs", "definitions") if k in params}
    if defs:
        props = {p: {**s, **defs} if isinstance(s, dict) else s for p, s in props.items()}
    return props, set(required)


def _any_order(rule: str, params: list[str], n_required: int) -> list[str]:
    """Each param at most once, in any order, each followed by "\\n"; the list ends once it
    has one at least and all required ones (bits 0 … n_required-1)."""
    done = f"is_ones([0:{n_required}])" if n_required else "bit_count_ge(_, 1)"
    alts = [f"{p} \"\\n\" {rule}::set_bit({i}) %if bit_clear({i})" for i, p in enumerate(params)]
    return [f"{rule}::_ : " + "\n    | ".join([*alts, f"\"\" %if {done}"])]


def _in_order(rule: str, params: list[str], n_required: int) -> list[str]:
    """Past 64 properties: schema order (required ones first and mandatory), the others
    skippable, at least one in all."""
    rest = [f'{rule}_{i}: ({p} "\\n")' + ("" if i < n_required else "?") + f" {rule}_{i + 1}"
            for i, p in enumerate(params)]
    rest.append(f'{rule}_{len(params)}: ""')
    if n_required:
        return [f"{rule}: {rule}_0", *rest]
    firsts = " | ".join(f'{p} "\\n" {rule}_{i + 1}' for i, p in enumerate(params))
    return [f"{rule}: {firsts}", *rest]
