"""The static decode step (Transformer.decode_step, engine/decode.py): torch.compile traces it
whole (fullgraph, no graph break), compiled logits equal eager ones, one graph serves every
position and capacity, a step run twice writes the same state (CUDA graph warm-up), and the
Decoder drives generation like model(token) does.

The fast tests compile with the aot_eager backend (dynamo's capture and functionalization,
no code generation: ~10 s); inductor's CPU code generation takes minutes cold and is `slow`.
GPU: CUDA graph capture and replay equal eager (marked `gpu`)."""

from __future__ import annotations

import pytest
import torch

from engine.config import preset
from engine.decode import Decoder, _mark_dynamic, choose
from engine.weights.tiny import random_model

N_PROMPT, N_STEPS = 12, 14  # tiny-window (W=8): steps cross the window, CSA and ring edges


@pytest.fixture(scope="module", params=["reference", "official"])
def model(request):
    return random_model(preset("tiny-window", compress_ratios=[0, 4, 8, 4, 0], n_layers=4),
                        seed=5, mode=request.param)


def _toks(model, n=N_PROMPT + N_STEPS):
    return torch.randint(0, model.cfg.vocab_size, (n,), generator=torch.Generator().manual_seed(9))


def _steps(model, fn, toks, state):
    """Decode toks[N_PROMPT:] through fn(token, t, state) -> logits [S, V]."""
    out = []
    with torch.no_grad():
        for i in range(N_PROMPT, toks.numel()):
            state.reserve(state.pos + 1)
            out.append(fn(toks[i:i + 1], torch.full((1,), state.pos, device=toks.device),
                          state))
            for s in state.layers:
                s.pos += 1
    return torch.cat(out)


def _prefilled(model, toks):
    st = model.new_state()
    model(toks[:N_PROMPT], st)
    return st


def test_fullgraph_compiles_once_and_equals_eager(model):
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    toks = _toks(model)
    want = _steps(model, model.decode_step, toks, _prefilled(model, toks))
    counter = CompileCounterWithBackend("aot_eager")
    step = torch.compile(model.decode_step, fullgraph=True, backend=counter)
    st = _prefilled(model, toks)
    _mark_dynamic(st)  # as the Decoder does: the rows' capacity is a symbolic size
    got = _steps(model, step, toks, st)
    assert (got - want).abs().max() <= 1e-5
    _assert_decode_equals_prefill(model, toks, got)
    assert counter.frame_count == 1  # every position: the same graph
    st.reserve(st.pos + 300)  # grown buffers (new tensors, larger capacity): no recompile
    more = torch.cat((toks, _toks(model, 4)))
    _steps(model, step, more[N_PROMPT + N_STEPS - N_PROMPT:], st)
    assert counter.frame_count == 1
    torch._dynamo.reset()


def _assert_decode_equals_prefill(model, toks, got):
    """Decoded logits = one prefill's rows at the same positions (reference numerics: official
    rounds decode's and prefill's activations at different points)."""
    if model.numerics.kv_fp8:
        return
    with torch.no_grad():
        full = model(toks)
    assert (got - full[N_PROMPT:]).abs().max() <= 1e-5


def test_no_graph_breaks(model):
    toks = _toks(model)
    st = _prefilled(model, toks)
    st.reserve(st.pos + 1)
    with torch.no_grad():
        ex = torch._dynamo.explain(model.decode_step)(toks[N_PROMPT:N_PROMPT + 1],
                                                     torch.full((1,), st.pos), st)
    assert ex.graph_break_count == 0 and ex.graph_count == 1, ex.break_reasons
    torch._dynamo.reset()


def test_a_step_run_twice_writes_the_same_state(model):
    """CUDA graph capture runs the step once to warm up before replaying it."""
    toks = _toks(model)
    a, b = _prefilled(model, toks), _prefilled(model, toks)
    for i in range(N_PROMPT, N_PROMPT + 8):  # 8 positions: every slot phase of ratio 4 and 8
        t, tok = torch.full((1,), a.pos), toks[i:i + 1]
        with torch.no_grad():
            for st, reps in ((a, 1), (b, 2)):
                st.reserve(st.pos + 1)
                for _ in range(reps):
                    out = model.decode_step(tok, t, st)
                for s in st.layers:
                    s.pos += 1
                if reps == 1:
                    once = out
        assert torch.equal(out, once)
    for x, y in zip(a.layers, b.layers, strict=True):
        assert torch.equal(x.window.dense(), y.window.dense())
        for c, d in zip(x.compressors(), y.compressors(), strict=True):
            assert torch.equal(c.kv, d.kv) and torch.equal(c.gate, d.gate)
            assert torch.equal(c.rows.dense(), d.rows.dense())


def test_the_decoder_steps_like_the_model(model):
    toks = _toks(model)
    a, b = _prefilled(model, toks), _prefilled(model, toks)
    dec = Decoder(model, "eager")
    for i in range(N_PROMPT, N_PROMPT + 6):
        want = model(toks[i:i + 1], a)[0]
        assert torch.equal(dec.step(b, int(toks[i])), want)
    assert a.pos == b.pos == N_PROMPT + 6


def test_modes(model, monkeypatch):
    assert choose(model, "auto") == "eager"  # the CPU: opt in
    assert choose(model, "compile") == "compile"
    monkeypatch.setenv("FLASHCODE_DECODE", "compile")
    assert choose(model) == "compile"
    with pytest.raises(ValueError, match="unknown mode"):
        choose(model, "fast")


@pytest.mark.slow
def test_inductor_compiled_step_equals_eager(model, tmp_path, monkeypatch):
    """The real thing on the CPU: inductor's C++ kernels (minutes cold)."""
    monkeypatch.setenv("FLASHCODE_COMPILE_CACHE", str(tmp_path))
    toks = _toks(model)
    want = _steps(model, model.decode_step, toks, _prefilled(model, toks))
    lines = []
    dec = Decoder(model, "compile", report=lines.append)
    st = _prefilled(model, toks)
    got = torch.stack([dec.step(st, int(t)) for t in toks[N_PROMPT:]])
    assert (got - want).abs().max() <= 1e-5
    _assert_decode_equals_prefill(model, toks, got)
    assert dec.compile_seconds > 0 and "compiled in" in lines[0]
    torch._dynamo.reset()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["eager", "compile"])
def test_cuda_graph_replay_equals_eager(mode):
    """compile: torch.compile + one CUDA graph per state (captured at its first step, again
    when it grows); logits equal the eager step's, and the step makes no host sync."""
    from engine.weights import device_map

    model = random_model(preset("tiny-window", compress_ratios=[0, 4, 8, 4, 0], n_layers=4),
                         seed=5, mode="official")
    device_map.place(model, device_map.resolve("cuda:0", model))
    toks = _toks(model).cuda()
    want = _steps(model, model.decode_step, toks, _prefilled(model, toks))
    dec = Decoder(model, mode, report=print)
    st = _prefilled(model, toks)
    ids = toks[N_PROMPT:].tolist()
    got = [dec.step(st, t) for t in ids[:2]]  # compiles, captures
    torch.cuda.set_sync_debug_mode("error" if mode == "compile" else 0)
    try:  # replays: no host sync
        got += [dec.step(st, t) for t in ids[2:]]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    got = torch.stack(got)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * want.abs().max().item())
    assert dec.graphs == (mode == "compile")
    torch._dynamo.reset()
