"""Manifold-constrained hyper-connections: n_hc residual streams mixed around each sublayer.

Per token, with streams X [n, D] flattened to v [n·D]:
  mix = fn·v · rsqrt(mean(v²)+eps)          -> (2+n)·n numbers
  pre = sigmoid(...)+hc_eps; post = 2·sigmoid(...); comb = Sinkhorn(softmax rows)
  sublayer input u = Σ_j pre_j X_j;  X'_k = post_k·y + Σ_j comb[j,k]·X_j   (comb transposed)

The math lives in engine/kernels/mhc.py (fused kernels and their plain-PyTorch twins); these
entry points go through the kernel registry.
"""

from __future__ import annotations

import torch

from engine.kernels import registry
from engine.kernels.mhc import hc_mix, hc_post_ref, sinkhorn  # noqa: F401 - the spec's names


def hc_pre(x: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor,
           iters: int, hc_eps: float, norm_eps: float):
    """x [S, n, D] -> (u [S, D], post [S, n], comb [S, n, n])."""
    if torch.compiler.is_compiling():
        return _hc_pre_traced(x, fn, base, scale, iters, hc_eps, norm_eps)
    return registry.get("mhc.hc_pre", x.device)(x, fn, base, scale, iters, hc_eps, norm_eps)


def hc_post(y: torch.Tensor, x: torch.Tensor, post: torch.Tensor,
            comb: torch.Tensor) -> torch.Tensor:
    """X'_k = post_k·y + Σ_j comb[j,k]·X_j.  y [S, D], x [S, n, D] -> [S, n, D]."""
    if torch.compiler.is_compiling():
        return hc_post_ref(y, x, post, comb)
    return registry.get("mhc.hc_post", x.device)(y, x, post, comb)


def _hc_pre_traced(x, fn, base, scale, iters: int, hc_eps: float, norm_eps: float):
    """The twin (engine/kernels/mhc.py) with its Sinkhorn rounds in torch (its CPU numpy
    shortcut is not traceable): the same ops in the same order."""
    n = x.shape[1]
    mix = hc_mix(x, fn, norm_eps)
    base, scale = base.float(), scale.float()
    pre = torch.sigmoid(mix[:, :n] * scale[0] + base[:n]) + hc_eps
    post = 2 * torch.sigmoid(mix[:, n:2 * n] * scale[1] + base[n:2 * n])
    c = torch.softmax((mix[:, 2 * n:] * scale[2] + base[2 * n:]).unflatten(-1, (n, n)), -1)
    c = c + hc_eps
    c = c / (c.sum(-2, keepdim=True) + hc_eps)
    for _ in range(iters - 1):
        c = c / (c.sum(-1, keepdim=True) + hc_eps)
        c = c / (c.sum(-2, keepdim=True) + hc_eps)
    return (pre.unsqueeze(-1) * x).sum(1).to(x.dtype), post, c


def hc_head(x: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor,
            hc_eps: float, norm_eps: float) -> torch.Tensor:
    """Final collapse, no Sinkhorn: h = Σ_j (sigmoid(mix_j·scale + base_j) + eps)·X_j."""
    pre = torch.sigmoid(hc_mix(x, fn, norm_eps) * scale.float() + base.float()) + hc_eps
    return (pre.unsqueeze(-1) * x).sum(1).to(x.dtype)
