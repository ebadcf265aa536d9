"""Routed experts run away from home (engine.offload): streamed to the activations' device, or
computed where they lie. Both must equal running at home bit for bit, and count what moved."""

from __future__ import annotations

import pytest
import torch

from engine import offload


@pytest.fixture(scope="module")
def experts(tiny_model):
    return tiny_model.layers[3].ffn.experts  # score-routed layer, fp4 experts


def _inputs(experts, s: int, seed: int = 0):
    e, d, _ = experts.dims
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(s, d, generator=g)
    ids = torch.stack([torch.randperm(e, generator=g)[:2] for _ in range(s)])
    w = torch.rand(s, 2, generator=g)
    return x, ids, w


def _reset(experts):
    experts.traffic.update(dict.fromkeys(experts.traffic, 0))


@pytest.mark.parametrize("s", [1, 3, 70])
def test_streaming_equals_home_and_moves_only_the_picked_experts(experts, s):
    x, ids, w = _inputs(experts, s)
    _reset(experts)
    got = offload.stream(experts, x, ids, w)
    assert torch.equal(got, experts.at_home(x, ids, w))
    n_hit = ids.unique().numel()
    assert experts.traffic["streamed_experts"] == n_hit
    per_expert = offload.stored_bytes(experts) // experts.dims[0]
    assert experts.traffic["streamed_bytes"] == n_hit * per_expert


def test_computing_at_home_equals_home_and_moves_only_activations(experts):
    x, ids, w = _inputs(experts, 2, seed=1)
    _reset(experts)
    assert torch.equal(offload.compute(experts, x, ids, w), experts.at_home(x, ids, w))
    assert experts.traffic["compute_bytes"] == 2 * x.numel() * 4
    assert experts.traffic["streamed_bytes"] == 0


def test_run_streams_a_prefill_chunk_and_computes_a_decode_token(experts):
    _reset(experts)
    offload.run(experts, *_inputs(experts, 1))
    assert experts.traffic["compute_bytes"] > 0 and experts.traffic["streamed_bytes"] == 0
    offload.run(experts, *_inputs(experts, experts.stream_from))
    assert experts.traffic["streamed_bytes"] > 0


def test_a_decode_token_streams_a_fraction_of_the_layer(experts):
    """What decode would copy per layer if it streamed: k of E experts (here 2 of 8)."""
    x, ids, w = _inputs(experts, 1)
    _reset(experts)
    offload.stream(experts, x, ids, w)
    assert experts.traffic["streamed_bytes"] * 4 == offload.stored_bytes(experts)
