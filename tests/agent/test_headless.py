"""`flashcode exec` end to end, as a user runs it: a subprocess, a real repo, real tools."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent import exitcodes
from tests.conftest import run_flashcode

BUGGY = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def turn(content="", calls=(), **extra) -> dict:
    """One recorded assistant turn, as a session log line holds it."""
    msg = {"role": "assistant", "content": content}
    if calls:
        msg["tool_calls"] = [{"id": f"call_{i}", "type": "function", "function": {
            "name": name, "arguments": json.dumps(args)}} for i, (name, args) in enumerate(calls)]
    return {"type": "message", "message": msg, **extra}


def write_recording(path, turns) -> str:
    path.write_text("".join(json.dumps(t) + "\n" for t in turns))
    return f"replay:{path}"


@pytest.fixture
def env(isolated_env, tmp_path):
    return {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data"), "FLASHCODE_SANDBOX": "off"}


@pytest.fixture
def buggy_repo(git_repo):
    (git_repo / "calc.py").write_text(BUGGY)
    (git_repo / "test_calc.py").write_text(TEST)
    subprocess.run(["git", "add", "."], cwd=git_repo, check=True)
    subprocess.run(["git", "commit", "-qm", "calc"], cwd=git_repo, check=True)
    return git_repo


def exec_json(repo, model, env, *extra):
    out = run_flashcode("exec", "fix the failing test in test_calc.py", "--json",
                        "--model", model, "-C", str(repo), *extra, env=env)
    events = [json.loads(line) for line in out.stdout.splitlines()]
    return out, events


def pytest_passes(repo) -> bool:
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                         cwd=repo, capture_output=True, text=True)
    return run.returncode == 0


FIX_TURNS = [
    turn("Let me look.", [("read", {"path": "calc.py"})], usage={"prompt_tokens": 900,
                                                                  "completion_tokens": 20}),
    turn("", [("edit", {"path": "calc.py", "old": "return a - b", "new": "return a + b"})]),
    turn("", [("shell", {"command": f"{sys.executable} -m pytest -q -p no:cacheprovider"})]),
    turn("Fixed: add() subtracted instead of adding; the test passes now."),
]


def test_exec_fixes_a_failing_test_and_the_log_replays_the_same(buggy_repo, env, tmp_path):
    assert not pytest_passes(buggy_repo)
    model = write_recording(tmp_path / "fix.jsonl", FIX_TURNS)
    out, events = exec_json(buggy_repo, model, env, "--approval", "full-auto")
    assert out.returncode == exitcodes.OK, out.stderr
    assert [e["name"] for e in events if e["type"] == "tool_call"] == ["read", "edit", "shell"]
    results = [e for e in events if e["type"] == "tool_result"]
    assert all(r["ok"] for r in results), results
    assert "1 passed" in results[2]["content"]
    assert pytest_passes(buggy_repo)
    assert events[-1]["type"] == "result" and events[-1]["status"] == "submitted"
    assert events[-1]["usage"]["total_tokens"] >= 920

    # the session log of that run, replayed on the original repo, gives the same result
    log = events[0]["path"]
    subprocess.run(["git", "checkout", "calc.py"], cwd=buggy_repo, check=True)
    again, events2 = exec_json(buggy_repo, f"replay:{log}", env, "--approval", "full-auto")
    assert again.returncode == exitcodes.OK, again.stderr
    assert (buggy_repo / "calc.py").read_text() == BUGGY.replace("a - b", "a + b")
    assert events2[-1]["message"] == events[-1]["message"]


def test_exec_reads_and_edits_with_plain_output(buggy_repo, env, tmp_path):
    model = write_recording(tmp_path / "rec.jsonl", [
        turn("", [("read", {"path": "calc.py"})]),
        turn("", [("edit", {"path": "calc.py", "old": "a - b", "new": "a + b"})]),
        turn("Changed a - b to a + b."),
    ])
    out = run_flashcode("exec", "fix add", "--model", model, "--approval", "auto-edit",
                        "-C", str(buggy_repo), env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Changed a - b to a + b."
    assert "→ read" in out.stderr and "→ edit" in out.stderr and "[submitted]" in out.stderr
    assert pytest_passes(buggy_repo)


def test_exec_stops_with_code_3_when_an_edit_needs_approval(buggy_repo, env, tmp_path):
    model = write_recording(tmp_path / "rec.jsonl", FIX_TURNS)
    out, events = exec_json(buggy_repo, model, env)  # default mode: ask
    assert out.returncode == exitcodes.NEEDS_APPROVAL
    assert events[-1]["status"] == "needs_approval" and "edit" in events[-1]["message"]
    assert (buggy_repo / "calc.py").read_text() == BUGGY


def test_replay_fails_clearly_when_the_conversation_diverges(buggy_repo, env, tmp_path):
    model = write_recording(tmp_path / "rec.jsonl", FIX_TURNS[:1] + [turn("done")])
    first, events = exec_json(buggy_repo, model, env)
    assert first.returncode == 0, first.stderr
    (buggy_repo / "calc.py").write_text("def add(a, b):\n    return b - a\n")
    out, events = exec_json(buggy_repo, f"replay:{events[0]['path']}", env)
    assert out.returncode == exitcodes.NOT_FIXED, (out.stdout, out.stderr)
    assert events[-1]["status"] == "model_error"
    assert "differs from the recording" in events[-1]["message"]
    assert "b - a" in events[-1]["message"]


def test_exec_continue_adds_to_the_last_session(buggy_repo, env, tmp_path):
    first = write_recording(tmp_path / "a.jsonl", [turn("first answer")])
    out, events = exec_json(buggy_repo, first, env)
    second = write_recording(tmp_path / "b.jsonl", [turn("first answer"), turn("second")])
    out2, events2 = exec_json(buggy_repo, second, env, "--continue")
    assert out2.returncode == 0, out2.stderr
    assert events2[0]["path"] == events[0]["path"]
    log = [json.loads(x) for x in open(events[0]["path"])]
    users = [r["message"]["content"] for r in log if r.get("type") == "message"
             and r["message"]["role"] == "user"]
    assert len(users) == 2


def test_exec_without_a_model_exits_4(env, tmp_path):
    out = run_flashcode("exec", "hi", "-C", str(tmp_path), env=env)
    assert out.returncode == exitcodes.BACKEND_UNAVAILABLE
    assert "needs a model" in out.stderr and "Traceback" not in out.stderr


def test_exec_with_a_checkpoint_that_does_not_load_exits_4_and_says_why(env, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    out = run_flashcode("exec", "hi", "--model", str(ckpt), "-C", str(tmp_path), env=env)
    assert out.returncode == exitcodes.BACKEND_UNAVAILABLE
    assert f"cannot load the checkpoint {ckpt}" in out.stderr and "Traceback" not in out.stderr


def test_exec_includes_agents_md_down_to_the_working_directory(buggy_repo, env, tmp_path):
    (buggy_repo / "AGENTS.md").write_text("Root rule: run pytest.")
    (buggy_repo / "pkg").mkdir()
    (buggy_repo / "pkg" / "AGENTS.md").write_text("Pkg rule: no new deps.")
    model = write_recording(tmp_path / "rec.jsonl", [turn("ok")])
    out, events = exec_json(buggy_repo / "pkg", model, env)
    assert out.returncode == 0, out.stderr
    system = json.loads(open(events[0]["path"]).readlines()[1])["message"]["content"]
    assert "Root rule: run pytest." in system and "Pkg rule: no new deps." in system
    assert str(buggy_repo) in system  # the repository root, not the subdirectory


def test_a_bad_approval_rule_is_a_usage_error(buggy_repo, env, tmp_path):
    model = write_recording(tmp_path / "rec.jsonl", [turn("ok")])
    (buggy_repo / ".flashcode.toml").write_text('deny = ["shell("]\n')  # applies untrusted
    out = run_flashcode("exec", "x", "--model", model, "-C", str(buggy_repo), env=env)
    assert out.returncode == exitcodes.USAGE and "bad approval rule" in out.stderr


def test_exec_fork_starts_a_new_session_from_part_of_an_old_one(buggy_repo, env, tmp_path):
    first = write_recording(tmp_path / "a.jsonl", FIX_TURNS[:1] + [turn("calc subtracts")])
    out, events = exec_json(buggy_repo, first, env)
    parent_id = events[0]["id"]
    second = write_recording(tmp_path / "b.jsonl", [turn("forked answer")])
    out2 = run_flashcode("exec", "try another way", "--json", "--model", second, "--fork",
                         f"{parent_id}:2", "-C", str(buggy_repo), env=env)
    assert out2.returncode == 0, out2.stderr
    events2 = [json.loads(x) for x in out2.stdout.splitlines()]
    assert events2[0]["id"] != parent_id and events2[-1]["message"] == "forked answer"
    log = [json.loads(x) for x in open(events2[0]["path"])]
    assert log[0]["parent"] == {"id": parent_id, "at": 2}
    msgs = [r["message"] for r in log if r["type"] == "message"]
    assert [m["role"] for m in msgs] == ["system", "user", "user", "assistant"]
    assert msgs[1]["content"] == "fix the failing test in test_calc.py"
    bad = run_flashcode("exec", "x", "--model", second, "--fork", "nope", "-C", str(buggy_repo),
                        env=env)
    assert bad.returncode == exitcodes.USAGE and "nope" in bad.stderr
