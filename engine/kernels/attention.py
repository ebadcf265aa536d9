"""Sparse attention with a per-head sink over an index set of K = V rows (window ∪ gathered
compressed rows for CSA, all visible compressed rows for HCA), one kernel for decode and prefill.

  o_h = Σ_i e^{s_i−M}·kv_i / (Σ_i e^{s_i−M} + e^{sink_h−M}),  s_i = q_h·kv_i·scale

Shapes: q [S, H, d]; rows [N, d] as plain floats, or the cache's storage
`KVFp8(nope e4m3 [N, d−r], scale fp32 [N, (d−r)/64], rope bf16 [N, r])`; idx [S, K] int32 row
numbers, −1 = none; sink [H]; out [S, H, d] in q's dtype. Accumulation is fp32.
Kernels: _qk_kernel (scores to a scratch), _attn_kernel (online softmax and p·V), and, when a
query's rows are split across programs (decode: flash decoding), _combine_kernel.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from engine.kernels._triton import (
    Config,
    check,
    helper,
    interpreting,
    jit,
    pow2,
    target_cc,
    tl,
    tuned,
)
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


# Two passes over a query's gathered rows, both in tiles of BLOCK_H heads × BLOCK_N rows with all
# d channels (K = V rows are shared by every head, MQA-like): _qk_kernel writes the scores
# q·kv·scale [S, H, K] (fp32, to a scratch), _attn_kernel reads them back for the softmax and
# p·V. One fused loop does not fit an SM at d = 512: its QK dot (k = 512) holds ~220 registers
# of operand state a thread, the p·V accumulator [64 heads, 512] another 128 (measured with
# `bench/kernels.py --compile-only`). The nope channels sit in a [BN, NB blocks, QBP] tile (one
# fp8 scale a block, applied in registers), the rope channels in their own [BN, RP] tile; the
# Flash shapes give [BN, 8, 64] (448 real) + [BN, 64]. Compiled, the dots take bf16 operands
# when q is bf16 (fp8 × power-of-two scale and bf16 rope rows are exact in bf16; p is rounded
# to bf16 as in any flash attention) and accumulate in fp32. Hopper: 64 heads = one wgmma M.
QK_CONFIGS = (
    Config(dict(BLOCK_H=64, BLOCK_N=16), warps=8, stages=2, cc=(90, 1000)),
    Config(dict(BLOCK_H=64, BLOCK_N=16), warps=4, stages=3, cc=(90, 1000)),
    Config(dict(BLOCK_H=16, BLOCK_N=32), warps=4, stages=2, cc=(0, 90)),
    Config(dict(BLOCK_H=16, BLOCK_N=16), warps=4, stages=3, cc=(0, 90)),
)
PV_CONFIGS = (
    Config(dict(BLOCK_H=64, BLOCK_N=16), warps=8, stages=2, cc=(90, 1000)),
    Config(dict(BLOCK_H=64, BLOCK_N=32), warps=8, stages=2, cc=(90, 1000)),
    Config(dict(BLOCK_H=16, BLOCK_N=16), warps=4, stages=3, cc=(0, 90)),
    Config(dict(BLOCK_H=16, BLOCK_N=32), warps=8, stages=2, cc=(0, 90)),
)
SCORES_BYTES = 1 << 28  # scratch for one launch's scores; longer prefills go in query chunks


@helper
def _kv_tile(kv_ptr, sc_ptr, rope_ptr, row, ok, s_kv, s_sc, s_rope, D, R, FP8: tl.constexpr,
             NB: tl.constexpr, QBP: tl.constexpr, RP: tl.constexpr, BLOCK_N: tl.constexpr):
    """Rows `row` [BN] -> nope [BN, NB·QBP] (channel = column; the scale of block b covers
    columns b·QBP ...) and rope [BN, RP] (channel D − R + column), fp32, zero where masked."""
    b, c = tl.arange(0, NB), tl.arange(0, QBP)
    ch = b[None, :, None] * QBP + c[None, None, :]                    # [1, NB, QBP]
    m3 = ok[:, None, None] & (ch < D - R)
    x = tl.load(kv_ptr + row[:, None, None] * s_kv + ch, mask=m3, other=0.0).to(tl.float32)
    if FP8:  # one power-of-two scale per nope block
        x *= tl.load(sc_ptr + row[:, None] * s_sc + b[None, :],
                     mask=ok[:, None] & (b[None, :] * QBP < D - R), other=0.0)[:, :, None]
    rp = tl.arange(0, RP)
    rm = ok[:, None] & (rp[None, :] < R)
    if FP8:
        y = tl.load(rope_ptr + row[:, None] * s_rope + rp[None, :], mask=rm, other=0.0)
    else:
        y = tl.load(kv_ptr + row[:, None] * s_kv + (D - R) + rp[None, :], mask=rm, other=0.0)
    return tl.reshape(x, [BLOCK_N, NB * QBP]), y.to(tl.float32)


@helper
def _rotate_back(o, pos, f_ptr, p0, lo, hi, ROWS: tl.constexpr, COLS: tl.constexpr):
    """Rotate the pairs (2i, 2i+1) of o [ROWS, COLS] whose channel lies in [lo, hi) by −pos·f,
    f indexed from lo; p0 = the first pair's index (the tile's first channel / 2)."""
    a, b = tl.split(tl.reshape(o, [ROWS, COLS // 2, 2]))
    ps = p0 + tl.arange(0, COLS // 2)
    rot = (ps >= lo // 2) & (ps < hi // 2)
    ang = pos * tl.load(f_ptr + ps - lo // 2, mask=rot, other=0.0)
    c, sn = tl.cos(ang)[None, :], -tl.sin(ang)[None, :]
    a2 = tl.where(rot[None, :], a * c - b * sn, a)
    b2 = tl.where(rot[None, :], a * sn + b * c, b)
    return tl.reshape(tl.join(a2, b2), [ROWS, COLS])


@helper
def _q_tiles(q_ptr, s, hs, hm, s_qs, s_qh, D, R, DOT_BF16: tl.constexpr, NB: tl.constexpr,
             QBP: tl.constexpr, RP: tl.constexpr):
    """q[s, hs] -> nope [BH, NB·QBP], rope [BH, RP] as the dots take them."""
    ncol, rcol = tl.arange(0, NB * QBP), tl.arange(0, RP)
    qp = q_ptr + s * s_qs + hs[:, None] * s_qh
    qn = tl.load(qp + ncol[None, :], mask=hm[:, None] & (ncol < D - R)[None, :], other=0.0)
    qr = tl.load(qp + (D - R) + rcol[None, :], mask=hm[:, None] & (rcol < R)[None, :], other=0.0)
    if DOT_BF16:
        qn, qr = qn.to(tl.bfloat16), qr.to(tl.bfloat16)
    else:
        qn, qr = qn.to(tl.float32), qr.to(tl.float32)
    return qn, qr


@tuned(QK_CONFIGS, key=("D", "R", "SPLIT"))
def _qk_kernel(q_ptr, kv_ptr, sc_ptr, rope_ptr, idx_ptr, s_ptr, scale, H, D, R, K, CH,
               s_qs, s_qh, s_kv, s_sc, s_rope, s_idx, FP8: tl.constexpr, SPLIT: tl.constexpr,
               DOT_BF16: tl.constexpr, NB: tl.constexpr, QBP: tl.constexpr, RP: tl.constexpr,
               BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr):
    # one program: query s × BLOCK_H heads × rows [j·CH, (j+1)·CH) of its index set ->
    # scores[s, h, i] = q_h·kv_idx[s, i]·scale (SPLIT only keys the tuning: decode vs prefill)
    s, j = tl.program_id(0), tl.program_id(2)
    hs = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    hm = hs < H
    qn, qr = _q_tiles(q_ptr, s, hs, hm, s_qs, s_qh, D, R, DOT_BF16, NB, QBP, RP)
    hi = tl.minimum(K, (j + 1) * CH)
    for n0 in range(j * CH, hi, BLOCK_N):
        ns = n0 + tl.arange(0, BLOCK_N)
        row = tl.load(idx_ptr + s * s_idx + ns, mask=ns < hi, other=-1)
        ok = row >= 0
        kvn, kvr = _kv_tile(kv_ptr, sc_ptr, rope_ptr, tl.where(ok, row, 0), ok, s_kv, s_sc,
                            s_rope, D, R, FP8, NB, QBP, RP, BLOCK_N)
        if DOT_BF16:
            kvn, kvr = kvn.to(tl.bfloat16), kvr.to(tl.bfloat16)
        sc = tl.dot(qr, tl.trans(kvr), tl.dot(qn, tl.trans(kvn))) * scale   # [BH, BN]
        tl.store(s_ptr + (s * H + hs[:, None]) * K + ns[None, :], sc,
                 mask=hm[:, None] & (ns < hi)[None, :])


@tuned(PV_CONFIGS, key=("D", "R", "SPLIT"))
def _attn_kernel(s_ptr, kv_ptr, sc_ptr, rope_ptr, idx_ptr, sink_ptr, o_ptr, ml_ptr, pos_ptr,
                 f_ptr, H, D, R, RO, K, CH, s_kv, s_sc, s_rope, s_idx, s_os, s_oh,
                 FP8: tl.constexpr, INV_ROPE: tl.constexpr, SPLIT: tl.constexpr,
                 DOT_BF16: tl.constexpr, NB: tl.constexpr, QBP: tl.constexpr,
                 RP: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr):
    # one program: query s × BLOCK_H heads × rows [j·CH, (j+1)·CH): online softmax over the
    # scores _qk_kernel wrote, then p·V. SPLIT: write the unnormalised partial (acc, running
    # max, denominator) for _combine_kernel; else the sink joins here and the output is final.
    s, j = tl.program_id(0), tl.program_id(2)
    hs = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    hm = hs < H
    if SPLIT:
        m = tl.full([BLOCK_H], -1.0e30, tl.float32)  # finite: exp(m − m_new) = 1 at first
        den = tl.zeros([BLOCK_H], tl.float32)
    else:  # the sink starts the max: den = e^{sink − m} = 1
        m = tl.load(sink_ptr + hs, mask=hm, other=0.0).to(tl.float32)
        den = tl.full([BLOCK_H], 1.0, tl.float32)
    accn = tl.zeros([BLOCK_H, NB * QBP], tl.float32)
    accr = tl.zeros([BLOCK_H, RP], tl.float32)
    hi = tl.minimum(K, (j + 1) * CH)
    for n0 in range(j * CH, hi, BLOCK_N):
        ns = n0 + tl.arange(0, BLOCK_N)
        row = tl.load(idx_ptr + s * s_idx + ns, mask=ns < hi, other=-1)
        ok = row >= 0
        kvn, kvr = _kv_tile(kv_ptr, sc_ptr, rope_ptr, tl.where(ok, row, 0), ok, s_kv, s_sc,
                            s_rope, D, R, FP8, NB, QBP, RP, BLOCK_N)
        if DOT_BF16:
            kvn, kvr = kvn.to(tl.bfloat16), kvr.to(tl.bfloat16)
        sc = tl.load(s_ptr + (s * H + hs[:, None]) * K + ns[None, :],
                     mask=hm[:, None] & ok[None, :], other=float("-inf"))   # [BH, BN]
        m_new = tl.maximum(m, tl.max(sc, 1))
        alpha = tl.exp(m - m_new)
        p = tl.exp(sc - m_new[:, None])
        den = den * alpha + tl.sum(p, 1)
        p = p.to(kvn.dtype)
        accn = tl.dot(p, kvn, accn * alpha[:, None])
        accr = tl.dot(p, kvr, accr * alpha[:, None])
        m = m_new
    orow = s * tl.num_programs(2) + j
    if SPLIT:
        tl.store(ml_ptr + (2 * orow * H) + hs, m, mask=hm)
        tl.store(ml_ptr + (2 * orow + 1) * H + hs, den, mask=hm)
    else:
        accn, accr = accn / den[:, None], accr / den[:, None]
        if INV_ROPE:
            accr = _rotate_back(accr, tl.load(pos_ptr + s).to(tl.float32), f_ptr, 0, R - RO, R,
                                BLOCK_H, RP)
    ncol, rcol = tl.arange(0, NB * QBP), tl.arange(0, RP)
    op = o_ptr + orow * s_os + hs[:, None] * s_oh
    tl.store(op + ncol[None, :], accn.to(o_ptr.dtype.element_ty),
             mask=hm[:, None] & (ncol < D - R)[None, :])
    tl.store(op + (D - R) + rcol[None, :], accr.to(o_ptr.dtype.element_ty),
             mask=hm[:, None] & (rcol < R)[None, :])


@jit
def _combine_kernel(part_ptr, ml_ptr, sink_ptr, o_ptr, pos_ptr, f_ptr, H, D, RO, NSPLIT,
                    s_os, s_oh, INV_ROPE: tl.constexpr, BLOCK_H: tl.constexpr,
                    BLOCK_D: tl.constexpr):
    # one program: query s × BLOCK_H heads × BLOCK_D channels; merges the NSPLIT partials
    #   o = Σ_j e^{m_j−M}·acc_j / (e^{sink−M} + Σ_j e^{m_j−M}·den_j),  M = max(sink, m_j)
    s = tl.program_id(0)
    hs = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    ds = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
    hm, dm = hs < H, ds < D
    sink = tl.load(sink_ptr + hs, mask=hm, other=0.0).to(tl.float32)
    big = sink
    for j in range(NSPLIT):
        big = tl.maximum(big, tl.load(ml_ptr + 2 * (s * NSPLIT + j) * H + hs, mask=hm, other=0.0))
    den = tl.exp(sink - big)
    acc = tl.zeros([BLOCK_H, BLOCK_D], tl.float32)
    for j in range(NSPLIT):
        r = s * NSPLIT + j
        w = tl.exp(tl.load(ml_ptr + 2 * r * H + hs, mask=hm, other=0.0) - big)
        den += w * tl.load(ml_ptr + (2 * r + 1) * H + hs, mask=hm, other=0.0)
        acc += w[:, None] * tl.load(part_ptr + (r * H + hs[:, None]) * D + ds[None, :],
                                    mask=hm[:, None] & dm[None, :], other=0.0)
    o = acc / den[:, None]
    if INV_ROPE:
        o = _rotate_back(o, tl.load(pos_ptr + s).to(tl.float32), f_ptr,
                         tl.program_id(2) * BLOCK_D // 2, D - RO, D, BLOCK_H, BLOCK_D)
    tl.store(o_ptr + s * s_os + hs[:, None] * s_oh + ds[None, :], o.to(o_ptr.dtype.element_ty),
             mask=hm[:, None] & dm[None, :])


def _planes(kv, D: int, ro: int):
    """Checked kernel arguments for either row format: (nope|rows, scale, rope) tensors, their
    row strides, the rope width R (its own plane, or for plain rows the last `ro` channels)
    and channels per scale."""
    if not isinstance(kv, KVFp8):
        check(kv.dim() == 2 and kv.shape[1] == D, f"attention: kv must be [N, {D}]")
        check(kv.stride(-1) == 1, "attention: kv rows must be contiguous")
        return (kv, kv, kv), (kv.stride(0), 0, 0), ro, max(D - ro, 1)
    r = kv.rope.shape[1]
    check(kv.nope.dtype == torch.float8_e4m3fn, "attention: nope plane must be e4m3")
    check(kv.nope.shape[1] + r == D and r > 0, f"attention: nope {tuple(kv.nope.shape)} + "
          f"rope {tuple(kv.rope.shape)} != d={D}")
    check(kv.block * kv.scale.shape[1] == kv.nope.shape[1],
          f"attention: {kv.scale.shape[1]} scales do not tile {kv.nope.shape[1]} nope dims")
    check(all(t.stride(-1) == 1 for t in kv), "attention: KV planes must be row-contiguous")
    check(kv.block & (kv.block - 1) == 0 or kv.scale.shape[1] == 1,
          f"attention: {kv.block}-channel scale blocks: a power of two, or one block")
    check(ro <= r, f"attention: inverse RoPE over {ro} dims, but the rope plane has {r}")
    sc = kv.scale.float()
    return (kv.nope, sc, kv.rope), (kv.nope.stride(0), sc.stride(0), kv.rope.stride(0)), r, \
        kv.block


SPLIT_ROWS = 32  # a split's rows: a multiple of every config's BLOCK_N


def split_rows(S: int, K: int, sms: int) -> int:
    """Rows per program along the index set: all K when the queries already fill the GPU
    (prefill), else about one program per SM (flash decoding: a decode step is otherwise one
    program per head block, walking all K rows alone); _combine_kernel merges them."""
    if S >= sms or K <= 2 * SPLIT_ROWS:
        return max(K, 1)
    n = min(-(-sms // S), -(-K // SPLIT_ROWS))
    return -(-K // n // SPLIT_ROWS) * SPLIT_ROWS if n > 1 else K


def _sms(q: torch.Tensor) -> int:
    return torch.cuda.get_device_properties(q.device).multi_processor_count if q.is_cuda else 132


def gather_attention(q: torch.Tensor, kv, idx: torch.Tensor, sink: torch.Tensor,
                     scale: float, inv_rope: tuple | None = None,
                     split: int | None = None) -> torch.Tensor:
    """Launcher, index form: q [S, H, d], kv [N, d] or KVFp8, idx [S, K] int32 -> [S, H, d];
    inv_rope = (pos [S], freqs [r/2]) fuses the output's inverse RoPE. `split`: rows per
    program (tests; default `split_rows`)."""
    S, H, D = q.shape
    check(q.stride(-1) == 1, "attention: q's last dim must be contiguous")
    check(idx.dtype == torch.int32 and idx.dim() == 2 and idx.shape[0] == S,
          f"attention: idx must be int32 [S={S}, K], got {idx.dtype} {tuple(idx.shape)}")
    idx = idx.contiguous()
    check(sink.shape == (H,), f"attention: sink must be [H={H}]")
    if isinstance(kv, KVFp8) and (target_cc() or 89) < 89:  # no e4m3 in Triton before sm_89
        kv = _fp8_unsupported(kv, q.dtype)
    pos, freqs = inv_rope if inv_rope is not None else (idx, sink)  # unused placeholders
    ro = 2 * freqs.numel() if inv_rope is not None else 0
    check(ro <= D, "attention: inv_rope wants at most d/2 frequencies")
    planes, strides, r, qblock = _planes(kv, D, ro)
    o = torch.empty_like(q)
    if S == 0:
        return o
    if inv_rope is not None:
        check(pos.shape == (S,), f"attention: inv_rope wants pos [S={S}]")
        pos, freqs = pos.to(q.device).contiguous(), freqs.float().to(q.device).contiguous()
    K, fp8 = idx.shape[1], isinstance(kv, KVFp8)
    bf16 = (q.dtype == torch.bfloat16 and (fp8 or kv.dtype == torch.bfloat16)
            and not interpreting())
    consts = dict(FP8=fp8, DOT_BF16=bf16, NB=pow2(-(-(D - r) // qblock), 1),
                  QBP=pow2(qblock, 1), RP=pow2(r))
    ch = split or split_rows(S, K, _sms(q))
    step = max(1, min(S, SCORES_BYTES // (4 * H * max(K, 1))))
    for s0 in range(0, S, step):  # query chunks: the scores scratch stays bounded
        s1 = min(S, s0 + step)
        _launch(q[s0:s1], planes, strides, idx[s0:s1], sink.float().contiguous(), o[s0:s1],
                pos[s0:s1] if inv_rope is not None else pos, freqs, scale, r, ro, ch, consts)
    return o


def _launch(q, planes, strides, idx, sink, o, pos, freqs, scale, r, ro, ch, consts):
    """Both passes (and the merge of splits) for one chunk of queries."""
    S, H, D = q.shape
    K = idx.shape[1]
    nsplit = max(-(-K // ch), 1)
    grid = lambda m: (S, -(-H // m["BLOCK_H"]), nsplit)  # noqa: E731
    scores = torch.empty(S, H, K, dtype=torch.float32, device=q.device)
    _qk_kernel[grid](q, *planes, idx, scores, scale, H, D, r, K, ch, q.stride(0), q.stride(1),
                     *strides, idx.stride(0), SPLIT=nsplit > 1, **consts)
    part = torch.empty(S * nsplit, H, D, dtype=torch.float32, device=q.device) if nsplit > 1 else o
    ml = torch.empty(S * nsplit, 2, H, dtype=torch.float32, device=q.device)
    inv = ro > 0
    _attn_kernel[grid](scores, *planes, idx, sink, part, ml, pos, freqs, H, D, r, ro, K, ch,
                       *strides, idx.stride(0), part.stride(0), part.stride(1), INV_ROPE=inv,
                       SPLIT=nsplit > 1, **consts)
    if nsplit > 1:
        _combine_kernel[(S, -(-H // 16), -(-D // 128))](
            part, ml, sink, o, pos, freqs, H, D, ro, nsplit, o.stride(0), o.stride(1),
            INV_ROPE=inv, BLOCK_H=16, BLOCK_D=min(pow2(D), 128))


def _fp8_unsupported(kv: KVFp8, dtype) -> torch.Tensor:
    """sm_80 and older: Triton has no e4m3 type there, so the rows go in dequantized."""
    warnings.warn("attention: e4m3 KV rows need sm_89+ in Triton; dequantizing them first "
                  "(slower, same result)", stacklevel=3)
    return kv.dequant().to(torch.bfloat16 if dtype == torch.bfloat16 else torch.float32)


def sparse_attention(q, kv, mask, sink, scale, inv_rope=None):
    """Launcher with the twin's signature: the mask [S, N] becomes an index set."""
    return gather_attention(q, kv, mask_to_index(mask), sink, scale, inv_rope)
