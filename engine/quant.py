"""Number formats of the release: FP8 e4m3 with e8m0 (power-of-two) block scales, OCP MXFP4
(e2m1, two per byte, low nibble first, one e8m0 scale per 32), and the 'round trips' the
official code applies to activations (quantize, then dequantize at once).

Weights: FP8 [out, in] with scale [ceil(out/128), ceil(in/128)]; MXFP4 packed int8
[out, in/2] with scale [out, in/32]. All functions are pure; they return new tensors.
"""

from __future__ import annotations

import math

import torch

FP8_MAX = 448.0
FP4_MAX = 6.0
# e2m1 code -> value; bit 3 is the sign
FP4_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def pow2_scale(amax: torch.Tensor, qmax: float) -> torch.Tensor:
    """The ue8m0 scale 2^ceil(log2(amax/qmax)), amax floored at 1e-4 as the release does."""
    return torch.exp2(torch.ceil(torch.log2(amax.float().clamp(min=1e-4) / qmax)))


def _blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    """[..., K] -> [..., K/block, block]; K must be a multiple of block (or smaller)."""
    k = x.shape[-1]
    b = min(block, k)
    if k % b:
        raise ValueError(f"last dim {k} is not a multiple of the block {b}")
    return x.unflatten(-1, (k // b, b))


def fp8_roundtrip(x: torch.Tensor, block: int = 128) -> torch.Tensor:
    """Per-row FP8 e4m3 quantize + dequantize with one power-of-two scale per `block` channels."""
    xb = _blocks(x.float(), block)
    s = pow2_scale(xb.abs().amax(-1, keepdim=True), FP8_MAX)
    q = (xb / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).float()
    return (q * s).flatten(-2).to(x.dtype)


def _fp4_codes(v: torch.Tensor) -> torch.Tensor:
    """Round |v| ≤ 6 to the nearest e2m1 value (ties to the even code); returns codes 0..15."""
    table = torch.tensor(FP4_VALUES, device=v.device)
    mag = v.abs().clamp(max=FP4_MAX)
    # nearest of 8 magnitudes; argmin picks the lower code on ties (lower codes are 'even')
    idx = (mag.unsqueeze(-1) - table).abs().argmin(-1)
    return idx | ((v < 0) & (idx > 0)).to(idx.dtype) << 3


def _fp4_values(codes: torch.Tensor) -> torch.Tensor:
    table = torch.tensor(FP4_VALUES, device=codes.device)
    mag = table[(codes & 7).long()]
    return torch.where((codes & 8) > 0, -mag, mag)


def fp4_roundtrip(x: torch.Tensor, block: int = 32) -> torch.Tensor:
    """MXFP4 quantize + dequantize per `block` channels (power-of-two scale, max 6.0)."""
    xb = _blocks(x.float(), block)
    s = pow2_scale(xb.abs().amax(-1, keepdim=True), FP4_MAX)
    return (_fp4_values(_fp4_codes(xb / s)) * s).flatten(-2).to(x.dtype)


def hadamard(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal Walsh-Hadamard transform of the last dim (a power of two): H·x/sqrt(n)."""
    n = x.shape[-1]
    if n & (n - 1):
        raise ValueError(f"Hadamard size {n} is not a power of two")
    y = x.float()
    h = 1
    while h < n:  # butterflies: pairs (i, i+h) within blocks of 2h
        y = y.unflatten(-1, (n // (2 * h), 2, h))
        y = torch.stack((y[..., 0, :] + y[..., 1, :], y[..., 0, :] - y[..., 1, :]), -2)
        y = y.flatten(-3)
        h *= 2
    return (y / math.sqrt(n)).to(x.dtype)


# ---- weights ------------------------------------------------------------------------------

def fp8_scale_shape(out_f: int, in_f: int, block: int = 128) -> tuple[int, int]:
    return (math.ceil(out_f / block), math.ceil(in_f / block))


def quantize_fp8_weight(w: torch.Tensor, block: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., out, in] float -> (e4m3 [..., out, in], e8m0 [..., ceil(out/128), ceil(in/128)])."""
    *lead, o, i = w.shape
    so, si = fp8_scale_shape(o, i, block)
    pad = torch.zeros(*lead, so * block, si * block, dtype=torch.float32, device=w.device)
    pad[..., :o, :i] = w.float()
    tiles = pad.unflatten(-1, (si, block)).unflatten(-3, (so, block))  # [.., so, b, si, b]
    s = pow2_scale(tiles.abs().amax(dim=(-3, -1)), FP8_MAX)  # [.., so, si]
    q = (tiles / s[..., :, None, :, None]).clamp(-FP8_MAX, FP8_MAX)
    q = q.flatten(-2).flatten(-3, -2)[..., :o, :i]
    return q.to(torch.float8_e4m3fn), s.to(torch.float8_e8m0fnu)


def dequant_fp8_weight(w: torch.Tensor, scale: torch.Tensor, block: int = 128) -> torch.Tensor:
    """e4m3 [..., out, in] × e8m0 block scales -> float32 [..., out, in]."""
    o, i = w.shape[-2:]
    s = scale.float().repeat_interleave(block, -2).repeat_interleave(block, -1)
    return w.float() * s[..., :o, :i]


def quantize_fp4_weight(w: torch.Tensor, block: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., out, in] float -> (int8 [..., out, in/2] two codes a byte, low nibble = even index;
    e8m0 [..., out, in/32])."""
    wb = _blocks(w.float(), block)
    s = pow2_scale(wb.abs().amax(-1, keepdim=True), FP4_MAX)
    codes = _fp4_codes(wb / s).flatten(-2).to(torch.uint8)
    packed = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return packed.view(torch.int8), s.squeeze(-1).to(torch.float8_e8m0fnu)


def unpack_fp4(packed: torch.Tensor) -> torch.Tensor:
    """int8 [..., n] -> float32 e2m1 values [..., 2n] (low nibble first)."""
    b = packed.view(torch.uint8)
    codes = torch.stack((b & 0xF, b >> 4), -1).flatten(-2)
    return _fp4_values(codes)


def dequant_fp4_weight(packed: torch.Tensor, scale: torch.Tensor, block: int = 32) -> torch.Tensor:
    return unpack_fp4(packed) * scale.float().repeat_interleave(block, -1)
