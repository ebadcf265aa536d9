"""Linear layers whose weights stay in the checkpoint's format (FP8 + block scales, packed
MXFP4 + scales, or plain floats) and are dequantized per use on the reference path.

Placement (engine/weights/placement.py) may give a layer a `resident` float copy, and the first
of a group of layers that read the same input (wq_a|wkv, a compressor's wkv|wgate, the shared
expert's w1|w3) a `merged` copy of all their rows: `project` then runs one GEMM for the group.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from engine import quant
from engine.kernels import gemv_f16
from engine.kernels.gemm_fp8 import dequant, gemm, widened_linear  # noqa: F401 - twins, used by moe.py
from engine.kernels.packed_f16 import PackedF16
from engine.kernels.scalars import f32, scalar
from engine.layers.ops import fp8_roundtrip, op
from engine.numerics import Numerics

PLAIN = "bf16"  # unquantized; a loaded checkpoint may bring float32 or bfloat16


class Half(NamedTuple):
    """w = 2^shift · half: a float32 weight fp16 holds exactly after one power-of-two shift,
    as a plain tensor (the layout compiled decode steps read: engine.weights.placement)."""
    half: torch.Tensor  # [..., out, in] float16
    shift: int


def weight_shapes(fmt: str, out_f: int, in_f: int, lead: tuple[int, ...] = ()):
    """(weight shape, weight dtype, scale shape or None) of one weight in format `fmt`."""
    if fmt == "fp8":
        return (*lead, out_f, in_f), torch.float8_e4m3fn, (*lead, *quant.fp8_scale_shape(
            out_f, in_f))
    if fmt == "fp4":
        return (*lead, out_f, in_f // 2), torch.int8, (*lead, out_f, in_f // 32)
    return (*lead, out_f, in_f), torch.bfloat16, None


class Linear(nn.Module):
    """`weight` (and `scale` when quantized) exactly as the checkpoint names them. `groups` > 1:
    the rows form that many blocks, block g applied to its own input slice (attention's wo_a;
    the caller does the grouping, placement packs the blocks apart)."""

    def __init__(self, in_f: int, out_f: int, fmt: str, numerics: Numerics, groups: int = 1):
        super().__init__()
        self.in_features, self.out_features, self.fmt, self.numerics = in_f, out_f, fmt, numerics
        self.groups = groups
        wshape, wdtype, sshape = weight_shapes(fmt, out_f, in_f)
        self.weight = nn.Parameter(torch.empty(wshape, dtype=wdtype), requires_grad=False)
        if sshape is not None:
            self.scale = nn.Parameter(torch.empty(sshape, dtype=torch.float8_e8m0fnu),
                                      requires_grad=False)
        else:
            self.scale = None
        # float copy [out, in], a PackedF16 or a Half of it (engine.weights.placement)
        self.resident: torch.Tensor | PackedF16 | Half | None = None
        self.merged: torch.Tensor | PackedF16 | Half | None = None  # see `project`

    def dequantized(self) -> torch.Tensor:
        """The weight as a float tensor [out, in]."""
        if isinstance(self.resident, torch.Tensor):
            return self.resident
        if isinstance(self.resident, Half):
            return self.resident.half.float() * 2.0 ** self.resident.shift
        return dequant(self.fmt, self.weight, self.scale)

    def forward(self, x: torch.Tensor, act_quant: bool = True) -> torch.Tensor:
        act = act_quant and self.numerics.act_fp8
        if self.resident is not None:
            return apply(x, self.resident, self.fmt, act)
        if torch.compiler.is_compiling():
            return apply(x, dequant(self.fmt, self.weight, self.scale), self.fmt, act)
        return op("gemm_fp8.linear", x.device)(x, self.weight, self.scale, self.fmt, act)

    def extra_repr(self) -> str:
        return f"{self.in_features}->{self.out_features}, {self.fmt}"


def apply(x: torch.Tensor, w, fmt: str, act_fp8: bool) -> torch.Tensor:
    """x·wᵀ for a float weight w [out, in] (a tensor, PackedF16 or Half), the same numerics
    as the twin minus the dequantization. A one-row x reads the weight once: through
    engine/kernels/gemv_f16.py's op for fp16 copies on the CPU (eager or compiled), else under
    torch.compile a multiply and a sum that inductor fuses with the widening."""
    if isinstance(w, PackedF16):
        return gemm(x, w, fmt, act_fp8)
    if act_fp8 and fmt in ("fp8", "fp4"):
        x = fp8_roundtrip(x, 128)
    scale = 1.0
    if isinstance(w, Half):
        w, scale = w.half, 2.0 ** w.shift
    if x.shape[0] == 1 and (torch.compiler.is_compiling() or gemv_f16.usable(w)):
        xf = f32(x)
        y = one_row(xf if x.dim() == 2 else xf.reshape(-1, x.shape[-1]), w)
        y = y if x.dim() == 2 else y.view(*x.shape[:-1], -1)
        y = y if y.dtype == x.dtype else y.to(x.dtype)
    else:
        y = widened_linear(x, w)
    return y * scalar(scale, y) if scale != 1.0 else y


def one_row(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x [1, K] float32 · w [N, K]ᵀ in a decode step: engine/kernels/gemv_f16.py's op for fp16
    weights on the CPU when it is loaded (one dispatch, and it streams them faster than
    fbgemm's GEMV or inductor's loop), else a multiply and a sum that inductor fuses with the
    widening."""
    return gemv_f16.gemv(x, w) if gemv_f16.usable(w) else gemv_f16.gemv_ref(x, w)


def rows_at(x: torch.Tensor, w: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """`one_row` for k rows at once, row j by its own matrix: x [k or 1, K] float32,
    w [E, N, K], ids [k] -> [k, N] (x[j] or x[0] · w[ids[j]]ᵀ)."""
    return (gemv_f16.gemv_at(x, w, ids) if gemv_f16.usable(w)
            else gemv_f16.gemv_at_ref(x, w, ids))


def project(x: torch.Tensor, lins: tuple[Linear, ...], act_quant: bool = True):
    """[l(x) for l in lins] (layers of one format reading the same x), as one GEMM over their
    merged rows when placement made `lins[0].merged`."""
    head = lins[0]
    if head.merged is None:
        return [lin(x, act_quant) for lin in lins]
    y = apply(x, head.merged, head.fmt, act_quant and head.numerics.act_fp8)
    return y.split([lin.out_features for lin in lins], -1)


def init_linear_(lin: Linear, gen: torch.Generator, std: float | None = None) -> None:
    """Random weights (N(0, 1/in) by default), quantized into the layer's format."""
    std = std if std is not None else 1 / math.sqrt(lin.in_features)
    w = torch.randn(lin.out_features, lin.in_features, generator=gen) * std
    set_weight_(lin.weight, lin.scale, lin.fmt, w)


def set_weight_(weight: nn.Parameter, scale: nn.Parameter | None, fmt: str,
                w: torch.Tensor) -> None:
    """Store float `w` [..., out, in] into a parameter pair of format `fmt`."""
    if fmt == "fp8":
        q, s = quant.quantize_fp8_weight(w)
    elif fmt == "fp4":
        q, s = quant.quantize_fp4_weight(w)
    else:
        q, s = w.to(weight.dtype), None
    weight.data = q
    if scale is not None:
        scale.data = s
