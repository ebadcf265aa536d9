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

from pydantic import BaseModel, Field, PrivateAttr

from tools.base import ToolContext, ToolError, register
from tools.edit import check_fresh, unified_diff
from tools.edit_match import ascii_punct, closest
from tools.patch_parse import AddOp, Chunk, DeleteOp, Op, UpdateOp, parse
from tools.textio import Decoded, atomic_write, decode, is_binary, stamp


class PatchArgs(BaseModel):
    patch: str = Field(description="the patch: '*** Begin Patch' … '*** End Patch', or a "
                                   "unified diff as `git diff` prints it")
    _ops: list[Op] | None = PrivateAttr(None)

    @property
    def ops(self) -> list[Op]:
        """The parsed operations (parsed once: the approval check and the tool share them);
        a ToolError when the patch is malformed."""
        if self._ops is None:
            self._ops = parse(self.patch)
        return self._ops


def touched_paths(args: PatchArgs) -> list[str]:
    """Every path the patch names: each operation's file and where a move takes it."""
    return [p for op in args.ops for p in (op.path, getattr(op, "move_to", None)) if p]


class FileChange(BaseModel):
    path: str
    action: str  # "add", "delete", "update", "move"
    moved_to: str | None = None
    # when `path` is a symlink: the file it points to (repository-relative). Add, Delete and
    # Move act on the link; Update edits this file.
    link_to: str | None = None


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


@dataclass(frozen=True)
class Link:
    """A symlink in the planned tree; `text` is what os.readlink gives (relative or absolute)."""
    text: str


@dataclass
class _State:
    """The planned tree: path -> new bytes, a Link, or None (deleted), in the order first
    touched. A symlink's key is the link itself (ctx.resolve(follow=False)); a file's key is
    its resolved path, so a file named directly and through a link is one entry."""
    ctx: ToolContext
    planned: dict[Path, bytes | Link | None]

    def link_at(self, path: Path) -> Link | None:
        """The symlink at `path` (the link itself, not followed), as this patch leaves it."""
        if path in self.planned:
            held = self.planned[path]
            return held if isinstance(held, Link) else None
        return Link(os.readlink(path)) if path.is_symlink() else None

    def target(self, path: Path, link: Link, rel: str) -> Path:
        """The file the link at `path` points to, which must exist (on disk or in the plan)."""
        target = self.ctx.resolve(path.parent / link.text)
        held = target in self.planned and self.planned[target] is not None
        if not held and not target.is_file():
            what = "a directory" if target.is_dir() else "missing"
            raise ToolError(f"'{rel}' is a symlink to '{self.ctx.rel(target)}', which is {what}; "
                            "name a file to update, or delete the link.")
        return target

    def read(self, path: Path, rel: str) -> bytes:
        if path in self.planned:
            data = self.planned[path]
            if data is None:
                raise ToolError(f"'{rel}' was deleted earlier in this patch.")
            if isinstance(data, Link):
                raise ToolError(f"'{rel}' became a symlink earlier in this patch; change it in "
                                "a separate patch.")
            return data
        if path.is_dir():
            raise ToolError(f"'{rel}' is a directory, not a file.")
        if not path.exists():
            raise ToolError(f"'{rel}' does not exist, so it cannot be updated or deleted. Use "
                            "'*** Add File:' to create it.")
        check_fresh(self.ctx, path, rel)
        return path.read_bytes()

    def before_text(self, path: Path) -> str:
        """What a diff shows as the old text of `path`: a file's text, a link's text, or ""."""
        if path in self.planned:
            held = self.planned[path]
        else:
            held = self.link_at(path) or (path.read_bytes() if path.is_file() else None)
        if isinstance(held, Link):
            return held.text
        return decode(held).text if held else ""


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
        path = ctx.resolve(op.path, follow=False)  # a symlink is named by the link itself
        rel = ctx.rel(path, follow=False)
        if isinstance(op, AddOp):
            changes.append(_plan_add(state, op, path, rel, diffs))
        elif isinstance(op, DeleteOp):
            changes.append(_plan_delete(state, path, rel, diffs))
        else:
            changes.append(_plan_update(ctx, state, op, path, rel, diffs))
    return state, changes, diffs


def _plan_add(state: _State, op: AddOp, path: Path, rel: str, diffs: list[str]) -> FileChange:
    """Add writes a regular file at the path; a symlink there is replaced, never written
    through, so the file it pointed to is left as it was."""
    link = state.link_at(path)
    if link is None and path.is_dir() and path not in state.planned:
        raise ToolError(f"'{rel}' is a directory; '*** Add File:' needs a file path.")
    before = state.before_text(path)
    new = _new_link(state.ctx, path, op.content, rel) if op.link else op.content.encode()
    state.planned[path] = new
    diffs.append(unified_diff(rel, before, new.text if isinstance(new, Link) else op.content))
    return FileChange(path=rel, action="add", link_to=_link_to(state, path, link))


def _plan_delete(state: _State, path: Path, rel: str, diffs: list[str]) -> FileChange:
    """Delete removes the path itself: for a symlink, the link, and never the file it names."""
    link = state.link_at(path)
    before = link.text if link else decode(state.read(path, rel)).text
    state.planned[path] = None
    diffs.append(unified_diff(rel, before, ""))
    return FileChange(path=rel, action="delete", link_to=_link_to(state, path, link))


def _link_to(state: _State, path: Path, link: Link | None) -> str | None:
    return state.ctx.rel(state.ctx.resolve(path.parent / link.text)) if link else None


def _plan_update(ctx: ToolContext, state: _State, op: UpdateOp, path: Path, rel: str,
                 diffs: list[str]) -> FileChange:
    """Update edits text; through a symlink it edits the file the link points to (inside
    the repository), as an editor would, and a Move moves the link, not that file."""
    link = state.link_at(path)
    if op.link:
        return _plan_link_text(state, op, path, rel, link, diffs)
    source = state.target(path, link, rel) if link else path
    source_rel = ctx.rel(source) if link else rel
    data = state.read(source, source_rel)
    if is_binary(data):
        raise ToolError(f"'{source_rel}' is a binary file; it cannot be patched as text.")
    decoded: Decoded = decode(data)
    text = _update_text(decoded.text, op, rel)
    link_to = source_rel if link else None
    if op.move_to is None or (link and text != decoded.text):  # a bare link move: target as is
        state.planned[source] = decoded.encode(text)
        diffs.append(unified_diff(source_rel, decoded.text, text))
    if op.move_to is None:
        return FileChange(path=rel, action="update", link_to=link_to)
    dest = ctx.resolve(op.move_to, follow=False)
    dest_rel = ctx.rel(dest, follow=False)
    if dest.is_dir() and state.link_at(dest) is None and dest not in state.planned:
        raise ToolError(f"'{op.move_to}' is a directory; '*** Move to:' needs a file path.")
    if link:
        _plan_link_move(state, path, rel, link, source, dest, dest_rel, diffs)
    else:
        state.planned[path] = None
        state.planned[dest] = decoded.encode(text)
        diffs.append(unified_diff(dest_rel, decoded.text, text))
    return FileChange(path=rel, action="move", moved_to=dest_rel, link_to=link_to)


def _plan_link_move(state: _State, path: Path, rel: str, link: Link, target: Path, dest: Path,
                    dest_rel: str, diffs: list[str]) -> None:
    """Move the link at `path` to `dest`, still pointing at `target`; moved onto its own
    target, the link just goes (the target already holds the text)."""
    before = state.before_text(dest)
    state.planned[path] = None
    diffs.append(unified_diff(rel, link.text, ""))
    if dest == target:
        return
    moved = Link(_retarget(link.text, path.parent, dest.parent))
    state.planned[dest] = moved
    diffs.append(unified_diff(dest_rel, before, moved.text))


def _plan_link_text(state: _State, op: UpdateOp, path: Path, rel: str, link: Link | None,
                    diffs: list[str]) -> FileChange:
    """A git diff of a symlink (mode 120000): its chunks change the link's text."""
    if link is None:
        raise ToolError(f"The diff changes '{rel}' as a symlink (mode 120000), but it is not "
                        "one here.")
    text = _update_text(link.text + "\n", op, rel)  # as git shows it: one line, no newline
    dest = state.ctx.resolve(op.move_to, follow=False) if op.move_to else path
    dest_rel = state.ctx.rel(dest, follow=False)
    state.planned[path] = None
    state.planned[dest] = _new_link(state.ctx, dest, text, dest_rel)
    diffs.append(unified_diff(dest_rel, link.text, text))
    action = "move" if op.move_to else "update"
    return FileChange(path=rel, action=action, moved_to=dest_rel if op.move_to else None,
                      link_to=_link_to(state, dest, state.planned[dest]))


def _new_link(ctx: ToolContext, path: Path, text: str, rel: str) -> Link:
    """A symlink to make at `path`; it must lead somewhere inside the repository."""
    text = text.removesuffix("\n")  # a diff without git's "\ No newline at end of file"
    if not text or "\n" in text or "\0" in text:
        raise ToolError(f"'{rel}': a symlink's text must be one non-empty line, the path it "
                        "points to.")
    ctx.resolve(path.parent / text)  # PathOutsideRepoError for a link leading out
    return Link(text)


def _retarget(text: str, old_dir: Path, new_dir: Path) -> str:
    """Link text that reaches from `new_dir` what `text` reached from `old_dir`: an absolute
    text is kept, and so is a relative one when the directory does not change (as `mv`)."""
    if os.path.isabs(text) or old_dir == new_dir:
        return text
    return os.path.relpath(os.path.normpath(old_dir / text), new_dir)


def _commit(state: _State) -> None:
    """Write the planned tree; on any failure put back every file, link and directory touched."""
    backups: list[tuple[Path, bytes | Link | None, int | None]] = []
    made_dirs: list[Path] = []
    try:
        for path, data in state.planned.items():
            backups.append(_backup(path))
            if data is None:
                path.unlink(missing_ok=True)  # a link goes itself; what it names stays
                continue
            made_dirs += _missing_dirs(path.parent)
            _put(path, data)
    except OSError as exc:
        _restore(backups, made_dirs)
        raise ToolError(f"Writing the patch failed ({exc}); every file was restored, nothing "
                        "changed.") from None


def _backup(path: Path) -> tuple[Path, bytes | Link | None, int | None]:
    if path.is_symlink():
        return path, Link(os.readlink(path)), None
    if path.is_file():
        return path, path.read_bytes(), path.stat().st_mode & 0o7777
    return path, None, None


def _put(path: Path, data: bytes | Link) -> None:
    """Write a file (atomically, replacing a link there rather than writing through it), or
    make a link, also by rename, so a failure never leaves half of either."""
    if isinstance(data, bytes):
        atomic_write(path, data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.link.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(data.text, tmp)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


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
        elif isinstance(old, Link):
            _put(path, old)
        else:
            atomic_write(path, old)
            os.chmod(path, mode)
    for d in sorted(set(made_dirs), key=lambda d: len(d.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass


@register("apply_patch", PatchArgs, "write", paths=touched_paths)
def apply_patch(ctx: ToolContext, args: PatchArgs) -> PatchResult:
    try:
        state, changes, diffs = _plan(ctx, args.ops)
    except ToolError as exc:
        raise type(exc)(f"{exc}\nThe patch was not applied: no file was changed.") from None
    _commit(state)
    for path, data in state.planned.items():
        if isinstance(data, bytes):  # now a regular file (a link there was replaced)
            state.ctx.read_stamps[ctx.rel(path)] = stamp(path)
    return PatchResult(changes=changes, diff="".join(diffs))
