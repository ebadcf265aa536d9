"""MTP speculation inside the generation loop: greedy output identical with and without it,
the acceptance rate in Usage, the switch, and the prefix cache left holding what was fed."""

from __future__ import annotations

import pytest

from engine.api import Engine
from engine.events import Done, Usage
from engine.sampling import SamplingParams

HI = [{"role": "user", "content": "Say something long about the weather and the sea."}]


@pytest.fixture(scope="module")
def engine(tiny_ckpt) -> Engine:
    return Engine.load(tiny_ckpt)


def _run(engine: Engine, **kw):
    ev = list(engine.stream(HI, None, SamplingParams(**kw)))
    usage = next(e for e in ev if isinstance(e, Usage))
    return ev[-1], usage


def test_checkpoint_has_mtp(engine):
    assert len(engine.model.mtp) == 1


@pytest.mark.parametrize("constrain", [True, False])
def test_greedy_same_with_and_without_speculation(engine, constrain):
    engine.gen.cache.clear() if hasattr(engine.gen.cache, "clear") else None
    plain, u0 = _run(engine, temperature=0, max_tokens=40, speculate=False,
                     constrain=constrain)
    spec, u1 = _run(engine, temperature=0, max_tokens=40, constrain=constrain)
    assert isinstance(spec, Done) and spec.tokens == plain.tokens and len(spec.tokens) > 1
    assert spec.finish_reason == plain.finish_reason
    assert u0.spec_acceptance is None
    assert u1.spec_acceptance is not None and 0.0 <= u1.spec_acceptance <= 1.0


def test_sampling_does_not_speculate(engine):
    _, u = _run(engine, temperature=0.8, seed=3, max_tokens=8)
    assert u.spec_acceptance is None


def test_state_after_speculation_extends_exactly(engine):
    """The cached state holds exactly the fed tokens: the next turn reuses it and gets the
    same reply as a cold engine would."""
    first, _ = _run(engine, temperature=0, max_tokens=24)
    msgs = HI + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
    warm = list(engine.stream(msgs, None, SamplingParams(temperature=0, max_tokens=16)))
    cold_engine = Engine(engine.model, engine.tok)
    cold = list(cold_engine.stream(msgs, None, SamplingParams(temperature=0, max_tokens=16,
                                                              speculate=False)))
    assert warm[-1].tokens == cold[-1].tokens
    assert first.tokens


def test_accepted_drafts_keep_the_output(engine, monkeypatch):
    """An oracle drafter (it knows the plain greedy reply) makes most drafts accepted: the
    accept path must give the same tokens, and fewer forwards."""
    from engine import speculate

    plain, _ = _run(engine, temperature=0, max_tokens=40, speculate=False)
    seq, where = plain.tokens, [0]

    def oracle(self, last, tok):
        self.feed(last, [tok])
        i = where[0]
        while i < len(seq) - 1 and seq[i] != tok:
            i += 1
        where[0] = i + 1
        return seq[i + 1] if i + 1 < len(seq) else tok

    monkeypatch.setattr(speculate.MTPDrafter, "propose", oracle)
    spec, u = _run(engine, temperature=0, max_tokens=40)
    assert spec.tokens == plain.tokens
    assert u.spec_acceptance > 0.5
