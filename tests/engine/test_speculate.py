"""MTP speculation: greedy output identical to plain greedy decoding; acceptance counted."""

from __future__ import annotations

import random

import pytest

from engine.config import preset
from engine.speculate import MTPDrafter, generate, greedy
from engine.weights.tiny import random_model


@pytest.fixture(scope="module", params=["tiny", "tiny-window"])
def model(request):
    return random_model(preset(request.param), seed=3, mode="reference")


def _prompt(n: int, seed: int) -> list[int]:
    r = random.Random(seed)
    return [r.randrange(1024) for _ in range(n)]


def _oracle(want: list[int], n_prompt: int, p_right: float):
    """The MTP drafter's bookkeeping, but the draft is the true greedy token with p_right."""
    rng = random.Random(0)

    class Oracle(MTPDrafter):
        def propose(self, last, nxt):
            super().propose(last, nxt)
            j = self.state.mtp[0].pos + 1 - n_prompt
            right = want[j] if j < len(want) else 0
            return right if rng.random() < p_right else (right + 1) % 1024
    return Oracle


def test_mtp_speculation_equals_greedy(model):
    prompt = _prompt(37, 1)
    want = greedy(model, prompt, 30)
    got, stats = generate(model, prompt, 30)
    assert got == want
    assert stats.drafted == stats.forwards > 0 and 0 <= stats.acceptance <= 1


@pytest.mark.parametrize("p_right", [0.0, 0.6, 1.0])
def test_accept_and_reject_paths_roll_back_exactly(model, p_right):
    """Accepts and rejects at every phase of the 4- and 128-token windows."""
    prompt = _prompt(123, 2)
    want = greedy(model, prompt, 40)
    got, stats = generate(model, prompt, 40, drafter_cls=_oracle(want, len(prompt), p_right))
    assert got == want
    if p_right == 1.0:
        assert stats.acceptance == 1.0 and stats.forwards <= 20
    if p_right == 0.0:
        assert stats.accepted == 0 and stats.forwards == 39

