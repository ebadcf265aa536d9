"""Manifold-constrained hyper-connections: n_hc residual streams mixed around each sublayer.

Per token, with streams X [n, D] flattened to v [n·D]:
  mix = fn·v · rsqrt(mean(v²)+eps)          -> (2+n)·n numbers
  pre = sigmoid(...)+hc_eps; post = 2·sigmoid(...); comb = Sinkhorn(softmax rows)
  sublayer input u = Σ_j pre_j X_j;  X'_k = post_k·y + Σ_j comb[j,k]·X_j   (comb transposed)

The math lives in engine/kernels/mhc.py (fused kernels and their plain-PyTorch twins); these
entry points take the Triton kernels where they run, the fused C++ ops in an eager float32 CPU
step (engine/kernels/fused_cpu.py), else a few-op torch form of the same math (compiled steps).
"""

from __future__ import annotations

import torch

from engine.kernels import fused_cpu, registry
from engine.kernels.mhc import hc_mix, sinkhorn
from engine.kernels.scalars import f32, scalar
from engine.layers.norm import inv_rms
from engine.layers.ops import kernel


def hc_pre(x: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor,
           iters: int, hc_eps: float, norm_eps: float, sel: torch.Tensor | None = None):
    """x [S, n, D] -> (u [S, D], post [S, n], comb [S, n, n]). The Triton kernel when kernels
    run on x's device, else the few-op form below (`sel`: which of the 3 scales each of the
    (2+n)·n mixes takes, see `scale_index`)."""
    fused = kernel("mhc.hc_pre", x.device)
    if fused is not None or sel is None:
        return (fused or registry.get("mhc.hc_pre", x.device))(x, fn, base, scale, iters,
                                                               hc_eps, norm_eps)
    if fused_cpu.ready(x, fn, base, scale):
        return fused_cpu.hc_pre(x, fn, base, scale, iters, hc_eps, norm_eps)
    n = x.shape[1]
    v = f32(x.flatten(1))
    mix = torch.mm(v, fn.t()) * inv_rms(v, norm_eps)
    scales = scale.index_select(0, sel) if sel.device == scale.device else scale[sel]
    z = torch.addcmul(base, mix, scales)                           # [S, (2+n)·n]
    sig = torch.sigmoid(z[:, :2 * n])
    comb = _sinkhorn(z[:, 2 * n:].unflatten(-1, (n, n)), iters, hc_eps)
    pre = sig[:, :n] + scalar(hc_eps, sig)
    u = torch.bmm((pre if x.dtype == pre.dtype else pre.to(x.dtype)).unsqueeze(1), x)
    return u.squeeze(1), sig[:, n:] * scalar(2.0, sig), comb


def scale_index(n: int) -> torch.Tensor:
    """[(2+n)·n]: the scale each mix takes (pre: 0, post: 1, comb: 2)."""
    return torch.tensor([0] * n + [1] * n + [2] * n * n, device="cpu")


def hc_post(y: torch.Tensor, x: torch.Tensor, post: torch.Tensor,
            comb: torch.Tensor) -> torch.Tensor:
    """X'_k = post_k·y + Σ_j comb[j,k]·X_j.  y [S, D], x [S, n, D] -> [S, n, D]."""
    fused = kernel("mhc.hc_post", x.device)
    if fused is not None:
        return fused(y, x, post, comb)
    if fused_cpu.ready(y, x, post, comb):
        return fused_cpu.hc_post(y, x, post, comb)
    dt = x.dtype
    post, comb = (post, comb) if post.dtype == dt == comb.dtype else (post.to(dt), comb.to(dt))
    return torch.baddbmm(post.unsqueeze(-1) * y.unsqueeze(1), comb.transpose(1, 2), x)


def _sinkhorn(logits: torch.Tensor, iters: int, eps: float) -> torch.Tensor:
    """engine/kernels/mhc.py's `sinkhorn` (numpy rounds on the CPU), with the rounds in torch
    while torch.compile traces (numpy is not traceable): the same ops in the same order."""
    if not torch.compiler.is_compiling():
        return sinkhorn(logits, iters, eps)
    c = torch.softmax(logits, dim=-1) + eps
    c = c / (c.sum(-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        c = c / (c.sum(-1, keepdim=True) + eps)
        c = c / (c.sum(-2, keepdim=True) + eps)
    return c


def hc_head(x: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor,
            hc_eps: float, norm_eps: float) -> torch.Tensor:
    """Final collapse, no Sinkhorn: h = Σ_j (sigmoid(mix_j·scale + base_j) + eps)·X_j."""
    pre = torch.sigmoid(hc_mix(x, fn, norm_eps) * scale.float() + base.float()) + hc_eps
    return (pre.unsqueeze(-1) * x).sum(1).to(x.dtype)
