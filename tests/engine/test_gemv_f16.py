"""engine/kernels/gemv_f16.py: the C++ one-row products with fp16 weights that compiled CPU
decode steps call. Each op against its plain-PyTorch twin (float32 rounding: another
summation order), shapes with tails (K not a multiple of 16, N not of 4), bad input refused
with the reason, and a compiled decode step that calls them equal to the eager step."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from engine.kernels import gemv_f16
from engine.weights.placement import resident_weights
from tests.engine.step_fixtures import one_step, window_model

pytestmark = pytest.mark.skipif(not gemv_f16.available(),
                                reason=f"gemv_f16 not built here: {gemv_f16.why()}")


def _close(a, b, k):
    tol = 1e-6 * k ** 0.5 * max(1.0, b.abs().max().item())
    assert (a - b).abs().max().item() <= tol, (a - b).abs().max().item()


@pytest.mark.parametrize("m,n,k", [(1, 8192, 512), (1, 13, 37), (1, 4, 16), (3, 9, 100),
                                   (1, 1024, 4096), (1, 5, 15), (2, 1, 1)])
def test_gemv_equals_its_twin(m, n, k):
    g = torch.Generator().manual_seed(m * 1000 + n + k)
    x, w = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g).half()
    _close(gemv_f16.gemv(x, w), gemv_f16.gemv_ref(x, w), k)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("n,k", [(13, 37), (1024, 4096), (9, 100)])
def test_bf16_and_float32_weights_equal_the_twin(dtype, n, k):
    """The same loop reading bf16 rows (a float32's high half) or float32 rows: a real
    checkpoint's bf16 head, or weights fp16 cannot hold."""
    g = torch.Generator().manual_seed(n + k)
    x, w = torch.randn(2, k, generator=g), torch.randn(n, k, generator=g).to(dtype)
    _close(gemv_f16.gemv(x, w), gemv_f16.gemv_ref(x, w), k)
    stack, ids = torch.randn(4, n, k, generator=g).to(dtype), torch.tensor([3, 0])
    _close(gemv_f16.gemv_at(x, stack, ids), gemv_f16.gemv_at_ref(x, stack, ids), k)


def test_a_strided_weight_is_read_right():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(64, 40, generator=g).half()[:, :33]   # rows 40 apart
    x = torch.randn(1, 33, generator=g)
    _close(gemv_f16.gemv(x, w), gemv_f16.gemv_ref(x, w), 33)


@pytest.mark.parametrize("rows", [1, 2])
def test_gemv_at_equals_its_twin(rows):
    g = torch.Generator().manual_seed(rows)
    w = torch.randn(32, 70, 48, generator=g).half()
    ids = torch.tensor([31, 3])
    x = torch.randn(rows, 48, generator=g)
    _close(gemv_f16.gemv_at(x, w, ids), gemv_f16.gemv_at_ref(x, w, ids), 48)


def test_bad_input_is_refused_with_the_reason():
    x, w = torch.randn(1, 16), torch.randn(8, 16).half()
    with pytest.raises(RuntimeError, match="x float32, w float16, bfloat16 or float32"):
        gemv_f16.gemv(x, w.double())
    with pytest.raises(RuntimeError, match="shapes"):
        gemv_f16.gemv(torch.randn(1, 15), w)
    with pytest.raises(RuntimeError, match="expert 4 of 4"):
        gemv_f16.gemv_at(x, torch.randn(4, 8, 16).half(), torch.tensor([0, 4]))


def test_a_compiled_step_calls_the_ops_and_equals_eager():
    model = window_model("reference")
    resident_weights(model, layout="plain")
    step = one_step(model, 16, seed=4)
    eager = step()
    torch._dynamo.reset()
    fn = torch.compile(model.decode_step, fullgraph=True, backend="aot_eager")
    step(fn)
    with profile(activities=[ProfilerActivity.CPU]) as p:
        compiled = step(fn)
    torch._dynamo.reset()
    names = {e.name for e in p.events()}
    assert {"flashcode::gemv_f16", "flashcode::gemv_f16_at"} <= names
    assert (compiled - eager).abs().max().item() < 1e-5
