"""`flashcode exec "PROMPT" [--json]`: one prompt through the agent, without the app.

Plain output: progress (tool calls, results) on stderr, the final answer on stdout, then a
usage line and the session path on stderr. With --json: one JSON object per line on stdout:
    {"type": "session", "id", "path"}            first
    {"type": "assistant", "content", "reasoning_content"?, "tool_calls"?}
    {"type": "tool_call", "id", "name", "arguments"} / {"type": "tool_result", "id", "name",
     "ok", "content"} / {"type": "usage", ...} / {"type": "format_error", "reason"} / ...
    {"type": "result", "status", "message", "exit_code", "session", "usage"}   last
Exec runs the prompt as given (no task-spec rewrite: nobody is there to review it) and never
asks: actions the approval mode would ask about stop the run with exit code 3.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from agent import exitcodes, wiring
from agent.cli.args import cwd_of, load_model, settings_for
from agent.cli.output import printer
from agent.config import Settings
from agent.context import discover_instructions
from agent.session import SessionError


def run(args: argparse.Namespace) -> int:
    return run_exec(settings_for(args), args.prompt, cwd_of(args), as_json=args.json,
                    resume=getattr(args, "resume", None),
                    cont=getattr(args, "continue_", False), fork=getattr(args, "fork", None))


def run_exec(settings: Settings, prompt: str, cwd: Path, as_json: bool = False,
             resume: str | None = None, cont: bool = False, fork: str | None = None,
             out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    root = wiring.repo_root(cwd)
    try:  # a session that is not there is said before a model is loaded
        session = wiring.open_session(root, "", resume, cont, fork) if \
            resume is not None or cont or fork is not None else None
    except SessionError as exc:
        print(f"flashcode exec: {exc}", file=err)
        return exitcodes.USAGE
    if (model := load_model(settings, "exec", err)) is None:
        return exitcodes.BACKEND_UNAVAILABLE
    session = session or wiring.open_session(root, model.name)
    emit = printer(as_json, out, err)
    agent = wiring.build_agent(settings, model, root, session, on_event=emit)
    emit({"type": "session", "id": session.id, "path": str(session.path)})
    result = agent.run(prompt, instructions=discover_instructions(root, cwd))
    escalations = wiring.escalations(agent)
    emit({"type": "result", "status": result.status, "message": result.message,
          "exit_code": result.code, "session": str(session.path),
          "usage": agent.tally.summary(), "escalations": escalations})
    if not as_json:
        print(result.message, file=out)
        for e in escalations:
            print(f"escalated to {e['model']}: {e['reason']}", file=err)
        print(f"[{result.status}] {agent.tally.line()}; session {session.path}", file=err)
    return result.code
