"""FP8 block-scaled GEMM vs twin: with and without per-128 activation quantization, K below
and above one block, N across a scale-block edge (130 = 128 + 2), M = 1 (decode) and M = 0,
leading dims, every autotune config. Tolerance: fp32 accumulation both sides, 1e-4 relative to
the output scale."""

from __future__ import annotations

import pytest
import torch

from engine import quant
from engine.kernels import gemm_fp8 as G
from engine.kernels._triton import pin_config
from tests.engine.kernels.conftest import gen


@pytest.mark.parametrize("m,n,k", [(1, 130, 256), (5, 64, 64), (17, 33, 384), (0, 8, 128)])
@pytest.mark.parametrize("act", [False, True])
def test_fp8_linear_matches_twin(m, n, k, act):
    g = gen(m + n + k)
    w, s = quant.quantize_fp8_weight(torch.randn(n, k, generator=g) * 0.1)
    x = torch.randn(m, k, generator=g) * 3
    got, want = G.linear(x, w, s, "fp8", act), G.linear_ref(x, w, s, "fp8", act)
    tol = 1e-4 * max(want.abs().max().item(), 1.0) if m else 0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=tol)


@pytest.mark.parametrize("config", range(len(G.GEMM_CONFIGS)))
def test_every_config_matches_twin(config):
    """Each autotune config's BLOCK_N across a 128-wide scale block edge, prefill-sized M."""
    g = gen(config)
    w, s = quant.quantize_fp8_weight(torch.randn(200, 256, generator=g) * 0.1)
    x = torch.randn(20, 256, generator=g)
    with pin_config(config):
        got = G.linear(x, w, s, "fp8", True)
    want = G.linear_ref(x, w, s, "fp8", True)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_leading_dims_and_bf16_out():
    g = gen(2)
    w, s = quant.quantize_fp8_weight(torch.randn(48, 128, generator=g))
    x = torch.randn(2, 3, 128, generator=g).bfloat16()
    got = G.linear(x, w, s, "fp8", True)
    assert got.shape == (2, 3, 48) and got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), G.linear_ref(x, w, s, "fp8", True).float(),
                               rtol=2e-2, atol=2e-2)


def test_other_formats_use_the_twin_and_bad_shapes_fail():
    x, w = torch.randn(2, 16), torch.randn(4, 16)
    torch.testing.assert_close(G.linear(x, w, None, "bf16", True), x @ w.t())
    wq, s = quant.quantize_fp8_weight(torch.randn(8, 64))
    with pytest.raises(ValueError, match="channels"):
        G.linear(torch.randn(2, 32), wq, s, "fp8", False)
