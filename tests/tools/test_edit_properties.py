"""Property: whatever drift the model's `old` has, `edit` either makes exactly the intended
change or refuses; it never changes the wrong place. Files are small and repetitive on purpose,
so near-duplicates (the dangerous case) are common; they indent with spaces or with tabs.

Drifts: trailing spaces, a shifted indentation (one shift, or one stopped at column 0), curly
quotes, tabs written as spaces, a blank line missing or added, `old` and `new` ending
differently (a final line break, the next line's indentation: 16a's class), and a one-line `old`
quoted without its indentation, `new` written from there (16b's class) or in the file's columns.
Edits: change the last line, or insert a line before or after the block."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tools.base import ToolError
from tools.edit_match import plan

WORDS = ["x = 1", "return x", "if x:", "pass", "y = f(x)", "print('hi')", "", "else:"]
DRIFTS = ["none", "trailing", "indent+", "indent-", "clamp", "curly", "tabs", "blank-missing",
          "blank-extra", "no-final-newline-old", "no-final-newline-new", "ws-tail", "mid-line",
          "mid-line-absolute"]


@st.composite
def cases(draw):
    unit = draw(st.sampled_from(["    ", "\t"]))
    words = [draw(st.sampled_from(WORDS)) for _ in range(draw(st.integers(4, 30)))]
    if draw(st.booleans()):  # fewer repeats, so that rarer drifts get to apply, not only refuse
        words = [f"{w}  # {draw(st.integers(0, 3))}" if w else w for w in words]
    # blank lines stay empty: indentation on a blank line is invisible, so no one can drift it
    lines = [unit * draw(st.sampled_from([0, 1, 2])) + w if w else w for w in words]
    drift = draw(st.sampled_from(DRIFTS))
    n = 1 if drift.startswith("mid-line") else draw(st.integers(3 if drift == "blank-missing"
                                                                else 1, 4))
    start = draw(st.integers(0, len(lines) - n))
    if drift == "blank-missing":  # a blank line inside the block, for `old` to lack
        lines[start + draw(st.integers(1, n - 2))] = ""
    block = lines[start:start + n]
    new_block = _edited(block, draw(st.sampled_from(["change", "insert-after", "insert-before"])))
    old, new = _drifted(draw, drift, lines, start, block, new_block, unit)
    return lines, start, block, new_block, drift, old, new


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip(" \t"))]


def _edited(block, how):
    """The block as the model means it. An inserted line is indented as the block's nearest
    line with text: a model quoting a block without its common indentation writes new lines
    from there and could not write one left of it."""
    text = [x for x in block if x.strip()] or [""]
    if how == "change":
        last = block[-1] if block[-1].strip() else _indent(text[-1]) + "pass"
        return [*block[:-1], last + "  # changed"]
    if how == "insert-after":
        return [*block, _indent(text[-1]) + "z = 0"]
    return [_indent(text[0]) + "z = 0", *block]


def _join(block):
    return "\n".join(block) + "\n"


def _drifted(draw, drift, lines, start, block, new_block, unit):
    """(old, new) as a model with this drift would send them."""
    same = {"trailing": lambda x: x + "  " if x.strip() else x,
            "indent+": lambda x: "  " + x if x.strip() else x,
            "indent-": lambda x: x[2:] if x.startswith("  ") else x,
            "clamp": lambda x: x[8:] if x.startswith(" " * 8) else x.lstrip(" "),
            "curly": lambda x: x.replace("'", "\u2019")}
    if drift in same:
        new_drift = same[drift] if drift != "trailing" else (lambda x: x)
        return _join([same[drift](x) for x in block]), _join([new_drift(x) for x in new_block])
    if drift == "tabs":
        width = draw(st.sampled_from([2, 4, 8]))
        return _join([x.expandtabs(width) for x in block]), _join(
            [x.expandtabs(width) for x in new_block])
    if drift.startswith("blank"):
        old, new = _blank_drift(draw, drift, block, new_block)
        # a place with old's blank lines, at another indentation, matches at a stricter tier
        # (tiers go strictest first): that is another property
        want = [x.strip() for x in old.removesuffix("\n").split("\n")]
        assume(all([x.strip() for x in lines[i:i + len(want)]] != want
                   for i in range(len(lines))))
        return old, new
    if drift.startswith("no-final") or drift == "ws-tail":
        old, new = _join(block), _join(new_block)
        assume(block[-1].strip() and new_block[-1].strip())  # else it drops a blank line
        if drift == "ws-tail":
            return old + draw(st.sampled_from([" ", "  ", unit, "\t\t"])), new
        return (old[:-1], new) if drift.endswith("old") else (old, new[:-1])
    if drift.startswith("mid-line"):
        return _mid_line(drift, lines, start, block, new_block)
    return _join(block), _join(new_block)


def _blank_drift(draw, drift, block, new_block):
    """`old` without one of the block's blank lines, or with one it lacks; `new` alike."""
    if drift == "blank-missing":
        blanks = [k for k, x in enumerate(block) if not x.strip()]
        assume(blanks and any(x.strip() for x in block))
        k = draw(st.sampled_from(blanks))
        offset = 1 if new_block[0] != block[0] else 0  # "insert-before" shifts new by one
        assume(new_block[k + offset] == "")
        return _join(block[:k] + block[k + 1:]), _join(new_block[:k + offset] +
                                                       new_block[k + offset + 1:])
    k = draw(st.integers(1, len(block)))
    assume(k < len(block) and block[k - 1].strip() and block[k].strip())
    offset = 1 if new_block[0] != block[0] else 0
    return _join(block[:k] + [""] + block[k:]), _join(new_block[:k + offset] + [""] +
                                                      new_block[k + offset:])


def _mid_line(drift, lines, start, block, new_block):
    """One line quoted from after its indentation; `new` written from there ("mid-line", 16b),
    or in the file's columns by a model that knows the text is replaced as it stands."""
    line, indent = block[0], _indent(block[0])
    assume(indent and line.strip())
    old = line[len(indent):] + "\n"
    if drift == "mid-line":
        return old, _join([x[len(indent):] if x.startswith(indent) else x for x in new_block])
    # the file's columns: it dedents an inserted line only where the file's block ends, as a
    # model writing a new top-level line would; in the middle of a block it never would
    after = [x for x in lines[start + 1:] if x.strip()]
    assume(not after or len(_indent(after[0])) == 0 and not after[0].startswith("else"))
    return old, _join([new_block[0][len(_indent(new_block[0])):], *[
        x.lstrip(" \t") if x.endswith("z = 0") else x for x in new_block[1:]]])


def _intended(lines, start, block, new_block, drift, new):
    if drift == "none":
        new_block = new.removesuffix("\n").split("\n")  # no drift in old: new is meant as sent
    if drift == "mid-line-absolute":
        new_block = [_indent(block[0]) + new.split("\n")[0],
                     *new.removesuffix("\n").split("\n")[1:]]
    return "\n".join(lines[:start] + new_block + lines[start + len(block):]) + "\n"


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.filter_too_much])
@given(cases())
def test_edit_is_right_or_refuses(case):
    lines, start, block, new_block, drift, old, new = case
    text = "\n".join(lines) + "\n"
    intended = _intended(lines, start, block, new_block, drift, new)
    try:
        result = plan(text, old, new)
    except ToolError:
        return
    if result.text == intended:
        return
    # the only other acceptable outcomes: the change landed on an identical copy of the block
    # (indistinguishable from the intended one), or on a place `old` matches as it was sent
    # (as text, or line for line), where the model's text is taken as written
    n = len(block)
    others = [_intended(lines, i, block, new_block, drift, new) for i in range(len(lines) - n + 1)
              if lines[i:i + n] == block]
    old_l, new_l = old.removesuffix("\n").split("\n"), new.removesuffix("\n").split("\n")
    literal = ["\n".join(lines[:i] + new_l + lines[i + len(old_l):]) + "\n"
               for i in range(len(lines) - len(old_l) + 1) if lines[i:i + len(old_l)] == old_l]
    if text.count(old) == 1 and not drift.startswith("mid-line"):
        literal.append(text.replace(old, new))
        if result.tier == "exact" and result.first_line == text[:text.index(old)].count("\n") + 1:
            return  # the one place `old` occurs as sent, taken as written: how the text is
            # placed there (the file's ending kept, a mid-line hit's framing) is the exact
            # tier's own tests' business (tests/tools/test_edit*.py)
    shifted = [_shifted(lines, i, old_l, new_l) for i in range(len(lines) - len(old_l) + 1)]
    assert result.text in others + literal + [t for t in shifted if t], (old, new, result.tier,
                                                                         drift)


def _shifted(lines, i, old_l, new_l) -> str | None:
    """The file with `new` at line i, where `old`'s lines sit all indented (or dedented) by one
    common prefix and `new` moves with them: the indentation tier taking the model's block as
    written, only shifted (a drifted `old` may match another place's shape better than its own).
    None where old's lines do not sit there so."""
    seg = lines[i:i + len(old_l)]
    for a, b, sign in ((seg[0], old_l[0], 1), (old_l[0], seg[0], -1)):
        if not a.endswith(b) or not b.strip():
            continue
        p = a[:len(a) - len(b)]
        if p.strip():
            continue
        pairs = list(zip(seg, old_l, strict=True))
        if sign > 0 and all(f == (p + o if o.strip() else f) for f, o in pairs):
            moved = [p + n if n.strip() else n for n in new_l]
        elif sign < 0 and all(o == (p + f if f.strip() else o) for f, o in pairs):
            moved = [n.removeprefix(p) for n in new_l]
        else:
            continue
        return "\n".join(lines[:i] + moved + lines[i + len(old_l):]) + "\n"
    return None
