"""`official` numerics differ from `reference` only where the simulated rounding acts.

official = reference + (a) FP8 round trip of GEMM activations, (b) FP8 round trip of KV nope
dims, (c) Hadamard + FP4 round trip of indexer q/k, plus two exact-arithmetic reorderings of
the release (routing weight before W2; no clamp on the shared expert, which the tiny model's
activations never reach). With (a)-(c) off the two modes agree to float rounding; each of
(a)-(c) alone moves the logits, and (c) only where the indexer's choice matters.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from engine.config import preset
from engine.numerics import Numerics
from engine.weights.tiny import random_model

OFFICIAL = Numerics.of("official")
NO_ROUNDING = replace(OFFICIAL, act_fp8=False, kv_fp8=False, indexer_fp4=False)


def _run(model, numerics: Numerics, toks):
    old = Numerics(**model.numerics.__dict__)
    model.numerics.set(numerics)
    try:
        return model(toks)
    finally:
        model.numerics.set(old)


@pytest.fixture(scope="module")
def topk_model():
    return random_model(preset("tiny-topk"), seed=2, mode="reference")


def test_official_differs_from_reference(tiny_model, tokens):
    ref = _run(tiny_model, Numerics.of("reference"), tokens[:200])
    off = _run(tiny_model, OFFICIAL, tokens[:200])
    assert (off - ref).abs().max() > 1e-2
    assert (off.argmax(-1) == ref.argmax(-1)).float().mean() > 0.5  # same model, rounded


def test_without_rounding_official_is_reference(tiny_model, tokens):
    ref = _run(tiny_model, Numerics.of("reference"), tokens[:200])
    assert (_run(tiny_model, NO_ROUNDING, tokens[:200]) - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("flag", ["act_fp8", "kv_fp8"])
def test_each_rounding_alone_moves_every_position(flag, tiny_model, tokens):
    ref = _run(tiny_model, NO_ROUNDING, tokens[:64])
    one = _run(tiny_model, replace(NO_ROUNDING, **{flag: True}), tokens[:64])
    assert (one - ref).abs().amax(-1).min() > 1e-5  # from the very first token


def test_indexer_rounding_acts_only_through_the_topk_choice(tiny_model, topk_model, tokens):
    # every visible row is selected (top-k > rows): the indexer's scores cannot matter
    ref = _run(tiny_model, NO_ROUNDING, tokens[:200])
    assert torch.equal(_run(tiny_model, replace(NO_ROUNDING, indexer_fp4=True), tokens[:200]),
                       ref)
    # top-k = 4: identical while at most 4 rows are visible (t < 19), different later
    ref = _run(topk_model, NO_ROUNDING, tokens[:200])
    fp4 = _run(topk_model, replace(NO_ROUNDING, indexer_fp4=True), tokens[:200])
    moved = (fp4 - ref).abs().amax(-1)
    assert torch.equal(moved[:19], torch.zeros(19))
    assert moved[19:].max() > 1e-3


def test_official_decode_tracks_prefill(tiny_model, tokens):
    """FP8 rounding turns ulp-level GEMM differences (1 row vs S rows) into occasional
    one-step roundings, so official decode matches prefill closely but not to 1e-5."""
    toks = tokens[:140]
    full = _run(tiny_model, OFFICIAL, toks)
    tiny_model.numerics.set(OFFICIAL)
    try:
        st = tiny_model.new_state()
        dec = torch.cat([tiny_model(toks[i:i + 1], st) for i in range(len(toks))])
    finally:
        tiny_model.numerics.set(Numerics.of("reference"))
    assert (dec - full).abs().max() < 0.1
    assert (dec.argmax(-1) == full.argmax(-1)).float().mean() > 0.95
