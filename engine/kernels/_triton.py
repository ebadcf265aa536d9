"""Triton behind a lazy `jit`: triton is imported, and a kernel built, at the first launch, not
at import. Two reasons: importing the engine needs neither a GPU nor triton, and triton decides
once, when it is imported, whether its own library functions run compiled or under the CPU
interpreter (TRITON_INTERPRET=1), so that must be set before then, which tests do.

Kernel modules write `from engine.kernels._triton import jit, tl` and `x: tl.constexpr`
(string annotations, via `from __future__ import annotations`); the first launch puts the real
`triton.language` into the kernel module's globals in place of the placeholder below.

`@tuned(configs, key)` in place of `@jit` autotunes over `Config`s (tile sizes, warps, stages):
compiled, one `triton.autotune` per target arch, over the configs meant for that arch; under
the interpreter no timing means anything, so it runs one config, the first unless a test pins
another (`pin_config`)."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Config:
    """A `triton.Config` as plain data (no triton import): constexpr values, warps, pipeline
    stages, and the compute capabilities [lo, hi) it is meant for."""
    values: dict = field(default_factory=dict)
    warps: int = 4
    stages: int = 2
    cc: tuple[int, int] = (0, 1000)


_pinned: list[int] = []  # the config index interpreted launches use (tests)


@contextlib.contextmanager
def pin_config(i: int):
    """Interpreted launches of tuned kernels use their config `i` (modulo their count) inside
    the block: tests run every config against the twin this way."""
    _pinned.append(i)
    try:
        yield
    finally:
        _pinned.pop()


class jit:  # noqa: N801 - a decorator, like triton.jit
    """`@jit` on a kernel body; `kernel[grid](...)` builds it with triton.jit once per target
    (one GPU in practice; each arch of engine/kernels/standin.py), then launches."""

    def __init__(self, fn, configs: tuple[Config, ...] = (), key: tuple[str, ...] = ()):
        self.fn, self.configs, self.key = fn, tuple(configs), tuple(key)
        self._kernels: dict = {}  # triton driver (None: interpreter) -> built kernel

    def __getitem__(self, grid):
        triton = _import_triton()
        if interpreting():
            if None not in self._kernels:
                self._kernels[None] = _build(self.fn, triton)
            launch = self._kernels[None][grid]
            if not self.configs:
                return launch
            i = _pinned[-1] % len(self.configs) if _pinned else 0
            return functools.partial(launch, **self.configs[i].values)
        drv = triton.runtime.driver.active
        k = self._kernels.get(drv)
        if k is None:
            k = self._kernels[drv] = self._compiled(triton, drv.get_current_target().arch)
        return k[grid]

    def _compiled(self, triton, cc: int):
        k = _build(self.fn, triton)
        if not self.configs:
            return k
        cfgs = [c for c in self.configs if c.cc[0] <= cc < c.cc[1]]
        if not cfgs:
            raise RuntimeError(f"{self.fn.__name__}: no config for sm_{cc}")
        return triton.autotune([triton.Config(dict(c.values), num_warps=c.warps,
                                              num_stages=c.stages) for c in cfgs],
                               key=list(self.key))(k)


def tuned(configs, key=()):
    """`@tuned(configs, key)`: a `jit` kernel autotuned over `configs` (the launch passes none
    of their values), re-tuned when the arguments named in `key` (or any dtype) change."""
    return lambda fn: jit(fn, configs, key)


def target_cc() -> int | None:
    """The compute capability kernels build for now (the GPU's, or the stand-in's); None under
    the interpreter."""
    if interpreting():
        return None
    drv = _import_triton().runtime.driver.active
    if drv not in _cc:
        _cc[drv] = drv.get_current_target().arch
    return _cc[drv]


_cc: dict = {}


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
