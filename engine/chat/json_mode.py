"""`response_format` json_object / json_schema as a token mask: reasoning as usual (thinking
mode), then the content is one JSON object and nothing else, then EOS. The schema itself is
written into the prompt (render.py) but not enforced beyond "a JSON object".

    c = JsonReplyConstraint(tokenizer, thinking=True, vocab_size=model_vocab)
    mask = c.allowed(); c.advance(token_id)        # the ToolCallConstraint interface

It runs ToolCallConstraint with no tools alongside (so the reply stays parseable: no DSML in
the content, `</think>` written as the special token only) and a JsonPrefix over the content.
Allowed sets inside JSON are cached per JsonPrefix state (one pass over the vocabulary per new
state: ~1 s for a 129k vocabulary in Python, then a lookup; the states recur, e.g. "inside a
string at depth 1").
"""

from __future__ import annotations

import codecs

import numpy as np

from engine.chat.constraint import ToolCallConstraint, vocab_tables
from engine.chat.json_prefix import JsonPrefix
from engine.chat.tokenizer import Tokenizer


def wants_json(response_format: dict | None) -> bool:
    return bool(response_format) and response_format.get("type") in ("json_object",
                                                                      "json_schema")


class JsonReplyConstraint:
    def __init__(self, tokenizer: Tokenizer, thinking: bool = True,
                 vocab_size: int | None = None) -> None:
        self.tok = tokenizer
        self.pre = ToolCallConstraint(tokenizer, [], thinking, vocab_size, "none")
        self.width = self.pre.width
        self.ok = vocab_tables(tokenizer).ok
        self.think_close = tokenizer.special["think_close"]
        self.js: JsonPrefix | None = None if thinking else JsonPrefix("{")
        self.dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.raw = b""
        self.cache: dict[tuple, np.ndarray] = {}

    def allowed(self) -> np.ndarray:
        mask = self.pre.allowed()
        n = min(self.width, len(self.ok))
        if self.js is None:  # reasoning: leave it only by the `</think>` token itself
            for i in np.flatnonzero(mask[:n]):
                if i != self.think_close and self._leaves_reasoning(int(i)):
                    mask[i] = False
            mask[self.tok.eos_id] = False
            return mask
        json_ok = np.zeros(self.width, dtype=bool)
        json_ok[:n] = self._json_ids()[:n]
        json_ok[self.tok.eos_id] = self.js.complete() and not self.raw
        return mask & json_ok

    def advance(self, token_id: int) -> bool:
        ok = self.pre.advance(token_id)
        if self.js is None:
            if token_id == self.think_close:
                self.js = JsonPrefix("{")
            return ok
        if token_id == self.tok.eos_id:
            return ok and self.js.complete()
        self.dec.setstate((self.raw, 0))
        text = self.dec.decode(self.tok.token_bytes[token_id])
        self.raw = self.dec.getstate()[0]
        return ok and all(self.js.feed(c) for c in text)

    def _leaves_reasoning(self, i: int) -> bool:
        """Whether token i, spelled out, would end the reasoning (few tokens can: only those
        with a `>`; the rest are skipped without running the machine)."""
        b = self.tok.token_bytes[i]
        if b">" not in b:
            return False
        m = self.pre.m.clone()
        text = b.decode("utf-8", errors="replace")
        return any(not m.feed(c) or m.mode != "reasoning" for c in text)

    def _json_ids(self) -> np.ndarray:
        """Ids whose text keeps the content a JSON prefix (cached by JsonPrefix state)."""
        js = self.js
        key = (tuple(getattr(js, k) for k in js.__slots__), self.raw)
        mask = self.cache.get(key)
        if mask is None:
            mask = np.zeros(len(self.ok), dtype=bool)
            dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
            for i in np.flatnonzero(self.ok):
                dec.setstate((self.raw, 0))
                text = dec.decode(self.tok.token_bytes[i])
                rest = dec.getstate()[0]
                j = js.clone()
                # a character still incomplete can only be fine inside a string
                mask[i] = all(j.feed(c) for c in text) and (not rest or j.state == "string")
            if len(self.cache) >= 1024:
                self.cache.clear()
            self.cache[key] = mask
        return mask
