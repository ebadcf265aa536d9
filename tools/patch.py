"""`apply_patch`: apply a Codex-style patch envelope or a unified diff, all or nothing.

Every operation is computed in memory first (against the files as earlier operations left
them); only when all succeed are files written, and a failure while writing restores every
file already touched. So a patch that fails anywhere changes no file. (Codex's own
apply_patch keeps the operations before a failure: conformance scenario 015 differs on purpose.)
Updated files keep their encoding, BOM and line endings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from tools.base import ToolContext, ToolError, register
from tools.edit import check_fresh, unified_diff
from tools.edit_match import ascii_punct, closest
from tools.patch_parse import AddOp, Chunk, DeleteOp, UpdateOp, parse
from tools.textio import Decoded, atomic_write, decode, is_binary, stamp


class PatchArgs(BaseModel):
    patch: str = Field(description="the patch: '*** Begin Patch' … '*** End Patch', or a "
                                   "unified diff as `git diff` prints it")


class FileChange(BaseModel):
    path: str
    action: str  # "add", "delete", "update", "move"
    moved_to: str | None = None


class PatchResult(BaseModel):
    changes: list[FileChange]
    diff: str  # unified diff of every change


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


@dataclass
class _State:
    """The planned tree: path -> new bytes (None = deleted), in the order first touched."""
    ctx: ToolContext
    planned: dict[Path, bytes | None]

    def read(self, path: Path, rel: str) -> bytes:
        if path in self.planned:
            data = self.planned[path]
            if data is None:
                raise ToolError(f"'{rel}' was deleted earlier in this patch.")
            return data
        if path.is_dir():
            raise ToolError(f"'{rel}' is a directory, not a file.")
        if not path.exists():
            raise ToolError(f"'{rel}' does not exist, so it cannot be updated or deleted. Use "
                            "'*** Add File:' to create it.")
        check_fresh(self.ctx, path, rel)
        return path.read_bytes()


def _update_text(text: str, op: UpdateOp, rel: str) -> str:
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


def _plan(ctx: ToolContext, ops) -> tuple[_State, list[FileChange], list[str]]:
    state, changes, diffs = _State(ctx, {}), [], []
    for op in ops:
        path = ctx.resolve(op.path)
        rel = ctx.rel(path)
        if isinstance(op, AddOp):
            if path.is_dir():
                raise ToolError(f"'{rel}' is a directory; '*** Add File:' needs a file path.")
            before = state.planned.get(path) or (path.read_bytes() if path.is_file() else b"")
            state.planned[path] = op.content.encode("utf-8")
            diffs.append(unified_diff(rel, decode(before).text, op.content))
            changes.append(FileChange(path=rel, action="add"))
        elif isinstance(op, DeleteOp):
            data = state.read(path, rel)
            state.planned[path] = None
            diffs.append(unified_diff(rel, decode(data).text, ""))
            changes.append(FileChange(path=rel, action="delete"))
        else:
            changes.append(_plan_update(ctx, state, op, path, rel, diffs))
    return state, changes, diffs


def _plan_update(ctx: ToolContext, state: _State, op: UpdateOp, path: Path, rel: str,
                 diffs: list[str]) -> FileChange:
    data = state.read(path, rel)
    if is_binary(data):
        raise ToolError(f"'{rel}' is a binary file; it cannot be patched as text.")
    decoded: Decoded = decode(data)
    text = _update_text(decoded.text, op, rel)
    if op.move_to is None:
        state.planned[path] = decoded.encode(text)
        diffs.append(unified_diff(rel, decoded.text, text))
        return FileChange(path=rel, action="update")
    dest = ctx.resolve(op.move_to)
    if dest.is_dir():
        raise ToolError(f"'{op.move_to}' is a directory; '*** Move to:' needs a file path.")
    state.planned[path] = None
    state.planned[dest] = decoded.encode(text)
    diffs.append(unified_diff(ctx.rel(dest), decoded.text, text))
    return FileChange(path=rel, action="move", moved_to=ctx.rel(dest))


def _commit(state: _State) -> None:
    """Write the planned tree; on any failure put back every file and directory touched."""
    backups: list[tuple[Path, bytes | None, int | None]] = []
    made_dirs: list[Path] = []
    try:
        for path, data in state.planned.items():
            old = path.read_bytes() if path.is_file() else None
            mode = path.stat().st_mode & 0o7777 if old is not None else None
            backups.append((path, old, mode))
            if data is None:
                path.unlink()
                continue
            made_dirs += _missing_dirs(path.parent)
            atomic_write(path, data)
    except OSError as exc:
        _restore(backups, made_dirs)
        raise ToolError(f"Writing the patch failed ({exc}); every file was restored, nothing "
                        "changed.") from None


def _missing_dirs(d: Path) -> list[Path]:
    out = []
    while not d.exists():
        out.append(d)
        d = d.parent
    return out


def _restore(backups, made_dirs: list[Path]) -> None:
    for path, old, mode in reversed(backups):
        if old is None:
            path.unlink(missing_ok=True)
        else:
            atomic_write(path, old)
            os.chmod(path, mode)
    for d in sorted(set(made_dirs), key=lambda d: len(d.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass


@register("apply_patch", PatchArgs, "write")
def apply_patch(ctx: ToolContext, args: PatchArgs) -> PatchResult:
    ops = parse(args.patch)
    try:
        state, changes, diffs = _plan(ctx, ops)
    except ToolError as exc:
        raise type(exc)(f"{exc}\nThe patch was not applied: no file was changed.") from None
    _commit(state)
    for path, data in state.planned.items():
        if data is not None:
            state.ctx.read_stamps[ctx.rel(path)] = stamp(path)
    return PatchResult(changes=changes, diff="".join(diffs))
