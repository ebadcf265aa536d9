"""The bridge from the loop to tools/: tool specs for the model, and running one call.

`run_call` asks the approval policy, refuses writes to the policy's protected paths, takes a
checkpoint of the working tree before every call that can write (effect "write" or "exec", see
agent.checkpoints; skipped outside a git repository), runs the tool through `tools.base.call`,
and turns its result or error into the text the model reads, truncated with the full text
spilled to a file.

Tools from outside tools/ (the MCP servers' tools, agent.mcp) come as `ExtraTools`: they run
through the same policy as `shell` (effect "exec": asked in `ask` and `auto-edit` mode,
allowed in `full-auto`, refused read-only; allow/deny rules name them like any tool), after a
checkpoint, and their results are truncated the same way.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

import prompts
from agent import approval, checkpoints, context
from agent.model import ToolCall
from tools import base, specs

# ask(call, effect, preview) → "yes" | "always" | "no" | "no: REASON" (the model reads the
# reason); `preview` is the diff a write would make (None for commands). None where nobody can
# answer (headless).
Asker = Callable[[ToolCall, str, "str | None"], str]
EXTRA_EFFECT = "exec"  # what a tool from outside tools/ may do: anything, as a command may


class ExtraTools(Protocol):
    """Tools from outside tools/ (agent.mcp.McpTools): their specs, and running one."""

    def specs(self) -> list[dict]: ...

    def owns(self, name: str) -> bool: ...

    def call(self, name: str, arguments: dict,
             cancel: threading.Event | None = None) -> tuple[str, bool]: ...

    def failures(self) -> list[tuple[str, str]]: ...  # (server, why it did not start)


class ApprovalNeeded(Exception):
    """The policy wants to ask, but there is nobody to ask (a headless run without --yes)."""

    def __init__(self, call: ToolCall):
        super().__init__(f"`{call.name}` needs approval: {json.dumps(call.arguments)[:200]}")
        self.call = call


@dataclass
class Outcome:
    content: str  # what the model reads
    ok: bool  # False for tool errors, denials and unknown tools
    output: Any = None  # the tool's result as data (for --json and the TUI), when it ran
    # why it did not run: "denied" (policy or user), "protected" (the user's uncommitted
    # file), "checkpoint" (none could be taken); None when it ran or the tool itself failed
    refused: str | None = None


def tool_specs() -> list[dict]:
    """OpenAI function specs for every registered tool (tools.specs; `_name` tools are hidden)."""
    return specs.tool_specs()


def format_result(result: BaseModel) -> str:
    """A tool result as text: short fields on one header line, long text fields below it."""
    if type(result).__str__ is not BaseModel.__str__:
        return str(result)
    data = result.model_dump(mode="json")
    short = {k: v for k, v in data.items() if not _is_long(v)}
    long = {k: v for k, v in data.items() if _is_long(v)}
    parts = [json.dumps(short, ensure_ascii=False)] if short else []
    for key, value in long.items():
        text = value if isinstance(value, str) else json.dumps(value, indent=1)
        parts.append(f"{key}:\n{text}")
    return "\n".join(parts)


def _is_long(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) > 120 or "\n" in value
    return isinstance(value, list | dict) and len(json.dumps(value)) > 200


def run_call(call: ToolCall, ctx: base.ToolContext, policy: approval.Policy,
             ask: Asker | None, extra: ExtraTools | None = None
             ) -> tuple[Outcome, approval.Policy]:
    """Run one call under the policy; returns what the model reads and the (updated) policy."""
    if extra is not None and extra.owns(call.name):
        return _run_extra(call, ctx, policy, ask, extra)
    try:
        tool = base.get(call.name)
        args = base.validate(tool, call.arguments)
    except base.ToolError as exc:  # unknown tool or bad arguments: nothing to approve
        return Outcome(_error(call.name, str(exc)), False), policy
    try:
        touched = tool.paths(args)
    except base.ToolError as exc:  # e.g. a malformed patch: the tool would say the same
        return Outcome(_error(call.name, str(exc)), False), policy
    decision = approval.decide(policy, call.name, tool.effect, call.arguments,
                               rule_paths(touched, ctx) if touched else None)
    shown = lambda: tool.preview(ctx, args) if tool.preview is not None else None
    denied, policy = _approve(call, tool.effect, decision, policy, ask, shown)
    if denied is not None:
        return denied, policy
    hit = protected_hit(touched, ctx, policy.protected) if tool.effect == "write" else []
    if hit:
        text = prompts.render("agent/protected.md.j2", tool=call.name, paths=", ".join(hit))
        return Outcome(text.strip(), False, refused="protected"), policy
    problem = checkpoint_before(call, tool.effect, ctx, touched)
    if problem:
        return Outcome(problem, False, refused="checkpoint"), policy
    return _execute(tool, args, ctx), policy


def _approve(call: ToolCall, effect: str, decision: approval.Decision,
             policy: approval.Policy, ask: Asker | None,
             preview: Callable[[], str | None] = lambda: None
             ) -> tuple[Outcome | None, approval.Policy]:
    """(None when the call may run, else the refusal the model reads; the policy, with an
    "always" answer added). `preview()` gives what the question shows (a write's diff), only
    when asking. Raises ApprovalNeeded when it must ask and nobody can answer."""
    if decision == "ask":
        if ask is None:
            raise ApprovalNeeded(call)
        try:  # what a write would change, for the question; a write that cannot work fails now
            shown = preview()
        except (base.ToolError, OSError) as exc:
            return Outcome(_error(call.name, str(exc)), False), policy
        answer = ask(call, effect, shown)
        if answer == "always":
            policy = approval.allow_always(policy, call.name, call.arguments)
        decision = "allow" if answer in ("yes", "always") else "deny"
        why = answer.partition(":")[2].strip() if answer.startswith("no:") else ""
        reason = f"the user declined it, saying: {why}" if why else "the user declined it"
    else:
        reason = f"the approval policy ({policy.mode}) does not allow it"
    if decision == "deny":
        text = prompts.render("agent/denied.md.j2", tool=call.name, reason=reason).strip()
        return Outcome(text, False, refused="denied"), policy
    return None, policy


def _run_extra(call: ToolCall, ctx: base.ToolContext, policy: approval.Policy,
               ask: Asker | None, extra: ExtraTools) -> tuple[Outcome, approval.Policy]:
    decision = approval.decide(policy, call.name, EXTRA_EFFECT, call.arguments)
    denied, policy = _approve(call, EXTRA_EFFECT, decision, policy, ask)
    if denied is not None:
        return denied, policy
    problem = checkpoint_before(call, EXTRA_EFFECT, ctx, [])
    if problem:
        return Outcome(problem, False, refused="checkpoint"), policy
    text, ok = extra.call(call.name, call.arguments, ctx.cancel)
    return Outcome(_fit(text, ctx) if ok else _error(call.name, _fit(text, ctx)), ok), policy


def rule_paths(touched: list[str], ctx: base.ToolContext) -> list[str]:
    """Each touched path as approval rules see it: normalized, repository-relative where it
    is inside, and also as the file a link leads to."""
    out = []
    for raw in touched:
        out.append(approval.normalize_path(raw))
        for follow in (False, True):
            try:
                out.append(ctx.rel(ctx.resolve(raw, follow=follow), follow=follow))
            except (base.ToolError, ValueError, OSError):  # outside: the tool refuses it
                pass
    return list(dict.fromkeys(out))


def checkpoint_before(call: ToolCall, effect: str, ctx: base.ToolContext,
                      touched: list[str]) -> str | None:
    """Record the working tree before a call that can write; the model's error text if that
    fails (the call is then not run). Outside a git repository there is nothing to record to."""
    if effect == "read" or not (ctx.root / ".git").exists():
        return None
    subject = approval.subject_of(call.arguments) or ", ".join(touched)
    label = f"before {call.name}: {subject}".strip().rstrip(":")
    try:
        checkpoints.create(ctx.root, " ".join(label.split())[:120], reuse=True)
    except checkpoints.CheckpointError as exc:
        return prompts.render("agent/checkpoint_failed.md.j2", tool=call.name,
                              error=str(exc)).strip()
    return None


def protected_hit(touched: list[str], ctx: base.ToolContext,
                  protected: frozenset[str]) -> list[str]:
    """The protected paths a write to `touched` would change: the file a link leads to and the
    link itself (delete/add/move act on it), and everything under a touched directory ("."
    for the whole tree, as a commit could take the user's staged work along)."""
    if not protected:
        return []
    named = set()
    for raw in touched:
        try:
            named.add(ctx.rel(ctx.resolve(raw)))
            named.add(ctx.rel(ctx.resolve(raw, follow=False), follow=False))
        except base.ToolError:  # outside the repo: the tool itself says so
            continue
    return sorted(p for p in protected
                  if any(n == "." or p == n or p.startswith(n + "/") for n in named))


def _execute(tool: base.Tool, args: BaseModel, ctx: base.ToolContext) -> Outcome:
    try:
        result = tool.fn(ctx, args)
    except base.ToolError as exc:
        return Outcome(_error(tool.name, str(exc)), False)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # a tool bug must not end the task; the model can work around it
        return Outcome(_error(tool.name, f"the tool crashed ({type(exc).__name__}: {exc})"),
                       False)
    return Outcome(_fit(format_result(result), ctx), True, result.model_dump(mode="json"))


def _fit(text: str, ctx: base.ToolContext) -> str:
    """`text`, or its head and tail with the whole spilled to a file, when it is long."""
    if context.too_long(text):
        from tools.shell import spill_dir  # creates it, kept out of `git status`

        text = context.truncate(text, spill_dir(ctx), ctx.root)
    return text


def _error(tool: str, message: str) -> str:
    return prompts.render("agent/tool_error.md.j2", tool=tool, error=message).strip()
