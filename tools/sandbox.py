"""An optional sandbox for `shell`: bubblewrap with the repository writable, everything else
read-only, a private /tmp, and no network. `choose(requested)` says which mode will run and why,
so the result can report it plainly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tools.base import ToolError


@dataclass(frozen=True)
class Mode:
    name: str  # "bubblewrap" or "none"
    note: str  # why this mode, in one sentence for the model and the user


@cache
def bwrap_problem() -> str | None:
    """None when bubblewrap works here, else why not (not installed, no user namespaces, ...)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    probe = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-net", "--die-with-parent",
                            "--", "true"], capture_output=True, text=True, timeout=20)
    if probe.returncode != 0:
        return f"bubblewrap cannot start here: {probe.stderr.strip() or probe.returncode}"
    return None


def refuse_sandbox_argument(data: Any) -> Any:
    """A `model_validator(mode="before")` for the arguments of tools that run commands: the
    sandbox is the user's setting (ToolContext.sandbox), so a model asking to switch it is
    refused rather than quietly obeyed or ignored."""
    if isinstance(data, dict) and "sandbox" in data:
        raise ValueError("the sandbox is the user's setting, not an argument: call again "
                         "without `sandbox`")
    return data


def choose(requested: str) -> Mode:
    """The mode for a run: requested is "auto", "on" or "off"."""
    if requested == "off":
        return Mode("none", "sandbox off as requested: the command could write anywhere and use "
                            "the network")
    problem = bwrap_problem()
    if problem is None:
        return Mode("bubblewrap", "sandboxed with bubblewrap: repository writable, rest of the "
                                  "filesystem read-only, private /tmp, network off")
    if requested == "on":
        raise ToolError(f"A sandbox was required but {problem}. Install bubblewrap "
                        "(`apt-get install bubblewrap`) or run with the sandbox off.")
    return Mode("none", f"not sandboxed: {problem}")


def wrap(argv: list[str], mode: Mode, root: Path, cwd: Path) -> list[str]:
    """The command line that runs `argv` in `mode`."""
    if mode.name != "bubblewrap":
        return argv
    # order matters: the private /tmp is mounted before the repository, so a repository that
    # lives under /tmp stays visible and writable; so do (read-only) the Python environments
    # flashcode itself runs from, which a test command like `python -m pytest` needs
    keep: list[str] = []
    for path in _python_dirs():
        keep += ["--ro-bind", path, path]
    keep_rw = [a for d in _git_common_dirs(root) for a in ("--bind", d, d)]  # its history
    return ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", *keep, "--bind", str(root), str(root), *keep_rw,
            "--unshare-net", "--die-with-parent", "--chdir", str(cwd), "--", *argv]


def _git_common_dirs(root: Path) -> list[str]:
    """For a linked worktree (`.git` is a file naming its git dir), the repository's common
    git dir, where commits, refs and the worktree's index are written; else nothing."""
    dot = Path(root) / ".git"
    if not dot.is_file():
        return []
    text = dot.read_text(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return []
    gitdir = (Path(root) / text.removeprefix("gitdir:").strip()).resolve()
    common = gitdir / "commondir"
    if common.is_file():
        gitdir = (gitdir / common.read_text().strip()).resolve()
    return [str(gitdir)] if gitdir.is_dir() else []


def _python_dirs() -> list[str]:
    """Folders under /tmp holding this interpreter or its virtual environment."""
    dirs = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(d for d in dirs if d == "/tmp" or d.startswith("/tmp/"))
