"""JsonPrefix, the incremental JSON recognizer behind `string="false"` constraints: it accepts
exactly the prefixes of JSON texts and calls complete exactly what json.loads accepts."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.chat.json_prefix import JsonPrefix

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids,
                                                              max_size=3),
    max_leaves=8)


def _run(text: str) -> tuple[bool, bool]:
    j = JsonPrefix()
    ok = all(j.feed(c) for c in text)
    return ok, ok and j.complete()


@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from([None, 0, 2]), st.booleans())
def test_every_prefix_of_real_json_is_accepted(value, indent, ascii_only):
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    j = JsonPrefix()
    for i, c in enumerate(text):
        assert j.feed(c), (text, i)
        if i < len(text) - 1 and not isinstance(value, int | float):
            assert not j.complete() or text[i + 1:].strip() == ""
    assert j.complete()


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='{}[]:,"\\ -+.0123456789eEtrufalsn\nxu', max_size=14))
def test_complete_agrees_with_json_loads(text):
    ok, complete = _run(text)
    try:
        json.loads(text)
        loads = True
    except ValueError:
        loads = False
    assert complete == loads, text
    if loads:
        assert ok


def test_schema_type_limits_the_first_character_and_integers():
    j = JsonPrefix(first_chars="[")
    assert not j.feed("1") and JsonPrefix(first_chars="[").feed("[")
    j = JsonPrefix(first_chars="-0123456789", integer=True)
    assert all(j.feed(c) for c in "-12") and not j.clone().feed(".") and j.complete()
    nested = JsonPrefix(first_chars="[", integer=True)
    assert all(nested.feed(c) for c in "[1.5e3]") and nested.complete()
    assert JsonPrefix().next_chars() >= set('"[{-0tfn ')
