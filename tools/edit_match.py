"""Where does `old` sit in a file? Matching in tiers, strictest first, never a guess.

Tiers: exact text, then line by line ignoring trailing whitespace, then ignoring indentation
that differs by one shift or by tabs written as spaces (tools.edit_indent: `new` is re-indented
the same way, in the file's characters), a shift stopped at column 0, then with typographic
punctuation mapped to ASCII, then with blank lines that `old` lacks or adds; finally an `...`
line in `old` and `new` may stand for an unchanged middle, and one out-of-date context line is
let through. The first tier that finds exactly one place wins; several places at that tier is
an error that lists them; none anywhere is an error that shows the closest text.
`new` first gets `old`'s ending (tools.edit_lines.fit_ending), so every tier replaces the same
lines. All text here is LF-only (the caller normalises CRLF before and restores it after).
"""

from __future__ import annotations

import dataclasses
import difflib
import heapq
import re
from collections.abc import Callable
from dataclasses import dataclass

from tools.base import ToolError
from tools.edit_indent import EXACT, Indent, fits, frame_mid_line
from tools.edit_lines import (
    blank_windows,
    fit_ending,
    rewrite,
    split_lines,
    split_pair,
    strip_line_numbers,
)

_PUNCT = {**{c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"},
          **{c: "'" for c in "\u2018\u2019\u201a\u201b"},
          **{c: '"' for c in "\u201c\u201d\u201e\u201f"},
          **{c: " " for c in "\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
             "\u202f\u205f\u3000"}, "\u2026": "..."}
_PUNCT_TABLE = str.maketrans(_PUNCT)
ELISION = re.compile(r"^\s*(?:(?:#|//|--|;)\s*)?(?:\.\.\.|…)\s*(?:\*/)?$|^\s*/\*\s*\.\.\.\s*\*/$")


def ascii_punct(s: str) -> str:
    return s.translate(_PUNCT_TABLE)


@dataclass
class Replacement:
    start: int  # first line index replaced (0-based) in the file's lines
    end: int  # one past the last line replaced
    lines: list[str]  # what goes there


@dataclass
class Plan:
    text: str  # the whole new file text
    tier: str  # "exact", "trailing-whitespace", "indentation", "tabs", "unicode",
    # "blank-lines", "elision", "stale-line"
    count: int  # places replaced
    first_line: int  # 1-based line of the first replacement
    # the "stale-line" tier: (1-based line in the file, that line as `old` had it, as the file
    # has it and keeps it); the caller must tell the model, whose view of the file is old
    stale: tuple[int, str, str] | None = None
    # what a tolerance assumed, for the model to know: {"kind": "indentation" | "tabs" |
    # "blank-lines" | "frame", ...} (see tolerance_vars)
    tolerance: dict | None = None


def _ascii_rstrip(s: str) -> str:
    return ascii_punct(s).rstrip()


# (name, how lines compare, indentation: None = as in the file, False = one shift (or tabs as
# spaces), True = one shift, or stopped at column 0)
TIERS: list[tuple[str, Callable[[str], str], bool | None]] = [
    ("trailing-whitespace", str.rstrip, None),
    ("indentation", str.rstrip, False),
    ("indentation", str.rstrip, True),
    ("unicode", _ascii_rstrip, True),
]


def _line_matches(lines: list[str], old: list[str], norm, clamp: bool | None, lo: int = 0
                  ) -> list[tuple[int, list[Indent]]]:
    """[(start index, the indentation readings that fit)] where `old` matches line by line."""
    n, found = len(old), []
    if not n or n > len(lines):
        return found
    flexible = clamp is not None
    same = (lambda s: norm(s).strip()) if flexible else norm
    want, have = [same(x) for x in old], [same(x) for x in lines]
    for i in range(lo, len(lines) - n + 1):
        if have[i] != want[0] or have[i:i + n] != want:
            continue
        block = lines[i:i + n]
        fit = fits(block, old, clamp) if flexible else [EXACT]
        if fit:
            found.append((i, fit))
    return found


def _tier_name(tier: str, fit: list[Indent]) -> str:
    return "tabs" if tier == "indentation" and any(f.delta == 0 for f in fit) else tier


def _lineno(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _ambiguous(where: list[int], tier: str) -> ToolError:
    shown = ", ".join(str(n) for n in where[:20])
    return ToolError(f"`old` matches {len(where)} places ({tier} match), at lines {shown}. Add "
                     "surrounding lines to `old` so it matches exactly one place, or set "
                     "replace_all=true to change every one.")


def plan(text: str, old: str, new: str, replace_all: bool = False) -> Plan:
    """The new text of the file, or a ToolError saying why not and what to do."""
    if old == "":
        raise ToolError("`old` is empty. Quote the exact lines to replace (use `read` first); "
                        "to create a file use apply_patch with `*** Add File`.")
    if not old.strip():
        raise ToolError("`old` is only whitespace, which could match almost anywhere. Include "
                        "the neighbouring lines with real text.")
    if old == new:
        raise ToolError("`old` and `new` are the same, so there is nothing to change.")
    if old == (new := fit_ending(old, new)):
        raise ToolError("`old` and `new` differ only in how they end (a line break, or spaces "
                        "after the last one), and an edit keeps the file's: nothing to change.")
    hits = _exact_hits(text, old, overlapping=not replace_all)
    if len(hits) == 1 or (hits and replace_all):
        return _plan_exact(text, hits, old, new)
    if len(hits) > 1:
        raise _ambiguous([_lineno(text, at) for at in hits], "exact")
    unnumbered = strip_line_numbers(old, new)
    if unnumbered is not None:
        try:
            found = plan(text, *unnumbered[:2], replace_all)
            if found.first_line == unnumbered[2]:  # the numbers say where; they must agree
                return dataclasses.replace(found, tier=f"line-numbers+{found.tier}")
        except ToolError:
            pass  # explain the failure in terms of what the model sent
    return _plan_lines(text, old, new, replace_all)


def _plan_exact(text: str, hits: list[int], old: str, new: str) -> Plan:
    """Replace the text at each hit; a hit that starts mid-line may indent `new`'s later lines
    to its line (tools.edit_indent.frame_mid_line)."""
    out, last, framed = [], 0, None
    for at in hits:
        placed, width = frame_mid_line(text, at, old, new)
        if width and framed is None:
            framed = {"kind": "frame", "line": _lineno(text, at), "indent": width}
        out += [text[last:at], placed]
        last = at + len(old)
    return Plan("".join(out) + text[last:], "exact", len(hits), _lineno(text, hits[0]),
                tolerance=framed)


def _exact_hits(text: str, old: str, overlapping: bool = False) -> list[int]:
    """Offsets where `old` occurs, leaving out those where an `old` that starts with
    whitespace lands inside a line's indentation ("  x = 1" inside "    x = 1"): that is
    indentation drift, which the line tiers judge with the whole lines. Uniqueness is judged
    with `overlapping` hits ("a\na\n" occurs twice in "xa\na\na\n"); replacing uses
    non-overlapping ones."""
    hits, at = [], text.find(old)
    while at != -1:
        line_start = text.rfind("\n", 0, at) + 1
        inside_indent = at > line_start and not text[line_start:at].strip()
        if not (inside_indent and old[0] in " \t"):
            hits.append(at)
        at = text.find(old, at + (1 if overlapping else len(old)))
    return hits


def _plan_lines(text: str, old: str, new: str, replace_all: bool) -> Plan:
    lines, (old_l, new_l) = split_lines(text), split_pair(old, new)
    for tier, norm, clamp in TIERS:
        found = _line_matches(lines, old_l, norm, clamp)
        if not found:
            continue
        name = _tier_name(tier, found[0][1])
        if len(found) > 1 and not replace_all:
            raise _ambiguous([i + 1 for i, _ in found], name)
        reps = [_replacement(lines, i, fit, old_l, new_l, tier) for i, fit in found]
        return Plan(_apply(lines, reps, text), name, len(reps), found[0][0] + 1,
                    tolerance=_indent_note(name, found[0][1]))
    for attempt in (_plan_blank_lines, _plan_elision, _plan_stale):
        found = attempt(text, lines, old_l, new_l)
        if found is not None:
            return found
    raise _not_found(text, lines, old_l, new)


def _indent_note(name: str, fit: list[Indent]) -> dict | None:
    if name not in ("indentation", "tabs"):
        return None
    f = min(fit, key=lambda f: abs(f.delta))
    return {"kind": name, "shift": f.delta, "tab": f.tab if f.restyle or name == "tabs" else 0,
            "clamped": f.clamped}


def _replacement(lines: list[str], i: int, fit: list[Indent], old_l: list[str],
                 new_l: list[str], tier: str, align: list[int | None] | None = None,
                 end: int | None = None) -> Replacement:
    """Lines i..end of the file (i + len(old_l) unless given) rewritten with `new`; every
    reading of the indentation that fits must give the same lines."""
    end = i + len(old_l) if end is None else end
    block = lines[i:end]
    align = list(range(len(old_l))) if align is None else align
    outs = [rewrite(block, align, old_l, new_l, f, i) for f in fit]
    if any(o != outs[0] for o in outs[1:]):
        widths = ", ".join(str(f.tab) for f in fit)
        raise ToolError(f"Lines {i + 1}–{end} indent with tabs and `old` with spaces; tab "
                        f"widths {widths} all fit `old` but give `new` different indentation. "
                        "Write `old` and `new` with tabs, as the file has them.")
    out = outs[0]
    if tier == "unicode" and not any(ascii_punct(x) != x for x in block):
        out = [ascii_punct(x) for x in out]  # the file writes ASCII; keep it so
    return Replacement(i, end, out)


def _apply(lines: list[str], reps: list[Replacement], text: str) -> str:
    out = list(lines)
    for r in sorted(reps, key=lambda r: r.start, reverse=True):
        out[r.start:r.end] = r.lines
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _plan_blank_lines(text: str, lines: list[str], old_l: list[str], new_l: list[str]
                      ) -> Plan | None:
    """`old` lacks blank lines the file has, or has some the file lacks: its other lines, in
    order, at exactly one place. The file's blank lines stay; `old`'s extra ones are not added."""
    found = blank_windows(lines, old_l, _ascii_rstrip)
    if not found:
        return None
    if len(found) > 1:
        raise _ambiguous([start + 1 for start, _, _ in found], "blank-lines")
    start, align, fit = found[0]
    end = start + max(r for r in align if r is not None) + 1
    rep = _replacement(lines, start, fit, old_l, new_l, "unicode", align, end)
    kept = [start + r + 1 for r in range(end - start) if r not in align]
    note = {"kind": "blank-lines", "kept": kept, "dropped": align.count(None)}
    return Plan(_apply(lines, [rep], text), "blank-lines", 1, start + 1, tolerance=note)


def _segments(lines: list[str]) -> list[list[str]]:
    segs: list[list[str]] = [[]]
    for line in lines:
        if ELISION.match(line):
            segs.append([])
        else:
            segs[-1].append(line)
    return segs


def _plan_elision(text: str, lines: list[str], old_l: list[str], new_l: list[str]
                  ) -> Plan | None:
    """`...` lines in both old and new keep the file's middle; every piece must be unique."""
    olds, news = _segments(old_l), _segments(new_l)
    if len(olds) < 2 or len(olds) != len(news) or any(not s for s in olds):
        return None
    reps, cursor = [], 0
    for seg_old, seg_new in zip(olds, news, strict=True):
        hit = _unique_from(lines, seg_old, cursor)
        if hit is None:
            return None
        i, fit, tier = hit
        reps.append(_replacement(lines, i, fit, seg_old, seg_new, tier))
        cursor = i + len(seg_old)
    return Plan(_apply(lines, reps, text), "elision", 1, reps[0].start + 1)


def _unique_from(lines: list[str], seg: list[str], lo: int
                 ) -> tuple[int, list[Indent], str] | None:
    for tier, norm, clamp in [("exact", lambda s: s, None), *TIERS]:
        found = _line_matches(lines, seg, norm, clamp, lo)
        if found:
            return (*found[0], tier) if len(found) == 1 else None
    return None


STALE_MIN_LINES = 4  # with fewer lines, "all but one line match" says too little
STALE_MIN_SIMILARITY = 0.6


def _plan_stale(text: str, lines: list[str], old_l: list[str], new_l: list[str]
                ) -> Plan | None:
    """One context line of `old` is out of date (the file's line was changed since the model
    saw it): apply when every other line matches at exactly one place, the odd line still
    resembles the file's, and `new` keeps it unchanged, so the edit does not touch it; the
    file's current line is kept, and the Plan says which line that was."""
    n = len(old_l)
    if n < STALE_MIN_LINES:
        return None
    hits = _all_but_one(lines, old_l)
    if len(hits) != 1:
        return None
    i, k = hits[0]
    new_k = _context_index(old_l, new_l, k)
    ratio = difflib.SequenceMatcher(None, lines[i + k].strip(), old_l[k].strip()).ratio()
    if new_k is None or ratio < STALE_MIN_SIMILARITY:
        return None
    others = [j for j in range(n) if j != k]
    fit = fits([lines[i + j] for j in others], [old_l[j] for j in others])
    if not fit:
        return None
    rep = _replacement(lines, i, fit, old_l, new_l, "unicode")
    rep.lines[new_k] = lines[i + k]
    kept = (i + k + 1, old_l[k], lines[i + k])
    return Plan(_apply(lines, [rep], text), "stale-line", 1, i + 1, kept)


def _all_but_one(lines: list[str], old_l: list[str]) -> list[tuple[int, int]]:
    """[(start, index of the one differing line)] over the file, comparing trimmed ASCII."""
    norm_file = [ascii_punct(x).strip() for x in lines]
    want = [ascii_punct(x).strip() for x in old_l]
    n, hits = len(want), []
    for i in range(len(lines) - n + 1):
        miss = -1
        for k in range(n):
            if norm_file[i + k] != want[k]:
                if miss >= 0:
                    break
                miss = k
        else:
            if miss >= 0:
                hits.append((i, miss))
    return hits


def _context_index(old_l: list[str], new_l: list[str], k: int) -> int | None:
    """Where old line k sits in `new` if the edit leaves it as context, else None."""
    sm = difflib.SequenceMatcher(None, old_l, new_l, autojunk=False)
    for tag, a0, a1, b0, _ in sm.get_opcodes():
        if tag == "equal" and a0 <= k < a1:
            return b0 + (k - a0)
    return None


def _not_found(text: str, lines: list[str], old_l: list[str], new: str) -> ToolError:
    present = _already_present(lines, new)
    if present is not None:
        return ToolError(f"`old` was not found, but the replacement is already present at line "
                         f"{present}: this change seems to be made already. `read` the file to "
                         "check.")
    best = closest(lines, old_l)
    if best is None:
        return ToolError("`old` was not found in the file. `read` the file and copy the lines "
                         "to replace exactly.")
    start, ratio = best
    shown = "\n".join(lines[start:start + len(old_l)])
    return ToolError(f"`old` was not found in the file. Did you mean lines {start + 1}–"
                     f"{start + len(old_l)} ({ratio:.0%} similar)?\n{shown}\n"
                     "Copy the lines exactly as the file has them (`read` it again if it may "
                     "have changed).")


def _already_present(lines: list[str], new: str) -> int | None:
    """1-based line where `new` sits as whole lines (indentation aside), if it says enough to
    tell: a few characters like `x` are everywhere and prove nothing."""
    new_l = split_lines(new)
    while new_l and not new_l[-1].strip():
        new_l.pop()
    if not new_l or len(new.strip()) < 8:
        return None
    found = _line_matches(lines, new_l, str.rstrip, False)
    return found[0][0] + 1 if len(found) == 1 else None


def _grams(line: str) -> frozenset[str]:
    s = line.strip()
    return frozenset(s[i:i + 3] for i in range(max(len(s) - 2, 1)))


def closest(lines: list[str], old_l: list[str]) -> tuple[int, float] | None:
    """(start index, similarity) of the window of the file most like `old`, if any is close.
    Windows are ranked cheaply by per-line trigram overlap, then the best few are compared
    exactly (difflib), so a long file costs O(lines × len(old)) set operations."""
    n = len(old_l)
    if not n or not lines:
        return None
    og, fg = [_grams(x) for x in old_l], [_grams(x) for x in lines]
    scored = []
    for i in range(max(len(lines) - n + 1, 1)):
        total = 0.0
        for k in range(min(n, len(lines) - i)):
            a, b = fg[i + k], og[k]
            total += len(a & b) / len(a | b) if (a or b) else 1.0
        scored.append((total, -i))
    target = "\n".join(x.strip() for x in old_l)
    best: tuple[int, float] | None = None
    for _, neg_i in heapq.nlargest(8, scored):
        window = "\n".join(x.strip() for x in lines[-neg_i:-neg_i + n])
        ratio = difflib.SequenceMatcher(None, window, target, autojunk=False).ratio()
        if best is None or ratio > best[1]:
            best = (-neg_i, ratio)
    return best if best and best[1] >= 0.6 else None
