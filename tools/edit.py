"""`edit`: replace `old` with `new` in one file, safely.

The matcher (tools.edit_match) finds the one place meant or refuses. The file keeps its
encoding, BOM, line endings, final newline and mode; the write is atomic. A file that changed
since the agent last `read` it is refused, so an edit never lands on text the model has not seen.
"""

from __future__ import annotations

import difflib

from pydantic import BaseModel, Field

import prompts
from tools.base import ToolContext, ToolError, register
from tools.edit_match import Plan, plan
from tools.textio import Stamp, atomic_write, read_text


class EditArgs(BaseModel):
    path: str = Field(description="file to change, relative to the repository root")
    old: str = Field(description="the exact text to replace, with enough lines to be unique")
    new: str = Field(description="the text to put in its place")
    replace_all: bool = Field(False, description="replace every occurrence of `old`")


class EditResult(BaseModel):
    path: str
    diff: str  # unified diff of the change
    match: str  # which tier matched: exact, trailing-whitespace, indentation, tabs, unicode,
    # blank-lines, elision, stale-line (with a "line-numbers+" prefix when `old` carried
    # `read`'s line numbers)
    replacements: int
    first_line: int  # 1-based line where the first replacement starts
    note: str | None = None  # what the model must know: which line was stale, or what a
    # tolerance assumed (the shift, the tab width, the blank lines kept, the indentation added)


def unified_diff(rel: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 f"a/{rel}", f"b/{rel}", n=3)
    return "".join(x if x.endswith("\n") else x + "\n\\ No newline at end of file\n"
                   for x in lines)


def check_fresh(ctx: ToolContext, rel: str, now: Stamp) -> None:
    """Refuse a file whose stamp `now` differs from when the agent last read it."""
    seen = ctx.read_stamps.get(rel)
    if seen is not None and seen != now:
        raise ToolError(f"'{rel}' changed since you last read it (edited by someone or something "
                        "else). `read` it again, then redo the edit against its current text.")


def _planned(ctx: ToolContext, args: EditArgs):
    """(path, rel, the file as read, the planned edit): everything but the write."""
    path = ctx.resolve(args.path)
    rel = ctx.rel(path)
    decoded = read_text(path, args.path)
    check_fresh(ctx, rel, decoded.stamp)
    old, new = (s.replace("\r\n", "\n") for s in (args.old, args.new))
    return path, rel, decoded, plan(decoded.text, old, new, args.replace_all)


def preview(ctx: ToolContext, args: EditArgs) -> str:
    """The diff the edit would make, nothing written."""
    _, rel, decoded, result = _planned(ctx, args)
    return unified_diff(rel, decoded.text, result.text)


@register("edit", EditArgs, "write", preview=preview)
def edit(ctx: ToolContext, args: EditArgs) -> EditResult:
    path, rel, decoded, result = _planned(ctx, args)
    ctx.read_stamps[rel] = atomic_write(path, decoded.encode(result.text))
    return EditResult(path=rel, diff=unified_diff(rel, decoded.text, result.text),
                      match=result.tier, replacements=result.count, first_line=result.first_line,
                      note=_note(result))


TOLERANCE_VARS = dict(kind="", line=0, indent=0, shift=0, tab=0, clamped=False, kept=[],
                      dropped=0)


def _note(result: Plan) -> str | None:
    """What the model must be told about how `old` was matched, if anything."""
    if result.stale is not None:
        line, expected, actual = result.stale
        return prompts.render("tools/edit_stale.md.j2", line=line, expected=expected,
                              actual=actual).strip()
    if result.tolerance is not None:
        return prompts.render("tools/edit_tolerance.md.j2",
                              **{**TOLERANCE_VARS, **result.tolerance}).strip()
    return None
