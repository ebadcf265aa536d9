"""bench/kernels.py runs: the CPU-interpreter dry run prints a row per kernel with a
kernel-vs-twin error under the tolerance; without CUDA the real bench says so and exits 0;
--compile-only builds every kernel for Hopper at Flash shapes (no GPU needed) spill-free, the
hot ones within 60 % of shared memory. On a GPU machine (marked gpu) the tiny shapes run
compiled on the device, checked the same way. The compiled runs are subprocesses without
TRITON_INTERPRET, which this directory's tests set."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT

BENCH = str(REPO_ROOT / "bench" / "kernels.py")


def _bench(*args: str, interpret: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update({"OMP_NUM_THREADS": "1", **({"TRITON_INTERPRET": "1"} if interpret else {})})
    return subprocess.run([sys.executable, BENCH, *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=REPO_ROOT)


def _builds(table: str) -> list[tuple[str, str, int, float]]:
    """(op, kernel, spilled bytes, shared-memory fraction) per row of a --compile-only table."""
    out, op = [], ""
    for ln in table.splitlines():
        cols = ln.split()
        k = next((i for i, c in enumerate(cols) if c.startswith("_") and c.endswith("kernel")),
                 None)
        if k is None:
            continue
        op = " ".join(cols[:k]) or op
        out.append((op, cols[k], int(cols[k + 2]), float(cols[k + 4].rstrip("%")) / 100))
    return out


def test_compile_only_builds_every_kernel_for_hopper_at_flash_shapes():
    """Decode and prefill at 8K context (longer contexts build the same kernels; only grids
    and the HCA index set grow): 30-75 s with a cold Triton cache on two busy cores."""
    r = _bench("--compile-only", "--arch", "90", "--ctx", "8192", interpret=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sm_90: every build compiled, spill-free, within shared memory" in r.stdout
    assert "no kernel launched" not in r.stdout
    builds = _builds(r.stdout)
    kernels = {k for _, k, _, _ in builds}
    assert {"_qk_kernel", "_attn_kernel", "_combine_kernel", "_grouped_kernel", "_gemm_kernel",
            "_scores_kernel", "_pool_kernel", "_norm_rope_kernel", "_pre_kernel",
            "_post_kernel"} <= kernels
    for op, kernel, spilled, smem in builds:
        assert spilled == 0, (op, kernel)
        if op.startswith(("attention", "moe")):
            assert smem <= 0.6, (op, kernel, smem)


def test_dry_run_prints_every_case_within_tolerance():
    r = _bench("--dry-run", "--only", "compressor", "--only", "mhc", interpret=True)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith(("compressor", "norm", "mhc"))]
    assert len(rows) == 10, r.stdout
    for ln in rows:
        err = float(ln.split()[-1])
        assert err < 5e-2, ln
    assert "dry run" in r.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_says_so_and_exits_0():
    r = _bench(interpret=False)
    assert r.returncode == 0
    assert "no CUDA device" in r.stdout and "nothing was measured" in r.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_kernels_match_twins_at_small_shapes():
    r = _bench("--small", interpret=False)
    assert r.returncode == 0, r.stdout + r.stderr
