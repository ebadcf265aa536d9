"""Constrained decoding with llguidance: the tokenizer view it needs, the reply grammars
(lark_grammar.py) compiled once per (tools, tool_choice, response_format, thinking), and the
per-reply constraint the generation loop drives.

    c = guide_for(tokenizer).constraint(tools, "auto", None, thinking=True, width=vocab)
    new = c.begin()           # ids the grammar forces before anything is sampled
    ...                       # feed `new` to the model (one forward), then for each step:
    mask = c.mask()           # np.bool_[width]: logits[~mask] = -inf before sampling
    new = [tok, *c.advance(tok)]   # the sampled id, then the ids the grammar now forces
                              # (markup, names; EOS once nothing else may follow), consumed

`advance` starts computing the next mask on a worker thread (llguidance drops the GIL), so it
runs while the caller's forward pass over `new` does; `mask()` waits for it. With
`overlap=False` the mask is computed inside `mask()`.

Every added token of the tokenizer is a special token here (llguidance marks them with a 0xFF
byte), so the grammar names `｜DSML｜` and `</think>` by id and no text can spell them; the
specials a reply never holds (BOS, roles, task tokens, placeholders) are never allowed.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import llguidance
import numpy as np

from engine.chat.lark_grammar import SLICES, ReplyGrammar
from engine.chat.tokenizer import Tokenizer

_GRAMMARS = 64  # compiled grammars kept per tokenizer (least recently used dropped)
_SPECIAL = b"\xff"  # llguidance's marker byte of a special token


class _Vocab:
    """What llguidance.TokenizerWrapper reads: every token's bytes (specials marked) and a
    text → ids function (used for forced text)."""

    def __init__(self, tok: Tokenizer) -> None:
        added = set(tok.tk.get_added_tokens_decoder())
        self.tokens = [_SPECIAL + b if i in added else b for i, b in enumerate(tok.token_bytes)]
        self.special_token_ids = sorted(added)
        self.eos_token_id, self.bos_token_id = tok.eos_id, tok.bos_id
        self.tk = tok.tk

    def __call__(self, text: str | bytes) -> list[int]:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return self.tk.encode(text, add_special_tokens=False).ids


class Guide:
    """One tokenizer's llguidance state: its LLTokenizer and the compiled grammars."""

    def __init__(self, tok: Tokenizer) -> None:
        self.tok = tok
        self.ll = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Vocab(tok)),
                                         n_vocab=tok.vocab_size, slices=SLICES)
        self.ids = {"dsml": tok.special["dsml"], "think_close": tok.special["think_close"]}
        self.grammars: OrderedDict[str, llguidance.LLMatcher] = OrderedDict()
        self.lock = threading.Lock()

    def constraint(self, tools: list, tool_choice: str | dict = "auto",
                   response_format: dict | None = None, thinking: bool = True,
                   width: int | None = None, overlap: bool = True) -> ReplyConstraint:
        """A fresh constraint for one reply (ValueError: the request cannot have one)."""
        matcher = self.compiled(tools, tool_choice, response_format, thinking)
        return ReplyConstraint(matcher.deep_copy(), self.tok.eos_id, self.ll.vocab_size,
                               width or self.tok.vocab_size, overlap)

    def compiled(self, tools: list, tool_choice, response_format, thinking: bool):
        """The compiled (never advanced) matcher of a request's grammar, cached."""
        key = json.dumps([[_plain(t) for t in tools], tool_choice, response_format, thinking],
                         sort_keys=True, default=str)
        with self.lock:
            if key in self.grammars:
                self.grammars.move_to_end(key)
                return self.grammars[key]
        matcher = self._compile(ReplyGrammar(tools, tool_choice, response_format, thinking,
                                             **self.ids))
        with self.lock:
            self.grammars[key] = matcher
            while len(self.grammars) > _GRAMMARS:
                self.grammars.popitem(last=False)
        return matcher

    def _compile(self, g: ReplyGrammar) -> llguidance.LLMatcher:
        """Compile; a part llguidance refuses (a schema keyword it does not know, a pattern
        with look-around) is loosened to any JSON rather than failing the request."""
        matcher = self._matcher(g.text())
        if matcher.is_error():
            json_bad = {k for k, schema in g.json_parts if self._refuses(
                llguidance.LLMatcher.grammar_from_json_schema(schema))}
            raw_bad = {k for k, body in g.raw_parts if self._refuses(
                llguidance.LLMatcher.grammar_from_lark(f"start: X\nX: {body}"))}
            g.loose = frozenset(json_bad | raw_bad)
            matcher = self._matcher(g.text())
            if matcher.is_error():
                raise ValueError(f"tools: no grammar for this request: {matcher.get_error()}")
        return matcher

    def _matcher(self, lark: str) -> llguidance.LLMatcher:
        return llguidance.LLMatcher(self.ll, llguidance.LLMatcher.grammar_from_lark(lark),
                                    log_level=0)

    def _refuses(self, grammar: str) -> bool:
        return bool(llguidance.LLMatcher.validate_grammar(grammar, self.ll))


def _plain(tool):
    return tool if isinstance(tool, dict) else tool.function()


_GUIDES: dict[tuple, Guide] = {}  # by vocabulary
_BY_TOKENIZER: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # by Tokenizer object
_GUIDES_LOCK = threading.Lock()


def guide_for(tok: Tokenizer) -> Guide:
    """The Guide of a tokenizer, built once per vocabulary (two Tokenizer objects read from
    the same file share one: building costs ~0.6 s at 129k ids)."""
    guide = _BY_TOKENIZER.get(tok)
    if guide is not None:
        return guide
    key = (tok.vocab_size, tok.eos_id, hash(tuple(tok.token_bytes)),
           tuple(sorted(tok.tk.get_added_tokens_decoder())))
    with _GUIDES_LOCK:
        guide = _GUIDES.get(key)
        if guide is None:
            guide = _GUIDES[key] = Guide(tok)
        _BY_TOKENIZER[tok] = guide
    return guide


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:  # created on first use: importing starts no thread
        _POOL = ThreadPoolExecutor(1, thread_name_prefix="flashcode-mask")
    return _POOL


class ReplyConstraint:
    """One reply's grammar state over token ids. `width`: the model's logits width (rows past
    the tokenizer are never allowed; a narrower model drops the tokenizer's trailing ids)."""

    def __init__(self, matcher, eos_id: int, n_vocab: int, width: int, overlap: bool) -> None:
        self.m, self.eos_id, self.width, self.overlap = matcher, eos_id, width, overlap
        self.n_vocab = n_vocab
        self.bits = np.zeros((n_vocab + 31) // 32, dtype=np.int32)
        self.job: Future | None = None
        self.fresh = False  # self.bits holds the mask of the current state

    @property
    def error(self) -> str:
        return self.m.get_error()

    def begin(self) -> list[int]:
        """The ids forced at the start of the reply (consumed)."""
        return self._forced()

    def advance(self, token_id: int) -> list[int]:
        """Consume the sampled id; returns the ids the grammar forces next (consumed too),
        and starts computing the mask after them. A refused id puts the constraint in its
        error state (`error`), where nothing is allowed."""
        self._settle()
        self.fresh = False
        if not self.m.consume_token(token_id):
            return []
        return self._forced()

    def _forced(self) -> list[int]:
        forced = list(self.m.compute_ff_tokens())
        if forced and not self.m.consume_tokens(forced):
            return []
        if self.m.is_stopped() and self.m.is_accepting() and not self.m.is_error():
            forced.append(self.eos_id)  # nothing but EOS may follow
            self.m.consume_token(self.eos_id)
        elif self.overlap:
            self.job = _pool().submit(self._fill)
        return forced

    def _fill(self) -> None:
        self.m.unsafe_compute_mask_ptr(self.bits.ctypes.data, self.bits.nbytes)
        self.fresh = True

    def _settle(self) -> None:
        if self.job is not None:
            job, self.job = self.job, None
            job.result()

    def mask(self) -> np.ndarray:
        """np.bool_[width]: the ids allowed next."""
        self._settle()
        if not self.fresh:
            self._fill()
        allowed = np.unpackbits(self.bits.view(np.uint8), bitorder="little")[:self.n_vocab]
        out = np.zeros(self.width, dtype=bool)
        n = min(self.width, self.n_vocab)
        out[:n] = allowed[:n]
        return out

    def close(self) -> None:
        """Wait for a mask still being computed (the matcher must outlive it)."""
        self._settle()
