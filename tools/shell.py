"""`shell`: run a command in the repository with a timeout, optionally sandboxed.

The command runs in its own process group; on timeout the whole group gets SIGTERM, then
SIGKILL after a grace period, so a command that ignores SIGTERM (or leaves children behind)
still ends; and nothing it started outlives it, processes that left the group included
(tools.reaper; with bubblewrap, its PID namespace). Output (stdout and stderr interleaved)
goes through a pipe to a file under ctx.spill_dir, capped at ctx.spill_cap_bytes
(tools.capture keeps the head and the tail and counts what it drops); a long output returns
its head and tail and the file's path, a short one returns whole and the file is removed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from tools import reaper, sandbox
from tools.base import ToolContext, ToolError, register
from tools.capture import Capture
from tools.state import DIRNAME, private_dir

GRACE_S = 2.0  # between SIGTERM and SIGKILL


class ShellArgs(BaseModel):
    command: str = Field(description="bash command line")
    cwd: str = Field(".", description="working directory, relative to the repository root")
    timeout_s: float = Field(120, gt=0, le=3600, description="seconds before the command is "
                                                             "killed")
    max_output: int = Field(20_000, ge=200, le=1_000_000,
                            description="characters of output returned (head and tail)")

    _no_sandbox = model_validator(mode="before")(sandbox.refuse_sandbox_argument)


class ShellResult(BaseModel):
    exit_code: int | None  # None when killed on timeout
    timed_out: bool
    output: str  # stdout and stderr interleaved; head and tail when long
    truncated: bool
    spill_path: str | None  # repository-relative file with the whole output, when truncated
    duration_s: float
    sandbox: str  # "bubblewrap" or "none"
    sandbox_note: str


def spill_dir(ctx: ToolContext) -> Path:
    """ctx.spill_dir, created; under .flashcode/ it is kept out of `git status`."""
    assert ctx.spill_dir is not None
    if ctx.root / DIRNAME in ctx.spill_dir.parents:
        private_dir(ctx.root)
    ctx.spill_dir.mkdir(parents=True, exist_ok=True)
    return ctx.spill_dir


@dataclass(frozen=True)
class Ran:
    code: int | None  # None when killed on timeout
    timed_out: bool
    out_file: Path  # the output, capped at ctx.spill_cap_bytes (head and tail)
    secs: float
    dropped: int  # bytes of output dropped from the middle to keep to the cap


def run_command(ctx: ToolContext, argv: list[str], cwd: Path, timeout_s: float,
                mode: sandbox.Mode) -> Ran:
    """Run argv to completion or timeout; when it returns, nothing the command started is
    left running (the group is killed, and orphans that left it: tools.reaper)."""
    fd, out_name = tempfile.mkstemp(dir=spill_dir(ctx), prefix="shell-", suffix=".log")
    start = time.monotonic()
    with os.fdopen(fd, "wb") as out:
        capture = Capture(out, ctx.spill_cap_bytes)
        try:
            with reaper.command() as started:
                timed_out, code = _run(ctx, argv, cwd, timeout_s, mode, capture, started)
        finally:
            dropped = capture.finish(GRACE_S)
    return Ran(code, timed_out, Path(out_name), time.monotonic() - start, dropped)


def _run(ctx: ToolContext, argv: list[str], cwd: Path, timeout_s: float, mode: sandbox.Mode,
         capture: Capture, started) -> tuple[bool, int | None]:
    """Start the command with its output into `capture`; (timed out, exit code or None)."""
    proc = subprocess.Popen(sandbox.wrap(argv, mode, ctx.root, cwd), cwd=cwd,
                            stdout=capture.write_fd, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=reaper.die_with_parent)
    started(proc.pid)
    capture.close_writer()
    try:
        timed_out = _wait(proc, timeout_s, ctx.cancel)
    except KeyboardInterrupt:  # Ctrl-C, or ctx.cancel: the command must not outlive it
        _kill_group(proc)
        raise
    finally:
        _signal_group(proc.pid, signal.SIGKILL)  # children left running in the background
    return timed_out, None if timed_out else proc.returncode


def _wait(proc: subprocess.Popen, timeout_s: float, cancel) -> bool:
    """Wait for the command; True if it timed out (and was killed). Polls `cancel`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            proc.wait(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
            return False
        except subprocess.TimeoutExpired:
            if cancel.is_set():
                raise KeyboardInterrupt from None
            if time.monotonic() >= deadline:
                _kill_group(proc)
                return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def head_tail(path: Path, limit: int) -> tuple[str, bool]:
    """The whole text of `path` if it fits `limit` characters, else its head and tail."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if size <= limit:
            return f.read().decode("utf-8", errors="replace"), False
        half = limit // 2
        head = f.read(half).decode("utf-8", errors="replace")
        f.seek(size - half)
        tail = f.read().decode("utf-8", errors="replace")
    return f"{head}\n[… {size - 2 * half} bytes omitted …]\n{tail}", True


@register("shell", ShellArgs, "exec")
def shell(ctx: ToolContext, args: ShellArgs) -> ShellResult:
    cwd = ctx.resolve(args.cwd, must_exist=True)
    if not cwd.is_dir():
        raise ToolError(f"cwd '{args.cwd}' is a file; give a directory.")
    mode = sandbox.choose(ctx.sandbox)
    ran = run_command(ctx, ["bash", "-c", args.command], cwd, args.timeout_s, mode)
    output, truncated = head_tail(ran.out_file, args.max_output)
    kept = truncated or bool(ran.dropped)
    spilled = ctx.rel(ran.out_file) if kept else None
    if ran.dropped:
        output += (f"\n[{ran.dropped} bytes of output were dropped from the middle to keep "
                   f"the output file under {ctx.spill_cap_bytes} bytes; its head and tail: "
                   f"{spilled}]")
    elif truncated:
        output += f"\n[full output: {spilled}]"
    else:
        ran.out_file.unlink()
    if ran.timed_out:
        output += f"\n[killed after {args.timeout_s:g} s timeout]"
    return ShellResult(exit_code=ran.code, timed_out=ran.timed_out, output=output,
                       truncated=kept, spill_path=spilled,
                       duration_s=round(ran.secs, 3), sandbox=mode.name, sandbox_note=mode.note)
