"""Nothing a command starts outlives it, even without the sandbox (Linux).

A command runs in a session of its own and its process group is killed when it ends, but a
process that left the group (`setsid`, a double-forked daemon) used to survive that and go
on running after flashcode moved on, its timeout included. So while commands run, flashcode
is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): a process whose parent exits is
re-parented to flashcode instead of init. When the last running command ends, every such
orphan is killed and reaped: a child of flashcode in a session other than flashcode's own,
started after the first of those commands. A command's processes are always in such a
session (the command's own, or one made with setsid; a session cannot be joined), while the
processes flashcode starts itself (git, ripgrep) stay in its session. The command's direct
child also gets PR_SET_PDEATHSIG, so it is killed if flashcode dies (kill -9 included); what
that child had started is then beyond reach, which only the sandbox's PID namespace covers.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36
GIVE_UP_S = 3.0  # a process that will not die (stuck in the kernel) is left after this
_lock = threading.Lock()
_active = 0  # commands running now
_window_start: int | None = None  # start time (clock ticks) of the first of them


_prctl = None  # libc's prctl, looked up on first use (importing does nothing)


def _set(option: int, value: int) -> None:
    global _prctl
    if not sys.platform.startswith("linux"):
        return
    if _prctl is None:
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    _prctl(option, value, 0, 0, 0)


def die_with_parent() -> None:
    """A Popen preexec_fn: the child gets SIGKILL when flashcode (the forking thread) dies.
    It runs between fork and exec, so it makes one foreign call looked up beforehand."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@contextlib.contextmanager
def command() -> Iterator[Callable[[int], None]]:
    """Around one command: flashcode is a subreaper meanwhile; call `started(pid)` with the
    command's direct child. When the last command running ends, the orphans are killed."""
    global _active
    with _lock:
        if _active == 0:
            _set(_PR_SET_CHILD_SUBREAPER, 1)
        _active += 1
    try:
        yield _started
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                kill_orphans()
                _set(_PR_SET_CHILD_SUBREAPER, 0)


def _started(pid: int) -> None:
    global _window_start
    info = _stat(pid)
    with _lock:
        if info is not None and (_window_start is None or info[3] < _window_start):
            _window_start = info[3]


def kill_orphans() -> int:
    """Kill and reap every orphan of the commands run since the window opened (see the module
    docstring), until none is left or GIVE_UP_S passes. How many were killed. Callers hold
    _lock with no command running."""
    global _window_start
    since, _window_start = _window_start, None
    if since is None or not sys.platform.startswith("linux"):
        return 0
    killed, deadline = 0, time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        orphans = _orphans(since)
        if not orphans:
            break
        for pid in orphans:  # our children: the pid cannot be reused until we reap it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed += sum(_reap(pid, deadline) for pid in orphans)
    return killed


def _orphans(since: int) -> list[int]:
    me, session = os.getpid(), os.getsid(0)
    found = []
    for entry in os.listdir("/proc"):
        info = _stat(int(entry)) if entry.isdigit() else None
        if info and info[0] == me and info[2] != session and info[3] >= since:
            found.append(int(entry))
    return found


def _stat(pid: int) -> tuple[int, int, int, int] | None:
    """(parent pid, process group, session, start time in clock ticks) from /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])


def _reap(pid: int, deadline: float) -> bool:
    """Wait for our child `pid` to be gone (a zombie included); True if it was reaped."""
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else meanwhile
            return False
        if done or time.monotonic() >= deadline:
            return bool(done)
        time.sleep(0.005)
