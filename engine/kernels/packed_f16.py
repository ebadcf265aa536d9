"""Float32 weights kept as fp16 in fbgemm's packed layout, for CPU decode and prefill.

A decode step streams every weight once from memory through one core; a GEMM that reads
2 bytes a weight and widens them inside the kernel (fbgemm's fp16 GEMM: float32 activations,
fp32 accumulation) is ~3x faster than a float32 one and needs no per-call widening. Only
weights that fp16 holds exactly are packed: FP8/FP4 values (≤ 3 mantissa bits times a power of
two) and most bf16 ones, after one power-of-two shift of the whole tensor into fp16's range.
The products and sums are float32 as before, in another order: results agree with
`F.linear(x, w)` to float32 rounding (~1e-6 relative), not bit for bit.

  PackedF16.pack(w [N, K] fp32, groups) -> PackedF16 | None (None: not exact, or no fbgemm)
  p.linear(x [..., K]) -> [..., N] fp32;  groups G: p.grouped(x [..., G, K/G]) -> [..., G, N/G]
  p.float() -> w [N, K] fp32 (exact, slow: for loaders and tests)
"""

from __future__ import annotations

import math
import warnings

import torch

from engine.kernels.scalars import scalar

_DEPRECATED = "fbgemm_.* is deprecated"  # still in the pinned torch; nothing replaces it on CPU


def _fp16_shift(w: torch.Tensor) -> int:
    """k with |w|·2^-k below 2^15 (fp16 max 65504) and as high as that allows, so that the
    smallest values keep their bits (tried when w does not fit fp16 as it is)."""
    amax = float(w.abs().max()) if w.numel() else 0.0
    return math.floor(math.log2(amax)) - 14 if amax > 0 else 0


class PackedF16:
    """w ≈ 2^shift · fp16 blocks, one packed matrix per group of rows."""

    def __init__(self, packs: list[torch.Tensor], shift: int, shape: tuple[int, int]):
        self.packs, self.shift, self.shape = packs, shift, shape
        n = shape[0] // len(packs)
        self.bias = torch.zeros(n)  # fbgemm wants one; zeros add nothing
        self.nbytes = 2 * shape[0] * shape[1]

    @classmethod
    def pack(cls, w: torch.Tensor, groups: int = 1) -> PackedF16 | None:
        if w.device.type != "cpu" or w.dtype != torch.float32 or w.dim() != 2:
            return None
        for k in (0, _fp16_shift(w)):  # no shift if none is needed: one op less per GEMM
            half = (w * 2.0 ** -k).half()
            if torch.equal(half.float() * 2.0 ** k, w):
                break
        else:
            return None
        warnings.filterwarnings("ignore", message=_DEPRECATED)
        try:
            packs = [torch.fbgemm_pack_gemm_matrix_fp16(b.float().contiguous())
                     for b in half.chunk(groups)]
        except (RuntimeError, AttributeError):  # a torch without fbgemm, or without this op
            return None
        return cls(packs, k, tuple(w.shape))

    def _mm(self, x: torch.Tensor, g: int) -> torch.Tensor:
        if x.dim() == 1:  # fbgemm wants a row dimension
            return self._mm(x[None], g)[0]
        y = torch.fbgemm_linear_fp16_weight(x, self.packs[g], self.bias)
        return y * scalar(2.0 ** self.shift, y) if self.shift else y

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., K] -> x·wᵀ [..., N] in x's dtype (computed in float32)."""
        if len(self.packs) != 1:
            raise ValueError("packed_f16: a grouped weight takes grouped(x)")
        if x.dtype == torch.float32:
            return self._mm(x, 0)
        return self._mm(x.float(), 0).to(x.dtype)

    def grouped(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., G, K/G] -> [..., G, N/G]: group g's rows applied to x[..., g, :]."""
        xf = x.float()
        return torch.stack([self._mm(xf[..., g, :], g) for g in range(len(self.packs))],
                           -2).to(x.dtype)

    def float(self) -> torch.Tensor:
        """The weight [N, K], float32: each entry is 1·w, so the unpacking is exact."""
        eye = torch.eye(self.shape[1])
        return torch.cat([self._mm(eye, g).t() for g in range(len(self.packs))])
