"""bench/engine.py end to end on the tiny model and short contexts: every section prints, the
two engines agree, and the figures it prints are the ones it measured (not a timing test).
(Here, after tests/engine/kernels: transformers imports triton compiled, and the kernel tests
need to be first to import it, interpreted.)"""

from __future__ import annotations

import importlib.util
import re

import pytest

from engine.config import preset
from tests.conftest import REPO_ROOT


@pytest.fixture
def bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_engine", REPO_ROOT / "bench/engine.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "bench_config", lambda: preset("tiny"))
    monkeypatch.setattr(mod, "CONTEXTS", (256, 512, 1024))
    return mod


def test_the_engine_bench_runs_every_section(bench, capsys):
    bench.main(["--quick", "--device-map", "cpu"])
    out = capsys.readouterr().out
    for c in (256, 512, 1024):
        assert re.search(rf"^\s+{c}\s+\d+\s+\d+\s+[\d.]+\s", out, re.M), out
    for side in ("fc eager", "fc32 eager", "hf"):  # every context: a row per side, with
        rows = re.findall(rf"^\s+(\d+) {side}\s+[\d.]+ \[[\d.]+-[\d.]+\]", out, re.M)
        assert rows == ["256", "512", "1024"], (side, out)  # median [spread] of the repeats
    assert re.search(r"^\s+1024 fc32 eager .* [\d.]+$", out, re.M)  # x the floor, printed
    assert "read bandwidth measured in this run" in out and "first 256 vs last 256" in out
    diff = float(re.search(r"flashcode vs transformers: max \|Δ\| (\S+)", out).group(1))
    assert diff < 1e-3
    assert "next-token logits identical: True" in out
    assert "identical to plain greedy: True" in out
    turns = re.findall(r"^\s+(\d+)\s+\d+\s+(\d+)\s+(\d+)\s", out, re.M)
    assert len(turns) == 20
    for _, new, prefilled in turns[1:]:  # with reuse: the tool result + the reply's last token
        assert int(prefilled) == int(new) + 1
