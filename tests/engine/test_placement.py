"""Resident weights: dequantized once, same logits as per-use dequantization, and Engine.load's
choice (argument, FLASHCODE_RESIDENT, available memory)."""

from __future__ import annotations

import torch

from engine.api import Engine, resident_plan
from engine.layers.linear import Linear
from engine.layers.moe import Experts
from engine.placement import drop_resident, resident_bytes, resident_weights


def _quantized(model) -> list:
    return [m for m in model.modules()
            if isinstance(m, (Linear, Experts)) and m.fmt in ("fp8", "fp4")]


def test_resident_weights_keep_logits_bit_for_bit(tiny_model, tokens):
    mods = _quantized(tiny_model)
    assert {m.fmt for m in mods} >= {"fp8", "fp4"}  # both formats are exercised
    before = tiny_model(tokens[:40])
    try:
        added = resident_weights(tiny_model)
        assert added == resident_bytes(tiny_model) > 0
        assert all(m.resident is not None for m in mods)
        st = tiny_model.new_state()
        after = torch.cat((tiny_model(tokens[:33], st), tiny_model(tokens[33:40], st)))
        assert torch.equal(tiny_model(tokens[:40]), before)
        assert (after - before).abs().max() <= 1e-5
    finally:
        drop_resident(tiny_model)
    assert all(m.resident is None for m in mods)


def test_resident_plan_follows_argument_env_then_memory(tiny_model, monkeypatch):
    need = resident_bytes(tiny_model)
    monkeypatch.delenv("FLASHCODE_RESIDENT", raising=False)
    assert resident_plan(tiny_model, None, available=2 * need)
    assert not resident_plan(tiny_model, None, available=2 * need - 1)
    assert resident_plan(tiny_model, True, available=0)
    monkeypatch.setenv("FLASHCODE_RESIDENT", "0")
    assert not resident_plan(tiny_model, None, available=10 * need)
    assert resident_plan(tiny_model, True, available=0)  # the argument wins
    monkeypatch.setenv("FLASHCODE_RESIDENT", "1")
    assert resident_plan(tiny_model, None, available=0)


def test_engine_load_resident_on_and_off(tiny_ckpt, tokens):
    on = Engine.load(tiny_ckpt, resident=True).model
    off = Engine.load(tiny_ckpt, resident=False).model
    assert all(m.resident is not None for m in _quantized(on))
    assert all(m.resident is None for m in _quantized(off))
    assert torch.equal(on(tokens[:20]), off(tokens[:20]))
