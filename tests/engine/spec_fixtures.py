"""Greedy decoding through speculate.Stepper, driven the way engine/generate.py drives it, for
the speculation tests (the engine's only speculative loop is the generation loop's)."""

from __future__ import annotations

import torch

from engine.kv.prefix import extend
from engine.speculate import SpecStats, Stepper


def decode(model, prompt: list[int], n: int, spec: bool = True) -> tuple[list[int], SpecStats]:
    """n greedy tokens after `prompt` and the Stepper's counts: a chunked prefill that keeps the
    last chunk's streams for the drafter, then one `next` per token but the last (which, as in
    generation, is never fed). A draft the last forward already verified is counted as the
    caller's next step would count it (an accept costs no forward)."""
    state, chunk = model.new_state(), []
    ids = torch.tensor(prompt, device=model.embed.weight.device)
    logits = extend(model, ids, state, last_only=True, streams=chunk)[-1]
    stepper = Stepper(model, state, spec, *chunk[0])
    out = [int(logits.argmax())]
    while len(out) < n:
        out.append(int(stepper.next(out[-1]).argmax()))
    if stepper.pending is not None and stepper.pending[1] == out[-1]:
        stepper.next(out[-1])
    stepper.finish()
    return out, stepper.stats
