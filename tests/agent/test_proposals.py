"""Proposals live in their own worktree and branch; review applies exactly the accepted hunks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent import hunks, proposals
from agent.hunks import HunkError


def git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout


def user_state(repo) -> tuple[str, ...]:
    return (git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain"),
            git(repo, "ls-files", "-s"), git(repo, "stash", "list"),
            git(repo, "rev-parse", "--abbrev-ref", "HEAD"), (repo / ".git" / "index").read_bytes())


LINES = [f"line {i}" for i in range(1, 41)]


@pytest.fixture
def repo(git_repo):
    (git_repo / "big.txt").write_text("\n".join(LINES) + "\n")
    git(git_repo, "add", ".")
    git(git_repo, "commit", "-qm", "big")
    (git_repo / "README.md").write_text("user's uncommitted work\n")  # dirty tree
    return git_repo


def make_proposal(repo, tmp_path):
    p = proposals.start(repo, "Change lines 2 and 38!", base_dir=tmp_path / "data")
    wt = Path(p.worktree)
    text = (wt / "big.txt").read_text().replace("line 2\n", "LINE TWO\n")
    (wt / "big.txt").write_text(text.replace("line 38\n", "LINE THIRTY-EIGHT\n"))
    (wt / "new.py").write_text("print('new')\n")
    assert proposals.commit_all(p, "Change two lines and add new.py") is not None
    return proposals.finish(repo, p, "two lines changed", base_dir=tmp_path / "data")


def test_propose_leaves_the_users_state_byte_for_byte(repo, tmp_path):
    before = user_state(repo)
    p = make_proposal(repo, tmp_path)
    assert user_state(repo) == before
    assert p.branch == "flashcode/change-lines-2-and-38"
    assert "Subject: [PATCH] Change two lines and add new.py" in open(p.patch).read()
    assert git(repo, "log", "--format=%s", p.branch).splitlines()[0] == \
        "Change two lines and add new.py"
    again = proposals.start(repo, "Change lines 2 and 38!", base_dir=tmp_path / "data")
    assert again.branch == "flashcode/change-lines-2-and-38-2"


def test_review_applies_exactly_the_accepted_hunks(repo, tmp_path):
    p = make_proposal(repo, tmp_path)
    files = hunks.parse(proposals.diff(repo, p))
    by_path = {f.path: i for i, f in enumerate(files)}
    big = by_path["big.txt"]
    assert len(files[big].hunks) == 2
    patch = hunks.select(files, {(big, 1), (by_path["new.py"], 0)})  # reject the first hunk
    hunks.apply(repo, patch)
    text = (repo / "big.txt").read_text()
    assert "LINE THIRTY-EIGHT" in text and "line 2\n" in text and "LINE TWO" not in text
    assert (repo / "new.py").read_text() == "print('new')\n"
    assert (repo / "README.md").read_text() == "user's uncommitted work\n"
    assert git(repo, "diff", "--cached") == ""  # the index was not touched


def test_a_hunk_that_no_longer_applies_changes_nothing(repo, tmp_path):
    p = make_proposal(repo, tmp_path)
    (repo / "big.txt").write_text("completely different\n")
    files = hunks.parse(proposals.diff(repo, p))
    every = {(fi, hi) for fi, f in enumerate(files) for hi in range(max(1, len(f.hunks)))}
    with pytest.raises(HunkError, match="Nothing was changed"):
        hunks.apply(repo, hunks.select(files, every))
    assert not (repo / "new.py").exists()


def test_list_and_discard(repo, tmp_path):
    p = make_proposal(repo, tmp_path)
    assert [x.branch for x in proposals.list_all(repo, tmp_path / "data")] == [p.branch]
    proposals.discard(repo, proposals.load(repo, p.branch, tmp_path / "data"), tmp_path / "data")
    assert proposals.list_all(repo, tmp_path / "data") == []
    assert p.branch not in git(repo, "branch", "--list")
    assert "flashcode" not in git(repo, "worktree", "list")
    with pytest.raises(proposals.ProposalError, match="No proposal named"):
        proposals.load(repo, p.branch, tmp_path / "data")


def test_review_and_proposals_commands(repo, tmp_path, isolated_env):
    from tests.conftest import run_flashcode

    env = {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data")}
    p = proposals.start(repo, "tweak", base_dir=tmp_path / "data")
    (Path(p.worktree) / "big.txt").write_text("\n".join(LINES).replace("line 40", "END") + "\n")
    proposals.commit_all(p, "tweak the end")
    proposals.finish(repo, p, "one line", base_dir=tmp_path / "data")
    out = run_flashcode("proposals", "-C", str(repo), env=env)
    assert "flashcode/tweak" in out.stdout and "task: tweak" in out.stdout
    out = run_flashcode("review", "--show", "-C", str(repo), env=env)
    assert out.returncode == 0 and "1. big.txt @@ -37,4 +37,4 @@ (+1 -1)" in out.stdout
    out = run_flashcode("review", "-C", str(repo), env=env)  # no tty, no --accept
    assert out.returncode == 2 and "--accept" in out.stdout
    out = run_flashcode("review", "--accept", "5", "-C", str(repo), env=env)
    assert out.returncode == 1 and "out of range" in out.stderr
    out = run_flashcode("review", "--accept", "all", "-C", str(repo), env=env)
    assert out.returncode == 0, out.stderr
    assert (repo / "big.txt").read_text().endswith("END\n")
    out = run_flashcode("proposals", "--discard", "flashcode/tweak", "-C", str(repo), env=env)
    assert out.returncode == 0 and "Discarded" in out.stdout
