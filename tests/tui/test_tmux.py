"""The real `flashcode` in a real terminal: tmux runs it, sends keys, and the test reads the
rendered pane (what a user sees), not the widget tree. The model is scripted (see
tests/tui/scripted_main.py); everything else is the installed entry point.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (apt-get install tmux)")


class Tmux:
    def __init__(self, socket: str):
        self.socket = socket

    def __call__(self, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=10)
        return proc.stdout

    def pane(self) -> str:
        return self("capture-pane", "-p", "-t", "app")

    def wait_for(self, text: str, timeout: float = 90.0) -> str:  # a busy 2-core machine
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.pane()
            if text in screen:
                return screen
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared; the pane shows:\n{self.pane()}")


@pytest.fixture
def tmux(tmp_path):
    t = Tmux(f"flashcode-test-{os.getpid()}-{tmp_path.name}")
    yield t
    t("kill-server")


def test_app_in_a_real_terminal(tmux, git_repo, tmp_path, isolated_env):
    script = tmp_path / "script.json"
    spec = {"goal": "A file note.txt holds the words 'from tmux'.", "context": [],
            "constraints": ["touch nothing else"], "acceptance_criteria": ["note.txt exists"],
            "deliverable": "the new file", "questions": []}
    script.write_text(json.dumps([
        {"tools": True},
        {"say": json.dumps(spec)},  # the rewrite call's answer: a TaskSpec
        {"call": "_write_file", "args": {"path": "note.txt", "text": "from tmux\n"}},
        {"say": "Wrote **note.txt** for you.", "reasoning": "one write"},
    ]))
    env = {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data"), "PYTHONPATH": str(REPO_ROOT),
           "OMP_NUM_THREADS": "1", "TERM": "xterm-256color"}
    exports = " ".join(f"{k}={_quote(v)}" for k, v in env.items()
                       if k in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "HOME", "PYTHONPATH",
                                "OMP_NUM_THREADS", "TERM", "PATH"))
    command = (f"cd {_quote(str(REPO_ROOT))} && env {exports} {_quote(sys.executable)} -m "
               f"tests.tui.scripted_main {_quote(str(script))} --endpoint http://127.0.0.1:9/v1 "
               f"--model-name scripted --approval ask -C {_quote(str(git_repo))}; "
               "echo EXITED-$?; sleep 30")
    started = time.monotonic()
    tmux("new-session", "-d", "-s", "app", "-x", "80", "-y", "24", command)
    screen = tmux.wait_for("Ask, or /help")
    ready = time.monotonic() - started
    assert "idle" in screen or "loading" in screen
    tmux("send-keys", "-t", "app", "-l", "please write a note")
    tmux("send-keys", "-t", "app", "Enter")
    screen = tmux.wait_for("rewritten as a task spec")
    assert "A file note.txt holds the words" in screen
    tmux("send-keys", "-t", "app", "C-s")  # accept the spec as shown
    screen = tmux.wait_for("The agent wants to change files")
    assert "_write_file note.txt" in screen
    tmux("send-keys", "-t", "app", "y")
    screen = tmux.wait_for("Wrote note.txt for you.")
    assert "✓ _write_file note.txt" in screen  # the panel just above the answer
    tmux.wait_for("Changes in this turn: 1 file(s), 1 hunk(s)")  # then the turn's diff
    assert (git_repo / "note.txt").read_text() == "from tmux\n"
    tmux("send-keys", "-t", "app", "C-c")  # idle: Ctrl-C quits
    tmux.wait_for("EXITED-0")
    print(f"time to an interactive screen under tmux: {ready:.2f} s")


def test_real_flashcode_replaying_a_recording(tmux, git_repo, tmp_path, isolated_env):
    """`flashcode --model replay:FILE` exactly as a user types it: a real shell tool call."""
    replay_in_tmux(tmux, git_repo, tmp_path, isolated_env, [
        _calling("shell", {"command": "echo replayed > out.txt"}),
        {"role": "assistant", "content": "Ran it."}])
    tmux("send-keys", "-t", "app", "-l", "run the command")
    tmux("send-keys", "-t", "app", "Enter")
    screen = tmux.wait_for("The agent wants to run a command")
    assert "shell echo replayed > out.txt" in screen
    tmux("send-keys", "-t", "app", "y")
    screen = tmux.wait_for("Ran it.")
    assert "✓ shell echo replayed > out.txt" in screen
    assert (git_repo / "out.txt").read_text() == "replayed\n"
    tmux.wait_for("idle ·")  # the turn has ended: one Ctrl-C quits
    tmux("send-keys", "-t", "app", "C-c")
    tmux.wait_for("EXITED-0")


def replay_in_tmux(tmux, repo, tmp_path, isolated_env, turns: list[dict], *flags: str,
                   size: tuple[int, int] = (80, 24)) -> None:
    """Start the real `flashcode --model replay:FILE` in `repo` in a tmux pane, the assistant
    turns recorded in FILE; the pane prints EXITED-<code> when flashcode ends."""
    recording = tmp_path / "recording.jsonl"
    recording.write_text("".join(json.dumps({"type": "message", "message": t}) + "\n"
                                 for t in turns))
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": isolated_env[
        "XDG_CONFIG_HOME"], "HOME": isolated_env["HOME"], "PYTHONPATH": str(REPO_ROOT),
        "OMP_NUM_THREADS": "1", "TERM": "xterm-256color", "PATH": os.environ["PATH"]}
    exports = " ".join(f"{k}={_quote(v)}" for k, v in env.items())
    command = (f"cd {_quote(str(repo))} && env {exports} {_quote(sys.executable)} -m "
               f"agent.cli --model replay:{_quote(str(recording))} --no-rewrite "
               f"{' '.join(flags)}; echo EXITED-$?; sleep 30")
    tmux("new-session", "-d", "-s", "app", "-x", str(size[0]), "-y", str(size[1]), command)
    tmux.wait_for("Ask, or /help")


def _calling(name: str, args: dict) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": name,
                                                      "arguments": json.dumps(args)}}]}


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def test_review_a_hunk_with_r_and_ctrl_s_in_a_real_terminal(tmux, git_repo, tmp_path,
                                                            isolated_env):
    """Type a request; the turn changes a file; the review has the keys: r, Ctrl-S, and the
    file on disk is as it was."""
    (git_repo / "notes.txt").write_text("keep me\n")
    subprocess.run(["git", "add", "."], cwd=git_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "notes"], cwd=git_repo, check=True)
    patch = "*** Begin Patch\n*** Update File: notes.txt\n@@\n-keep me\n+changed\n*** End Patch"
    replay_in_tmux(tmux, git_repo, tmp_path, isolated_env, [
        _calling("apply_patch", {"patch": patch}), {"role": "assistant", "content": "Patched."}],
        "--approval", "full-auto", size=(100, 30))
    tmux("send-keys", "-t", "app", "-l", "change the notes")
    tmux("send-keys", "-t", "app", "Enter")
    tmux.wait_for("Changes in this turn")
    assert (git_repo / "notes.txt").read_text() == "changed\n"
    tmux("send-keys", "-t", "app", "r")
    tmux.wait_for("[reject]")
    tmux("send-keys", "-t", "app", "C-s")
    deadline = time.monotonic() + 90  # the file on disk is what counts (the notice may scroll)
    while (git_repo / "notes.txt").read_text() != "keep me\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (git_repo / "notes.txt").read_text() == "keep me\n", tmux.pane()
    tmux("send-keys", "-t", "app", "C-q")
    tmux.wait_for("EXITED-0")
