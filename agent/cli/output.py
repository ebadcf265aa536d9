"""How the headless commands (exec, fix, propose) show the agent's events.

`json_printer`: one JSON object per line on stdout, streamed fragments left out (the
assistant event carries the whole turn). `plain_printer`: progress for a person on stderr, a
line per tool call and per failure; the answer itself is printed by the command.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TextIO

Printer = Callable[[dict], None]

_QUIET = {"reasoning_delta", "text_delta", "done", "exit"}  # streamed pieces, or said elsewhere


def printer(as_json: bool, out: TextIO, err: TextIO) -> Printer:
    """The JSON printer on `out` with --json, else the plain one on `err`."""
    return json_printer(out) if as_json else plain_printer(err)


def json_printer(out: TextIO) -> Printer:
    def emit(event: dict) -> None:
        if event["type"] not in _QUIET:
            out.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
            out.flush()
    return emit


def plain_printer(err: TextIO) -> Printer:
    def emit(event: dict) -> None:
        kind = event["type"]
        if kind == "tool_call":
            args = json.dumps(event["arguments"], ensure_ascii=False)
            print(f"→ {event['name']} {args[:160]}", file=err)
        elif kind == "tool_result" and not event["ok"]:
            first = (event["content"].splitlines() or [""])[0]
            print(f"  ✗ {first[:160]}", file=err)
        elif kind in ("format_error", "compaction", "cut_off"):
            print(f"  ! {kind}: {event.get('reason', event.get('messages'))}", file=err)
        elif kind == "session":
            print(f"session {event['id']}", file=err)
        elif kind == "mcp":
            print(f"  ! MCP server {event['server']} {event['state']}: {event.get('error')}",
                  file=err)
        err.flush()
    return emit
