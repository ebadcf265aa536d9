"""FP8 block-scaled GEMM: y = x·Wᵀ with W in e4m3 and one power-of-two scale per 128×128 tile,
the activations optionally quantized per 1×128 block on the fly (the release's fp8_gemm).

  act_fp8:  x ≈ a·s_a (e4m3 codes a, one s_a per row and 128 channels)
            y[m, n] = Σ_blocks s_a[m, b]·s_w[n/128, b] · Σ_k a[m, k]·w[n, k]
Codes are exact in bf16, so the inner sum runs as a bf16 dot with fp32 accumulation and loses
nothing. Without act_fp8 x stays fp32 (IEEE dot) against the dequantized weight.

Shapes: x [..., K]; weight [N, K] e4m3; scale [ceil(N/128), ceil(K/128)] (e8m0 or fp32)
-> y [..., N] in x's dtype. Other formats (bf16, fp4) go to the twin: plain bf16 is a cuBLAS
matmul already, and MXFP4 weights are the MoE experts' (moe_fp4.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine import quant
from engine.kernels._triton import Config, check, interpreting, pow2, round_e4m3, tl, tuned
from engine.kernels.packed_f16 import PackedF16


def dequant(fmt: str, w: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """Any format -> float32 weight of the logical shape. A weight without a scale is taken as
    already dequantized (engine.weights.placement's resident copies), whatever `fmt` says; a packed
    resident copy passes through as is (`gemm` takes it)."""
    if isinstance(w, PackedF16):
        return w
    if scale is None:
        return w.float()
    if fmt == "fp8":
        return quant.dequant_fp8_weight(w, scale)
    if fmt == "fp4":
        return quant.dequant_fp4_weight(w, scale)
    return w.float()


def gemm(x: torch.Tensor, w: torch.Tensor, fmt: str, act_fp8: bool) -> torch.Tensor:
    """y = x·wᵀ with `w` already dequantized (a tensor, or a PackedF16 resident copy); the
    official path rounds x to FP8 first when the stored weight is FP8/FP4 (the release's
    fp8_gemm/fp4_gemm quantize their input)."""
    if act_fp8 and fmt in ("fp8", "fp4"):
        x = quant.fp8_roundtrip(x, 128)
    if isinstance(w, PackedF16):
        return w.linear(x)
    return widened_linear(x, w)


WIDEN_ROWS = 1 << 19  # weight elements widened per piece: 2 MB of float32, fits in L2/L3


def widened_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """F.linear(x, w.to(x.dtype)), bit for bit on one thread (on several, the BLAS may split
    a GEMV's sums by width, so the last bit can differ). A big weight stored narrower (bf16:
    the head, resident copies) meets a few rows of x (decode) a block of rows at a time, so each
    widened block is still in cache when the GEMM reads it instead of round-tripping through
    memory.
    x [..., K], w [N, K] -> [..., N]."""
    if w.dtype == x.dtype or w.numel() <= 2 * WIDEN_ROWS or x.numel() > 16 * w.shape[1]:
        return F.linear(x, w.to(x.dtype))
    rows = max(1, WIDEN_ROWS // w.shape[1])
    return torch.cat([F.linear(x, w[r:r + rows].to(x.dtype))
                      for r in range(0, w.shape[0], rows)], -1)


def linear_ref(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None, fmt: str,
               act_fp8: bool) -> torch.Tensor:
    """The twin: dequantize the stored weight (a plain one is widened inside `gemm`), then
    `gemm`."""
    return gemm(x, weight if scale is None else dequant(fmt, weight, scale), fmt, act_fp8)


# Tiles: BLOCK_M rows (the launcher's: 16 for decode) × BLOCK_N outputs, K in steps of one
# 128-channel quantization block.
GEMM_CONFIGS = (
    Config(dict(BLOCK_N=64), warps=4, stages=2),
    Config(dict(BLOCK_N=128), warps=8, stages=3),
    Config(dict(BLOCK_N=64), warps=8, stages=2),
)


@tuned(GEMM_CONFIGS, key=("N", "K", "BLOCK_M", "ACT"))
def _gemm_kernel(x_ptr, w_ptr, ws_ptr, o_ptr, M, N, K, s_xm, s_wn, s_wsn, s_om,
                 ACT: tl.constexpr, BF16_DOT: tl.constexpr, QB: tl.constexpr, BLOCK_M: tl.constexpr,
                 BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # one program: BLOCK_M rows × BLOCK_N outputs; K in steps of one quantization block
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    for k0 in range(0, K, QB):
        ks = k0 + tl.arange(0, BLOCK_K)
        km = (tl.arange(0, BLOCK_K) < QB) & (ks < K)
        a = tl.load(x_ptr + rm[:, None] * s_xm + ks[None, :],
                    mask=(rm[:, None] < M) & km[None, :], other=0.0).to(tl.float32)
        w = tl.load(w_ptr + rn[:, None] * s_wn + ks[None, :],
                    mask=(rn[:, None] < N) & km[None, :], other=0.0).to(tl.float32)
        ws = tl.load(ws_ptr + (rn // 128) * s_wsn + k0 // 128, mask=rn < N, other=0.0)
        if ACT:
            amax = tl.maximum(tl.max(tl.abs(a), 1), 1e-4)
            sa = tl.exp2(tl.ceil(tl.log2(amax / 448.0)))
            codes = round_e4m3(tl.clamp(a / sa[:, None], -448.0, 448.0))
            if BF16_DOT:  # exact: e4m3 codes are bf16 numbers
                part = tl.dot(codes.to(tl.bfloat16), tl.trans(w.to(tl.bfloat16)))
            else:         # the CPU interpreter multiplies bf16 wrongly; fp32 is exact too
                part = tl.dot(codes, tl.trans(w), input_precision="ieee")
            part = part * sa[:, None]
        else:
            part = tl.dot(a, tl.trans(w), input_precision="ieee")
        acc += part * ws[None, :]
    tl.store(o_ptr + rm[:, None] * s_om + rn[None, :], acc.to(o_ptr.dtype.element_ty),
             mask=(rm[:, None] < M) & (rn[None, :] < N))


def linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor | None, fmt: str,
           act_fp8: bool) -> torch.Tensor:
    """Launcher: same contract as the twin; FP8 weights only (others go to the twin)."""
    if fmt != "fp8":
        return linear_ref(x, weight, scale, fmt, act_fp8)
    N, K = weight.shape
    check(weight.dtype == torch.float8_e4m3fn and weight.stride(-1) == 1,
          f"gemm_fp8: weight must be row-contiguous e4m3 [N, K], got {weight.dtype}")
    check(x.shape[-1] == K, f"gemm_fp8: x has {x.shape[-1]} channels, weight wants {K}")
    check(scale is not None and tuple(scale.shape) == quant.fp8_scale_shape(N, K),
          f"gemm_fp8: scale must be {quant.fp8_scale_shape(N, K)}")
    qb = min(128, K)
    check(K % qb == 0, f"gemm_fp8: K={K} must be a multiple of 128 (or below it)")
    x2 = x.reshape(-1, K).contiguous()
    M = x2.shape[0]
    out = torch.empty(M, N, dtype=x.dtype, device=x.device)
    if M:
        ws = scale.float().contiguous()
        bm = 16 if M <= 16 else 64
        _gemm_kernel[lambda m: (-(-M // bm), -(-N // m["BLOCK_N"]))](
            x2, weight, ws, out, M, N, K, x2.stride(0), weight.stride(0), ws.stride(0),
            out.stride(0), ACT=act_fp8, BF16_DOT=not interpreting(), QB=qb, BLOCK_M=bm,
            BLOCK_K=pow2(qb))
    return out.view(*x.shape[:-1], N)
