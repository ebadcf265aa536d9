"""Compile the kernels for a GPU on a machine without one: a stand-in CUDA driver.

Under `with target(90) as rec:` every `kernel[grid](...)` builds a real cubin for that arch
(Triton's compiler and the ptxas it ships run on the CPU), launches nothing, and records per
launch what the build asks of one SM: registers, spilled bytes, shared memory, warps, and so
how many blocks fit on an SM. Tensors stay on the CPU and are never read or written, so they
only need the right dtype, shape and strides (`torch.empty` is enough). An autotuned kernel
builds every config when it is first tuned (the stand-in's benchmarker calls each one);
all of them are recorded, and the first config runs.

    with standin.target(90) as rec:
        attention.gather_attention(q, kv, idx, sink, scale)
    for b in rec.builds: print(b.name, b.regs, b.spills, b.shared, b.blocks_per_sm)

Triton picks its driver once per process and keeps compiled kernels per device: each arch
is its own "device" (its number is the arch), so sm_80 and sm_90 builds never mix."""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

RESERVED_SMEM = 1024  # bytes the CUDA runtime keeps per block (sm_80 and newer)


@dataclass(frozen=True)
class Arch:
    """What an SM holds and what the whole chip streams. Shared memory: per SM, and the most
    one block may opt into (`max_shared_mem` in Triton's device properties)."""
    cc: int
    gpu: str
    sms: int
    smem_sm: int
    smem_block: int
    threads_sm: int
    blocks_sm: int
    bw: float    # HBM bytes/s
    peak: float  # dense bf16 tensor FLOP/s
    regs_sm: int = 65536

    def __str__(self) -> str:
        return (f"sm_{self.cc} ({self.gpu}: {self.sms} SMs, {self.smem_block} B shared memory a "
                f"block, {self.regs_sm} registers an SM); predicted = roofline at "
                f"{self.bw / 1e12:.2f} TB/s and {self.peak / 1e12:.0f} TFLOP/s")


ARCHS = {
    80: Arch(80, "A100-SXM", 108, 167936, 166912, 2048, 32, 2.039e12, 312e12),
    89: Arch(89, "L40S", 142, 102400, 101376, 1536, 24, 0.864e12, 362e12),
    90: Arch(90, "H200", 132, 233472, 232448, 2048, 32, 4.8e12, 989e12),
    100: Arch(100, "B200", 148, 233472, 232448, 2048, 32, 8.0e12, 2250e12),
}


@dataclass
class Build:
    """One compiled kernel: what ptxas reports and what Triton's metadata says."""
    name: str
    arch: Arch
    regs: int
    spills: int      # bytes of spill stores
    shared: int      # bytes of dynamic shared memory per block
    warps: int
    stages: int
    consts: dict = field(default_factory=dict)  # the constexprs it was specialized on

    @property
    def consts_tag(self) -> str:
        """The variant: its true flags and its tile sizes, e.g. `GATED ACT BLOCK_N=64`."""
        return " ".join(k if v is True else f"{k}={v}" for k, v in self.consts.items()
                        if v is True or (k.startswith("BLOCK") and isinstance(v, int)))

    @property
    def warps_by_regs(self) -> int:
        """Warps an SM's registers hold: they go out per warp in 256s, from four 16K
        sub-partition files."""
        return 4 * (self.arch.regs_sm // 4 // (-(-max(self.regs, 1) * 32 // 256) * 256))

    @property
    def blocks_per_sm(self) -> int:
        """Resident blocks per SM: the least of the register, shared-memory, thread and block
        limits."""
        a = self.arch
        by_smem = a.smem_sm // (self.shared + RESERVED_SMEM)
        return max(0, min(self.warps_by_regs // self.warps, by_smem,
                          a.threads_sm // (32 * self.warps), a.blocks_sm))

    @property
    def smem_frac(self) -> float:
        return self.shared / self.arch.smem_block


@dataclass
class Launch:
    build: Build
    grid: tuple[int, int, int]
    tuning: bool  # launched by the autotuner's benchmark, not the real call

    def columns(self) -> str:
        """kernel, registers, spilled bytes, shared bytes and share of the limit, warps,
        stages, blocks per SM, programs, waves (programs ÷ all SMs' resident blocks)."""
        b, progs = self.build, self.grid[0] * self.grid[1] * self.grid[2]
        waves = progs / (b.arch.sms * max(b.blocks_per_sm, 1))
        return (f"{b.name:17} {b.regs:4} {b.spills:6} {b.shared:8} {b.smem_frac:5.0%} "
                f"{b.warps:3} {b.stages:3} {b.blocks_per_sm:3} {progs:8} {waves:6.2f}")


@dataclass
class Record:
    """Everything compiled and launched inside one `target(...)` block."""
    arch: Arch
    launches: list[Launch] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def builds(self) -> list[Build]:
        seen: dict[int, Build] = {}
        for ln in self.launches:
            seen.setdefault(id(ln.build), ln.build)
        return list(seen.values())

    def problems(self, smem_budget: float = 1.0) -> list[str]:
        """Compile errors, and builds that spill, want more than `smem_budget` of the shared
        memory a block may have, or fit no SM (autotune candidates included)."""
        bad = list(self.errors)
        for b in self.builds:
            what = {"spills": b.spills, "no block fits an SM": not b.blocks_per_sm,
                    f"over {smem_budget:.0%} of shared memory": b.smem_frac > smem_budget}
            bad += [f"{b.name} [{b.consts_tag}] {k} ({b.regs} registers, {b.spills} B "
                    f"spilled, {b.shared} B shared)" for k, v in what.items() if v]
        return bad


_USAGE = re.compile(r"Used (\d+) registers")
_SPILL = re.compile(r"(\d+) bytes spill stores")


def ptxas_usage(ptx: str, cc: int, fmad: bool = True) -> tuple[int, int]:
    """(registers, spill-store bytes) of a PTX module, from the same ptxas and flags Triton
    builds with (`ptxas -v`)."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "k.ptx"
        src.write_text(ptx)
        cmd = [get_ptxas(cc).path, "-lineinfo", "-v", "--regAllocOptLevel=2",
               *([] if fmad else ["--fmad=false"]), f"--gpu-name={sm_arch_from_capability(cc)}",
               str(src), "-o", str(Path(d) / "k.o")]
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    regs = max((int(m) for m in _USAGE.findall(log)), default=0)
    return regs, max((int(m) for m in _SPILL.findall(log)), default=0)


def _ptx_of(src, metadata) -> str:
    from triton.runtime.cache import get_cache_manager

    path = get_cache_manager(metadata.hash).get_file(f"{src.name[:150]}.ptx")
    if path is None:
        raise RuntimeError(f"standin: no PTX cached for {metadata.name}")
    return Path(path).read_text()


class _Launcher:
    """Triton's launcher interface; a launch records the build and its grid."""

    def __init__(self, drv, src, metadata):
        self.drv = drv
        drv.pending = (src, metadata)

    def __call__(self, gx, gy, gz, stream, function, *rest):
        self.drv.rec.launches.append(Launch(self.drv.loaded[function], (gx, gy, gz),
                                            self.drv.tuning))


class _Driver:
    """What Triton asks of its active driver (`triton.backends.driver.DriverBase`'s methods),
    for one arch: the target, device properties, a loader that measures instead of loading,
    the launcher above, and the autotuner's benchmarker."""

    def __init__(self, arch: Arch):
        self.arch, self.rec, self.loaded, self.pending, self.tuning = arch, Record(arch), [], \
            None, False
        self.launcher_cls = lambda src, md: _Launcher(self, src, md)
        props = {"max_shared_mem": arch.smem_block, "max_num_regs": arch.regs_sm,
                 "multiprocessor_count": arch.sms, "warpSize": 32, "sm_clock_rate": 0,
                 "mem_clock_rate": 0, "mem_bus_width": 0}
        self.utils = SimpleNamespace(load_binary=self._load, unload_module=lambda m: None,
                                     get_device_properties=lambda dev: props)

    def get_current_target(self):
        from triton.backends.compiler import GPUTarget

        return GPUTarget("cuda", self.arch.cc, 32)

    def get_current_device(self):
        return self.arch.cc  # one Triton device (kernel cache) per arch

    def get_current_stream(self, device=None):
        return 0

    def get_device_capability(self, device=None):
        return divmod(self.arch.cc, 10)

    def get_active_torch_device(self):
        return torch.device("cpu")

    def map_python_to_cpp_type(self, ty: str) -> str:
        from triton.backends.nvidia.driver import ty_to_cpp

        return ty_to_cpp(ty)

    def get_benchmarker(self):
        return self._bench

    def _bench(self, kernel_call, quantiles=None, **kw):
        """The autotuner's timing: build and record the config; every config ties, so the
        first one wins."""
        self.tuning = True
        try:
            kernel_call()
        except Exception as e:  # the autotuner drops a failing config silently: not here
            self.rec.errors.append(error_line(e))
            raise
        finally:
            self.tuning = False
        return [1.0] * len(quantiles) if quantiles else 1.0

    def _load(self, name, cubin, shared, device):
        """Triton's load_binary: (module, function, registers, spills, most threads a block);
        the function is the index of its Build."""
        src, md = self.pending
        regs, spills = ptxas_usage(_ptx_of(src, md), self.arch.cc, md.enable_fp_fusion)
        consts = {k if isinstance(k, str) else src.fn.arg_names[k[0]]: v
                  for k, v in src.constants.items()}
        b = Build(name, self.arch, regs, spills, shared, md.num_warps, md.num_stages, consts)
        self.loaded.append(b)
        return 0, len(self.loaded) - 1, regs, spills, min(1024, 32 * b.warps_by_regs)


_DRIVERS: dict = {}  # one per arch for the process: Triton's kernels keep their launcher


def error_line(e: Exception) -> str:
    """One line for a failed build: Triton's compile errors start with the source position
    and end with the cause."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()] or [""]
    where = f" ({lines[0].rstrip(':')})" if len(lines) > 1 else ""
    while e.__cause__ is not None:  # a helper's error: the cause is at the bottom
        e = e.__cause__
    last = ([ln.strip() for ln in str(e).strip().splitlines() if ln.strip()] or [""])[-1]
    return f"{type(e).__name__}{where}: {last[:300]}"


@contextlib.contextmanager
def target(cc: int):
    """Compile (never run) every Triton launch inside the block for sm_`cc`; yields the
    Record. Needs triton imported compiled (no TRITON_INTERPRET in this process)."""
    from engine.kernels._triton import interpreting

    if interpreting():
        raise RuntimeError("standin: TRITON_INTERPRET is set; compiling needs it unset")
    from triton.runtime import driver

    drv = _DRIVERS.get(cc) or _DRIVERS.setdefault(cc, _Driver(ARCHS[cc]))
    drv.rec = rec = Record(ARCHS[cc])
    driver.set_active(drv)
    try:
        yield rec
    finally:
        driver._active = None  # back to the real driver, looked up when next needed
