"""No process a shell command starts outlives it: not a `setsid` child, not a double-forked
daemon, whether the command ends or times out, with the sandbox and without it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import sandbox
from tools.base import ToolContext, call

BWRAP = sandbox.bwrap_problem()
MODES = ["off", pytest.param("on", marks=pytest.mark.skipif(
    BWRAP is not None, reason=f"bubblewrap not usable here: {BWRAP}"))]


def _sleepers(token: str) -> list[int]:
    """Live (not zombie) processes whose command line holds `token`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != "Z" and int(entry) != os.getpid():
            pids.append(int(entry))
    return pids


def _gone(token: str, within: float = 3.0) -> list[int]:
    """The processes holding `token` still alive after `within` seconds (killed if so)."""
    deadline = time.monotonic() + within
    while (left := _sleepers(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:  # do not leave them behind for the next test
        os.kill(pid, signal.SIGKILL)
    return left


def _escapes(token: str) -> str:
    """A command starting a setsid child and a double-forked daemon, each `sleep <token>`."""
    return (f"setsid sleep {token} & "
            f"( ( setsid sh -c 'sleep {token} & sleep {token}' & ) & ); "
            f"nohup sleep {token} >/dev/null 2>&1 & "
            "sleep 0.3; echo started")


@pytest.fixture
def token() -> str:
    return f"{random.randrange(10**6, 10**7)}.{random.randrange(10**6)}"


@pytest.mark.parametrize("mode", MODES)
def test_children_die_when_the_command_ends(git_repo, mode, token):
    started = time.monotonic()
    r = call("shell", {"command": _escapes(token)}, ToolContext(git_repo, sandbox=mode))
    assert r.exit_code == 0 and "started" in r.output
    assert time.monotonic() - started < 10  # a child holding the output open is no reason to wait
    assert _gone(token) == []


@pytest.mark.parametrize("mode", MODES)
def test_children_die_when_the_command_times_out(git_repo, mode, token):
    r = call("shell", {"command": _escapes(token) + "; sleep 60", "timeout_s": 1},
             ToolContext(git_repo, sandbox=mode))
    assert r.timed_out and "started" in r.output
    assert _gone(token) == []


def test_other_children_of_flashcode_are_left_alone(git_repo, token):
    """Only the command's own processes are killed, not others flashcode started."""
    mine = subprocess.Popen(["sleep", token])
    try:
        call("shell", {"command": "setsid sleep 1 & echo ok"}, ToolContext(git_repo, sandbox="off"))
        assert mine.poll() is None
    finally:
        mine.kill()
        mine.wait()


RUNNER = """
import sys
from tools.base import ToolContext, call
call("shell", {{"command": {cmd!r}, "timeout_s": 60}}, ToolContext({root!r}, sandbox="on"))
"""


@pytest.mark.skipif(BWRAP is not None, reason=f"bubblewrap not usable here: {BWRAP}")
def test_sandboxed_children_die_with_a_killed_flashcode(git_repo, token):
    code = RUNNER.format(cmd=_escapes(token) + "; sleep 60", root=str(git_repo))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    runner = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 20
    while len(_sleepers(token)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_sleepers(token)) >= 4, "the command never started its children"
    runner.kill()  # kill -9: flashcode cannot clean up; the sandbox must
    runner.wait()
    assert _gone(token) == []
