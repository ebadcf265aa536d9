"""`flashcode propose` / `review` / `proposals` end to end: subprocesses, real git repos and
worktrees, a replayed model. The user's tree is dirty throughout and must stay as it is."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent import checkpoints, exitcodes
from agent.cli import propose
from tests.agent.test_headless import turn, write_recording
from tests.conftest import run_flashcode

LINES = [f"line {i}" for i in range(1, 41)]
TASK = "Shout lines 2 and 38, add new.py"


def git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout


def user_state(repo) -> tuple:
    """Everything of the user's that propose must leave byte for byte as it was."""
    return (git(repo, "rev-parse", "HEAD"), git(repo, "rev-parse", "--abbrev-ref", "HEAD"),
            git(repo, "status", "--porcelain", "--untracked-files=all"),
            git(repo, "stash", "list"), git(repo, "rev-parse", "stash@{0}"), git(repo, "diff"),
            (repo / ".git" / "index").read_bytes(),
            {p.name: p.read_bytes() for p in repo.iterdir() if p.is_file()})


@pytest.fixture
def env(isolated_env, tmp_path):
    return {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data"), "FLASHCODE_SANDBOX": "off"}


@pytest.fixture
def repo(git_repo):
    (git_repo / "big.txt").write_text("\n".join(LINES) + "\n")
    git(git_repo, "add", ".")
    git(git_repo, "commit", "-qm", "big")
    (git_repo / "big.txt").write_text("stashed by the user\n")
    git(git_repo, "stash", "-q")  # a stash entry, which must stay as it is
    (git_repo / "README.md").write_text("user's uncommitted work\n")  # a dirty tree
    (git_repo / "staged.txt").write_text("staged by the user\n")
    git(git_repo, "add", "staged.txt")
    (git_repo / "notes.txt").write_text("untracked\n")
    return git_repo


WORK = [
    turn("", [("edit", {"path": "big.txt", "old": "line 2\n", "new": "LINE TWO\n"})]),
    turn("", [("edit", {"path": "big.txt", "old": "line 38\n", "new": "LINE 38\n"}),
              ("apply_patch", {"patch": "*** Begin Patch\n*** Add File: new.py\n+print('new')\n"
                                        "*** End Patch"})]),
    turn("Shouted two lines and added new.py."),
]
MESSAGE = "Shout lines 2 and 38 and add new.py\n\nThe task asked for louder lines."


def run_propose(repo, env, model, *extra):
    out = run_flashcode("propose", TASK, "--json", "--model", model, "-C", str(repo), *extra,
                        env=env)
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events and events[-1]["type"] == "proposal", out.stderr
    return out, events[-1]


def test_propose_leaves_the_user_state_and_makes_branch_commits_and_patch(repo, env, tmp_path):
    before = user_state(repo)
    model = write_recording(tmp_path / "rec.jsonl", [*WORK, turn(f"```\n{MESSAGE}\n```")])
    out, r = run_propose(repo, env, model)
    assert out.returncode == exitcodes.OK, out.stderr
    assert user_state(repo) == before
    assert r["branch"] == "flashcode/shout-lines-2-and-38-add-new-py"
    assert git(repo, "log", "--format=%B", "-1", r["branch"]).strip() == MESSAGE
    assert git(repo, "rev-list", "--count", f"HEAD..{r['branch']}").strip() == "1"
    assert git(repo, "show", f"{r['branch']}:new.py") == "print('new')\n"
    patch = Path(r["patch"]).read_text()
    assert "Subject: [PATCH] Shout lines 2 and 38 and add new.py" in patch
    assert "+LINE TWO" in patch and "+LINE 38" in patch
    assert "big.txt" in r["summary"] and "Shouted two lines" in r["summary"]
    assert Path(r["worktree"]).is_dir() and not str(r["worktree"]).startswith(str(repo))
    # the agent's checkpoints went to the worktree's own ref: undo here has nothing of them
    assert checkpoints.history(repo) == []
    assert len(checkpoints.history(Path(r["worktree"]))) == 3


def test_review_applies_exactly_the_accepted_hunks_of_a_proposal(repo, env, tmp_path):
    model = write_recording(tmp_path / "rec.jsonl", WORK)
    out, r = run_propose(repo, env, model)
    assert out.returncode == exitcodes.OK, out.stderr
    index = (repo / ".git" / "index").read_bytes()
    shown = run_flashcode("review", r["branch"], "--show", "-C", str(repo), env=env)
    assert "1. big.txt @@ -1" in shown.stdout and "2. big.txt @@ -35" in shown.stdout
    assert "3. new.py" in shown.stdout
    assert "+LINE TWO" in shown.stdout and "-line 2" in shown.stdout  # each hunk's lines too
    done = run_flashcode("review", r["branch"], "--accept", "2,3", "-C", str(repo), env=env)
    assert done.returncode == 0, done.stderr
    text = (repo / "big.txt").read_text()
    assert "LINE 38" in text and "line 2\n" in text and "LINE TWO" not in text
    assert (repo / "new.py").read_text() == "print('new')\n"
    assert (repo / "README.md").read_text() == "user's uncommitted work\n"
    assert (repo / "notes.txt").read_text() == "untracked\n"
    assert (repo / ".git" / "index").read_bytes() == index


def test_the_commit_message_falls_back_to_the_task(repo, env, tmp_path):
    model = write_recording(tmp_path / "rec.jsonl", WORK)  # no turn left for the message
    out, r = run_propose(repo, env, model)
    assert out.returncode == exitcodes.OK, out.stderr
    assert git(repo, "log", "--format=%B", "-1", r["branch"]).strip() == TASK


def test_no_changes_removes_the_worktree_and_branch(repo, env, tmp_path):
    before = user_state(repo)
    model = write_recording(tmp_path / "rec.jsonl", [turn("Nothing needs changing.")])
    out, r = run_propose(repo, env, model)
    assert out.returncode == exitcodes.NOT_FIXED and r["status"] == "no_changes"
    assert git(repo, "branch", "--list", "flashcode/*") == ""
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    assert user_state(repo) == before


def test_proposals_lists_and_discards(repo, env, tmp_path):
    model = write_recording(tmp_path / "rec.jsonl", WORK)
    _, r = run_propose(repo, env, model)
    listed = run_flashcode("proposals", "-C", str(repo), env=env)
    assert r["branch"] in listed.stdout and r["patch"] in listed.stdout
    gone = run_flashcode("proposals", "--discard", r["branch"], "-C", str(repo), env=env)
    assert gone.returncode == 0, gone.stderr
    assert git(repo, "branch", "--list", "flashcode/*") == ""
    assert not Path(r["worktree"]).exists() and not Path(r["patch"]).exists()
    assert (repo / "README.md").read_text() == "user's uncommitted work\n"


def test_plain_output_names_branch_patch_and_review_hint(repo, env, tmp_path):
    shell = turn("", [("shell", {"command": "echo checked && seq 1 5000"})])  # spills output
    model = write_recording(tmp_path / "rec.jsonl", [shell, *WORK, turn(MESSAGE)])
    out = run_flashcode("propose", TASK, "--model", model, "-C", str(repo), "--yes", env=env)
    assert out.returncode == 0, out.stderr
    files = git(repo, "show", "--format=", "--name-only", "flashcode/shout-lines-2-and-38-add-"
                "new-py").split()
    assert files == ["big.txt", "new.py"]  # flashcode's own spill files are not proposed
    assert "Proposal flashcode/shout-lines-2-and-38-add-new-py (1 commit(s))" in out.stdout
    assert "patch:" in out.stdout and ".patch" in out.stdout
    assert "flashcode review flashcode/shout-lines-2-and-38-add-new-py" in out.stdout


@pytest.mark.parametrize("text, expected", [
    ("```\nFix it\n\nbecause\n```", "Fix it\n\nbecause"),
    ('"Add a flag"', "Add a flag"),
    ("   \n", ""),
])
def test_clean_message(text, expected):
    assert propose.clean_message(text) == expected


def test_a_long_task_is_cut_to_a_subject_with_the_whole_task_below():
    task = "word " * 30
    msg = propose.fallback_message(task)
    subject, _, body = msg.partition("\n\n")
    assert len(subject) <= propose.SUBJECT_MAX and body == task.strip()


def test_review_keeps_the_users_uncommitted_edit_in_the_same_file(repo, env, tmp_path):
    model = write_recording(tmp_path / "rec.jsonl", WORK)
    _, r = run_propose(repo, env, model)
    mine = (repo / "big.txt").read_text().replace("line 20\n", "line 20, edited by me\n")
    (repo / "big.txt").write_text(mine)
    done = run_flashcode("review", r["branch"], "--accept", "all", "-C", str(repo), env=env)
    assert done.returncode == 0, done.stderr
    text = (repo / "big.txt").read_text()
    assert "line 20, edited by me\n" in text and "LINE TWO" in text and "LINE 38" in text
    # a hunk that clashes with the user's edit is refused whole, changing nothing
    (repo / "big.txt").write_text(mine.replace("line 2\n", "line 2, mine too\n"))
    before = (repo / "big.txt").read_text()
    clash = run_flashcode("review", r["branch"], "--accept", "1", "-C", str(repo), env=env)
    assert clash.returncode == exitcodes.NOT_FIXED and "Nothing was changed" in clash.stderr
    assert (repo / "big.txt").read_text() == before
