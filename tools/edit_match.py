"""Where does `old` sit in a file? Matching in tiers, strictest first, never a guess.

Tiers: exact text, then line by line ignoring trailing whitespace, then ignoring a constant
indentation shift (the replacement is shifted the same way), then with typographic punctuation
mapped to ASCII; finally an `...` line in `old` and `new` may stand for an unchanged middle.
The first tier that finds exactly one place wins; several places at that tier is an error that
lists them; none anywhere is an error that shows the closest text.
All text here is LF-only (the caller normalises CRLF before and restores it after).
"""

from __future__ import annotations

import dataclasses
import difflib
import heapq
import re
from collections.abc import Callable
from dataclasses import dataclass

from tools.base import ToolError

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
    tier: str  # "exact", "trailing-whitespace", "indentation", "unicode", "elision", "stale-line"
    count: int  # places replaced
    first_line: int  # 1-based line of the first replacement
    # the "stale-line" tier: (1-based line in the file, that line as `old` had it, as the file
    # has it and keeps it); the caller must tell the model, whose view of the file is old
    stale: tuple[int, str, str] | None = None


def _width(s: str) -> int:
    return len(s.expandtabs(4)) - len(s.expandtabs(4).lstrip())


def _shift(line: str, delta: int, unit: str) -> str:
    """Re-indent one line by `delta` columns (negative removes), using the file's indent unit."""
    if not line.strip() or delta == 0:
        return line
    if delta > 0:
        return (unit * (delta // 4) if unit == "\t" else " " * delta) + line
    removed, cut = 0, 0
    while removed < -delta and cut < len(line) and line[cut] in " \t":
        removed += 4 if line[cut] == "\t" else 1
        cut += 1
    return line[cut:]


def _block_delta(file_block: list[str], old: list[str], norm: Callable[[str], str]) -> int | None:
    """The constant indentation shift that maps `old` onto `file_block`, or None."""
    delta = None
    for f, o in zip(file_block, old, strict=True):
        if norm(f).strip() != norm(o).strip():
            return None
        if not o.strip():
            continue
        d = _width(f) - _width(o)
        if delta is None:
            delta = d
        elif d != delta:
            return None
    return delta or 0


TIERS: list[tuple[str, Callable[[str], str], bool]] = [
    ("trailing-whitespace", str.rstrip, False),
    ("indentation", str.rstrip, True),
    ("unicode", lambda s: ascii_punct(s).rstrip(), True),
]


def _line_matches(lines: list[str], old: list[str], norm, flexible: bool, lo: int = 0
                  ) -> list[tuple[int, int]]:
    """[(start index, indent delta)] where `old` matches line by line under `norm`."""
    n, found = len(old), []
    if not n or n > len(lines):
        return found
    first = norm(old[0]).strip() if flexible else norm(old[0])
    for i in range(lo, len(lines) - n + 1):
        head = norm(lines[i]).strip() if flexible else norm(lines[i])
        if head != first:
            continue
        block = lines[i:i + n]
        if flexible:
            delta = _block_delta(block, old, norm)
            if delta is not None:
                found.append((i, delta))
        elif all(norm(a) == norm(b) for a, b in zip(block, old, strict=True)):
            found.append((i, 0))
    return found


def _indent_unit(block: list[str]) -> str:
    for line in block:
        if line.startswith("\t"):
            return "\t"
    return " "


def _split(text: str) -> list[str]:
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")


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
    hits = _exact_hits(text, old, overlapping=not replace_all)
    if len(hits) == 1 or (hits and replace_all):
        out, last = [], 0
        for at in hits:
            out += [text[last:at], new]
            last = at + len(old)
        return Plan("".join(out) + text[last:], "exact", len(hits), _lineno(text, hits[0]))
    if len(hits) > 1:
        raise _ambiguous([_lineno(text, at) for at in hits], "exact")
    unnumbered = _strip_line_numbers(old, new)
    if unnumbered is not None:
        try:
            found = plan(text, *unnumbered[:2], replace_all)
            if found.first_line == unnumbered[2]:  # the numbers say where; they must agree
                return dataclasses.replace(found, tier=f"line-numbers+{found.tier}")
        except ToolError:
            pass  # explain the failure in terms of what the model sent
    return _plan_lines(text, old, new, replace_all)


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


_NUMBERED = re.compile(r"^ *\d+\t")  # `read` shows lines as f"{n:>6}\t{line}"


def _strip_line_numbers(old: str, new: str) -> tuple[str, str, int] | None:
    """(old, new, first number) without the line numbers copied from `read` output, if every
    line of `old` carries one and they count up by one; None otherwise."""
    old_l = _split(old)
    numbers = [int(m.group().strip()) if (m := _NUMBERED.match(x)) else None for x in old_l]
    if None in numbers or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return None
    strip = lambda s: "".join(_NUMBERED.sub("", x, count=1)
                              for x in s.splitlines(keepends=True))
    return strip(old), strip(new), numbers[0]


def _plan_lines(text: str, old: str, new: str, replace_all: bool) -> Plan:
    lines, old_l, new_l = _split(text), _split(old), _split(new) if new else []
    for tier, norm, flexible in TIERS:
        found = _line_matches(lines, old_l, norm, flexible)
        if not found:
            continue
        if len(found) > 1 and not replace_all:
            raise _ambiguous([i + 1 for i, _ in found], tier)
        reps = [_replacement(lines, i, d, old_l, new_l, tier) for i, d in found]
        return Plan(_apply(lines, reps, text), tier, len(reps), found[0][0] + 1)
    elided = _plan_elision(lines, old_l, new_l)
    if elided is not None:
        return Plan(_apply(lines, elided, text), "elision", 1, elided[0].start + 1)
    stale = _plan_stale(lines, old_l, new_l)
    if stale is not None:
        rep, k = stale
        kept = (rep.start + k + 1, old_l[k], lines[rep.start + k])
        return Plan(_apply(lines, [rep], text), "stale-line", 1, rep.start + 1, kept)
    raise _not_found(text, lines, old_l, new)


def _replacement(lines: list[str], i: int, delta: int, old_l: list[str], new_l: list[str],
                 tier: str) -> Replacement:
    block = lines[i:i + len(old_l)]
    out = [_shift(x, delta, _indent_unit(block)) for x in new_l] if delta else list(new_l)
    if tier == "unicode" and not any(ascii_punct(x) != x for x in block):
        out = [ascii_punct(x) for x in out]  # the file writes ASCII; keep it so
    # lines the edit leaves alone keep the file's exact text (its spaces, quotes, indentation)
    sm = difflib.SequenceMatcher(None, old_l, new_l, autojunk=False)
    for tag, a0, a1, b0, b1 in sm.get_opcodes():
        if tag == "equal":
            out[b0:b1] = block[a0:a1]
    return Replacement(i, i + len(old_l), out)


def _apply(lines: list[str], reps: list[Replacement], text: str) -> str:
    out = list(lines)
    for r in sorted(reps, key=lambda r: r.start, reverse=True):
        out[r.start:r.end] = r.lines
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _segments(lines: list[str]) -> list[list[str]]:
    segs: list[list[str]] = [[]]
    for line in lines:
        if ELISION.match(line):
            segs.append([])
        else:
            segs[-1].append(line)
    return segs


def _plan_elision(lines: list[str], old_l: list[str], new_l: list[str]
                  ) -> list[Replacement] | None:
    """`...` lines in both old and new keep the file's middle; every piece must be unique."""
    olds, news = _segments(old_l), _segments(new_l)
    if len(olds) < 2 or len(olds) != len(news) or any(not s for s in olds):
        return None
    reps, cursor = [], 0
    for seg_old, seg_new in zip(olds, news, strict=True):
        hit = _unique_from(lines, seg_old, cursor)
        if hit is None:
            return None
        i, delta, tier = hit
        reps.append(_replacement(lines, i, delta, seg_old, seg_new, tier))
        cursor = i + len(seg_old)
    return reps


def _unique_from(lines: list[str], seg: list[str], lo: int) -> tuple[int, int, str] | None:
    for tier, norm, flexible in [("exact", lambda s: s, False), *TIERS]:
        found = _line_matches(lines, seg, norm, flexible, lo)
        if found:
            return (*found[0], tier) if len(found) == 1 else None
    return None


STALE_MIN_LINES = 4  # with fewer lines, "all but one line match" says too little
STALE_MIN_SIMILARITY = 0.6


def _plan_stale(lines: list[str], old_l: list[str], new_l: list[str]
                ) -> tuple[Replacement, int] | None:
    """One context line of `old` is out of date (the file's line was changed since the model
    saw it): apply when every other line matches at exactly one place, the odd line still
    resembles the file's, and `new` keeps it unchanged, so the edit does not touch it; the
    file's current line is kept. Returns the replacement and the odd line's index in `old`."""
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
    delta = _block_delta([lines[i + j] for j in others], [old_l[j] for j in others],
                         lambda s: ascii_punct(s).rstrip())
    if delta is None:
        return None
    rep = _replacement(lines, i, delta, old_l, new_l, "unicode")
    rep.lines[new_k] = lines[i + k]
    return rep, k


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
    new_l = _split(new)
    while new_l and not new_l[-1].strip():
        new_l.pop()
    if not new_l or len(new.strip()) < 8:
        return None
    found = _line_matches(lines, new_l, str.rstrip, True)
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
