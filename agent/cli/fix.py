"""`flashcode fix "TASK"`: work until the task is done and verified, then leave it applied.

1. Checkpoint the working tree (agent.checkpoints) and note the user's uncommitted files: the
   file tools may not change or commit them unless --allow-dirty (Policy.protected).
2. Run the test command (--test, else tools.tests.detect) and record it: tests before.
3. Run the agent (built by agent.wiring). When it submits, verify: the test command exits 0.
   With no test command, the agent's own check counts: the last `tests` or `shell` call it
   made after its last write exited 0. When verification fails, what failed goes back to the
   agent, up to VERIFY_ROUNDS times, all within --max-steps.
4. Verified: the change stays in the working tree (exit 0). Anything else restores the tree to
   the start checkpoint, so it is as it was, and exits 1 (not fixed), 3 (needs approval that
   was not given), 4 (backend unavailable) or 130 (interrupted). Git-ignored files (a `.env`,
   local settings; within a budget) are kept aside at the start too and put back, and an
   unexpected error restores the tree before it is reported.

--json prints the exec events (agent/cli/exec.py) one per line, plus
    {"type": "fix_start", "checkpoint", "test_command", "protected"}
    {"type": "tests", "when": "before"|"after", "command", "ok", "exit_code", "passed", ...}
and last {"type": "summary", "status", "exit_code", "reason", "message", "applied",
"files_changed": [{"status", "path"}], "diff", "test_command", "tests_before", "tests_after",
"steps", "tokens", "cost", "usage", "escalations", "checkpoint", "restored", "attempt", "protected",
"protected_changed", "ignored_restored", "ignored_unprotected"}: `checkpoint` is the start
(`flashcode undo` it to drop a kept fix), `attempt` the agent's unverified work saved just
before the restore (undo it to look at it), `ignored_restored` the git-ignored files put back.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import prompts
from agent import checkpoints, exitcodes, wiring
from agent.cli.args import cwd_of, load_model, settings_for
from agent.cli.output import printer
from agent.config import Settings
from agent.context import discover_instructions
from agent.exits import AgentExit, Interrupted, ModelFailed, Submitted
from agent.loop import Agent
from tools import base, gitcmd
from tools.tests import detect

VERIFY_ROUNDS = 3  # submit → verify → feedback cycles before giving up
_STATUS = {exitcodes.OK: "fixed", exitcodes.NEEDS_APPROVAL: "needs_approval",
           exitcodes.BACKEND_UNAVAILABLE: "backend_unavailable", 130: "interrupted"}


@dataclass
class FixRun:
    """One fix: where it works, what it started from, and what it has seen so far."""

    agent: Agent
    start: checkpoints.Checkpoint
    command: str | None  # the test command; None → the agent's own check
    given: bool  # --test was passed (else detected)
    protected: list[str]
    emit: Callable[[dict], None]
    ignored: str | None = None  # a tree of the git-ignored files at the start
    unprotected: list[str] = field(default_factory=list)  # ignored files over the budget
    instructions: str | None = None
    before: dict | None = None
    after: dict | None = None
    steps: int = 0
    own_check: bool | None = None  # last check after the last write passed (None: no check)
    blocked: bool = False  # a write to a file with the user's uncommitted changes was refused

    @property
    def root(self) -> Path:
        return self.agent.ctx.root


def run(args: argparse.Namespace) -> int:
    return run_fix(settings_for(args), args.task, cwd_of(args), test=args.test, yes=args.yes,
                   as_json=args.json, allow_dirty=args.allow_dirty)


def run_fix(settings: Settings, task: str, cwd: Path, test: str | None = None, yes: bool = False,
            as_json: bool = False, allow_dirty: bool = False, out: TextIO = sys.stdout,
            err: TextIO = sys.stderr) -> int:
    root = wiring.repo_root(cwd)
    if not (root / ".git").exists():
        print(f"flashcode fix: {root} is not in a git repository. fix checkpoints your files "
              "so it can put them back when it fails; run `git init` first.", file=err)
        return exitcodes.USAGE
    if (model := load_model(settings, "fix", err)) is None:
        return exitcodes.BACKEND_UNAVAILABLE
    try:
        run = _prepare(settings, model, root, task, test, yes, allow_dirty,
                       printer(as_json, out, err))
    except checkpoints.CheckpointError as exc:
        print(f"flashcode fix: {exc}\nNothing was changed.", file=err)
        return exitcodes.NOT_FIXED
    run.instructions = discover_instructions(root, cwd)
    try:
        result, verified = _work(run, task)
    except KeyboardInterrupt:  # e.g. during a test run: still put the tree back
        result, verified = Interrupted("Interrupted by the user."), False
    except Exception as exc:  # a bug or a broken part: the tree goes back before it is told
        traceback.print_exc(file=err)
        result, verified = ModelFailed(f"flashcode fix failed: {type(exc).__name__}: {exc}"), \
            False
    summary = _finish(run, result, verified)
    run.emit(summary)
    if not as_json:
        _print_summary(summary, run, out, err)
    return summary["exit_code"]


def _prepare(settings: Settings, model, root: Path, task: str, test: str | None, yes: bool,
             allow_dirty: bool, emit) -> FixRun:
    session = wiring.open_session(root, model.name)
    protected = [] if allow_dirty else dirty_paths(root)
    start = checkpoints.create(root, " ".join(f"fix: start: {task}".split())[:120])
    ignored, unprotected = checkpoints.ignored_tree(root)
    command = test or _detected(root)
    agent = wiring.build_agent(settings, model, root, session, protected=protected,
                               ask=wiring.always_yes if yes else None,
                               on_event=lambda event: _observe(run, event))
    run = FixRun(agent, start, command, test is not None, protected, emit, ignored, unprotected)
    emit({"type": "session", "id": session.id, "path": str(session.path)})
    emit({"type": "fix_start", "checkpoint": start.commit, "test_command": command,
          "protected": protected})
    return run


def dirty_paths(root: Path) -> list[str]:
    """Files with uncommitted changes (staged, unstaged, untracked and not ignored), sorted."""
    out = gitcmd.run(root, "status", "--porcelain", "-z", "--untracked-files=all",
                     check=True).stdout
    entries, paths = out.split("\0"), set()
    i = 0
    while i < len(entries):
        entry = entries[i]
        if len(entry) > 3:
            paths.add(entry[3:])
            if entry[0] in "RC":  # a rename's origin follows as its own entry
                i += 1
                paths.add(entries[i])
        i += 1
    return sorted(paths)


def _detected(root: Path) -> str | None:
    try:
        return detect(root)[1]
    except base.ToolError:
        return None


def _observe(run: FixRun, event: dict) -> None:
    """Forward an agent event; track the agent's own check."""
    run.emit(event)
    if event["type"] != "tool_result":
        return
    if event.get("refused") == "protected":
        run.blocked = True
    tool = base.all_tools().get(event["name"])
    if event["name"] in ("tests", "shell"):
        run.own_check = bool(event["ok"]) and (event.get("output") or {}).get("exit_code") == 0
    elif tool is not None and tool.effect == "write" and event["ok"]:
        run.own_check = None


def _work(run: FixRun, task: str) -> tuple[AgentExit, bool]:
    """Run the agent, verify after each submission; (the last exit, verified)."""
    run.before = _tests(run, "before") if run.command else None
    failing = _failing(run.before) if run.before and not run.before["ok"] else ""
    message = prompts.render("fix/task.md.j2", task=task, test_command=run.command or "",
                             failing=failing, protected=", ".join(run.protected)).strip()
    budget = run.agent.limits.max_steps
    result: AgentExit = Submitted("")
    for _ in range(VERIFY_ROUNDS):
        if budget - run.steps < 1:
            break
        run.agent.limits = replace(run.agent.limits, max_steps=budget - run.steps)
        result = run.agent.run(message, instructions=run.instructions)
        run.steps += run.agent.steps
        if not isinstance(result, Submitted):
            return result, False
        message = _verify(run)
        if message is None:
            return result, True
    return result, False


def _verify(run: FixRun) -> str | None:
    """None when verified, else what to tell the agent."""
    if run.command is None:
        return None if run.own_check else prompts.render("fix/no_check.md.j2").strip()
    run.after = _tests(run, "after")
    if run.after["ok"]:
        return None
    return prompts.render("fix/verify_failed.md.j2", command=run.command,
                          output=_failing(run.after)).strip()


def _tests(run: FixRun, when: str) -> dict:
    """Run the test command through the `tests` tool; a record for the summary."""
    try:
        r = base.call("tests", {"command": run.command} if run.given else {}, run.agent.ctx)
        record = {"command": r.command, "ok": r.exit_code == 0 and not r.timed_out,
                  "exit_code": r.exit_code, "passed": r.passed, "failed": r.failed,
                  "errors": r.errors, "timed_out": r.timed_out, "output": r.output[-4000:]}
    except base.ToolError as exc:
        record = {"command": run.command, "ok": False, "error": str(exc), "output": str(exc)}
    # through the agent: its observers count a failed verification (escalation)
    run.agent.emit({"type": "tests", "when": when, **{k: v for k, v in record.items()
                                                       if k != "output"}})
    return record


def _failing(record: dict) -> str:
    return record["output"].strip()[-2000:]


def _finish(run: FixRun, result: AgentExit, verified: bool) -> dict:
    """Keep a verified change; restore the start checkpoint otherwise. The summary object."""
    root, start = run.root, run.start
    end = checkpoints.snapshot(root)
    files = checkpoints.changed(root, start.tree, end)
    diff = checkpoints.diff(root, start.tree, end)
    code = exitcodes.OK if verified else exitcodes.NOT_FIXED
    if not verified and result.code in _STATUS and result.code != exitcodes.OK:
        code = result.code  # needs approval, backend unavailable, interrupted
    restored = None if verified else checkpoints.restore(root, start)
    ignored = checkpoints.put_back(root, run.ignored) if run.ignored and not verified else []
    escalations = wiring.escalations(run.agent)
    tally = run.agent.tally
    return {"type": "summary", "status": _STATUS.get(code, "not_fixed"), "exit_code": code,
            "reason": _reason(run, result, verified), "message": result.message,
            "applied": verified,
            "files_changed": [{"status": s, "path": p} for s, p in files], "diff": diff,
            "test_command": run.command, "tests_before": run.before, "tests_after": run.after,
            "steps": run.steps, "tokens": tally.total_tokens, "cost": round(tally.cost(), 6),
            "usage": tally.summary(), "escalations": escalations,
            "checkpoint": start.commit, "session": str(run.agent.session.path),
            "restored": [{"status": s, "path": p} for s, p in restored.changes]
            if restored else None,
            "attempt": restored.safety.commit if restored else None,
            "protected": run.protected,
            "protected_changed": sorted({p for _, p in files} & set(run.protected)),
            "ignored_restored": ignored, "ignored_unprotected": run.unprotected,
            "protected_refused": run.blocked}


def _reason(run: FixRun, result: AgentExit, verified: bool) -> str:
    """Why the run ended as it did, in one line."""
    if verified:
        return f"`{run.command}` passes" if run.command else "the agent's own check passed"
    if not isinstance(result, Submitted):
        return f"the agent stopped ({result.status})"
    if run.command:
        return f"`{run.command}` still fails after the agent finished"
    return "no check passed after the agent's last edit"


def _print_summary(s: dict, run: FixRun, out: TextIO, err: TextIO) -> None:
    if s["applied"]:
        counts = f" (before: {_counts(s['tests_before'])}; after: {_counts(s['tests_after'])})" \
            if s["tests_before"] and s["tests_after"] else ""
        print(f"Fixed and verified: {s['reason']}{counts}.", file=out)
        for f in s["files_changed"]:
            print(f"  {f['status']} {f['path']}", file=out)
        print(s["message"], file=out)
        print(f"To undo this fix: flashcode undo {s['checkpoint'][:10]}", file=out)
    else:
        print(f"Not fixed: {s['reason']}.", file=out)
        if s["message"].strip():
            print(f"The agent's last words: {s['message'].strip()}", file=out)
        if run.blocked:
            print("The agent was not allowed to edit files with your uncommitted changes ("
                  f"{', '.join(run.protected)}): commit or stash them, or rerun with "
                  "--allow-dirty.", file=out)
        ignored = f" and {len(s['ignored_restored'])} git-ignored" if s["ignored_restored"] \
            else ""
        print(f"The working tree is as it was at the start ({len(s['restored'])}{ignored} "
              f"file(s) put back). To look at the attempt: flashcode undo {s['attempt'][:10]}",
              file=out)
    for path in s["protected_changed"] if s["applied"] else []:
        print(f"warning: a shell command changed your uncommitted file {path}; its content at "
              f"the start is in checkpoint {s['checkpoint'][:10]} (flashcode undo).", file=err)
    print(f"[{s['status']}] {s['steps']} steps, {run.agent.tally.line()}; session "
          f"{s['session']}", file=err)


def _counts(record: dict) -> str:
    """'1 failed, 2 passed' from a tests record, or its exit code when it was not parsed."""
    parts = [f"{record[k]} {k}" for k in ("failed", "errors", "passed") if record.get(k)]
    return ", ".join(parts) or f"exit code {record.get('exit_code')}"
