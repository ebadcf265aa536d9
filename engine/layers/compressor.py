"""The KV compressor of CSA (ratio 4, overlapping windows) and HCA (ratio 128).

Each token s gives c_s = wkv·x_s and z_s = wgate·x_s + ape[s mod m] (fp32). Entry j pools, per
channel, softmax_s(z)·c over its window. CSA entries also pool the previous window's tokens
through the first channel half (rows 0..d-1 of wkv/wgate); the own window uses the second
half. Entry j is then RMS-normed, roped at position j·m, and (official) FP8-rounded.

The open window lives in fixed slots (engine/kv/state.py, CompressorState; CSA keeps two
windows, alternating). Prefill closes every window a chunk completes at once; a decode step
writes its token's slot and pools the slots into the entry of its window (final once the window
closes, invisible before): the same work every step, no branch on t.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.kernels import fused_cpu
from engine.kernels.scalars import f32
from engine.kv.state import CompressorState
from engine.layers.linear import PLAIN, Linear, project
from engine.layers.norm import RMSNorm
from engine.layers.ops import kernel, op
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
        if self.overlap:  # a decode step's slot order, and which slots give the first half
            self.order = torch.arange(2 * ratio, device="cpu")
            self.first = (self.order < ratio).unsqueeze(-1)

    def new_state(self, fmt: str, device=None, rope: int = 0, floor: int = 0) -> CompressorState:
        width = self.out_dim * (2 if self.overlap else 1)
        return CompressorState.empty(self.ratio, width, self.out_dim, fmt, device, rope, floor)

    def _project(self, x: torch.Tensor, pos: torch.Tensor):
        """x [S, D] at positions [S] -> kv, gate [S, coff·d] fp32 (gate incl. ape)."""
        kv, gate = project(f32(x), (self.wkv, self.wgate), act_quant=False)
        return kv, gate + self.ape[pos % self.ratio]

    def forward(self, x: torch.Tensor, p0: int, st: CompressorState, finish) -> None:
        """Prefill: push tokens x [S, D] at positions p0..; write the entries of the windows
        that close, finished by `finish(pooled [n, d], positions [n], norm)` (norm, RoPE and
        rounding, as the attention block does them). st.rows must have room."""
        r, s = self.ratio, x.shape[0]
        kv, gate = self._project(x, torch.arange(p0, p0 + s, device=x.device))
        j0, n_open = p0 // r, p0 % r                # the open window, its tokens so far
        own = st.slots(j0)
        kv = torch.cat((st.kv[own][:n_open], kv))
        gate = torch.cat((st.gate[own][:n_open], gate))
        n = kv.shape[0] // r                        # windows that close now
        if n:
            kw, gw = kv[:n * r].view(n, r, -1), gate[:n * r].view(n, r, -1)
            if self.overlap:
                last = st.slots(j0 + n - 1)         # the last closed window, kept whole
                kw, gw = _overlap(kw, gw, st.kv[st.slots(j0 - 1)], st.gate[st.slots(j0 - 1)])
                st.kv[last], st.gate[last] = kv[(n - 1) * r:n * r], gate[(n - 1) * r:n * r]
            pooled = op("compressor.pool", kv.device)(kw, gw)
            pos = torch.arange(j0, j0 + n, device=kv.device) * r
            st.rows.write(j0, finish(pooled, pos, self.norm))
        base = st.slots(j0 + n).start               # the window left open
        tail = slice(base, base + kv.shape[0] - n * r)
        st.kv[tail], st.gate[tail] = kv[n * r:], gate[n * r:]

    def decode(self, x: torch.Tensor, t: torch.Tensor, st: CompressorState, finish) -> None:
        """One token x [1, D] at position t [1]: its slot, then the entry of its window
        (row t // ratio), final once the window closes. Static shapes, and idempotent: run
        twice, it writes the same values (a CUDA graph's warm-up may run it before replay)."""
        r, d = self.ratio, self.out_dim
        if fused_cpu.ready(x, st.kv, self.ape):  # the slot write and the pooling in one op
            kv, gate = project(f32(x), (self.wkv, self.wgate), act_quant=False)
            pooled, j, pos = fused_cpu.compress_step(st.kv, st.gate, kv, gate, self.ape, t, r,
                                                     self.overlap)
            st.rows.put(j, finish(pooled, pos, self.norm))
            return
        kv, gate = self._project(x, t)
        st.kv.index_copy_(0, t % st.kv.shape[0], kv)
        st.gate.index_copy_(0, t % st.gate.shape[0], gate)
        j = t // r
        kw, gw = st.kv, st.gate  # HCA: the slots in position order
        if self.overlap:  # the previous window's slots, then its own: [2r, 2d] -> [2r, d]
            order = (self.order + (j + 1) * r) % (2 * r)
            kw, gw = kw[order], gw[order]
            kw = torch.where(self.first, kw[:, :d], kw[:, d:])
            gw = torch.where(self.first, gw[:, :d], gw[:, d:])
        fused = kernel("compressor.pool", x.device)
        if fused is not None:
            pooled = fused(kw.unsqueeze(0), gw.unsqueeze(0))
        else:  # pool_ref's softmax over the slots, per channel
            pooled = (kw * torch.softmax(gw, 0)).sum(0, keepdim=True)
        st.rows.put(j, finish(pooled, j * r, self.norm))


def _overlap(kv: torch.Tensor, gate: torch.Tensor, prev_kv: torch.Tensor,
             prev_gate: torch.Tensor):
    """[n, m, 2d] -> [n, 2m, d]: slots 0..m-1 = previous window's first half (`prev_*`
    [m, 2d] for the first: the state's; −inf gates before any), slots m..2m-1 = own window's
    second half."""
    d = kv.shape[-1] // 2
    prev_kv = torch.cat((prev_kv[:, :d].unsqueeze(0), kv[:-1, :, :d]))
    prev_gate = torch.cat((prev_gate[:, :d].unsqueeze(0), gate[:-1, :, :d]))
    return torch.cat((prev_kv, kv[..., d:]), 1), torch.cat((prev_gate, gate[..., d:]), 1)
