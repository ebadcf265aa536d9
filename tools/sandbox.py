"""An optional sandbox for `shell`: bubblewrap with the repository writable but its git
directories read-only, everything else read-only, a private /tmp, and no network.
`choose(requested)` says which mode will run and why, so the result can report it plainly.
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
    # flashcode itself runs from, which a test command like `python -m pytest` needs. The git
    # directories are bound read-only AFTER the repository, on top of its writable bind: a
    # command that could write them could set core.fsmonitor or a hook that flashcode's own
    # git calls would later run outside the sandbox. (So `git commit` fails in here: commits
    # go through the git_change tool.) --unshare-pid gives the command a PID namespace that
    # dies with it (and, by --die-with-parent, with flashcode): nothing it starts, setsid or
    # double-forked daemons included, outlives it.
    keep: list[str] = []
    for path in _python_dirs():
        keep += ["--ro-bind", path, path]
    git_ro = [a for d in git_dirs(root) for a in ("--ro-bind", d, d)]
    return ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", *keep, "--bind", str(root), str(root), *git_ro,
            "--unshare-net", "--unshare-pid", "--die-with-parent", "--chdir", str(cwd), "--",
            *argv]


def git_dirs(root: Path) -> list[str]:
    """What a sandboxed command must not write: the repository's `.git` (a directory, or the
    file of a linked worktree naming its git dir) and, for a linked worktree, that git dir
    and the repository's common git dir (commits, refs, config, hooks). A `.git` that is a
    link is bound where it leads."""
    dot = Path(root) / ".git"
    if not os.path.lexists(dot):
        return []
    found = [os.path.realpath(dot)]
    if dot.is_file():
        found += _linked_git_dirs(Path(root), dot)
    return list(dict.fromkeys(found))


def _linked_git_dirs(root: Path, dot: Path) -> list[str]:
    text = dot.read_text(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return []
    gitdir = (root / text.removeprefix("gitdir:").strip()).resolve()
    if not gitdir.is_dir():
        return []
    common = gitdir / "commondir"
    found = [str(gitdir)]
    if common.is_file():
        found.append(str((gitdir / common.read_text().strip()).resolve()))
    return [d for d in found if os.path.isdir(d)]


def _python_dirs() -> list[str]:
    """Folders under /tmp holding this interpreter or its virtual environment."""
    dirs = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(d for d in dirs if d == "/tmp" or d.startswith("/tmp/"))
