"""Prefix reuse across requests: an agent's prompt grows by a tool result at a time, so the state
of the previous prompt (plus its reply) is reused and only the new tokens are prefilled.

A cached sequence is its tokens, the `ModelState` after them, and `Mark`s: light snapshots at
earlier positions (chunk boundaries from `extend`, and the ends of sequences it superseded).
A request that diverges inside a cached sequence at position m gets the state at the last mark
≤ m (or the end state rolled back, when that is exact), so at most the tail since that mark is
prefilled again. Every reuse is exact: a restored state equals the state a prefill of the same
tokens would have built (same chunk boundaries), never an approximation.

Marks are light because compressed rows only ever grow: a mark at p keeps the window ring and
the compressors' open windows, and takes its first p // ratio rows from the end state.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from engine.kv.state import LayerState, ModelState

SNAP = 128          # lcm of the compress ratios (4, 128): every window is closed at a multiple
CHUNK = 512         # prefill chunk: longer amortizes per-call work (~1.4x at 8K on a CPU), shorter
                    # marks more often (a divergence re-prefills < CHUNK tokens)
MAX_MARKS = 8       # marks kept per state (the newest); older ones are dropped
MAX_ENTRIES = 8     # cached sequences kept when no byte budget is given


def _light(st: LayerState) -> LayerState:
    return LayerState(st.window_size, st.pos, st.window.copy(),
                      None if st.comp is None else st.comp.light(),
                      None if st.index is None else st.index.light())


@dataclass(frozen=True)
class Mark:
    """The state at `pos` without the compressed rows (those are a prefix of the end state's)."""
    pos: int
    layers: tuple[LayerState, ...]
    mtp: tuple[LayerState, ...]

    @classmethod
    def of(cls, state: ModelState) -> Mark:
        return cls(state.pos, tuple(_light(s) for s in state.layers),
                   tuple(_light(s) for s in state.mtp))

    def restore(self, full: ModelState) -> ModelState:
        """A fresh state at `pos`, rows copied from `full` (a later state of the same tokens)."""
        layers = [_with_rows(m, f) for m, f in zip(self.layers, full.layers, strict=True)]
        marks = {p: k for p, k in full.marks.items() if p <= self.pos}
        return ModelState(layers, [m.copy() for m in self.mtp], marks)

    def nbytes(self) -> int:
        return sum(state_bytes(s) for s in (*self.layers, *self.mtp))


def _with_rows(mark: LayerState, full: LayerState) -> LayerState:
    """The mark's window and open slots with the first pos // ratio entries of `full`."""
    st = mark.copy()
    for mine, theirs in ((st.comp, full.comp), (st.index, full.index)):
        if mine is not None:
            mine.rows = theirs.rows.copy(max(st.pos // mine.ratio + 1, mine.floor))
    return st


def state_bytes(st: LayerState | ModelState | Mark) -> int:
    """Bytes of every tensor a state holds (marks included), as allocated."""
    if isinstance(st, ModelState):
        own = sum(state_bytes(s) for s in (*st.layers, *st.mtp))
        return own + sum(m.nbytes() for m in st.marks.values())
    if isinstance(st, Mark):
        return st.nbytes()
    return st.nbytes()


def add_mark(state: ModelState, mark: Mark | None = None) -> None:
    """Remember `state` at its current position (or a given earlier mark); keep the newest few."""
    mark = mark or Mark.of(state)
    state.marks[mark.pos] = mark
    for p in sorted(state.marks)[:-MAX_MARKS]:
        del state.marks[p]


@torch.no_grad()
def extend(model, tokens: torch.Tensor, state: ModelState, chunk: int = CHUNK,
           every: int = SNAP, last_only: bool = False,
           streams: list | None = None) -> torch.Tensor:
    """Prefill `tokens` after `state` in chunks of at most `chunk` tokens that end on
    multiples of `every` (the last one on the last such multiple, then the tail), marking the
    state at each such end. Returns the logits [S, vocab]
    (or [1, vocab] with last_only). `streams`: a list that receives (the last chunk's final
    streams [s, n, D], its tokens) (MTP drafting needs them)."""
    outs, i, p0 = [], 0, state.pos
    while i < len(tokens):
        p = p0 + i
        end = max((p + chunk) // every * every, (p // every + 1) * every) - p0
        end = min(len(tokens), end)
        last = (p0 + end) // every * every - p0
        if end == len(tokens) and i < last < end:  # mark within `every` of the end: a later
            end = last                              # prompt diverging near it reuses this much
        if streams is not None:
            with torch.no_grad():
                x = model.streams(tokens[i:end], state)
                lg = model.logits(x)  # all rows, as forward does: same bits
            streams[:] = [(x, tokens[i:end].tolist())]
        else:
            lg = model(tokens[i:end], state)
        outs.append(lg[-1:] if last_only else lg)
        i = end
        if state.pos % every == 0:
            add_mark(state)
    return outs[-1] if last_only else torch.cat(outs)


def common_prefix(a, b) -> int:
    """Length of the longest common prefix of two token sequences of one type (both tuples
    or both lists: a tuple never equals a list)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # binary search on slice equality: C-speed compares, log n of them
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if a[:mid] == b[:mid] else (lo, mid - 1)
    return lo


class _Entry:
    """A cached sequence: its tokens and end state (rows in the live state's own formats)."""

    def __init__(self, tokens: tuple[int, ...], state: ModelState):
        self.tokens, self.marks, self.state = tokens, state.marks, state
        self.nbytes = state_bytes(state)

    def best_at(self, m: int) -> int:
        """The longest position ≤ m this entry can restore exactly."""
        if m == len(self.tokens):
            return m
        if m == len(self.tokens) - 1 and _can_truncate(self.state, m):
            return m
        return max((p for p in self.marks if p <= m), default=0)

    def materialize(self, n: int) -> ModelState:
        if n == len(self.tokens):
            return self.state.copy()
        if n in self.marks:
            return self.marks[n].restore(self.state)
        st = self.state.copy()
        st.truncate(n)
        return st


def _can_truncate(state: ModelState, n: int) -> bool:
    try:
        state.check_truncate(n)
    except ValueError:
        return False
    return True


class PrefixCache:
    """Several cached sequences, least recently used evicted first once over `budget_bytes`
    (0: no byte limit, at most MAX_ENTRIES sequences). Counters: hits, misses, reused_tokens.
    The states are held in the live state's formats (fp8 KV rows and fp4 indexer keys on the
    official path: engine/kv/rows.py), their buffers trimmed to whole pages.
    With `disk` (engine.kv.disk.KVStore) every stored sequence is also saved, and a lookup that
    finds nothing in memory tries the disk: a resumed session or a second run starts warm."""

    def __init__(self, budget_bytes: int = 0, disk=None):
        self.budget_bytes, self.disk = budget_bytes, disk
        self._entries: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self.hits = self.misses = self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def sequences(self) -> list[tuple[int, ...]]:
        """The cached token sequences, least recently used first."""
        return list(self._entries)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def lookup(self, tokens: list[int]) -> tuple[ModelState | None, int]:
        """A fresh state covering tokens[:n] and n, or (None, 0). n < len(tokens), so the
        caller always runs at least one token and gets its logits. Nothing in memory: the
        disk's saved sequence nearest to `tokens` is brought in first."""
        toks = tuple(tokens)
        best, best_n = self._best(toks)
        if best is None and self.disk is not None and toks:
            saved, state = self.disk.nearest(toks)
            if state is not None:
                self._entries[saved] = _Entry(saved, state)
                self._evict()
                best, best_n = self._best(toks)
        if best is None:
            self.misses += 1
            return None, 0
        self._entries.move_to_end(best.tokens)
        self.hits, self.reused_tokens = self.hits + 1, self.reused_tokens + best_n
        return best.materialize(best_n), best_n

    def _best(self, toks: tuple[int, ...]):
        best, best_n = None, 0
        for e in self._entries.values():
            n = e.best_at(min(common_prefix(e.tokens, toks), len(toks) - 1))
            if n > best_n:
                best, best_n = e, n
        return best, best_n

    def store(self, tokens: list[int], state: ModelState) -> None:
        """Cache (a copy of) `state`, which must cover exactly `tokens`. Sequences that are a
        prefix of these tokens are folded in as marks (their rows are a prefix of ours)."""
        toks = tuple(tokens)
        if state.pos != len(toks):
            raise ValueError(f"store: the state covers {state.pos} tokens, not {len(toks)}")
        st = state.copy()
        for key in [k for k in self._entries if toks[:len(k)] == k]:
            old = self._entries.pop(key)
            for mark in old.marks.values():
                st.marks.setdefault(mark.pos, mark)
            if len(key) < len(toks):
                add_mark(st, Mark.of(old.state))
        self._entries[toks] = _Entry(toks, st)
        self._evict()
        if self.disk is not None:
            self.disk.save(toks, state)

    def _evict(self) -> None:
        def over() -> bool:
            if self.budget_bytes > 0:
                return self.nbytes > self.budget_bytes
            return len(self._entries) > MAX_ENTRIES
        while len(self._entries) > 1 and over():
            self._entries.popitem(last=False)
        if self.budget_bytes > 0 and self.nbytes > self.budget_bytes:
            self._entries.clear()  # a single sequence larger than the budget is not kept
