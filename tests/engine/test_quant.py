"""Number formats: FP8/e8m0 block weights, MXFP4 packing, round trips, Hadamard."""

from __future__ import annotations

import torch

from engine import quant


def test_fp4_packing_is_low_nibble_first():
    # codes: 1 -> 0.5, 0xA -> -1.0 (sign bit 3 + code 2), 7 -> 6.0, 0 -> 0
    packed = torch.tensor([0xA1, 0x07], dtype=torch.uint8).view(torch.int8)
    assert quant.unpack_fp4(packed).tolist() == [0.5, -1.0, 6.0, 0.0]


def test_fp4_weight_round_trip_is_exact_on_representable_values():
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 16, (8, 64), generator=g)
    vals = quant._fp4_values(codes)
    scale = torch.exp2(torch.randint(-4, 4, (8, 2), generator=g).float())
    w = vals * scale.repeat_interleave(32, -1)
    packed, s = quant.quantize_fp4_weight(w)
    assert packed.shape == (8, 32) and s.shape == (8, 2) and s.dtype == torch.float8_e8m0fnu
    assert torch.equal(quant.dequant_fp4_weight(packed, s), w)


def test_fp8_weight_blocks_and_power_of_two_scales():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(200, 300, generator=g)
    q, s = quant.quantize_fp8_weight(w)
    assert q.dtype == torch.float8_e4m3fn and s.shape == (2, 3)
    sf = s.float()
    assert torch.equal(sf, torch.exp2(torch.log2(sf).round()))
    back = quant.dequant_fp8_weight(q, s)
    # e4m3: 3 mantissa bits (half-ulp 1/16 relative); subnormal spacing 2^-9 of the scale
    sfull = sf.repeat_interleave(128, 0).repeat_interleave(128, 1)[:200, :300]
    assert ((back - w).abs() <= torch.maximum(w.abs() / 16, sfull * 2 ** -10)).all()
    q2, s2 = quant.quantize_fp8_weight(back)  # dequantized values are fixed points
    assert torch.equal(quant.dequant_fp8_weight(q2, s2), back)


def test_activation_round_trips_act_per_block():
    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(2))
    y = quant.fp8_roundtrip(x, 128)
    assert not torch.equal(x, y) and ((y - x).abs() <= x.abs() / 8 + 1e-3).all()
    x2 = x.clone()
    x2[:, 200] = 1000.0  # a big value coarsens only its own 128-block
    y2 = quant.fp8_roundtrip(x2, 128)
    assert torch.equal(y2[:, :128], y[:, :128]) and not torch.equal(y2[:, 128:], y[:, 128:])
    z = quant.fp4_roundtrip(x, 32)
    assert len(torch.unique((z / 1).abs().flatten())) < 8 * 3 * 8 + 1


def test_hadamard_is_orthonormal_and_self_inverse():
    x = torch.randn(5, 128, generator=torch.Generator().manual_seed(3))
    h = quant.hadamard(x)
    assert torch.allclose(quant.hadamard(h), x, atol=1e-5)
    assert torch.allclose(h.norm(dim=-1), x.norm(dim=-1), atol=1e-4)
    assert torch.allclose(h @ h.t(), x @ x.t(), atol=1e-3)  # dot products unchanged
