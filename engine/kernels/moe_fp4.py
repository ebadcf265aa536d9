"""Routed experts as two grouped GEMMs over tokens sorted by expert (top-k of E): MXFP4
weights decoded in the kernel, activations optionally FP8-quantized per 1×128 block, the
clamped SwiGLU and the routing weight fused.

  h_r = silu(min(x_t·W1_eᵀ, L)) · clamp(x_t·W3_eᵀ, −L, L)   (· w_r when weight_before_w2)
  y_r = h_r·W2_eᵀ  (· w_r otherwise);   out_t = Σ_{r of t} y_r  (index_add, fp32)
for each routed pair r = (token t, expert e). MXFP4: int8 [E, out, in/2] (low nibble = even
channel) with e8m0 scales [E, out, in/32]; value × scale is exact in bf16/fp32, so the dot
loses nothing but accumulation order.

Shapes: x [S, D]; ids, weights [S, k]; w1, w3 [E, I, D/2]; w2 [E, D, I/2] -> out [S, D] fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.kernels._triton import (
    Config,
    check,
    e2m1_tile,
    helper,
    interpreting,
    pow2,
    round_e4m3,
    target_cc,
    tl,
    tuned,
)
from engine.kernels.gemm_fp8 import dequant, gemm


def swiglu(a: torch.Tensor, b: torch.Tensor, limit: float) -> torch.Tensor:
    """silu(min(a, L)) · clamp(b, −L, L); no clamp when limit is 0."""
    if limit:
        a, b = a.clamp(max=limit), b.clamp(-limit, limit)
    return F.silu(a) * b


def experts_ref(x, ids, weights, w, fmt: str, act_fp8: bool, limit: float,
                weight_before_w2: bool) -> torch.Tensor:
    """The twin, one expert at a time. w = {name: (weight [E, ...], scale [E, ...] | None)}."""
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)

    def wt(name, e):
        q, s = w[name]
        return dequant(fmt, q[e], None if s is None else s[e])

    def expert(e, xe, we):
        h = swiglu(gemm(xe, wt("w1", e), fmt, act_fp8), gemm(xe, wt("w3", e), fmt, act_fp8),
                   limit)
        if weight_before_w2:
            return gemm((h * we).to(x.dtype), wt("w2", e), fmt, act_fp8).float()
        return (gemm(h.to(x.dtype), wt("w2", e), fmt, act_fp8) * we).float()

    if x.shape[0] == 1:  # decode: the k slots in the general loop's order, no index ops
        order = sorted(enumerate(ids[0].tolist()), key=lambda t: t[1])
        for j, e in order:
            out += expert(e, x, weights[:, j:j + 1])
        return out
    for e in ids.unique().tolist():
        tok, slot = (ids == e).nonzero(as_tuple=True)
        out.index_add_(0, tok, expert(e, x[tok], weights[tok, slot].unsqueeze(-1)))
    return out


# Tiles: BLOCK_M routed rows (the launcher's: it fixes the expert schedule) × BLOCK_N outputs,
# K in steps of one 128-channel activation block. A weight tile is decoded in registers from
# MXFP4 bytes [BN, BK/2] and its e8m0 scales [BN, BK/32] (a scale per 32 codes, applied after
# a reshape: not one scale load per code), then fed to the dot as bf16 (exact).
MOE_CONFIGS = (
    Config(dict(BLOCK_N=64), warps=8, stages=2, cc=(90, 1000)),
    Config(dict(BLOCK_N=32), warps=4, stages=3, cc=(90, 1000)),
    Config(dict(BLOCK_N=128), warps=8, stages=3, cc=(0, 90)),
    Config(dict(BLOCK_N=128), warps=8, stages=2, cc=(0, 90)),
    Config(dict(BLOCK_N=64), warps=4, stages=2, cc=(0, 90)),
)


@helper
def _fp4_dot(a, sa, w_ptr, ws_ptr, woff, soff, wm, sm, BF16_DOT: tl.constexpr,
             BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """a [BLOCK_M, BLOCK_K] · (MXFP4 tile at woff/soff)ᵀ, scaled back by the rows' sa."""
    v = e2m1_tile(tl.load(w_ptr + woff, mask=wm, other=0).to(tl.int32) & 255, BLOCK_N, BLOCK_K)
    sc = tl.load(ws_ptr + soff, mask=sm, other=0.0)                       # [BN, BK/32]
    w = tl.reshape(tl.reshape(v, [BLOCK_N, BLOCK_K // 32, 32]) * sc[:, :, None],
                   [BLOCK_N, BLOCK_K])
    if BF16_DOT:
        return tl.dot(a.to(tl.bfloat16), tl.trans(w.to(tl.bfloat16))) * sa[:, None]
    return tl.dot(a, tl.trans(w), input_precision="ieee") * sa[:, None]


@tuned(MOE_CONFIGS, key=("N", "K", "GATED", "BLOCK_M"))
def _grouped_kernel(a_ptr, tok_ptr, rw_ptr, blk_e_ptr, blk_lo_ptr, blk_hi_ptr,
                    w_ptr, ws_ptr, v_ptr, vs_ptr, o_ptr, N, K, limit,
                    s_am, s_we, s_wn, s_wse, s_wsn, s_om,
                    GATED: tl.constexpr, GATHER: tl.constexpr, ACT: tl.constexpr,
                    SCALE_OUT: tl.constexpr, BF16_DOT: tl.constexpr, QB: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # one program: BLOCK_M routed rows of one expert × BLOCK_N outputs. GATED: two weights
    # (W1, W3) and the clamped SwiGLU; else one weight (W2). Rows read x[token] when GATHER.
    b = tl.program_id(0)
    e, lo, hi = tl.load(blk_e_ptr + b), tl.load(blk_lo_ptr + b), tl.load(blk_hi_ptr + b)
    r = lo + tl.arange(0, BLOCK_M)
    rm = r < hi
    src = tl.load(tok_ptr + r, mask=rm, other=0) if GATHER else r
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = rn < N
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    acc3 = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    kk, hk, sk = tl.arange(0, BLOCK_K), tl.arange(0, BLOCK_K // 2), tl.arange(0, BLOCK_K // 32)
    for k0 in range(0, K, QB):
        km = (kk < QB) & (k0 + kk < K)
        a = tl.load(a_ptr + src[:, None] * s_am + (k0 + kk)[None, :],
                    mask=rm[:, None] & km[None, :], other=0.0).to(tl.float32)
        sa = tl.full([BLOCK_M], 1.0, tl.float32)
        if ACT:
            sa = tl.exp2(tl.ceil(tl.log2(tl.maximum(tl.max(tl.abs(a), 1), 1e-4) / 448.0)))
            a = round_e4m3(tl.clamp(a / sa[:, None], -448.0, 448.0))
        # MXFP4 tile [BLOCK_N, BLOCK_K]: e2m1 value × 2^scale, exact in bf16
        wm = nm[:, None] & ((hk < QB // 2) & (k0 // 2 + hk < K // 2))[None, :]
        sm = nm[:, None] & ((sk < QB // 32) & (k0 // 32 + sk < K // 32))[None, :]
        woff = e * s_we + rn[:, None] * s_wn + (k0 // 2 + hk)[None, :]
        soff = e * s_wse + rn[:, None] * s_wsn + (k0 // 32 + sk)[None, :]
        acc += _fp4_dot(a, sa, w_ptr, ws_ptr, woff, soff, wm, sm, BF16_DOT, BLOCK_N, BLOCK_K)
        if GATED:  # the same tile of W3
            acc3 += _fp4_dot(a, sa, v_ptr, vs_ptr, woff, soff, wm, sm, BF16_DOT, BLOCK_N,
                             BLOCK_K)
    if GATED:
        g = acc
        if limit > 0:
            g = tl.minimum(g, limit)
            acc3 = tl.minimum(tl.maximum(acc3, -limit), limit)
        acc = g * tl.sigmoid(g) * acc3
    if SCALE_OUT:
        acc = acc * tl.load(rw_ptr + r, mask=rm, other=0.0)[:, None]
    tl.store(o_ptr + r[:, None] * s_om + rn[None, :], acc.to(o_ptr.dtype.element_ty),
             mask=rm[:, None] & nm[None, :])


def _schedule(ids: torch.Tensor, n_experts: int, block_m: int):
    """Sort the S·k routed pairs by expert; cut each expert's run into BLOCK_M row blocks.
    -> order [S·k] (pair index), (block expert, first row, end row) [n_blocks] int32."""
    flat = ids.flatten()
    order = torch.sort(flat, stable=True).indices
    counts = torch.bincount(flat, minlength=n_experts)
    ends = counts.cumsum(0)
    nblk = (counts + block_m - 1) // block_m
    be = torch.repeat_interleave(torch.arange(n_experts, device=ids.device), nblk)
    first = torch.repeat_interleave(nblk.cumsum(0) - nblk, nblk)
    lo = ends[be] - counts[be] + (torch.arange(be.numel(), device=ids.device) - first) * block_m
    return order, be.int(), lo.int(), ends[be].int()


def block_m(pairs: int, n_experts: int) -> int:
    """Routed rows per block: 16 for decode-sized batches; on Hopper and newer 64 once the
    experts average ≥ 32 rows (prefill: a weight tile then serves 4× the rows, and wgmma
    wants M = 64; mma.sync at M = 64 spills on sm_8x)."""
    return 64 if pairs >= 32 * n_experts and (target_cc() or 0) >= 90 else 16


def _launch(a, tok, rw, sched, w, ws, v, vs, out, limit, gated, gather, act, scale_out, bm):
    be, lo, hi = sched
    n, k = out.shape[1], a.shape[1]
    qb = min(128, k)
    check(k % 32 == 0 and k % qb == 0, f"moe_fp4: in-features {k} must tile by 32 and 128")
    _grouped_kernel[lambda m: (be.numel(), -(-n // m["BLOCK_N"]))](
        a, tok, rw, be, lo, hi, w, ws, v, vs, out, n, k, float(limit),
        a.stride(0), w.stride(0), w.stride(1), ws.stride(0), ws.stride(1), out.stride(0),
        GATED=gated, GATHER=gather, ACT=act, SCALE_OUT=scale_out, BF16_DOT=not interpreting(),
        QB=qb, BLOCK_M=bm, BLOCK_K=pow2(qb, 32))


def experts(x, ids, weights, w, fmt: str, act_fp8: bool, limit: float,
            weight_before_w2: bool, bm: int | None = None) -> torch.Tensor:
    """Launcher: same contract as the twin; MXFP4 experts only (others go to the twin).
    `bm`: routed rows per block (tests; default `block_m`)."""
    if fmt != "fp4":
        return experts_ref(x, ids, weights, w, fmt, act_fp8, limit, weight_before_w2)
    (w1, s1), (w2, s2), (w3, s3) = w["w1"], w["w2"], w["w3"]
    S, D = x.shape
    E, inter = w1.shape[0], w1.shape[1]
    check(w1.dtype == torch.int8 and w1.shape == (E, inter, D // 2) and w3.shape == w1.shape
          and w2.shape == (E, D, inter // 2), f"moe_fp4: packed weights must be w1/w3 "
          f"[E, I, {D // 2}] and w2 [E, {D}, I/2], got {tuple(w1.shape)}, {tuple(w2.shape)}")
    check(ids.shape == weights.shape and ids.shape[0] == S, "moe_fp4: ids/weights must be [S, k]")
    out = torch.zeros(S, D, dtype=torch.float32, device=x.device)
    if S == 0:
        return out
    bm = bm or block_m(ids.numel(), E)
    order, *sched = _schedule(ids, E, bm)
    tok = (order // ids.shape[1]).int().contiguous()
    rw = weights.flatten()[order].float().contiguous()
    x = x.contiguous()
    f = lambda s: s.float().contiguous()  # noqa: E731 - e8m0 scales as fp32
    h = torch.empty(order.numel(), inter, dtype=x.dtype, device=x.device)
    _launch(x, tok, rw, sched, w1.contiguous(), f(s1), w3.contiguous(), f(s3), h, limit,
            True, True, act_fp8, weight_before_w2, bm)
    y = torch.empty(order.numel(), D, dtype=torch.float32, device=x.device)
    _launch(h, tok, rw, sched, w2.contiguous(), f(s2), w2, f(s2), y, limit,
            False, False, act_fp8, not weight_before_w2, bm)
    return out.index_add_(0, tok.long(), y)
