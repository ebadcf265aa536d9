"""The per-query gathering twin of index-form attention (engine/kernels/sparse_rows.py) against
the index-form kernel and against the mask-form twin: odd shapes, query blocks that do not
tile, −1 padding, empty index sets, repeated rows, fused inverse RoPE.
Tolerance: fp32 accumulation on every side, 1e-4."""

from __future__ import annotations

import pytest
import torch

from engine.kernels import attention as A
from engine.kernels import sparse_rows as R
from engine.kernels.rope import inv_freq
from tests.engine.kernels.conftest import gen


def _case(s: int, h: int, d: int, n: int, k: int, seed: int):
    g = gen(seed)
    q, kv = torch.randn(s, h, d, generator=g), torch.randn(n, d, generator=g)
    idx = torch.randint(0, n, (s, k), generator=g, dtype=torch.int32)
    idx[torch.rand(s, k, generator=g) < 0.3] = -1
    if s > 1:
        idx[0] = -1                               # an empty set: only the sink, output 0
        idx[-1, :2] = 0                           # a row listed twice counts twice
    return q, kv, idx, torch.randn(h, generator=g)


@pytest.mark.parametrize("s,h,d,n,k", [(1, 4, 64, 37, 9), (70, 3, 48, 130, 17), (5, 17, 64, 1, 2)])
def test_gathering_twin_matches_the_kernel(s, h, d, n, k, monkeypatch):
    monkeypatch.setattr(R, "QUERY_BLOCK", 16)  # several blocks, the last one short
    q, kv, idx, sink = _case(s, h, d, n, k, s + n)
    want = R.gather_attention(q, kv, idx, sink, d ** -0.5)
    got = R.gather_attention_ref(q, kv, idx, sink, d ** -0.5)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    if s > 1:
        assert got[0].abs().max() == 0


def test_gathering_twin_equals_the_mask_twin_with_inverse_rope():
    """Distinct rows per query: the index form is the mask form (a repeated index would count
    its row twice in the index form only)."""
    g, s, h, d, n, k = gen(5), 33, 4, 64, 90, 12
    q, kv = torch.randn(s, h, d, generator=g), torch.randn(n, d, generator=g)
    idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(s)]).int()
    idx[:, -3:] = -1
    sink, pos, f = torch.randn(h, generator=g), torch.arange(100, 100 + s), inv_freq(16, 1e4)
    want = A.gather_attention_ref(q, kv, idx, sink, 0.1, (pos, f))
    got = R.gather_attention_ref(q, kv, idx, sink, 0.1, (pos, f))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
