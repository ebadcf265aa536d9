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
from dataclasses import dataclass, replace

import torch

from engine.kv import pages
from engine.kv.state import CompressorState, LayerState, ModelState

SNAP = 128          # lcm of the compress ratios (4, 128): every window is closed at a multiple
CHUNK = 512         # prefill chunk: longer amortizes per-call work (~1.4x at 8K on a CPU), shorter
                    # marks more often (a divergence re-prefills < CHUNK tokens)
MAX_MARKS = 8       # marks kept per state (the newest); older ones are dropped
MAX_ENTRIES = 8     # cached sequences kept when no byte budget is given


def _light_comp(c: CompressorState | None) -> CompressorState | None:
    return None if c is None else replace(c, rows=c.rows[:0]).copy()


def _light(st: LayerState) -> LayerState:
    w = None if st.window is None else st.window.clone()
    return LayerState(st.window_size, st.pos, w, _light_comp(st.comp), _light_comp(st.index))


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
        layers = [_with_rows(m.copy(), f) for m, f in zip(self.layers, full.layers, strict=True)]
        marks = {p: k for p, k in full.marks.items() if p <= self.pos}
        return ModelState(layers, [m.copy() for m in self.mtp], marks)

    def nbytes(self) -> int:
        return sum(state_bytes(s) for s in (*self.layers, *self.mtp))


def _with_rows(st: LayerState, full: LayerState) -> LayerState:
    for mine, theirs in ((st.comp, full.comp), (st.index, full.index)):
        if mine is not None:
            mine.rows = theirs.rows[: st.pos // mine.ratio].clone()
    return st


def state_bytes(st: LayerState | ModelState | Mark) -> int:
    """Bytes of every tensor a state holds (marks included)."""
    if isinstance(st, ModelState):
        own = sum(state_bytes(s) for s in (*st.layers, *st.mtp))
        return own + sum(m.nbytes() for m in st.marks.values())
    if isinstance(st, Mark):
        return st.nbytes()
    ts = [st.window]
    for c in (st.comp, st.index):
        if c is not None:
            ts += [c.tail_kv, c.tail_gate, c.rows, c.prev_kv, c.prev_gate]
    return sum(t.numel() * t.element_size() for t in ts if t is not None)


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
    """A cached sequence: its tokens and end state, held as is or packed into `pools` (paged
    rows in the cache formats; the open windows, MTP states and marks stay as they are)."""

    def __init__(self, tokens: tuple[int, ...], state: ModelState, pools=None):
        self.tokens, self.pools, self.marks = tokens, pools, state.marks
        self._state, self._packed = state, None
        if pools is not None and state.layers:
            self._dtype = state.layers[0].window.dtype if state.layers[0].window is not None \
                else torch.float32
            self._packed = [pages.pack_layer(s, pools) for s in state.layers]
            self._state = ModelState([], state.mtp, state.marks)
            self.nbytes = (sum(pages.packed_bytes(self._packed).values())
                           + sum(state_bytes(s) for s in state.mtp)
                           + sum(m.nbytes() for m in state.marks.values()))
        else:
            self.nbytes = state_bytes(state)

    def full(self) -> ModelState:
        """The end state (a fresh one when packed: treat it as read-only otherwise)."""
        if self._packed is None:
            return self._state
        layers = [pages.unpack_layer(p, self.pools, self._dtype) for p in self._packed]
        return ModelState(layers, [s.copy() for s in self._state.mtp], dict(self.marks))

    def free(self) -> None:
        for p in self._packed or ():
            for rows in (p.window, p.rows, p.index):
                if rows is not None:
                    rows.free()

    def best_at(self, m: int) -> int:
        """The longest position ≤ m this entry can restore exactly."""
        if m == len(self.tokens):
            return m
        if m == len(self.tokens) - 1 and _can_truncate(self.full(), m):
            return m
        return max((p for p in self.marks if p <= m), default=0)

    def materialize(self, n: int) -> ModelState:
        full = self.full()
        if n == len(self.tokens):
            return full if self._packed is not None else full.copy()
        if n in self.marks:
            return self.marks[n].restore(full)
        st = full.copy()
        st.truncate(n)
        return st


def _can_truncate(state: ModelState, n: int) -> bool:
    try:
        state.copy().truncate(n)
    except ValueError:
        return False
    return True


class PrefixCache:
    """Several cached sequences, least recently used evicted first once over `budget_bytes`
    (0: no byte limit, at most MAX_ENTRIES sequences). Counters: hits, misses, reused_tokens.
    With `pools` (engine.kv.pages.Pools) the rows are held packed in pages: exact with
    Pools.for_config(cfg, "fp8r32", "fp4") on the official path, ~3x smaller than fp32.
    With `disk` (engine.kv.disk.KVStore) every stored sequence is also saved, and a lookup that
    finds nothing in memory tries the disk: a resumed session or a second run starts warm."""

    def __init__(self, budget_bytes: int = 0, pools=None, disk=None):
        self.budget_bytes, self.pools, self.disk = budget_bytes, pools, disk
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
                self._entries[saved] = _Entry(saved, state, self.pools)
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
        st = state.copy() if self.pools is None else ModelState(
            state.layers, state.mtp, dict(state.marks))  # packing copies the rows anyway
        for key in [k for k in self._entries if toks[:len(k)] == k]:
            old = self._entries.pop(key)
            for mark in old.marks.values():
                st.marks.setdefault(mark.pos, mark)
            if len(key) < len(toks):
                add_mark(st, Mark.of(old.full()))
            old.free()
        if self.pools is not None:
            st.mtp = [s.copy() for s in st.mtp]
        self._entries[toks] = _Entry(toks, st, self.pools)
        self._evict()
        if self.disk is not None:
            self.disk.save(toks, state)

    def _evict(self) -> None:
        def over() -> bool:
            if self.budget_bytes > 0:
                return self.nbytes > self.budget_bytes
            return len(self._entries) > MAX_ENTRIES
        while len(self._entries) > 1 and over():
            self._entries.popitem(last=False)[1].free()
        if self.budget_bytes > 0 and self.nbytes > self.budget_bytes:
            for e in self._entries.values():
                e.free()
            self._entries.clear()  # a single sequence larger than the budget is not kept
