"""Compressor pooling kernel vs twin: CSA windows (8 slots, the first window's previous half
empty = −inf gates), HCA windows (128 slots, more than one slot block), one window (decode),
no window, channel counts that are not a multiple of the block. Tolerance 1e-5 (fp32)."""

from __future__ import annotations

import pytest
import torch

from engine.kernels import compressor as C
from tests.engine.kernels.conftest import gen


@pytest.mark.parametrize("n,m,d", [(3, 8, 64), (1, 128, 40), (2, 8, 200), (0, 8, 32)])
def test_pool_matches_twin(n, m, d):
    g = gen(n * 7 + m)
    kv = torch.randn(n, m, d, generator=g)
    gate = torch.randn(n, m, d, generator=g) * 4
    if n and m == 8:
        gate[0, :4] = float("-inf")  # CSA: nothing before the very first window
    got = C.pool(kv, gate)
    torch.testing.assert_close(got, C.pool_ref(kv, gate), rtol=1e-5, atol=1e-5)
    assert got.shape == (n, d)


def test_pool_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="both be"):
        C.pool(torch.zeros(1, 8, 4), torch.zeros(1, 4, 4))
