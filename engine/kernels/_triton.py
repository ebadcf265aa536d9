"""Triton behind a lazy `jit`: triton is imported, and a kernel built, at the first launch, not
at import. Two reasons: importing the engine needs neither a GPU nor triton, and triton decides
once, when it is imported, whether its own library functions run compiled or under the CPU
interpreter (TRITON_INTERPRET=1), so that must be set before then, which tests do.

Kernel modules write `from engine.kernels._triton import jit, tl` and `x: tl.constexpr`
(string annotations, via `from __future__ import annotations`); the first launch puts the real
`triton.language` into the kernel module's globals in place of the placeholder below."""

from __future__ import annotations

import importlib.util
import os
from types import SimpleNamespace

HAS_TRITON = importlib.util.find_spec("triton") is not None
tl = SimpleNamespace(constexpr=None)  # placeholder until the first launch
_mode: list[bool] = []                # the TRITON_INTERPRET setting triton was imported under


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _import_triton():
    if not HAS_TRITON:
        raise RuntimeError("triton is not installed; use FLASHCODE_KERNELS=ref")
    import triton

    if not _mode:
        _mode.append(interpreting())
    if _mode[0] != interpreting():
        raise RuntimeError(f"triton was first used with TRITON_INTERPRET={int(_mode[0])}; "
                           "it cannot switch in one process")
    return triton


class jit:  # noqa: N801 - a decorator, like triton.jit
    """`@jit` on a kernel body; `kernel[grid](...)` builds it with triton.jit once, then
    launches."""

    def __init__(self, fn):
        self.fn, self._kernel = fn, None

    def __getitem__(self, grid):
        if self._kernel is None:
            triton = _import_triton()
            self.fn.__globals__["tl"] = triton.language
            self._kernel = triton.jit(self.fn)
        return self._kernel[grid]


def pow2(n: int, floor: int = 16) -> int:
    """Smallest power of two ≥ max(n, floor): tile sizes (tl.dot wants ≥ 16)."""
    p = floor
    while p < n:
        p *= 2
    return p


def check(cond: bool, msg: str) -> None:
    """Launcher layout checks: a clear ValueError instead of a wrong answer."""
    if not cond:
        raise ValueError(msg)
