"""Memory plan: byte counts from safetensors headers and which placement fits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent.cli.doctor import check_memory_plan
from agent.config import Settings
from engine.weights import memplan
from engine.weights.memplan import (
    GIB,
    Weights,
    flash_estimate,
    parse_device_map,
    plan,
    read_weights,
)


def test_headers_give_the_stored_bytes(tiny_ckpt):
    w = read_weights(tiny_ckpt)
    files = sum(p.stat().st_size for p in tiny_ckpt.glob("*.safetensors"))
    assert 0.9 * files < w.total <= files  # headers are the rest
    assert set(w.experts) == {f"layers.{i}" for i in range(4)} | {"mtp.0"}
    assert all(w.experts[u] > 0 for u in w.experts) and w.other > 0


def test_flash_on_one_h200_needs_experts_in_host():
    w = flash_estimate()
    assert 148 * GIB < w.total < 150 * GIB and sum(w.experts.values()) > 130 * GIB
    p = plan(w, [141 * GIB], host=512 * GIB)
    assert p.name == "experts-in-host" and p.fits
    assert p.device_map["layers.0.ffn.experts"] == "cpu" and p.device_map["layers.42"] == "cuda:0"
    assert plan(w, [141 * GIB], host=64 * GIB).name == "none"


def test_flash_on_two_h200_is_split_by_blocks():
    p = plan(flash_estimate(), [141 * GIB] * 2, host=64 * GIB)
    assert p.name == "multi-gpu"
    devices = [p.device_map[f"layers.{i}"] for i in range(43)]
    assert devices == sorted(devices) and set(devices) == {"cuda:0", "cuda:1"}


def test_small_model_fits_one_gpu():
    w = Weights(blocks={"layers.0": GIB}, experts={"layers.0": 2 * GIB}, other=GIB)
    assert plan(w, [24 * GIB], host=GIB).name == "single-gpu"
    assert plan(w, [], host=GIB).name == "none"


def test_device_map_syntax():
    m = parse_device_map("layers.0-2=cuda:0, layers.3=cuda:1,mtp.0=cuda:1")
    assert m == {"layers.0": "cuda:0", "layers.1": "cuda:0", "layers.2": "cuda:0",
                 "layers.3": "cuda:1", "mtp.0": "cuda:1"}
    with pytest.raises(ValueError, match="device-map"):
        parse_device_map("layers=cuda:0")


def test_doctor_reports_the_plan(tiny_ckpt):
    c = check_memory_plan(Settings(model=str(tiny_ckpt)), gpus=[])
    assert c.status == "warn" and "none" in c.detail  # no GPU here
    c = check_memory_plan(Settings(), gpus=[141 * GIB])
    assert "Flash" in c.detail and ("experts-in-host" in c.detail or ": none:" in c.detail)
    assert check_memory_plan(Settings(model=str(tiny_ckpt)), gpus=[80 * GIB]).detail.count(
        "single-gpu") == 1


def test_memplan_imports_no_torch():
    code = f"import sys; sys.path.insert(0, {str(memplan.__file__)!r}.rsplit('/', 2)[0]); " \
           "import engine.weights.memplan; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_plan_spells_out_as_a_device_map_that_reads_back():
    from engine.weights.memplan import to_spec

    p = plan(flash_estimate(), [141 * GIB], 512 * GIB)
    spec = to_spec(p.device_map)
    assert spec == "layers.0-42=cuda:0,experts=cpu"
    two = plan(flash_estimate(), [141 * GIB, 141 * GIB], 64 * GIB)
    spec2 = to_spec(two.device_map)
    assert spec2.startswith("layers.0-") and "=cuda:1" in spec2 and "experts" not in spec2
    assert parse_device_map(spec2) == two.device_map
