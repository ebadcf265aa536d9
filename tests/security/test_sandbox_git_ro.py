"""Inside the sandbox the repository's git directory is read-only (and, for a linked worktree,
its `.git` file and the common git dir too): a command cannot set `core.fsmonitor` or plant a
hook that flashcode's own git calls would later run outside the sandbox."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tools import sandbox
from tools.base import ToolContext, call

BWRAP = sandbox.bwrap_problem()
pytestmark = pytest.mark.skipif(BWRAP is not None, reason=f"bubblewrap not usable here: {BWRAP}")

ATTACKS = [
    "git config core.fsmonitor 'touch {flag}'",
    "git config --local core.hooksPath /tmp",
    "echo 'touch {flag}' > \"$(git rev-parse --git-common-dir)/hooks/pre-commit\"",
    "chmod +x \"$(git rev-parse --git-common-dir)/hooks/\"*",
    "echo '* filter=evil' > \"$(git rev-parse --git-common-dir)/info/attributes\"",
    "rm -rf \"$(git rev-parse --git-common-dir)/refs\"",
    "mv .git .git-gone",
    "echo x > .git/new-file",
]


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath, name)
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _attack(ctx: ToolContext, flag: Path) -> list[str]:
    outputs = []
    for attack in ATTACKS:
        r = call("shell", {"command": attack.format(flag=flag)}, ctx)
        outputs.append(r.output)
    return outputs


def _ready(ctx: ToolContext) -> ToolContext:
    """flashcode itself (outside the sandbox) excludes .flashcode/ in info/exclude on first
    use: let it, so the snapshots compare only what the sandboxed commands did."""
    call("shell", {"command": "true"}, ctx)
    return ctx


def test_a_sandboxed_command_cannot_change_the_git_dir(git_repo, tmp_path):
    git_dir, flag = git_repo / ".git", git_repo / "PWNED"
    ctx = _ready(ToolContext(git_repo, sandbox="on"))
    before = _snapshot(git_dir)
    _attack(ctx, flag)
    assert _snapshot(git_dir) == before
    fsmonitor = subprocess.run(["git", "config", "core.fsmonitor"], cwd=git_repo,
                               capture_output=True, text=True).stdout
    assert fsmonitor == "" and not flag.exists()
    call("shell", {"command": "echo still > writable.txt"}, ToolContext(git_repo, sandbox="on"))
    assert (git_repo / "writable.txt").read_text() == "still\n"  # the work tree stays writable


def test_a_linked_worktree_cannot_change_its_git_file_or_the_common_dir(git_repo, tmp_path):
    wt = tmp_path / "wt"
    subprocess.run(["git", "worktree", "add", "-q", "-b", "side", str(wt)], cwd=git_repo,
                   check=True)
    ctx = _ready(ToolContext(wt, sandbox="on"))
    gitfile, common = (wt / ".git").read_bytes(), _snapshot(git_repo / ".git")
    _attack(ctx, wt / "PWNED")
    call("shell", {"command": "echo 'gitdir: /tmp/evil' > .git"}, ctx)
    r = call("shell", {"command": "echo b > b.txt && git add b.txt && git commit -qm b"}, ctx)
    assert r.exit_code != 0  # commits go through flashcode's git_change tool, not the sandbox
    assert (wt / ".git").read_bytes() == gitfile
    assert _snapshot(git_repo / ".git") == common
    assert (wt / "b.txt").read_text() == "b\n"  # the work tree stays writable
