"""One decode step of a small model with every block kind (window, CSA, HCA), run again and
again on copies of one prefilled state, and what a call dispatches: for the tests that count
an eager step's ops or compare two ways of running it."""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from engine.config import preset
from engine.weights.tiny import random_model


def window_model(mode: str):
    """tiny-window with a CSA, an HCA and another CSA block between sliding ones."""
    return random_model(preset("tiny-window", compress_ratios=[0, 4, 8, 4, 0], n_layers=4),
                        seed=5, mode=mode)


def one_step(model, n_tokens: int, seed: int):
    """Prefill n_tokens-1 random tokens once; -> step(fn=model.decode_step): the last token's
    decode step through fn on a fresh copy of that state (the same inputs every call)."""
    toks = torch.randint(0, model.cfg.vocab_size, (n_tokens,),
                         generator=torch.Generator().manual_seed(seed))
    state = model.new_state()
    with torch.no_grad():
        model(toks[:-1], state)

    def step(fn=None):
        st = state.copy()
        st.reserve(st.pos + 1)
        with torch.no_grad():
            return (fn or model.decode_step)(toks[-1:], torch.full((1,), st.pos), st)

    return step


def dispatched(fn) -> int:
    """Ops fn() dispatches: the profiler's aten and flashcode events, nested ones included
    (bench/decode_ops.py's count)."""
    with profile(activities=[ProfilerActivity.CPU]) as p:
        fn()
    return sum(1 for e in p.events() if e.name.startswith(("aten::", "flashcode::")))
