"""Checkpoints record the working tree without touching the user's index, stash or HEAD;
restore brings back files changed or deleted by any means, and can itself be undone."""

from __future__ import annotations

import subprocess

import pytest

from agent import checkpoints
from agent.checkpoints import CheckpointError


def git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout


def user_state(repo) -> tuple[str, ...]:
    """Everything of the user's that checkpoints must leave alone."""
    return (git(repo, "rev-parse", "HEAD"), git(repo, "ls-files", "-s", "--debug"),
            git(repo, "stash", "list"), git(repo, "branch", "-a"),
            git(repo, "diff", "--cached"))


@pytest.fixture
def repo(git_repo):
    (git_repo / ".gitignore").write_text("build/\n")
    (git_repo / "src").mkdir()
    (git_repo / "src" / "a.py").write_text("a = 1\n")
    git(git_repo, "add", ".")
    git(git_repo, "commit", "-qm", "files")
    (git_repo / "README.md").write_text("staged by the user\n")
    git(git_repo, "add", "README.md")  # a staged change of the user's
    (git_repo / "notes.txt").write_text("untracked notes\n")  # untracked, not ignored
    (git_repo / "build").mkdir()
    (git_repo / "build" / "out.bin").write_text("ignored\n")
    return git_repo


def test_restore_brings_back_a_file_deleted_through_the_shell(repo):
    before = user_state(repo)
    cp = checkpoints.create(repo, "before shell: rm -rf src notes.txt")
    subprocess.run("rm -rf src notes.txt && echo new > extra.txt && echo changed > README.md",
                   shell=True, cwd=repo, check=True)
    done = checkpoints.restore(repo, cp)
    assert (repo / "src" / "a.py").read_text() == "a = 1\n"
    assert (repo / "notes.txt").read_text() == "untracked notes\n"
    assert (repo / "README.md").read_text() == "staged by the user\n"
    assert not (repo / "extra.txt").exists()
    assert (repo / "build" / "out.bin").read_text() == "ignored\n"
    assert user_state(repo) == before
    assert dict((p, s) for s, p in done.changes) == {
        "src/a.py": "A", "notes.txt": "A", "README.md": "M", "extra.txt": "D"}
    assert "removed extra.txt" in done.summary() and "flashcode undo" in done.summary()


def test_an_undo_can_be_undone(repo):
    cp = checkpoints.create(repo, "one")
    (repo / "src" / "a.py").write_text("a = 2\n")
    done = checkpoints.restore(repo, cp)
    assert (repo / "src" / "a.py").read_text() == "a = 1\n"
    checkpoints.restore(repo, done.safety)
    assert (repo / "src" / "a.py").read_text() == "a = 2\n"


def test_history_and_find(repo):
    first = checkpoints.create(repo, "first")
    (repo / "x.txt").write_text("x\n")
    second = checkpoints.create(repo, "second")
    items = checkpoints.history(repo)
    assert [c.label for c in items[:2]] == ["second", "first"]
    assert checkpoints.find(repo, 0) == items[0]
    assert checkpoints.find(repo, first.commit[:8]).tree == first.tree
    assert second.tree != first.tree
    with pytest.raises(CheckpointError, match="out of range"):
        checkpoints.find(repo, 7)


def test_no_checkpoints_is_a_clear_error(git_repo):
    assert checkpoints.history(git_repo) == []
    with pytest.raises(CheckpointError, match="no checkpoints"):
        checkpoints.find(git_repo, 0)


def test_repository_without_commits(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "f.txt").write_text("1\n")
    cp = checkpoints.create(tmp_path, "start")
    (tmp_path / "f.txt").unlink()
    checkpoints.restore(tmp_path, cp)
    assert (tmp_path / "f.txt").read_text() == "1\n"


def test_restore_keeps_the_file_mode(repo):
    script = repo / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    cp = checkpoints.create(repo, "x")
    script.unlink()
    checkpoints.restore(repo, cp)
    assert script.stat().st_mode & 0o111


def test_undo_command_lists_and_restores(repo):
    from tests.conftest import run_flashcode

    out = run_flashcode("undo", "--list", "-C", str(repo))
    assert out.returncode == 0 and "No checkpoints yet" in out.stdout
    checkpoints.create(repo, "before edit src/a.py")
    (repo / "src" / "a.py").write_text("broken\n")
    out = run_flashcode("undo", "--list", "-C", str(repo))
    assert "before edit src/a.py" in out.stdout
    out = run_flashcode("undo", "-C", str(repo))
    assert out.returncode == 0, out.stderr
    assert "reverted src/a.py" in out.stdout
    assert (repo / "src" / "a.py").read_text() == "a = 1\n"
    out = run_flashcode("undo", "zzzz", "-C", str(repo))
    assert out.returncode == 1 and "No single checkpoint" in out.stderr
