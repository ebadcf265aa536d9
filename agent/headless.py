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

import json
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from agent import exitcodes
from agent.approval import Policy
from agent.config import Settings
from agent.context import discover_instructions
from agent.cost import Tally
from agent.escalation import EscalatingModel
from agent.loop import Agent, Limits
from agent.model import BackendError
from agent.session import Session, SessionError, find_session
from tools.base import ToolContext

_QUIET = {"reasoning_delta", "text_delta", "done", "exit"}  # streamed pieces, or said elsewhere


def repo_root(cwd: Path) -> Path:
    """The git work tree containing `cwd`, or `cwd` itself outside git."""
    out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True,
                         text=True)
    return Path(out.stdout.strip()) if out.returncode == 0 else cwd.resolve()


def open_session(root: Path, model_name: str, resume: str | None, cont: bool,
                 fork: str | None = None) -> Session:
    """A new session; the one --resume ID / --continue names (the latest for ''); or a fork:
    a new session starting with the first N messages of session ID (`ID:N`; all without N)."""
    if fork is not None:
        sid, _, at = fork.partition(":")
        if at and not at.isdigit():
            raise SessionError(f"--fork {fork}: write ID or ID:N, N a message count.")
        return Session.load(find_session(root, sid or None)).fork(int(at) if at else None)
    if resume is None and not cont:
        return Session.create(root, model_name)
    return Session.load(find_session(root, resume or None))


def with_escalation(settings: Settings, model, task: str):
    """`model`, wrapped to hand over to the escalation endpoint when one is configured."""
    if not settings.escalation_endpoint:
        return model
    from agent.backends.openai_compat import OpenAIModel

    second = OpenAIModel.from_settings(settings, settings.escalation_endpoint,
                                       settings.escalation_model_name)
    return EscalatingModel(model, second, settings.escalate_after, task=task)


def agent_for(settings: Settings, model, root: Path, session: Session) -> Agent:
    policy = Policy.from_settings(settings.approval, settings.allow, settings.deny)
    limits = Limits(max_steps=settings.max_steps, max_tokens=settings.max_tokens,
                    max_seconds=settings.max_seconds, max_cost=settings.max_cost)
    return Agent(model, ToolContext(root, sandbox=settings.sandbox), session, policy=policy,
                 limits=limits, thinking=settings.thinking,
                 tally=Tally(default_prices=settings.prices))


def rules_error(settings: Settings, command: str, err: TextIO) -> int | None:
    """Exit code 2 after saying so when an allow/deny rule is bad; None when all are fine.
    Checked before anything is created or loaded."""
    try:
        Policy.from_settings(settings.approval, settings.allow, settings.deny)
    except ValueError as exc:
        print(f"flashcode {command}: configuration error: {exc}", file=err)
        return exitcodes.USAGE
    return None


def load_model(settings: Settings, command: str, err: TextIO):
    """The configured model, or None after saying why there is none (the caller exits 4)."""
    from agent.backends import make_model

    try:
        return make_model(settings)
    except BackendError as exc:
        print(f"flashcode {command}: {exc}", file=err)
        return None


def run_exec(settings: Settings, prompt: str, cwd: Path, as_json: bool = False,
             resume: str | None = None, cont: bool = False, fork: str | None = None,
             out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    if (code := rules_error(settings, "exec", err)) is not None:
        return code
    if (model := load_model(settings, "exec", err)) is None:
        return exitcodes.BACKEND_UNAVAILABLE
    root = repo_root(cwd)
    try:
        session = open_session(root, model.name, resume, cont, fork)
    except SessionError as exc:
        print(f"flashcode exec: {exc}", file=err)
        return exitcodes.USAGE
    model = with_escalation(settings, model, session.id)
    agent = agent_for(settings, model, root, session)
    emit = _json_printer(out) if as_json else _plain_printer(err)
    agent.on_event = emit
    if isinstance(model, EscalatingModel):
        agent.on_event = lambda event: (emit(event), model.observe(event))
    emit({"type": "session", "id": session.id, "path": str(session.path)})
    result = agent.run(prompt, instructions=discover_instructions(root, cwd))
    escalations = [e for e in getattr(model, "events", []) if e["kind"] == "escalation"]
    emit({"type": "result", "status": result.status, "message": result.message,
          "exit_code": result.code, "session": str(session.path),
          "usage": agent.tally.summary(), "escalations": escalations})
    if not as_json:
        print(result.message, file=out)
        for e in escalations:
            print(f"escalated to {e['model']}: {e['reason']}", file=err)
        print(f"[{result.status}] {agent.tally.line()}; session {session.path}", file=err)
    return result.code


def _json_printer(out: TextIO):
    def emit(event: dict) -> None:
        if event["type"] not in _QUIET:
            out.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
            out.flush()
    return emit


def _plain_printer(err: TextIO):
    def emit(event: dict) -> None:
        kind = event["type"]
        if kind == "tool_call":
            args = json.dumps(event["arguments"], ensure_ascii=False)
            print(f"→ {event['name']} {args[:160]}", file=err)
        elif kind == "tool_result" and not event["ok"]:
            print(f"  ✗ {event['content'].splitlines()[0][:160]}", file=err)
        elif kind in ("format_error", "compaction"):
            print(f"  ! {kind}: {event.get('reason', event.get('messages'))}", file=err)
        elif kind == "session":
            print(f"session {event['id']}", file=err)
        err.flush()
    return emit
