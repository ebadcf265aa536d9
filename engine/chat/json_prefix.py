"""A character-level recognizer of JSON prefixes (RFC 8259), for constrained decoding: `feed(c)`
says whether the text so far can still become valid JSON, `complete()` whether it already is
one whole value. Immutable-by-convention state (strings and ints) so `copy.copy` is a cheap
snapshot, which is how the token trie explores candidates."""

from __future__ import annotations

_WS = " \t\n\r"
_DIGITS = "0123456789"
_HEX = "0123456789abcdefABCDEF"
_ESCAPES = '"\\/bfnrtu'
_LITERALS = {"t": "true", "f": "false", "n": "null"}
_STARTS = '"[{-' + _DIGITS + "tfn"
_NEXT = {
    "value": frozenset(_WS + _STARTS), "value_or_close": frozenset(_WS + _STARTS + "]"),
    "key": frozenset(_WS + '"}'), "key_only": frozenset(_WS + '"'), "colon": frozenset(_WS + ":"),
    "number": frozenset(_WS + _DIGITS + ".eE+-,]}"), "after": frozenset(_WS + ",]}"),
    "done": frozenset(_WS),
}


class JsonPrefix:
    """States: value (a value is expected), after (a value just ended), key (an object key or
    `}` is expected), colon, string, number, literal, done. `stack` holds open `[`/`{`."""

    __slots__ = ("state", "stack", "esc", "num", "lit", "in_key", "first_chars", "integer")

    def __init__(self, first_chars: str | None = None, integer: bool = False) -> None:
        self.state = "value"
        self.stack = ""
        self.esc = 0  # 0: none; 1: after backslash; 2..5: hex digits of \uXXXX still to come
        self.num = ""  # number sub-state: "-", "0", "int", ".", "frac", "e", "e+", "exp"
        self.lit = ""  # the literal being matched and how much is left
        self.in_key = False
        self.first_chars = first_chars  # restricts the top-level value's first char (schema type)
        self.integer = integer  # the top-level value is a number without fraction or exponent

    def clone(self) -> JsonPrefix:
        j = JsonPrefix.__new__(JsonPrefix)
        for k in self.__slots__:
            setattr(j, k, getattr(self, k))
        return j

    def complete(self) -> bool:
        if self.state == "number":
            return not self.stack and self.num in ("0", "int", "frac", "exp")
        return self.state == "done"

    def next_chars(self) -> frozenset[str] | None:
        """A superset of the characters that may come next; None inside a string (almost any)."""
        return _NEXT.get(self.state) if self.state != "literal" else frozenset(self.lit[0])

    def feed(self, c: str) -> bool:
        return getattr(self, "_" + self.state)(c)

    def _value(self, c: str) -> bool:
        if c in _WS:
            return True
        if self.first_chars is not None and not self.stack:
            if c not in self.first_chars:
                return False
        if c == '"':
            self.state, self.in_key = "string", False
        elif c in "[{":
            self.stack += c
            self.state = "key" if c == "{" else "value_or_close"
        elif c == "-" or c in _DIGITS:
            self.state, self.num = "number", "-" if c == "-" else ("0" if c == "0" else "int")
        elif c in _LITERALS:
            self.state, self.lit = "literal", _LITERALS[c][1:]
        else:
            return False
        return True

    def _value_or_close(self, c: str) -> bool:
        # right after `[`: a value or `]`
        if c == "]":
            return self._close(c)
        self.state = "value"
        return self._value(c)

    def _key(self, c: str) -> bool:
        # right after `{` (a key or `}`) or after `,` in an object (a key only)
        if c in _WS:
            return True
        if c == '"':
            self.state, self.in_key = "string", True
            return True
        return c == "}" and self.stack.endswith("{") and self._close(c)

    def _key_only(self, c: str) -> bool:
        if c in _WS:
            return True
        if c == '"':
            self.state, self.in_key = "string", True
            return True
        return False

    def _colon(self, c: str) -> bool:
        if c in _WS:
            return True
        if c == ":":
            self.state = "value"
            return True
        return False

    def _string(self, c: str) -> bool:
        if self.esc == 1:
            if c not in _ESCAPES:
                return False
            self.esc = 5 if c == "u" else 0
            return True
        if self.esc > 1:
            self.esc = self.esc - 1 if self.esc > 2 else 0
            return c in _HEX
        if c == "\\":
            self.esc = 1
        elif c == '"':
            self.state = "colon" if self.in_key else self._after_value()
        elif ord(c) < 0x20:
            return False
        return True

    def _number(self, c: str) -> bool:
        n = self.num
        if c in _DIGITS:
            if n in ("0",):
                return False
            self.num = {"-": "0" if c == "0" else "int", ".": "frac", "e": "exp",
                        "e+": "exp"}.get(n, n)
            return True
        if c in ".eE" and self.integer and not self.stack:
            return False
        if c == "." and n in ("0", "int"):
            self.num = "."
            return True
        if c in "eE" and n in ("0", "int", "frac"):
            self.num = "e"
            return True
        if c in "+-" and n == "e":
            self.num = "e+"
            return True
        if n not in ("0", "int", "frac", "exp"):
            return False
        self.state = self._after_value()
        return self.feed(c)

    def _literal(self, c: str) -> bool:
        if c != self.lit[0]:
            return False
        self.lit = self.lit[1:]
        if not self.lit:
            self.state = self._after_value()
        return True

    def _after_value(self) -> str:
        return "after" if self.stack else "done"

    def _after(self, c: str) -> bool:
        if c in _WS:
            return True
        if c == ",":
            self.state = "key_only" if self.stack.endswith("{") else "value"
            return True
        return c in "]}" and self._close(c)

    def _close(self, c: str) -> bool:
        if not self.stack or self.stack[-1] != {"]": "[", "}": "{"}[c]:
            return False
        self.stack = self.stack[:-1]
        self.state = self._after_value()
        return True

    def _done(self, c: str) -> bool:
        return c in _WS
