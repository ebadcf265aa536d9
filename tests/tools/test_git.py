"""git and git_change on real repos: what they show, what they create, what they refuse."""

from __future__ import annotations

import subprocess

import pytest

from tools.base import PathOutsideRepoError, ToolContext, ToolError, call


def _git(repo, *a):
    return subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def ctx(git_repo):
    (git_repo / "a.py").write_text("x = 1\ny = 2\n")
    _git(git_repo, "add", "a.py")
    _git(git_repo, "commit", "-qm", "add a")
    return ToolContext(git_repo)


def test_status_diff_log_show_blame(ctx, git_repo):
    (git_repo / "a.py").write_text("x = 1\ny = 3\n")
    (git_repo / "new.txt").write_text("n\n")
    st = call("git", {"op": "status"}, ctx)
    assert {(e["xy"], e["path"]) for e in st.data["entries"]} == {(" M", "a.py"),
                                                                 ("??", "new.txt")}
    assert st.data["branch"].startswith("main")
    assert "-y = 2\n+y = 3" in call("git", {"op": "diff"}, ctx).output
    assert call("git", {"op": "diff", "staged": True}, ctx).output == ""
    log = call("git", {"op": "log", "n": 5}, ctx)
    assert [c["subject"] for c in log.data] == ["add a", "init"]
    assert call("git", {"op": "show", "rev": "HEAD~1", "paths": ["README.md"]}, ctx).output \
        == "hello\n"
    assert "add a" in call("git", {"op": "show"}, ctx).output
    blame = call("git", {"op": "blame", "paths": ["a.py"], "lines": [2, 2]}, ctx).output
    assert "Not Committed Yet" in blame and "y = 3" in blame and blame.count("\n") == 1
    blame = call("git", {"op": "blame", "paths": ["a.py"], "rev": "HEAD"}, ctx).output
    assert "Test" in blame and "y = 2" in blame


def test_read_only_tool_never_creates(ctx, git_repo):
    r = call("git", {"op": "branch", "name": "sneaky"}, ctx)
    assert "main" in r.output and "sneaky" not in _git(git_repo, "branch")
    with pytest.raises(ToolError, match="Bad arguments"):
        call("git", {"op": "commit", "message": "m"}, ctx)


def test_commit_only_named_paths(ctx, git_repo):
    (git_repo / "a.py").write_text("x = 10\ny = 2\n")
    (git_repo / "b.py").write_text("b\n")
    (git_repo / "README.md").write_text("user's unfinished work\n")
    r = call("git_change", {"op": "commit", "message": "tweak", "paths": ["a.py", "b.py"]}, ctx)
    assert r.data["sha"] == _git(git_repo, "rev-parse", "HEAD").strip()
    assert _git(git_repo, "show", "--name-only", "--format=", "HEAD").split() == ["a.py", "b.py"]
    assert (git_repo / "README.md").read_text() == "user's unfinished work\n"
    assert _git(git_repo, "status", "--porcelain") == " M README.md\n"


def test_commit_refusals(ctx, git_repo):
    with pytest.raises(ToolError, match="needs a `message`"):
        call("git_change", {"op": "commit", "paths": ["a.py"]}, ctx)
    with pytest.raises(ToolError, match="Say what to commit"):
        call("git_change", {"op": "commit", "message": "m"}, ctx)
    with pytest.raises(ToolError, match="Nothing to commit"):
        call("git_change", {"op": "commit", "message": "m", "all_tracked": True}, ctx)
    with pytest.raises(PathOutsideRepoError):
        call("git_change", {"op": "commit", "message": "m", "paths": ["../x"]}, ctx)


def test_branch_and_worktree_create_never_overwrite(ctx, git_repo):
    call("git_change", {"op": "branch", "name": "feature"}, ctx)
    assert "feature" in _git(git_repo, "branch", "--list")
    with pytest.raises(ToolError, match="already exists"):
        call("git_change", {"op": "branch", "name": "main", "start_point": "HEAD~1"}, ctx)
    assert _git(git_repo, "log", "-1", "--format=%s", "main").strip() == "add a"
    r = call("git_change", {"op": "worktree", "name": "wt1"}, ctx)
    assert r.data["path"] == ".flashcode/worktrees/wt1"
    assert (git_repo / ".flashcode" / "worktrees" / "wt1" / "a.py").exists()
    assert "wt1" in call("git", {"op": "worktree"}, ctx).output
    assert _git(git_repo, "status", "--porcelain") == ""  # .flashcode/ is excluded


def test_option_injection_is_refused(ctx):
    with pytest.raises(ToolError, match="not a revision"):
        call("git", {"op": "log", "rev": "--output=/tmp/x"}, ctx)
    with pytest.raises(ToolError, match="not a valid name"):
        call("git_change", {"op": "branch", "name": "-D"}, ctx)


def test_not_a_repo(tmp_path):
    with pytest.raises(ToolError, match="not a git repository"):
        call("git", {"op": "status"}, ToolContext(tmp_path))
