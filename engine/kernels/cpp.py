"""Build and load a small C++ op library for the CPU, once per machine.

engine/kernels/gemv_f16.py (its source inline) and engine/kernels/fused_cpu.py (csrc/*.cpp) hold
C++ `flashcode::` ops (TORCH_LIBRARY_FRAGMENT), compiled with the compiler inductor itself needs
(g++) against this torch, and cached under FLASHCODE_COMPILE_CACHE/ext (like inductor's cache)
keyed by the source, the flags, torch and Python: the first use builds (seconds), later ones
load. `load(name, src, flags, switch)` -> None when loaded, else the reason it could not be
(switched off, no AVX-512, no compiler, not Linux, a failed build): the callers then keep
their plain-PyTorch forms.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

_loaded: dict[str, str | None] = {}


def cache_dir() -> Path:
    base = os.environ.get("FLASHCODE_COMPILE_CACHE") or str(Path.home() / ".cache" / "flashcode"
                                                            / "inductor")
    return Path(base) / "ext"


def build(name: str, src: str, flags: list[str]) -> Path:
    """The shared library for `src`, compiled now unless the cache holds it."""
    from torch.utils import cpp_extension

    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
    key = hashlib.sha256("\0".join([src, *flags, abi, torch.__version__,
                                    sys.version]).encode()).hexdigest()[:16]
    so = cache_dir() / f"{name}-{key}.so"
    if so.exists():
        return so
    so.parent.mkdir(parents=True, exist_ok=True)
    print(f"flashcode: building the {name} C++ ops for this machine, once (~10 s; cached in "
          f"{so.parent})", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=so.parent) as tmp:
        cpp, out = Path(tmp) / f"{name}.cpp", Path(tmp) / f"{name}.so"
        cpp.write_text(src)
        cmd = [os.environ.get("CXX", "g++"), *flags, abi, str(cpp), "-o", str(out)]
        cmd += [f"-I{p}" for p in cpp_extension.include_paths()]
        cmd += [f"-L{p}" for p in cpp_extension.library_paths()] + ["-lc10", "-ltorch_cpu"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"{name}: the C++ build failed: {r.stderr[-1500:]}")
        os.replace(out, so)  # atomic: a concurrent build leaves one whole file
    return so


def load(name: str, src: str, flags: list[str], switch: str) -> str | None:
    """Build (once) and load library `name`: None when its ops are registered, else why not.
    Environment variable `switch`=0 turns it off."""
    if name not in _loaded:
        why = None
        if sys.platform != "linux":
            why = "only built on Linux"
        elif os.environ.get(switch, "1") == "0":
            why = f"{switch}=0"
        elif not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
            why = "this CPU has no AVX-512"
        else:
            try:
                torch.ops.load_library(str(build(name, src, flags)))
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                why = str(e)
        _loaded[name] = why
    return _loaded[name]


def loaded(name: str) -> bool:
    """Whether `load(name, ...)` succeeded, without building anything."""
    return name in _loaded and _loaded[name] is None
