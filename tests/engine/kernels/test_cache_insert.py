"""Fused norm + RoPE + FP8 rounding kernel vs twin: with and without the norm, with and without
FP8, tiny (48 nope dims: one block) and Flash-like (448 = 7 × 64) widths, one row, no rows;
then the storage form written at ring slots and read back by the attention kernel.
Tolerance: 1e-5 before rounding; after FP8 rounding a one-ulp flip (2^-3 of the scale)
can happen where the fp32 inputs differ in the last bit, so 1/16 of the row's max there."""

from __future__ import annotations

import pytest
import torch

from engine.kernels import attention as A
from engine.kernels import cache_insert as CI
from engine.kernels.rope import inv_freq
from tests.engine.kernels.conftest import gen


@pytest.mark.parametrize("s,d,r", [(5, 64, 16), (1, 512, 64), (0, 64, 16), (3, 40, 8)])
@pytest.mark.parametrize("norm,qblock", [(True, 0), (False, 64), (True, 64)])
def test_norm_rope_matches_twin(s, d, r, norm, qblock):
    g = gen(s + d)
    x = torch.randn(s, d, generator=g) * 2
    w = torch.rand(d, generator=g) + 0.5 if norm else None
    pos = torch.randint(0, 1 << 20, (s,), generator=g)
    freqs = inv_freq(r, 10000.0, 16.0, 4096)
    want = CI.norm_rope_ref(x, w, 1e-6, pos, freqs, qblock)
    got = CI.norm_rope(x, w, 1e-6, pos, freqs, qblock)
    if not qblock:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    else:
        tol = want.abs().amax().item() / 16 if s else 0
        torch.testing.assert_close(got, want, rtol=0, atol=tol)
        close = (got - want).abs() <= 1e-5 + 1e-5 * want.abs()
        assert close.float().mean() > 0.95 if s else True  # flips are rare


def test_storage_insert_at_ring_edge_then_attention_reads_it():
    """Rows for positions 6..9 go into an 8-slot ring (slots 6, 7, 0, 1: wrapping)."""
    g, d, r, W = gen(1), 64, 16, 8
    x, w = torch.randn(4, d, generator=g), torch.rand(d, generator=g) + 0.5
    pos = torch.arange(6, 10)
    freqs = inv_freq(r, 10000.0)
    mk = lambda: A.KVFp8(torch.zeros(W, d - r, dtype=torch.float8_e4m3fn),  # noqa: E731
                         torch.ones(W, 1), torch.zeros(W, r, dtype=torch.bfloat16))
    got, want = mk(), mk()
    CI.insert_fp8(got, pos % W, x, w, 1e-6, pos, freqs, 64)
    CI.insert_fp8_ref(want, pos % W, x, w, 1e-6, pos, freqs, 64)
    torch.testing.assert_close(got.dequant(), want.dequant(), rtol=0, atol=0.1)
    assert got.nope[[2, 3, 4, 5]].float().abs().sum() == 0  # untouched slots
    q, sink = torch.randn(1, 2, d, generator=g), torch.zeros(2)
    idx = torch.tensor([[6, 7, 0, 1]], dtype=torch.int32)
    torch.testing.assert_close(A.gather_attention(q, got, idx, sink, 0.125),
                               A.gather_attention_ref(q, want, idx, sink, 0.125),
                               rtol=0.05, atol=0.05)
