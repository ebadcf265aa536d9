"""A real MCP server written with the official SDK (mcp 2's MCPServer, once FastMCP), for the
MCP client tests: run as `python mcp_server.py stdio` or `python mcp_server.py http PORT`.

Its tools: echo (text), add (structured), fail (an error result), picture (an image),
slow (sleeps). With MCP_TEST_PIDFILE set it writes its pid there, so a test can check the
process is gone after flashcode exits."""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import Image, MCPServer

server = MCPServer("flashcode-test")


@server.tool(description="Repeat the text back, prefixed with 'echo:'.")
def echo(text: str) -> str:
    return f"echo: {text}"


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(name="fail.now", description="Always fails (a name with a dot).")
def fail() -> str:
    raise ValueError("it failed on purpose")


@server.tool(description="Return a tiny PNG.")
def picture() -> Image:
    return Image(data=b"\x89PNG\r\n\x1a\n" + b"0" * 64, format="png")


@server.tool(description="Sleep for some seconds, then say so.")
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return f"slept {seconds}"


if __name__ == "__main__":
    if os.environ.get("MCP_TEST_PIDFILE"):
        with open(os.environ["MCP_TEST_PIDFILE"], "a") as f:
            f.write(f"{os.getpid()}\n")
    if sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
