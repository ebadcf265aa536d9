"""`search`: find a regex (or a literal) in the repository's files.

ripgrep runs when it is on PATH; otherwise a Python walk gives the same results: both respect
.gitignore files and .git/info/exclude (and nothing else), search hidden files, skip binary
files and `.git`, and return matches sorted by (path, line).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from pydantic import BaseModel, Field

from tools.base import ToolContext, ToolError, is_git_name, register
from tools.textio import SNIFF, decode, read_file
from tools.walk import walk_files

MAX_TEXT = 300  # characters kept of a matching line


class SearchArgs(BaseModel):
    pattern: str = Field(description="regular expression (or literal text with literal=true)")
    path: str = Field(".", description="file or directory to search")
    glob: list[str] = Field(default_factory=list,
                            description="only files matching these globs, e.g. ['*.py']")
    literal: bool = Field(False, description="treat the pattern as plain text")
    ignore_case: bool = False
    context: int = Field(0, ge=0, le=20, description="lines of context before and after")
    max_results: int = Field(200, ge=1, le=10000, description="most matching lines returned")
    engine: str = Field("auto", pattern="^(auto|ripgrep|python)$")


class Match(BaseModel):
    path: str
    line: int
    text: str
    before: list[str] = []
    after: list[str] = []


class SearchResult(BaseModel):
    matches: list[Match]
    truncated: bool  # there were more matches than max_results
    engine: str  # "ripgrep" or "python"


@register("search", SearchArgs, "read")
def search(ctx: ToolContext, args: SearchArgs) -> SearchResult:
    start = ctx.resolve(args.path, must_exist=True)
    regex = _compile(args)
    use_rg = args.engine == "ripgrep" or (args.engine == "auto" and shutil.which("rg"))
    if args.engine == "ripgrep" and not shutil.which("rg"):
        raise ToolError("ripgrep (rg) is not installed; use engine 'auto' or 'python'.")
    found = None
    if use_rg:
        try:
            found = _ripgrep(ctx, start, args)
        except ToolError:
            if args.engine == "ripgrep":
                raise
            use_rg = False  # e.g. a look-around that Rust's regex lacks: Python's re has it
    if found is None:
        found = _python(ctx, start, regex, args)
    found.sort(key=lambda m: (m.path, m.line))
    return SearchResult(matches=found[:args.max_results], truncated=len(found) > args.max_results,
                        engine="ripgrep" if use_rg else "python")


def _compile(args: SearchArgs) -> re.Pattern:
    source = re.escape(args.pattern) if args.literal else args.pattern
    try:
        return re.compile(source, re.IGNORECASE if args.ignore_case else 0)
    except re.error as exc:
        raise ToolError(f"Bad regular expression {args.pattern!r}: {exc}. Escape special "
                        "characters or pass literal=true.") from None


def _trim(line: str) -> str:
    return line if len(line) <= MAX_TEXT else line[:MAX_TEXT] + " …"


def _globbed(rel_to_start: str, globs: list[str]) -> bool:
    import pathspec

    if not globs:
        return True
    return pathspec.GitIgnoreSpec.from_lines(globs).match_file(rel_to_start)


def _python(ctx: ToolContext, start: Path, regex: re.Pattern, args: SearchArgs) -> list[Match]:
    out: list[Match] = []
    for path in walk_files(ctx.root, start):
        if start.is_dir() and not _globbed(path.relative_to(start).as_posix(), args.glob):
            continue
        if path.is_symlink() and path != start:
            continue  # ripgrep does not follow links either
        rel = path.relative_to(ctx.root).as_posix()
        data = _read(path, rel)
        if data is None or b"\0" in data[:SNIFF] or b"\0" in data:
            continue
        lines = _lines(data)
        out += [_match(rel, lines, i, args.context)
                for i, line in enumerate(lines) if regex.search(line)]
        if len(out) > args.max_results:
            break
    return out


def _rg_command(start: Path, args: SearchArgs) -> list[str]:
    """ripgrep prints only `path NUL line:` per match (-o with an empty replacement): the
    text comes from the file itself. Not `--sort path`, which turns off ripgrep's parallel
    search: the paths are sorted here instead."""
    cmd = ["rg", "--null", "--line-number", "--no-heading", "--only-matching", "--replace", "",
           "--color", "never", "--hidden", "--no-require-git", "--no-ignore-dot",
           "--no-ignore-global", "--no-ignore-parent", "--no-config", "-g", "!.[Gg][Ii][Tt]",
           "-g", "!.flashcode", "--no-messages"]
    cmd += ["-F"] if args.literal else []
    cmd += ["-i"] if args.ignore_case else []
    for g in args.glob:
        cmd += ["-g", g]
    return cmd + ["-e", args.pattern, "--", str(start)]


def _ripgrep(ctx: ToolContext, start: Path, args: SearchArgs) -> list[Match]:
    """ripgrep finds (path, line); the text and context come from the decoded file, so both
    engines return the same strings whatever the file's encoding."""
    proc = subprocess.run(_rg_command(start, args), capture_output=True, cwd=ctx.root)
    if proc.returncode == 2 and not proc.stdout:
        raise ToolError(f"ripgrep failed: {proc.stderr.decode(errors='replace').strip()}")
    hits: dict[str, set[int]] = {}
    for raw in proc.stdout.split(b"\n"):
        path, sep, rest = raw.partition(b"\0")
        if sep:  # `path NUL 12:` (one line per match; several on one line count once)
            name = os.fsdecode(path)
            hits.setdefault(name, set()).add(int(rest.split(b":", 1)[0]))
    out: list[Match] = []
    for raw_path in sorted(hits):
        numbers = sorted(hits[raw_path])
        path = Path(raw_path) if Path(raw_path).is_absolute() else ctx.root / raw_path
        rel = path.relative_to(ctx.root).as_posix()
        data = _read(path, rel)
        if data is None or any(map(is_git_name, rel.split("/"))):
            continue  # a spelling of .git the -g glob does not cover, or a file gone meanwhile
        lines = _lines(data)
        out += [_match(rel, lines, n - 1, args.context) for n in numbers if n <= len(lines)]
        if len(out) > args.max_results:
            break
    return out


def _read(path: Path, rel: str) -> bytes | None:
    """The file's bytes, read without following a link swapped in on the way (so a race
    never shows a file outside the repository); None when it cannot be read now."""
    try:
        return read_file(path, rel)[0]
    except (ToolError, OSError):
        return None


def _lines(data: bytes) -> list[str]:
    return decode(data).text.removesuffix("\n").split("\n")


def _match(rel: str, lines: list[str], i: int, c: int) -> Match:
    return Match(path=rel, line=i + 1, text=_trim(lines[i]),
                 before=[_trim(x) for x in lines[max(0, i - c):i]],
                 after=[_trim(x) for x in lines[i + 1:i + 1 + c]])
