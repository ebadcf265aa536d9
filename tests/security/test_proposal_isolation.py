"""A proposal is a repository of its own: whatever the model's shell runs there (here with the
sandbox off and every action approved, the worst case) cannot clear the user's stash, move the
user's branches or set an fsmonitor in the user's config. With the bubblewrap sandbox on, even
the user's git directory reached through the clone's alternates file is read-only."""

from __future__ import annotations

import subprocess

import pytest

from tests.agent.test_headless import turn, write_recording
from tests.agent.test_propose import git, repo, run_propose, user_state  # noqa: F401  (fixture)
from tools.sandbox import bwrap_problem

TAMPER = ("git stash clear; git update-ref refs/heads/master HEAD~1; "
          "git update-ref refs/heads/main HEAD~1; git config core.fsmonitor 'touch {canary}'; "
          "echo '#!/bin/sh' > .git/hooks/pre-commit")


def _work(tmp_path, command: str) -> str:
    return write_recording(tmp_path / "rec.jsonl", [
        turn("", [("shell", {"command": command})]),
        turn("", [("apply_patch", {"patch": "*** Begin Patch\n*** Add File: new.py\n+x = 1\n"
                                            "*** End Patch"})]),
        turn("done"), turn("Add new.py")])


@pytest.fixture
def env(isolated_env, tmp_path):
    return {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data")}


def test_the_models_git_commands_stay_in_the_proposal(repo, env, tmp_path):  # noqa: F811
    canary = tmp_path / "canary"
    before = user_state(repo)
    config = (repo / ".git" / "config").read_bytes()
    model = _work(tmp_path, TAMPER.format(canary=canary))
    out, r = run_propose(repo, {**env, "FLASHCODE_SANDBOX": "off"}, model, "--yes")
    assert r["branch"] and "new.py" in git(repo, "show", "--stat", r["branch"])
    assert user_state(repo) == before  # stash, branch, HEAD, index, files
    assert (repo / ".git" / "config").read_bytes() == config
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    subprocess.run(["git", "status"], cwd=repo, capture_output=True, check=True)
    assert not canary.exists()  # no fsmonitor fires on the user's next git status


@pytest.mark.skipif(bwrap_problem() is not None, reason=f"bubblewrap: {bwrap_problem()}")
def test_the_sandbox_keeps_the_users_git_dir_read_only_through_the_alternates(repo, env,  # noqa: F811
                                                                            tmp_path):
    before = user_state(repo)
    escape = ("objects=$(cat .git/objects/info/alternates); "
              "git --git-dir=\"$objects/..\" stash clear; "
              "git --git-dir=\"$objects/..\" config core.fsmonitor 'touch /tmp/x'")
    out, r = run_propose(repo, {**env, "FLASHCODE_SANDBOX": "on"}, _work(tmp_path, escape),
                         "--yes")
    assert user_state(repo) == before
    assert "fsmonitor" not in (repo / ".git" / "config").read_text()
