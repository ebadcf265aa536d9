"""Incremental state: prefill-all == token-by-token decode == random chunked prefill."""

from __future__ import annotations

import pytest
import torch

from engine.config import preset
from engine.weights.tiny import random_model


@pytest.fixture(scope="module", params=["tiny", "tiny-topk", "tiny-window"])
def model(request):
    return random_model(preset(request.param), seed=1, mode="reference")


def _decode(model, toks):
    st = model.new_state()
    return torch.cat([model(toks[i:i + 1], st) for i in range(len(toks))]), st


def test_decode_equals_prefill(model, tokens):
    toks = tokens[:260]
    full = model(toks)
    dec, st = _decode(model, toks)
    assert (dec - full).abs().max().item() <= 1e-5
    assert st.pos == 260 and st.layers[1].comp.rows.capacity > 260 // 4


@pytest.mark.parametrize("seed", [0, 1])
def test_random_chunked_prefill_equals_one_prefill(model, tokens, seed):
    toks = tokens[:260]
    full = model(toks)
    g = torch.Generator().manual_seed(seed)
    st, outs, i = model.new_state(), [], 0
    while i < len(toks):
        n = int(torch.randint(1, 70, (1,), generator=g))
        outs.append(model(toks[i:i + n], st))
        i += n
    assert (torch.cat(outs) - full).abs().max().item() <= 1e-5


def test_copied_state_continues_like_the_original(model, tokens):
    st = model.new_state()
    model(tokens[:130], st)
    fork = st.copy()
    a = model(tokens[130:140], st)
    b = model(tokens[130:140], fork)
    assert torch.equal(a, b)
    assert not torch.equal(model(tokens[:5], model.new_state())[-1], a[-1])


def test_truncate_one_token_then_continue(model, tokens):
    """Roll back a rejected token (inside an open compressor window) and take another."""
    st = model.new_state()
    model(tokens[:141], st)  # 141 = 35 CSA windows + 1 open token; HCA window 1 open
    model(tokens[141:142], st)
    st.truncate(141)
    got = model(tokens[200:201], st)
    want = model(torch.cat((tokens[:141], tokens[200:201])))[-1:]
    assert (got - want).abs().max() <= 1e-5


def test_truncate_refuses_what_it_cannot_undo(model, tokens):
    st = model.new_state()
    model(tokens[:144], st)  # token 143 closed CSA window 35
    with pytest.raises(ValueError, match="window closed"):
        st.truncate(143)
    with pytest.raises(ValueError, match="ring"):
        st.truncate(100)
    assert st.pos == 144  # all or nothing
