"""PackedF16: exact packing or none, float32-accurate GEMMs, groups, the power-of-two shift."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine import quant
from engine.kernels.packed_f16 import PackedF16


def _fp8_weight(n: int, k: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * scale
    return quant.dequant_fp8_weight(*quant.quantize_fp8_weight(w))


@pytest.mark.parametrize("scale", [1.0, 2.0 ** 30, 2.0 ** -30])
def test_pack_is_exact_and_linear_matches_float32(scale):
    w = _fp8_weight(300, 256, 0, scale)  # 300: not a multiple of any block
    p = PackedF16.pack(w)
    assert p is not None and torch.equal(p.float(), w)
    x = torch.randn(5, 256, generator=torch.Generator().manual_seed(1))
    want = F.linear(x.double(), w.double())
    got = p.linear(x).double()
    # float32 accuracy: within a few float32 epsilons of sum|x||w| for every output. (Not
    # "no worse than this CPU's float32 GEMM": some BLAS builds accumulate far better than
    # float32 rounding promises, and the test then failed on those machines only.)
    bound = torch.finfo(torch.float32).eps * (x.double().abs() @ w.double().abs().T)
    assert ((got - want).abs() <= 4 * bound).all()
    assert p.linear(x[0]).shape == (300,) and p.linear(x[None]).shape == (1, 5, 300)


def test_grouped_applies_each_row_block_to_its_slice():
    w = _fp8_weight(2 * 64, 96, 2)
    p = PackedF16.pack(w, groups=2)
    assert torch.equal(p.float(), w)
    x = torch.randn(3, 2, 96, generator=torch.Generator().manual_seed(3))
    want = torch.einsum("sgi,goi->sgo", x, w.view(2, 64, 96))
    assert (p.grouped(x) - want).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="grouped"):
        p.linear(x[:, 0])


def test_pack_refuses_what_fp16_cannot_hold():
    assert PackedF16.pack(torch.tensor([[1.0 + 2.0 ** -12, 1.0]])) is None  # 12 mantissa bits
    assert PackedF16.pack(torch.tensor([[1.0, 2.0 ** -40]])) is None        # 40 octaves apart
    assert PackedF16.pack(torch.ones(2, 2, dtype=torch.bfloat16)) is None    # float32 only
    z = PackedF16.pack(torch.zeros(4, 8))
    assert z is not None and torch.equal(z.linear(torch.ones(1, 8)), torch.zeros(1, 4))
