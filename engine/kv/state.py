"""Per-sequence incremental state, one `LayerState` per block (main layers, then MTP).

What a block must remember between calls (spec §3.1):
  window      [W, d] ring of raw kv rows (after norm, RoPE, QAT); slot = position mod W
  comp        the main compressor (CSA/HCA): emitted rows [n, d] plus the open window
  index       the indexer's compressor (CSA): emitted keys [n, di] plus its open window
`copy` and `truncate` are what engine.kv.prefix builds on; `marks` holds light snapshots
(engine.kv.prefix.Mark) taken at chunk boundaries, so the state can later be rebuilt exactly at
any of those positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class CompressorState:
    """Tokens of the not-yet-closed window and, for overlapping (CSA) compressors, the first
    channel half of the last closed window, which the next entry pools over too."""
    ratio: int
    tail_kv: torch.Tensor      # [n_tail < ratio, coff·d] fp32
    tail_gate: torch.Tensor    # [n_tail, coff·d] fp32, ape already added
    rows: torch.Tensor         # [n_entries, d] emitted entries
    prev_kv: torch.Tensor | None = None    # CSA: [ratio, d]
    prev_gate: torch.Tensor | None = None  # CSA: [ratio, d]

    @classmethod
    def empty(cls, ratio: int, width: int, out_dim: int, device=None) -> CompressorState:
        z = torch.zeros(0, width, device=device)
        return cls(ratio, z, z.clone(), torch.zeros(0, out_dim, device=device))

    def truncate(self, old_pos: int, new_pos: int) -> None:
        """Forget tokens new_pos..old_pos-1. Pooled windows cannot be reopened (their raw
        rows are gone), so no window may have closed after new_pos."""
        if old_pos // self.ratio != new_pos // self.ratio:
            raise ValueError(f"cannot truncate from {old_pos} to {new_pos}: a ratio-{self.ratio}"
                             " window closed in between; prefill again from a copy instead")
        keep = new_pos - new_pos // self.ratio * self.ratio
        self.tail_kv, self.tail_gate = self.tail_kv[:keep], self.tail_gate[:keep]

    def map(self, fn) -> CompressorState:
        """A state whose tensors are fn(tensor) (clone for `copy`, .to(device) for `to`)."""
        c = lambda t: None if t is None else fn(t)
        return replace(self, tail_kv=c(self.tail_kv), tail_gate=c(self.tail_gate),
                       rows=c(self.rows), prev_kv=c(self.prev_kv), prev_gate=c(self.prev_gate))

    def copy(self) -> CompressorState:
        return self.map(torch.clone)


@dataclass
class LayerState:
    window_size: int
    pos: int = 0                                   # tokens seen by this block
    window: torch.Tensor | None = None             # [W, d] ring
    comp: CompressorState | None = None
    index: CompressorState | None = None

    def window_rows(self, dim: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The last min(pos, W-1) rows [n, dim] in position order, and their positions [n]."""
        n = min(self.pos, self.window_size - 1)
        pos = torch.arange(self.pos - n, self.pos, device=device)
        if self.window is None or n == 0:
            return torch.zeros(0, dim, device=device), pos
        return self.window[pos % self.window_size], pos

    def push_window(self, kv: torch.Tensor) -> None:
        """Append rows for positions pos..pos+S-1 (only the last W can matter)."""
        if self.window is None:
            self.window = kv.new_zeros(self.window_size, kv.shape[1])
        s = kv.shape[0]
        if s == 1:  # decode: one slot, no index tensor
            self.window[self.pos % self.window_size] = kv[0]
            self.pos += 1
            return
        keep = min(s, self.window_size)
        slots = torch.arange(self.pos + s - keep, self.pos + s, device=kv.device) % self.window_size
        self.window[slots] = kv[-keep:]
        self.pos += s

    def truncate(self, n: int) -> None:
        """Roll back to the first n tokens (e.g. rejected speculative tokens). The ring keeps
        the last W rows, so the window can go back one token; compressors see `truncate`."""
        if not 0 <= n <= self.pos:
            raise ValueError(f"cannot truncate to {n}: the state holds {self.pos} tokens")
        if self.pos - n > 1 and n > 0:
            raise ValueError(f"cannot truncate from {self.pos} to {n}: the window ring keeps "
                             f"only {self.window_size} rows; prefill again from a copy instead")
        for c in (self.comp, self.index):
            if c is not None:
                c.truncate(self.pos, n)
        self.pos = n

    def map(self, fn) -> LayerState:
        """A state whose tensors are fn(tensor) (see CompressorState.map)."""
        return LayerState(self.window_size, self.pos,
                          None if self.window is None else fn(self.window),
                          None if self.comp is None else self.comp.map(fn),
                          None if self.index is None else self.index.map(fn))

    def copy(self) -> LayerState:
        return self.map(torch.clone)

    def to(self, device) -> LayerState:
        return self.map(lambda t: t.to(device))


@dataclass
class ModelState:
    layers: list[LayerState] = field(default_factory=list)
    mtp: list[LayerState] = field(default_factory=list)
    marks: dict = field(default_factory=dict)  # pos -> engine.kv.prefix.Mark (immutable)

    @property
    def pos(self) -> int:
        return self.layers[0].pos if self.layers else 0

    def truncate(self, n: int) -> None:
        """Roll every main block back to n tokens (all or nothing)."""
        probe = [s.copy() for s in self.layers]
        for s in probe:
            s.truncate(n)
        self.layers = probe
        self.marks = {p: m for p, m in self.marks.items() if p <= n}

    def copy(self) -> ModelState:
        return ModelState([s.copy() for s in self.layers], [s.copy() for s in self.mtp],
                          dict(self.marks))
