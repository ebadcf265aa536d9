"""Prefix reuse: a reused prefix + the new tokens gives the logits of a full prefill."""

from __future__ import annotations

import pytest
import torch

from engine.kv.prefix import CHUNK, SNAP, Mark, PrefixCache, extend, state_bytes

TOL = 1e-5


def _toks(n: int, seed: int) -> list[int]:
    return torch.randint(0, 1024, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _run(model, toks: list[int], state=None, chunk=SNAP):
    state = state if state is not None else model.new_state()
    return extend(model, torch.tensor(toks), state, chunk=chunk), state


def _states_equal(a, b) -> bool:
    """Same positions, window rings, open slots and closed entries (the open entry after them
    is scratch the next decode step rewrites)."""
    for x, y in zip(a.layers, b.layers, strict=True):
        if x.pos != y.pos or not torch.equal(x.window.dense(), y.window.dense()):
            return False
        for c, d in ((x.comp, y.comp), (x.index, y.index)):
            n = x.pos // c.ratio if c is not None else 0
            if c is not None and not (torch.equal(c.kv, d.kv) and torch.equal(c.gate, d.gate)
                                      and torch.equal(c.rows.dense(n), d.rows.dense(n))):
                return False
    return True


def test_extend_marks_boundaries_and_matches_forward(tiny_model):
    toks = _toks(300, 1)
    lg, st = _run(tiny_model, toks)
    assert sorted(st.marks) == [SNAP, 2 * SNAP]
    assert (lg - tiny_model(torch.tensor(toks))).abs().max() <= TOL


def test_long_chunks_end_on_boundaries(tiny_model):
    toks = _toks(700, 11)
    lg, st = _run(tiny_model, toks[:70], chunk=CHUNK)
    lg2, st = _run(tiny_model, toks[70:], st, chunk=CHUNK)
    # 70 -> 512 (the last boundary within 512), 512 -> 640 (the last one before the end), -> 700
    assert sorted(st.marks) == [512, 640]
    assert (torch.cat((lg, lg2)) - tiny_model(torch.tensor(toks))).abs().max() <= TOL


def test_mark_restores_the_exact_state(tiny_model):
    toks = _toks(300, 2)
    _, st = _run(tiny_model, toks)
    _, want = _run(tiny_model, toks[:256])
    got = st.marks[256].restore(st)
    assert got.pos == 256 and _states_equal(got, want)
    assert isinstance(got.marks[128], Mark) and 256 in got.marks


def test_extension_reuses_everything_and_matches_full_prefill(tiny_model):
    cache = PrefixCache()
    first = _toks(200, 3)
    _, st = _run(tiny_model, first)
    cache.store(first, st)
    longer = first + _toks(90, 4)
    got, n = cache.lookup(longer)
    assert n == 200
    lg, _ = _run(tiny_model, longer[n:], got)
    full = tiny_model(torch.tensor(longer))
    assert (lg - full[n:]).abs().max() <= TOL


@pytest.mark.parametrize("m", [1, 3, 4, 127, 128, 129, 131, 200, 255, 256, 257, 299])
def test_divergence_at_any_position_is_exact(tiny_model, m):
    cache = PrefixCache()
    base = _toks(300, 5)
    _, st = _run(tiny_model, base)
    cache.store(base, st)
    other = base[:m] + [(t + 1) % 1024 for t in base[m:m + 40]] + _toks(20, 6)
    got, n = cache.lookup(other)
    assert n <= m and m - n < SNAP  # at most the tail since the last boundary is redone
    if got is None:
        got = tiny_model.new_state()
    lg, _ = _run(tiny_model, other[n:], got)
    full = tiny_model(torch.tensor(other))
    assert (lg[-1] - full[-1]).abs().max() <= TOL


def test_one_token_back_uses_the_end_state(tiny_model):
    """An exact repeat of a cached prompt: n = len - 1 (the caller needs one token's logits)."""
    cache = PrefixCache()
    toks = _toks(141, 7)
    _, st = _run(tiny_model, toks)
    cache.store(toks, st)
    got, n = cache.lookup(toks)
    assert n == 140
    lg, _ = _run(tiny_model, toks[n:], got)
    assert (lg[-1] - tiny_model(torch.tensor(toks))[-1]).abs().max() <= TOL


def test_superseded_sequence_becomes_a_mark(tiny_model):
    """Turn 2 extends turn 1; turn 1's end stays reachable after turn 1's entry is folded in."""
    cache = PrefixCache()
    t1 = _toks(150, 8)
    _, st = _run(tiny_model, t1)
    cache.store(t1, st)
    t2 = t1 + _toks(60, 9)
    got, n = cache.lookup(t2)
    _, st2 = _run(tiny_model, t2[n:], got)
    cache.store(t2, st2)
    assert len(cache) == 1
    branch = t1 + _toks(10, 10)
    got, n = cache.lookup(branch)
    assert n == 150
    lg, _ = _run(tiny_model, branch[n:], got)
    assert (lg[-1] - tiny_model(torch.tensor(branch))[-1]).abs().max() <= TOL


def test_lru_eviction_under_a_byte_budget(tiny_model):
    seqs = [_toks(60, 20 + i) for i in range(4)]
    states = [_run(tiny_model, s)[1] for s in seqs]
    size = max(state_bytes(s) for s in states)
    cache = PrefixCache(budget_bytes=int(size * 2.5))
    for s, st in zip(seqs[:2], states[:2], strict=True):
        cache.store(s, st)
    assert cache.lookup(seqs[0] + [1])[1] == 60  # touch 0: 1 is now least recently used
    cache.store(seqs[2], states[2])
    assert len(cache) == 2 and cache.nbytes <= cache.budget_bytes
    assert cache.lookup(seqs[1] + [1]) == (None, 0)
    assert cache.lookup(seqs[0] + [1])[1] == 60 and cache.lookup(seqs[2] + [1])[1] == 60
    assert cache.hits == 3 and cache.misses == 1


def test_store_checks_the_length(tiny_model):
    _, st = _run(tiny_model, _toks(10, 30))
    with pytest.raises(ValueError, match="covers 10"):
        PrefixCache().store(_toks(11, 30), st)


def test_cached_state_is_a_copy(tiny_model):
    cache = PrefixCache()
    toks = _toks(50, 31)
    _, st = _run(tiny_model, toks)
    cache.store(toks, st)
    tiny_model(torch.tensor([5, 6]), st)  # the caller keeps decoding on its own state
    got, n = cache.lookup(toks + [9])
    assert n == 50 and got.pos == 50


def test_official_states_are_cached_in_their_compact_formats(tiny_model):
    """Official numerics keep fp8 rows and fp4 keys in the live state itself, so the cache holds
    them at that size (the window ring too), and reuse stays exact."""
    from engine.config import preset
    from engine.weights.tiny import random_model

    model = random_model(preset("tiny"), seed=4, mode="official")
    toks = _toks(300, 40)
    official, reference = PrefixCache(), PrefixCache()
    official.store(toks, _run(model, toks)[1])
    reference.store(toks, _run(tiny_model, toks)[1])
    assert official.nbytes < 0.8 * reference.nbytes  # rows 81 B vs 256 B at d=64
    more = toks + _toks(30, 41)
    for m in (more, toks[:200] + _toks(30, 42)):  # an extension, and a divergence (mark 128)
        got, n = official.lookup(m)
        assert n in (300, 128)
        want = model(torch.tensor(m))[n:]
        assert (_run(model, m[n:], got)[0] - want).abs().max() <= 1e-5
