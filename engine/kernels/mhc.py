"""Manifold-constrained hyper-connections around a sublayer, two fused kernels.

hc_pre, per token, streams X [n, D] flattened to v [n·D] (16384 at Flash):
  mix = fn·v · rsqrt(mean(v²)+eps)                (fn [(2+n)·n, n·D]: 24 × 16384)
  pre = sigmoid(mix[:n]·s0 + b) + hc_eps;  post = 2·sigmoid(mix[n:2n]·s1 + b)
  comb = Sinkhorn(mix[2n:]·s2 + b as [n, n]);   u = Σ_j pre_j X_j
hc_post:  X'_k = post_k·y + Σ_j comb[j, k]·X_j  (comb transposed)

Shapes: x [S, n, D]; fn [(2+n)n, nD]; base [(2+n)n]; scale [3] -> u [S, D] (x's dtype),
post [S, n] fp32, comb [S, n, n] fp32.  hc_post: y [S, D] -> [S, n, D] in x's dtype.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.kernels._triton import check, jit, pow2, tl
from engine.kernels.scalars import scalar


def hc_mix(x: torch.Tensor, fn: torch.Tensor, norm_eps: float) -> torch.Tensor:
    """x [S, n, D] -> mixes [S, m] = fn · RMS(flatten(x)), fp32."""
    v = x.flatten(1).float()
    v = v * torch.rsqrt(v.square().mean(-1, keepdim=True) + norm_eps)
    return v @ fn.float().t()


def sinkhorn(logits: torch.Tensor, iters: int, eps: float) -> torch.Tensor:
    """[S, n, n] -> comb: row softmax + eps, one column normalisation, then (iters-1) rounds of
    row then column normalisation. Not converged on purpose: match this order exactly."""
    c = torch.softmax(logits, dim=-1)
    c = c + scalar(eps, c)
    if c.device.type == "cpu" and c.dtype == torch.float32:
        return torch.from_numpy(_sinkhorn_np(c.numpy(), iters, np.float32(eps)))
    c = c / (c.sum(-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        c = c / (c.sum(-1, keepdim=True) + eps)
        c = c / (c.sum(-2, keepdim=True) + eps)
    return c


def _sinkhorn_np(c: np.ndarray, iters: int, eps: np.float32) -> np.ndarray:
    """The same rounds in numpy: ~3x less per-op overhead on the tiny [S, 4, 4] matrices a
    decode step has (40 ops per site, 2 sites per block); float32 throughout, same order.
    `np.add.reduce` is what `ndarray.sum` calls, minus its Python wrapper; in place after the
    first (fresh) quotient."""
    add, div = np.add.reduce, np.divide
    c = c / (add(c, axis=-2, keepdims=True) + eps)
    for _ in range(iters - 1):
        s = add(c, axis=-1, keepdims=True)
        s += eps
        div(c, s, out=c)
        s = add(c, axis=-2, keepdims=True)
        s += eps
        div(c, s, out=c)
    return c


def hc_pre_ref(x: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor,
               iters: int, hc_eps: float, norm_eps: float):
    """The twin: x [S, n, D] -> (u [S, D], post [S, n], comb [S, n, n])."""
    n = x.shape[1]
    mix = hc_mix(x, fn, norm_eps)
    base, scale = base.float(), scale.float()
    pre = torch.sigmoid(mix[:, :n] * scale[0] + base[:n]) + hc_eps
    post = 2 * torch.sigmoid(mix[:, n:2 * n] * scale[1] + base[n:2 * n])
    comb = sinkhorn((mix[:, 2 * n:] * scale[2] + base[2 * n:]).unflatten(-1, (n, n)), iters, hc_eps)
    u = (pre.unsqueeze(-1) * x).sum(1).to(x.dtype)
    return u, post, comb


def hc_post_ref(y: torch.Tensor, x: torch.Tensor, post: torch.Tensor,
                comb: torch.Tensor) -> torch.Tensor:
    """X'_k = post_k·y + Σ_j comb[j,k]·X_j.  y [S, D], x [S, n, D] -> [S, n, D]."""
    dt = x.dtype
    return post.to(dt).unsqueeze(-1) * y.unsqueeze(1) + comb.to(dt).transpose(-1, -2) @ x


@jit
def _pre_kernel(x_ptr, fn_ptr, b_ptr, sc_ptr, u_ptr, post_ptr, comb_ptr, N, D, hc_eps, norm_eps,
                s_xs, s_us, ITERS: tl.constexpr, NP: tl.constexpr, BLOCK_K: tl.constexpr):
    # one program per token: the 24-row projection, sigmoids, Sinkhorn, then Σ_j pre_j X_j
    s = tl.program_id(0)
    K = N * D
    i, j = tl.arange(0, NP), tl.arange(0, NP)
    cij = (i[:, None] * N + j[None, :]).reshape(NP * NP)      # comb row within its third
    cm = ((i[:, None] < N) & (j[None, :] < N)).reshape(NP * NP)
    acc_pre = tl.zeros([NP], tl.float32)
    acc_post = tl.zeros([NP], tl.float32)
    acc_comb = tl.zeros([NP * NP], tl.float32)
    ssq = tl.zeros([BLOCK_K], tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        v = tl.load(x_ptr + s * s_xs + ks, mask=ks < K, other=0.0).to(tl.float32)
        ssq += v * v
        km = ks[None, :] < K
        f = tl.load(fn_ptr + i[:, None] * K + ks[None, :], mask=(i[:, None] < N) & km, other=0.0)
        acc_pre += tl.sum(f * v[None, :], 1)
        f = tl.load(fn_ptr + (N + i[:, None]) * K + ks[None, :], mask=(i[:, None] < N) & km,
                    other=0.0)
        acc_post += tl.sum(f * v[None, :], 1)
        f = tl.load(fn_ptr + (2 * N + cij[:, None]) * K + ks[None, :], mask=cm[:, None] & km,
                    other=0.0)
        acc_comb += tl.sum(f * v[None, :], 1)
    r = tl.rsqrt(tl.sum(ssq, 0) / K + norm_eps)
    s0, s1, s2 = tl.load(sc_ptr), tl.load(sc_ptr + 1), tl.load(sc_ptr + 2)
    pre = tl.sigmoid(acc_pre * r * s0 + tl.load(b_ptr + i, mask=i < N, other=0.0)) + hc_eps
    post = 2 * tl.sigmoid(acc_post * r * s1 + tl.load(b_ptr + N + i, mask=i < N, other=0.0))
    lg = acc_comb * r * s2 + tl.load(b_ptr + 2 * N + cij, mask=cm, other=0.0)
    lg = tl.where(cm, lg, float("-inf")).reshape(NP, NP)
    valid = (i[:, None] < N) & (j[None, :] < N)
    c = tl.exp(lg - tl.where(i < N, tl.max(lg, 1), 0.0)[:, None])  # padded rows: all 0
    c = tl.where(valid, c / tl.where(i < N, tl.sum(c, 1), 1.0)[:, None] + hc_eps, 0.0)
    c = c / (tl.sum(c, 0)[None, :] + hc_eps)                          # columns
    for _ in range(ITERS - 1):
        c = c / (tl.sum(c, 1)[:, None] + hc_eps)
        c = c / (tl.sum(c, 0)[None, :] + hc_eps)
    tl.store(post_ptr + s * N + i, post, mask=i < N)
    tl.store(comb_ptr + s * N * N + i[:, None] * N + j[None, :], c, mask=valid)
    for d0 in range(0, D, BLOCK_K):
        ds = d0 + tl.arange(0, BLOCK_K)
        xm = (i[:, None] < N) & (ds[None, :] < D)
        x = tl.load(x_ptr + s * s_xs + i[:, None] * D + ds[None, :], mask=xm,
                    other=0.0).to(tl.float32)
        u = tl.sum(tl.where(xm, pre[:, None] * x, 0.0), 0)
        tl.store(u_ptr + s * s_us + ds, u.to(u_ptr.dtype.element_ty), mask=ds < D)


def hc_pre(x, fn, base, scale, iters: int, hc_eps: float, norm_eps: float):
    """Launcher: same contract as the twin."""
    S, n, D = x.shape
    check(fn.shape == ((2 + n) * n, n * D) and base.shape == ((2 + n) * n,),
          f"mhc: fn must be [{(2 + n) * n}, {n * D}] and base [{(2 + n) * n}], got "
          f"{tuple(fn.shape)} and {tuple(base.shape)}")
    x = x.contiguous()
    u = torch.empty(S, D, dtype=x.dtype, device=x.device)
    post = torch.empty(S, n, dtype=torch.float32, device=x.device)
    comb = torch.empty(S, n, n, dtype=torch.float32, device=x.device)
    if S == 0:
        return u, post, comb
    _pre_kernel[(S,)](x, fn.float().contiguous(), base.float().contiguous(),
                      scale.float().contiguous(), u, post, comb, n, D, hc_eps, norm_eps,
                      x.stride(0), u.stride(0), ITERS=iters, NP=pow2(n, 2), BLOCK_K=256)
    return u, post, comb


@jit
def _post_kernel(y_ptr, x_ptr, post_ptr, comb_ptr, o_ptr, N, D, s_ys, s_xs, s_os,
                 NP: tl.constexpr, BLOCK_D: tl.constexpr):
    # one program: token s × BLOCK_D channels of all n output streams
    s = tl.program_id(0)
    ds = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    j = tl.arange(0, NP)
    jm, dm = j < N, ds < D
    x = tl.load(x_ptr + s * s_xs + j[:, None] * D + ds[None, :], mask=jm[:, None] & dm[None, :],
                other=0.0).to(tl.float32)                                  # [j, d]
    cm = tl.load(comb_ptr + s * N * N + j[:, None] * N + j[None, :],
                 mask=jm[:, None] & jm[None, :], other=0.0)                # [j, k]
    y = tl.load(y_ptr + s * s_ys + ds, mask=dm, other=0.0).to(tl.float32)
    p = tl.load(post_ptr + s * N + j, mask=jm, other=0.0)                  # [k]
    mixed = tl.sum(cm[:, :, None] * x[:, None, :], 0)                      # [k, d]
    out = p[:, None] * y[None, :] + mixed
    tl.store(o_ptr + s * s_os + j[:, None] * D + ds[None, :], out.to(o_ptr.dtype.element_ty),
             mask=jm[:, None] & dm[None, :])


def hc_post(y: torch.Tensor, x: torch.Tensor, post: torch.Tensor,
            comb: torch.Tensor) -> torch.Tensor:
    """Launcher: same contract as the twin."""
    S, n, D = x.shape
    check(y.shape == (S, D) and post.shape == (S, n) and comb.shape == (S, n, n),
          f"mhc: hc_post wants y [{S}, {D}], post [{S}, {n}], comb [{S}, {n}, {n}]")
    x, y = x.contiguous(), y.contiguous()
    out = torch.empty_like(x)
    if S == 0:
        return out
    bd = min(pow2(D), 128)
    _post_kernel[(S, -(-D // bd))](y, x, post.float().contiguous(), comb.float().contiguous(),
                                   out, n, D, y.stride(0), x.stride(0), out.stride(0),
                                   NP=pow2(n, 2), BLOCK_D=bd)
    return out
