"""mHC kernels vs twins: the fused projection + Sinkhorn + pre-reduction and the post-mix, at
n = 4 (Flash) and n = 3 (padded to 4), D not a multiple of the block, one token, no tokens,
bf16 streams. Tolerance: 1e-4 on fp32 (the kernel sums in another order and applies the RMS
factor after the projection), 2e-2 where outputs are bf16."""

from __future__ import annotations

import pytest
import torch

from engine.kernels import mhc as M
from tests.engine.kernels.conftest import gen


def _params(n: int, d: int, g):
    m = (2 + n) * n
    return (torch.randn(m, n * d, generator=g) * 0.05, torch.randn(m, generator=g),
            torch.rand(3, generator=g) + 0.5)


@pytest.mark.parametrize("s,n,d", [(3, 4, 100), (1, 4, 300), (2, 3, 64), (0, 4, 32)])
@pytest.mark.parametrize("iters", [1, 20])
def test_hc_pre_matches_twin(s, n, d, iters):
    g = gen(s * n + d)
    x = torch.randn(s, n, d, generator=g)
    fn, base, scale = _params(n, d, g)
    got = M.hc_pre(x, fn, base, scale, iters, 1e-6, 1e-6)
    want = M.hc_pre_ref(x, fn, base, scale, iters, 1e-6, 1e-6)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    if s and iters == 20:  # Sinkhorn after 20 rounds: columns sum to ~1
        torch.testing.assert_close(got[2].sum(-2), torch.ones(s, n), rtol=0, atol=1e-3)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_hc_post_matches_twin(dtype, tol):
    g = gen(11)
    s, n, d = 5, 4, 130
    x, y = torch.randn(s, n, d, generator=g).to(dtype), torch.randn(s, d, generator=g).to(dtype)
    post, comb = torch.rand(s, n, generator=g) * 2, torch.rand(s, n, n, generator=g)
    got, want = M.hc_post(y, x, post, comb), M.hc_post_ref(y, x, post, comb)
    assert got.dtype == dtype
    torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol)


def test_hc_pre_rejects_wrong_fn():
    x = torch.randn(1, 4, 8)
    with pytest.raises(ValueError, match="fn must be"):
        M.hc_pre(x, torch.zeros(24, 8), torch.zeros(24), torch.ones(3), 1, 1e-6, 1e-6)
