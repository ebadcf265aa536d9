"""The session log: append-only, torn-line tolerant, repaired on resume, forkable."""

from __future__ import annotations

import json

import pytest

from agent.session import Session, SessionError, find_session, list_sessions, read_records


def test_records_are_on_disk_as_soon_as_appended(git_repo, tmp_path):
    s = Session.create(git_repo, "m", base=tmp_path)
    s.append({"role": "user", "content": "hi"}, usage={"prompt_tokens": 3})
    lines = s.path.read_text().splitlines()
    assert json.loads(lines[0])["type"] == "meta" and json.loads(lines[0])["root"] == str(git_repo)
    assert json.loads(lines[1]) == {"type": "message", "message": {"role": "user", "content": "hi"},
                                    "usage": {"prompt_tokens": 3}}


def test_a_torn_last_line_is_skipped(git_repo, tmp_path):
    s = Session.create(git_repo, "m", base=tmp_path)
    s.append({"role": "user", "content": "hi"})
    with open(s.path, "a") as f:
        f.write('{"type": "message", "message": {"role": "assis')
    assert Session.load(s.path).messages == [{"role": "user", "content": "hi"}]


def test_unanswered_tool_calls_are_repaired_on_load(git_repo, tmp_path):
    s = Session.create(git_repo, "m", base=tmp_path)
    s.append({"role": "user", "content": "x"})
    s.append({"role": "assistant", "content": "", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "read", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "list", "arguments": "{}"}}]})
    s.append({"role": "tool", "tool_call_id": "a", "content": "ok"})
    loaded = Session.load(s.path)
    assert [m.get("tool_call_id") for m in loaded.messages[-2:]] == ["a", "b"]
    assert "not run" in loaded.messages[-1]["content"]
    assert Session.load(s.path).messages == loaded.messages  # the repair was persisted once


def test_find_latest_by_prefix_and_fork(git_repo, tmp_path):
    first = Session.create(git_repo, "m", base=tmp_path)
    first.append({"role": "user", "content": "one"})
    second = Session.create(git_repo, "m", base=tmp_path)
    second.append({"role": "user", "content": "two"})
    second.append({"role": "assistant", "content": "2"})
    assert list_sessions(git_repo, tmp_path)[-1] == second.path
    assert find_session(git_repo, None, tmp_path) == second.path
    assert find_session(git_repo, first.id, tmp_path) == first.path
    child = second.fork(at=1, base=tmp_path)
    assert child.messages == [{"role": "user", "content": "two"}]
    assert read_records(child.path)[0]["parent"] == {"id": second.id, "at": 1}
    assert Session.load(second.path).messages[-1]["content"] == "2"  # the parent is untouched


def test_missing_sessions_are_a_clear_error(git_repo, tmp_path):
    with pytest.raises(SessionError, match="no session of .* yet"):
        find_session(git_repo, None, tmp_path)
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"type": "message"}\n')
    with pytest.raises(SessionError, match="damaged at line 1: a message needs a role"):
        Session.load(bad)
    bad.write_text('{"type": "event", "kind": "exit"}\n')
    with pytest.raises(SessionError, match="not a flashcode session"):
        Session.load(bad)
