"""Where weights live and in which form, applied to a built model from outside (the model file
stays the spec; gpt-fast's model.py + quantize.py split).

  resident_weights(model)      dequantize every FP8/FP4 weight once and keep the float copy
                               (`Linear.resident`, `Experts.resident`), used instead of
                               per-use dequantization (CPU path and machines with memory to
                               spare; the layers still see their format name, so activations
                               are still FP8-rounded where they were). On CPU the float32
                               copies are kept packed as exact fp16 for fbgemm's GEMM
                               (engine/kernels/packed_f16.py; the plain bf16 Linears such as
                               the head get one too): the same float32 products, summed in
                               another order (logits agree to ~1e-6, not bit for bit); else
                               bfloat16 where exact (see `_keep`). RMSNorm and gate weights
                               get float32 copies (`.resident` on each)
  resident_bytes(model)        what that would add, without doing it
The plan itself (which blocks go on which GPU, experts in host memory) is pure arithmetic in
engine.weights.memplan.
"""

from __future__ import annotations

import torch

from engine.kernels.packed_f16 import PackedF16
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
    RMSNorm and gate weights."""
    for mod in model.modules():
        if isinstance(mod, (RMSNorm, Gate)) and mod.weight.dtype != torch.float32:
            yield mod


def _plain(model):
    """Plain (bf16 or float) Linears: the head, compressors, indexer weights."""
    for mod in model.modules():
        if isinstance(mod, Linear) and mod.fmt not in ("fp8", "fp4"):
            yield mod


def _packs(model, dtype: torch.dtype) -> bool:
    """Whether float32 copies become PackedF16 (CPU) rather than plain tensors."""
    return dtype == torch.float32 and next(model.parameters()).device.type == "cpu"


def _keep(w: torch.Tensor, dtype: torch.dtype, groups: int = 1):
    """The copy of dequantized float32 `w` to keep for GEMMs in `dtype`. On CPU a PackedF16
    (engine/kernels/packed_f16.py: 2 bytes a weight, widened inside the GEMM; ~3x faster
    decode GEMMs, float32 results to rounding), else bfloat16 when that is exact (the
    layers widen it per GEMM, bit for bit), else `w` itself."""
    if dtype != torch.float32 or w.device.type != "cpu":
        return w.to(dtype)
    packed = PackedF16.pack(w, groups)
    if packed is not None:
        return packed
    low = w.to(torch.bfloat16)
    return low if torch.equal(low.float(), w) else w


def _bytes(w) -> int:
    if isinstance(w, PackedF16):
        return w.nbytes
    return w.numel() * w.element_size()


def resident_bytes(model, dtype: torch.dtype = torch.float32) -> int:
    """Bytes `resident_weights(model, dtype)` would add (exact unless some weight is not
    exact in fp16/bf16 and falls back, see `_keep`)."""
    packs = _packs(model, dtype)
    size = 2 if packs else torch.empty(0, dtype=dtype).element_size()
    plain = sum(m.weight.numel() * 2 for m in _plain(model)) if packs else 0
    small = sum(m.weight.numel() * 4 for m in _small(model))
    return sum(n for _, n in _quantized(model)) * size + plain + small


def _experts_copy(mod: Experts, name: str, dtype: torch.dtype):
    """Experts' `name` weights: a list of per-expert PackedF16 on CPU, else [E, out, in]."""
    ws = [mod.weight(name, e) for e in range(mod.w1_weight.shape[0])]
    if not _packs(mod, dtype):
        return torch.stack(ws).to(dtype)
    packed = [PackedF16.pack(w) for w in ws]
    if all(p is not None for p in packed):
        return packed
    w = torch.stack(ws)  # as `_keep`: bfloat16 where exact, else float32
    low = w.to(torch.bfloat16)
    return low if torch.equal(low.float(), w) else w


def resident_weights(model, dtype: torch.dtype = torch.float32) -> int:
    """Keep a dequantized copy of every quantized weight (packed copies of the plain Linears'
    too on CPU, float32 copies of the small bf16 weights); returns the bytes it added."""
    added = 0
    for mod, _ in list(_quantized(model)):
        mod.resident = None
        if isinstance(mod, Linear):
            mod.resident = _keep(mod.dequantized(), dtype, mod.groups)
            added += _bytes(mod.resident)
        else:
            mod.resident = {k: _experts_copy(mod, k, dtype) for k in _NAMES}
            added += sum(_bytes(w) for ws in mod.resident.values()
                         for w in (ws if isinstance(ws, list) else [ws]))
    if _packs(model, dtype):
        for mod in _plain(model):
            mod.resident = PackedF16.pack(mod.weight.float(), mod.groups)
            added += _bytes(mod.resident) if mod.resident is not None else 0
    for mod in list(_small(model)):
        mod.resident = mod.weight.float()
        added += _bytes(mod.resident)
    return added


def drop_resident(model) -> None:
    """Back to per-use dequantization and conversion."""
    for mod in model.modules():
        if isinstance(mod, (Linear, Experts, RMSNorm, Gate)):
            mod.resident = None
