"""`apply_patch`: apply a Codex-style patch envelope or a unified diff, all or nothing.

Every operation is computed in memory first (against the files as earlier operations left
them), every path checked against that planned tree (no file where a directory must be, no
file over a directory, names a file system can hold); only when all succeed are files written,
and any exception while writing restores every file already touched and removes the
directories made. So a patch that fails anywhere changes no file. (Codex's own
apply_patch keeps the operations before a failure: conformance scenario 015 differs on purpose.)
Updated files keep their encoding, BOM and line endings.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, PrivateAttr

from tools import nofollow
from tools.base import ToolContext, ToolError, register
from tools.edit import check_fresh, unified_diff
from tools.patch_chunks import update_text
from tools.patch_parse import AddOp, DeleteOp, Op, UpdateOp, parse
from tools.textio import Decoded, Stamp, atomic_write, decode, is_binary, read_file


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
        data, now = read_file(path, rel)
        check_fresh(self.ctx, rel, now)
        return data

    def place(self, name: str, rel_to: Path | None = None) -> tuple[Path, str]:
        """(path, repository-relative name) for a path the patch names, a symlink named by
        the link itself; ToolError when a directory above it is a file, on disk or in the plan
        (a file the patch deletes first leaves room for a directory)."""
        path = self.ctx.resolve(name, follow=False, check_parents=False)
        rel = self.ctx.rel(path, follow=False)
        for above in path.parents:
            if above == self.ctx.root:
                break
            held = self.planned.get(above, False)
            if held is None:  # deleted earlier in this patch
                continue
            if held is not False or (os.path.lexists(above) and not above.is_dir()):
                raise ToolError(f"'{self.ctx.rel(above, follow=False)}' is a file, so '{rel}' "
                                "cannot be created inside it.")
            if os.path.lexists(above):
                break  # a real directory: so is everything above it
        return path, rel

    def is_dir(self, path: Path) -> bool:
        """A directory on disk, or one this patch puts files in."""
        if path.is_dir() and not path.is_symlink():
            return True
        return any(path in p.parents for p, held in self.planned.items() if held is not None)

    def before_text(self, path: Path) -> str:
        """What a diff shows as the old text of `path`: a file's text, a link's text, or ""."""
        if path in self.planned:
            held = self.planned[path]
        else:
            held = self.link_at(path) or (read_file(path, self.ctx.rel(path))[0]
                                          if path.is_file() else None)
        if isinstance(held, Link):
            return held.text
        return decode(held).text if held else ""


def _plan(ctx: ToolContext, ops) -> tuple[_State, list[FileChange], list[str]]:
    state, changes, diffs = _State(ctx, {}), [], []
    for op in ops:
        path, rel = state.place(op.path)
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
    if link is None and state.is_dir(path):
        raise ToolError(f"'{rel}' is a directory; '*** Add File:' needs a file path.")
    before = state.before_text(path)
    new = _new_link(state.ctx, path, op.content, rel) if op.link else _encode(op.content, rel)
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
    text = update_text(decoded.text, op, rel)
    link_to = source_rel if link else None
    if op.move_to is None or (link and text != decoded.text):  # a bare link move: target as is
        state.planned[source] = decoded.encode(text)
        diffs.append(unified_diff(source_rel, decoded.text, text))
    if op.move_to is None:
        return FileChange(path=rel, action="update", link_to=link_to)
    dest, dest_rel = state.place(op.move_to)
    if state.link_at(dest) is None and state.is_dir(dest):
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
    text = update_text(link.text + "\n", op, rel)  # as git shows it: one line, no newline
    dest, dest_rel = state.place(op.move_to) if op.move_to else (path, rel)
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


def _encode(text: str, rel: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise ToolError(f"'{rel}': the new text has characters UTF-8 cannot store "
                        f"({exc.object[exc.start:exc.end]!r}); use characters it can.") from None


@dataclass
class _Undo:
    """How to put one path back: its old content (None: it did not exist) and mode, and the
    directories made for it."""
    path: Path
    old: bytes | Link | None
    mode: int | None
    made: list[Path]


def _commit(state: _State) -> dict[Path, Stamp]:
    """Write the planned tree (the stamp of each file written); on any exception (a full
    disk, Ctrl-C, a bug) put back every file and link touched and remove the directories
    made, then raise: OSError as a ToolError, anything else as itself. Every file is read and
    written through tools.nofollow, so a directory swapped for a link meanwhile is refused."""
    undo: list[_Undo] = []
    stamps: dict[Path, Stamp] = {}
    try:
        for path, data in state.planned.items():
            undo.append(_backup(path))
            if data is None:
                nofollow.unlink(path)  # a link goes itself; what it names stays
                continue
            undo[-1].made = _missing_dirs(path.parent)
            if isinstance(data, bytes):
                stamps[path] = atomic_write(path, data)
            else:
                nofollow.symlink(data.text, path)
        return stamps
    except BaseException as exc:
        failed = _restore(state.ctx, undo)
        if not isinstance(exc, OSError):
            if failed:
                exc.add_note(failed)
            raise
        raise ToolError(f"Writing the patch failed ({exc}); "
                        + (failed or "every file was restored, nothing changed.")) from None


def _backup(path: Path) -> _Undo:
    status = nofollow.lstat(path)
    if status is None or stat.S_ISDIR(status.st_mode):
        return _Undo(path, None, None, [])
    if stat.S_ISLNK(status.st_mode):
        return _Undo(path, Link(nofollow.readlink(path)), None, [])
    return _Undo(path, read_file(path, path.name)[0], stat.S_IMODE(status.st_mode), [])


def _missing_dirs(d: Path) -> list[Path]:
    out = []
    while not os.path.lexists(d):
        out.append(d)
        d = d.parent
    return out


def _restore(ctx: ToolContext, undo: list[_Undo]) -> str:
    """Put back each path, newest first, going on past one that fails; "" when all were put
    back, else a sentence naming those that could not be."""
    failed = []
    for step in reversed(undo):
        try:
            _put_back(step)
        except Exception as exc:  # noqa: BLE001 - the rest must still be put back
            rel = step.path.relative_to(ctx.root).as_posix()  # as planned: no link resolved
            failed.append(f"'{rel}' could not be restored ({exc})")
    return "; ".join(failed) + (". Check those files." if failed else "")


def _put_back(step: _Undo) -> None:
    if step.old is None:
        nofollow.unlink(step.path)
    elif isinstance(step.old, Link):
        nofollow.symlink(step.old.text, step.path)
    else:
        atomic_write(step.path, step.old, step.mode)
    for d in step.made:  # deepest first, as _missing_dirs found them
        try:
            nofollow.rmdir(d)
        except OSError:
            pass


def preview(ctx: ToolContext, args: PatchArgs) -> str:
    """The diff the patch would make, nothing written."""
    return "".join(_plan(ctx, args.ops)[2])


@register("apply_patch", PatchArgs, "write", paths=touched_paths, preview=preview)
def apply_patch(ctx: ToolContext, args: PatchArgs) -> PatchResult:
    try:
        state, changes, diffs = _plan(ctx, args.ops)
    except ToolError as exc:
        raise type(exc)(f"{exc}\nThe patch was not applied: no file was changed.") from None
    except OSError as exc:  # a file that cannot be read, say
        raise ToolError(f"{exc}\nThe patch was not applied: no file was changed.") from None
    for path, written in _commit(state).items():  # now regular files (links there replaced)
        ctx.read_stamps[path.relative_to(ctx.root).as_posix()] = written
    return PatchResult(changes=changes, diff="".join(diffs))
