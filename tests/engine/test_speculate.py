"""MTP speculation (speculate.Stepper, as the generation loop drives it): greedy output identical
to plain greedy decoding; acceptance counted."""

from __future__ import annotations

import random

import pytest

from engine import speculate
from engine.config import preset
from engine.speculate import MTPDrafter, greedy
from engine.weights.tiny import random_model
from tests.engine.spec_fixtures import decode


@pytest.fixture(scope="module", params=["tiny", "tiny-window"])
def model(request):
    return random_model(preset(request.param), seed=3, mode="reference")


def _prompt(n: int, seed: int) -> list[int]:
    r = random.Random(seed)
    return [r.randrange(1024) for _ in range(n)]


def _oracle(want: list[int], n_prompt: int, p_right: float):
    """The MTP drafter's bookkeeping, but the draft is the true greedy token with p_right. The
    drafter sees the prompt's last prefill chunk: here the whole prompt (under 128 tokens)."""
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
    got, stats = decode(model, prompt, 30)
    assert got == want
    assert stats.drafted == stats.forwards > 0 and 0 <= stats.acceptance <= 1


@pytest.mark.parametrize("p_right", [0.0, 0.6, 1.0])
def test_accept_and_reject_paths_roll_back_exactly(model, p_right, monkeypatch):
    """Accepts and rejects at every phase of the 4- and 128-token windows."""
    prompt = _prompt(123, 2)
    want = greedy(model, prompt, 40)
    monkeypatch.setattr(speculate, "MTPDrafter", _oracle(want, len(prompt), p_right))
    got, stats = decode(model, prompt, 40)
    assert got == want
    if p_right == 1.0:
        assert stats.acceptance == 1.0 and stats.forwards <= 20
    if p_right == 0.0:
        assert stats.accepted == 0 and stats.forwards == 39

