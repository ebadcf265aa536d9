"""The grammar of one V4 reply as the streaming parser reads it (parse.py): a character-level
machine over the reply's text. Constrained decoding is llguidance's (lark_grammar.py, guide.py),
over the same syntax; DeepSeek's own parser is the reference for both.

Reply grammar (thinking mode starts in reasoning, chat mode in content):

    reasoning `</think>` content [ ["\\n\\n"] block ] [EOS]
    block  = `<｜DSML｜tool_calls>` ("\\n" invoke)+ "\\n" `</｜DSML｜tool_calls>`
    invoke = `<｜DSML｜invoke name="N">` "\\n" [param ("\\n" param)*] "\\n" `</｜DSML｜invoke>`
    param  = `<｜DSML｜parameter name="P" string="true|false">` VALUE `</｜DSML｜parameter>`

Payload (reasoning, content, VALUE) runs to its terminator; text that might begin one is held
back. Once `<｜DSML｜` appears in content the text is markup and must follow the grammar. A
name runs to what ends it in DeepSeek's parser (`">\\n` for a tool, `" string="true|false">`
for a parameter), so it may hold a `"`. `string="false"` values are checked with json.loads at
their end.
"""

from __future__ import annotations

import json

from engine.chat import dsml

_COMMIT = "<" + dsml.DSML  # in content, markup from here on
_BLOCK_TERMS = (("\n\n" + dsml.CALLS_OPEN, "block"), (dsml.CALLS_OPEN, "block"))
TERMS = {
    "reasoning": ((dsml.THINK_CLOSE, "content"), (dsml.EOS, "end")),
    "content": (*_BLOCK_TERMS, (dsml.EOS, "end")),
    "vstr": ((dsml.PARAM_CLOSE, "param_end"),),
    "vjson": ((dsml.PARAM_CLOSE, "param_end"),),
}
_END = ((dsml.EOS, "end"),)
_WS = " \t\r\n"
_NAME_END = '">\n'  # a tool name runs to this
_FLAGS = (('" string="true">', "vstr"), ('" string="false">', "vjson"))  # a parameter name's
_NAME_STOPS = ("<" + dsml.DSML, "</" + dsml.DSML)  # markup inside a name: it never ended


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
    why and the machine stays in mode "error")."""

    def __init__(self, thinking: bool = True, sink: Sink | None = None) -> None:
        self.mode = "reasoning" if thinking else "content"
        self.pending = ""  # payload modes: held text that may begin a terminator
        self.alts: tuple[tuple[str, str], ...] = ()  # mode "expect": (literal, next mode)
        self.got = ""  # mode "expect": matched so far; modes name/pname: the name so far
        self.sink = sink
        self.tool = ""  # current call's name
        self.used: tuple[str, ...] = ()  # its parameter names so far
        self.param = ""
        self.value = ""  # vjson: the value's text
        self.error = ""
        self.pos = 0  # characters consumed

    def can_end(self) -> bool:
        """Whether the reply may stop here (EOS)."""
        if self.mode == "content":
            return _COMMIT not in self.pending
        if self.mode == "expect":
            return not self.got and self.alts == _END
        return self.mode == "end"

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
        held back); i when there is none."""
        if self.mode not in TERMS or self.pending:
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
        for term, nxt in terms:
            if s == term:
                self.pending = ""
                return self._enter(nxt)
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
        if nxt == "after_invoke":
            if self.sink:
                self.sink.call_end()
            return self._want((("\n" + dsml.INVOKE_OPEN, "name"),
                               ("\n" + dsml.CALLS_CLOSE, "after_block")))
        if nxt == "after_block":
            return self._want(_END)
        self.mode = nxt  # "end"
        return True

    def _param_alts(self, first: bool) -> tuple[tuple[str, str], ...]:
        return (("" if first else "\n") + dsml.PARAM_OPEN, "pname"), \
            ("\n" + dsml.INVOKE_CLOSE, "after_invoke")

    def _add_to_name(self, c: str, what: str) -> None:
        """c joins the name being read (mode "error" if markup shows it never ended)."""
        self.got += c
        if any(self.got.endswith(x) for x in _NAME_STOPS):
            self._fail(f"markup inside a {what} name: {self.got!r}")

    def _name(self, c: str) -> bool:
        self._add_to_name(c, "tool")
        if self.mode == "error" or not self.got.endswith(_NAME_END):
            return self.mode != "error"
        name, self.got = self.got[:-len(_NAME_END)], ""
        if not name:
            return self._fail("a tool call without a name")
        self.tool, self.used = name, ()
        if self.sink:
            self.sink.call_start(name)
        return self._want(self._param_alts(first=True))

    def _pname(self, c: str) -> bool:
        self._add_to_name(c, "parameter")
        if self.mode == "error":
            return False
        flag = next(((f, mode) for f, mode in _FLAGS if self.got.endswith(f)), None)
        if flag is None:
            return True
        p, self.got = self.got[:-len(flag[0])], ""
        if not p or p in self.used:
            return self._fail(f"empty or repeated parameter {p!r} for {self.tool!r}")
        self.param, self.used = p, (*self.used, p)
        self.mode, self.value = flag[1], ""
        if self.sink:
            self.sink.param(p, flag[1] == "vstr")
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
