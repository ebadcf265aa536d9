"""Indexer scores kernel vs twin: float and MXFP4 keys, causal limits (incl. 0 and 1 visible
entries), odd N and head counts; then the top-k selection from both agrees.
Tolerance 1e-4 (fp32 on both sides); top-k must agree exactly where scores are not tied."""

from __future__ import annotations

import pytest
import torch

from engine import quant
from engine.kernels import indexer as I
from tests.engine.kernels.conftest import gen


def _fp4_keys(n: int, di: int, g) -> I.KeysFp4:
    packed, scale = quant.quantize_fp4_weight(torch.randn(n, di, generator=g))
    return I.KeysFp4(packed, scale.float())


@pytest.mark.parametrize("s,h,di,n", [(1, 4, 32, 1), (3, 5, 32, 45), (6, 4, 64, 70)])
@pytest.mark.parametrize("fp4", [False, True])
def test_scores_match_twin(s, h, di, n, fp4):
    g = gen(s + n)
    q, w = torch.randn(s, h, di, generator=g), torch.randn(s, h, generator=g)
    keys = _fp4_keys(n, di, g) if fp4 else torch.randn(n, di, generator=g)
    limit = torch.randint(0, n + 1, (s,), generator=g)
    limit[0] = 0 if s > 1 else limit[0]
    want = I.index_scores_ref(q, keys, w, limit)
    got = I.index_scores(q, keys, w, limit)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    if s > 1:
        assert torch.isinf(got[0]).all()
    vis = torch.arange(n)[None] < limit[:, None]
    torch.testing.assert_close(I.topk_mask(got, vis, 4), I.topk_mask(want, vis, 4))


def test_fp4_decode_matches_quant_module():
    g = gen(9)
    keys = _fp4_keys(7, 32, g)
    q, w = torch.eye(32)[None, :1].expand(1, 1, 32).contiguous(), torch.ones(1, 1)
    # with q = e_0 and w = 1 the score is ReLU(key[:, 0])
    got = I.index_scores(q, keys, w)
    torch.testing.assert_close(got[0], keys.dequant()[:, 0].clamp(min=0))


def test_no_keys_and_bad_layout():
    q, w = torch.randn(2, 4, 32), torch.randn(2, 4)
    assert I.index_scores(q, torch.zeros(0, 32), w).shape == (2, 0)
    with pytest.raises(ValueError, match="keys must be"):
        I.index_scores(q, torch.zeros(3, 16), w)


def test_fp8_keys_are_read_as_stored():
    """FP8 (e4m3) keys go through the float path: converted after the load, not before."""
    g = gen(12)
    keys = (torch.randn(9, 64, generator=g) * 4).to(torch.float8_e4m3fn)
    q, w = torch.randn(2, 3, 64, generator=g), torch.randn(2, 3, generator=g)
    torch.testing.assert_close(I.index_scores(q, keys, w), I.index_scores_ref(q, keys, w),
                               rtol=1e-4, atol=1e-4)
