"""The KV compressor of CSA (ratio 4, overlapping windows) and HCA (ratio 128).

Each token s gives c_s = wkv·x_s and z_s = wgate·x_s + ape[s mod m] (fp32). Entry j pools, per
channel, softmax_s(z)·c over its window. CSA entries also pool the previous window's tokens
through the first channel half (rows 0..d-1 of wkv/wgate); the own window uses the second
half. Entry j is then RMS-normed, roped at position j·m, and (official) FP8-rounded.

The open window lives in fixed slots (engine/kv/state.py, CompressorState). Prefill closes
every window a chunk completes at once; a decode step writes its token's slot, pools the slots
into the entry of its window (final once the window closes, invisible before) and, at a close,
moves the CSA window into the "previous" slots: the same work every step, no branch on t.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.kv.state import CompressorState
from engine.layers.linear import PLAIN, Linear, project
from engine.layers.norm import RMSNorm
from engine.layers.ops import op
from engine.numerics import Numerics


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

    def new_state(self, fmt: str, device=None, rope: int = 0, floor: int = 0) -> CompressorState:
        width = self.out_dim * (2 if self.overlap else 1)
        return CompressorState.empty(self.ratio, width, self.out_dim, fmt, device, rope, floor)

    def _project(self, x: torch.Tensor, pos: torch.Tensor):
        """x [S, D] at positions [S] -> kv, gate [S, coff·d] fp32 (gate incl. ape)."""
        x = x if x.dtype == torch.float32 else x.float()
        kv, gate = project(x, (self.wkv, self.wgate), act_quant=False)
        return kv, gate + self.ape[pos % self.ratio]

    def forward(self, x: torch.Tensor, p0: int, st: CompressorState, finish) -> None:
        """Prefill: push tokens x [S, D] at positions p0..; write the entries of the windows
        that close, finished by `finish(pooled [n, d], positions [n], norm)` (norm, RoPE and
        rounding, as the attention block does them). st.rows must have room."""
        r, s = self.ratio, x.shape[0]
        kv, gate = self._project(x, torch.arange(p0, p0 + s, device=x.device))
        base, n_open = st.kv.shape[0] - r, p0 % r  # the open window's first slot, its tokens
        kv = torch.cat((st.kv[base:base + n_open], kv))
        gate = torch.cat((st.gate[base:base + n_open], gate))
        n = kv.shape[0] // r                        # windows that close now
        if n:
            kw, gw = kv[:n * r].view(n, r, -1), gate[:n * r].view(n, r, -1)
            if self.overlap:
                kw, gw = _overlap(kw, gw, st)
            pooled = op("compressor.pool", kv.device)(kw, gw)
            first = p0 // r
            pos = torch.arange(first, first + n, device=kv.device) * r
            st.rows.write(first, finish(pooled, pos, self.norm))
        tail = kv.shape[0] - n * r
        st.kv[base:base + tail], st.gate[base:base + tail] = kv[n * r:], gate[n * r:]

    def decode(self, x: torch.Tensor, t: torch.Tensor, st: CompressorState, finish) -> None:
        """One token x [1, D] at position t [1]: its slot, then the entry of its window
        (row t // ratio). Static shapes; st.rows must have room for that row."""
        r, d = self.ratio, self.out_dim
        kv, gate = self._project(x, t)
        slot = st.kv.shape[0] - r + t % r
        st.kv.index_copy_(0, slot, kv)
        st.gate.index_copy_(0, slot, gate)
        kw, gw = st.kv, st.gate
        if self.overlap:  # previous window's first half, own window's second half
            kw = torch.cat((kw[:r, :d], kw[r:, d:]))
            gw = torch.cat((gw[:r, :d], gw[r:, d:]))
        pooled = op("compressor.pool", kv.device)(kw.unsqueeze(0), gw.unsqueeze(0))
        j = t // r
        st.rows.put(j, finish(pooled, j * r, self.norm))
        if self.overlap:  # a closing window becomes the previous one
            closed = (t + 1) % r == 0
            st.kv[:r] = torch.where(closed, st.kv[r:], st.kv[:r])
            st.gate[:r] = torch.where(closed, st.gate[r:], st.gate[:r])


def _overlap(kv: torch.Tensor, gate: torch.Tensor, st: CompressorState):
    """[n, m, 2d] -> [n, 2m, d]: slots 0..m-1 = previous window's first half (the state's
    last closed window for the first; −inf gates before any), slots m..2m-1 = own window's
    second half. The state's previous slots become this chunk's last window."""
    n, m, d2 = kv.shape
    d = d2 // 2
    prev_kv = torch.cat((st.kv[:m, :d].unsqueeze(0), kv[:-1, :, :d]))
    prev_gate = torch.cat((st.gate[:m, :d].unsqueeze(0), gate[:-1, :, :d]))
    st.kv[:m], st.gate[:m] = kv[-1], gate[-1]
    return torch.cat((prev_kv, kv[..., d:]), 1), torch.cat((prev_gate, gate[..., d:]), 1)
