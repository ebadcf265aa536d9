"""A process killed with SIGKILL mid-step leaves a session that resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from agent.session import Session, read_records
from tests.agent.test_headless import turn, write_recording
from tests.conftest import REPO_ROOT, run_flashcode

STEPS = [turn("", [("read", {"path": "README.md"})]),
         turn("", [("shell", {"command": "sleep 30; echo never"})])]


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sigkill_mid_tool_leaves_a_session_that_resumes(git_repo, isolated_env, tmp_path):
    env = {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data"), "FLASHCODE_SANDBOX": "off",
           "PYTHONPATH": str(REPO_ROOT)}
    model = write_recording(tmp_path / "a.jsonl", STEPS)
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "exec", "look around", "--json",
                             "--model", model, "--approval", "full-auto", "-C", str(git_repo)],
                            env=env, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                            start_new_session=True)
    try:
        path = json.loads(proc.stdout.readline())["path"]
        shell_started = lambda: any(
            r.get("type") == "message" and "sleep 30" in json.dumps(r["message"])
            for r in read_records(path))
        assert _wait_for(shell_started), "the shell step never started"
        time.sleep(0.3)  # the tool is now running
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    records = read_records(path)
    assert [r["kind"] for r in records if r["type"] == "event"] == []  # no clean exit recorded

    done = write_recording(tmp_path / "b.jsonl", [*STEPS, turn("Looked around: a README.")])
    out = run_flashcode("exec", "go on", "--continue", "--json", "--model", done,
                        "--approval", "full-auto", "-C", str(git_repo), env=env)
    assert out.returncode == 0, out.stderr
    events = [json.loads(x) for x in out.stdout.splitlines()]
    assert events[0]["path"] == path and events[-1]["message"] == "Looked around: a README."
    msgs = Session.load(path).messages
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant",
                                         "tool", "user", "assistant"]
    assert "hello" in msgs[3]["content"]  # the finished step survived
    assert "not run" in msgs[5]["content"]  # the killed step is marked, not lost silently


def test_ctrl_c_stops_a_running_tool_cleanly(git_repo, isolated_env, tmp_path):
    env = {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data"), "FLASHCODE_SANDBOX": "off",
           "PYTHONPATH": str(REPO_ROOT)}
    model = write_recording(tmp_path / "a.jsonl", STEPS)
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "exec", "look around", "--json",
                             "--model", model, "--approval", "full-auto", "-C", str(git_repo)],
                            env=env, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                            start_new_session=True)
    try:
        path = json.loads(proc.stdout.readline())["path"]
        assert _wait_for(lambda: any("sleep 30" in json.dumps(r) for r in read_records(path)))
        time.sleep(0.3)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert time.monotonic() - started < 10  # the 30 s command did not run to its end
    assert proc.returncode == 130
    result = json.loads(rest.splitlines()[-1])
    assert result["status"] == "interrupted"
    records = read_records(path)
    assert records[-1]["kind"] == "exit" and records[-1]["status"] == "interrupted"
    msgs = Session.load(path).messages
    assert msgs[-1]["role"] == "tool" and "interrupted by the user" in msgs[-1]["content"]


def test_ctrl_c_also_stops_the_command_the_tool_started(git_repo, isolated_env, tmp_path):
    env = {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data"), "FLASHCODE_SANDBOX": "off",
           "PYTHONPATH": str(REPO_ROOT)}
    marker = f"sleep 37.{os.getpid()}"
    steps = [turn("", [("shell", {"command": f"{marker}; echo never"})])]
    model = write_recording(tmp_path / "a.jsonl", steps)
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "exec", "x", "--json",
                             "--model", model, "--approval", "full-auto", "-C", str(git_repo)],
                            env=env, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
                            start_new_session=True)
    path = json.loads(proc.stdout.readline())["path"]
    assert _wait_for(lambda: any(marker in json.dumps(r) for r in read_records(path)))
    assert _wait_for(lambda: _pids(marker))
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=20)
    left = _wait_for(lambda: not _pids(marker), timeout=3) or _pids(marker)
    for pid in left if isinstance(left, list) else []:
        os.kill(pid, signal.SIGKILL)  # a process this test started, by its id
    assert left is True, f"the command kept running after Ctrl-C: pids {left}"


def _pids(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]
