"""Manifold-constrained hyper-connections: n_hc residual streams mixed around each sublayer.

Per token, with streams X [n, D] flattened to v [n·D]:
  mix = fn·v · rsqrt(mean(v²)+eps)          -> (2+n)·n numbers
  pre = sigmoid(...)+hc_eps; post = 2·sigmoid(...); comb = Sinkhorn(softmax rows)
  sublayer input u = Σ_j pre_j X_j;  X'_k = post_k·y + Σ_j comb[j,k]·X_j   (comb transposed)
"""

from __future__ import annotations

import torch


def hc_mix(x: torch.Tensor, fn: torch.Tensor, norm_eps: float) -> torch.Tensor:
    """x [S, n, D] -> mixes [S, m] = fn · RMS(flatten(x)), fp32."""
    v = x.flatten(1).float()
    v = v * torch.rsqrt(v.square().mean(-1, keepdim=True) + norm_eps)
    return v @ fn.float().t()


def sinkhorn(logits: torch.Tensor, iters: int, eps: float) -> torch.Tensor:
    """[S, n, n] -> comb: row softmax + eps, one column normalisation, then (iters-1) rounds of
    row then column normalisation. Not converged on purpose: match this order exactly."""
    c = torch.softmax(logits, dim=-1) + eps
    c = c / (c.sum(-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        c = c / (c.sum(-1, keepdim=True) + eps)
        c = c / (c.sum(-2, keepdim=True) + eps)
    return c


def hc_pre(x: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor,
           iters: int, hc_eps: float, norm_eps: float):
    """x [S, n, D] -> (u [S, D], post [S, n], comb [S, n, n])."""
    n = x.shape[1]
    mix = hc_mix(x, fn, norm_eps)
    base, scale = base.float(), scale.float()
    pre = torch.sigmoid(mix[:, :n] * scale[0] + base[:n]) + hc_eps
    post = 2 * torch.sigmoid(mix[:, n:2 * n] * scale[1] + base[n:2 * n])
    comb = sinkhorn((mix[:, 2 * n:] * scale[2] + base[2 * n:]).unflatten(-1, (n, n)), iters, hc_eps)
    u = (pre.unsqueeze(-1) * x).sum(1).to(x.dtype)
    return u, post, comb


def hc_post(y: torch.Tensor, x: torch.Tensor, post: torch.Tensor,
            comb: torch.Tensor) -> torch.Tensor:
    """X'_k = post_k·y + Σ_j comb[j,k]·X_j.  y [S, D], x [S, n, D] -> [S, n, D]."""
    dt = x.dtype
    return post.to(dt).unsqueeze(-1) * y.unsqueeze(1) + comb.to(dt).transpose(-1, -2) @ x


def hc_head(x: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor,
            hc_eps: float, norm_eps: float) -> torch.Tensor:
    """Final collapse, no Sinkhorn: h = Σ_j (sigmoid(mix_j·scale + base_j) + eps)·X_j."""
    pre = torch.sigmoid(hc_mix(x, fn, norm_eps) * scale.float() + base.float()) + hc_eps
    return (pre.unsqueeze(-1) * x).sum(1).to(x.dtype)
