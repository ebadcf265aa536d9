"""RoPE for a decode step: the cos/sin of a position computed once per block and reused by
every rotation at that position (q, the kv row, the output's inverse, the indexer's q), in a
few ops each (one fused op each in an eager float32 CPU step: engine/kernels/fused_cpu.py).
The same numbers as engine/kernels/rope.py's `apply_rope` (bit for bit; the fused cos/sin to
float32 rounding): pairs
(x[2i], x[2i+1]) of the last r dims turn into (a·c − b·s, a·s + b·c).

  rot = rotation(pos [S], freqs [r/2])        -> cos [S, r] (c0 c0 c1 c1 ..), sin [S, r] (−s0 s0 ..)
  rotate(x [S, ..., d], rot[, inverse])       -> x with its last r dims rotated (by −pos·f)
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from engine.kernels import fused_cpu
from engine.kernels.scalars import cached


class Rotation(NamedTuple):
    cos: torch.Tensor  # [S, r]: each pair's cos twice
    sin: torch.Tensor  # [S, r]: each pair's (−sin, sin)


def tables(freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """freqs [r/2] -> (each frequency twice [r], the pairs' signs [r]: −1, 1, ...)."""
    sign = torch.tensor([-1.0, 1.0], device=freqs.device).repeat(freqs.numel())
    return freqs.repeat_interleave(2), sign


def rotation(pos: torch.Tensor, freqs2: torch.Tensor, sign: torch.Tensor) -> Rotation:
    """pos [S] (integers) -> the rotation by pos·f (freqs2, sign from `tables`)."""
    if pos.dtype == torch.int64 and fused_cpu.ready(freqs2, sign) and pos.device.type == "cpu":
        return Rotation(*fused_cpu.rotation(pos, freqs2, sign))
    ang = pos.unsqueeze(-1) * freqs2.to(pos.device)   # int × float32: what apply_rope computes
    return Rotation(ang.cos(), ang.sin() * sign.to(pos.device))


def _swapped(y: torch.Tensor) -> torch.Tensor:
    """y with each pair (a, b) of its last dim as (b, a): one gather by a cached index when
    running eagerly (two dispatches, not eight), a flip of the pairs while compiling."""
    if torch.compiler.is_compiling():
        return y.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    n = y.shape[-1]
    idx = cached(("pair swap", n), y.device, lambda: torch.arange(n, device=y.device) ^ 1)
    return y.index_select(-1, idx)


def rotate_tail(y: torch.Tensor, rot: Rotation, inverse: bool = False) -> torch.Tensor:
    """y [S, ..., r] (the rope dims, float32) rotated by rot (or back)."""
    c, s = rot
    if fused_cpu.ready(y, c, s):
        return fused_cpu.rope(y, c, s, inverse)
    if y.dim() > 2 and c.shape[0] != 1:  # [S, r] -> [S, 1, .., r] (one row broadcasts as is)
        c, s = c.view(c.shape[0], *(1,) * (y.dim() - 2), -1), s.view(s.shape[0],
                                                                     *(1,) * (y.dim() - 2), -1)
    swapped = _swapped(y)                                             # (b, a) per pair
    return y * c - swapped * s if inverse else y * c + swapped * s


def rotate(x: torch.Tensor, rot: Rotation, inverse: bool = False) -> torch.Tensor:
    """x [S, ..., d] with its last r dims rotated (computed in float32, back in x's dtype)."""
    if fused_cpu.ready(x, rot.cos, rot.sin):
        return fused_cpu.rope(x, rot.cos, rot.sin, inverse)
    r = rot.cos.shape[-1]
    y = x[..., -r:]
    y = rotate_tail(y if y.dtype == torch.float32 else y.float(), rot, inverse)
    return torch.cat((x[..., :-r], y if x.dtype == torch.float32 else y.to(x.dtype)), -1)
