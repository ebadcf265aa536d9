"""Tool schemas for the constrained-decoding tests and bench/mask.py: 24 tools covering nested
objects, arrays of objects, enums (string and integer), integers with bounds, required at
every depth, `additionalProperties: false`, anyOf, const, patterns and lengths, `$ref`, and
tools with no properties. `EXAMPLES` holds one valid argument set per tool (jsonschema-checked
by the tests) for rendering realistic replies."""

from __future__ import annotations

_OBJ = "object"


def _fn(name: str, properties: dict | None = None, required: tuple = (), **extra) -> dict:
    params: dict = {"type": _OBJ, **extra}
    if properties is not None:
        params["properties"] = properties
    if required:
        params["required"] = list(required)
    return {"type": "function", "function": {"name": name, "description": f"{name} tool",
                                             "parameters": params}}


_POINT = {"type": _OBJ, "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
          "required": ["x", "y"], "additionalProperties": False}

TOOLS = [
    _fn("read_file", {"path": {"type": "string"},
                      "lines": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                      "encoding": {"enum": ["utf-8", "latin-1"]}}, ("path",),
        additionalProperties=False),
    _fn("plot", {"points": {"type": "array", "items": _POINT, "minItems": 1, "maxItems": 4},
                 "title": {"type": "string", "maxLength": 20}}, ("points",)),
    _fn("set_level", {"level": {"type": "integer", "enum": [1, 2, 3, 5, 8]}}, ("level",)),
    _fn("resize", {"width": {"type": "integer", "minimum": 1, "maximum": 4096},
                   "height": {"type": "integer", "exclusiveMinimum": 0, "maximum": 2160},
                   "keep_ratio": {"type": "boolean"}}, ("width", "height"),
        additionalProperties=False),
    _fn("create_user", {"user": {"type": _OBJ, "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 30},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "address": {"type": _OBJ, "properties": {"city": {"type": "string"},
                                                 "zip": {"type": "string",
                                                         "pattern": "^[0-9]{5}$"}},
                    "required": ["city"], "additionalProperties": False}},
        "required": ["name", "address"], "additionalProperties": False}}, ("user",)),
    _fn("search", {"query": {"type": "string"},
                   "filters": {"type": "array", "items": {"type": _OBJ, "properties": {
                       "field": {"enum": ["author", "date", "tag"]},
                       "op": {"enum": ["eq", "ne", "lt", "gt"]},
                       "value": {"anyOf": [{"type": "string"}, {"type": "number"}]}},
                       "required": ["field", "op", "value"], "additionalProperties": False}},
                   "limit": {"type": "integer", "minimum": 1, "maximum": 100}}, ("query",)),
    _fn("edit", {"path": {"type": "string"},
                 "edits": {"type": "array", "items": {"type": _OBJ, "properties": {
                     "old": {"type": "string"}, "new": {"type": "string"}},
                     "required": ["old", "new"], "additionalProperties": False},
                     "minItems": 1}}, ("path", "edits"), additionalProperties=False),
    _fn("shell", {"command": {"type": "string"},
                  "timeout": {"type": "number", "minimum": 0.1, "maximum": 600},
                  "env": {"type": _OBJ, "additionalProperties": {"type": "string"}}},
        ("command",)),
    _fn("set_color", {"color": {"anyOf": [
        {"type": "string", "enum": ["red", "green", "blue"]},
        {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255},
         "minItems": 3, "maxItems": 3}]}}, ("color",)),
    _fn("schedule", {"when": {"type": _OBJ, "properties": {
        "day": {"enum": ["mon", "tue", "wed", "thu", "fri"]},
        "hour": {"type": "integer", "minimum": 0, "maximum": 23}},
        "required": ["day", "hour"], "additionalProperties": False},
        "repeat": {"type": "boolean"}}, ("when",)),
    _fn("tag", {"tags": {"type": "array", "items": {"type": "string", "minLength": 1,
                                                    "maxLength": 12}, "maxItems": 5},
                "mode": {"const": "append"}}, ("tags", "mode")),
    _fn("matrix", {"rows": {"type": "array", "items": {
        "type": "array", "items": {"type": "integer", "minimum": -9, "maximum": 9},
        "maxItems": 3}, "maxItems": 3}}, ("rows",)),
    _fn("nullable", {"note": {"type": ["string", "null"]},
                     "count": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]}},
        ("note", "count")),
    _fn("ping"),
    _fn("noop", {}),
    _fn("free_form"),
    _fn("deep", {"a": {"type": _OBJ, "properties": {"b": {"type": _OBJ, "properties": {
        "c": {"type": _OBJ, "properties": {"d": {"type": "integer", "enum": [7, 11]}},
              "required": ["d"], "additionalProperties": False}},
        "required": ["c"], "additionalProperties": False}}, "required": ["b"],
        "additionalProperties": False}}, ("a",)),
    _fn("ref_user", {"owner": {"$ref": "#/$defs/person"},
                     "members": {"type": "array", "items": {"$ref": "#/$defs/person"},
                                 "maxItems": 3}}, ("owner",),
        **{"$defs": {"person": {"type": _OBJ, "properties": {
            "name": {"type": "string"}, "role": {"enum": ["admin", "dev"]}},
            "required": ["name", "role"], "additionalProperties": False}}}),
    _fn("rate", {"stars": {"type": "integer", "minimum": 1, "maximum": 5},
                 "review": {"type": "string", "pattern": "^[A-Za-z ,.!]*$", "maxLength": 40}},
        ("stars",)),
    _fn("geo", {"shape": {"anyOf": [
        {"type": _OBJ, "properties": {"kind": {"const": "circle"},
                                      "r": {"type": "number", "exclusiveMinimum": 0}},
         "required": ["kind", "r"], "additionalProperties": False},
        {"type": _OBJ, "properties": {"kind": {"const": "rect"},
                                      "w": {"type": "number", "minimum": 0},
                                      "h": {"type": "number", "minimum": 0}},
         "required": ["kind", "w", "h"], "additionalProperties": False}]}}, ("shape",)),
    _fn("flags", {"verbose": {"type": "boolean"}, "dry_run": {"type": "boolean"},
                  "level": {"type": "integer", "minimum": 0, "maximum": 3}},
        ("verbose", "dry_run", "level"), additionalProperties=False),
    _fn("kv", {"pairs": {"type": "array", "items": {
        "type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": False, "minItems": 2}}}, ("pairs",)),
    _fn("unicode_名字", {"城市": {"type": "string"}, "温度": {"type": "number"}}, ("城市",)),
    _fn("quoted", {'x"y': {"type": "string"}, "a\\b": {"type": "integer"}}, ('x"y',)),
]

EXAMPLES: dict[str, dict] = {
    "read_file": {"path": "src/main.py", "lines": [3, 40], "encoding": "utf-8"},
    "plot": {"points": [{"x": 1.5, "y": -2}], "title": "speed"},
    "set_level": {"level": 5},
    "resize": {"width": 800, "height": 600, "keep_ratio": True},
    "create_user": {"user": {"name": "Ada", "age": 36,
                             "address": {"city": "London", "zip": "12345"}}},
    "search": {"query": "def main", "filters": [{"field": "tag", "op": "eq", "value": "x"}],
               "limit": 10},
    "edit": {"path": "a.py", "edits": [{"old": "x = 1", "new": "x = 2\n</b>"}]},
    "shell": {"command": "ls -la", "timeout": 30, "env": {"LANG": "C"}},
    "set_color": {"color": [255, 0, 12]},
    "schedule": {"when": {"day": "tue", "hour": 9}, "repeat": False},
    "tag": {"tags": ["a", "bb"], "mode": "append"},
    "matrix": {"rows": [[1, -2], [3]]},
    "nullable": {"note": None, "count": 3},
    "ping": {},
    "noop": {},
    "free_form": {"anything": "goes", "n": [1, {"k": None}]},
    "deep": {"a": {"b": {"c": {"d": 11}}}},
    "ref_user": {"owner": {"name": "Lin", "role": "admin"},
                 "members": [{"name": "Bo", "role": "dev"}]},
    "rate": {"stars": 4, "review": "Good, fast."},
    "geo": {"shape": {"kind": "rect", "w": 2, "h": 3.5}},
    "flags": {"verbose": True, "dry_run": False, "level": 2},
    "kv": {"pairs": [["a", 1], ["b", 2]]},
    "unicode_名字": {"城市": "北京", "温度": 21.5},
    "quoted": {'x"y': "v", "a\\b": 2},
}


def by_name() -> dict[str, dict]:
    return {t["function"]["name"]: t["function"] for t in TOOLS}
