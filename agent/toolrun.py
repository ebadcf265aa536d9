"""The bridge from the loop to tools/: tool specs for the model, and running one call.

`run_call` asks the approval policy, refuses writes to the policy's protected paths, takes a
checkpoint of the working tree before every call that can write (effect "write" or "exec", see
agent.checkpoints; skipped outside a git repository), runs the tool through `tools.base.call`,
and turns its result or error into the text the model reads, truncated with the full text
spilled to a file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

import prompts
from agent import approval, checkpoints, context
from agent.model import ToolCall
from tools import base, specs

# ask(call, effect) → "yes" | "no" | "always"; None where nobody can answer (headless).
# ask(call, effect, preview) → "yes" | "always" | "no" | "no: REASON" (the model reads the
# reason); `preview` is the diff a write would make (None for commands). None where nobody can
# answer (headless).
Asker = Callable[[ToolCall, str, "str | None"], str]


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
             ask: Asker | None) -> tuple[Outcome, approval.Policy]:
    """Run one call under the policy; returns what the model reads and the (updated) policy."""
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
    if decision == "ask":
        if ask is None:
            raise ApprovalNeeded(call)
        try:  # what a write would change, for the question; a write that cannot work fails now
            preview = tool.preview(ctx, args) if tool.preview is not None else None
        except (base.ToolError, OSError) as exc:
            return Outcome(_error(call.name, str(exc)), False), policy
        answer = ask(call, tool.effect, preview)
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
    hit = protected_hit(touched, ctx, policy.protected) if tool.effect == "write" else []
    if hit:
        text = prompts.render("agent/protected.md.j2", tool=call.name, paths=", ".join(hit))
        return Outcome(text.strip(), False, refused="protected"), policy
    problem = checkpoint_before(call, tool.effect, ctx, touched)
    if problem:
        return Outcome(problem, False, refused="checkpoint"), policy
    return _execute(tool, args, ctx), policy


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
    text = format_result(result)
    if context.too_long(text):
        from tools.shell import spill_dir  # creates it, kept out of `git status`

        text = context.truncate(text, spill_dir(ctx), ctx.root)
    return Outcome(text, True, result.model_dump(mode="json"))


def _error(tool: str, message: str) -> str:
    return prompts.render("agent/tool_error.md.j2", tool=tool, error=message).strip()
