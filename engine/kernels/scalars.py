"""Constants for eager float32 arithmetic as cached 0-dim tensors.

A Python number in a tensor op is wrapped into a tensor and converted on every call: four
more dispatches per op (`x * 0.5` is `mul`, `to`, `_to_copy`, `empty_strided`, `copy_`). A
0-dim float32 tensor takes part without them and rounds the same way, so an eager decode
step's constants (eps, scales, shifts) come from here, and other small constant tensors
from `cached`; `f32` skips a no-op conversion's dispatch.
"""

from __future__ import annotations

import torch

_CACHE: dict[tuple, torch.Tensor] = {}


def cached(key: tuple, device: torch.device, make) -> torch.Tensor:
    """The small constant tensor `make()` builds for (key, device), built once: what an eager
    step would otherwise rebuild, op by op, at every call."""
    k = (*key, device)
    t = _CACHE.get(k)
    if t is None:
        t = _CACHE[k] = make()
    return t


def scalar(value: float, like: torch.Tensor):
    """`value` for arithmetic with float32 `like`, as a cached 0-dim float32 tensor when running
    eagerly: a Python number costs four more dispatches per op (wrapped, then converted), a
    0-dim tensor none, and both round the same way. Other dtypes and compiled steps get the
    number itself (inductor folds it; a bf16 op would round the tensor first)."""
    if like.dtype != torch.float32 or torch.compiler.is_compiling():
        return value
    return cached(("scalar", value), like.device,
                  lambda: torch.tensor(value, dtype=torch.float32, device=like.device))


def f32(x: torch.Tensor) -> torch.Tensor:
    """x as float32: itself when it is (`x.float()` on a float32 tensor still dispatches)."""
    return x if x.dtype == torch.float32 else x.float()
