"""bench/kernels.py runs: the CPU-interpreter dry run prints a row per kernel with a
kernel-vs-twin error under the tolerance; without CUDA the real bench says so and exits 0.
On a GPU machine (marked gpu) the tiny shapes run compiled on the device, checked the same way;
they run in a subprocess without TRITON_INTERPRET, which this directory's tests set."""

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
