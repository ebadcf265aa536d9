"""Placing an update's chunks in a file: each chunk's old lines are found after the previous
chunk's (strictest comparison first: exact, then ignoring trailing whitespace, then all
surrounding whitespace, then typographic punctuation), and replaced by its new lines."""

from __future__ import annotations

from tools.base import ToolError
from tools.edit_match import ascii_punct, closest
from tools.patch_parse import Chunk, UpdateOp

_LADDER = [lambda s: s, str.rstrip, str.strip, lambda s: ascii_punct(s).strip()]


def seek(lines: list[str], pattern: list[str], start: int, eof: bool = False,
         hint: int | None = None) -> int | None:
    """Index where `pattern` matches `lines` at or after `start`, strictest rule first.
    With `hint` (0-based), the match nearest to it wins within a rule."""
    if not pattern:
        return start
    if len(pattern) > len(lines):
        return None
    last = len(lines) - len(pattern)
    starts = [last] if eof and last >= start else range(start, last + 1)
    for norm in _LADDER:
        want = [norm(p) for p in pattern]
        found = [i for i in starts
                 if all(norm(lines[i + k]) == w for k, w in enumerate(want))]
        if found:
            return min(found, key=lambda i: abs(i - hint)) if hint is not None else found[0]
    return None


def update_text(text: str, op: UpdateOp, rel: str) -> str:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    cursor, reps = 0, []
    for n, chunk in enumerate(op.chunks, 1):
        cursor = _place(lines, chunk, cursor, reps, rel, n)
    for at, length, new in sorted(reps, key=lambda r: r[0], reverse=True):
        lines[at:at + length] = new
    return "\n".join(lines) + ("\n" if op.final_newline else "")


def _place(lines: list[str], chunk: Chunk, cursor: int, reps: list, rel: str, n: int) -> int:
    if chunk.scope is not None:
        at = seek(lines, [chunk.scope], cursor)
        if at is None:
            raise ToolError(f"Chunk {n} of '{rel}': the '@@ {chunk.scope}' line was not found "
                            "after the previous chunk.")
        cursor = at + 1
    if not chunk.old:
        if chunk.new:
            reps.append((len(lines), 0, chunk.new))
        return cursor
    old, new = chunk.old, chunk.new
    hint = chunk.hint - 1 if chunk.hint else None
    at = seek(lines, old, cursor, chunk.eof, hint)
    if at is None and old[-1] == "":
        old, new = old[:-1], new[:-1] if new and new[-1] == "" else new
        at = seek(lines, old, cursor, chunk.eof, hint)
    if at is None:
        raise _chunk_not_found(lines, chunk, rel, n)
    reps.append((at, len(old), new))
    return at + len(old)


def _chunk_not_found(lines: list[str], chunk: Chunk, rel: str, n: int) -> ToolError:
    where = " at the end of the file" if chunk.eof else ""
    msg = f"Chunk {n} of '{rel}': these lines were not found{where}:\n" + "\n".join(chunk.old)
    best = closest(lines, chunk.old)
    if best is not None:
        start = best[0]
        msg += (f"\nThe closest text is lines {start + 1}–{start + len(chunk.old)}:\n"
                + "\n".join(lines[start:start + len(chunk.old)]))
    return ToolError(msg + "\nCopy context and '-' lines exactly as the file has them.")
