"""What an eager decode step dispatches (issue 16): constants as cached 0-dim tensors
(engine/kernels/scalars.py) and the few-op forms of RMSNorm, RoPE and mHC cut the aten ops a
step runs without changing one bit of its logits; bench/decode_ops.py reports the count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import engine.kernels.scalars as scalars
from engine.kernels.scalars import scalar
from engine.layers.norm import inv_rms
from engine.layers.rotary import _swapped
from tests.engine.step_fixtures import dispatched, one_step, window_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value", [1e-6, 1e-20, 0.0625, 2.0 ** -17, 3.0, 512.0])
def test_a_cached_scalar_rounds_like_the_python_number(value):
    x = torch.randn(64, 33, generator=torch.Generator().manual_seed(1)) * 7
    c = scalar(value, x)
    assert isinstance(c, torch.Tensor) and c.dim() == 0 and c.dtype == torch.float32
    for op in (torch.add, torch.mul, torch.div, torch.sub):
        assert torch.equal(op(x, c), op(x, value)), op
    assert scalar(value, x) is c  # cached
    assert dispatched(lambda: x * c) < dispatched(lambda: x * value)


def test_other_dtypes_get_the_number():
    assert scalar(0.5, torch.ones(2, dtype=torch.bfloat16)) == 0.5
    assert scalar(0.5, torch.ones(2, dtype=torch.float16)) == 0.5


def test_the_few_op_forms_are_bit_for_bit():
    g = torch.Generator().manual_seed(2)
    for d in (64, 96, 512, 7168):
        x = torch.randn(5, d, generator=g) * 3
        ref = torch.rsqrt(x.square().mean(-1, keepdim=True) + 1e-6)
        assert torch.equal(inv_rms(x, 1e-6), ref), d
        pairs = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
        assert torch.equal(_swapped(x), pairs), d
        assert torch.equal(_swapped(x.view(5, 1, d)), pairs.view(5, 1, d)), d


@pytest.mark.parametrize("mode", ["reference", "official"])
def test_the_scalars_cut_dispatches_and_change_no_logit(mode, monkeypatch):
    """One decode step with the cached constants and with plain Python numbers in their place:
    the same logits bit for bit, fewer aten ops."""
    step = one_step(window_model(mode), 20, seed=3)
    cached, n_cached = step(), dispatched(step)
    monkeypatch.setattr(scalars, "scalar", lambda value, like: value)
    for mod in list(sys.modules.values()):  # every module that imported the name
        if getattr(mod, "scalar", None) is scalar and mod is not scalars:
            monkeypatch.setattr(mod, "scalar", lambda value, like: value)
    plain, n_plain = step(), dispatched(step)
    assert torch.equal(cached, plain)
    assert n_cached < n_plain


def test_decode_ops_reports_a_tiny_step():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "decode_ops.py"), "--preset", "tiny",
                        "--json"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["graph_breaks"] == 0
    assert 0 < out["eager_ops_dispatched"] <= out["eager_ops_per_step"]
    assert out["live_kv_bytes_per_token"]["total"] > 0 and out["state_bytes_at_1m"] > 0
