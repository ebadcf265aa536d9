"""Fused float32 CPU ops for eager decode steps: one dispatch where the torch forms take 5-40.

An eager decode step on the CPU (the default there: compiling costs minutes) runs its small
per-token math op by op, and each aten op costs a dispatch and a Python call whatever its
size. These ops do one site's math in one call, as the GPU's Triton kernels do:

  rms_norm(x [.., D], w [D] | None, eps)       -> w · x / sqrt(mean(x²) + eps)   (rows of x)
  rotation(pos [S] int64, freqs2 [r], sign [r]) -> (cos [S, r], sin [S, r])  (layers/rotary.py)
  rope(x [S, .., d], cos, sin, inverse)        -> x with its last r dims rotated (or back)
  hc_pre(x [S, n, D], fn, base, scale, iters, hc_eps, norm_eps) -> (u, post, comb)  (mHC)
  hc_post(y [S, D], x [S, n, D], post [S, n], comb [S, n, n])   -> [S, n, D]
  attend(q [1, H, d], rows [N, d], hide [N] bool, sink [H], scale) -> [1, H, d]
  swiglu(a, b, limit)                          -> silu(min(a, L)) · clamp(b, −L, L)  (L=0: none)
  compress_step(kv_slots, gate_slots, kv, gate, ape, t, ratio, overlap) -> (pooled, j, j·ratio)
                                               a compressor's decode step (layers/compressor.py)
  fp8_roundtrip(x, block), fp4_roundtrip(x, block), hadamard(x): engine/quant.py's, for the
                                               activations official numerics round
  fp8_rows_encode/decode, fp4_rows_encode/decode: engine/kv/rows.py's storage formats

They are `flashcode::` ops in C++ (csrc/fused_cpu.cpp, csrc/quant_cpu.cpp, built once per
machine by engine/kernels/cpp.py; off with FLASHCODE_FUSED_CPU=0), taken by the layers through
`ready(...)`: an eager step, float32 CPU tensors, the libraries loaded. Compiled steps keep the
torch forms (inductor fuses those itself). Elementwise math rounds as the torch forms do (no
fused multiply-adds: -ffp-contract=off), so RoPE and the round trips are bit for bit; sums
(norms, dot products, softmax) run in another order and cos/sin/exp come from libm: equal to
float32 rounding. The twins are below.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine import quant
from engine.kernels import cpp
from engine.kernels.mhc import hc_post_ref, hc_pre_ref  # noqa: F401 - the mHC twins
from engine.kernels.moe_fp4 import swiglu as swiglu_ref  # noqa: F401 - its twin

_CSRC = Path(__file__).parent / "csrc"
_LIBS = ("fused_cpu", "quant_cpu")  # csrc/NAME.cpp, one library each
_FLAGS = ["-O3", "-shared", "-fPIC", "-std=c++17", "-mavx512f", "-mavx512bw", "-mavx512vl",
          "-mfma", "-ffp-contract=off"]
_SWITCH = "FLASHCODE_FUSED_CPU"
_why: list[str | None] = []  # why() once asked


def available() -> bool:
    """Whether the ops are loaded (built on first call; `why()` says why not)."""
    return why() is None


def why() -> str | None:
    """None when the ops are loaded, else the reason they are not (asked once)."""
    if not _why:
        _why.append(next((w for name in _LIBS if (w := cpp.load(
            name, (_CSRC / f"{name}.cpp").read_text(), _FLAGS, _SWITCH))), None))
    return _why[0]


def eager_cpu(*ts: torch.Tensor) -> bool:
    """`ready` for tensors of any dtype (the ops check theirs): the KV rows' byte planes."""
    if torch.compiler.is_compiling():
        return False
    for t in ts:
        if t.device.type != "cpu":
            return False
    return _why[0] is None if _why else available()


def ready(*ts: torch.Tensor) -> bool:
    """Whether an eager step takes the fused ops for these tensors: float32 on the CPU (strided
    ones are copied first: a path must not depend on a layout), not while torch.compile
    traces, the library loaded (built here on first ask)."""
    for t in ts:  # called ~100 times a step: loops, not generators
        if t.dtype != torch.float32:
            return False
    return eager_cpu(*ts)


def rms_norm(x, w, eps: float):
    return torch.ops.flashcode.rms_norm(x, w, eps)


def rotation(pos, freqs2, sign):
    return torch.ops.flashcode.rotation(pos, freqs2, sign)


def rope(x, cos, sin, inverse: bool = False):
    return torch.ops.flashcode.rope(x, cos, sin, inverse)


def hc_pre(x, fn, base, scale, iters: int, hc_eps: float, norm_eps: float):
    return torch.ops.flashcode.hc_pre(x, fn, base, scale, iters, hc_eps, norm_eps)


def hc_post(y, x, post, comb):
    return torch.ops.flashcode.hc_post(y, x, post, comb)


def attend(q, rows, hide, sink, scale: float):
    return torch.ops.flashcode.attend(q, rows, hide, sink, scale)


def swiglu(a, b, limit: float):
    return torch.ops.flashcode.swiglu(a, b, limit)


def fp8_roundtrip(x, block: int):
    return torch.ops.flashcode.fp8_roundtrip(x, block)


def fp4_roundtrip(x, block: int):
    return torch.ops.flashcode.fp4_roundtrip(x, block)


def hadamard(x):
    return torch.ops.flashcode.hadamard(x)


def fp8_rows_encode(v, rope: int):
    return torch.ops.flashcode.fp8_rows_encode(v, rope)


def fp8_rows_decode(nope, scale, rope):
    return torch.ops.flashcode.fp8_rows_decode(nope, scale, rope)


def fp4_rows_encode(v):
    return torch.ops.flashcode.fp4_rows_encode(v)


def fp4_rows_decode(packed, scale):
    return torch.ops.flashcode.fp4_rows_decode(packed, scale)


def compress_step(kv_slots, gate_slots, kv, gate, ape, t, ratio: int, overlap: bool):
    return torch.ops.flashcode.compress_step(kv_slots, gate_slots, kv, gate, ape, t, ratio,
                                             overlap)


# The twins: the plain-PyTorch math each op must equal (to float32 rounding).
fp8_roundtrip_ref, fp4_roundtrip_ref, hadamard_ref = (quant.fp8_roundtrip, quant.fp4_roundtrip,
                                                      quant.hadamard)


def rms_norm_ref(x, w, eps: float):
    y = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return y if w is None else w * y


def rotation_ref(pos, freqs2, sign):
    ang = pos.unsqueeze(-1) * freqs2
    return ang.cos(), ang.sin() * sign


def rope_ref(x, cos, sin, inverse: bool = False):
    r = cos.shape[-1]
    c = cos.view(cos.shape[0], *(1,) * (x.dim() - 2), r)
    s = sin.view(sin.shape[0], *(1,) * (x.dim() - 2), r)
    t = x[..., -r:]
    sw = t.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return torch.cat((x[..., :-r], t * c - sw * s if inverse else t * c + sw * s), -1)


def compress_step_ref(kv_slots, gate_slots, kv, gate, ape, t, ratio: int, overlap: bool):
    """Writes the slots in place like the op; -> (pooled [1, d], j [1], j·ratio [1])."""
    r, m = ratio, kv_slots.shape[0]
    kv_slots[t % m], gate_slots[t % m] = kv.view(-1), gate.view(-1) + ape[t % r]
    j = t // r
    kw, gw = kv_slots, gate_slots
    if overlap:
        d = kv_slots.shape[1] // 2
        order = (torch.arange(2 * r) + (j + 1) * r) % (2 * r)
        first = (torch.arange(2 * r) < r).unsqueeze(-1)
        kw = torch.where(first, kv_slots[order][:, :d], kv_slots[order][:, d:])
        gw = torch.where(first, gate_slots[order][:, :d], gate_slots[order][:, d:])
    return (kw * torch.softmax(gw, 0)).sum(0, keepdim=True), j, j * r


def attend_ref(q, rows, hide, sink, scale: float):
    s = (q[0] @ rows.t()) * scale
    s = torch.cat((s.masked_fill(hide, float("-inf")), sink.unsqueeze(-1)), -1)
    return (torch.softmax(s, -1)[:, :-1] @ rows).unsqueeze(0)
