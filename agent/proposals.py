"""Proposals: the agent works in a repository of its own, on branch `flashcode/<slug>`.

A proposal is a separate clone of the user's repository (under the data dir, outside the
repository) that borrows the user's objects read-only (`git clone --shared`: an alternates
file, nothing copied) and names no remote. Nothing the model runs there can reach the user's
refs, index, stash, hooks or config: they are another repository's. When the agent finishes,
flashcode itself fetches the proposal's branch back into the user's repository as
`flashcode/<slug>` (with every configured program off, tools.gitcmd) and writes a patch file;
the user reviews it (`flashcode review`) and applies accepted hunks.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.paths import flashcode_dir
from tools import gitcmd

PREFIX = "flashcode/"
_IDENT = {"GIT_AUTHOR_NAME": "flashcode", "GIT_AUTHOR_EMAIL": "flashcode@localhost",
          "GIT_COMMITTER_NAME": "flashcode", "GIT_COMMITTER_EMAIL": "flashcode@localhost"}


class ProposalError(Exception):
    """A proposal operation failed; the message says why and what to do."""


@dataclass
class Proposal:
    branch: str
    worktree: str
    task: str
    base: str  # the commit the proposal starts from
    created: float
    patch: str = ""  # path of the format-patch file, once finished
    summary: str = ""


def _git(cwd: Path, *args: str, env: dict | None = None) -> str:
    proc = gitcmd.run(cwd, *args, env=env)
    if proc.returncode != 0:
        raise ProposalError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def slugify(task: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", task.lower()).strip("-")[:limit].strip("-")
    return slug or "task"


def data_dir(repo: Path, base: Path | None = None) -> Path:
    """Per-repository folder for worktrees and patch files, outside the repository."""
    root = base / "flashcode" if base else flashcode_dir("data")
    top = Path(_git(repo, "rev-parse", "--show-toplevel").strip())
    key = hashlib.sha1(str(top).encode()).hexdigest()[:12]
    return root / "proposals" / f"{top.name}-{key}"


def start(repo: Path, task: str, base_dir: Path | None = None) -> Proposal:
    repo = Path(repo)
    head = _git(repo, "rev-parse", "HEAD").strip()
    folder = data_dir(repo, base_dir)
    taken = set(_git(repo, "branch", "--list", f"{PREFIX}*",
                     "--format=%(refname:short)").split())
    slug, n = slugify(task), 2
    name = slug
    while f"{PREFIX}{name}" in taken or (folder / name).exists():
        name, n = f"{slug}-{n}", n + 1
    where = folder / name
    where.parent.mkdir(parents=True, exist_ok=True)
    top = _git(repo, "rev-parse", "--show-toplevel").strip()
    _git(where.parent, "clone", "-q", "--shared", "--no-checkout", "--no-tags", top, name)
    _git(where, "remote", "remove", "origin")  # nothing there points back at the user's repo
    _git(where, "checkout", "-q", "-b", f"{PREFIX}{name}", head)
    proposal = Proposal(f"{PREFIX}{name}", str(where), task, head, time.time())
    _save(repo, proposal, base_dir)
    return proposal


def commit_all(proposal: Proposal, message: str) -> str | None:
    """Commit everything changed in the proposal's worktree; None when nothing changed."""
    wt = Path(proposal.worktree)
    _git(wt, "add", "-A")
    if not _git(wt, "status", "--porcelain").strip():
        return None
    _git(wt, "commit", "-q", "-m", message, env=_IDENT)
    return _git(wt, "rev-parse", "HEAD").strip()


def finish(repo: Path, proposal: Proposal, summary: str, base_dir: Path | None = None) -> Proposal:
    """Fetch the proposal's branch into the user's repository, write its commits as one
    format-patch file and record the summary."""
    branch = f"refs/heads/{proposal.branch}"
    _git(repo, "fetch", "-q", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head",
         proposal.worktree, f"+{branch}:{branch}")
    out = data_dir(repo, base_dir) / f"{proposal.branch.removeprefix(PREFIX)}.patch"
    patch = _git(repo, "format-patch", "--stdout", f"{proposal.base}..{proposal.branch}")
    out.write_text(patch, encoding="utf-8")
    proposal.patch, proposal.summary = str(out), summary
    _save(repo, proposal, base_dir)
    return proposal


def diff(repo: Path, proposal: Proposal) -> str:
    """What the proposal changes relative to where it started."""
    return _git(repo, "diff", "--no-ext-diff", "--no-textconv",
                f"{proposal.base}..{proposal.branch}")


def load(repo: Path, branch: str, base_dir: Path | None = None) -> Proposal:
    name = branch.removeprefix(PREFIX)
    meta = data_dir(repo, base_dir) / f"{name}.json"
    if not meta.is_file():
        known = ", ".join(p.branch for p in list_all(repo, base_dir)) or "none"
        raise ProposalError(f"No proposal named '{branch}'. Proposals: {known}.")
    return Proposal(**json.loads(meta.read_text(encoding="utf-8")))


def list_all(repo: Path, base_dir: Path | None = None) -> list[Proposal]:
    folder = data_dir(repo, base_dir)
    items = [Proposal(**json.loads(p.read_text(encoding="utf-8")))
             for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(items, key=lambda p: p.created, reverse=True)


def discard(repo: Path, proposal: Proposal, base_dir: Path | None = None) -> None:
    """Remove the proposal's repository, its branch and its files; the user's own branches
    are untouched."""
    if not proposal.branch.startswith(PREFIX):
        raise ProposalError(f"refusing to delete '{proposal.branch}': not a flashcode branch")
    where = Path(proposal.worktree)
    if (where / ".git").is_file():  # made by an older flashcode: a linked worktree
        _git(repo, "worktree", "remove", "--force", str(where))
        _git(repo, "worktree", "prune")
    elif where.exists():
        shutil.rmtree(where)
    if _git_ok(repo, "rev-parse", "-q", "--verify", f"refs/heads/{proposal.branch}"):
        _git(repo, "branch", "-D", proposal.branch)
    folder = data_dir(repo, base_dir)
    name = proposal.branch.removeprefix(PREFIX)
    for leftover in (folder / f"{name}.json", folder / f"{name}.patch"):
        leftover.unlink(missing_ok=True)


def _git_ok(cwd: Path, *args: str) -> bool:
    return gitcmd.run(cwd, *args).returncode == 0


def _save(repo: Path, proposal: Proposal, base_dir: Path | None) -> None:
    meta = data_dir(repo, base_dir) / f"{proposal.branch.removeprefix(PREFIX)}.json"
    meta.write_text(json.dumps(asdict(proposal), indent=2), encoding="utf-8")
