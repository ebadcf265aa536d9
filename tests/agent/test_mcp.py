"""The MCP client (agent/mcp) against a real MCP server written with the same SDK
(tests/agent/mcp_server.py), over stdio and streamable HTTP: tools as mcp__NAME__TOOL with
their schemas, results (text, structured, errors, images as a note), a server that does not
start, cancel and timeouts, the server process gone after close; approvals through
agent.toolrun like shell; `[mcp_servers.NAME]` in the config; /mcp; the doctor's check."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent import approval, toolrun
from agent.config import ConfigError, ConfigSources, McpServer, Settings, load_settings
from agent.mcp import McpTools
from agent.mcp.results import tool_name
from agent.model import ToolCall
from tools.base import ToolContext

SERVER = Path(__file__).with_name("mcp_server.py")
TOOLS = ["mcp__t__echo", "mcp__t__add", "mcp__t__fail_now", "mcp__t__picture", "mcp__t__slow"]


def stdio(pidfile: Path | None = None, **kw) -> dict:
    env = {"MCP_TEST_PIDFILE": str(pidfile)} if pidfile else {}
    return {"command": sys.executable, "args": [str(SERVER), "stdio"], "env": env, **kw}


def servers(tmp_path, **configs) -> McpTools:
    return McpTools({n: McpServer(**c) for n, c in configs.items()}, tmp_path,
                    log_dir=tmp_path / "logs")


def gone(pid: int, within: float = 10) -> bool:
    """Whether process `pid` has exited (a zombie awaiting its parent counts as gone)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def http_url(tmp_path_factory):
    """The test server over streamable HTTP, on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(SERVER), "http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


def test_stdio_server_tools_results_and_the_process_gone_after_close(tmp_path):
    pidfile = tmp_path / "pids"
    mcp = servers(tmp_path, t=stdio(pidfile))
    specs = {s["function"]["name"]: s["function"] for s in mcp.specs()}
    assert list(specs) == TOOLS
    assert specs["mcp__t__add"]["parameters"]["required"] == ["a", "b"]
    assert specs["mcp__t__echo"]["description"].startswith("Repeat the text back")
    assert mcp.call("mcp__t__echo", {"text": "hi"}) == ("echo: hi", True)
    assert mcp.call("mcp__t__add", {"a": 2, "b": 3}) == ("5", True)
    text, ok = mcp.call("mcp__t__fail_now", {})
    assert not ok and "fail.now" in text  # the original name reached the server
    text, ok = mcp.call("mcp__t__picture", {})
    assert ok and "[image (image/png" in text and "not shown" in text
    pid = int(pidfile.read_text())
    assert not gone(pid, within=0.2)
    mcp.close()
    assert gone(pid), "the MCP server outlived its session"
    assert mcp.status()[0].state == "stopped"


def test_http_server(tmp_path, http_url):
    mcp = servers(tmp_path, web={"url": http_url})
    try:
        assert [s["function"]["name"] for s in mcp.specs()][:2] == ["mcp__web__echo",
                                                                     "mcp__web__add"]
        assert mcp.call("mcp__web__echo", {"text": "over http"}) == ("echo: over http", True)
        status = mcp.status()[0]
        assert status.transport == "http" and status.state == "ready" and status.where == \
            http_url
    finally:
        mcp.close()


def test_a_server_that_does_not_start_is_reported_and_the_others_work(tmp_path):
    mcp = servers(tmp_path, t=stdio(), bad={"command": str(tmp_path / "no-such-program")},
                  dies={"command": sys.executable, "args": ["-c", "import sys; "
                                                            "sys.stderr.write('boom'); "
                                                            "sys.exit(3)"]},
                  off={**stdio(), "enabled": False})
    try:
        names = [s["function"]["name"] for s in mcp.specs()]
        assert names == TOOLS
        failed = dict(mcp.failures())
        assert set(failed) == {"bad", "dies"}
        assert "no-such-program" in failed["bad"]
        assert "boom" in failed["dies"]  # its stderr, kept in the log, comes with the error
        states = {s.name: s.state for s in mcp.status()}
        assert states == {"t": "ready", "bad": "failed", "dies": "failed", "off": "disabled"}
    finally:
        mcp.close()


def test_cancel_and_timeout_end_a_slow_call(tmp_path):
    mcp = servers(tmp_path, t=stdio(tool_timeout=1.0))
    try:
        mcp.specs()
        cancel = threading.Event()
        threading.Timer(0.5, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            mcp.call("mcp__t__slow", {"seconds": 30}, cancel)
        assert time.monotonic() - started < 5
        text, ok = mcp.call("mcp__t__slow", {"seconds": 30})
        assert not ok and "failed" in text and time.monotonic() - started < 20
        assert mcp.call("mcp__t__echo", {"text": "still"}) == ("echo: still", True)
    finally:
        mcp.close()


def test_tool_names_fit_the_function_name_rule():
    taken: set[str] = set()
    assert tool_name("docs", "search", taken) == "mcp__docs__search"
    assert tool_name("docs", "get.page/v2", taken) == "mcp__docs__get_page_v2"
    long = tool_name("docs", "x" * 100, taken)
    assert len(long) == 64 and long.startswith("mcp__docs__xxx")
    assert tool_name("docs", "x" * 100 + "y", taken) != long
    assert tool_name("docs", "a.b", {"mcp__docs__a_b"}) == "mcp__docs__a_b_2"


class FakeServers:
    """ExtraTools with one tool, recording the calls that ran."""

    def __init__(self):
        self.ran: list[dict] = []

    def specs(self):
        return []

    def owns(self, name):
        return name == "mcp__t__echo"

    def call(self, name, arguments, cancel=None):
        self.ran.append(arguments)
        return f"echo: {arguments['text']}", True

    def failures(self):
        return []


@pytest.mark.parametrize("mode, allow, deny, answer, ran, asked", [
    ("ask", [], [], "yes", True, True),
    ("ask", [], [], "no", False, True),
    ("auto-edit", [], [], "yes", True, True),  # like shell: asked unless full-auto
    ("full-auto", [], [], None, True, False),
    ("read-only", [], [], None, False, False),
    ("ask", ["mcp__t__echo"], [], None, True, False),
    ("ask", ["mcp__t__*"], [], None, True, False),
    ("full-auto", [], ["mcp__t__*"], None, False, False),
])
def test_mcp_calls_go_through_the_approval_policy_like_shell(tmp_path, mode, allow, deny,
                                                             answer, ran, asked):
    extra, seen = FakeServers(), []
    ask = lambda call, effect, preview: seen.append(effect) or answer
    policy = approval.Policy.from_settings(mode, allow, deny)
    call = ToolCall("c1", "mcp__t__echo", {"text": "hi"})
    outcome, _ = toolrun.run_call(call, ToolContext(tmp_path), policy, ask, extra)
    assert bool(extra.ran) == ran and outcome.ok == ran
    assert seen == (["exec"] if asked else [])
    if not ran:
        assert "call was not run" in outcome.content


def test_nobody_to_ask_stops_the_run(tmp_path):
    policy = approval.Policy.from_settings("ask")
    with pytest.raises(toolrun.ApprovalNeeded):
        toolrun.run_call(ToolCall("c1", "mcp__t__echo", {"text": "hi"}), ToolContext(tmp_path),
                         policy, None, FakeServers())


def test_always_allows_the_tool_from_then_on(tmp_path):
    extra, answers = FakeServers(), iter(["always"])
    policy = approval.Policy.from_settings("ask")
    call = ToolCall("c1", "mcp__t__echo", {"text": "hi"})
    _, policy = toolrun.run_call(call, ToolContext(tmp_path), policy,
                                 lambda c, e, p: next(answers), extra)
    outcome, _ = toolrun.run_call(ToolCall("c2", "mcp__t__echo", {"text": "again"}),
                                  ToolContext(tmp_path), policy, None, extra)
    assert outcome.ok and extra.ran == [{"text": "hi"}, {"text": "again"}]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_config_tables_add_up_across_layers_and_names_are_checked(tmp_path):
    user = write(tmp_path / "config.toml", '[mcp_servers.docs]\ncommand = "docs-server"\n'
                 'args = ["--stdio"]\nenv = { TOKEN_FILE = "/x" }\n')
    project = write(tmp_path / "repo" / ".flashcode.toml",
                    '[mcp_servers.web]\nurl = "http://127.0.0.1:9/mcp"\n')
    settings = load_settings(ConfigSources(user, project, {"FLASHCODE_MCP_SERVERS": "x"},
                                           project_trusted=True))
    assert set(settings.mcp_servers) == {"docs", "web"}
    assert settings.mcp_servers["docs"].args == ["--stdio"]
    assert settings.mcp_servers["docs"].env == {"TOKEN_FILE": "/x"}
    bad = write(tmp_path / "bad.toml", '[mcp_servers."a b"]\ncommand = "x"\n')
    with pytest.raises(ConfigError, match="mcp_servers"):
        load_settings(ConfigSources(bad, None, {}))
    both = write(tmp_path / "both.toml", '[mcp_servers.x]\ncommand = "x"\nurl = "http://a"\n')
    with pytest.raises(ConfigError, match="either command"):
        load_settings(ConfigSources(both, None, {}))


def test_slash_mcp_lists_servers_state_and_tools(tmp_path):
    from agent import slash

    class Conv:
        mcp = servers(tmp_path, t=stdio(), bad={"command": str(tmp_path / "nope")})

    started = Conv.mcp
    try:
        before = slash.run(Conv(), "/mcp").text
        assert "t  not started" in before and "starts with the first request" in before
        text = slash.run(Conv(), "/mcp start").text
        assert "t  ready  stdio:" in text and "5 tools: mcp__t__echo, mcp__t__add" in text
        assert "bad  failed" in text and "nope" in text
        assert "error" in slash.run(Conv(), "/mcp nonsense").style
        Conv.mcp = None
        assert "No MCP servers are configured" in slash.run(Conv(), "/mcp").text
    finally:
        started.close()


def test_doctor_checks_each_server_starts(tmp_path):
    from agent.cli.doctor import check_mcp

    settings = Settings(mcp_servers={"t": stdio(), "bad": {"command": "/no/such/mcp"}})
    checks = {c.name: c for c in check_mcp(settings, tmp_path)}
    assert checks["mcp t"].status == "ok" and "5 tools" in checks["mcp t"].detail
    assert checks["mcp bad"].status == "missing" and "/no/such/mcp" in checks["mcp bad"].detail
    assert "[mcp_servers.bad]" in checks["mcp bad"].fix
    assert check_mcp(Settings(), tmp_path) == []
