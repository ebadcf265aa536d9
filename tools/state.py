"""The repository's `.flashcode/` directory (spill files, caches, worktrees): created on first
use and kept out of `git status` through the repository's info/exclude file, so flashcode never
shows up as the user's change."""

from __future__ import annotations

from pathlib import Path

from tools import gitcmd

DIRNAME = ".flashcode"


def private_dir(root: Path, *parts: str) -> Path:
    """root/.flashcode/<parts>, created, with `.flashcode/` excluded from git."""
    base = root / DIRNAME
    fresh = not base.exists()
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    if fresh or not (base / ".excluded").exists():
        _exclude(root)
        (base / ".excluded").touch()
    return path


def _exclude(root: Path) -> None:
    proc = gitcmd.run(root, "rev-parse", "--show-toplevel", "--git-path", "info/exclude")
    if proc.returncode != 0:
        return  # not a git repository: nothing to hide from
    top, exclude_path = proc.stdout.strip().split("\n")[:2]
    if Path(top).resolve() != root.resolve():
        return  # a folder inside someone else's repository: leave that repository alone
    exclude = Path(exclude_path)
    exclude = exclude if exclude.is_absolute() else root / exclude
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    if f"{DIRNAME}/" not in lines:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as f:
            f.write(("\n" if lines and lines[-1] else "") + f"{DIRNAME}/\n")
