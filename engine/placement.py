"""Where weights live and in which form, applied to a built model from outside (the model file
stays the spec; gpt-fast's model.py + quantize.py split).

  resident_weights(model)      dequantize every FP8/FP4 weight once and keep the float copy,
                               instead of per use (CPU bench and machines with memory to spare;
                               numerics unchanged: the layers still see their format name)
The plan itself (which blocks go on which GPU, experts in host memory) is pure arithmetic in
engine.memplan; moving a built model's blocks across devices is not implemented yet (the layers
create positions and empty states on the CPU).
"""

from __future__ import annotations

import torch

from engine.layers.linear import Linear
from engine.layers.moe import Experts


def resident_weights(model, dtype: torch.dtype = torch.float32) -> int:
    """Replace per-use dequantization by a resident copy; returns the bytes it added."""
    added = 0
    for mod in model.modules():
        if isinstance(mod, Linear) and mod.fmt in ("fp8", "fp4"):
            w = mod.dequantized().to(dtype)
            mod.dequantized = lambda w=w: w  # instance attribute shadows the method
            added += w.numel() * w.element_size()
        elif isinstance(mod, Experts) and mod.fmt in ("fp8", "fp4"):
            n = mod.w1_weight.shape[0]
            ws = {k: torch.stack([mod.weight(k, e) for e in range(n)]).to(dtype)
                  for k in ("w1", "w2", "w3")}
            mod.weight = lambda name, e, ws=ws: ws[name][e]
            added += sum(w.numel() * w.element_size() for w in ws.values())
    return added

