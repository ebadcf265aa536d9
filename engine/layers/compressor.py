"""The KV compressor of CSA (ratio 4, overlapping windows) and HCA (ratio 128).

Each token s gives c_s = wkv·x_s and z_s = wgate·x_s + ape[s mod m] (fp32). Entry j pools, per
channel, softmax_s(z)·c over its window. CSA entries also pool the previous window's tokens
through the first channel half (rows 0..d-1 of wkv/wgate); the own window uses the second
half. Entry j is then RMS-normed, roped at position j·m, and (official) FP8-rounded.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.kernels import registry
from engine.kv.state import CompressorState
from engine.layers.linear import PLAIN, Linear
from engine.layers.norm import RMSNorm
from engine.numerics import Numerics


def close_windows(kv: torch.Tensor, gate: torch.Tensor, ratio: int, overlap: bool,
                  st: CompressorState) -> tuple[torch.Tensor, torch.Tensor]:
    """Feed new tokens' kv/gate [S, coff·d] (gate incl. ape) into the state; return the slots
    of every window that closed, kv and gate [n_new, m, d] (m = 2·ratio for CSA) for pooling
    (engine/kernels/compressor.py). Updates `st`."""
    kv = torch.cat((st.tail_kv, kv.float()))
    gate = torch.cat((st.tail_gate, gate.float()))
    usable = kv.shape[0] // ratio * ratio
    st.tail_kv, st.tail_gate = kv[usable:], gate[usable:]
    n, width = usable // ratio, kv.shape[-1]
    if n == 0:
        empty = kv.new_zeros(0, ratio * (2 if overlap else 1), width // (2 if overlap else 1))
        return empty, empty
    kv, gate = kv[:usable].view(n, ratio, width), gate[:usable].view(n, ratio, width)
    if overlap:
        kv, gate = _overlap(kv, gate, st)
    return kv, gate


def _overlap(kv: torch.Tensor, gate: torch.Tensor, st: CompressorState):
    """[n, m, 2d] -> [n, 2m, d]: slots 0..m-1 = previous window's first half (−inf gate for
    the very first window), slots m..2m-1 = own window's second half."""
    n, m, d2 = kv.shape
    d = d2 // 2
    prev_kv = kv.new_zeros(n, m, d)
    prev_gate = gate.new_full((n, m, d), float("-inf"))
    prev_kv[1:], prev_gate[1:] = kv[:-1, :, :d], gate[:-1, :, :d]
    if st.prev_kv is not None:
        prev_kv[0], prev_gate[0] = st.prev_kv, st.prev_gate
    st.prev_kv, st.prev_gate = kv[-1, :, :d].clone(), gate[-1, :, :d].clone()
    return torch.cat((prev_kv, kv[..., d:]), 1), torch.cat((prev_gate, gate[..., d:]), 1)


class Compressor(nn.Module):
    """Weights `wkv`, `wgate` [coff·d, D], `ape` [m, coff·d], `norm` [d] (checkpoint names)."""

    def __init__(self, dim: int, out_dim: int, ratio: int, eps: float, numerics: Numerics):
        super().__init__()
        self.ratio, self.out_dim, self.overlap = ratio, out_dim, ratio == 4
        width = out_dim * (2 if self.overlap else 1)
        self.wkv = Linear(dim, width, PLAIN, numerics)
        self.wgate = Linear(dim, width, PLAIN, numerics)
        self.ape = nn.Parameter(torch.zeros(ratio, width), requires_grad=False)
        self.norm = RMSNorm(out_dim, eps)

    def new_state(self, device=None) -> CompressorState:
        width = self.out_dim * (2 if self.overlap else 1)
        return CompressorState.empty(self.ratio, width, self.out_dim, device)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, st: CompressorState, rope) -> int:
        """Push tokens x [S, D] at positions `pos`; append finished entries (normed, roped by
        `rope(rows, positions)`) to st.rows. Returns the number of new entries."""
        first = st.rows.shape[0]
        kv = self.wkv(x.float(), act_quant=False)
        gate = self.wgate(x.float(), act_quant=False) + self.ape.float()[pos % self.ratio]
        kv, gate = close_windows(kv, gate, self.ratio, self.overlap, st)
        if kv.shape[0] == 0:  # most decode steps: the window is still open
            return 0
        pooled = registry.get("compressor.pool", kv.device)(kv, gate)
        if pooled.shape[0]:
            rows = self.norm(pooled)
            rows = rope(rows, (first + torch.arange(rows.shape[0], device=rows.device))
                        * self.ratio)
            st.rows = torch.cat((st.rows, rows.to(st.rows.dtype)))
        return pooled.shape[0]
