"""The commands as a user runs them: `flashcode serve` in a subprocess (port 0, Ctrl-C stops it),
`flashcode exec` against it through the agent's openai backend, and `flashcode exec --model`
on the in-process engine. The agent's system prompt is ~8k tokens of the tiny tokenizer, so
the context window is set just above it to bound the random model's reply."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import openai
import pytest

from tests.conftest import REPO_ROOT, run_flashcode

WINDOW = "9000"


@pytest.fixture(scope="module")
def served(tiny_ckpt):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "serve", "--model",
                             str(tiny_ckpt), "--port", "0", "--context-window", WINDOW,
                             "--name", "tiny", "--device-map", "cpu,experts=cpu"],
                            cwd=REPO_ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    found = re.search(r"on (http://127\.0\.0\.1:\d+/v1)", line)
    assert found, line + proc.stderr.read()
    assert "layers.0-3, mtp.0 cpu" in line  # the placement it runs with
    proc.err_lines = []  # the request log, read as it comes (a line follows each response)
    reader = threading.Thread(target=lambda: proc.err_lines.extend(proc.stderr), daemon=True)
    reader.start()
    proc.reader = reader
    yield proc, found.group(1)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_serve_answers_the_openai_client_and_logs_each_request(served):
    proc, url = served
    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=3, temperature=0)
    assert r.usage.completion_tokens <= 3 and r.choices[0].finish_reason in ("length", "stop")


@pytest.mark.slow
def test_exec_through_the_openai_backend_against_serve(served, git_repo, isolated_env):
    _, url = served
    out = run_flashcode("exec", "--endpoint", url, "--model-name", "tiny", "--json",
                        "--max-steps", "2", "hi", cwd=git_repo, timeout=300,
                        env={**isolated_env, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    usage = [e for e in events if e["type"] == "usage"]
    assert usage and usage[0]["prompt_tokens"] > 1000 and usage[0]["completion_tokens"] > 0
    assert events[-1]["type"] == "result"


@pytest.mark.slow
def test_exec_on_the_in_process_engine(tiny_ckpt, git_repo, isolated_env):
    env = {**isolated_env, "OMP_NUM_THREADS": "1", "FLASHCODE_CONTEXT_WINDOW": WINDOW}
    out = run_flashcode("exec", "--model", str(tiny_ckpt), "--json", "--max-steps", "2", "hi",
                        cwd=git_repo, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    usage = [e for e in events if e["type"] == "usage"]
    assert usage and usage[0]["completion_tokens"] > 0 and usage[0]["decode_tps"] > 0
    assert events[-1]["type"] == "result" and "Traceback" not in out.stderr


def test_ctrl_c_stops_serve_cleanly(served):
    proc, _ = served
    deadline = time.monotonic() + 30
    while not any("POST /v1/chat/completions 200" in ln for ln in proc.err_lines):
        assert time.monotonic() < deadline, "no log line for the request"  # one per request
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    proc.reader.join(timeout=10)
    err = "".join(proc.err_lines)
    assert "stopping" in err and "Traceback" not in err


def test_exec_with_a_broken_checkpoint_exits_4(git_repo, isolated_env, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    out = run_flashcode("exec", "hi", "--model", str(ckpt), cwd=git_repo, env=isolated_env)
    assert out.returncode == 4
    assert "cannot load the checkpoint" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("flags, says", [
    (["--device-map", "cuda:7"], "--device-map: 'cuda:7'"),
    (["--device-map", "layers.0-1=cpu"], "no device for layers.2-3, mtp.0"),
])
def test_a_bad_device_map_exits_4_saying_why(tiny_ckpt, git_repo, isolated_env, flags, says):
    out = run_flashcode("exec", "--model", str(tiny_ckpt), *flags, "hi", cwd=git_repo,
                        env=isolated_env)
    assert out.returncode == 4 and says in out.stderr and "Traceback" not in out.stderr
    out = run_flashcode("serve", "--model", str(tiny_ckpt), "--port", "0", *flags,
                        env=isolated_env)
    assert out.returncode == 4 and says in out.stderr
