"""A `fix` that is not verified leaves the tree as it was: git-ignored files the agent's shell
deleted or changed come back, an unexpected error mid-run still restores, and `undo` removes
new files whatever their names."""

from __future__ import annotations

import io
import subprocess

from agent import checkpoints, exitcodes
from agent.cli import fix as fix_cmd
from agent.config import Settings
from tests.agent.test_fix import TESTCMD, env, fix, repo  # noqa: F401  (fixtures)
from tests.agent.test_headless import turn, write_recording


def test_ignored_files_the_agent_deleted_come_back(repo, env, tmp_path):  # noqa: F811
    (repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n.env\nlocal/\n")
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "local").mkdir()
    (repo / "local" / "settings.json").write_text('{"a": 1}\n')
    model = write_recording(tmp_path / "rec.jsonl", [
        turn("", [("shell", {"command": "rm .env; echo broken > local/settings.json"})]),
        turn("I give up."),
    ])
    out, _, s = fix(repo, env, model, "--test", TESTCMD, "--yes")
    assert out.returncode == exitcodes.NOT_FIXED and not s["applied"]
    assert (repo / ".env").read_text() == "SECRET=1\n"
    assert (repo / "local" / "settings.json").read_text() == '{"a": 1}\n'
    assert sorted(s["ignored_restored"]) == [".env", "local/settings.json"]


def test_an_unexpected_error_still_restores_the_tree(repo, tmp_path, monkeypatch):  # noqa: F811
    model = write_recording(tmp_path / "rec.jsonl", [
        turn("", [("edit", {"path": "calc.py", "old": "a - b", "new": "a * b"})]),
        turn("done"),
    ])
    before = (repo / "calc.py").read_text()

    def broken(run):
        raise RuntimeError("a bug in verification")
    monkeypatch.setattr(fix_cmd, "_verify", broken)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    out, err = io.StringIO(), io.StringIO()
    code = fix_cmd.run_fix(Settings(model=model, sandbox="off"), "x", repo, test=TESTCMD,
                           yes=True, out=out, err=err)
    assert code == exitcodes.NOT_FIXED and "a bug in verification" in err.getvalue()
    assert (repo / "calc.py").read_text() == before


def test_undo_removes_new_files_with_any_name(git_repo):
    names = ["café.txt", "日本.md", "tab\there.txt", "new\nline.txt", "quote\"d.txt"]
    cp = checkpoints.create(git_repo, "before")
    for name in names:
        (git_repo / name).write_text("x\n")
    restored = checkpoints.restore(git_repo, cp)
    assert sorted(p for _, p in restored.changes) == sorted(names)
    left = subprocess.run(["git", "status", "--porcelain", "-z"], cwd=git_repo,
                          capture_output=True, text=True).stdout
    assert left == "" and not any((git_repo / n).exists() for n in names)
