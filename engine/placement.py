"""Where weights live and in which form, applied to a built model from outside (the model file
stays the spec; gpt-fast's model.py + quantize.py split).

  resident_weights(model)      dequantize every FP8/FP4 weight once and keep the float copy
                               (`Linear.resident`, `Experts.resident`), used instead of
                               per-use dequantization (CPU path and machines with memory to
                               spare; numerics unchanged: the layers still see their format
                               name, so activations are still FP8-rounded where they were)
  resident_bytes(model)        what that would add, without doing it
The plan itself (which blocks go on which GPU, experts in host memory) is pure arithmetic in
engine.memplan.
"""

from __future__ import annotations

import torch

from engine.layers.linear import Linear
from engine.layers.moe import Experts

_NAMES = ("w1", "w2", "w3")


def _quantized(model):
    """(module, float element count) of every Linear/Experts stored as FP8 or FP4."""
    for mod in model.modules():
        if isinstance(mod, Linear) and mod.fmt in ("fp8", "fp4"):
            yield mod, mod.in_features * mod.out_features
        elif isinstance(mod, Experts) and mod.fmt in ("fp8", "fp4"):
            e, d, i = mod.dims
            yield mod, 3 * e * d * i


def resident_bytes(model, dtype: torch.dtype = torch.float32) -> int:
    """Bytes `resident_weights(model, dtype)` would add."""
    size = torch.empty(0, dtype=dtype).element_size()
    return sum(n for _, n in _quantized(model)) * size


def resident_weights(model, dtype: torch.dtype = torch.float32) -> int:
    """Keep a dequantized copy of every quantized weight; returns the bytes it added."""
    added = 0
    for mod, _ in list(_quantized(model)):
        if isinstance(mod, Linear):
            mod.resident = None
            mod.resident = mod.dequantized().to(dtype)
            added += mod.resident.numel() * mod.resident.element_size()
        else:
            mod.resident = None
            n = mod.w1_weight.shape[0]
            mod.resident = {k: torch.stack([mod.weight(k, e) for e in range(n)]).to(dtype)
                            for k in _NAMES}
            added += sum(w.numel() * w.element_size() for w in mod.resident.values())
    return added


def drop_resident(model) -> None:
    """Back to per-use dequantization."""
    for mod, _ in _quantized(model):
        mod.resident = None
