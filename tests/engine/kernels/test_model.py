"""The whole tiny model with every kernel switched on (Triton interpreter) against the
reference path (every op on its plain-PyTorch twin): prefill then decode steps, both numeric
modes. The config is the tiny one with a window of 8, top-3 CSA selection and a ratio-8
compressed layer, so 21 tokens cross the window edge, close CSA windows (overlap, top-k over
more entries than k) and compressed windows of the non-overlapping kind.
Tolerance: logits agree to 1e-3 relative to their scale (fp32 model; the kernels only sum in
another order, and official-mode FP8 rounding may flip single codes)."""

from __future__ import annotations

import pytest
import torch

from engine.config import preset
from engine.kernels import registry
from engine.weights.tiny import random_model


def _run(model, tokens: torch.Tensor, split: int) -> torch.Tensor:
    st = model.new_state()
    out = [model(tokens[:split], st)]
    out += [model(tokens[i:i + 1], st) for i in range(split, tokens.numel())]
    return torch.cat(out)


@pytest.mark.parametrize("mode", ["reference", "official"])
def test_tiny_model_kernels_match_reference(mode):
    cfg = preset("tiny-window", compress_ratios=[0, 4, 8, 4, 0], n_layers=4)
    model = random_model(cfg, seed=3, mode=mode)
    tokens = torch.randint(0, cfg.vocab_size, (21,), generator=torch.Generator().manual_seed(5))
    with registry.use("ref"):
        want = _run(model, tokens, 18)
    calls = []
    orig = registry.get

    def counting_get(op, device):
        fn = orig(op, device)
        calls.append(fn.__name__)
        return fn

    registry.get = counting_get
    try:
        with registry.use("triton"):
            got = _run(model, tokens, 18)
    finally:
        registry.get = orig
    assert not any(c.endswith("_ref") for c in calls), set(calls)
    assert {"sparse_attention", "index_scores", "pool", "norm_rope", "hc_pre", "hc_post",
            "linear", "experts"} <= set(calls)
    scale = want.abs().max().item()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-3 * scale)
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() > 0.9
