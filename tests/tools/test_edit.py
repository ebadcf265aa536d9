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
