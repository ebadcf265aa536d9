"""The agent: render the first messages, then query → execute tool calls → observe, until done.

Every way out is an `AgentExit` carrying the final message: the model finished (Submitted), a
limit was hit, the user interrupted, too many malformed tool calls, the backend failed, or an
action needed approval nobody could give. The session log is written every step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import prompts
from agent import context, toolrun
from agent.approval import Policy
from agent.cost import Tally
from agent.exits import (  # noqa: F401  (callers may import every exit from here)
    AgentExit,
    FormatErrorLimit,
    Interrupted,
    LimitReached,
    Limits,
    ModelFailed,
    NeedsApproval,
    ReplyCutOff,
    Submitted,
    check_limits,
)
from agent.model import (
    Cancelled,
    LanguageModel,
    ReasoningDelta,
    Reply,
    TextDelta,
    ToolCall,
    Usage,
    pump,
)
from agent.model import event_dict as _event_dict
from agent.session import Session
from tools.base import ToolContext


@dataclass
class Agent:
    model: LanguageModel
    ctx: ToolContext
    session: Session
    policy: Policy = field(default_factory=Policy)
    limits: Limits = field(default_factory=Limits)
    ask: toolrun.Asker | None = None
    on_event: Callable[[dict], None] = lambda event: None  # the front end (replaceable)
    # fixed listeners fed every event after the front end (the escalation model's counter)
    observers: tuple[Callable[[dict], None], ...] = ()
    thinking: bool = True
    tally: Tally = field(default_factory=Tally)
    tools: list[dict] | None = None
    extra_tools: toolrun.ExtraTools | None = None  # the MCP servers' tools (agent.mcp)
    steps: int = 0
    _format_errors: int = 0
    _cut_offs: int = 0
    _last_calls: list[tuple[str, str]] = field(default_factory=list)
    tokens: context.TokenCount = field(default_factory=context.TokenCount)
    _stop: threading.Event = field(default_factory=threading.Event)
    _started: float = field(default_factory=time.monotonic)

    def run(self, task: str | None = None, instructions: str | None = None) -> AgentExit:
        """Add `task` (if any) to the conversation and work until an exit; returns the exit."""
        self._started, self.steps = time.monotonic(), 0  # limits count per task
        self._stop.clear()
        self.ctx.cancel.clear()
        if self.tools is None:
            self.tools = toolrun.tool_specs() + self._extra_specs()
        if not self.session.messages:
            self.session.append({"role": "system", "content": context.system_message(
                self.ctx.root, instructions)})
        if task is not None:
            self.session.append({"role": "user", "content": task})
        try:
            while True:
                self.step()
        except KeyboardInterrupt:
            result: AgentExit = Interrupted("Interrupted by the user.")
        except AgentExit as exit_:
            result = exit_
        self.session.event("exit", status=result.status, message=result.message,
                           usage=self.tally.summary())
        self.emit({"type": "exit", "status": result.status, "message": result.message})
        return result

    def _extra_specs(self) -> list[dict]:
        """The MCP servers' tools (they start now); a server that failed is reported once."""
        if self.extra_tools is None:
            return []
        specs = self.extra_tools.specs()
        for name, error in self.extra_tools.failures():
            self.session.event("mcp", server=name, state="failed", error=error)
            self.emit({"type": "mcp", "server": name, "state": "failed", "error": error})
        return specs

    def emit(self, event: dict) -> None:
        """Report an event to the front end, then to every observer."""
        self.on_event(event)
        for observe in self.observers:
            observe(event)

    def interrupt(self) -> None:
        """Stop cleanly within a moment during generation, or between tool calls (safe from
        another thread: the TUI's worker). A running tool is cancelled too."""
        self._stop.set()
        self.ctx.cancel.set()

    def step(self) -> None:
        self._check_limits()
        self.steps += 1
        reply = self._query()
        self.session.append(reply.message(), tokens=reply.tokens, usage=reply.usage_dict(),
                            timing={"seconds": round(reply.elapsed, 3)},
                            format_errors=[vars(e) for e in reply.format_errors] or None)
        self.emit({"type": "assistant", **reply.message()})
        for i, call in enumerate(reply.tool_calls):  # the well-formed ones, even beside bad ones
            self._run_tool(call, reply.tool_calls[i + 1:])
        if reply.finish_reason == "length":
            return self._cut_off(reply)
        if reply.format_errors:
            return self._format_error(reply)
        self._format_errors = self._cut_offs = 0
        if not reply.tool_calls:
            raise Submitted(reply.text)

    def _check_limits(self, mid_reply: bool = False) -> None:
        check_limits(self.limits, self.steps, self.tally, time.monotonic() - self._started,
                     mid_reply)

    def _query(self) -> Reply:
        self._maybe_compact()
        reply, started = Reply(), time.monotonic()
        try:
            events = self.model.stream(list(self.session.messages), self.tools,
                                       thinking=self.thinking)
            for event in pump(events, self._stop):
                reply.add(event)
                if isinstance(event, ReasoningDelta | TextDelta | Usage):
                    self.emit(_event_dict(event))
                if self._stop.is_set():
                    raise Interrupted("Interrupted by the user during generation.")
                self._check_limits(mid_reply=True)
        except Cancelled:
            raise Interrupted("Interrupted by the user during generation.") from None
        except (AgentExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # a broken stream ends the task cleanly, never mid-write
            raise ModelFailed.because(exc) from exc
        if reply.usage:
            self.tally.add(self.model.name, reply.usage)
            # the count covers the prompt and this reply, which is appended next
            self.tokens.update(len(self.session.messages) + 1, reply.usage.prompt_tokens,
                               reply.usage.completion_tokens)
        reply.elapsed = time.monotonic() - started
        return reply

    def _maybe_compact(self) -> None:
        window = self.model.context_window
        msgs = self.session.messages
        if self.tokens.of(msgs) <= context.budget(window):
            return
        target = context.budget(window) * 2 // 3
        count = lambda m: self.model.count_tokens(m, self.tools or [])
        compacted = context.compact(msgs, target, count)
        self.session.messages[:] = compacted
        self.session.event("compaction", messages=compacted)
        self.tokens.reset()
        self.emit({"type": "compaction", "messages": len(compacted)})

    def _cut_off(self, reply: Reply) -> None:
        """The reply hit the length limit: ask the model to go on, once; a second cut-off in a
        row ends the task saying so (never accepted as an answer)."""
        self._cut_offs += 1
        if self._cut_offs > 1:
            raise ReplyCutOff("Stopped: the model's reply was cut off at the length limit "
                              "twice in a row; the last one is in the session log.")
        self.session.append({"role": "user",
                             "content": prompts.render("agent/cut_off.md.j2").strip()})
        self.emit({"type": "cut_off", "reason": "the reply was cut off at the length limit"})

    def _format_error(self, reply: Reply) -> None:
        self._format_errors += 1
        left = self.limits.max_format_errors - self._format_errors
        reason = "; ".join(e.reason for e in reply.format_errors)
        if left <= 0:
            raise FormatErrorLimit(f"Stopped: {self._format_errors} malformed tool calls in a "
                                   f"row (last: {reason}).")
        text = prompts.render("agent/format_error.md.j2", reason=reason, attempts_left=left)
        self.session.append({"role": "user", "content": text.strip()})
        self.emit({"type": "format_error", "reason": reason})

    def _run_tool(self, call: ToolCall, rest: list[ToolCall]) -> None:
        self.emit({"type": "tool_call", "id": call.id, "name": call.name,
                       "arguments": call.arguments})
        started = time.monotonic()
        try:
            if self._stop.is_set():
                raise KeyboardInterrupt
            outcome, self.policy = toolrun.run_call(call, self.ctx, self.policy, self.ask,
                                                    self.extra_tools)
        except (KeyboardInterrupt, toolrun.ApprovalNeeded) as exc:
            approval = isinstance(exc, toolrun.ApprovalNeeded)
            for c in (call, *rest):  # every call gets a result: the session stays well-formed
                note = prompts.render("agent/denied.md.j2", tool=c.name, reason="it needs "
                                      "approval and nobody could give it") if approval else \
                    prompts.render("agent/interrupted.md.j2", tool=c.name)
                self.session.append({"role": "tool", "tool_call_id": c.id,
                                     "content": note.strip()})
            if approval:
                raise NeedsApproval(f"Stopped: {exc}. Rerun with a wider --approval mode or "
                                    "an allow rule.") from None
            raise Interrupted("Interrupted by the user while a tool ran.") from None
        content = outcome.content + self._repeat_note(call)
        self.session.append({"role": "tool", "tool_call_id": call.id, "content": content},
                            timing={"seconds": round(time.monotonic() - started, 3)},
                            ok=outcome.ok)
        self.emit({"type": "tool_result", "id": call.id, "name": call.name,
                   "ok": outcome.ok, "content": content, "output": outcome.output,
                   **({"refused": outcome.refused} if outcome.refused else {})})

    def _repeat_note(self, call: ToolCall) -> str:
        key = (call.name, repr(sorted(call.arguments.items())))
        self._last_calls = [k for k in self._last_calls if k == key] + [key]
        count = len(self._last_calls)
        if count < self.limits.repeat_reminder_after:
            return ""
        return "\n\n" + prompts.render("agent/repeated_call.md.j2", tool=call.name,
                                       count=count).strip()
