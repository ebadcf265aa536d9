"""Kernel tests run the Triton kernels on this CPU through the interpreter.

Triton decides once, when it is first imported, whether its library functions run compiled or
interpreted; the engine imports it lazily, at the first kernel launch
(engine/kernels/_triton.py). So each test here sets TRITON_INTERPRET=1 and
FLASHCODE_KERNELS=triton for its own duration only (monkeypatch), the first launch happens
inside one of them, and no other test sees either variable. A process that already imported
triton compiled (a GPU test before these) cannot interpret: those tests skip and say so; GPU
checks run in a subprocess instead (test_bench.py)."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
import torch

HAS_TRITON = importlib.util.find_spec("triton") is not None  # not importorskip: no import yet


def _compiled_triton_loaded() -> bool:
    if "triton" not in sys.modules:
        return False
    import triton.language.standard as std

    return type(std.zeros).__name__ != "InterpretedFunction"


@pytest.fixture(autouse=True)
def kernels_on(monkeypatch):
    if not HAS_TRITON:
        pytest.skip("triton is not installed")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    if _compiled_triton_loaded():
        why = ("triton was imported compiled earlier in this process; run "
               "tests/engine/kernels on its own to interpret the kernels")
        if os.environ.get("FLASHCODE_STRICT_KERNELS"):  # scripts/test: a skip would hide them
            pytest.fail(why + " (a test collected before them imported triton)")
        pytest.skip(why)
    monkeypatch.setenv("FLASHCODE_KERNELS", "triton")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
