"""Decode-only shortcuts agree with the general paths they skip: the routed experts for one
token (no unique/nonzero/index_add), and attention over the full window ring."""

from __future__ import annotations

import pytest
import torch

from engine.kernels.moe_fp4 import experts_ref
from engine.layers.linear import set_weight_


def _experts(e: int, d: int, i: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    w = {}
    for name, shape in {"w1": (e, i, d), "w2": (e, d, i), "w3": (e, i, d)}.items():
        q = torch.nn.Parameter(torch.empty(shape, dtype=torch.float8_e4m3fn),
                               requires_grad=False)
        s = torch.nn.Parameter(torch.empty(0), requires_grad=False)
        set_weight_(q, s, "fp8", torch.randn(shape, generator=g) * d ** -0.5)
        w[name] = (q.data, s.data)
    return w


@pytest.mark.parametrize("before_w2", [False, True])
@pytest.mark.parametrize("ids", [[3, 1], [2, 2], [0, 5, 1]])  # [2, 2]: one expert twice
def test_one_token_experts_equal_the_general_loop(before_w2, ids):
    w = _experts(6, 128, 64, 0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 128, generator=g)
    x[1] = x[0]  # two rows take the general loop; row 0 alone takes the decode path
    idt = torch.tensor([ids, ids])
    wt = torch.rand(2, len(ids), generator=g)
    wt[1] = wt[0]
    both = experts_ref(x, idt, wt, w, "fp8", False, 7.0, before_w2)
    one = experts_ref(x[:1], idt[:1], wt[:1], w, "fp8", False, 7.0, before_w2)
    assert one.shape == (1, 128)
    assert (one[0] - both[0]).abs().max() <= 1e-6 * both[0].abs().max()
    assert one.abs().max() > 0


def test_window_ring_decode_matches_prefill_past_the_window():
    from engine.config import preset
    from engine.weights.tiny import random_model

    model = random_model(preset("tiny-window"), seed=2, mode="reference")
    w = model.cfg.window_size
    toks = torch.randint(0, model.cfg.vocab_size, (w + 9,),
                         generator=torch.Generator().manual_seed(3))
    full = model(toks)
    st = model.new_state()
    model(toks[:w - 2], st)  # the next two decode steps fill the ring, the rest wrap it
    dec = torch.cat([model(toks[i:i + 1], st) for i in range(w - 2, len(toks))])
    assert (dec - full[w - 2:]).abs().max() <= 1e-5
    assert st.layers[0].pos == len(toks)
