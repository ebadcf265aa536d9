"""Fused RMSNorm → RoPE → FP8 rounding of KV rows (sliding-window rows and compressed entries),
written either as float rows (what the model's state keeps) or straight into the cache's
storage planes (`KVFp8`: e4m3 nope + per-block scale, bf16 rope) at given slots.

  y = w ⊙ x·rsqrt(mean(x²)+eps)   (skipped when w is None: compressed entries come normed)
  y[-r:] = rotate pairs (2i, 2i+1) by pos·f_i
  nope = y[:-r] rounded to e4m3 with one power-of-two scale per `qblock` channels (0 = keep)

Shapes: x [S, d]; w [d] | None; pos [S] int; freqs [r/2] fp32; out [S, d] in x's dtype.
"""

from __future__ import annotations

import torch

from engine import quant
from engine.kernels._triton import check, jit, pow2, round_e4m3, tl
from engine.kernels.attention import KVFp8
from engine.kernels.rope import apply_rope


def norm_rope_ref(x: torch.Tensor, w: torch.Tensor | None, eps: float, pos: torch.Tensor,
                  freqs: torch.Tensor, qblock: int) -> torch.Tensor:
    """The twin, op for op what the layers did (RMSNorm module, apply_rope, kv_qat)."""
    if w is not None:
        xf = x.float()
        y = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps)
        x = (w.float() * y).to(x.dtype)
    x = apply_rope(x, pos, freqs)
    if qblock:
        r = freqs.numel() * 2
        x = torch.cat((quant.fp8_roundtrip(x[..., :-r], qblock), x[..., -r:]), -1)
    return x


def insert_fp8_ref(cache: KVFp8, slots: torch.Tensor, x, w, eps, pos, freqs, qblock) -> None:
    """Twin of the storage form: rows -> planes at `slots` (in place)."""
    rows = norm_rope_ref(x.float(), w, eps, pos, freqs, qblock)
    r, blk = cache.rope.shape[1], cache.block
    nope = rows[:, :-r].unflatten(-1, (-1, blk))
    s = quant.pow2_scale(nope.abs().amax(-1), quant.FP8_MAX)
    cache.nope[slots] = (nope / s[..., None]).flatten(1).to(cache.nope.dtype)
    cache.scale[slots] = s.to(cache.scale.dtype)
    cache.rope[slots] = rows[:, -r:].to(cache.rope.dtype)


@jit
def _norm_rope_kernel(x_ptr, w_ptr, pos_ptr, f_ptr, o_ptr, slot_ptr, q_ptr, s_ptr, r_ptr, eps,
                      D, R, s_x, s_o, s_q, s_s, s_r,
                      HAS_W: tl.constexpr, QB: tl.constexpr, STORAGE: tl.constexpr,
                      BLOCK_D: tl.constexpr, NB: tl.constexpr, BQ: tl.constexpr):
    # one program per row; the FP8 step re-reads the row in [block, channel] order
    i = tl.program_id(0)
    ds = tl.arange(0, BLOCK_D)
    dm = ds < D
    x = tl.load(x_ptr + i * s_x + ds, mask=dm, other=0.0).to(tl.float32)
    if HAS_W:
        x = x * tl.rsqrt(tl.sum(x * x, 0) / D + eps)
        x = tl.load(w_ptr + ds, mask=dm, other=0.0).to(tl.float32) * x
        x = x.to(o_ptr.dtype.element_ty).to(tl.float32)
    a, b = tl.split(tl.reshape(x, [BLOCK_D // 2, 2]))
    ps = tl.arange(0, BLOCK_D // 2)
    rot = (ps >= (D - R) // 2) & (ps < D // 2)
    f = tl.load(f_ptr + ps - (D - R) // 2, mask=rot, other=0.0)
    ang = tl.load(pos_ptr + i).to(tl.float32) * f
    c, s = tl.cos(ang), tl.sin(ang)
    a2 = tl.where(rot, a * c - b * s, a)
    b2 = tl.where(rot, a * s + b * c, b)
    y = tl.reshape(tl.join(a2, b2), [BLOCK_D]).to(o_ptr.dtype.element_ty)
    tl.store(o_ptr + i * s_o + ds, y, mask=dm)
    if QB > 0:
        tl.debug_barrier()  # the row is read back by other threads in block order
        blk, j = tl.arange(0, NB), tl.arange(0, BQ)
        offs = blk[:, None] * QB + j[None, :]
        m = (j[None, :] < QB) & (offs < D - R)
        v = tl.load(o_ptr + i * s_o + offs, mask=m, other=0.0).to(tl.float32)
        amax = tl.maximum(tl.max(tl.abs(v), 1), 1e-4)
        sc = tl.exp2(tl.ceil(tl.log2(amax / 448.0)))
        code = round_e4m3(tl.clamp(v / sc[:, None], -448.0, 448.0))  # an e4m3 value, fp32
        if STORAGE:  # the one e4m3 cast (Triton has the type from sm_89 on; rows need none)
            row = tl.load(slot_ptr + i)
            tl.store(q_ptr + row * s_q + offs, code.to(q_ptr.dtype.element_ty), mask=m)
            tl.store(s_ptr + row * s_s + blk, sc, mask=blk * QB < D - R)
            rd = tl.arange(0, BLOCK_D)
            rv = tl.load(o_ptr + i * s_o + (D - R) + rd, mask=rd < R, other=0.0)
            tl.store(r_ptr + row * s_r + rd, rv.to(r_ptr.dtype.element_ty), mask=rd < R)
        else:
            out = (code * sc[:, None]).to(o_ptr.dtype.element_ty)
            tl.store(o_ptr + i * s_o + offs, out, mask=m)


def _launch(x, w, eps, pos, freqs, qblock, out, storage=None, slots=None):
    S, D = x.shape
    R = freqs.numel() * 2
    check(x.stride(-1) == 1 and D % 2 == 0 and R <= D,
          f"cache_insert: x must be [S, d] with contiguous even rows, d ≥ rope dims {R}")
    check(w is None or w.shape == (D,), f"cache_insert: norm weight must be [{D}]")
    check(pos.shape == (S,), f"cache_insert: pos must be [S={S}]")
    qb = min(qblock, D - R) if qblock else 0
    check(not qb or (D - R) % qb == 0, f"cache_insert: {D - R} nope dims do not tile by {qb}")
    if S == 0:
        return out
    f = freqs.float().to(x.device).contiguous()
    p = pos.to(x.device).contiguous()
    planes = storage or (out, out, out)
    sl = slots if slots is not None else p
    _norm_rope_kernel[(S,)](x, w if w is not None else f, p, f, out, sl, *planes, eps, D, R,
                            x.stride(0), out.stride(0), planes[0].stride(0),
                            planes[1].stride(0), planes[2].stride(0), HAS_W=w is not None,
                            QB=qb, STORAGE=storage is not None, BLOCK_D=pow2(D, 2),
                            NB=pow2(-(-(D - R) // max(qb, 1)), 1), BQ=pow2(max(qb, 1), 1))
    return out


def norm_rope(x: torch.Tensor, w, eps: float, pos: torch.Tensor, freqs: torch.Tensor,
              qblock: int) -> torch.Tensor:
    """Launcher, row form: same contract as the twin."""
    return _launch(x.contiguous(), w, eps, pos, freqs, qblock, torch.empty_like(x))


def insert_fp8(cache: KVFp8, slots: torch.Tensor, x, w, eps, pos, freqs, qblock) -> None:
    """Launcher, storage form: normed, roped rows written into `cache` at `slots` [S]."""
    check(cache.nope.dtype == torch.float8_e4m3fn and cache.scale.dtype == torch.float32,
          "cache_insert: cache planes must be e4m3 nope and fp32 scales")
    check(cache.block == min(qblock, cache.nope.shape[1]),
          f"cache_insert: cache has {cache.block}-wide scale blocks, asked for {qblock}")
    scratch = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    _launch(x.contiguous(), w, eps, pos, freqs, qblock, scratch, tuple(cache),
            slots.to(torch.int64).contiguous())
