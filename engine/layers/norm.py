"""RMSNorm, computed in float32 whatever the weight's dtype."""

from __future__ import annotations

import torch
from torch import nn

from engine.kernels import fused_cpu
from engine.kernels.scalars import scalar


def rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x²) + eps) over the last dim, in float32, back in x's dtype (one fused
    op in an eager float32 CPU step: engine/kernels/fused_cpu.py)."""
    if fused_cpu.ready(x):
        return fused_cpu.rms_norm(x, None, eps)
    xf = x if x.dtype == torch.float32 else x.float()
    y = xf * inv_rms(xf, eps)
    return y if x.dtype == torch.float32 else y.to(x.dtype)


def inv_rms(xf: torch.Tensor, eps: float) -> torch.Tensor:
    """1 / sqrt(mean(xf²) + eps) over the last dim of float32 xf, keepdim: the sum of the
    squares over the dim's size is the mean bit for bit (it is how torch computes one), in a
    third of the dispatches."""
    ms = (xf * xf).sum(-1, keepdim=True) / scalar(float(xf.shape[-1]), xf)
    return torch.rsqrt(ms + scalar(eps, xf))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=torch.bfloat16), requires_grad=False)
        # float32 copy of `weight` (engine.weights.placement)
        self.resident: torch.Tensor | None = None

    def float_weight(self) -> torch.Tensor:
        """`weight` as float32 [dim]: the resident copy, else converted now."""
        return self.resident if self.resident is not None else self.weight.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.float_weight()
        if fused_cpu.ready(x, w):
            return fused_cpu.rms_norm(x, w, self.eps)
        xf = x if x.dtype == torch.float32 else x.float()
        y = w * (xf * inv_rms(xf, self.eps))
        return y if x.dtype == torch.float32 else y.to(x.dtype)
