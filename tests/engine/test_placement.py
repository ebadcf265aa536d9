"""Resident weights: dequantized once (bf16 on CPU where exact), same logits as per-use
dequantization, widened GEMMs bit for bit, and Engine.load's choice (argument,
FLASHCODE_RESIDENT, available memory)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.api import Engine, resident_plan
from engine.kernels.gemm_fp8 import WIDEN_ROWS, widened_linear
from engine.layers.linear import Linear
from engine.layers.moe import Experts, Gate
from engine.layers.norm import RMSNorm
from engine.placement import _keep, drop_resident, resident_bytes, resident_weights


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


def test_resident_copies_are_bf16_on_cpu_and_small_weights_float32(tiny_model):
    try:
        resident_weights(tiny_model)
        for m in _quantized(tiny_model):
            ws = m.resident.values() if isinstance(m.resident, dict) else [m.resident]
            assert all(w.dtype == torch.bfloat16 for w in ws)
        small = [m for m in tiny_model.modules() if isinstance(m, (RMSNorm, Gate))]
        assert small and all(torch.equal(m.resident, m.weight.float()) for m in small)
    finally:
        drop_resident(tiny_model)
    assert all(m.resident is None for m in small)


def test_keep_falls_back_to_float32_when_bf16_is_not_exact():
    w = torch.tensor([1.5, 0.375, -448.0])
    assert _keep(w, torch.float32).dtype == torch.bfloat16
    tiny = torch.tensor([1.5, 2.0 ** -140 * 1.125])  # fp32 subnormal with bits bf16 lacks
    assert _keep(tiny, torch.float32).dtype == torch.float32
    assert _keep(w, torch.float16).dtype == torch.float16


@pytest.mark.parametrize("rows", [1, 3])
def test_widened_linear_in_blocks_is_bit_for_bit(rows):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2 * WIDEN_ROWS // 256 + 77, 512, generator=g).bfloat16()  # > 2 blocks
    x = torch.randn(rows, 512, generator=g)
    assert torch.equal(widened_linear(x, w), F.linear(x, w.float()))
    assert widened_linear(x, w).shape == (rows, w.shape[0])
