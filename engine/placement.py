"""Where weights live and in which form, applied to a built model from outside (the model file
stays the spec; gpt-fast's model.py + quantize.py split).

  resident_weights(model)      dequantize every FP8/FP4 weight once and keep the float copy
                               (`Linear.resident`, `Experts.resident`), used instead of
                               per-use dequantization (CPU path and machines with memory to
                               spare; numerics unchanged: the layers still see their format
                               name, so activations are still FP8-rounded where they were);
                               on CPU the float32 copies are kept as bfloat16 where that is
                               exact (see `_keep`) and widened per GEMM; RMSNorm and gate
                               weights get float32 copies (`.resident` on each)
  resident_bytes(model)        what that would add, without doing it
The plan itself (which blocks go on which GPU, experts in host memory) is pure arithmetic in
engine.memplan.
"""

from __future__ import annotations

import torch

from engine.layers.linear import Linear
from engine.layers.moe import Experts, Gate
from engine.layers.norm import RMSNorm

_NAMES = ("w1", "w2", "w3")


def _quantized(model):
    """(module, float element count) of every Linear/Experts stored as FP8 or FP4."""
    for mod in model.modules():
        if isinstance(mod, Linear) and mod.fmt in ("fp8", "fp4"):
            yield mod, mod.in_features * mod.out_features
        elif isinstance(mod, Experts) and mod.fmt in ("fp8", "fp4"):
            e, d, i = mod.dims
            yield mod, 3 * e * d * i


def _small(model):
    """Modules whose small bf16 weight their forward would convert to float32 on every call:
    RMSNorm and gate weights (the head and other plain Linears stay bf16: widened per GEMM)."""
    for mod in model.modules():
        if isinstance(mod, (RMSNorm, Gate)) and mod.weight.dtype != torch.float32:
            yield mod


def _keep(w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The copy of dequantized float32 `w` to keep for GEMMs in `dtype`. On CPU a float32 copy
    is kept as bfloat16 when that is exact (FP8/FP4 values have ≤ 3 mantissa bits, so all but
    those below ~1e-38 are): the layers widen a weight to the activations' dtype right before
    the GEMM (gemm_fp8.gemm), so the numbers are the same bit for bit, and a decode step, which
    streams every weight once from memory through one core, reads half the bytes."""
    if dtype != torch.float32 or w.device.type != "cpu":
        return w.to(dtype)
    low = w.to(torch.bfloat16)
    return low if torch.equal(low.float(), w) else w


def _size(model, dtype: torch.dtype) -> int:
    """Bytes per element `_keep` gives the model's weights (exact ones)."""
    dev = next(model.parameters()).device.type
    low = dtype == torch.float32 and dev == "cpu"
    return torch.empty(0, dtype=torch.bfloat16 if low else dtype).element_size()


def resident_bytes(model, dtype: torch.dtype = torch.float32) -> int:
    """Bytes `resident_weights(model, dtype)` would add (exact unless `_keep` falls back)."""
    size = _size(model, dtype)
    small = sum(m.weight.numel() * 4 for m in _small(model))
    return sum(n for _, n in _quantized(model)) * size + small


def resident_weights(model, dtype: torch.dtype = torch.float32) -> int:
    """Keep a dequantized copy of every quantized weight (and float32 copies of the small bf16
    ones); returns the bytes it added."""
    added = 0
    for mod, _ in list(_quantized(model)):
        mod.resident = None
        if isinstance(mod, Linear):
            mod.resident = _keep(mod.dequantized(), dtype)
            added += mod.resident.numel() * mod.resident.element_size()
        else:
            n = mod.w1_weight.shape[0]
            mod.resident = {k: _keep(torch.stack([mod.weight(k, e) for e in range(n)]), dtype)
                            for k in _NAMES}
            added += sum(w.numel() * w.element_size() for w in mod.resident.values())
    for mod in list(_small(model)):
        mod.resident = mod.weight.float()
        added += mod.resident.numel() * mod.resident.element_size()
    return added


def drop_resident(model) -> None:
    """Back to per-use dequantization and conversion."""
    for mod in model.modules():
        if isinstance(mod, (Linear, Experts, RMSNorm, Gate)):
            mod.resident = None
