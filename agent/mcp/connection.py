"""One configured MCP server and its session, started and stopped from any thread.

The session lives in one task on the MCP loop (`_run`): the SDK's transports hold anyio
cancel scopes, which must be entered and left by the same task. It connects (a stdio server is
started as a child process, its stderr kept in a log file; a URL is reached over streamable
HTTP), lists the tools, then waits until `stop`; leaving the `async with` ends the session
and, for stdio, the process (the SDK closes its stdin, then terminates and kills it).

State: "not started" → "starting" → "ready" (or "failed") → "stopped".
"""

from __future__ import annotations

import asyncio
import os
import threading
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.mcp.loop import Loop

if TYPE_CHECKING:
    from agent.config import McpServer

STOP_TIMEOUT = 10.0  # seconds to wait for a session (and its process) to end
LOG_TAIL = 600  # characters of a failed server's stderr shown with its error


def describe(exc: BaseException) -> str:
    """One line for a failure, the innermost cause of an exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


class Connection:
    def __init__(self, name: str, cfg: McpServer, root: Path, loop: Loop,
                 log_dir: Path) -> None:
        self.name, self.cfg, self.root, self.loop = name, cfg, Path(root), loop
        self.log_path = log_dir / f"{name}.log"
        self.state, self.error = "not started", ""
        self.tools: list[Any] = []  # mcp_types.Tool
        self._client: Any = None
        self._stopping: asyncio.Event | None = None
        self._done = threading.Event()  # set once ready, failed or stopped
        self._future = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        """The server as configured, in words: its command line or its URL."""
        if self.cfg.url:
            return self.cfg.url
        return " ".join([self.cfg.command or "", *self.cfg.args])

    def start(self) -> None:
        """Begin connecting (returns at once; `wait` for the outcome)."""
        with self._lock:
            if self.state != "not started":
                return
            self.state = "starting"
            self._future = self.loop.submit(self._run())

    def wait(self) -> bool:
        """Whether the server is ready, waiting at most its startup timeout."""
        if not self._done.wait(self.cfg.startup_timeout):
            self._fail(f"did not answer within {self.cfg.startup_timeout:g} s")
            self._future.cancel()
            self._done.wait(STOP_TIMEOUT)
        return self.state == "ready"

    def _fail(self, error: str) -> None:
        if self.state in ("starting", "ready"):
            self.state, self.error = "failed", error + self._stderr_tail()

    def _stderr_tail(self) -> str:
        try:
            tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL:]
        except OSError:
            return ""
        return f" (its stderr, {self.log_path}: {tail.strip()!r})" if tail.strip() else ""

    async def _run(self) -> None:
        self._stopping = asyncio.Event()
        try:
            async with AsyncExitStack() as stack:
                client = await self._connect(stack)
                self.tools = await _list_tools(client)
                self._client, self.state = client, "ready"
                self._done.set()
                await self._stopping.wait()
        except BaseException as exc:  # a failed start, a lost session, or a cancel
            self._fail(describe(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            self._client = None
            if self.state not in ("failed",):
                self.state = "stopped"
            self._done.set()

    async def _connect(self, stack: AsyncExitStack) -> Any:
        from mcp import Client

        if self.cfg.url:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            http = await stack.enter_async_context(httpx2.AsyncClient(
                headers=self._headers(), timeout=httpx2.Timeout(30, read=300)))
            transport = streamable_http_client(self.cfg.url, http_client=http)
        else:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            params = StdioServerParameters(command=self.cfg.command, args=self.cfg.args,
                                           env=self.cfg.env or None,
                                           cwd=self.cfg.cwd or str(self.root))
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            errlog = stack.enter_context(open(self.log_path, "w", encoding="utf-8"))
            transport = stdio_client(params, errlog=errlog)
        client = Client(transport, read_timeout_seconds=self.cfg.startup_timeout)
        return await stack.enter_async_context(client)

    def _headers(self) -> dict[str, str]:
        headers = dict(self.cfg.headers)
        if self.cfg.bearer_token_env:
            token = os.environ.get(self.cfg.bearer_token_env)
            if not token:
                raise RuntimeError(f"${self.cfg.bearer_token_env} (bearer_token_env) is not set")
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def call(self, tool: str, arguments: dict, cancel: threading.Event | None = None) -> Any:
        """The server's CallToolResult (raises when the session is gone or the call fails)."""
        client = self._client
        if client is None:
            raise RuntimeError(f"the MCP server {self.name!r} is {self.state}"
                               + (f": {self.error}" if self.error else ""))
        timeout = self.cfg.tool_timeout
        return self.loop.run(client.call_tool(tool, arguments, read_timeout_seconds=timeout),
                             timeout + 5, cancel)

    def stop(self) -> None:
        """End the session (and a stdio server's process); waits for it, bounded."""
        with self._lock:
            future, stopping = self._future, self._stopping
            if future is None or future.done():
                return
        if stopping is not None:
            self.loop.call_soon(stopping.set)
        else:
            future.cancel()
        try:
            future.result(timeout=STOP_TIMEOUT)
        except BaseException:  # noqa: S110 (cancelled, or it had already failed)
            pass
        if not future.done():
            future.cancel()


async def _list_tools(client) -> list:
    """Every tool, page by page (bounded: a server whose cursor never ends is cut off)."""
    tools, cursor = [], None
    for _ in range(100):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools
