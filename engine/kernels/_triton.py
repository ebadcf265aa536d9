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
_helpers: dict = {}                   # plain helper function -> its triton.jit build (or None)


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


def helper(fn):
    """`@helper` on a device function kernels call; the first kernel build swaps the plain
    function in the kernel module's globals for its triton.jit build."""
    _helpers[fn] = None
    return fn


def _build(fn, triton):
    g = fn.__globals__
    g["tl"] = triton.language
    for name, v in list(g.items()):
        if callable(v) and getattr(v, "__hash__", None) and v in _helpers:
            if _helpers[v] is None:
                v.__globals__["tl"] = triton.language
                _helpers[v] = triton.jit(v)
            g[name] = _helpers[v]
    return triton.jit(fn)


class jit:  # noqa: N801 - a decorator, like triton.jit
    """`@jit` on a kernel body; `kernel[grid](...)` builds it with triton.jit once, then
    launches."""

    def __init__(self, fn):
        self.fn, self._kernel = fn, None

    def __getitem__(self, grid):
        if self._kernel is None:
            self._kernel = _build(self.fn, _import_triton())
        return self._kernel[grid]


def pow2(n: int, floor: int = 16) -> int:
    """Smallest power of two ≥ max(n, floor): tile sizes (tl.dot wants ≥ 16)."""
    p = floor
    while p < n:
        p *= 2
    return p


@helper
def round_e4m3(v):
    """fp32 -> the nearest e4m3 value (ties to even), still fp32, for |v| ≤ 448. Casting
    this to tl.float8e4nv is then exact; Triton's CPU interpreter rounds a mantissa carry
    into the wrong exponent (126.95 -> 64), so kernels never rely on the cast to round."""
    a = tl.abs(v)
    e = ((a.to(tl.int32, bitcast=True) >> 23) & 255) - 127
    ulp = tl.exp2((tl.maximum(e, -6) - 3).to(tl.float32))  # 3 mantissa bits; subnormals 2^-9
    r = ((a / ulp + 12582912.0) - 12582912.0) * ulp         # 1.5·2^23: round half to even
    return tl.where(v < 0, -r, r)


@helper
def e2m1_tile(byte, ROWS: tl.constexpr, COLS: tl.constexpr):
    """Packed MXFP4 bytes [ROWS, COLS/2] (int32, 0..255; low nibble = even channel) -> e2m1
    values [ROWS, COLS] fp32: code c = s·e·m -> ±(e ? (1 + m/2)·2^(e−1) : m/2)."""
    codes = tl.join(byte & 15, byte >> 4)
    ex, man = (codes >> 1) & 3, (codes & 1).to(tl.float32)
    mag = tl.where(ex == 0, man * 0.5, (1.0 + man * 0.5) * tl.exp2((ex - 1).to(tl.float32)))
    return tl.where((codes & 8) != 0, -mag, mag).reshape(ROWS, COLS)


def check(cond: bool, msg: str) -> None:
    """Launcher layout checks: a clear ValueError instead of a wrong answer."""
    if not cond:
        raise ValueError(msg)
