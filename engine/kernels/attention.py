"""Sparse attention with a per-head sink over an index set of K = V rows (window ∪ gathered
compressed rows for CSA, all visible compressed rows for HCA), one kernel for decode and prefill.

  o_h = Σ_i e^{s_i−M}·kv_i / (Σ_i e^{s_i−M} + e^{sink_h−M}),  s_i = q_h·kv_i·scale

Shapes: q [S, H, d]; rows [N, d] as plain floats, or the cache's storage
`KVFp8(nope e4m3 [N, d−r], scale fp32 [N, (d−r)/64], rope bf16 [N, r])`; idx [S, K] int32 row
numbers, −1 = none; sink [H]; out [S, H, d] in q's dtype. Accumulation is fp32.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from engine.kernels._triton import check, jit, pow2, tl
from engine.kernels.rope import apply_rope

NOPE_BLOCK = 64  # one FP8 scale per 64 nope channels (the release's KV block)


class KVFp8(NamedTuple):
    nope: torch.Tensor   # [N, d-r] float8_e4m3fn
    scale: torch.Tensor  # [N, (d-r)/64] float32 (powers of two)
    rope: torch.Tensor   # [N, r] bfloat16

    @property
    def block(self) -> int:
        """Channels per scale: 64, or all nope dims when fewer (tiny models)."""
        return self.nope.shape[1] // max(self.scale.shape[1], 1)

    def dequant(self) -> torch.Tensor:
        s = self.scale.float().repeat_interleave(self.block, -1)
        return torch.cat((self.nope.float() * s, self.rope.float()), -1)


def _dense(kv) -> torch.Tensor:
    return kv.dequant() if isinstance(kv, KVFp8) else kv


def sparse_attention_ref(q: torch.Tensor, kv, mask: torch.Tensor, sink: torch.Tensor,
                         scale: float, inv_rope: tuple | None = None) -> torch.Tensor:
    """The twin: q [S, H, d], kv [N, d] (or KVFp8), mask [S, N] bool, sink [H] -> [S, H, d].
    inv_rope = (pos [S], freqs [r/2]): rotate the output's rope dims back by −pos·f."""
    if inv_rope is not None:
        o = sparse_attention_ref(q, kv, mask, sink, scale)
        return apply_rope(o, inv_rope[0], inv_rope[1], inverse=True)
    kv = _dense(kv)
    s = torch.einsum("shd,nd->shn", q.float(), kv.float()) * scale
    s = s.masked_fill(~mask.unsqueeze(1), float("-inf"))
    sinks = sink.float().view(1, -1, 1).expand(s.shape[0], -1, 1)
    p = torch.softmax(torch.cat((s, sinks), -1), dim=-1)[..., :-1]
    return torch.einsum("shn,nd->shd", p, kv.float()).to(q.dtype)


def mask_to_index(mask: torch.Tensor) -> torch.Tensor:
    """[S, N] bool -> idx [S, K] int32 (K = most rows any query sees), ascending, −1 padded."""
    s, n = mask.shape
    key = torch.where(mask, torch.arange(n, device=mask.device), n)
    k = int(mask.sum(1).max()) if s and n else 0
    idx = key.sort(dim=1).values[:, :k]
    return torch.where(idx < n, idx, -1).to(torch.int32).contiguous()


def gather_attention_ref(q, kv, idx, sink, scale, inv_rope=None):
    """Twin of the index form: idx [S, K] -> the same mask."""
    n = _dense(kv).shape[0]
    mask = torch.zeros(q.shape[0], n + 1, dtype=torch.bool, device=q.device)
    mask.scatter_(1, torch.where(idx < 0, n, idx).long(), True)
    return sparse_attention_ref(q, kv, mask[:, :n], sink, scale, inv_rope)


@jit
def _attn_kernel(q_ptr, kv_ptr, sc_ptr, rope_ptr, idx_ptr, sink_ptr, o_ptr, pos_ptr, f_ptr,
                 scale, H, D, R, RO, K, s_qs, s_qh, s_kv, s_sc, s_rope, s_idx, s_os, s_oh,
                 FP8: tl.constexpr, INV_ROPE: tl.constexpr, BLOCK_H: tl.constexpr,
                 BLOCK_N: tl.constexpr,
                 BLOCK_D: tl.constexpr, QBLOCK: tl.constexpr):
    # one program: query s × BLOCK_H heads; K = V rows are shared by all heads (MQA-like)
    s = tl.program_id(0)
    hs = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    ds = tl.arange(0, BLOCK_D)
    hm, dm = hs < H, ds < D
    q = tl.load(q_ptr + s * s_qs + hs[:, None] * s_qh + ds[None, :],
                mask=hm[:, None] & dm[None, :], other=0.0).to(tl.float32)
    m = tl.load(sink_ptr + hs, mask=hm, other=0.0).to(tl.float32)  # the sink starts the max
    den = tl.full([BLOCK_H], 1.0, tl.float32)                         # e^{sink−m}
    acc = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
    for n0 in range(0, K, BLOCK_N):
        ns = n0 + tl.arange(0, BLOCK_N)
        row = tl.load(idx_ptr + s * s_idx + ns, mask=ns < K, other=-1)
        ok = row >= 0
        row = tl.where(ok, row, 0)
        if FP8:  # nope: e4m3 × per-64 scale; rope: bf16, read from their own planes
            nope = dm[None, :] & (ds[None, :] < D - R) & ok[:, None]
            x = tl.load(kv_ptr + row[:, None] * s_kv + ds[None, :], mask=nope, other=0.0)
            sc = tl.load(sc_ptr + row[:, None] * s_sc + ds[None, :] // QBLOCK, mask=nope,
                         other=0.0)
            rp = dm[None, :] & (ds[None, :] >= D - R) & ok[:, None]
            y = tl.load(rope_ptr + row[:, None] * s_rope + (ds[None, :] - (D - R)), mask=rp,
                        other=0.0)
            kv = tl.where(nope, x.to(tl.float32) * sc, y.to(tl.float32))
        else:
            kv = tl.load(kv_ptr + row[:, None] * s_kv + ds[None, :],
                         mask=ok[:, None] & dm[None, :], other=0.0).to(tl.float32)
        sc_ = tl.dot(q, tl.trans(kv)) * scale                       # [BH, BN]
        sc_ = tl.where(ok[None, :], sc_, float("-inf"))
        m_new = tl.maximum(m, tl.max(sc_, 1))
        alpha = tl.exp(m - m_new)
        p = tl.exp(sc_ - m_new[:, None])
        den = den * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p, kv)
        m = m_new
    o = acc / den[:, None]
    if INV_ROPE:  # rotate pairs (2i, 2i+1) of the last RO dims by −pos·f_i on the way out
        a, b = tl.split(tl.reshape(o, [BLOCK_H, BLOCK_D // 2, 2]))
        ps = tl.arange(0, BLOCK_D // 2)
        rot = (ps >= (D - RO) // 2) & (ps < D // 2)
        ang = tl.load(pos_ptr + s).to(tl.float32) * tl.load(f_ptr + ps - (D - RO) // 2,
                                                            mask=rot, other=0.0)
        c, sn = tl.cos(ang)[None, :], -tl.sin(ang)[None, :]
        a2 = tl.where(rot[None, :], a * c - b * sn, a)
        b2 = tl.where(rot[None, :], a * sn + b * c, b)
        o = tl.reshape(tl.join(a2, b2), [BLOCK_H, BLOCK_D])
    tl.store(o_ptr + s * s_os + hs[:, None] * s_oh + ds[None, :],
             o.to(o_ptr.dtype.element_ty), mask=hm[:, None] & dm[None, :])


def _planes(kv, D: int):
    """Checked kernel arguments for either row format: (nope|rows, scale, rope) tensors,
    their row strides, rope width r (0 = plain rows) and channels per scale."""
    if not isinstance(kv, KVFp8):
        check(kv.dim() == 2 and kv.shape[1] == D, f"attention: kv must be [N, {D}]")
        check(kv.stride(-1) == 1, "attention: kv rows must be contiguous")
        return (kv, kv, kv), (kv.stride(0), 0, 0), 0, NOPE_BLOCK
    r = kv.rope.shape[1]
    check(kv.nope.dtype == torch.float8_e4m3fn, "attention: nope plane must be e4m3")
    check(kv.nope.shape[1] + r == D and r > 0, f"attention: nope {tuple(kv.nope.shape)} + "
          f"rope {tuple(kv.rope.shape)} != d={D}")
    check(kv.block * kv.scale.shape[1] == kv.nope.shape[1],
          f"attention: {kv.scale.shape[1]} scales do not tile {kv.nope.shape[1]} nope dims")
    check(all(t.stride(-1) == 1 for t in kv), "attention: KV planes must be row-contiguous")
    sc = kv.scale.float()
    strides = (kv.nope.stride(0), sc.stride(0), kv.rope.stride(0))
    return (kv.nope, sc, kv.rope), strides, r, kv.block


def gather_attention(q: torch.Tensor, kv, idx: torch.Tensor, sink: torch.Tensor,
                     scale: float, inv_rope: tuple | None = None,
                     block_n: int = 16) -> torch.Tensor:
    """Launcher, index form: q [S, H, d], kv [N, d] or KVFp8, idx [S, K] int32 -> [S, H, d];
    inv_rope = (pos [S], freqs [r/2]) fuses the output's inverse RoPE."""
    S, H, D = q.shape
    check(q.stride(-1) == 1, "attention: q's last dim must be contiguous")
    check(idx.dtype == torch.int32 and idx.dim() == 2 and idx.shape[0] == S,
          f"attention: idx must be int32 [S={S}, K], got {idx.dtype} {tuple(idx.shape)}")
    idx = idx.contiguous()
    check(sink.shape == (H,), f"attention: sink must be [H={H}]")
    planes, strides, r, qblock = _planes(kv, D)
    o = torch.empty_like(q)
    if S == 0:
        return o
    pos, freqs = inv_rope if inv_rope is not None else (idx, sink)  # unused placeholders
    if inv_rope is not None:
        check(pos.shape == (S,) and 2 * freqs.numel() <= D,
              f"attention: inv_rope wants pos [S={S}] and at most d/2 frequencies")
        pos, freqs = pos.to(q.device).contiguous(), freqs.float().to(q.device).contiguous()
    bh = 16  # heads per program: the [16, d] fp32 accumulator already fills registers at d=512
    grid = (S, -(-H // bh))
    ro = 2 * freqs.numel() if inv_rope is not None else 0
    _attn_kernel[grid](q, *planes, idx, sink.float().contiguous(), o, pos, freqs,
                       scale, H, D, r, ro, idx.shape[1], q.stride(0), q.stride(1), *strides,
                       idx.stride(0), o.stride(0), o.stride(1), FP8=r > 0,
                       INV_ROPE=inv_rope is not None, BLOCK_H=bh, BLOCK_N=block_n,
                       BLOCK_D=pow2(D), QBLOCK=qblock)
    return o


def sparse_attention(q, kv, mask, sink, scale, inv_rope=None):
    """Launcher with the twin's signature: the mask [S, N] becomes an index set."""
    return gather_attention(q, kv, mask_to_index(mask), sink, scale, inv_rope)
