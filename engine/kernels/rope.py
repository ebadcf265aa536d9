"""Partial interleaved RoPE on the trailing `rope_head_dim` channels, two frequency tables:
`main` (θ = rope_theta, plain) for sliding-only blocks and `compress` (θ = compress_rope_theta
with YaRN, no mscale) for every block that has a compressor."""

from __future__ import annotations

import math

import torch


def inv_freq(dim: int, theta: float, factor: float = 1.0, orig_len: int = 65536,
             beta_fast: float = 32.0, beta_slow: float = 1.0) -> torch.Tensor:
    """[dim/2] frequencies f_i = θ^(-2i/dim), YaRN-blended when factor > 1."""
    # explicit CPU: the model may be built under `torch.device("meta")`, and these are not loaded
    f = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device="cpu") / dim))
    if factor <= 1:
        return f

    def corr(rot: float) -> float:  # the dim index where `rot` rotations fit in orig_len
        return dim * math.log(orig_len / (rot * 2 * math.pi)) / (2 * math.log(theta))

    lo = max(math.floor(corr(beta_fast)), 0)
    hi = min(math.ceil(corr(beta_slow)), dim - 1)
    hi = hi + 0.001 if hi == lo else hi
    i = torch.arange(dim // 2, dtype=torch.float32, device="cpu")
    ramp = ((i - lo) / (hi - lo)).clamp(0, 1)
    return f / factor * ramp + f * (1 - ramp)


def apply_rope(x: torch.Tensor, pos: torch.Tensor, freqs: torch.Tensor,
               inverse: bool = False) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of the last 2·len(freqs) channels by pos·f_i (or by
    -pos·f_i when `inverse`). x: [S, ..., d]; pos: [S] absolute positions."""
    r = freqs.numel() * 2
    ang = pos.float()[:, None] * freqs.to(x.device)[None]  # [S, r/2]
    cos, sin = ang.cos(), ang.sin()
    if inverse:
        sin = -sin
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (r // 2,)
    cos, sin = cos.view(shape), sin.view(shape)
    pairs = x[..., -r:].float().unflatten(-1, (r // 2, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    rot = torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2).to(x.dtype)
    return torch.cat((x[..., :-r], rot), -1)
