"""Per-sequence incremental state, one `LayerState` per block (main layers, then MTP).

What a block must remember between calls (spec §3.1), each in a buffer of fixed shape that the
decode step writes in place (engine/kv/rows.py for the row formats):
  window   the ring of the last W raw kv rows (after norm, RoPE, QAT); position p in slot p mod W
  comp     the main compressor (CSA/HCA): the open window's slots and the emitted entries
  index    the indexer's compressor (CSA): the same, its entries being the indexer keys
The Python ints (`pos`) live on the host; a decode step reads only tensors, so its shapes
depend on the capacities alone. `copy` and `truncate` are what engine.kv.prefix builds on;
`marks` holds light snapshots (engine.kv.prefix.Mark) taken at chunk boundaries, so the state
can later be rebuilt exactly at any of those positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.kv.rows import Rows, pages_for


@dataclass
class CompressorState:
    """kv, gate [m, w] fp32: the slots of w = coff·d channels (gate incl. ape; −inf = empty).
    Token t sits in slot t mod m. HCA (coff 1, m = ratio): the open window. CSA (coff 2,
    m = 2·ratio): the open window and the last closed one alternate between the two halves, so
    window j's tokens sit at (j mod 2)·ratio.. and the previous window (whose first channel
    half pools into entry j) is the other half; nothing moves when a window closes. `rows`: the
    emitted entries, the first pos // ratio of them closed (the decode step also keeps the
    open window's partial entry in the row after them). `floor`: the least capacity `rows`
    keeps (the indexer's top-k)."""
    ratio: int
    kv: torch.Tensor
    gate: torch.Tensor
    rows: Rows
    floor: int = 0

    @classmethod
    def empty(cls, ratio: int, width: int, out_dim: int, fmt: str, device=None, rope: int = 0,
              floor: int = 0) -> CompressorState:
        m = ratio * width // out_dim
        kv = torch.zeros(m, width, device=device)
        gate = torch.full((m, width), float("-inf"), device=device)
        rows = Rows.empty(fmt, out_dim, pages_for(max(floor, 1)), device, rope)
        return cls(ratio, kv, gate, rows, floor)

    @property
    def overlap(self) -> bool:
        return self.kv.shape[0] == 2 * self.ratio

    def slots(self, j: int) -> slice:
        """Window j's slots (j = −1: the −inf ones before the first window)."""
        base = (j % (self.kv.shape[0] // self.ratio)) * self.ratio
        return slice(base, base + self.ratio)

    def reserve(self, tokens: int) -> None:
        """Room for the entries of `tokens` tokens and the open one after them."""
        self.rows.reserve(tokens // self.ratio + 1)

    def truncate(self, old_pos: int, new_pos: int) -> None:
        """Forget tokens new_pos..old_pos-1: their slots are simply written again. A window that
        closed in between cannot be reopened (its slots moved on), so none may have."""
        if old_pos // self.ratio != new_pos // self.ratio:
            raise ValueError(f"cannot truncate from {old_pos} to {new_pos}: a ratio-{self.ratio}"
                             " window closed in between; prefill again from a copy instead")

    def copy(self, pos: int) -> CompressorState:
        """A copy holding the entries of `pos` tokens (whole pages, at least `floor` rows)."""
        rows = self.rows.copy(max(pos // self.ratio + 1, self.floor))
        return CompressorState(self.ratio, self.kv.clone(), self.gate.clone(), rows, self.floor)

    def light(self) -> CompressorState:
        """The slots only (a mark's share: the entries are a prefix of a later state's)."""
        return CompressorState(self.ratio, self.kv.clone(), self.gate.clone(),
                               self.rows.copy(0), self.floor)

    def to(self, device) -> CompressorState:
        return CompressorState(self.ratio, self.kv.to(device), self.gate.to(device),
                               self.rows.to(device), self.floor)

    def nbytes(self) -> int:
        return (self.kv.numel() + self.gate.numel()) * 4 + self.rows.nbytes()


@dataclass
class LayerState:
    window_size: int
    pos: int = 0                                   # tokens seen by this block
    window: Rows | None = None                     # [W, d] ring
    comp: CompressorState | None = None
    index: CompressorState | None = None

    def compressors(self) -> list[CompressorState]:
        return [c for c in (self.comp, self.index) if c is not None]

    def window_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The last min(pos, W-1) rows [n, d] (float32) in position order, and their
        positions [n]."""
        n = min(self.pos, self.window_size - 1)
        pos = torch.arange(self.pos - n, self.pos, device=self.window.device)
        return self.window.gather(pos % self.window_size), pos

    def push_window(self, kv: torch.Tensor) -> None:
        """Write rows for positions pos..pos+S-1 (only the last W can matter); advance pos."""
        s, w = kv.shape[0], self.window_size
        keep = min(s, w)
        slots = torch.arange(self.pos + s - keep, self.pos + s, device=kv.device) % w
        self.window.put(slots, kv[-keep:])
        self.pos += s

    def reserve(self, tokens: int) -> None:
        for c in self.compressors():
            c.reserve(tokens)

    def truncate(self, n: int) -> None:
        """Roll back to the first n tokens (e.g. rejected speculative tokens). The ring keeps
        the last W rows, so the window can go back one token; compressors see `truncate`.
        Raises ValueError (changing nothing) when that cannot be done exactly."""
        if not 0 <= n <= self.pos:
            raise ValueError(f"cannot truncate to {n}: the state holds {self.pos} tokens")
        if self.pos - n > 1 and n > 0:
            raise ValueError(f"cannot truncate from {self.pos} to {n}: the window ring keeps "
                             f"only {self.window_size} rows; prefill again from a copy instead")
        for c in self.compressors():
            c.truncate(self.pos, n)
        self.pos = n

    def copy(self) -> LayerState:
        return LayerState(self.window_size, self.pos, self.window.copy(),
                          None if self.comp is None else self.comp.copy(self.pos),
                          None if self.index is None else self.index.copy(self.pos))

    def to(self, device) -> LayerState:
        return LayerState(self.window_size, self.pos, self.window.to(device),
                          None if self.comp is None else self.comp.to(device),
                          None if self.index is None else self.index.to(device))

    def nbytes(self) -> int:
        return self.window.nbytes() + sum(c.nbytes() for c in self.compressors())


@dataclass
class ModelState:
    layers: list[LayerState] = field(default_factory=list)
    mtp: list[LayerState] = field(default_factory=list)
    marks: dict = field(default_factory=dict)  # pos -> engine.kv.prefix.Mark (immutable)

    @property
    def pos(self) -> int:
        return self.layers[0].pos if self.layers else 0

    def reserve(self, tokens: int) -> None:
        """Room for `tokens` tokens in every block (grows buffers by whole pages)."""
        for s in (*self.layers, *self.mtp):
            s.reserve(tokens)

    def check_truncate(self, n: int) -> None:
        """Raise the ValueError `truncate(n)` would, changing nothing."""
        for s in self.layers:
            LayerState(s.window_size, s.pos, None, s.comp, s.index).truncate(n)  # a twin

    def truncate(self, n: int) -> None:
        """Roll every main block back to n tokens (all or nothing)."""
        self.check_truncate(n)
        for s in self.layers:
            s.truncate(n)
        self.marks = {p: m for p, m in self.marks.items() if p <= n}

    def copy(self) -> ModelState:
        return ModelState([s.copy() for s in self.layers], [s.copy() for s in self.mtp],
                          dict(self.marks))
