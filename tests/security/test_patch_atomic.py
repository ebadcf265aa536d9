"""apply_patch is all or nothing for every error: a bad path is a ToolError found while
planning, before anything is written, and any exception while writing puts back every file
and removes every directory the patch made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tools.patch as patch_mod
from tools.base import ToolContext, ToolError, call


def _tree(root: Path) -> dict[str, bytes | str | None]:
    """Every path under root: a file's bytes, a link's text, None for a directory."""
    out: dict[str, bytes | str | None] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else None
    return out


def _apply(repo: Path, body: str):
    return call("apply_patch", {"patch": f"*** Begin Patch\n{body}*** End Patch"},
                ToolContext(repo))


UPDATE_README = "*** Update File: README.md\n@@\n-hello\n+HELLO\n"
BAD_PATHS = {
    "a file as a parent": ("README.md/child.txt", "is a file"),
    "a NUL byte": ("a\0b.txt", "NUL"),
    "an over-long name": ("n" * 256 + ".txt", "too long"),
    "an over-long name in bytes": ("é" * 200, "too long"),
    "an over-long path": ("d/" * 2100 + "x.txt", "too long"),
    "a lone surrogate": ("bad\udc00\ud800.txt", "file name"),
}


@pytest.mark.parametrize("what", list(BAD_PATHS))
@pytest.mark.parametrize("verb", ["add", "move", "update", "delete"])
def test_a_bad_path_is_refused_while_planning(git_repo, what, verb):
    path, message = BAD_PATHS[what]
    op = {"add": f"*** Add File: {path}\n+x\n",
          "move": f"*** Update File: README.md\n*** Move to: {path}\n@@\n-hello\n+moved\n",
          "update": f"*** Update File: {path}\n@@\n-x\n+y\n",
          "delete": f"*** Delete File: {path}\n"}[verb]
    (git_repo / "a.txt").write_text("a\n")
    before = _tree(git_repo)
    with pytest.raises(ToolError, match=message) as err:
        _apply(git_repo, "*** Update File: a.txt\n@@\n-a\n+A\n" + op)
    assert "no file was changed" in str(err.value)
    assert _tree(git_repo) == before


def test_a_path_under_a_file_this_patch_adds_is_refused(git_repo):
    before = _tree(git_repo)
    with pytest.raises(ToolError, match="'new' is a file"):
        _apply(git_repo, UPDATE_README + "*** Add File: new\n+x\n*** Add File: new/child\n+y\n")
    assert _tree(git_repo) == before


def test_a_file_over_a_directory_this_patch_makes_is_refused(git_repo):
    before = _tree(git_repo)
    with pytest.raises(ToolError, match="'d' is a directory"):
        _apply(git_repo, UPDATE_README + "*** Add File: d/x\n+x\n*** Add File: d\n+y\n")
    assert _tree(git_repo) == before


def test_deleting_a_file_then_adding_under_its_name_works(git_repo):
    (git_repo / "f").write_text("f\n")
    _apply(git_repo, "*** Delete File: f\n*** Add File: f/inner.txt\n+i\n")
    assert (git_repo / "f" / "inner.txt").read_text() == "i\n"


@pytest.mark.parametrize("verb", ["add", "move"])
def test_a_directory_is_not_a_file_path(git_repo, verb):
    (git_repo / "d").mkdir()
    (git_repo / "d" / "x").write_text("x\n")
    before = _tree(git_repo)
    op = ("*** Add File: d\n+x\n" if verb == "add"
          else "*** Update File: README.md\n*** Move to: d\n@@\n-hello\n+x\n")
    with pytest.raises(ToolError, match="'d' is a directory"):
        _apply(git_repo, UPDATE_README.replace("README.md", "d/x").replace("hello", "x") + op)
    assert _tree(git_repo) == before


@pytest.mark.parametrize("exc", [KeyboardInterrupt, MemoryError, RuntimeError,
                                 UnicodeEncodeError("utf-8", "x", 0, 1, "boom"),
                                 OSError(28, "No space left on device")])
def test_any_exception_while_writing_restores_everything(git_repo, monkeypatch, exc):
    (git_repo / "a.txt").write_text("a\n")
    before = _tree(git_repo)
    real, calls = patch_mod.atomic_write, []

    def failing(path, data, *rest, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise exc
        return real(path, data, *rest, **kw)

    monkeypatch.setattr(patch_mod, "atomic_write", failing)
    body = (UPDATE_README + "*** Add File: new/deep/x.txt\n+x\n"
            "*** Update File: a.txt\n@@\n-a\n+A\n")
    expected = ToolError if isinstance(exc, OSError) else (
        exc if isinstance(exc, type) else type(exc))
    with pytest.raises(expected):
        _apply(git_repo, body)
    assert _tree(git_repo) == before
    assert len(calls) >= 3  # the third write failed (restores write too)


def test_a_failing_restore_step_does_not_stop_the_others(git_repo, monkeypatch):
    """Putting back one file may fail too; the others are still put back."""
    (git_repo / "a.txt").write_text("a\n")
    before = _tree(git_repo)
    real, calls = patch_mod.atomic_write, []

    def failing(path, data, *rest, **kw):
        calls.append(path)
        if len(calls) in (3, 4):  # the third write, and the first restore after it
            raise OSError(5, "I/O error")
        return real(path, data, *rest, **kw)

    monkeypatch.setattr(patch_mod, "atomic_write", failing)
    with pytest.raises(ToolError, match="'a.txt' could not be restored"):
        _apply(git_repo, UPDATE_README + "*** Update File: a.txt\n@@\n-a\n+A\n"
                         "*** Add File: b.txt\n+b\n")
    after = _tree(git_repo)
    assert after["README.md"] == before["README.md"] and after["a.txt"] == b"A\n"
    assert "b.txt" not in after
