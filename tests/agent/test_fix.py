"""`flashcode fix` end to end: a subprocess, a real git repo, real tools, a replayed model.

Every test starts from a dirty tree (a modified tracked file and an untracked file of the
user's) and checks that those changes survive whatever the run does.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent import checkpoints, exitcodes
from tests.agent.test_headless import BUGGY, TEST, turn, write_recording
from tests.conftest import run_flashcode

TESTCMD = f"{sys.executable} -m pytest -q -p no:cacheprovider"
README = "hello\nthe user's uncommitted edit\n"
NOTES = "the user's untracked notes\n"


def git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def env(isolated_env, tmp_path):
    return {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data"), "FLASHCODE_SANDBOX": "off"}


@pytest.fixture
def repo(git_repo):
    (git_repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n")
    (git_repo / "calc.py").write_text(BUGGY)
    (git_repo / "test_calc.py").write_text(TEST)
    git(git_repo, "add", ".")
    git(git_repo, "commit", "-qm", "calc")
    (git_repo / "calc.py").write_text("# stashed\n" + BUGGY)
    git(git_repo, "stash", "-q")  # a stash entry of the user's, never touched
    (git_repo / "README.md").write_text(README)  # the user's work in progress
    (git_repo / "notes.txt").write_text(NOTES)
    return git_repo


def files(repo) -> dict[str, bytes]:
    """Every file of the working tree that git would see (ignored ones left out)."""
    names = git(repo, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
    return {n: (repo / n).read_bytes() for n in names if n and (repo / n).exists()}


def fix(repo, env, model, *extra):
    out = run_flashcode("fix", "make test_calc pass", "--json", "--model", model,
                        "-C", str(repo), *extra, env=env)
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events and events[-1]["type"] == "summary", out.stderr
    return out, events, events[-1]


def test_fix_turns_a_failing_test_green_and_exits_0(repo, env, tmp_path):
    model = write_recording(tmp_path / "rec.jsonl", [
        turn("", [("read", {"path": "calc.py"})], usage={"prompt_tokens": 800,
                                                          "completion_tokens": 30}),
        turn("", [("edit", {"path": "calc.py", "old": "a - b", "new": "a + b"})]),
        turn("add() subtracted; it adds now."),
    ])
    out, events, s = fix(repo, env, model, "--test", TESTCMD, "--yes")
    assert out.returncode == exitcodes.OK, out.stderr
    assert s["status"] == "fixed" and s["applied"] and s["restored"] is None
    assert (repo / "calc.py").read_text() == BUGGY.replace("a - b", "a + b")
    assert s["tests_before"]["ok"] is False and s["tests_before"]["exit_code"] != 0
    assert s["tests_after"]["ok"] is True and s["tests_after"]["exit_code"] == 0
    assert s["files_changed"] == [{"status": "M", "path": "calc.py"}]
    assert "-    return a - b\n+    return a + b" in s["diff"]
    assert s["steps"] == 3 and s["tokens"] == 830 and s["escalations"] == []
    assert s["protected"] == ["README.md", "notes.txt"] and s["protected_changed"] == []
    assert [e["when"] for e in events if e["type"] == "tests"] == ["before", "after"]
    assert (repo / "README.md").read_text() == README  # the user's work survives
    assert (repo / "notes.txt").read_text() == NOTES
    assert git(repo, "diff", "--cached") == ""  # nothing staged, nothing committed
    assert git(repo, "log", "--format=%s") == "calc\ninit\n"
    assert git(repo, "stash", "list").count("\n") == 1
    assert git(repo, "show", "stash@{0}:calc.py").startswith("# stashed")
    # the whole fix can be undone from its start checkpoint; the user's work stays
    undo = run_flashcode("undo", s["checkpoint"][:10], "-C", str(repo), env=env)
    assert undo.returncode == 0 and "reverted calc.py" in undo.stdout, undo.stderr
    assert (repo / "calc.py").read_text() == BUGGY
    assert (repo / "README.md").read_text() == README and (repo / "notes.txt").exists()


def test_an_impossible_task_exits_1_and_leaves_the_tree_as_it_was(repo, env, tmp_path):
    before = files(repo)
    index = (repo / ".git" / "index").read_bytes()
    model = write_recording(tmp_path / "rec.jsonl", [
        turn("", [("edit", {"path": "calc.py", "old": "a - b", "new": "a * b"})]),
        turn("", [("shell", {"command": "echo junk > junk.txt && rm test_calc.py"})]),
        turn("I could not make it pass."),
        turn("Still failing; giving up."),
        turn("Giving up for good."),
    ])
    out, events, s = fix(repo, env, model, "--test", TESTCMD, "--yes")
    assert out.returncode == exitcodes.NOT_FIXED, out.stderr
    assert s["status"] == "not_fixed" and not s["applied"]
    assert s["reason"] == f"`{TESTCMD}` still fails after the agent finished"
    assert {f["path"] for f in s["restored"]} == {"calc.py", "junk.txt", "test_calc.py"}
    assert files(repo) == before  # byte for byte, the user's dirty files included
    assert (repo / ".git" / "index").read_bytes() == index
    attempt = checkpoints.find(repo, s["attempt"])  # the failed attempt is kept, to look at
    assert git(repo, "show", f"{attempt.tree}:junk.txt") == "junk\n"
    # the agent was told each time that the tests still fail, then the rounds ran out
    users = [r["message"]["content"] for r in map(json.loads, open(s["session"]))
             if r.get("type") == "message" and r["message"]["role"] == "user"]
    assert len(users) == 3 and all("still fails" in u for u in users[1:])


def test_without_yes_an_edit_needs_approval_exit_3_and_nothing_changes(repo, env, tmp_path):
    before = files(repo)
    model = write_recording(tmp_path / "rec.jsonl", [
        turn("", [("edit", {"path": "calc.py", "old": "a - b", "new": "a + b"})]),
        turn("done"),
    ])
    out, _, s = fix(repo, env, model, "--test", TESTCMD)
    assert out.returncode == exitcodes.NEEDS_APPROVAL and s["status"] == "needs_approval"
    assert files(repo) == before


def test_files_with_uncommitted_user_changes_are_refused_unless_allowed(repo, env, tmp_path):
    dirty = "# the user's note\n" + BUGGY
    (repo / "calc.py").write_text(dirty)
    turns = [turn("", [("edit", {"path": "./calc.py", "old": "a - b", "new": "a + b"})]),
             turn("done")]
    out, events, s = fix(repo, env, write_recording(tmp_path / "a.jsonl", turns * 2),
                         "--test", TESTCMD, "--yes")
    assert out.returncode == exitcodes.NOT_FIXED
    refused = [e for e in events if e["type"] == "tool_result"][0]
    assert not refused["ok"] and "uncommitted changes of the user's" in refused["content"]
    assert "calc.py" in refused["content"] and "calc.py" in s["protected"]
    assert refused["refused"] == "protected" and s["protected_refused"] is True
    assert (repo / "calc.py").read_text() == dirty
    plain = run_flashcode("fix", "make test_calc pass", "--model",
                          write_recording(tmp_path / "p.jsonl", turns * 3), "-C", str(repo),
                          "--test", TESTCMD, "--yes", env=env)
    assert "Not fixed:" in plain.stdout and "rerun with --allow-dirty" in plain.stdout
    assert "The agent's last words: done" in plain.stdout

    out, _, s = fix(repo, env, write_recording(tmp_path / "b.jsonl", turns), "--test",
                    TESTCMD, "--yes", "--allow-dirty")
    assert out.returncode == exitcodes.OK, out.stderr
    assert (repo / "calc.py").read_text() == dirty.replace("a - b", "a + b")
    assert (repo / "README.md").read_text() == README


def test_a_patch_or_commit_touching_user_changes_is_refused(repo, env, tmp_path):
    patch = ("*** Begin Patch\n*** Update File: README.md\n@@\n hello\n-the user's "
             "uncommitted edit\n+overwritten\n*** End Patch")
    model = write_recording(tmp_path / "rec.jsonl", [
        turn("", [("apply_patch", {"patch": patch}),
                  ("git_change", {"op": "commit", "message": "x", "all_tracked": True})]),
        turn("", [("edit", {"path": "calc.py", "old": "a - b", "new": "a + b"})]),
        turn("fixed"),
    ])
    out, events, s = fix(repo, env, model, "--test", TESTCMD, "--yes")
    assert out.returncode == exitcodes.OK, out.stderr
    results = [e for e in events if e["type"] == "tool_result"]
    assert [r["ok"] for r in results] == [False, False, True]
    assert "README.md" in results[0]["content"] and "notes.txt" in results[1]["content"]
    assert (repo / "README.md").read_text() == README
    assert git(repo, "log", "--format=%s") == "calc\ninit\n"


def test_with_no_test_command_the_agents_own_check_decides(git_repo, env, tmp_path):
    (git_repo / "greet.py").write_text("print('helo')\n")
    git(git_repo, "add", ".")
    git(git_repo, "commit", "-qm", "greet")
    check = f"{sys.executable} greet.py | grep -qx hello"
    model = write_recording(tmp_path / "rec.jsonl", [
        turn("", [("edit", {"path": "greet.py", "old": "helo", "new": "hello"})]),
        turn("fixed the typo"),  # no check yet: told to check
        turn("", [("shell", {"command": check})]),
        turn("checked: it prints hello"),
    ])
    out, _, s = fix(git_repo, env, model, "--yes")
    assert out.returncode == exitcodes.OK, (out.stdout, out.stderr)
    assert s["test_command"] is None and s["tests_before"] is None and s["steps"] == 4
    assert (git_repo / "greet.py").read_text() == "print('hello')\n"


def test_undo_restores_a_file_deleted_by_an_agents_shell_command(repo, env, tmp_path):
    model = write_recording(tmp_path / "rec.jsonl", [
        turn("", [("edit", {"path": "calc.py", "old": "a - b", "new": "a + b"})]),
        turn("", [("shell", {"command": "rm notes.txt test_calc.py"})]),
        turn("done"),
    ])
    out = run_flashcode("exec", "tidy up", "--model", model, "--approval", "full-auto",
                        "-C", str(repo), env=env)
    assert out.returncode == 0, out.stderr
    assert not (repo / "notes.txt").exists() and not (repo / "test_calc.py").exists()
    labels = [c.label for c in checkpoints.history(repo)]
    assert labels[:2] == ["before shell: rm notes.txt test_calc.py", "before edit: calc.py"]
    undo = run_flashcode("undo", "-C", str(repo), env=env)
    assert undo.returncode == 0, undo.stderr
    assert "restored notes.txt" in undo.stdout and "restored test_calc.py" in undo.stdout
    assert (repo / "notes.txt").read_text() == NOTES
    assert (repo / "calc.py").read_text() == BUGGY.replace("a - b", "a + b")  # later: kept
    assert (repo / "README.md").read_text() == README


def test_fix_needs_a_repository_and_a_model(tmp_path, env, repo):
    out = run_flashcode("fix", "x", "--model", "replay:/nope.jsonl", "-C", str(tmp_path),
                        env=env)
    assert out.returncode == exitcodes.USAGE and "git init" in out.stderr
    out = run_flashcode("fix", "x", "-C", str(repo), env=env)
    assert out.returncode == exitcodes.BACKEND_UNAVAILABLE and "Traceback" not in out.stderr
    assert files(repo)["README.md"] == README.encode()


def test_fix_help_documents_the_exit_codes():
    out = run_flashcode("fix", "--help")
    assert out.returncode == 0
    for line in ("0  success (fix: fixed and verified)", "1  the task was not done (fix: not "
                 "fixed)", "3  an action needed approval", "2  usage error", "4  no usable"):
        assert line in out.stdout
    assert "--allow-dirty" in out.stdout and "--test CMD" in out.stdout


def test_dirty_paths_covers_staged_unstaged_untracked_renamed_and_deleted(repo):
    from agent.cli.fix import dirty_paths

    (repo / "sub").mkdir()
    (repo / "sub" / "new.txt").write_text("untracked in a folder\n")
    git(repo, "mv", "calc.py", "calc2.py")
    (repo / "test_calc.py").unlink()
    (repo / "staged.txt").write_text("s\n")
    git(repo, "add", "staged.txt")
    (repo / "__pycache__").mkdir()
    (repo / "__pycache__" / "x.pyc").write_text("ignored\n")
    assert dirty_paths(repo) == ["README.md", "calc.py", "calc2.py", "notes.txt", "staged.txt",
                                 "sub/new.txt", "test_calc.py"]


def test_plain_output_warns_when_a_shell_command_changed_a_user_file(repo, env, tmp_path):
    model = write_recording(tmp_path / "rec.jsonl", [
        turn("", [("edit", {"path": "calc.py", "old": "a - b", "new": "a + b"}),
                  ("shell", {"command": "echo appended >> README.md"})]),
        turn("fixed"),
    ])
    out = run_flashcode("fix", "make test_calc pass", "--model", model, "--test", TESTCMD,
                        "--yes", "-C", str(repo), env=env)
    assert out.returncode == exitcodes.OK, out.stderr
    assert "Fixed and verified" in out.stdout and "after: 1 passed" in out.stdout
    assert "M calc.py" in out.stdout and "flashcode undo" in out.stdout
    assert "changed your uncommitted file README.md" in out.stderr
    assert (repo / "README.md").read_text() == README + "appended\n"  # kept, not lost


def test_failed_verifications_escalate_and_the_summary_says_so(repo, env, tmp_path):
    from tests.fake_openai import FakeOpenAIServer, FakeReply

    flash = write_recording(tmp_path / "flash.jsonl", [turn("done?"), turn("done now?")])
    edit = json.dumps({"path": "calc.py", "old": "a - b", "new": "a + b"})
    with FakeOpenAIServer([FakeReply(tool_calls=[("edit", edit)]),
                           FakeReply(text="Pro: add() must add.")]) as server:
        env = {**env, "FLASHCODE_ESCALATION_ENDPOINT": server.url,
               "FLASHCODE_ESCALATION_MODEL_NAME": "deepseek-v4-pro"}
        out, _, s = fix(repo, env, flash, "--test", TESTCMD, "--yes")
    assert out.returncode == exitcodes.OK, out.stderr
    assert [e["model"] for e in s["escalations"]] == ["deepseek-v4-pro"]
    assert s["message"] == "Pro: add() must add." and s["tests_after"]["ok"]
    assert "deepseek-v4-pro" in s["usage"]["models"] and s["tokens"] > 0


def test_max_steps_bounds_all_verification_rounds_together(repo, env, tmp_path):
    before = files(repo)
    model = write_recording(tmp_path / "rec.jsonl", [
        turn("", [("edit", {"path": "calc.py", "old": "a - b", "new": "a * b"})]),
        turn("done"), turn("done again"), turn("and again")])
    out, _, s = fix(repo, env, model, "--test", TESTCMD, "--yes", "--max-steps", "3")
    assert out.returncode == exitcodes.NOT_FIXED and s["steps"] == 3
    assert files(repo) == before
