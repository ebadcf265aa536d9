"""Completion for the input line, shared by the app and the plain mode: slash commands and
`@path` mentions matched fuzzily against the repository's files.

Pure functions and one small cache; no UI imports, so both front ends use the same answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

MAX_FILES = 20_000  # a walk stops here so a huge repository cannot stall the input


@dataclass(frozen=True)
class Completion:
    start: int  # where the replaced word begins in the text
    text: str  # what replaces text[start:cursor]
    display: str  # what a menu shows


def fuzzy_score(query: str, candidate: str) -> float | None:
    """Higher is better; None when `query`'s letters are not in `candidate` in order.

    Rewards consecutive runs, matches at the start of a path part, and short candidates,
    so `@cli` ranks `agent/cli.py` before `tests/agent/test_cli_long_name.py`.
    """
    q, c = query.lower(), candidate.lower()
    if not q:
        return 0.0
    score, pos, run = 0.0, 0, 0
    for ch in q:
        found = c.find(ch, pos)
        if found < 0:
            return None
        run = run + 1 if found == pos and pos > 0 else 1
        boundary = found == 0 or c[found - 1] in "/_-."
        score += run + (3 if boundary else 0)
        pos = found + 1
    name_start = c.rfind("/") + 1
    if c.startswith(q, name_start):
        score += 10  # the file name itself starts with the query
    return score - len(c) / 100


class PathIndex:
    """The repository's files (gitignore respected), walked at most every `ttl` seconds."""

    def __init__(self, root: Path, ttl: float = 5.0):
        self.root = Path(root).resolve()
        self.ttl = ttl
        self._files: list[str] = []
        self._at = -1e9

    def files(self) -> list[str]:
        if time.monotonic() - self._at > self.ttl:
            from tools.walk import walk_files  # not before the first completion: startup

            out = []
            for path in walk_files(self.root, self.root):
                out.append(path.relative_to(self.root).as_posix())
                if len(out) >= MAX_FILES:
                    break
            self._files, self._at = out, time.monotonic()
        return self._files

    def match(self, query: str, limit: int = 8) -> list[str]:
        scored = [(s, f) for f in self.files() if (s := fuzzy_score(query, f)) is not None]
        scored.sort(key=lambda sf: (-sf[0], sf[1]))
        return [f for _, f in scored[:limit]]


def current_word(text: str, cursor: int) -> tuple[int, str]:
    """(start, word) of the whitespace-delimited word ending at `cursor`."""
    start = cursor
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return start, text[start:cursor]


def complete(text: str, cursor: int, paths: PathIndex | None, limit: int = 8) -> list[Completion]:
    """Candidates for the word at the cursor: `/command` at the start, `@path` anywhere."""
    start, word = current_word(text, cursor)
    if word.startswith("/") and start == 0:
        from agent.slash import COMMANDS  # with the first completion, not the first screen

        return [Completion(start, name + " ", f"{name}  {c.help}")
                for name, c in COMMANDS.items() if name.startswith(word)][:limit]
    if word.startswith("@") and paths is not None:
        return [Completion(start, "@" + f + " ", f) for f in paths.match(word[1:], limit)]
    return []


def history_path(data_dir: Path) -> Path:
    """Where requests typed into either front end are remembered, one JSON string a line."""
    return Path(data_dir) / "history.jsonl"


def read_history(path: Path, limit: int = 500) -> list[str]:
    import json

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()[-limit:]
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from a killed process
        if isinstance(value, str):
            out.append(value)
    return out


def append_history(path: Path, text: str) -> None:
    import json

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(text, ensure_ascii=False) + "\n")
    except OSError:
        pass  # history is a convenience; a read-only home must not stop the session
