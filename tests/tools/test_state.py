"""The .flashcode/ directory is hidden from git status, and only in the repository it belongs to."""

from __future__ import annotations

import subprocess

from tools.state import private_dir


def _status(repo):
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                          capture_output=True, text=True, check=True).stdout


def test_excluded_at_the_top_level(git_repo):
    d = private_dir(git_repo, "cache")
    (d / "x").write_text("x")
    assert d == git_repo / ".flashcode" / "cache" and _status(git_repo) == ""
    private_dir(git_repo, "spill")  # idempotent: one line in the exclude file
    exclude = (git_repo / ".git" / "info" / "exclude").read_text()
    assert exclude.count(".flashcode/") == 1


def test_a_subfolder_does_not_touch_the_enclosing_repository(git_repo):
    sub = git_repo / "vendor" / "lib"
    sub.mkdir(parents=True)
    exclude = git_repo / ".git" / "info" / "exclude"
    before = exclude.read_text() if exclude.exists() else None
    private_dir(sub, "cache")
    assert (exclude.read_text() if exclude.exists() else None) == before


def test_outside_git(tmp_path):
    assert private_dir(tmp_path, "a").is_dir()
