"""Damaged session logs, configs and endpoints end in a clear message and an exit code, never a
traceback: every corrupted variant of a real session log, resumed with `exec --resume` and
replayed with `--model replay:`."""

from __future__ import annotations

import json

import pytest

from agent import exitcodes
from agent.session import Session
from tests.conftest import run_flashcode

MESSAGE = {"type": "message", "message": {"role": "user", "content": "hi"}}
CALL = {"type": "message", "message": {"role": "assistant", "content": "", "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{}"}}]}}


def variants(meta: dict) -> dict[str, bytes]:
    """A good log's meta record followed by each kind of damage."""
    good = [json.dumps(meta), json.dumps(MESSAGE)]
    bad_records = {
        "garbage line": "}{", "array": "[1, 2]", "number": "7", "null": "null",
        "no type": '{"x": 1}', "unknown type": '{"type": "blob"}',
        "message not a dict": '{"type": "message", "message": "hi"}',
        "no role": '{"type": "message", "message": {"content": "x"}}',
        "role a number": '{"type": "message", "message": {"role": 3}}',
        "content a number": '{"type": "message", "message": {"role": "user", "content": 5}}',
        "tool_calls a string": json.dumps({**CALL, "message": {**CALL["message"],
                                                               "tool_calls": "x"}}),
        "call without id": json.dumps({**CALL, "message": {**CALL["message"], "tool_calls": [
            {"function": {"name": "read"}}]}}),
        "call without function": json.dumps({**CALL, "message": {**CALL["message"],
                                                                 "tool_calls": [{"id": "c"}]}}),
        "tool without id": '{"type": "message", "message": {"role": "tool", "content": "x"}}',
        "compaction not a list": '{"type": "event", "kind": "compaction", "messages": 3}',
        "compaction bad message": '{"type": "event", "kind": "compaction", "messages": [1]}',
        "event without kind": '{"type": "event"}',
        "deep nesting": "[" * 100_000 + "]" * 100_000,
    }
    out = {name: ("\n".join([*good, line, json.dumps(MESSAGE)]) + "\n").encode()
           for name, line in bad_records.items()}
    out["meta without id"] = (json.dumps({**meta, "id": 5}) + "\n").encode()
    out["meta not first"] = (json.dumps(MESSAGE) + "\n" + json.dumps(meta) + "\n").encode()
    out["empty"] = b""
    out["not utf-8"] = json.dumps(meta).encode() + b"\n\xff\xfe{}\n"
    out["binary"] = bytes(range(256)) * 4
    return out


@pytest.fixture
def env(isolated_env, tmp_path):
    return {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data")}


def _one_session(git_repo, tmp_path) -> Session:
    return Session.create(git_repo, "replay", tmp_path / "data" / "flashcode")


def test_every_damaged_log_is_refused_with_a_message(git_repo, tmp_path, env):
    session = _one_session(git_repo, tmp_path)
    meta = json.loads(session.path.read_text().splitlines()[0])
    model = tmp_path / "rec.jsonl"
    model.write_text(json.dumps({"type": "message", "message": {"role": "assistant",
                                                                  "content": "ok"}}) + "\n")
    cases = variants(meta)
    assert len(cases) >= 21
    for name, data in cases.items():
        session.path.write_bytes(data)
        out = run_flashcode("exec", "x", "--resume", session.id, "--model", f"replay:{model}",
                            "-C", str(git_repo), env=env)
        assert out.returncode == exitcodes.USAGE and "Traceback" not in out.stderr, name
        assert "damaged" in out.stderr or "not a flashcode session" in out.stderr, name
        replayed = run_flashcode("exec", "x", "--model", f"replay:{session.path}",
                                 "-C", str(git_repo), env=env)
        assert replayed.returncode == exitcodes.BACKEND_UNAVAILABLE, (name, replayed.stderr)
        assert "Traceback" not in replayed.stderr, name


def test_a_torn_last_line_is_cut_so_the_session_goes_on(git_repo, tmp_path, env):
    session = _one_session(git_repo, tmp_path)
    session.append({"role": "user", "content": "first"})
    with open(session.path, "a") as f:
        f.write('{"type": "message", "message": {"role": "assis')  # killed mid-write
    model = tmp_path / "rec.jsonl"
    model.write_text(json.dumps({"type": "message", "message": {"role": "assistant",
                                                                  "content": "ok"}}) + "\n")
    out = run_flashcode("exec", "second", "--resume", session.id, "--model", f"replay:{model}",
                        "-C", str(git_repo), env=env)
    assert out.returncode == 0, out.stderr
    again = Session.load(session.path)  # every line whole: resumable again
    assert [m["content"] for m in again.messages if m["role"] == "user"] == ["first", "second"]


@pytest.mark.parametrize("endpoint", ["::::", "http://", "ftp://x/v1", "http://a b/v1",
                                      "http://[::1/v1"])
def test_a_malformed_endpoint_is_a_configuration_error(tmp_path, isolated_env, endpoint):
    config = tmp_path / "xdg" / "flashcode"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(f"endpoint = {json.dumps(endpoint)}\n")
    for command in (["doctor"], ["exec", "hi"]):
        out = run_flashcode(*command, "-C", str(tmp_path), env=isolated_env)
        assert out.returncode == exitcodes.USAGE, (command, out.stderr)
        assert "endpoint" in out.stderr and "Traceback" not in out.stderr


def test_a_nul_in_a_path_setting_is_a_configuration_error(tmp_path, isolated_env, git_repo):
    config = tmp_path / "xdg" / "flashcode"
    config.mkdir(parents=True)
    (config / "config.toml").write_text('model = "a\\u0000b"\n')
    out = run_flashcode("fix", "x", "-C", str(git_repo), env=isolated_env)
    assert out.returncode == exitcodes.USAGE and "Traceback" not in out.stderr
    assert "'model'" in out.stderr
