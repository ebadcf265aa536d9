"""The stand-in driver's arithmetic and guards (the compile itself: test_bench.py's
--compile-only test, in a subprocess). Occupancy is checked against the CUDA occupancy rules:
registers go out per warp in 256s from four 16K sub-partition files, 1 KB of shared memory is
reserved per block."""

from __future__ import annotations

import pytest

from engine.kernels import standin


def _build(regs: int, warps: int, shared: int, cc: int = 90) -> standin.Build:
    return standin.Build("k", standin.ARCHS[cc], regs, 0, shared, warps, 2)


def test_blocks_per_sm_is_the_tightest_limit():
    assert _build(255, 4, 213248).blocks_per_sm == 1        # the old attention: one block
    assert _build(128, 4, 16384).blocks_per_sm == 4         # registers: 16 warps an SM
    assert _build(32, 4, 1024).blocks_per_sm == 16          # threads: 2048 an SM
    assert _build(32, 1, 0).blocks_per_sm == 32             # the block limit
    assert _build(64, 4, 60000).blocks_per_sm == 3          # shared memory, 1 KB reserved each
    assert _build(64, 4, 60000, cc=89).blocks_per_sm == 1   # Ada: 100 KB an SM
    assert _build(200, 8, 0).blocks_per_sm == 1
    assert _build(40, 4, 240000).blocks_per_sm == 0         # over the SM: never fits


def test_smem_fraction_and_variant_tag():
    b = _build(100, 4, 116224)
    b.consts = {"GATED": True, "ACT": False, "BLOCK_N": 64, "QB": 128}
    assert b.smem_frac == pytest.approx(0.5)
    assert b.consts_tag == "GATED BLOCK_N=64"


def test_error_line_names_the_cause_of_a_nested_compile_error():
    inner = ValueError("type fp8e4nv not supported in this architecture")
    outer = RuntimeError("at 10:13:\n    qn = _q_tiles(...)\n         ^")
    outer.__cause__ = inner
    assert standin.error_line(outer) == (
        "ValueError (at 10:13): type fp8e4nv not supported in this architecture")


def test_refuses_to_run_under_the_interpreter():
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):  # conftest sets it here
        with standin.target(90):
            pass
