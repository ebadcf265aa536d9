"""Walking a repository the way git sees it: .gitignore files at every level and
.git/info/exclude, via pathspec. A git directory (`.git` at any depth, in any spelling
base.is_git_name accepts) and the top-level `.flashcode` are always skipped, and so is a link
leading out of the repository or into a git directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pathspec

from tools.base import is_git_name

ALWAYS_SKIPPED = {".flashcode"}  # at the top; git directories anywhere


@lru_cache(maxsize=4096)
def _spec(path: str, mtime_ns: int) -> pathspec.GitIgnoreSpec | None:
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None


def _load(path: Path) -> pathspec.GitIgnoreSpec | None:
    try:
        return _spec(str(path), path.stat().st_mtime_ns)
    except OSError:
        return None


class Ignore:
    """Answers "is this path ignored?" for paths relative to the repository root."""

    def __init__(self, root: Path):
        self.root = root
        self._specs: dict[str, pathspec.GitIgnoreSpec | None] = {}  # dir rel path -> its rules
        self._exclude = _load(root / ".git" / "info" / "exclude")

    def _dir_spec(self, rel_dir: str):
        if rel_dir not in self._specs:
            self._specs[rel_dir] = _load(self.root / rel_dir / ".gitignore")
        return self._specs[rel_dir]

    def ignored(self, rel: str, is_dir: bool) -> bool:
        parts = rel.split("/")
        if parts[0] in ALWAYS_SKIPPED or any(map(is_git_name, parts)):
            return True
        suffix = "/" if is_dir else ""
        verdict = None  # the deepest file with a matching rule decides, as in git
        if self._exclude is not None:
            verdict = self._exclude.check_file(rel + suffix).include
        for depth in range(len(parts)):
            spec = self._dir_spec("/".join(parts[:depth]) or ".")
            if spec is not None:
                result = spec.check_file("/".join(parts[depth:]) + suffix).include
                if result is not None:
                    verdict = result
        return bool(verdict)


def walk_files(root: Path, start: Path, ignore: Ignore | None = None) -> Iterator[Path]:
    """Files under `start` (absolute, inside `root`), not ignored, in the order of their path
    strings (so the first N are the same N a sort of every path would give)."""
    ignore = ignore or Ignore(root)
    if start.is_file():
        yield start
        return
    rel = start.relative_to(root).as_posix()
    yield from _walk(root, start, "" if rel == "." else rel + "/", ignore)


def _walk(root: Path, here: Path, prefix: str, ignore: Ignore) -> Iterator[Path]:
    try:
        entries = list(os.scandir(here))
    except OSError:
        return
    # "b/" sorts after "b.py", as the full paths "x/b/..." and "x/b.py" do
    keyed = sorted((e.name + ("/" if e.is_dir(follow_symlinks=False) else ""), e)
                   for e in entries)
    for key, entry in keyed:
        path = here / entry.name
        if key.endswith("/"):
            if not ignore.ignored(prefix + entry.name, True):
                yield from _walk(root, path, prefix + key, ignore)
        elif entry.is_symlink() and not inside(path, root):
            continue  # a link leading out of the repository is not part of it
        elif entry.is_file() and not ignore.ignored(prefix + entry.name, False):
            yield path


def inside(path: Path, root: Path) -> bool:
    """Whether `path` (a link, say) leads to somewhere in the repository outside git dirs."""
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # a link loop, or a link changing as we look
        return False
    if target != root and root not in target.parents:
        return False
    return not any(map(is_git_name, target.relative_to(root).parts))
