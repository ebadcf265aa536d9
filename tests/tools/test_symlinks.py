"""Symlinks inside the repository: apply_patch's Add, Delete and Move act on the link itself and
never on the file it points to; Update (and `edit`) edit that file and keep the link. Every
test uses real links in a real git repository, and `git status` says what changed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tools.base import PathOutsideRepoError, ToolContext, ToolError, call


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout


def _status(repo: Path) -> set[str]:
    """`git status --porcelain` lines after staging everything (so renames and type changes
    show), e.g. {"D  link", "M  target.txt"}."""
    _git(repo, "add", "-A")
    return set(_git(repo, "status", "--porcelain").splitlines())


def _patch(repo: Path, body: str):
    return call("apply_patch", {"patch": f"*** Begin Patch\n{body}*** End Patch"},
                ToolContext(repo))


@pytest.fixture
def repo(git_repo):
    """target.txt, link -> target.txt (relative), sub/deep.txt, sub/up -> ../target.txt,
    dirlink -> sub, all committed."""
    (git_repo / "target.txt").write_text("one\ntwo\nthree\n")
    (git_repo / "sub").mkdir()
    (git_repo / "sub" / "deep.txt").write_text("deep\n")
    os.symlink("target.txt", git_repo / "link")
    os.symlink("../target.txt", git_repo / "sub" / "up")
    os.symlink("sub", git_repo / "dirlink")
    _git(git_repo, "add", "-A")
    _git(git_repo, "commit", "-qm", "links")
    return git_repo


def test_delete_of_a_link_removes_the_link_not_its_target(repo):
    r = _patch(repo, "*** Delete File: link\n")
    assert not os.path.lexists(repo / "link")
    assert (repo / "target.txt").read_text() == "one\ntwo\nthree\n"
    assert _status(repo) == {"D  link"}
    assert (r.changes[0].path, r.changes[0].action, r.changes[0].link_to) == (
        "link", "delete", "target.txt")
    assert "-target.txt" in r.diff  # the diff shows the link's text, as git does


def test_delete_of_a_link_to_a_directory_keeps_the_directory(repo):
    _patch(repo, "*** Delete File: dirlink\n")
    assert not os.path.lexists(repo / "dirlink")
    assert (repo / "sub" / "deep.txt").read_text() == "deep\n"
    assert _status(repo) == {"D  dirlink"}


def test_delete_of_a_dangling_link_inside_the_repo(repo):
    os.symlink("gone.txt", repo / "dangling")
    _git(repo, "add", "dangling")
    _git(repo, "commit", "-qm", "dangling")
    _patch(repo, "*** Delete File: dangling\n")
    assert not os.path.lexists(repo / "dangling")
    assert _status(repo) == {"D  dangling"}


def test_a_link_leading_out_is_still_refused_and_kept(repo, tmp_path):
    (tmp_path / "secret.txt").write_text("s\n")
    os.symlink(tmp_path / "secret.txt", repo / "out")
    for body in ("*** Delete File: out\n", "*** Add File: out\n+x\n",
                 "*** Update File: out\n-s\n+t\n"):
        with pytest.raises(PathOutsideRepoError):
            _patch(repo, body)
    assert os.readlink(repo / "out") == str(tmp_path / "secret.txt")
    assert (tmp_path / "secret.txt").read_text() == "s\n"


def test_a_file_under_a_linked_directory_is_the_real_file(repo):
    """Only the last component is taken as a link: directories on the way are followed."""
    _patch(repo, "*** Delete File: dirlink/deep.txt\n")
    assert not (repo / "sub" / "deep.txt").exists() and os.path.islink(repo / "dirlink")
    assert _status(repo) == {"D  sub/deep.txt"}


def test_update_through_a_link_edits_the_target_and_keeps_the_link(repo):
    ctx = ToolContext(repo)
    call("read", {"path": "link"}, ctx)
    r = call("apply_patch", {"patch": "*** Begin Patch\n*** Update File: link\n one\n-two\n"
                                      "+TWO\n*** End Patch"}, ctx)
    assert os.readlink(repo / "link") == "target.txt"
    assert (repo / "target.txt").read_text() == "one\nTWO\nthree\n"
    assert _status(repo) == {"M  target.txt"}
    assert (r.changes[0].path, r.changes[0].action, r.changes[0].link_to) == (
        "link", "update", "target.txt")
    assert "+++ b/target.txt" in r.diff


def test_update_through_a_dangling_link_says_so(repo):
    os.symlink("gone.txt", repo / "dangling")
    with pytest.raises(ToolError, match="'dangling' is a symlink to 'gone.txt', which is missing"):
        _patch(repo, "*** Update File: dangling\n-a\n+b\n")
    assert os.readlink(repo / "dangling") == "gone.txt" and not (repo / "gone.txt").exists()


def test_move_of_a_link_moves_the_link_and_keeps_it_pointing_at_the_target(repo):
    mtime = (repo / "target.txt").stat().st_mtime_ns
    r = _patch(repo, "*** Update File: link\n*** Move to: other/moved\n@@\n one\n")
    assert not os.path.lexists(repo / "link")
    assert os.readlink(repo / "other" / "moved") == "../target.txt"  # relative, re-aimed
    assert (repo / "other" / "moved").read_text() == "one\ntwo\nthree\n"
    assert (repo / "target.txt").read_text() == "one\ntwo\nthree\n"
    assert (repo / "target.txt").stat().st_mtime_ns == mtime  # not even rewritten
    assert _status(repo) == {"D  link", "A  other/moved"}  # new text: too unlike for a rename
    assert "120000" in _git(repo, "ls-files", "-s", "other/moved")  # git stores a link
    assert (r.changes[0].action, r.changes[0].moved_to) == ("move", "other/moved")


def test_move_of_a_link_within_its_directory_keeps_its_text(repo):
    _patch(repo, "*** Update File: sub/up\n*** Move to: sub/up2\n@@\n one\n")
    assert os.readlink(repo / "sub" / "up2") == "../target.txt"
    assert _status(repo) == {"R  sub/up -> sub/up2"}


def test_move_of_a_link_with_edits_edits_the_target_and_moves_the_link(repo):
    _patch(repo, "*** Update File: sub/up\n*** Move to: up\n one\n-two\n+2\n")
    assert os.readlink(repo / "up") == "target.txt"
    assert (repo / "target.txt").read_text() == "one\n2\nthree\n"
    assert _status(repo) == {"M  target.txt", "D  sub/up", "A  up"}


def test_move_of_a_link_onto_its_own_target_leaves_the_edited_file(repo):
    _patch(repo, "*** Update File: link\n*** Move to: target.txt\n-three\n+3\n")
    assert not os.path.lexists(repo / "link")
    assert not os.path.islink(repo / "target.txt")
    assert (repo / "target.txt").read_text() == "one\ntwo\n3\n"
    assert _status(repo) == {"D  link", "M  target.txt"}


def test_move_onto_an_existing_link_replaces_the_link_not_its_target(repo):
    (repo / "a.txt").write_text("alpha\n")
    _patch(repo, "*** Update File: a.txt\n*** Move to: link\n-alpha\n+ALPHA\n")
    assert not os.path.islink(repo / "link") and (repo / "link").read_text() == "ALPHA\n"
    assert (repo / "target.txt").read_text() == "one\ntwo\nthree\n"
    assert _status(repo) == {"T  link"}


def test_add_over_a_link_replaces_the_link_with_a_file(repo):
    r = _patch(repo, "*** Add File: link\n+fresh\n")
    assert not os.path.islink(repo / "link") and (repo / "link").read_text() == "fresh\n"
    assert (repo / "target.txt").read_text() == "one\ntwo\nthree\n"
    assert _status(repo) == {"T  link"}
    assert r.changes[0].link_to == "target.txt"


def test_unified_rename_of_a_link_from_git(repo):
    _git(repo, "mv", "link", "link2")
    diff = _git(repo, "diff", "--cached", "-M")
    _git(repo, "reset", "-q", "--hard")
    assert "rename from link" in diff and os.path.islink(repo / "link")
    _patch_text = call("apply_patch", {"patch": diff}, ToolContext(repo))
    assert _patch_text.changes[0].action == "move"
    assert os.readlink(repo / "link2") == "target.txt" and not os.path.lexists(repo / "link")
    assert _status(repo) == {"R  link -> link2"}


def test_a_failed_write_restores_the_link(repo, monkeypatch):
    import tools.patch as patch_mod

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(patch_mod, "atomic_write", full_disk)
    with pytest.raises(ToolError, match="every file was restored"):
        _patch(repo, "*** Delete File: link\n*** Add File: sub/up\n+x\n")
    assert os.readlink(repo / "link") == "target.txt"
    assert os.readlink(repo / "sub" / "up") == "../target.txt"
    assert _status(repo) == set()


def test_a_failed_patch_leaves_links_alone(repo):
    with pytest.raises(ToolError, match="no file was changed"):
        _patch(repo, "*** Delete File: link\n*** Update File: target.txt\n-nope\n+x\n")
    assert os.readlink(repo / "link") == "target.txt"
    assert _status(repo) == set()


def test_delete_link_and_update_target_in_one_patch(repo):
    _patch(repo, "*** Delete File: link\n*** Update File: target.txt\n-one\n+ONE\n")
    assert (repo / "target.txt").read_text() == "ONE\ntwo\nthree\n"
    assert _status(repo) == {"D  link", "M  target.txt"}


def test_edit_through_a_link_edits_the_target_and_keeps_the_link(repo):
    r = call("edit", {"path": "sub/up", "old": "two\n", "new": "deux\n"}, ToolContext(repo))
    assert r.path == "target.txt"  # the result names the file that changed
    assert os.readlink(repo / "sub" / "up") == "../target.txt"
    assert _status(repo) == {"M  target.txt"}


def test_resolve_without_following_names_the_link(repo):
    ctx = ToolContext(repo)
    assert ctx.resolve("link") == repo.resolve() / "target.txt"
    assert ctx.resolve("link", follow=False) == repo.resolve() / "link"
    assert ctx.resolve("dirlink/up", follow=False) == repo.resolve() / "sub" / "up"
    assert ctx.rel(repo / "link", follow=False) == "link"
    assert ctx.rel(repo / "link") == "target.txt"


def _staged_diff(repo: Path) -> str:
    """What `git diff --cached` prints for the staged change; the tree is then put back."""
    _git(repo, "add", "-A")
    diff = _git(repo, "diff", "--cached", "-M")
    _git(repo, "reset", "-q", "--hard")
    return diff


def test_git_diffs_that_make_retarget_and_retype_links(repo):
    """git writes a link as mode 120000 with its text as the content: the patch makes links,
    not files holding a path, and changes a link's text, not the file it points to."""
    os.symlink("sub/deep.txt", repo / "new")
    os.unlink(repo / "sub" / "up")
    os.symlink("deep.txt", repo / "sub" / "up")
    os.unlink(repo / "link")
    (repo / "link").write_text("now a file\n")
    diff = _staged_diff(repo)
    assert "new file mode 120000" in diff and "index" in diff and "120000" in diff
    call("apply_patch", {"patch": diff}, ToolContext(repo))
    assert os.readlink(repo / "new") == "sub/deep.txt"
    assert os.readlink(repo / "sub" / "up") == "deep.txt"
    assert not os.path.islink(repo / "link") and (repo / "link").read_text() == "now a file\n"
    assert (repo / "target.txt").read_text() == "one\ntwo\nthree\n"
    assert _status(repo) == {"A  new", "M  sub/up", "T  link"}


def test_a_git_diff_making_a_link_out_of_the_repo_is_refused(repo):
    os.symlink("../../elsewhere", repo / "out")
    diff = _staged_diff(repo)
    with pytest.raises(PathOutsideRepoError):
        call("apply_patch", {"patch": diff}, ToolContext(repo))
    assert not os.path.lexists(repo / "out")


def test_a_git_link_diff_on_a_regular_file_is_refused(repo):
    os.unlink(repo / "link")
    os.symlink("sub/deep.txt", repo / "link")
    diff = _staged_diff(repo)
    os.unlink(repo / "link")
    (repo / "link").write_text("target.txt")
    with pytest.raises(ToolError, match="as a symlink \\(mode 120000\\), but it is not one"):
        call("apply_patch", {"patch": diff}, ToolContext(repo))
    assert (repo / "link").read_text() == "target.txt"


def test_a_target_changed_since_read_through_the_link_is_refused(repo):
    ctx = ToolContext(repo)
    call("read", {"path": "link"}, ctx)
    (repo / "target.txt").write_text("one\ntwo\nthree\nfour\n")
    with pytest.raises(ToolError, match="'target.txt' changed since you last read it"):
        call("apply_patch", {"patch": "*** Begin Patch\n*** Update File: link\n-one\n+1\n"
                                      "*** End Patch"}, ctx)
