"""MCP end to end, as a user runs it: `flashcode exec` and `flashcode --plain` in subprocesses,
a scripted model (a recording replayed) calling a tool of a real MCP server
(tests/agent/mcp_server.py, configured in the user's config.toml) over stdio and HTTP. In
`ask` mode the call is asked about (headless: the run stops with exit 3; on the terminal: a
y/a/n question), the result lands in the session log, and the server process is gone once
flashcode has exited."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent import exitcodes
from tests.agent.test_headless import turn, write_recording
from tests.agent.test_mcp import SERVER, gone, http_url  # noqa: F401 (a fixture)
from tests.conftest import REPO_ROOT, run_flashcode

CALL = [turn("", [("mcp__t__echo", {"text": "hello"})]), turn("The tool said hello.")]


@pytest.fixture
def env(isolated_env, tmp_path):
    return {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data"), "FLASHCODE_SANDBOX": "off"}


def configure(env: dict, tmp_path, extra: str = "", url: str | None = None) -> object:
    """The user's config.toml with server `t` (stdio, or `url`); the file its pid goes to."""
    pidfile = tmp_path / "pids"
    server = f'url = "{url}"\n' if url else (
        f'command = "{sys.executable}"\nargs = ["{SERVER}", "stdio"]\n'
        f'env = {{ MCP_TEST_PIDFILE = "{pidfile}" }}\n')
    config = tmp_path / "xdg" / "flashcode" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(extra + "[mcp_servers.t]\n" + server)
    return pidfile


def session_records(path: str) -> list[dict]:
    records = [json.loads(line) for line in open(path)]
    return [r for r in records if isinstance(r, dict)]  # (the prompt history is a list)


def tool_messages(path: str) -> list[str]:
    return [r["message"]["content"] for r in session_records(path)
            if r.get("type") == "message" and r["message"]["role"] == "tool"]


def exec_json(repo, tmp_path, env, *flags):
    model = write_recording(tmp_path / "rec.jsonl", CALL)
    out = run_flashcode("exec", "say hello through the tool", "--json", "--model", model,
                        "-C", str(repo), *flags, env=env)
    return out, [json.loads(line) for line in out.stdout.splitlines()]


def test_ask_mode_stops_headless_exec_at_the_mcp_call(git_repo, tmp_path, env):
    pidfile = configure(env, tmp_path)
    out, events = exec_json(git_repo, tmp_path, env)  # the default mode: ask
    assert out.returncode == exitcodes.NEEDS_APPROVAL, out.stderr
    assert events[-1]["status"] == "needs_approval" and "mcp__t__echo" in events[-1]["message"]
    assert not any(e["type"] == "tool_result" for e in events)
    assert "nobody could give it" in tool_messages(events[-1]["session"])[0]
    assert gone(int(pidfile.read_text()))


def test_an_allow_rule_runs_it_and_the_result_is_in_the_session_log(git_repo, tmp_path, env):
    pidfile = configure(env, tmp_path, extra='allow = ["mcp__t__echo"]\n')
    out, events = exec_json(git_repo, tmp_path, env)
    assert out.returncode == exitcodes.OK, out.stderr
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["name"] == "mcp__t__echo" and result["ok"] and result["content"] == \
        "echo: hello"
    assert tool_messages(events[-1]["session"]) == ["echo: hello"]
    assert events[-1]["message"] == "The tool said hello."
    assert gone(int(pidfile.read_text())), "the MCP server outlived flashcode"


def test_the_plain_mode_asks_and_lists_the_servers(git_repo, tmp_path, env):
    pidfile = configure(env, tmp_path)
    model = write_recording(tmp_path / "rec.jsonl", CALL)
    out = subprocess.run([sys.executable, "-m", "agent.cli", "--plain", "--no-rewrite",
                          "--model", model, "-C", str(git_repo)],
                         input="say hello through the tool\ny\n/mcp\n", text=True,
                         capture_output=True, timeout=120,
                         env={**env, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "The agent wants to run: mcp__t__echo" in text and "Allow? [y]es once" in text
    assert "✓ mcp__t__echo" in text and "echo: hello" in text
    assert "t  ready  stdio:" in text and "5 tools: mcp__t__echo" in text  # /mcp
    logs = list((tmp_path / "data").rglob("*.jsonl"))
    assert any(tool_messages(str(p)) == ["echo: hello"] for p in logs)
    assert gone(int(pidfile.read_text()))


def test_an_http_server_in_full_auto(git_repo, tmp_path, env, http_url):  # noqa: F811
    configure(env, tmp_path, url=http_url)
    out, events = exec_json(git_repo, tmp_path, env, "--approval", "full-auto")
    assert out.returncode == exitcodes.OK, out.stderr
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] and result["content"] == "echo: hello"
