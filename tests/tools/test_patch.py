"""apply_patch: the Codex conformance scenarios, unified diffs, and all-or-nothing failure."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CONFORMANCE
from tools.base import PathOutsideRepoError, ToolContext, ToolError, call

SCENARIOS = CONFORMANCE / "apply-patch" / "scenarios"
# Codex keeps the operations before a failure; ours is all or nothing (the tree stays as it was).
ALL_OR_NOTHING_DIFFERS = {"015_failure_after_partial_success_leaves_changes"}


def _tree(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        out[p.relative_to(root).as_posix()] = p.read_bytes() if p.is_file() else None
    return out


def _scenarios():
    return sorted(p.name for p in SCENARIOS.iterdir() if p.is_dir()) if SCENARIOS.is_dir() else []


@pytest.mark.parametrize("name", _scenarios())
def test_conformance_scenario(name, tmp_path):
    case, work = SCENARIOS / name, tmp_path / "work"
    if (case / "input").is_dir():
        shutil.copytree(case / "input", work)
    else:
        work.mkdir()
    before = _tree(work)
    try:
        call("apply_patch", {"patch": (case / "patch.txt").read_text()}, ToolContext(work))
    except ToolError:
        pass  # the harness ignores the exit status and compares trees
    expected = before if name in ALL_OR_NOTHING_DIFFERS else _tree(case / "expected")
    assert _tree(work) == expected


def test_there_are_23_scenarios():
    assert len(_scenarios()) == 23


def test_scenario_015_differs_on_purpose(tmp_path):
    """Codex leaves created.txt behind; we change nothing when any operation fails."""
    case = SCENARIOS / "015_failure_after_partial_success_leaves_changes"
    assert (case / "expected" / "created.txt").exists()
    with pytest.raises(ToolError, match="(?s)missing.txt' does not exist.*no file was changed"):
        call("apply_patch", {"patch": (case / "patch.txt").read_text()}, ToolContext(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_patch_failing_midway_changes_nothing(git_repo):
    (git_repo / "a.txt").write_text("one\ntwo\n")
    (git_repo / "b.txt").write_text("three\n")
    patch = ("*** Begin Patch\n*** Update File: a.txt\n@@\n-one\n+ONE\n"
             "*** Delete File: b.txt\n*** Add File: new/dir/c.txt\n+c\n"
             "*** Update File: a.txt\n@@\n-not there\n+x\n*** End Patch")
    with pytest.raises(ToolError, match="Chunk 1 of 'a.txt'.*not found"):
        call("apply_patch", {"patch": patch}, ToolContext(git_repo))
    assert (git_repo / "a.txt").read_text() == "one\ntwo\n"
    assert (git_repo / "b.txt").exists() and not (git_repo / "new").exists()


def test_write_failure_midway_restores_everything(git_repo, monkeypatch):
    import tools.patch as patch_mod

    (git_repo / "a.txt").write_text("one\n")
    (git_repo / "b.txt").write_text("two\n")
    os.chmod(git_repo / "a.txt", 0o640)
    real, calls = patch_mod.atomic_write, []

    def flaky(path, data, *rest):  # the disk fills up on the third write
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(path, data, *rest)

    monkeypatch.setattr(patch_mod, "atomic_write", flaky)
    patch = ("*** Begin Patch\n*** Update File: a.txt\n-one\n+ONE\n*** Add File: z/y/new.txt\n+n\n"
             "*** Update File: b.txt\n-two\n+TWO\n*** End Patch")
    with pytest.raises(ToolError, match="every file was restored"):
        call("apply_patch", {"patch": patch}, ToolContext(git_repo))
    assert (git_repo / "a.txt").read_text() == "one\n" and not (git_repo / "z").exists()
    assert (git_repo / "b.txt").read_text() == "two\n"
    assert os.stat(git_repo / "a.txt").st_mode & 0o777 == 0o640


def test_unified_diff_from_git(git_repo):
    src = "".join(f"line {i}\n" for i in range(1, 30))
    (git_repo / "f.txt").write_text(src)
    (git_repo / "gone.txt").write_text("bye\n")
    subprocess.run(["git", "add", "."], cwd=git_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "f"], cwd=git_repo, check=True)
    changed = src.replace("line 3\n", "line three\n").replace("line 25\n", "")
    (git_repo / "f.txt").write_text(changed)
    (git_repo / "gone.txt").unlink()
    (git_repo / "added.txt").write_text("fresh\n")
    (git_repo / "empty.txt").write_text("")
    subprocess.run(["git", "add", "-A"], cwd=git_repo, check=True)
    diff = subprocess.run(["git", "diff", "--cached"], cwd=git_repo, check=True,
                          capture_output=True, text=True).stdout
    subprocess.run(["git", "reset", "-q", "--hard"], cwd=git_repo, check=True)
    r = call("apply_patch", {"patch": diff}, ToolContext(git_repo))
    assert {(c.path, c.action) for c in r.changes} == {
        ("f.txt", "update"), ("gone.txt", "delete"), ("added.txt", "add"), ("empty.txt", "add")}
    assert (git_repo / "empty.txt").read_text() == ""
    assert (git_repo / "f.txt").read_text() == changed
    assert not (git_repo / "gone.txt").exists()
    assert (git_repo / "added.txt").read_text() == "fresh\n"


def test_unified_diff_no_newline_and_rename(git_repo):
    (git_repo / "n.txt").write_text("a\nb")
    diff = ("diff --git a/n.txt b/m.txt\nsimilarity index 50%\nrename from n.txt\n"
            "rename to m.txt\n--- a/n.txt\n+++ b/m.txt\n@@ -1,2 +1,2 @@\n a\n-b\n"
            "\\ No newline at end of file\n+c\n\\ No newline at end of file\n")
    call("apply_patch", {"patch": diff}, ToolContext(git_repo))
    assert (git_repo / "m.txt").read_text() == "a\nc" and not (git_repo / "n.txt").exists()


def test_update_keeps_crlf(git_repo):
    (git_repo / "w.txt").write_bytes(b"a\r\nb\r\n")
    patch = "*** Begin Patch\n*** Update File: w.txt\n a\n-b\n+c\n*** End Patch"
    call("apply_patch", {"patch": patch}, ToolContext(git_repo))
    assert (git_repo / "w.txt").read_bytes() == b"a\r\nc\r\n"


@pytest.mark.parametrize("path", ["../evil.txt", "/tmp/evil.txt"])
def test_escaping_paths_are_refused(git_repo, path):
    patch = f"*** Begin Patch\n*** Add File: {path}\n+x\n*** End Patch"
    with pytest.raises(PathOutsideRepoError):
        call("apply_patch", {"patch": patch}, ToolContext(git_repo))


def test_garbage_is_refused(git_repo):
    with pytest.raises(ToolError, match="Begin Patch"):
        call("apply_patch", {"patch": "please change foo to bar"}, ToolContext(git_repo))


def test_refuses_a_file_changed_since_read(git_repo):
    ctx = ToolContext(git_repo)
    (git_repo / "a.txt").write_text("one\n")
    call("read", {"path": "a.txt"}, ctx)
    (git_repo / "a.txt").write_text("one\ntwo\n")
    patch = "*** Begin Patch\n*** Update File: a.txt\n-one\n+ONE\n*** End Patch"
    with pytest.raises(ToolError, match="changed since you last read it"):
        call("apply_patch", {"patch": patch}, ctx)
    call("read", {"path": "a.txt"}, ctx)
    call("apply_patch", {"patch": patch}, ctx)
    assert (git_repo / "a.txt").read_text() == "ONE\ntwo\n"


def test_heredoc_wrapper_and_scope_line(git_repo):
    (git_repo / "s.py").write_text("class A:\n    def f(self):\n        return 1\n\n"
                                   "class B:\n    def f(self):\n        return 1\n")
    patch = ("apply_patch <<'EOF'\n*** Begin Patch\n*** Update File: s.py\n@@ class B:\n"
             "     def f(self):\n-        return 1\n+        return 2\n*** End Patch\nEOF\n")
    call("apply_patch", {"patch": patch}, ToolContext(git_repo))
    assert (git_repo / "s.py").read_text().endswith("class B:\n    def f(self):\n"
                                                    "        return 2\n")
    assert "class A:\n    def f(self):\n        return 1\n" in (git_repo / "s.py").read_text()
