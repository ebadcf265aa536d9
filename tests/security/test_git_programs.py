"""flashcode's own git commands never run a program the repository's git config names: the
fsmonitor hook, clean/smudge/process filters, external diff and textconv drivers, hooks and the
commit-signing program. The repository below names all of them, each touching a canary file
outside it; every git command flashcode runs on such a repository must leave no canary."""

from __future__ import annotations

import subprocess

import pytest

from agent import checkpoints, hunks, proposals
from agent.cli.fix import dirty_paths
from tools import base, gitcmd
from tools.base import ToolContext


@pytest.fixture
def hostile(git_repo, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    touch = lambda name: f"touch {marks / name}; cat"
    git = lambda *a: subprocess.run(["git", *a], cwd=git_repo, check=True, capture_output=True)
    (git_repo / "a.txt").write_text("one\n")
    git("add", ".")
    git("commit", "-qm", "a")
    hooks = git_repo / ".git" / "hooks"
    for hook in ("pre-commit", "post-commit", "commit-msg", "post-checkout", "pre-auto-gc"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {marks / hook}\n")
        (hooks / hook).chmod(0o755)
    for key, value in {"core.fsmonitor": f"touch {marks / 'fsmonitor'}",
                       "filter.evil.clean": touch("clean"), "filter.evil.smudge": touch("smudge"),
                       "filter.evil.process": f"touch {marks / 'process'}",
                       "diff.evil.command": f"touch {marks / 'extdiff'}",
                       "diff.evil.textconv": touch("textconv"),
                       "diff.external": f"touch {marks / 'external'}",
                       "commit.gpgSign": "true", "gpg.program": f"touch {marks / 'gpg'}",
                       "core.pager": f"touch {marks / 'pager'}"}.items():
        git("config", key, value)
    (git_repo / ".gitattributes").write_text("* filter=evil diff=evil\n")
    return git_repo, marks


def test_checkpoints_and_undo_run_no_configured_program(hostile):
    repo, marks = hostile
    (repo / "a.txt").write_text("two\n")
    cp = checkpoints.create(repo, "before")
    (repo / "a.txt").write_text("three\n")
    checkpoints.diff(repo, cp.tree, checkpoints.snapshot(repo))
    checkpoints.restore(repo, cp)
    dirty_paths(repo)
    assert (repo / "a.txt").read_text() == "two\n"
    assert sorted(p.name for p in marks.iterdir()) == []


def test_the_git_tools_run_no_configured_program(hostile):
    repo, marks = hostile
    ctx = ToolContext(repo, sandbox="off")
    (repo / "a.txt").write_text("two\n")
    for op in ("status", "diff", "log", "show"):
        base.call("git", {"op": op}, ctx)
    base.call("git_change", {"op": "commit", "message": "m", "all_tracked": True}, ctx)
    assert sorted(p.name for p in marks.iterdir()) == []


def test_hunk_review_and_proposals_run_no_configured_program(hostile, tmp_path):
    repo, marks = hostile
    (repo / "a.txt").write_text("two\n")
    diff = gitcmd.run(repo, "diff", "--no-ext-diff").stdout
    hunks.apply(repo, diff, reverse=True)
    p = proposals.start(repo, "a task", tmp_path / "proposals")
    proposals.commit_all(p, "work")
    proposals.finish(repo, p, "summary", tmp_path / "proposals")
    proposals.diff(repo, p)
    assert sorted(x.name for x in marks.iterdir()) == []
