"""Lightning indexer scores over compressed keys, with causal visibility, then top-k.

  I(t, j) = Σ_h w_h(t) · ReLU(q_h(t) · K_j)   for j < limit(t), else −inf

Shapes: q [S, H, di]; keys [N, di] as floats (e4m3 included) or `KeysFp4(packed int8
[N, di/2], scale fp32 [N, di/32])` (MXFP4, low nibble = even channel); w [S, H] (scales folded
in); limit [S] int32
(visible entries, (t+1)//4 for CSA) or None = all. Scores [S, N] fp32. Top-k stays in PyTorch
(a stable sort, so ties break towards the lower index exactly as the twin does).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from engine import quant
from engine.kernels._triton import check, e2m1_tile, jit, pow2, tl


class KeysFp4(NamedTuple):
    packed: torch.Tensor  # [N, di/2] int8
    scale: torch.Tensor   # [N, di/32] float32 powers of two

    def dequant(self) -> torch.Tensor:
        return quant.unpack_fp4(self.packed) * self.scale.float().repeat_interleave(32, -1)


KEY_BLOCK = 256  # keys per block: [S·H, 256] fp32 scores stay in cache (a 512-query chunk, H=8)


def index_scores_ref(q: torch.Tensor, keys, w: torch.Tensor,
                     limit: torch.Tensor | None = None) -> torch.Tensor:
    """q [S, H, di], keys [N, di] (or KeysFp4), w [S, H] -> scores [S, N]. Blocks of keys: one
    GEMM [S·H, di]·[di, n] and the head sum as w [S, 1, H]·[S, H, n], so no [S, H, N] tensor
    is ever made (at 16K context a 512-token chunk's would be 67 MB per layer, passed 4 times)."""
    keys = keys.dequant() if isinstance(keys, KeysFp4) else keys
    sq, h, d = q.shape
    q2, keys, w3 = q.float().reshape(sq * h, d), keys.float(), w.float().unsqueeze(1)
    s = torch.empty(sq, keys.shape[0], device=q.device)
    for i in range(0, keys.shape[0], KEY_BLOCK):
        blk = torch.mm(q2, keys[i:i + KEY_BLOCK].t()).relu_().view(sq, h, -1)
        s[:, i:i + KEY_BLOCK] = torch.bmm(w3, blk).squeeze(1)
    if limit is not None:
        cols = torch.arange(s.shape[1], device=s.device)
        s = s.masked_fill(cols[None, :] >= limit[:, None], float("-inf"))
    return s


def topk_mask(scores: torch.Tensor, visible: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean [S, N]: the top-k visible entries per query (fewer when fewer are visible).
    Equal scores are common (ReLU makes many exactly 0; FP4 keys collide), so ties break
    towards the lower index, the same for a query whether it comes alone or in a chunk."""
    n = scores.shape[1]
    if n == 0:
        return visible
    scores = scores.masked_fill(~visible, float("-inf"))
    idx = torch.sort(scores, dim=-1, descending=True, stable=True).indices[:, : min(k, n)]
    sel = torch.zeros_like(visible).scatter_(1, idx, True)
    return sel & visible


@jit
def _scores_kernel(q_ptr, k_ptr, ks_ptr, w_ptr, lim_ptr, o_ptr, H, N, DI,
                   s_qs, s_qh, s_k, s_ks, s_ws, s_os,
                   FP4: tl.constexpr, HAS_LIMIT: tl.constexpr, BLOCK_H: tl.constexpr,
                   BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    # one program: query s × BLOCK_N keys; all heads at once
    s, nb = tl.program_id(0), tl.program_id(1)
    hs, ns = tl.arange(0, BLOCK_H), nb * BLOCK_N + tl.arange(0, BLOCK_N)
    hm, nm = hs < H, ns < N
    q = tl.load(q_ptr + s * s_qs + hs[:, None] * s_qh + tl.arange(0, BLOCK_D)[None, :],
                mask=hm[:, None] & (tl.arange(0, BLOCK_D)[None, :] < DI),
                other=0.0).to(tl.float32)
    if FP4:  # two e2m1 codes a byte, one power-of-two scale per 32 channels
        hd = tl.arange(0, BLOCK_D // 2)
        b = tl.load(k_ptr + ns[:, None] * s_k + hd[None, :],
                    mask=nm[:, None] & (hd[None, :] < DI // 2), other=0).to(tl.int32) & 255
        val = e2m1_tile(b, BLOCK_N, BLOCK_D)
        ds = tl.arange(0, BLOCK_D)
        sc = tl.load(ks_ptr + ns[:, None] * s_ks + ds[None, :] // 32,
                     mask=nm[:, None] & (ds[None, :] < DI), other=0.0)
        k = val * sc
    else:
        ds = tl.arange(0, BLOCK_D)
        k = tl.load(k_ptr + ns[:, None] * s_k + ds[None, :],
                    mask=nm[:, None] & (ds[None, :] < DI), other=0.0).to(tl.float32)
    w = tl.load(w_ptr + s * s_ws + hs, mask=hm, other=0.0).to(tl.float32)
    sc_ = tl.maximum(tl.dot(q, tl.trans(k)), 0.0) * w[:, None]   # [BH, BN]
    out = tl.sum(sc_, 0)
    if HAS_LIMIT:
        out = tl.where(ns < tl.load(lim_ptr + s), out, float("-inf"))
    tl.store(o_ptr + s * s_os + ns, out, mask=nm)


def index_scores(q: torch.Tensor, keys, w: torch.Tensor,
                 limit: torch.Tensor | None = None) -> torch.Tensor:
    """Launcher: same contract as the twin."""
    S, H, DI = q.shape
    fp4 = isinstance(keys, KeysFp4)
    n = keys.packed.shape[0] if fp4 else keys.shape[0]
    check(q.stride(-1) == 1 and w.shape == (S, H), f"indexer: q [S, H, di] contiguous rows and "
          f"w [S={S}, H={H}] needed, got w {tuple(w.shape)}")
    if fp4:
        check(keys.packed.dtype == torch.int8 and keys.packed.shape[1] * 2 == DI
              and DI % 32 == 0, f"indexer: FP4 keys must be int8 [N, {DI // 2}]")
        kt, kst = keys.packed.contiguous(), keys.scale.float().contiguous()
    else:
        check(keys.dim() == 2 and keys.shape[1] == DI, f"indexer: keys must be [N, {DI}]")
        kt = kst = keys.contiguous()
    lim = (limit.to(torch.int32).contiguous() if limit is not None
           else torch.zeros(1, dtype=torch.int32, device=q.device))
    out = torch.empty(S, n, dtype=torch.float32, device=q.device)
    if S == 0 or n == 0:
        return out
    w = w.float().contiguous()
    bn = 32
    _scores_kernel[(S, -(-n // bn))](q, kt, kst, w, lim, out, H, n, DI, q.stride(0), q.stride(1),
                                     kt.stride(0), kst.stride(0), w.stride(0), out.stride(0),
                                     FP4=fp4, HAS_LIMIT=limit is not None, BLOCK_H=pow2(H),
                                     BLOCK_N=bn, BLOCK_D=pow2(DI, 32))
    return out
