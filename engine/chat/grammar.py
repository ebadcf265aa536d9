"""The grammar of one V4 reply, as a character-level machine shared by the streaming parser
(parse.py) and constrained decoding (constraint.py), so what the sampler allows is exactly
what the parser accepts.

Reply grammar (thinking mode starts in reasoning, chat mode in content):

    reasoning `</think>` content [ ["\\n\\n"] block ] [EOS]
    block  = `<｜DSML｜tool_calls>` ("\\n" invoke)+ "\\n" `</｜DSML｜tool_calls>`
    invoke = `<｜DSML｜invoke name="N">` "\\n" [param ("\\n" param)*] "\\n" `</｜DSML｜invoke>`
    param  = `<｜DSML｜parameter name="P" string="true|false">` VALUE `</｜DSML｜parameter>`

Payload (reasoning, content, VALUE) runs to its terminator; text that might begin one is held
back. Once `<｜DSML｜` appears in content the text is markup and must follow the grammar.
Without schemas any names pass and `string="false"` values are checked with json.loads at
their end; with schemas (ToolSchemas, below) names, types and required parameters are
enforced and JSON is checked as it arrives.
"""

from __future__ import annotations

import json

from engine.chat import dsml
from engine.chat.json_prefix import JsonPrefix

_COMMIT = "<" + dsml.DSML  # in content, markup from here on
_BLOCK_TERMS = (("\n\n" + dsml.CALLS_OPEN, "block"), (dsml.CALLS_OPEN, "block"))
TERMS = {
    "reasoning": ((dsml.THINK_CLOSE, "content"), (dsml.EOS, "end")),
    "content": (*_BLOCK_TERMS, (dsml.EOS, "end")),
    "vstr": ((dsml.PARAM_CLOSE, "param_end"),),
    "vjson": ((dsml.PARAM_CLOSE, "param_end"),),
}
_NAME_STOP = '"\n<>'
_END = ((dsml.EOS, "end"),)
_WS = " \t\r\n"
_JSON_FIRST = {"integer": "-0123456789", "number": "-0123456789", "boolean": "tf",
               "array": "[", "object": "{", "null": "n"}


class ToolSchemas:
    """Registered tools for constrained decoding: name → (properties, required names)."""

    def __init__(self, functions: list[dict]) -> None:
        self.props: dict[str, dict[str, dict] | None] = {}
        self.required: dict[str, frozenset[str]] = {}
        for f in functions:
            f = f.get("function", f) if isinstance(f, dict) else f.function()
            params = f.get("parameters") or {}
            props = params.get("properties")
            self.props[f["name"]] = dict(props) if isinstance(props, dict) else None
            required = frozenset(params.get("required") or ())
            # a required name that is not a property could never be written: ignore it
            self.required[f["name"]] = required & set(props) if isinstance(props, dict) \
                else required

    def __bool__(self) -> bool:
        return True  # an empty registry still constrains: it forbids every call

    def param_names(self, tool: str, used: tuple[str, ...]) -> list[str] | None:
        """Names still allowed, or None when the schema lists no properties (any name)."""
        props = self.props[tool]
        return None if props is None else [p for p in props if p not in used]

    def _type(self, tool: str, param: str) -> str | None:
        t = (self.props[tool] or {}).get(param, {}).get("type")
        return t if isinstance(t, str) else None

    def string_flags(self, tool: str, param: str) -> tuple[str, ...]:
        t = self._type(tool, param)
        if t == "string":
            return ("true",)
        return ("false",) if t in _JSON_FIRST else ("true", "false")

    def json_prefix(self, tool: str, param: str) -> JsonPrefix:
        t = self._type(tool, param)
        return JsonPrefix(_JSON_FIRST.get(t), integer=t == "integer")


class Sink:
    """What the machine reports; StreamParser implements it. Clones used for look-ahead have
    no sink."""

    def payload(self, mode: str, text: str) -> None: ...
    def mark(self, what: str, pos: int) -> None: ...
    def call_start(self, name: str) -> None: ...
    def param(self, name: str, is_str: bool) -> None: ...
    def param_end(self) -> None: ...
    def call_end(self) -> None: ...


class Machine:
    """One reply's parse state. `feed(c)` → False when c breaks the grammar (then `error` says
    why and the machine stays in mode "error"). Fields hold immutable values, so clone() is a
    full snapshot (the constraint clones it to try candidate tokens)."""

    def __init__(self, thinking: bool = True, tools: ToolSchemas | None = None,
                 sink: Sink | None = None, force_call: bool = False) -> None:
        self.mode = "reasoning" if thinking else "content"
        self.force_call = force_call  # content must be empty and a block must follow
        self.pending = ""  # payload modes: held text that may begin a terminator
        self.alts: tuple[tuple[str, str], ...] = ()  # mode "expect": (literal, next mode)
        self.got = ""  # mode "expect": matched so far; modes name/pname: the name so far
        self.tools, self.sink = tools, sink
        self.tool = ""  # current call's name
        self.used: tuple[str, ...] = ()  # its parameter names so far
        self.param = ""
        self.value = ""  # vjson: the value's text
        self.json: JsonPrefix | None = None  # vjson with schemas: early JSON checking
        self.error = ""
        self.pos = 0  # characters consumed
        if force_call and not thinking:
            self._enter("content")

    def clone(self) -> Machine:
        m = Machine.__new__(Machine)  # a dict copy: several times cheaper than copy.copy
        m.__dict__ = self.__dict__.copy()
        m.sink = None
        if self.json is not None:
            m.json = self.json.clone()
        return m

    def can_end(self) -> bool:
        """Whether the reply may stop here (EOS)."""
        if self.mode == "content":
            return _COMMIT not in self.pending
        if self.mode == "expect":
            return not self.got and self.alts == _END
        return self.mode == "end"

    def next_chars(self) -> set[str] | None:
        """A superset of the characters that may come next where that set is small (markup,
        JSON outside strings); None elsewhere."""
        if self.mode == "content" and _COMMIT in self.pending:
            return {t[len(self.pending)] for t, _ in _BLOCK_TERMS if t.startswith(self.pending)}
        if self.mode == "expect":
            return {lit[len(self.got)] for lit, _ in self.alts}
        if self.mode in ("name", "pname") and self.tools:
            names = list(self.tools.props) if self.mode == "name" else \
                self.tools.param_names(self.tool, self.used)
            if names is None:
                return None
            n = len(self.got)
            out = {x[n] for x in names if x.startswith(self.got) and len(x) > n}
            return out | ({'"'} if self.got in names else set())
        if self.mode == "vjson" and self.json is not None and not self.pending:
            nxt = self.json.next_chars()
            return None if nxt is None else nxt | {"<"}
        if self.mode == "vjson" and self.json is not None and self.json.state != "string":
            # held `<…` outside a JSON string: only the parameter's end can go on from here
            return {t[len(self.pending)] for t, _ in TERMS["vjson"] if t.startswith(self.pending)}
        return None

    def _end(self, c: str) -> bool:
        return self._fail("text after the end of the reply")

    def feed(self, c: str) -> bool:
        if self.mode == "error":
            return False
        self.pos += 1
        if self.mode in TERMS:
            return self._payload(c)
        return getattr(self, "_" + self.mode)(c)

    def plain_run(self, text: str, i: int) -> int:
        """End of the run from text[i] that payload takes as is (no `<` or newline, nothing
        held back, no JSON to check); i when there is none."""
        if self.mode not in ("reasoning", "content", "vstr") or self.pending:
            return i
        j = i
        while j < len(text) and text[j] not in "<\n":
            j += 1
        return j

    def feed_run(self, run: str) -> bool:
        """Feed a run found by plain_run (same result as feeding it char by char)."""
        self.pos += len(run)
        return self._release(run)

    def feed_text(self, text: str) -> bool:
        return all(self.feed(c) for c in text)

    def _fail(self, reason: str) -> bool:
        self.mode, self.error = "error", reason
        return False

    # -- payload: reasoning, content, string and JSON values ---------------------------------

    def _payload(self, c: str) -> bool:
        terms = TERMS[self.mode]
        if not self.pending and c not in "<\n":
            return self._release(c)
        s = self.pending + c
        js = self.json
        if js is not None and c == "<" and not self.pending and js.state != "string" \
                and not js.complete():
            # here `<` is no JSON, so it must begin the parameter's end, which needs whole JSON
            return self._fail(f"invalid JSON value for {self.param!r}")
        for term, nxt in terms:
            if s == term:
                self.pending = ""
                return self._enter(nxt)
        if self.mode == "content" and _COMMIT in s and self.tools and not self.tools.props:
            return self._fail("no tools are registered")
        if any(t.startswith(s) for t, _ in terms):
            self.pending = s
            return True
        if self.mode == "content" and _COMMIT in s:
            return self._broken_block(s)
        k = 1
        while not any(t.startswith(s[k:]) for t, _ in terms):
            k += 1
        self.pending = s[k:]
        return self._release(s[:k])

    def _broken_block(self, s: str) -> bool:
        """`<｜DSML｜` in content that does not open a block: text before it stays content."""
        at = s.index(_COMMIT)
        self.pending = ""
        if at:
            self._release(s[:at])
        if self.sink:
            self.sink.mark("block", self.pos - len(s) + at)
        return self._fail(f"expected {dsml.CALLS_OPEN!r} after {_COMMIT!r}")

    def _release(self, text: str) -> bool:
        if self.mode == "vjson":
            self.value += text
            if self.json is not None and not all(self.json.feed(c) for c in text):
                return self._fail(f"invalid JSON value for {self.param!r}")
        if self.sink:
            self.sink.payload(self.mode, text)
        return True

    def _enter(self, nxt: str) -> bool:
        if nxt == "block":
            if self.sink:
                self.sink.mark("block", self.pos - len(dsml.CALLS_OPEN))
            return self._want((("\n" + dsml.INVOKE_OPEN, "name"),))
        if nxt == "param_end":
            return self._param_end()
        if nxt == "content" and self.force_call:
            return self._want((("\n\n" + dsml.CALLS_OPEN, "block"),))
        self.mode = nxt
        return True

    # -- markup ---------------------------------------------------------------------------------

    def _want(self, alts: tuple[tuple[str, str], ...]) -> bool:
        self.mode, self.alts, self.got = "expect", alts, ""
        return True

    def _expect(self, c: str) -> bool:
        if c in _WS and not self.got and self.alts == _END:
            return True  # whitespace after the block is let pass (the constraint never emits it)
        s = self.got + c
        alts = tuple(a for a in self.alts if a[0].startswith(s))
        if not alts:
            want = " or ".join(repr(a[0][len(self.got):]) for a in self.alts)
            return self._fail(f"expected {want}, got {s[len(self.got):]!r}")
        if self.sink and not self.got and any(a[1] == "name" for a in alts):
            self.sink.mark("invoke", self.pos + (1 if alts[0][0][0] == "\n" else 0) - 1)
        self.alts, self.got = alts, s
        for lit, nxt in alts:
            if lit == s:
                return self._after_literal(nxt)
        return True

    def _after_literal(self, nxt: str) -> bool:
        self.got = ""
        if nxt in ("name", "pname"):
            self.mode = nxt
            return True
        if nxt in ("vstr", "vjson"):
            return self._start_value(nxt)
        if nxt == "after_invoke":
            if self.sink:
                self.sink.call_end()
            return self._want((("\n" + dsml.INVOKE_OPEN, "name"),
                                 ("\n" + dsml.CALLS_CLOSE, "after_block")))
        if nxt == "params":
            return self._want(self._param_alts(first=True))
        if nxt == "after_block":
            return self._want(_END)
        if nxt == "block":
            return self._enter(nxt)
        self.mode = nxt  # "end"
        return True

    def _param_alts(self, first: bool) -> tuple[tuple[str, str], ...]:
        sep = "" if first else "\n"
        alts = []
        names = self.tools.param_names(self.tool, self.used) if self.tools else None
        if names is None or names:
            alts.append((sep + dsml.PARAM_OPEN, "pname"))
        if not self.tools or self.tools.required[self.tool] <= set(self.used):
            alts.append(("\n" + dsml.INVOKE_CLOSE, "after_invoke"))
        return tuple(alts)

    def _name(self, c: str) -> bool:
        if c != '"':
            if c in _NAME_STOP:
                return self._fail(f"bad character {c!r} in a tool name")
            self.got += c
            if self.tools and not any(n.startswith(self.got) for n in self.tools.props):
                return self._fail(f"unknown tool {self.got!r}")
            return True
        name, self.got = self.got, ""
        if not name or (self.tools and name not in self.tools.props):
            return self._fail(f"unknown tool {name!r}")
        self.tool, self.used = name, ()
        if self.sink:
            self.sink.call_start(name)
        return self._want((('>\n', "params"),))  # the '"' is consumed

    def _pname(self, c: str) -> bool:
        names = self.tools.param_names(self.tool, self.used) if self.tools else None
        if c != '"':
            if c in _NAME_STOP:
                return self._fail(f"bad character {c!r} in a parameter name")
            self.got += c
            if names is not None and not any(n.startswith(self.got) for n in names):
                return self._fail(f"unknown parameter {self.got!r} for {self.tool!r}")
            return True
        p, self.got = self.got, ""
        if not p or p in self.used or (names is not None and p not in names):
            return self._fail(f"unknown or repeated parameter {p!r} for {self.tool!r}")
        self.param, self.used = p, (*self.used, p)
        flags = self.tools.string_flags(self.tool, p) if self.tools else ("true", "false")
        return self._want(tuple((f' string="{f}">', "vstr" if f == "true" else "vjson")
                                  for f in flags))

    def _start_value(self, mode: str) -> bool:
        self.mode, self.value, self.json = mode, "", None
        if mode == "vjson" and self.tools:
            self.json = self.tools.json_prefix(self.tool, self.param)
        if self.sink:
            self.sink.param(self.param, mode == "vstr")
        return True

    def _param_end(self) -> bool:
        if self.mode == "vjson":
            try:
                json.loads(self.value)
            except ValueError:
                return self._fail(f"parameter {self.param!r} is not valid JSON")
        if self.sink:
            self.sink.param_end()
        return self._want(self._param_alts(first=False))
