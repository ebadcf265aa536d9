"""Lines for the edit matcher: how `old` and `new` end, how blank lines may differ, and how a
matched window of the file is rewritten with `new`.

A window is rewritten line by line: where `new` keeps a line of `old` the file's own text stays
(its spaces, quotes, indentation); other lines of `new` are re-indented as the place requires
(tools.edit_indent). `align[k]` is the window row that `old`'s line k stands for, or None for a
blank line of `old` that the file lacks; window rows no line of `old` stands for are blank lines
`old` lacks, and they stay.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

from tools.base import ToolError
from tools.edit_indent import Indent, fits, peer_leads, reindent, uses_tabs


def _tail(s: str) -> str:
    """What follows the last line break (all of `s` without one)."""
    return s[s.rfind("\n") + 1:]


def ends_at_break(old: str) -> bool:
    """`old` ends with a line break, perhaps followed by the next line's indentation."""
    return "\n" in old and not _tail(old).strip()


def fit_ending(old: str, new: str) -> str:
    """`new` ending the way `old` does. What follows `old`'s last line break, when it is only
    whitespace, is the next line's indentation (or a blank line's spaces), and a line break at
    the end says the edit covers whole lines: an edit means to keep both, so `new` gets `old`'s
    ending. Without this, "a\\n    " -> "b\\n" takes the next line's indentation away (or, at the
    line tiers, a blank line), and "a" -> "b\\n" adds a line break (issue 20, 16a's class)."""
    tail, cut = _tail(old), new.rfind("\n") + 1
    if ends_at_break(old):
        if new[cut:].strip() and tail:
            raise ToolError("`old` ends with a line break and the next line's indentation, and "
                            "`new` ends without a line break: join the two lines, or keep them? "
                            "End `old` and `new` alike: both at the end of a line, or include the "
                            "next line's text in both.")
        return (new[:cut] if not new[cut:].strip() else new + "\n") + tail
    if cut and not new[cut:].strip():
        return new[:cut - 1]  # `old` ends on text: so does `new`
    return new


def split_lines(text: str) -> list[str]:
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")


_NUMBERED = re.compile(r"^ *\d+\t")  # `read` shows lines as f"{n:>6}\t{line}"


def strip_line_numbers(old: str, new: str) -> tuple[str, str, int] | None:
    """(old, new, first number) without the line numbers copied from `read` output, if every
    line of `old` carries one and they count up by one; None otherwise."""
    old_l = split_lines(old)
    numbers = [int(m.group().strip()) if (m := _NUMBERED.match(x)) else None for x in old_l]
    if None in numbers or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return None
    strip = lambda s: "".join(_NUMBERED.sub("", x, count=1)
                              for x in s.splitlines(keepends=True))
    return strip(old), strip(new), numbers[0]


def split_pair(old: str, new: str) -> tuple[list[str], list[str]]:
    """`old` and `new` as lines, split alike (`new` already ends as `old` does): whole lines when
    `old` ends at a line break (whitespace after it is the next line's, left alone), else every
    piece, the last one a line's start."""
    if ends_at_break(old):
        cut = new.rfind("\n")
        return old[:old.rfind("\n")].split("\n"), new[:cut].split("\n") if cut >= 0 else []
    return old.split("\n"), new.split("\n")


def rewrite(window: list[str], align: list[int | None], old_l: list[str], new_l: list[str],
            fit: Indent, start: int = 0) -> list[str]:
    """The window's lines after the edit (`start`: the window's 0-based line in the file)."""
    ops = difflib.SequenceMatcher(None, old_l, new_l, autojunk=False).get_opcodes()
    tabs, kept = uses_tabs(window), {}
    peers = peer_leads([(o, window[r]) for o, r in zip(old_l, align, strict=True)
                        if r is not None], fit.tab)
    out: list[str | None] = []
    for tag, a0, a1, b0, b1 in ops:
        for j in range(b0, b1):
            k = a0 + j - b0
            if tag == "equal":
                kept[k] = j
                out.append(None if align[k] is None else window[align[k]])
                continue
            # a line of `new` in place of a line of `old` (neither blank: a blank line has no
            # indentation to go by) may take that line's indentation from the file
            paired = tag == "replace" and k < a1 and align[k] is not None \
                and old_l[k].strip() != "" and window[align[k]].strip() != ""
            out.append(reindent(new_l[j], (old_l[k], window[align[k]]) if paired else None,
                                peers, fit, tabs))
    extras = _extras(window, align, kept, start)
    lines = []
    for j, line in enumerate(out):
        lines += extras.get(j, [])
        lines += [] if line is None else [line]
    return lines + extras.get(len(out), [])


def _extras(window: list[str], align: list[int | None], kept: dict[int, int], start: int
            ) -> dict[int, list[str]]:
    """{position in `new`: the window's rows to put there} for rows no line of `old` stands for.
    They sit between two lines of `old`, k1 and k2; they go between what `new` has for them:
    after k1 if `new` keeps k1, before k2 if it keeps k2. Refused when `new` rewrites both, or
    adds lines between the two, since then no one knows where they belong."""
    rows = sorted((r, k) for k, r in enumerate(align) if r is not None)
    kept_at, out = set(kept.values()), {}
    for (r1, k1), (r2, k2) in zip(rows, rows[1:], strict=False):
        if r2 == r1 + 1:
            continue
        if k1 in kept and k2 in kept and all(j in kept_at for j in range(kept[k1] + 1, kept[k2])):
            at = kept[k2]
        elif k1 in kept and k2 not in kept:
            at = kept[k1] + 1
        elif k2 in kept and k1 not in kept:
            at = kept[k2]
        else:
            raise ToolError(f"The file has a blank line at line {start + r1 + 2} that `old` "
                            "lacks, where `new` changes or adds lines around it, so it is not "
                            "clear where it goes. Quote `old` with the file's blank lines.")
        out.setdefault(at, []).extend(window[r1 + 1:r2])
    return out


def blank_windows(lines: list[str], old_l: list[str], same: Callable[[str], str]
                  ) -> list[tuple[int, list[int | None], list[Indent]]]:
    """[(window start, align, fits)] for every place where `old`'s non-blank lines are the
    file's non-blank lines in order (compared with `same`, one indentation shift), whatever
    blank lines lie between them; `old`'s blank lines pair with the file's in each gap."""
    keys = [k for k, x in enumerate(old_l) if x.strip()]
    rows = [i for i, x in enumerate(lines) if x.strip()]
    want = [same(old_l[k]).strip() for k in keys]
    have = [same(lines[i]).strip() for i in rows]
    found = []
    for s in range(len(rows) - len(keys) + 1):
        if have[s] != want[0] or have[s:s + len(keys)] != want:
            continue
        at = rows[s:s + len(keys)]
        fit = fits([lines[i] for i in at], [old_l[k] for k in keys], clamp=True)
        if fit:
            found.append((*_align(lines, old_l, keys, at), fit))
    return found


def _align(lines: list[str], old_l: list[str], keys: list[int], at: list[int]
           ) -> tuple[int, list[int | None]]:
    """(window start, align): `old`'s blank lines before, between and after its non-blank ones
    pair in order with the file's blank lines there, as many as both have."""
    row: list[int | None] = [None] * len(old_l)
    for k, i in zip(keys, at, strict=True):
        row[k] = i
    lead = min(keys[0], _blank_run(lines, at[0], -1))
    for t in range(lead):
        row[keys[0] - 1 - t] = at[0] - 1 - t
    pairs = list(zip(keys, at, strict=True))
    for (k1, i1), (k2, i2) in zip(pairs, pairs[1:], strict=False):
        for t in range(min(k2 - k1, i2 - i1) - 1):
            row[k1 + 1 + t] = i1 + 1 + t
    trail = min(len(old_l) - 1 - keys[-1], _blank_run(lines, at[-1], 1))
    for t in range(trail):
        row[keys[-1] + 1 + t] = at[-1] + 1 + t
    start = at[0] - lead
    return start, [None if r is None else r - start for r in row]


def _blank_run(lines: list[str], i: int, step: int) -> int:
    """How many blank lines follow (step 1) or precede (step -1) line i."""
    n, i = 0, i + step
    while 0 <= i < len(lines) and not lines[i].strip():
        n, i = n + 1, i + step
    return n
