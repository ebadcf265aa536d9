"""engine/kernels/fused_cpu.py: the fused C++ ops an eager CPU decode step runs. Each op against
its plain-PyTorch twin (RoPE bit for bit; sums to float32 rounding), strided and odd shapes,
bad input refused with the reason, and a whole decode step: the same logits as the torch forms
within float32 rounding, in far fewer dispatches, and never taken while torch.compile traces."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.kernels import fused_cpu as f
from engine.kv import rows
from engine.layers import mhc
from engine.layers.rotary import tables
from engine.weights.placement import resident_weights
from tests.engine.step_fixtures import dispatched, one_step, window_model

pytestmark = pytest.mark.skipif(not f.available(), reason=f"fused_cpu not built here: {f.why()}")


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _close(a, b, tol=2e-6):
    err = (a - b).abs().max().item()
    assert err <= tol * max(1.0, b.abs().max().item()), err


@pytest.mark.parametrize("shape", [(1, 64), (3, 5, 96), (2, 7168), (4, 33), (1, 8, 256)])
def test_rms_norm_equals_its_twin(shape):
    g = _g(sum(shape))
    x, w = torch.randn(*shape, generator=g) * 3, torch.randn(shape[-1], generator=g)
    _close(f.rms_norm(x, w, 1e-6), f.rms_norm_ref(x, w, 1e-6))
    _close(f.rms_norm(x, None, 1e-6), f.rms_norm_ref(x, None, 1e-6))


def test_a_strided_input_is_read_right():
    x = torch.randn(6, 80, generator=_g(1))[:, 10:74]  # rows 80 apart, as a split leaves them
    assert not x.is_contiguous()
    _close(f.rms_norm(x, None, 1e-6), f.rms_norm_ref(x, None, 1e-6))
    cos, sin = f.rotation_ref(torch.tensor([3, 9, 4, 1, 0, 7]), *tables(torch.rand(8)))
    assert torch.equal(f.rope(x, cos, sin), f.rope_ref(x, cos, sin))


def test_rotation_and_rope_equal_their_twins():
    freqs2, sign = tables(torch.rand(32, generator=_g(2)))
    pos = torch.tensor([0, 1, 127, 4096, 1 << 20])
    cos, sin = f.rotation(pos, freqs2, sign)
    rc, rs = f.rotation_ref(pos, freqs2, sign)
    _close(cos, rc, 1e-6)
    _close(sin, rs, 1e-6)
    x = torch.randn(5, 8, 192, generator=_g(3))
    for inverse in (False, True):  # elementwise in torch's order: bit for bit
        assert torch.equal(f.rope(x, rc, rs, inverse), f.rope_ref(x, rc, rs, inverse))
        one = x[:1].contiguous()
        assert torch.equal(f.rope(one, rc[3:4], rs[3:4], inverse),
                           f.rope_ref(one, rc[3:4], rs[3:4], inverse))
    assert torch.equal(f.rope(f.rope(x, rc, rs), rc, rs, True)[..., :128], x[..., :128])


@pytest.mark.parametrize("s,n,d", [(1, 4, 64), (3, 4, 37), (2, 2, 512)])
def test_hc_pre_and_hc_post_equal_their_twins(s, n, d):
    g = _g(s * n + d)
    x = torch.randn(s, n, d, generator=g)
    fn = torch.randn((2 + n) * n, n * d, generator=g) * 0.05
    base, scale = torch.randn((2 + n) * n, generator=g), torch.rand(3, generator=g)
    got, want = f.hc_pre(x, fn, base, scale, 20, 1e-6, 1e-6), f.hc_pre_ref(x, fn, base, scale,
                                                                          20, 1e-6, 1e-6)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        _close(a, b, 1e-5)
    y = torch.randn(s, d, generator=g)
    _close(f.hc_post(y, x, got[1], got[2]), f.hc_post_ref(y, x, got[1], got[2]))


@pytest.mark.parametrize("n", [1, 50, 300])
def test_attend_equals_its_twin(n):
    g = _g(n)
    q, rows = torch.randn(1, 8, 64, generator=g), torch.randn(n, 64, generator=g)
    sink, hide = torch.randn(8, generator=g), torch.rand(n, generator=g) < 0.4
    _close(f.attend(q, rows, hide, sink, 0.125), f.attend_ref(q, rows, hide, sink, 0.125))
    all_hidden = torch.ones(n, dtype=torch.bool)  # only the sink: nothing attended
    assert torch.equal(f.attend(q, rows, all_hidden, sink, 0.125), torch.zeros(1, 8, 64))


@pytest.mark.parametrize("limit", [0.0, 7.0])
def test_swiglu_equals_its_twin(limit):
    a, b = torch.randn(2, 3, 50, generator=_g(4)) * 6, torch.randn(2, 3, 50, generator=_g(5)) * 6
    _close(f.swiglu(a, b, limit), f.swiglu_ref(a, b, limit))


@pytest.mark.parametrize("ratio,overlap", [(4, True), (8, False)])
def test_compress_step_writes_and_pools_like_its_twin(ratio, overlap):
    g, w = _g(ratio), 32 if overlap else 16
    m = 2 * ratio if overlap else ratio
    kv = torch.randn(m, w, generator=g)
    gate = torch.full((m, w), float("-inf"))
    gate[: m // 2] = torch.randn(m // 2, w, generator=g)
    ref_kv, ref_gate = kv.clone(), gate.clone()
    ape = torch.randn(ratio, w, generator=g)
    for t in range(3 * ratio + 1):  # every slot phase; slots the window has not reached yet
        x, z = torch.randn(1, w, generator=g), torch.randn(1, w, generator=g)
        tt = torch.tensor([t])
        got = f.compress_step(kv, gate, x, z, ape, tt, ratio, overlap)
        want = f.compress_step_ref(ref_kv, ref_gate, x, z, ape, tt, ratio, overlap)
        assert torch.equal(kv, ref_kv) and torch.equal(gate, ref_gate), t
        _close(got[0], want[0])
        assert torch.equal(got[1], want[1]) and torch.equal(got[2], want[2])


@pytest.mark.parametrize("shape,block", [((3, 448), 64), ((2, 4, 256), 128), ((1, 64), 128),
                                         ((5, 96), 32)])
def test_the_official_round_trips_are_bit_for_bit(shape, block):
    """FP8 and MXFP4 round trips (c10's e4m3 conversion, the same power-of-two scales) and the
    Hadamard butterflies in torch's order: the same bits as engine/quant.py."""
    g = _g(block)
    x = torch.randn(*shape, generator=g) * torch.rand(*shape[:-1], 1, generator=g) * 50
    x[..., 3], x[0, ..., :block] = 0.0, 0.0  # a zero and an all-zero block (amax floored)
    assert torch.equal(f.fp8_roundtrip(x, block), f.fp8_roundtrip_ref(x, block))
    assert torch.equal(f.fp4_roundtrip(x, block), f.fp4_roundtrip_ref(x, block))
    h = x[..., :64].contiguous()
    assert torch.equal(f.hadamard(h), f.hadamard_ref(h))


@pytest.mark.parametrize("n,d,rope", [(1, 512, 64), (5, 256, 64), (3, 96, 32)])
def test_kv_rows_encode_and_decode_bit_for_bit(n, d, rope):
    """engine/kv/rows.py's fp8 rows (e4m3 nope, e8m0 scale bytes, bf16 rope) and MXFP4 keys:
    the same bytes and floats as its torch forms (an all-zero row: the floored scale)."""
    g = _g(d)
    v = torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g) * 30
    v[0] = 0.0
    got, want = f.fp8_rows_encode(v, rope), rows._fp8_encode(v, rope)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert torch.equal(f.fp8_rows_decode(*got), rows._fp8_decode(*want))
    picked = tuple(p[torch.tensor([[n - 1, 0]])] for p in got)   # a gather's [1, k] rows
    assert torch.equal(f.fp8_rows_decode(*picked), rows._fp8_decode(*picked))
    keys = v[:, :64 if d >= 64 else 32].contiguous()
    got, want = f.fp4_rows_encode(keys), rows._fp4_encode(keys)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    lut = rows._fp4_pairs("cpu")
    assert torch.equal(f.fp4_rows_decode(*got), rows._fp4_decode(*want, lut))


def test_bad_input_is_refused_with_the_reason():
    x = torch.randn(2, 16)
    with pytest.raises(RuntimeError, match="float32 CPU tensor"):
        f.rms_norm(x.double(), None, 1e-6)
    with pytest.raises(RuntimeError, match="weight has 8 of 16"):
        f.rms_norm(x, torch.ones(8), 1e-6)
    with pytest.raises(RuntimeError, match="fn \\[24, 64\\]"):
        f.hc_pre(torch.randn(1, 4, 16), torch.randn(24, 60), torch.randn(24), torch.rand(3), 3,
                 1e-6, 1e-6)
    with pytest.raises(RuntimeError, match="hide must be bool"):
        f.attend(torch.randn(1, 2, 16), x, torch.zeros(2), torch.zeros(2), 1.0)
    with pytest.raises(RuntimeError, match="not a multiple of the block 32"):
        f.fp8_roundtrip(torch.randn(2, 48), 32)
    with pytest.raises(RuntimeError, match="size 48 is not a power of two"):
        f.hadamard(torch.randn(2, 48))
    with pytest.raises(RuntimeError, match="0 < rope < d"):
        f.fp8_rows_encode(torch.randn(2, 64), 64)
    with pytest.raises(RuntimeError, match="uint8 nope and scale planes"):
        f.fp8_rows_decode(torch.zeros(1, 8), torch.zeros(1, 1), torch.zeros(1, 2))
    with pytest.raises(RuntimeError, match="for ratio 4"):
        f.compress_step(torch.zeros(4, 8), torch.zeros(4, 8), torch.zeros(1, 8),
                        torch.zeros(1, 8), torch.zeros(4, 8), torch.tensor([0]), 4, True)


def test_ready_only_for_eager_float32_cpu_tensors():
    x = torch.randn(2, 4)
    assert f.ready(x) and f.ready(x[:, 1:])
    assert not f.ready(x.bfloat16()) and not f.ready(x, x.half())
    seen = []

    def fn(v):
        seen.append(f.ready(v))
        return v + 1

    torch._dynamo.reset()
    torch.compile(fn, fullgraph=True, backend="eager")(x)
    torch._dynamo.reset()
    assert seen == [False]  # traced: the torch forms, which inductor fuses


@pytest.mark.parametrize("mode", ["reference", "official"])
def test_a_decode_step_takes_the_fused_ops_with_the_same_logits(mode, monkeypatch):
    """The same step with the fused ops and with the torch forms (resident fp16 copies, as on
    a CPU by default): logits equal to float32 rounding, far fewer ops dispatched."""
    model = window_model(mode)
    resident_weights(model, layout="plain")
    step = one_step(model, 40, seed=6)
    fused, n_fused = step(), dispatched(step)
    monkeypatch.setattr(f, "ready", lambda *ts: False)
    plain, n_plain = step(), dispatched(step)
    _close(fused, plain, 1e-5)
    # official numerics add the release's FP8/FP4 round trips, still op by op
    assert n_fused < (0.6 if mode == "reference" else 0.9) * n_plain, (n_fused, n_plain)


def test_the_fused_and_torch_hc_pre_agree_inside_a_block():
    """mhc.hc_pre's own few-op form (the path compiled steps trace) against the fused op."""
    g = _g(7)
    x = torch.randn(1, 4, 64, generator=g)
    fn, base = torch.randn(24, 256, generator=g) * 0.05, torch.randn(24, generator=g)
    scale, sel = torch.rand(3, generator=g), mhc.scale_index(4)
    fused = mhc.hc_pre(x, fn, base, scale, 20, 1e-6, 1e-6, sel)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(f, "ready", lambda *ts: False)
        plain = mhc.hc_pre(x, fn, base, scale, 20, 1e-6, 1e-6, sel)
    for a, b in zip(fused, plain, strict=True):
        _close(a, b, 1e-5)


_NO_COMPILER = """
import torch
from engine.config import preset
from engine.kernels import fused_cpu, gemv_f16
from engine.weights.placement import cpu_layout, resident_weights
from engine.weights.tiny import random_model
m = random_model(preset("tiny"), seed=1, mode="reference")
resident_weights(m)
st = m.new_state()
m(torch.arange(9), st)
out = m(torch.tensor([5]), st)
assert not fused_cpu.available() and not gemv_f16.available() and cpu_layout() == "packed"
assert not fused_cpu.ready(out) and torch.isfinite(out).all()
print(fused_cpu.why())
"""


def test_without_a_compiler_the_torch_forms_run(tmp_path):
    """A machine where the C++ cannot be built: the build's reason is kept, eager steps take
    the torch forms (and fbgemm's packed weights), nothing fails."""
    env = {**os.environ, "CXX": "false", "FLASHCODE_COMPILE_CACHE": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", _NO_COMPILER], capture_output=True, text=True,
                       timeout=600, env=env, cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "the C++ build failed" in r.stdout
    assert "building the fused_cpu C++ ops for this machine, once" in r.stderr
