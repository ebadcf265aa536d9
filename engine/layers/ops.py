"""The kernel a layer calls: the registry's choice (engine/kernels/registry.py) when running
eagerly, the plain-PyTorch twin while torch.compile traces a decode step: the registry's
lookup is not traceable, and inductor fuses the twins into kernels of its own. And the
activation round trips of official numerics, fused on the CPU (engine/kernels/fused_cpu.py)."""

from __future__ import annotations

import torch

from engine import quant
from engine.kernels import (
    attention,
    cache_insert,
    compressor,
    fused_cpu,
    gemm_fp8,
    indexer,
    registry,
    sparse_rows,
)

_TWINS = {
    "attention.sparse_attention": attention.sparse_attention_ref,
    "sparse_rows.gather_attention": sparse_rows.gather_attention_ref,
    "cache_insert.norm_rope": cache_insert.norm_rope_ref,
    "compressor.pool": compressor.pool_ref,
    "indexer.index_scores": indexer.index_scores_ref,
    "gemm_fp8.linear": gemm_fp8.linear_ref,
}


def op(name: str, device: torch.device):
    """The function for `name` ('compressor.pool') on `device`."""
    if torch.compiler.is_compiling():
        return _TWINS[name]
    return registry.get(name, device)


def kernel(name: str, device: torch.device):
    """The registry's Triton kernel for `name` when kernels run on `device` eagerly, else None:
    a decode step then runs the layer's own few-op torch form (the CPU: fewer ops than the
    twins' spelled-out steps; compiled: inductor fuses them)."""
    if torch.compiler.is_compiling() or registry.backend(device) != "triton":
        return None
    return registry.get(name, device)


def fp8_roundtrip(x: torch.Tensor, block: int) -> torch.Tensor:
    """quant.fp8_roundtrip, as one fused op in an eager float32 CPU step (bit for bit)."""
    return fused_cpu.fp8_roundtrip(x, block) if fused_cpu.ready(x) else quant.fp8_roundtrip(
        x, block)


def fp4_hadamard(x: torch.Tensor, block: int) -> torch.Tensor:
    """quant.fp4_roundtrip(quant.hadamard(x)), fused likewise (bit for bit)."""
    if fused_cpu.ready(x):
        return fused_cpu.fp4_roundtrip(fused_cpu.hadamard(x), block)
    return quant.fp4_roundtrip(quant.hadamard(x), block)
