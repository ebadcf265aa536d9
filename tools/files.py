"""`read`, `list` and `glob`: looking at the repository without changing it.

`read` numbers lines (`   12\tcode`), reads a range, caps what it returns, refuses binary
files and reports the encoding it decoded with; it records the file's stamp in
ctx.read_stamps so `edit` can refuse a file that changed since. `list` and `glob` respect
.gitignore (tools.walk).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from tools.base import ToolContext, ToolError, register
from tools.textio import read_text
from tools.walk import Ignore, inside, walk_files

MAX_LINE_CHARS = 2000  # a minified line is cut, not returned whole


class ReadArgs(BaseModel):
    path: str = Field(description="file path relative to the repository root")
    start_line: int = Field(1, ge=1, description="first line to return (1-based)")
    end_line: int | None = Field(None, ge=1, description="last line to return (inclusive)")
    max_lines: int = Field(2000, ge=1, le=20000, description="most lines returned")
    max_bytes: int = Field(100_000, ge=100, description="most characters returned")


class ReadResult(BaseModel):
    path: str
    content: str  # numbered lines: f"{n:>6}\t{line}"
    start_line: int
    end_line: int  # last line returned (start_line - 1 when none)
    total_lines: int
    truncated: bool  # more lines exist past end_line than were asked for or allowed
    encoding: str
    line_endings: str  # "LF" or "CRLF"


@register("read", ReadArgs, "read")
def read(ctx: ToolContext, args: ReadArgs) -> ReadResult:
    path = ctx.resolve(args.path)
    decoded = read_text(path, args.path)
    lines = decoded.text.splitlines()
    total = len(lines)
    if args.start_line > max(total, 1):
        raise ToolError(f"'{args.path}' has {total} lines; start_line {args.start_line} is past "
                        "the end.")
    last = min(total, args.end_line or total, args.start_line + args.max_lines - 1)
    out, size, n = [], 0, args.start_line - 1
    for n in range(args.start_line, last + 1):
        line = lines[n - 1]
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + f" … [{len(line) - MAX_LINE_CHARS} more characters]"
        numbered = f"{n:>6}\t{line}"
        if out and size + len(numbered) + 1 > args.max_bytes:
            n -= 1
            break
        out.append(numbered)
        size += len(numbered) + 1
    ctx.read_stamps[ctx.rel(path)] = decoded.stamp
    return ReadResult(path=ctx.rel(path), content="\n".join(out), start_line=args.start_line,
                      end_line=n, total_lines=total,
                      truncated=n < min(args.end_line or total, total),
                      encoding=decoded.encoding,
                      line_endings="CRLF" if decoded.newline == "\r\n" else "LF")


class ListArgs(BaseModel):
    path: str = Field(".", description="directory relative to the repository root")
    depth: int = Field(2, ge=1, le=20, description="how many directory levels to descend")
    max_entries: int = Field(500, ge=1, le=10000)


class ListResult(BaseModel):
    path: str
    entries: list[str]  # relative to the repository root; directories end with "/"
    truncated: bool


@register("list", ListArgs, "read")
def list_dir(ctx: ToolContext, args: ListArgs) -> ListResult:
    start = ctx.resolve(args.path, must_exist=True)
    if not start.is_dir():
        raise ToolError(f"'{args.path}' is a file, not a directory. Use `read` to see it.")
    ignore, entries = Ignore(ctx.root), []
    truncated = _list_into(ctx, start, args.depth, ignore, entries, args.max_entries)
    return ListResult(path=ctx.rel(start), entries=entries, truncated=truncated)


def _list_into(ctx: ToolContext, here: Path, depth: int, ignore: Ignore, out: list[str],
               cap: int) -> bool:
    """Append entries under `here` depth-first, sorted; True when `cap` cut the listing."""
    for child in sorted(here.iterdir(), key=lambda p: p.name):
        rel = child.relative_to(ctx.root).as_posix()
        is_dir = child.is_dir() and not child.is_symlink()
        if ignore.ignored(rel, is_dir) or (child.is_symlink() and not inside(child, ctx.root)):
            continue
        if len(out) >= cap:
            return True
        out.append(rel + "/" if is_dir else rel)
        if is_dir and depth > 1 and _list_into(ctx, child, depth - 1, ignore, out, cap):
            return True
    return False


class GlobArgs(BaseModel):
    pattern: str = Field(description="glob such as '**/*.py' or 'src/*.ts'")
    path: str = Field(".", description="directory to search under")
    max_results: int = Field(1000, ge=1, le=100000)


class GlobResult(BaseModel):
    files: list[str]  # relative to the repository root, sorted
    truncated: bool


@register("glob", GlobArgs, "read")
def glob(ctx: ToolContext, args: GlobArgs) -> GlobResult:
    import pathspec

    start = ctx.resolve(args.path, must_exist=True)
    # gitwildmatch semantics: "*.py" matches at any depth, "src/*.py" only under src/
    spec = pathspec.GitIgnoreSpec.from_lines([args.pattern])
    files, truncated = [], False
    for path in walk_files(ctx.root, start):
        if spec.match_file(path.relative_to(start).as_posix()):
            if len(files) >= args.max_results:
                truncated = True
                break
            files.append(path.relative_to(ctx.root).as_posix())
    return GlobResult(files=files, truncated=truncated)
