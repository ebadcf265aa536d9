"""The kernel a layer calls: the registry's choice (engine/kernels/registry.py) when running
eagerly, the plain-PyTorch twin while torch.compile traces a decode step: the registry's
lookup is not traceable, and inductor fuses the twins into kernels of its own."""

from __future__ import annotations

import torch

from engine.kernels import (
    attention,
    cache_insert,
    compressor,
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
