"""Where weights live and in which form, applied to a built model from outside (the model file
stays the spec; gpt-fast's model.py + quantize.py split).

  resident_weights(model)      dequantize every FP8/FP4 weight once and keep the float copy
                               (`Linear.resident`, `Experts.resident`), used instead of
                               per-use dequantization (CPU path and machines with memory to
                               spare; the layers still see their format name, so activations
                               are still FP8-rounded where they were). On CPU the float32
                               copies are kept as exact fp16 (the plain bf16 Linears such as
                               the head get one too): plain tensors read by
                               engine/kernels/gemv_f16.py's op where it builds (`cpu_layout`),
                               else packed for fbgemm's GEMM (engine/kernels/packed_f16.py):
                               the same float32 products, summed in another order (logits
                               agree to ~1e-6, not bit for bit); else bfloat16 where exact
                               (see `_keep`). RMSNorm and gate weights
                               get float32 copies (`.resident` on each)
                               `layout="plain"`: tensors a compiled step can read (fp16
                               with a power-of-two shift, `Half`, else bf16, else float32)
                               instead of fbgemm's packed matrices. Layers that read the same
                               input (wq_a|wkv, a compressor's wkv|wgate, the shared expert's
                               w1|w3) share one `merged` copy of their rows: one GEMM for all.
                               `layout="float"`: float32 copies throughout (4 bytes a weight:
                               what transformers reads; the bench's same-dtype comparison)
  resident_bytes(model)        what that would add, without doing it
The plan itself (which blocks go on which GPU, experts in host memory) is pure arithmetic in
engine.weights.memplan.
"""

from __future__ import annotations

import math

import torch

from engine.kernels import gemv_f16
from engine.kernels.packed_f16 import PackedF16
from engine.layers.attention import Attention
from engine.layers.compressor import Compressor
from engine.layers.linear import Half, Linear
from engine.layers.moe import Experts, Gate, SharedExpert
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
    """Whether float32 copies become PackedF16 or Half (CPU) rather than plain tensors."""
    return dtype == torch.float32 and next(model.parameters()).device.type == "cpu"


def _keep(w: torch.Tensor, dtype: torch.dtype, groups: int = 1, layout: str = "packed"):
    """The copy of dequantized float32 `w` to keep for GEMMs in `dtype`. On CPU a PackedF16
    (engine/kernels/packed_f16.py: 2 bytes a weight, widened inside the GEMM; ~3x faster
    decode GEMMs, float32 results to rounding), or with layout "plain" a Half (the same 2
    bytes as a plain fp16 tensor and a shift), else bfloat16 when that is exact (the layers
    widen it per GEMM, bit for bit), else `w` itself."""
    if dtype != torch.float32 or w.device.type != "cpu" or layout == "float":
        return w.to(dtype)
    packed = PackedF16.pack(w, groups) if layout == "packed" else _half(w)
    if packed is not None:
        return packed
    low = w.to(torch.bfloat16)
    return low if torch.equal(low.float(), w) else w


def _half(w: torch.Tensor) -> Half | None:
    """w as 2^shift · fp16 when that is exact (as PackedF16.pack decides), else None."""
    amax = float(w.abs().max()) if w.numel() else 0.0
    for k in (0, math.floor(math.log2(amax)) - 14 if amax > 0 else 0):
        half = (w * 2.0 ** -k).half()
        if torch.equal(half.float() * 2.0 ** k, w):
            return Half(half, k)
    return None


def _bytes(w) -> int:
    if isinstance(w, PackedF16):
        return w.nbytes
    if isinstance(w, Half):
        w = w.half
    return w.numel() * w.element_size()


def resident_bytes(model, dtype: torch.dtype = torch.float32) -> int:
    """Bytes `resident_weights(model, dtype)` would add (exact unless some weight is not
    exact in fp16/bf16 and falls back, see `_keep`)."""
    packs = _packs(model, dtype)
    size = 2 if packs else torch.empty(0, dtype=dtype).element_size()
    plain = sum(m.weight.numel() * 2 for m in _plain(model)) if packs else 0
    small = sum(m.weight.numel() * 4 for m in _small(model))
    return sum(n for _, n in _quantized(model)) * size + plain + small


def _experts_copy(mod: Experts, name: str, dtype: torch.dtype, layout: str = "packed"):
    """Experts' `name` weights: a list of per-expert PackedF16 on CPU (layout "plain": one
    Half [E, out, in]), else [E, out, in]."""
    ws = [mod.weight(name, e) for e in range(mod.w1_weight.shape[0])]
    if not _packs(mod, dtype) or layout == "float":
        return torch.stack(ws).to(dtype)
    if layout == "plain":
        return _keep(torch.stack(ws), dtype, layout="plain")
    packed = [PackedF16.pack(w) for w in ws]
    if all(p is not None for p in packed):
        return packed
    w = torch.stack(ws)  # as `_keep`: bfloat16 where exact, else float32
    low = w.to(torch.bfloat16)
    return low if torch.equal(low.float(), w) else w


def resident_weights(model, dtype: torch.dtype = torch.float32,
                     layout: str | None = None) -> int:
    """Keep a dequantized copy of every quantized weight (packed copies of the plain Linears'
    too on CPU, float32 copies of the small bf16 weights), merge the groups that read one
    input (see the module docstring); returns the bytes it added. `layout`: "packed"
    (fbgemm), "plain" (compiled steps, and eager ones where gemv_f16's op loads) or "float"
    (float32); None: `cpu_layout()`."""
    layout = layout or cpu_layout()
    drop_resident(model)
    added = 0
    for mod, _ in list(_quantized(model)):
        if isinstance(mod, Linear):
            mod.resident = _keep(mod.dequantized(), dtype, mod.groups, layout)
            added += _bytes(mod.resident)
        else:
            mod.resident = {k: _experts_copy(mod, k, dtype, layout) for k in _NAMES}
            added += sum(_bytes(w) for ws in mod.resident.values()
                         for w in (ws if isinstance(ws, list) else [ws]))
    if _packs(model, dtype):
        for mod in _plain(model):
            w = mod.weight.float()
            mod.resident = (PackedF16.pack(w, mod.groups) if layout == "packed" else w
                            if layout == "float" else _half(w))
            added += _bytes(mod.resident) if mod.resident is not None else 0
    for mod in list(_small(model)):
        mod.resident = mod.weight.float()
        added += _bytes(mod.resident)
    return added + _merge(model, dtype, layout)


def cpu_layout() -> str:
    """The layout eager CPU steps read fastest: "plain" where engine/kernels/gemv_f16.py's op
    loads (built once per machine: one dispatch per weight a token reads, at ~95 % of the
    read bandwidth; prefill widens the fp16 rows per GEMM), else fbgemm's "packed"."""
    return "plain" if gemv_f16.available() else "packed"


def _groups(model):
    """Layers that read the same input, in the order their rows are merged."""
    for mod in model.modules():
        if isinstance(mod, Attention):
            yield mod.wq_a, mod.wkv
        elif isinstance(mod, Compressor):
            yield mod.wkv, mod.wgate
        elif isinstance(mod, SharedExpert):
            yield mod.w1, mod.w3


def _merge(model, dtype: torch.dtype, layout: str) -> int:
    """Give each group whose layers all have resident copies one `merged` copy in their
    place (linear.project runs it); -> bytes added (0: the same rows, held once)."""
    added = 0
    for group in _groups(model):
        if any(lin.resident is None for lin in group):
            continue
        w = torch.cat([lin.dequantized().float() for lin in group])  # exact
        group[0].merged = _keep(w, dtype, 1, layout)
        added += _bytes(group[0].merged) - sum(_bytes(lin.resident) for lin in group)
        for lin in group:
            lin.resident = None
    return added


def drop_resident(model) -> None:
    """Back to per-use dequantization and conversion."""
    for mod in model.modules():
        if isinstance(mod, (Linear, Experts, RMSNorm, Gate)):
            mod.resident = None
        if isinstance(mod, Linear):
            mod.merged = None


def layout_of(model) -> str | None:
    """"packed", "plain" (compiled steps read it: plain, Half or float32 tensors) or None
    (no resident copies): what `resident_weights` left."""
    for mod in model.modules():
        if isinstance(mod, Linear) and (mod.resident is not None or mod.merged is not None):
            w = mod.resident if mod.resident is not None else mod.merged
            return "packed" if isinstance(w, PackedF16) else "plain"
    return None
