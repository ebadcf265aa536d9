"""edit on real files: each matching tier, refusals that teach, and what the file keeps."""

from __future__ import annotations

import os
import stat

import pytest

from agent.toolrun import format_result
from tools.base import PathOutsideRepoError, ToolContext, ToolError, call

SRC = (
    "def greet(name):\n"
    "    msg = 'hello ' + name\n"
    "    print(msg)\n"
    "    return msg\n"
    "\n"
    "def part(x):\n"
    "    if x:\n"
    "        return 1\n"
    "    return 2\n"
)


@pytest.fixture
def ctx(git_repo):
    (git_repo / "m.py").write_text(SRC)
    return ToolContext(git_repo)


def _edit(ctx, **a):
    return call("edit", {"path": "m.py", **a}, ctx)


def test_exact_replace_returns_diff(ctx, git_repo):
    r = _edit(ctx, old="    print(msg)\n", new="    log(msg)\n")
    assert r.match == "exact" and r.first_line == 3 and r.replacements == 1
    assert "-    print(msg)\n+    log(msg)\n" in r.diff and r.diff.startswith("--- a/m.py")
    assert (git_repo / "m.py").read_text() == SRC.replace("print(msg)", "log(msg)")


def test_ambiguous_lists_lines_and_replace_all(ctx, git_repo):
    with pytest.raises(ToolError, match=r"matches 2 places \(exact match\), at lines 4, 9"):
        _edit(ctx, old="    return", new="    yield")
    assert (git_repo / "m.py").read_text() == SRC
    r = _edit(ctx, old="    return", new="    yield", replace_all=True)
    # "    return" inside the deeper indentation of line 8 is not a place of its own
    assert r.replacements == 2 and (git_repo / "m.py").read_text().count("yield") == 2


def test_trailing_whitespace_tier(ctx, git_repo):
    r = _edit(ctx, old="    msg = 'hello ' + name   \n    print(msg) \n", new="    pass\n")
    assert r.match == "trailing-whitespace"
    assert "    pass\n    return msg" in (git_repo / "m.py").read_text()


def test_indentation_tier_shifts_the_replacement(ctx, git_repo):
    r = _edit(ctx, old="if x:\n    return 1\nreturn 2", new="if x:\n    return 10\nreturn 20")
    assert r.match == "indentation"
    assert (git_repo / "m.py").read_text().endswith(
        "    if x:\n        return 10\n    return 20\n")


def test_unicode_tier_keeps_ascii(ctx, git_repo):
    r = _edit(ctx, old="    msg = \u2018hello \u2019 + name\n",
              new="    msg = \u2018hi \u2019 + name\n")
    assert r.match == "unicode"
    assert "    msg = 'hi ' + name\n" in (git_repo / "m.py").read_text()


def test_elided_middle(ctx, git_repo):
    r = _edit(ctx, old="def greet(name):\n    ...\n    return msg\n",
              new="def greet(name, loud=False):\n    ...\n    return msg.upper()\n")
    assert r.match == "elision"
    text = (git_repo / "m.py").read_text()
    assert text.startswith("def greet(name, loud=False):\n    msg = 'hello ' + name\n")
    assert "    return msg.upper()\n\ndef part" in text


def test_not_found_suggests_closest_lines(ctx, git_repo):
    with pytest.raises(ToolError, match=r"Did you mean lines 2–3") as e:
        _edit(ctx, old="    msg = 'hello ' + nam\n    print(mesg)\n", new="x\n")
    assert "    print(msg)" in str(e.value)
    assert (git_repo / "m.py").read_text() == SRC


def test_already_present(ctx):
    with pytest.raises(ToolError, match="already present at line 3"):
        _edit(ctx, old="    show(msg)\n", new="    print(msg)\n")


def test_bad_inputs(ctx, git_repo):
    with pytest.raises(ToolError, match="`old` is empty"):
        _edit(ctx, old="", new="x")
    with pytest.raises(ToolError, match="the same"):
        _edit(ctx, old="def", new="def")
    with pytest.raises(PathOutsideRepoError):
        call("edit", {"path": "../m.py", "old": "a", "new": "b"}, ctx)
    with pytest.raises(ToolError, match="does not exist"):
        call("edit", {"path": "nope.py", "old": "a", "new": "b"}, ctx)
    (git_repo / "b.bin").write_bytes(b"a\0b")
    with pytest.raises(ToolError, match="binary"):
        call("edit", {"path": "b.bin", "old": "a", "new": "b"}, ctx)


def test_refuses_a_file_changed_since_read(ctx, git_repo):
    call("read", {"path": "m.py"}, ctx)
    _edit(ctx, old="print(msg)", new="log(msg)")  # our own edit refreshes the stamp
    _edit(ctx, old="log(msg)", new="show(msg)")
    (git_repo / "m.py").write_text(SRC + "# touched by someone else\n")
    with pytest.raises(ToolError, match="changed since you last read it"):
        _edit(ctx, old="def part", new="def piece")
    call("read", {"path": "m.py"}, ctx)
    assert _edit(ctx, old="def part", new="def piece").match == "exact"


def test_keeps_crlf_latin1_no_final_newline_and_mode(ctx, git_repo):
    p = git_repo / "w.txt"
    p.write_bytes(b"caf\xe9\r\n  na\xefve\r\nend")
    os.chmod(p, 0o755)
    r = call("edit", {"path": "w.txt", "old": "  naïve\nend", "new": "  naïf\nend"}, ctx)
    assert r.match == "exact"
    assert p.read_bytes() == b"caf\xe9\r\n  na\xeff\r\nend"
    assert stat.S_IMODE(p.stat().st_mode) == 0o755
    call("edit", {"path": "w.txt", "old": "café\r\n", "new": "cafe\r\n"}, ctx)  # CRLF in old
    assert p.read_bytes() == b"cafe\r\n  na\xeff\r\nend"
    with pytest.raises(ToolError, match="cannot store"):
        call("edit", {"path": "w.txt", "old": "end", "new": "\u2603"}, ctx)
    assert not [x for x in os.listdir(git_repo) if x.endswith(".tmp")]


def test_utf8_bom_is_kept(ctx, git_repo):
    p = git_repo / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbfa = 1\n")
    call("edit", {"path": "bom.txt", "old": "a = 1", "new": "a = 2"}, ctx)
    assert p.read_bytes() == b"\xef\xbb\xbfa = 2\n"


def test_fuzzy_ambiguity_is_refused(git_repo):
    (git_repo / "d.py").write_text("if a:\n    x = 1\nif b:\n        x = 1\n")
    with pytest.raises(ToolError, match="2 places"):
        call("edit", {"path": "d.py", "old": "  x = 1  \n", "new": "x = 2\n"},
             ToolContext(git_repo))


def test_stale_context_line_keeps_the_files_line(ctx, git_repo):
    (git_repo / "m.py").write_text(SRC.replace("print(msg)", "print(msg, flush=True)"))
    old = "def greet(name):\n    msg = 'hello ' + name\n    print(msg)\n    return msg\n"
    new = "def greet(name):\n    msg = 'hi ' + name\n    print(msg)\n    return msg\n"
    r = _edit(ctx, old=old, new=new)
    assert r.match == "stale-line"
    assert (git_repo / "m.py").read_text().startswith(
        "def greet(name):\n    msg = 'hi ' + name\n    print(msg, flush=True)\n    return msg\n")
    # the model is told which line was stale, what it expected and what the file keeps
    seen = format_result(r)  # the text the model reads
    assert "line 3 of the file did not match" in seen
    assert "had:\n    print(msg)\nThe file has, and keeps:\n    print(msg, flush=True)\n" in seen
    assert "`read` it before you edit it again" in seen


def test_stale_line_note_with_line_numbers_from_read(ctx, git_repo):
    shown = call("read", {"path": "m.py", "end_line": 4}, ToolContext(git_repo)).content
    (git_repo / "m.py").write_text(SRC.replace("print(msg)", "print(msg, end='')"))
    r = _edit(ctx, old=shown, new=shown.replace("'hello '", "'hi '"))
    assert r.match == "line-numbers+stale-line"
    assert "line 3 of the file" in r.note and "print(msg, end='')" in r.note
    assert (git_repo / "m.py").read_text().startswith("def greet(name):\n    msg = 'hi ' + name\n")


def test_no_note_when_old_matched_as_it_is(ctx):
    r = _edit(ctx, old="    print(msg)\n", new="    log(msg)\n")
    assert r.note is None and "did not match" not in format_result(r)


def test_stale_line_that_the_edit_changes_is_refused(ctx, git_repo):
    (git_repo / "m.py").write_text(SRC.replace("print(msg)", "print(msg, flush=True)"))
    old = "def greet(name):\n    msg = 'hello ' + name\n    print(msg)\n    return msg\n"
    new = "def greet(name):\n    msg = 'hello ' + name\n    log(msg)\n    return msg\n"
    with pytest.raises(ToolError, match="Did you mean lines 1–4"):
        _edit(ctx, old=old, new=new)


def test_line_numbers_copied_from_read_are_ignored(ctx, git_repo):
    shown = call("read", {"path": "m.py", "start_line": 2, "end_line": 3}, ctx).content
    new = shown.replace("print(msg)", "log(msg)")
    r = _edit(ctx, old=shown, new=new)
    assert r.match == "line-numbers+exact"
    assert (git_repo / "m.py").read_text() == SRC.replace("print(msg)", "log(msg)")


def test_line_numbers_must_agree_with_the_place(git_repo):
    (git_repo / "t.tsv").write_text("id\tname\n1\tx\n2\ty\n3\tx\n")
    ctx = ToolContext(git_repo)
    with pytest.raises(ToolError):  # "x" at line 7 does not exist: no guessing
        call("edit", {"path": "t.tsv", "old": "     7\tx\n", "new": "     7\tz\n"}, ctx)
    r = call("edit", {"path": "t.tsv", "old": "     4\t3\tx\n", "new": "     4\t3\tz\n"}, ctx)
    assert r.match == "line-numbers+exact"
    assert (git_repo / "t.tsv").read_text() == "id\tname\n1\tx\n2\ty\n3\tz\n"


def test_a_short_new_text_is_not_taken_as_already_present(ctx):
    with pytest.raises(ToolError) as e:
        _edit(ctx, old="    nothing like this\n", new="msg\n")
    assert "already present" not in str(e.value)


def test_overlapping_occurrences_are_ambiguous(git_repo):
    """Found by the property test: `old` occurred once starting mid-line and once overlapping
    it on whole lines; counting non-overlapping hits called it unique and edited mid-line."""
    from tools.edit_match import plan

    text = "x = 1\n    x = 1\nx = 1\nx = 1\n"
    with pytest.raises(ToolError, match="lines 2, 3"):
        plan(text, "x = 1\nx = 1\n", "x = 1\nx = 1  # changed\n")


# --- issue 20, item 16: two wrong applications and their classes ---------------------------

F16 = "def f():\n    a = 1\n\n    b = 2\n"


def _plan(text, old, new):
    from tools.edit_match import plan

    return plan(text, old, new)


def test_old_ending_in_a_whitespace_line_keeps_the_files_blank_line():
    """16a as found: `old` ran on into the blank line after it (as "    "), `new` ended at the
    line's end; the line tiers split the two into lines differently and deleted the blank."""
    r = _plan(F16, "    a = 1\n    ", "    a = 10\n")
    assert r.text == "def f():\n    a = 10\n\n    b = 2\n"


def test_old_ending_in_the_next_lines_indentation_keeps_it():
    """16a's exact sibling: `old` ends inside the next line's indentation, `new` does not."""
    text = "def f():\n    a = 1\n    b = 2\n"
    assert _plan(text, "    a = 1\n    ", "    a = 10\n").text == (
        "def f():\n    a = 10\n    b = 2\n")
    assert _plan(text, "    a = 1\n    ", "").text == "def f():\n    b = 2\n"


# 16a's class: whatever `old` and `new` end with after their last line (a line break or not,
# whitespace after it or not), an edit of whole lines replaces exactly those lines, at every
# tier alike (the exact tier, and the line tiers reached through a trailing space).
ENDINGS_OLD = ["", "\n", "\n    ", "\n  "]
ENDINGS_NEW = ["", "\n", "\n    ", "\n\t"]


@pytest.mark.parametrize("old_end", ENDINGS_OLD)
@pytest.mark.parametrize("new_end", ENDINGS_NEW)
@pytest.mark.parametrize("text", [F16, "def f():\n    a = 1\n    b = 2\n", "    a = 1\n"])
@pytest.mark.parametrize("drift", ["", " "])  # a trailing space in `old`: the line tiers
def test_endings_of_old_and_new_never_move_a_line(text, old_end, new_end, drift):
    if old_end.strip("\n") and not text.startswith("def"):
        return  # `old` would reach past the end of the file
    intended = text.replace("    a = 1\n", "    a = 10\n")
    try:
        r = _plan(text, "    a = 1" + drift + old_end, "    a = 10" + new_end)
    except ToolError:
        assert old_end.strip("\n") and not new_end  # the one reading left open (a join?)
        return
    assert r.text == intended, (old_end, new_end, r.tier)


def test_old_and_new_differing_only_in_their_endings_change_nothing():
    with pytest.raises(ToolError, match="differ only in how they end"):
        _plan(F16, "    a = 1\n    ", "    a = 1\n")


def test_a_whitespace_tail_then_content_in_new_is_refused():
    """`old` takes the next line's indentation, `new` ends without a line break: that is a
    deliberate join of two lines or a slip, and they give different files."""
    with pytest.raises(ToolError, match="line break"):
        _plan("f(a,\n  b)\n", "f(a,\n  ", "f(a, ")


def test_a_match_starting_after_the_indentation_indents_the_inserted_lines():
    """16b as found: `old` quoted a line without its indentation (so it matched exactly, from
    after the indentation) and `new` added a line written at column 0, as `old` was."""
    r = _plan("def f():\n    a = 1\n    b = 2\n", "a = 1\n", "a = 1\nc = 3\n")
    assert r.text == "def f():\n    a = 1\n    c = 3\n    b = 2\n"


MID = "def f():\n    a = 1\n    b = 2\n"


@pytest.mark.parametrize("text,old,new,want", [
    # 16b's class: any match starting mid-line, its `new` spanning lines
    (MID, "a = 1", "a = 1\nc = 3", "def f():\n    a = 1\n    c = 3\n    b = 2\n"),
    (MID, "a = 1\n", "c = 0\na = 1\n", "def f():\n    c = 0\n    a = 1\n    b = 2\n"),
    (MID, "1\n", "1\nc = 3\n", "def f():\n    a = 1\n    c = 3\n    b = 2\n"),
    ("def f():\n    a = g(x, y)\n    b\n", "g(x, y)", "g(\n    x,\n    y,\n)",
     "def f():\n    a = g(\n        x,\n        y,\n    )\n    b\n"),
    # `new` already indented at least as deep as the line: written in the file's columns
    (MID, "a = 1", "a = 1\n    c = 3", "def f():\n    a = 1\n    c = 3\n    b = 2\n"),
    # `old`'s own later lines show the file's columns: `new`'s are taken as written
    (MID, "a = 1\n    b = 2", "a = 1\n    c = 3\n    b = 2",
     "def f():\n    a = 1\n    c = 3\n    b = 2\n"),
])
def test_mid_line_matches_put_new_lines_in_the_lines_frame(text, old, new, want):
    r = _plan(text, old, new)
    assert r.text == want and r.tier == "exact"


def test_a_mid_line_match_inside_a_block_that_closes_is_indented():
    text = "    if a:\n        x = 1\n    else:\n        x = 2\n"
    r = _plan(text, "x = 1", "x = 1\ny = 2")
    assert r.text == "    if a:\n        x = 1\n        y = 2\n    else:\n        x = 2\n"


def test_a_mid_line_match_where_a_dedent_is_plausible_is_refused():
    """After a block's last line, lines at column 0 may mean "here, at column 0" (a new
    top-level function) or "at the line's indentation": both readings fit, so refuse."""
    text = "def f():\n    return 1\n\n\ndef h():\n    pass\n"
    with pytest.raises(ToolError, match="indentation"):
        _plan(text, "return 1", "return 1\n\n\ndef g():\n    pass")


# --- issue 20, item 17: tolerances that resolve refusals, each unique or refused -------------

def test_old_lacking_a_blank_line_the_file_has(ctx, git_repo):
    old = SRC.replace("\n\n", "\n").split("    if x")[0]  # through "def part(x):\n"
    r = _edit(ctx, old=old, new=old.replace("def part(x)", "def part(y)"))
    assert r.match == "blank-lines" and "line 5" in r.note
    assert (git_repo / "m.py").read_text() == SRC.replace("def part(x)", "def part(y)")


def test_old_adding_a_blank_line_the_file_lacks(ctx, git_repo):
    old = "    msg = 'hello ' + name\n\n    print(msg)\n"
    r = _edit(ctx, old=old, new=old.replace("print", "log"))
    assert r.match == "blank-lines"
    assert (git_repo / "m.py").read_text() == SRC.replace("print", "log")


def test_blank_lines_ambiguous_or_at_an_insertion_point_are_refused():
    text = "a = 1\n\nb = 2\nc\na = 1\nb = 2\n\nd\n"
    with pytest.raises(ToolError, match=r"2 places \(blank-lines"):
        _plan(text, "a = 1\n\n\nb = 2\n", "a = 1\n\n\nb = 3\n")
    # between a and b the file has a blank line: before or after the inserted line?
    with pytest.raises(ToolError, match="blank line"):
        _plan("x\na = 1\n\nb = 2\n", "x\na = 1\nb = 2\n", "x\na = 1\nnew = 0\nb = 2\n")


TABBED = "int f(void)\n{\n\tif (a) {\n\t\tb = 1;\n\t  c = 2;\n\t}\n\treturn 0;\n}\n"


@pytest.mark.parametrize("width", [2, 4, 8])
def test_tabs_written_as_spaces(width):
    old = "\tif (a) {\n\t\tb = 1;\n\t  c = 2;\n".expandtabs(width)
    new = "\tif (a) {\n\t\tb = 10;\n\t\td = 3;\n\t  c = 2;\n".expandtabs(width)
    if width == 2:  # "\t\t" and "\t  " are both 4 columns: which is the new line's?
        with pytest.raises(ToolError, match=r"column 4, .* \('\\t  ' and '\\t\\t'\)"):
            _plan(TABBED, old, new)
        return
    r = _plan(TABBED, old, new)
    assert r.tier == "tabs" and r.tolerance["tab"] == width
    assert r.text == TABBED.replace("\t\tb = 1;\n", "\t\tb = 10;\n\t\td = 3;\n")


def test_a_new_line_takes_the_indentation_of_old_lines_at_its_column():
    """Found by fuzzing real headers: a block mixing tab and space indentation, written at tab
    width 2; a line added at the 6-space line's column is indented as that line, not as 6
    columns of tabs at width 2."""
    text = "\tif (a)\n      b;\n"
    r = _plan(text, "  if (a)\n      b;\n", "  if (a)\n      b;\n      c;\n")
    assert r.text == "\tif (a)\n      b;\n      c;\n"


def test_tab_width_that_changes_the_result_is_refused():
    # 8 spaces for one tab: width 8; or width 4 and `old` 4 columns deeper; or width 2...
    text = "\ty = 1;\n\tw = 2;\n"
    old = "        y = 1;\n"
    assert _plan(text, old, "        y = 3;\n").text == "\ty = 3;\n\tw = 2;\n"  # all agree
    with pytest.raises(ToolError, match="tab widths 4, 8, 2"):  # 12 columns: where?
        _plan(text, old, "        y = 1;\n            z = 2;\n")
    # a line at column 0 pins the shift to 0, so the width to 8
    r = _plan("x\n\ty = 1;\n", "x\n        y = 1;\n", "x\n        y = 1;\n            z = 2;\n")
    assert r.text == "x\n\ty = 1;\n\t    z = 2;\n" and r.tolerance["tab"] == 8


def test_tabs_two_places_are_refused():
    with pytest.raises(ToolError, match=r"2 places \(tabs"):
        _plan("\ta = 1;\nx\n\ta = 1;\n", "    a = 1;\n", "    a = 2;\n")


def test_a_shift_that_stopped_at_column_0():
    """`old` dedented by 4, but a line at column 0 (a preprocessor line) cannot go further."""
    text = "struct s {\n    int a;\n#ifdef X\n    int b;\n#endif\n};\n"
    old = "int a;\n#ifdef X\nint b;\n#endif\n"
    r = _plan(text, old, old.replace("int b;", "long b;"))
    assert r.tier == "indentation"
    assert r.text == text.replace("int b;", "long b;")
    with pytest.raises(ToolError, match="column 0"):  # a new line at column 0: where?
        _plan(text, old, old.replace("int b;\n", "int b;\nint c;\n"))


def test_tolerances_are_told_in_the_note(git_repo):
    (git_repo / "t.c").write_text(TABBED)
    ctx = ToolContext(git_repo)
    r = call("edit", {"path": "t.c", "old": "        b = 1;\n", "new": "        b = 2;\n"}, ctx)
    assert r.match == "tabs" and "tabs" in r.note
    assert "\t\tb = 2;\n" in (git_repo / "t.c").read_text()
    r = call("edit", {"path": "t.c", "old": "return 0;", "new": "return 0;\nreturn 1;"}, ctx)
    assert r.match == "exact" and "indentation" in r.note
    assert (git_repo / "t.c").read_text().endswith("\treturn 0;\n\treturn 1;\n}\n")
