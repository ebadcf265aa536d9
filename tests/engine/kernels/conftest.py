"""Kernel tests run the Triton kernels on this CPU through the interpreter.

Triton picks compiled vs interpreted library functions once, when it is first imported; the
engine imports it lazily at the first kernel launch (engine/kernels/_triton.py). So this sets
TRITON_INTERPRET=1 while pytest collects, before any test runs. It stays set for the session;
nothing else in the suite uses triton, and the registry sends CPU tensors to the plain-PyTorch
twins unless a test asks for `triton` (FLASHCODE_KERNELS or `registry.use`)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
    raise RuntimeError("triton was imported before the kernel tests could set TRITON_INTERPRET")
os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton")


@pytest.fixture(autouse=True)
def kernels_on(monkeypatch):
    monkeypatch.setenv("FLASHCODE_KERNELS", "triton")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
