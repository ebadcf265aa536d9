"""Per-hunk review of a diff: split a `git diff` into hunks, keep the accepted ones, apply them.

Used by `flashcode review` and the TUI's diff view. Applying goes through `git apply --recount`
on the working tree only (never the index), and is all or nothing: `--check` runs first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tools import gitcmd

_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class HunkError(Exception):
    """The accepted hunks do not apply; the message says where."""


@dataclass
class Hunk:
    header: str  # the "@@ -a,b +c,d @@ ..." line
    lines: list[str]  # body lines, each starting with ' ', '+', '-' or '\\'

    @property
    def added(self) -> int:
        return sum(1 for line in self.lines if line.startswith("+"))

    @property
    def removed(self) -> int:
        return sum(1 for line in self.lines if line.startswith("-"))

    def text(self) -> str:
        return "\n".join([self.header, *self.lines]) + "\n"


@dataclass
class FileDiff:
    path: str
    head: list[str]  # "diff --git", index, mode, ---/+++ lines
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def is_binary_or_meta(self) -> bool:
        """Renames, mode changes, binary files: no hunks, taken or left whole."""
        return not self.hunks


def parse(diff: str) -> list[FileDiff]:
    files: list[FileDiff] = []
    current: FileDiff | None = None
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            path = line.split(" b/", 1)[-1]
            current = FileDiff(path, [line])
            files.append(current)
        elif current is None:
            continue
        elif _HUNK_RE.match(line):
            current.hunks.append(Hunk(line, []))
        elif current.hunks:
            current.hunks[-1].lines.append(line)
        else:
            current.head.append(line)
    return files


def select(files: list[FileDiff], accepted: set[tuple[int, int]]) -> str:
    """A patch of the accepted (file index, hunk index) pairs; a hunkless file counts as hunk 0."""
    out: list[str] = []
    for fi, f in enumerate(files):
        if f.is_binary_or_meta:
            if (fi, 0) in accepted:
                out.extend(f.head)
            continue
        keep = [h for hi, h in enumerate(f.hunks) if (fi, hi) in accepted]
        if keep:
            out.extend(f.head)
            for h in keep:
                out.append(h.header)
                out.extend(h.lines)
    return "\n".join(out) + "\n" if out else ""


def apply(repo: Path, patch: str, reverse: bool = False) -> None:
    """Apply to the working tree only; check first so nothing is half-applied.

    `reverse=True` undoes the patch (`git apply -R`): how the TUI reverts a rejected hunk of
    an edit the agent already made.
    """
    if not patch.strip():
        return
    flags = ["-R"] if reverse else []
    for extra in (["--check"], []):
        proc = gitcmd.run(repo, "apply", "--recount", "--whitespace=nowarn", *flags, *extra,
                          input=patch)
        if proc.returncode != 0:
            verb = "revert" if reverse else "apply"
            raise HunkError(f"the selected hunks do not {verb} cleanly in the working tree: "
                            f"{proc.stderr.strip()}. Nothing was changed.")
