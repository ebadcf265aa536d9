"""Chooses, per call, the Triton kernel or its plain-PyTorch twin for an op.

`FLASHCODE_KERNELS` (the `kernels` setting): `triton`, `ref`, or `auto`/unset = Triton on CUDA
tensors, the twin on CPU. Triton on CPU works only under TRITON_INTERPRET=1 (tests).
The model calls `get("module.fn", device)`, never a kernel directly; an op named `fn` lives in
engine/kernels/module.py as `fn` (launcher) and `fn_ref` (twin). On a GPU older than an op's
kernel needs (`NEEDS_CC`) the twin runs instead, with a warning, once per op.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import warnings

import torch

from engine.kernels._triton import HAS_TRITON, interpreting

CHOICES = ("auto", "triton", "ref")
# ops whose kernel Triton cannot build below a compute capability: e4m3 (`tl.float8e4nv`, in
# FP8 weights and cache planes) exists there from sm_89 (Ada) on. `bench/kernels.py
# --compile-only --arch 80` lists them.
NEEDS_CC = {"gemm_fp8.linear": 89, "cache_insert.insert_fp8": 89}
_override: list[str] = []
_configured: list[str] = []  # set once by whoever owns the settings (the local backend)


def configure(c: str | None) -> None:
    """Process default from the `kernels` setting; None goes back to FLASHCODE_KERNELS/auto."""
    if c is not None and c not in CHOICES:
        raise ValueError(f"kernels: unknown choice {c!r}; use one of {', '.join(CHOICES)}")
    _configured[:] = [c] if c else []


def choice() -> str:
    """The configured choice: the innermost `use(...)`, else `configure(...)`, else
    FLASHCODE_KERNELS, else auto."""
    c = (_override[-1] if _override else _configured[0] if _configured
         else os.environ.get("FLASHCODE_KERNELS", "auto") or "auto")
    if c not in CHOICES:
        raise ValueError(f"FLASHCODE_KERNELS={c!r}: use one of {', '.join(CHOICES)}")
    return c


def backend(device: torch.device | str) -> str:
    """'triton' or 'ref' for tensors on `device`."""
    c, dev = choice(), torch.device(device)
    if c == "ref" or (c == "auto" and (dev.type != "cuda" or not HAS_TRITON)):
        return "ref"
    if not HAS_TRITON:
        raise RuntimeError("FLASHCODE_KERNELS=triton but triton is not installed")
    if dev.type != "cuda" and not interpreting():
        raise RuntimeError(f"FLASHCODE_KERNELS=triton needs CUDA tensors (got {dev.type}); "
                           "on CPU only under TRITON_INTERPRET=1")
    return "triton"


def get(op: str, device: torch.device | str):
    """The function for `op` ('attention.sparse_attention') on `device`."""
    module, fn = op.split(".")
    m = importlib.import_module(f"engine.kernels.{module}")
    kernel = backend(device) == "triton" and buildable(op, device)
    return getattr(m, fn if kernel else f"{fn}_ref")


def buildable(op: str, device: torch.device | str) -> bool:
    """False (and one warning per op) when `device` is a GPU older than `op`'s kernel needs."""
    need, dev = NEEDS_CC.get(op), torch.device(device)
    if need is None or dev.type != "cuda":
        return True
    cc = capability(dev.index if dev.index is not None else torch.cuda.current_device())
    if cc < need and op not in _warned:
        _warned.add(op)
        warnings.warn(f"{op}: its Triton kernel needs sm_{need}+ and this GPU is sm_{cc}; "
                      "running the plain-PyTorch twin instead", stacklevel=3)
    return cc >= need


_warned: set[str] = set()


@functools.cache
def capability(index: int) -> int:
    """Compute capability of CUDA device `index` as one number: (9, 0) -> 90."""
    major, minor = torch.cuda.get_device_capability(index)
    return 10 * major + minor


@contextlib.contextmanager
def use(c: str):
    """Force a choice inside a block (tests, bench): `with use('triton'): ...`."""
    if c not in CHOICES:
        raise ValueError(f"kernels: unknown choice {c!r}")
    _override.append(c)
    try:
        yield
    finally:
        _override.pop()
