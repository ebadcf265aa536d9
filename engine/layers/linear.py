"""Linear layers whose weights stay in the checkpoint's format (FP8 + block scales, packed
MXFP4 + scales, or plain floats) and are dequantized per use on the reference path."""

from __future__ import annotations

import math

import torch
from torch import nn

from engine import quant
from engine.kernels import registry
from engine.kernels.gemm_fp8 import dequant, gemm  # noqa: F401 - twins, used by moe.py
from engine.kernels.packed_f16 import PackedF16
from engine.numerics import Numerics

PLAIN = "bf16"  # unquantized; a loaded checkpoint may bring float32 or bfloat16


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
        # float copy [out, in] or a PackedF16 of it (engine.weights.placement)
        self.resident: torch.Tensor | PackedF16 | None = None

    def dequantized(self) -> torch.Tensor:
        """The weight as a float tensor [out, in]."""
        if isinstance(self.resident, torch.Tensor):
            return self.resident
        return dequant(self.fmt, self.weight, self.scale)

    def forward(self, x: torch.Tensor, act_quant: bool = True) -> torch.Tensor:
        act = act_quant and self.numerics.act_fp8
        if self.resident is not None:  # same numerics as the twin, minus the dequantization
            return gemm(x, self.resident, self.fmt, act)
        op = registry.get("gemm_fp8.linear", x.device)
        return op(x, self.weight, self.scale, self.fmt, act)

    def extra_repr(self) -> str:
        return f"{self.in_features}->{self.out_features}, {self.fmt}"


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
