"""Checkpoints of the working tree, taken before every write by the agent, and undo.

A checkpoint is a commit object whose tree is the working tree as it was (tracked files plus
untracked files that .gitignore does not exclude), chained under the private ref
`refs/flashcode/checkpoints` (in a linked worktree, the per-worktree
`refs/worktree/flashcode/checkpoints`, so a proposal's worktree never mixes its checkpoints
into the main one's and `flashcode undo` there can only go back to states of that tree). It
is built through a temporary index file, so the user's index,
stash, HEAD and branches are never touched. Restoring writes files through another temporary
index and deletes files the checkpoint did not have; before it does, it takes a checkpoint of
the present state, so an undo can itself be undone.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tools import gitcmd

REF = "refs/flashcode/checkpoints"
WORKTREE_REF = "refs/worktree/flashcode/checkpoints"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class CheckpointError(Exception):
    """Checkpointing failed; the message says why and what to do."""


@dataclass(frozen=True)
class Checkpoint:
    commit: str
    tree: str
    label: str
    created: float  # unix time


@dataclass(frozen=True)
class Restored:
    checkpoint: Checkpoint
    safety: Checkpoint  # the state just before the restore, to undo the undo
    changes: list[tuple[str, str]]  # (status A/M/D as applied to the working tree, path)

    def summary(self) -> str:
        if not self.changes:
            return ("Nothing to restore: the files already match checkpoint "
                    f"{self.checkpoint.commit[:10]}.")
        verbs = {"A": "restored", "M": "reverted", "D": "removed"}
        lines = [f"  {verbs.get(s, s)} {p}" for s, p in self.changes]
        return (f"Restored {len(self.changes)} file(s) to checkpoint {self.checkpoint.commit[:10]} "
                f"({self.checkpoint.label}):\n" + "\n".join(lines)
                + f"\nTo go back: flashcode undo {self.safety.commit[:10]}")


def _git(repo: Path, *args: str, env: dict[str, str] | None = None,
         input: str | None = None) -> str:
    proc = gitcmd.run(repo, *args, env=env, input=input)
    if proc.returncode != 0:
        raise CheckpointError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def ref(repo: Path) -> str:
    """The checkpoint ref of this working tree: REF, or WORKTREE_REF in a linked worktree."""
    git_dir, common = _git(Path(repo), "rev-parse", "--git-dir", "--git-common-dir").split("\n")[:2]
    same = (Path(repo) / git_dir).resolve() == (Path(repo) / common).resolve()
    return REF if same else WORKTREE_REF


def snapshot(repo: Path) -> str:
    """The tree of the working tree as it is now, via a throwaway index (no ref, no commit)."""
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        user_index = repo / _git(repo, "rev-parse", "--git-path", "index").strip()
        if user_index.is_file():
            shutil.copyfile(user_index, index)  # a copy: its stat cache keeps `add -A` fast
        env = {"GIT_INDEX_FILE": str(index)}
        _git(repo, "add", "-A", env=env)
        if (repo / ".flashcode").exists():  # flashcode's own files (spill, caches) stay out;
            # an ":(exclude)" pathspec would make `add` fail once .flashcode is git-ignored
            _git(repo, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", ".flashcode",
                 env=env)
        return _git(repo, "write-tree", env=env).strip()


def create(repo: Path, label: str, reuse: bool = False) -> Checkpoint:
    """Record the working tree now. Cheap when nothing changed (git stores each blob once);
    with `reuse`, an unchanged tree returns the newest checkpoint instead of adding one."""
    repo = Path(repo)
    tree = snapshot(repo)
    name = ref(repo)
    newest = _newest(repo, name)
    if reuse and newest and newest[1] == tree:
        return Checkpoint(newest[0], tree, newest[3], float(newest[2]))
    args = ["commit-tree", tree, "-m", label] + (["-p", newest[0]] if newest else [])
    ident = {"GIT_AUTHOR_NAME": "flashcode", "GIT_AUTHOR_EMAIL": "flashcode@localhost",
             "GIT_COMMITTER_NAME": "flashcode", "GIT_COMMITTER_EMAIL": "flashcode@localhost"}
    commit = _git(repo, *args, env=ident).strip()
    _git(repo, "update-ref", "-m", label, name, commit)
    return Checkpoint(commit, tree, label, time.time())


def _newest(repo: Path, name: str) -> list[str] | None:
    """[commit, tree, time, label] of the newest checkpoint under `name`, or None."""
    proc = gitcmd.run(repo, "log", "-1", "--format=%H%x00%T%x00%ct%x00%s", name, "--")
    return proc.stdout.rstrip("\n").split("\0", 3) if proc.returncode == 0 else None


def _has_ref(repo: Path, name: str) -> bool:
    return gitcmd.run(repo, "rev-parse", "-q", "--verify", name).returncode == 0


def history(repo: Path, limit: int = 50) -> list[Checkpoint]:
    """Checkpoints, newest first."""
    name = ref(Path(repo))
    if not _has_ref(Path(repo), name):
        return []
    out = _git(Path(repo), "log", f"-{limit}", "--format=%H%x00%T%x00%ct%x00%s", name)
    result = []
    for line in out.splitlines():
        commit, tree, ts, label = line.split("\0", 3)
        result.append(Checkpoint(commit, tree, label, float(ts)))
    return result


def find(repo: Path, ref: str | int) -> Checkpoint:
    """A checkpoint by position (0 = newest) or by (abbreviated) commit id."""
    items = history(repo, limit=1000)
    if not items:
        raise CheckpointError("There are no checkpoints in this repository yet.")
    if isinstance(ref, int) or str(ref).isdigit() and len(str(ref)) < 4:
        idx = int(ref)
        if idx >= len(items):
            raise CheckpointError(f"Only {len(items)} checkpoint(s) exist; {idx} is out of range.")
        return items[idx]
    matches = [c for c in items if c.commit.startswith(str(ref))]
    if len(matches) != 1:
        raise CheckpointError(f"No single checkpoint matches '{ref}'. See `flashcode undo --list`.")
    return matches[0]


def restore(repo: Path, target: Checkpoint) -> Restored:
    """Make the working tree's files equal the checkpoint's; the index and HEAD stay as they are."""
    repo = Path(repo)
    safety = create(repo, f"before restoring {target.commit[:10]}")
    changes = changed(repo, safety.tree, target.tree)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(repo, "read-tree", target.tree, env=env)
        wanted = [p for s, p in changes if s in "AMT"]
        if wanted:
            _git(repo, "checkout-index", "-f", "-z", "--stdin", env=env,
                 input="\0".join(wanted) + "\0")
    for status, path in changes:
        if status == "D":
            _remove(repo, path)
    return Restored(target, safety, changes)


def changed(repo: Path, old_tree: str, new_tree: str) -> list[tuple[str, str]]:
    """(status A/M/D/T, path) for each file that differs between two trees, in path order
    (-z: a name with non-ASCII bytes, a tab or a newline comes back as it is, not quoted)."""
    out = _git(Path(repo), "diff-tree", "-r", "-z", "--no-renames", "--name-status", old_tree,
               new_tree).split("\0")
    return [(out[i][0], out[i + 1]) for i in range(0, len(out) - 1, 2) if out[i]]


def diff(repo: Path, old_tree: str, new_tree: str) -> str:
    """The unified diff between two trees (e.g. a checkpoint's and `snapshot()`)."""
    return _git(Path(repo), "diff", "--no-color", "--no-renames", "--no-ext-diff", "--no-textconv",
                old_tree, new_tree)


def _remove(repo: Path, rel: str) -> None:
    path = repo / rel
    path.unlink(missing_ok=True)
    parent = path.parent
    while parent != repo and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def ignored_tree(repo: Path, max_files: int = 5000,
                 max_bytes: int = 64 * 2**20) -> tuple[str | None, list[str]]:
    """A tree of the git-ignored files now (a `.env`, local settings, build outputs), which
    checkpoints leave out, so that a failed `fix` can bring back what the agent's commands
    deleted or changed. Regular files only, smallest first within the budget; the paths left
    out are returned beside the tree (None when there is nothing to keep)."""
    repo = Path(repo)
    out = _git(repo, "ls-files", "-z", "--others", "--ignored", "--exclude-standard")
    sizes = {}
    for rel in filter(None, out.split("\0")):
        path = repo / rel
        if not rel.startswith(".flashcode/") and path.is_file() and not path.is_symlink():
            sizes[rel] = path.stat().st_size
    kept, total = [], 0
    for rel in sorted(sizes, key=lambda r: (sizes[r], r)):
        if len(kept) < max_files and total + sizes[rel] <= max_bytes:
            kept.append(rel)
            total += sizes[rel]
    if not kept:
        return None, sorted(sizes)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(repo, "update-index", "--add", "-z", "--stdin", env=env, input="\0".join(kept) + "\0")
        tree = _git(repo, "write-tree", env=env).strip()
    return tree, sorted(set(sizes) - set(kept))


def put_back(repo: Path, tree: str) -> list[str]:
    """Write every file of `tree` (from `ignored_tree`) into the working tree; the paths
    whose content differed or was missing."""
    repo = Path(repo)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(repo, "read-tree", tree, env=env)
        gitcmd.run(repo, "update-index", "-q", "--refresh", env=env)  # stat what is unchanged
        stale = _git(repo, "diff-files", "-z", "--name-only", env=env).split("\0")
        stale = [p for p in stale if p]
        if stale:
            _git(repo, "checkout-index", "-f", "-z", "--stdin", env=env,
                 input="\0".join(stale) + "\0")
    return stale
