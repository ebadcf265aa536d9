"""Indentation for the edit matcher: how `old`'s indentation maps onto the file's at one place,
and how `new`'s lines are re-indented the same way, in the file's own style.

Indentation is measured in columns, counting a tab as `tab` columns. The file's tab width is
unknown, so a block with tabs (in the file or in `old`) is tried at each of TAB_WIDTHS; every
width that fits is kept, and the caller refuses when they would write different text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tools.base import ToolError

TAB_WIDTHS = (4, 8, 2)
# a line that starts with these closes a block (or continues it): lines inserted before it are
# still inside the block
CLOSER = re.compile(r"[)\]}]|(?:end|else|elif|except|finally|catch|fi|done|esac)\b")


def lead(line: str) -> str:
    """The line's indentation: its leading spaces and tabs."""
    return line[:len(line) - len(line.lstrip(" \t"))]


def cols(line: str, tab: int = 4) -> int:
    return len(lead(line).expandtabs(tab))


@dataclass(frozen=True)
class Indent:
    """How `old` sits in the file at one place: the file's indentation is old's plus `delta`
    columns, counting a tab as `tab` columns. `clamped`: a shift left that some lines could not
    make, so `old` has them at column 0 (a `#ifdef` or a string's lines inside an indented block).
    `restyle`: tabs are involved and `old`'s indentation is not the file's character for
    character (spaces for tabs), so `new`'s lines are rewritten even with no shift."""
    delta: int = 0
    tab: int = 4
    clamped: bool = False
    restyle: bool = False


EXACT = Indent()


def fits(block: list[str], old: list[str], clamp: bool = False) -> list[Indent]:
    """Every reading (one per tab width) under which `old`'s indentation maps onto `block`'s by
    one shift; lines already known to be equal but for indentation; blank lines prove nothing."""
    pairs = [(f, o) for f, o in zip(block, old, strict=True) if o.strip() and f.strip()]
    if not pairs:
        return [EXACT]
    has_tabs = any("\t" in lead(x) for pair in pairs for x in pair)
    restyle = has_tabs and any(lead(f) != lead(o) for f, o in pairs)
    out = []
    for tab in TAB_WIDTHS if has_tabs else TAB_WIDTHS[:1]:
        diffs = [(cols(f, tab) - cols(o, tab), cols(o, tab)) for f, o in pairs]
        delta = max(d for d, _ in diffs)
        clamped = any(d != delta for d, _ in diffs)
        if clamped and not (clamp and delta > 0 and all(d == delta or at == 0
                                                        for d, at in diffs)):
            continue
        out.append(Indent(delta, tab, clamped, restyle))
    return out


def uses_tabs(block: list[str]) -> bool:
    return any(x.startswith("\t") for x in block if x.strip())


def peer_leads(pairs: list[tuple[str, str]], tab: int) -> dict[int, set[str]]:
    """{column of an `old` line: the file's indentation of the lines `old` writes there}, from
    (old line, file line) pairs."""
    out: dict[int, set[str]] = {}
    for o, f in pairs:
        if o.strip() and f.strip():
            out.setdefault(cols(o, tab), set()).add(lead(f))
    return out


def reindent(line: str, paired: tuple[str, str] | None, peers: dict[int, set[str]],
             fit: Indent, tabs: bool) -> str:
    """One line of `new` as the file should have it. A line indented as the `old` line it
    replaces (`paired`: that line, and the file's) takes that file line's indentation as it is;
    else, as the `old` lines written at its column (`peers`) when they agree in the file; any
    other is shifted by the fit's delta and written with the file's characters (tabs where the
    block has them)."""
    if not line.strip() or (fit.delta == 0 and not fit.restyle):
        return line
    body, at = line[len(lead(line)):], cols(line, fit.tab)
    if paired is not None and at == cols(paired[0], fit.tab):
        return lead(paired[1]) + body
    if len(peers.get(at, ())) == 1:
        return next(iter(peers[at])) + body
    if len(peers.get(at, ())) > 1:
        shown = " and ".join(sorted(repr(x) for x in peers[at]))
        raise ToolError(f"`new` has a line at column {at}, where `old` has lines the file "
                        f"indents differently ({shown}), so it is not clear which it means. "
                        "Write `old` and `new` with the file's indentation, tabs as tabs.")
    if at + fit.delta < 0:
        raise ToolError("`new` has a line indented less than the shift between `old` and the "
                        "file allows. Write `old` and `new` with the file's indentation.")
    if fit.clamped and at == 0:  # `old` has no line there, or the message above would say
        raise ToolError("`old` is indented less than the file, but some of its lines sit at "
                        "column 0 as in the file, so a new line at column 0 could belong at "
                        "column 0 or deeper. Write `old` and `new` with the file's indentation.")
    at += fit.delta
    return ("\t" * (at // fit.tab) + " " * (at % fit.tab) if tabs else " " * at) + body


def frame_mid_line(text: str, at: int, old: str, new: str) -> tuple[str, int]:
    """`new` for an exact match at offset `at` that starts mid-line, and the indentation added
    to its later lines (0: taken as written). `old` on one line gives no columns for `new`'s
    later lines; lines written left of the line's own indentation are read as `old` was written,
    from the line's indentation (the issue-20 16b case: an inserted line at column 0), unless
    the file's next line shows a block closing there, where those columns may be meant."""
    line_start = text.rfind("\n", 0, at) + 1
    indent = lead(text[line_start:at])
    rest = new.split("\n")
    later = [x for x in rest[1:] if x.strip()]
    if not indent or not later or any(x.strip() for x in old.split("\n")[1:]):
        return new, 0
    width, least = cols(indent), min(cols(x) for x in later)
    if least >= width:
        return new, 0
    following = _next_line(text, at + len(old), old)
    if following is None or (cols(following) <= least and not CLOSER.match(following.strip())):
        raise ToolError("`old` starts after the indentation of its line, and `new` adds lines "
                        "indented less than that line: they could mean those columns or the "
                        "line's indentation. Quote the whole line with its indentation in `old` "
                        "and write `new` with the file's indentation.")
    return rest[0] + "".join("\n" + (indent + x if x.strip() else x) for x in rest[1:]), width


def _next_line(text: str, end: int, old: str) -> str | None:
    """The file's first non-blank line after the match ending at `end`."""
    if "\n" in old and not old[old.rfind("\n") + 1:].strip():
        start = text.rfind("\n", 0, end) + 1  # `old` ended at a line break
    elif (start := text.find("\n", end) + 1) == 0:
        return None
    for line in text[start:].split("\n"):
        if line.strip():
            return line
    return None
