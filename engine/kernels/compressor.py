"""Compressor pooling: entry j = Σ_slots softmax_slots(gate)·kv, per channel, over the 8
(CSA: previous window's first half ∪ own window's second half) or 128 (HCA) slots of a window.
Prefill pools many windows at once, decode the one that just closed; the state bookkeeping
(open tails, the overlap) stays in engine/layers/compressor.py. The entries' RMSNorm, RoPE and
FP8 rounding follow in engine/kernels/cache_insert.py.

Shapes: kv, gate [n, m, d] (fp32, gate incl. ape, −inf = empty slot) -> pooled [n, d] fp32.
"""

from __future__ import annotations

import torch

from engine.kernels._triton import check, jit, pow2, tl


def pool_ref(kv: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """The twin: [n, m, d] × [n, m, d] -> [n, d]."""
    return (kv.float() * torch.softmax(gate.float(), dim=1)).sum(1)


@jit
def _pool_kernel(kv_ptr, g_ptr, o_ptr, M, D, s_kn, s_km, s_gn, s_gm, s_on,
                 BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    # one program: window j × BLOCK_D channels; online softmax over the slots
    j = tl.program_id(0)
    ds = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    dm = ds < D
    mx = tl.full([BLOCK_D], float("-inf"), tl.float32)
    den = tl.zeros([BLOCK_D], tl.float32)
    acc = tl.zeros([BLOCK_D], tl.float32)
    for m0 in range(0, M, BLOCK_M):
        ms = m0 + tl.arange(0, BLOCK_M)
        msk = (ms < M)[:, None] & dm[None, :]
        g = tl.load(g_ptr + j * s_gn + ms[:, None] * s_gm + ds[None, :], mask=msk,
                    other=float("-inf")).to(tl.float32)
        x = tl.load(kv_ptr + j * s_kn + ms[:, None] * s_km + ds[None, :], mask=msk,
                    other=0.0).to(tl.float32)
        new = tl.maximum(mx, tl.max(g, 0))
        safe = tl.where(new == float("-inf"), 0.0, new)  # no slot yet: keep exp() finite
        alpha = tl.exp(mx - safe)
        p = tl.exp(g - safe[None, :])
        den = den * alpha + tl.sum(p, 0)
        acc = acc * alpha + tl.sum(p * x, 0)
        mx = new
    tl.store(o_ptr + j * s_on + ds, acc / tl.where(dm, den, 1.0), mask=dm)


def pool(kv: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Launcher: same contract as the twin."""
    check(kv.dim() == 3 and kv.shape == gate.shape,
          f"compressor: kv and gate must both be [n, m, d], got {tuple(kv.shape)} and "
          f"{tuple(gate.shape)}")
    check(kv.stride(-1) == 1 and gate.stride(-1) == 1, "compressor: channels must be contiguous")
    n, m, d = kv.shape
    out = torch.empty(n, d, dtype=torch.float32, device=kv.device)
    if n == 0:
        return out
    bd = min(pow2(d), 128)
    _pool_kernel[(n, -(-d // bd))](kv, gate, out, m, d, kv.stride(0), kv.stride(1),
                                   gate.stride(0), gate.stride(1), out.stride(0),
                                   BLOCK_M=min(pow2(m, 8), 32), BLOCK_D=bd)
    return out
