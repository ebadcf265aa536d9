"""Grouped MXFP4 MoE kernels vs twin: routing with experts that get no token, one token, many
(more than one 16-row block), repeated experts; with and without FP8 activations, routing
weight before or after W2, with and without the SwiGLU clamp. Tolerance 1e-4 relative to
the output scale (fp32 accumulation in both; only the summation order differs). Every autotune
config and both expert block sizes."""

from __future__ import annotations

import pytest
import torch

from engine import quant
from engine.kernels import moe_fp4 as MO
from engine.kernels._triton import pin_config
from tests.engine.kernels.conftest import gen


def _experts(e: int, d: int, i: int, g):
    w = {}
    for name, (o, n) in {"w1": (i, d), "w2": (d, i), "w3": (i, d)}.items():
        w[name] = quant.quantize_fp4_weight(torch.randn(e, o, n, generator=g) / n ** 0.5)
    return w


@pytest.mark.parametrize("s,k,e", [(1, 2, 8), (21, 2, 3), (5, 6, 16)])
@pytest.mark.parametrize("act,before,limit", [(False, False, 0.0), (True, True, 0.5),
                                              (True, False, 10.0)])
def test_experts_match_twin(s, k, e, act, before, limit):
    g = gen(s * k + e)
    d, i = 64, 96  # I = 96: not a power of two, K of W2 is not one tile
    w = _experts(e, d, i, g)
    x = torch.randn(s, d, generator=g)
    ids = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(s)])
    weights = torch.rand(s, k, generator=g)
    want = MO.experts_ref(x, ids, weights, w, "fp4", act, limit, before)
    got = MO.experts(x, ids, weights, w, "fp4", act, limit, before)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


@pytest.mark.parametrize("config", range(len(MO.MOE_CONFIGS)))
@pytest.mark.parametrize("bm", [16, 64])
def test_every_config_and_block_size_matches_twin(config, bm):
    """Each autotune config's tile sizes, with 16- and 64-row expert blocks (prefill's on
    Hopper): 70 tokens × 2 of 3 experts fill a 64-row block and part of another."""
    g = gen(11)
    w = _experts(3, 64, 96, g)
    x, wt = torch.randn(70, 64, generator=g), torch.rand(70, 2, generator=g)
    ids = torch.stack([torch.randperm(3, generator=g)[:2] for _ in range(70)])
    want = MO.experts_ref(x, ids, wt, w, "fp4", True, 10.0, False)
    with pin_config(config):
        got = MO.experts(x, ids, wt, w, "fp4", True, 10.0, False, bm=bm)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_block_m_is_16_off_hopper_and_for_decode():
    assert MO.block_m(6, 256) == 16 and MO.block_m(24576, 256) == 16  # no target: interpreter


def test_schedule_blocks_cover_each_expert_run():
    ids = torch.tensor([[2, 0], [2, 1], [2, 0]])
    order, be, lo, hi = MO._schedule(ids, 4, 2)
    assert ids.flatten()[order].tolist() == [0, 0, 1, 2, 2, 2]
    assert list(zip(be.tolist(), lo.tolist(), hi.tolist(), strict=True)) == [
        (0, 0, 2), (1, 2, 3), (2, 3, 6), (2, 5, 6)]


def test_non_fp4_experts_use_the_twin_and_bad_shapes_fail():
    g = gen(1)
    w = {n: (torch.randn(2, 8, 8, generator=g), None) for n in ("w1", "w2", "w3")}
    x, ids, wt = torch.randn(3, 8, generator=g), torch.tensor([[0], [1], [0]]), torch.ones(3, 1)
    torch.testing.assert_close(MO.experts(x, ids, wt, w, "bf16", False, 0.0, False),
                               MO.experts_ref(x, ids, wt, w, "bf16", False, 0.0, False))
    bad = _experts(2, 64, 32, g)
    bad["w2"] = bad["w1"]
    with pytest.raises(ValueError, match="packed weights"):
        MO.experts(torch.randn(1, 64), ids[:1], wt[:1], bad, "fp4", False, 0.0, False)
