"""The live rows of a sequence's state, in their storage format, appended in place.

One `Rows` holds rows of one kind (the window ring, a block's compressed KV entries, or its
indexer keys) in planes of a fixed capacity. Rows are written where they belong (`put`), never
concatenated; growing past the capacity (`reserve`) reallocates to a larger whole number of
pages, at least doubling, so a long sequence grows O(log n) times, never per token.

Formats, bytes per row at Flash shapes (d=512, rope r=64, indexer di=128):
  "fp8"    KV rows as the release caches them: nope dims e4m3 [d-r] + one e8m0 scale per 64
           [(d-r)/64] + rope dims bf16 [r]: 448 + 7 + 128 = 583 B. Official numerics FP8-round
           the nope dims first (64-wide blocks), so they are stored exactly; the rope dims are
           read back as bf16, which is what the release's kernels read.
  "fp4"    indexer keys in MXFP4: e2m1 codes two a byte [di/2] (low nibble = even channel) + e8m0
           per 32 [di/32]: 64 + 4 = 68 B. Official keys are MXFP4-rounded first: exact.
  "float"  rows as computed, in `dtype` (reference numerics: the transformers comparison needs
           unrounded values). d·4 B in float32.
Planes hold bytes (uint8) where torch has no in-place index writes for the float8 dtypes.
An eager CPU step encodes and decodes rows with engine/kernels/fused_cpu.py's ops (the same
bytes and floats as the torch forms below, their twins, in one dispatch each).
"""

from __future__ import annotations

import torch

from engine import quant
from engine.kernels import fused_cpu

PAGE = 64  # rows per page: capacities are whole pages


def _fp4_pairs(device) -> torch.Tensor:
    """byte -> its (even, odd) channels' e2m1 values [256, 2] (low nibble first)."""
    val = lambda c: quant.FP4_VALUES[c & 7] * (-1.0 if c & 8 else 1.0)
    return torch.tensor([[val(b & 15), val(b >> 4)] for b in range(256)], device=device)


def pages_for(n: int) -> int:
    """Rows in the whole pages that hold n rows."""
    return -(-n // PAGE) * PAGE


def row_bytes(fmt: str, width: int, rope: int = 0, dtype=torch.float32) -> int:
    """Bytes one row takes in `fmt` (see the module docstring)."""
    if fmt == "fp8":
        nope = width - rope
        return nope + nope // min(64, nope) + 2 * rope
    if fmt == "fp4":
        return width // 2 + width // 32
    return width * torch.empty(0, dtype=dtype).element_size()


class Rows:
    """Rows [capacity, width] of one kind in `fmt`. `rope`: trailing rope dims (fp8 only)."""

    def __init__(self, fmt: str, planes: tuple[torch.Tensor, ...], width: int, rope: int = 0):
        self.fmt, self.planes, self.width, self.rope = fmt, planes, width, rope
        # fp4: the byte -> values table on the rows' device (a graph reads no host tensor)
        self.lut = _fp4_pairs(planes[0].device) if fmt == "fp4" else None

    @classmethod
    def empty(cls, fmt: str, width: int, capacity: int, device=None, rope: int = 0,
              dtype: torch.dtype = torch.float32) -> Rows:
        return cls(fmt, _planes(fmt, width, rope, capacity, device, dtype), width, rope)

    @property
    def capacity(self) -> int:
        return self.planes[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.planes[0].device

    def nbytes(self, n: int | None = None) -> int:
        """Bytes held (all the capacity), or taken by the first n rows."""
        rows = self.capacity if n is None else n
        return sum(p[:1].numel() * p.element_size() for p in self.planes) * rows

    def reserve(self, n: int) -> None:
        """Make room for n rows: whole pages, at least twice the old capacity."""
        if n <= self.capacity:
            return
        cap = pages_for(max(n, 2 * self.capacity))
        new = _planes(self.fmt, self.width, self.rope, cap, self.device, self.planes[0].dtype)
        for a, b in zip(new, self.planes, strict=True):
            a[: b.shape[0]] = b
        self.planes = new

    def encode(self, values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """values [n, width] -> the planes' rows [n, ...]."""
        if self.fmt == "fp8":
            if values.dim() == 2 and fused_cpu.ready(values):  # the same bytes, one op
                return fused_cpu.fp8_rows_encode(values, self.rope)
            return _fp8_encode(values, self.rope)
        if self.fmt == "fp4":
            if fused_cpu.ready(values):
                return fused_cpu.fp4_rows_encode(values)
            return _fp4_encode(values)
        return (values.to(self.planes[0].dtype),)

    def put(self, idx: torch.Tensor, values: torch.Tensor) -> None:
        """Write rows values [n, width] at row numbers idx [n] (in place, static shapes)."""
        for plane, v in zip(self.planes, self.encode(values), strict=True):
            plane.index_copy_(0, idx, v)

    def write(self, start: int, values: torch.Tensor) -> None:
        """Write rows start.. (prefill)."""
        for plane, v in zip(self.planes, self.encode(values), strict=True):
            plane[start:start + v.shape[0]] = v

    def dense(self, n: int | None = None) -> torch.Tensor:
        """The first n rows (all by default) as float32 [n, width]."""
        return self.decode(tuple(p[:n] if n is not None else p for p in self.planes))

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows idx [...] (valid row numbers) as float32 [..., width]."""
        return self.decode(tuple(p[idx] for p in self.planes))

    def decode(self, planes: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self.fmt == "fp8":
            if fused_cpu.eager_cpu(*planes):  # the same floats, one op
                return fused_cpu.fp8_rows_decode(*planes)
            return _fp8_decode(*planes)
        if self.fmt == "fp4":
            if fused_cpu.eager_cpu(*planes):
                return fused_cpu.fp4_rows_decode(*planes)
            return _fp4_decode(*planes, self.lut)
        return planes[0] if planes[0].dtype == torch.float32 else planes[0].float()

    def copy(self, n: int | None = None) -> Rows:
        """A copy of the first n rows' pages (all by default)."""
        keep = self.capacity if n is None else min(self.capacity, pages_for(n))
        return Rows(self.fmt, tuple(p[:keep].clone() for p in self.planes), self.width,
                    self.rope)

    def to(self, device) -> Rows:
        return Rows(self.fmt, tuple(p.to(device) for p in self.planes), self.width, self.rope)


def _planes(fmt, width, rope, capacity, device, dtype) -> tuple[torch.Tensor, ...]:
    z = lambda n, dt=torch.uint8: torch.zeros(capacity, n, dtype=dt, device=device)
    if fmt == "fp8":
        nope = width - rope
        return z(nope), z(nope // min(64, nope)), z(rope, torch.bfloat16)
    if fmt == "fp4":
        return z(width // 2), z(width // 32)
    if fmt == "float":
        return (z(width, dtype),)
    raise ValueError(f"rows: unknown format {fmt!r}")


def _fp8_encode(v: torch.Tensor, rope: int) -> tuple[torch.Tensor, ...]:
    """[n, d] -> nope e4m3 bytes [n, d-r], e8m0 scale bytes [n, (d-r)/64], rope bf16 [n, r]."""
    nope = v[:, :-rope].float()
    b = nope.unflatten(-1, (-1, min(64, nope.shape[1])))
    s = quant.pow2_scale(b.abs().amax(-1, keepdim=True), quant.FP8_MAX)
    q = (b / s).clamp(-quant.FP8_MAX, quant.FP8_MAX).to(torch.float8_e4m3fn).flatten(-2)
    return q.view(torch.uint8), _e8m0_bytes(s.squeeze(-1)), v[:, -rope:].to(torch.bfloat16)


def _fp8_decode(nope: torch.Tensor, scale: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
    q = nope.view(torch.float8_e4m3fn).float().unflatten(-1, (scale.shape[-1], -1))
    return torch.cat(((q * _e8m0_values(scale).unsqueeze(-1)).flatten(-2), rope.float()), -1)


# e8m0 scales by their bits (inductor has no float8_e8m0fnu): byte e is 2^(e-127), a float32
# whose exponent field is e; the scales here are powers of two ≥ 2^-22 (amax floored at 1e-4)

def _e8m0_bytes(s: torch.Tensor) -> torch.Tensor:
    """Powers of two (float32) -> their e8m0 bytes."""
    return (s.float().view(torch.int32) >> 23).to(torch.uint8)


def _e8m0_values(b: torch.Tensor) -> torch.Tensor:
    return (b.to(torch.int32) << 23).view(torch.float32)


def _fp4_encode(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[n, di] -> e2m1 codes two a byte (low nibble = even channel) [n, di/2] and e8m0 scale
    bytes per 32 [n, di/32]: quant.quantize_fp4_weight's rounding (exact on MXFP4-rounded
    keys), with the scales as bytes."""
    b = v.float().unflatten(-1, (-1, 32))
    s = quant.pow2_scale(b.abs().amax(-1, keepdim=True), quant.FP4_MAX)
    codes = quant._fp4_codes(b / s).flatten(-2).to(torch.uint8)
    return codes[..., 0::2] | (codes[..., 1::2] << 4), _e8m0_bytes(s.squeeze(-1))


def _fp4_decode(packed: torch.Tensor, scale: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """Bytes [..., di/2] + scales [..., di/32] -> [..., di] (a table lookup per byte)."""
    v = lut[packed.int()]                                            # [..., di/2, 2]
    v = v.flatten(-2).unflatten(-1, (scale.shape[-1], -1))           # [..., di/32, 32]
    return (v * _e8m0_values(scale).unsqueeze(-1)).flatten(-2)
