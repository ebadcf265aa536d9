"""Property: whatever drift the model's `old` has, `edit` either makes exactly the intended
change or refuses; it never changes the wrong place. Files are small and repetitive on purpose,
so near-duplicates (the dangerous case) are common."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.base import ToolError
from tools.edit_match import plan

WORDS = ["x = 1", "return x", "if x:", "pass", "y = f(x)", "print('hi')", "", "else:"]


@st.composite
def cases(draw):
    words = [draw(st.sampled_from(WORDS)) for _ in range(draw(st.integers(4, 30)))]
    # blank lines stay empty: indentation on a blank line is invisible, so no one can drift it
    lines = [" " * draw(st.sampled_from([0, 4, 8])) + w if w else w for w in words]
    text = "\n".join(lines) + "\n"
    n = draw(st.integers(1, 4))
    start = draw(st.integers(0, len(lines) - n))
    block = lines[start:start + n]
    new_block = [*block[:-1], block[-1] + "  # changed"]
    drift = draw(st.sampled_from(["none", "trailing", "indent+", "indent-", "curly"]))
    old = _drift(block, drift)
    new = _drift(new_block, drift if drift != "trailing" else "none")
    return text, lines, start, n, new_block, old, new


def _drift(block, drift):
    if drift == "trailing":
        return "\n".join(x + "  " for x in block) + "\n"
    if drift == "indent+":
        return "\n".join("  " + x if x.strip() else x for x in block) + "\n"
    if drift == "indent-":
        return "\n".join(x[2:] if x.startswith("  ") else x for x in block) + "\n"
    if drift == "curly":
        return "\n".join(x.replace("'", "\u2019") for x in block) + "\n"
    return "\n".join(block) + "\n"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_edit_is_right_or_refuses(case):
    text, lines, start, n, new_block, old, new = case
    if old == "\n".join(lines[start:start + n]) + "\n":
        new_block = new.removesuffix("\n").split("\n")  # no drift in old: new is meant as sent
    intended = "\n".join(lines[:start] + new_block + lines[start + n:]) + "\n"
    try:
        result = plan(text, old, new)
    except ToolError:
        return
    if result.text != intended:
        # the only other acceptable outcome: the same block text sits elsewhere and the
        # change landed on an identical copy (indistinguishable from the intended one)
        others = [i for i in range(len(lines) - n + 1) if lines[i:i + n] == lines[start:start + n]]
        assert any("\n".join(lines[:i] + new_block + lines[i + n:]) + "\n" == result.text
                   for i in others), (old, new, result.tier)
