"""The registry's choice: env var, configure(), use(), auto by device, clear errors; the twin,
with one warning, where the GPU is older than a kernel needs."""

from __future__ import annotations

import warnings

import pytest

from engine.kernels import registry


def test_auto_sends_cpu_tensors_to_the_twin(monkeypatch):
    monkeypatch.setenv("FLASHCODE_KERNELS", "auto")
    assert registry.backend("cpu") == "ref"
    assert registry.get("attention.sparse_attention", "cpu").__name__ == "sparse_attention_ref"
    monkeypatch.delenv("FLASHCODE_KERNELS")
    assert registry.choice() == "auto"


def test_env_use_and_configure_layer(monkeypatch):
    monkeypatch.setenv("FLASHCODE_KERNELS", "ref")
    assert registry.backend("cpu") == "ref"
    registry.configure("triton")
    try:
        assert registry.choice() == "triton"
        assert registry.get("mhc.hc_pre", "cpu").__name__ == "hc_pre"  # interpreter is on here
        with registry.use("ref"):
            assert registry.get("mhc.hc_pre", "cpu").__name__ == "hc_pre_ref"
    finally:
        registry.configure(None)
    assert registry.choice() == "ref"


def test_bad_choices_and_triton_on_cpu_without_interpreter(monkeypatch):
    monkeypatch.setenv("FLASHCODE_KERNELS", "fast")
    with pytest.raises(ValueError, match="FLASHCODE_KERNELS='fast'"):
        registry.choice()
    with pytest.raises(ValueError, match="unknown choice"):
        registry.configure("cuda")
    monkeypatch.setenv("FLASHCODE_KERNELS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        registry.backend("cpu")


def test_a_gpu_older_than_the_kernel_needs_gets_the_twin_and_one_warning(monkeypatch):
    monkeypatch.setenv("FLASHCODE_KERNELS", "triton")
    monkeypatch.setattr(registry, "capability", lambda index: 80)  # an A100
    monkeypatch.setattr(registry, "_warned", set())
    with pytest.warns(UserWarning, match=r"gemm_fp8.linear: .*needs sm_89\+.*sm_80"):
        assert registry.get("gemm_fp8.linear", "cuda:0").__name__ == "linear_ref"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        assert registry.get("gemm_fp8.linear", "cuda:0").__name__ == "linear_ref"
        assert registry.get("mhc.hc_pre", "cuda:0").__name__ == "hc_pre"  # no e4m3 in it
    monkeypatch.setattr(registry, "capability", lambda index: 90)
    assert registry.get("gemm_fp8.linear", "cuda:0").__name__ == "linear"
