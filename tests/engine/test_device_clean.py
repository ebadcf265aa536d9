"""Device cleanliness: with the default device set to 'meta', any tensor the model, its state,
the prefix code or speculation creates without following the weights' device lands on meta and
mixing it with the CPU weights raises. So these runs prove every creation follows the weights
(what a CUDA run needs). Not run on a GPU here."""

from __future__ import annotations

import torch

from engine import speculate
from engine.kv.prefix import Mark, extend
from tests.engine.spec_fixtures import decode


def test_prefill_decode_follow_the_weights(tiny_model, tokens):
    full = tiny_model(tokens[:260])
    st = tiny_model.new_state()
    with torch.device("meta"):
        a = extend(tiny_model, tokens[:200], st)
        mark = Mark.of(st)
        b = tiny_model(tokens[200:259], st)
        c = tiny_model(tokens[259:260], st)
        back = mark.restore(st)
        d = tiny_model(tokens[200:201], back)
    got = torch.cat((a, b, c))
    assert got.device.type == "cpu" and d.device.type == "cpu"
    assert (got - full).abs().max() <= 1e-5
    assert (d[0] - full[200]).abs().max() <= 1e-5


def test_speculation_follows_the_weights(tiny_model, tokens):
    prompt = tokens[:150].tolist()
    plain = speculate.greedy(tiny_model, prompt, 12)
    with torch.device("meta"):
        spec, stats = decode(tiny_model, prompt, 12)
    assert spec == plain and stats.forwards > 0


def test_generation_loop_follows_the_weights(tiny_ckpt):
    from engine.api import Engine
    from engine.sampling import SamplingParams

    eng = Engine.load(tiny_ckpt, resident=False)
    msgs = [{"role": "user", "content": "hello there"}]
    want = list(eng.stream(msgs, None, SamplingParams(temperature=0, max_tokens=10)))
    eng.gen.cache = type(eng.gen.cache)()  # cold again
    with torch.device("meta"):
        got = list(eng.stream(msgs, None, SamplingParams(temperature=0, max_tokens=10)))
    assert got[-1].tokens == want[-1].tokens
