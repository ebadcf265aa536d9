"""MCP client: the tools of the servers in `[mcp_servers.NAME]`, offered to the model.

    servers = McpTools(settings.mcp_servers, root)
    servers.specs()          # starts every enabled server (in parallel, once), lists its tools
    servers.call("mcp__docs__search", {"q": "x"}, cancel)   # → (text, ok)
    servers.status()         # for /mcp and `flashcode doctor`
    servers.close()          # ends every session and stdio process (also at exit)

Servers start lazily: nothing runs until the agent first needs its tool list (its first
turn), `/mcp start`, or the doctor's check; a server that fails to start is reported and left
out, and the others work. Tools are named `mcp__SERVER__TOOL` (results.py) with the server's
own JSON Schemas. Running one goes through the approval policy like `shell` (effect "exec",
see agent.toolrun); rules name them like any tool: `mcp__docs__search`, `mcp__docs__*`.

The official `mcp` SDK does the protocol; it is imported only when a server starts.
"""

from __future__ import annotations

import atexit
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.mcp.connection import Connection
from agent.mcp.loop import Loop
from agent.mcp.results import PREFIX, result_text, spec, tool_name
from agent.paths import flashcode_dir

if TYPE_CHECKING:
    from agent.config import McpServer

__all__ = ["PREFIX", "McpTools", "ServerStatus"]

_LIVE: set[McpTools] = set()  # closed at exit: no server process outlives flashcode
_HOOKED = threading.Event()


def _close_all() -> None:
    for tools in list(_LIVE):
        tools.close()


@dataclass(frozen=True)
class ServerStatus:
    name: str
    transport: str  # "stdio" | "http"
    where: str  # the command line or the URL
    state: str  # not started | starting | ready | failed | stopped | disabled
    error: str
    tools: list[str]  # the names the model sees


class McpTools:
    def __init__(self, servers: dict[str, McpServer], root: Path,
                 log_dir: Path | None = None) -> None:
        self.root, self.configs = Path(root), dict(servers)
        self.log_dir = log_dir or flashcode_dir("cache") / "mcp"
        self._loop: Loop | None = None
        self._connections: dict[str, Connection] = {}
        self._names: dict[str, tuple[str, str]] = {}  # model's name → (server, tool)
        self._lock = threading.Lock()
        if not _HOOKED.is_set():
            _HOOKED.set()
            atexit.register(_close_all)
        _LIVE.add(self)

    def _connection(self, name: str) -> Connection:
        if name not in self._connections:
            self._loop = self._loop or Loop()
            self._connections[name] = Connection(name, self.configs[name], self.root,
                                                 self._loop, self.log_dir)
        return self._connections[name]

    def start(self) -> None:
        """Start every enabled server not started yet and wait until each is ready or has
        failed (each within its own startup_timeout, all at once)."""
        with self._lock:
            new = [self._connection(n) for n, cfg in self.configs.items()
                   if cfg.enabled and self._connection(n).state == "not started"]
            for conn in new:
                conn.start()
            if new:
                with ThreadPoolExecutor(len(new)) as pool:
                    list(pool.map(Connection.wait, new))
            self._name_tools()

    def _name_tools(self) -> None:
        names: dict[str, tuple[str, str]] = {}
        for server, conn in self._connections.items():
            for tool in conn.tools if conn.state == "ready" else []:
                names[tool_name(server, tool.name, set(names))] = (server, tool.name)
        self._names = names

    def specs(self) -> list[dict]:
        """OpenAI function specs of every ready server's tools (starting the servers)."""
        self.start()
        tools = {(s, t.name): t for s, c in self._connections.items() for t in c.tools}
        return [spec(name, tools[key]) for name, key in self._names.items()]

    def owns(self, name: str) -> bool:
        return name in self._names

    def call(self, name: str, arguments: dict,
             cancel: threading.Event | None = None) -> tuple[str, bool]:
        """(what the model reads, ok); KeyboardInterrupt when `cancel` is set meanwhile."""
        server, tool = self._names[name]
        try:
            return result_text(self._connections[server].call(tool, arguments, cancel))
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # a lost session, a timeout, a protocol error
            from agent.mcp.connection import describe

            return f"the MCP server {server!r} failed: {describe(exc)}", False

    def failures(self) -> list[tuple[str, str]]:
        return [(n, c.error) for n, c in self._connections.items() if c.state == "failed"]

    def status(self) -> list[ServerStatus]:
        out = []
        for name, cfg in self.configs.items():
            conn = self._connections.get(name)
            state = "disabled" if not cfg.enabled else conn.state if conn else "not started"
            where = conn.where if conn else (cfg.url or " ".join([cfg.command or "",
                                                                   *cfg.args]))
            tools = [n for n, (s, _) in self._names.items() if s == name]
            out.append(ServerStatus(name, "http" if cfg.url else "stdio", where, state,
                                    conn.error if conn else "", tools))
        return out

    def close(self) -> None:
        """End every session and stdio process, then the loop. Idempotent."""
        _LIVE.discard(self)
        with self._lock:
            conns, loop = list(self._connections.values()), self._loop
            self._loop = None
        if conns:
            with ThreadPoolExecutor(len(conns)) as pool:
                list(pool.map(Connection.stop, conns))
        if loop is not None:
            loop.stop()
