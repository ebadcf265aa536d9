"""`flashcode propose "TASK"`: the agent works in its own git worktree on `flashcode/<slug>`.

The user's working tree, index, stash and current branch are never touched: the agent's
ToolContext is rooted in the proposal's worktree (agent.proposals), so every file tool is
confined there, and its checkpoints go to that worktree's own ref. When the agent finishes,
whatever it changed is committed with a generated message (one more model call continuing the
conversation, prompts/commit_message.md.j2; the task text when that fails), written as a
format-patch file, and summarised for `flashcode review`. Nothing changed: the worktree and
branch are removed again.

Because edits cannot reach the user's files, the default approval mode `ask` is raised to
`auto-edit` here; shell commands still need --yes or --approval full-auto.

--json prints the exec events one per line, then {"type": "proposal", "status", "exit_code",
"message", "branch", "worktree", "patch", "commits", "summary", "usage"}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import prompts
from agent import exitcodes, proposals, wiring
from agent.cli.args import cwd_of, load_model, settings_for
from agent.cli.output import printer
from agent.config import Settings
from agent.context import discover_instructions
from agent.exits import AgentExit
from agent.loop import Agent
from agent.model import Reply
from agent.proposals import Proposal, ProposalError
from tools import gitcmd

SUBJECT_MAX = 72


def run(args: argparse.Namespace) -> int:
    return run_propose(settings_for(args), args.task, cwd_of(args), yes=args.yes,
                       as_json=args.json)


def run_propose(settings: Settings, task: str, cwd: Path, yes: bool = False,
                as_json: bool = False, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    root = wiring.repo_root(cwd)
    if (model := load_model(settings, "propose", err)) is None:
        return exitcodes.BACKEND_UNAVAILABLE
    try:
        proposal = proposals.start(root, task)
    except ProposalError as exc:
        print(f"flashcode propose: {exc}\npropose needs a git repository with at least one "
              "commit to start from.", file=err)
        return exitcodes.USAGE
    emit = printer(as_json, out, err)
    agent = _agent(settings, model, proposal, yes, emit)
    emit({"type": "proposal_start", "branch": proposal.branch, "worktree": proposal.worktree})
    wt = Path(proposal.worktree)
    result = agent.run(task, instructions=discover_instructions(wt, wt))
    try:
        report = _conclude(root, proposal, agent, result)
    except ProposalError as exc:
        print(f"flashcode propose: {exc}\nThe work is still in {proposal.worktree}.", file=err)
        return exitcodes.NOT_FIXED
    emit(report)
    if not as_json:
        _print_report(report, agent, out, err)
    return report["exit_code"]


def _agent(settings: Settings, model, proposal: Proposal, yes: bool, emit) -> Agent:
    wt = Path(proposal.worktree)
    session = wiring.open_session(wt, model.name)
    # writes land in the proposal's worktree only: `ask` needs to ask for commands alone
    mode = "auto-edit" if settings.approval == "ask" else settings.approval
    agent = wiring.build_agent(settings, model, wt, session, approval=mode,
                               ask=wiring.always_yes if yes else None, on_event=emit)
    emit({"type": "session", "id": session.id, "path": str(session.path)})
    return agent


def _conclude(root: Path, proposal: Proposal, agent: Agent, result: AgentExit) -> dict:
    """Commit and finish the proposal, or remove it when nothing changed; the report."""
    stat = staged_stat(proposal)
    report = {"type": "proposal", "status": result.status, "exit_code": result.code,
              "message": result.message, "branch": None, "worktree": None, "patch": None,
              "commits": [], "summary": "", "usage": agent.tally.summary()}
    if not stat:
        proposals.discard(root, proposal)
        report["status"] = "no_changes" if result.code == exitcodes.OK else result.status
        report["exit_code"] = result.code if result.code != exitcodes.OK else \
            exitcodes.NOT_FIXED
        return report
    proposals.commit_all(proposal, commit_message(agent, proposal.task, stat))
    summary = f"{result.message.strip()}\n\n{stat}".strip()
    proposal = proposals.finish(root, proposal, summary)
    commits = _git(root, "log", "--reverse", "--format=%h %s",
                   f"{proposal.base}..{proposal.branch}").splitlines()
    report.update(branch=proposal.branch, worktree=proposal.worktree, patch=proposal.patch,
                  commits=commits, summary=summary, usage=agent.tally.summary())
    return report


def staged_stat(proposal: Proposal) -> str:
    """`git diff --stat` of everything the proposal changed since its base (commits and
    files not committed yet); stages the worktree's files in the worktree's own index."""
    wt = Path(proposal.worktree)
    _git(wt, "add", "-A")
    return _git(wt, "diff", "--cached", "--stat", proposal.base).rstrip()


def commit_message(agent: Agent, task: str, diffstat: str) -> str:
    """One model call continuing the conversation (so it knows the change; no tools run);
    the task text when the call fails or says nothing usable."""
    prompt = prompts.render("commit_message.md.j2", task=task, diffstat=diffstat).strip()
    messages = [*agent.session.messages, {"role": "user", "content": prompt}]
    reply = Reply()
    try:
        for event in agent.model.stream(messages, agent.tools or [], thinking=False):
            reply.add(event)
    except Exception:  # any backend failure: the fallback message is good enough
        return fallback_message(task)
    if reply.usage:
        agent.tally.add(agent.model.name, reply.usage)
    agent.session.append({"role": "user", "content": prompt})
    agent.session.append(reply.message(), usage=reply.usage_dict())
    return clean_message(reply.text) or fallback_message(task)


def clean_message(text: str) -> str:
    """The model's message without code fences or quotes; empty when nothing is left."""
    lines = [line for line in text.strip().splitlines() if not line.startswith("```")]
    text = "\n".join(lines).strip().strip("\"'").strip()
    if not text:
        return ""
    subject, _, body = text.partition("\n")
    return (subject.strip()[:100] + ("\n" + body if body.strip() else "")).strip()


def fallback_message(task: str) -> str:
    subject = " ".join(task.split())
    if len(subject) <= SUBJECT_MAX:
        return subject
    return f"{subject[:SUBJECT_MAX - 1].rstrip()}…\n\n{task.strip()}"


def _git(cwd: Path, *args: str) -> str:
    proc = gitcmd.run(cwd, *args)
    if proc.returncode != 0:
        raise ProposalError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _print_report(r: dict, agent: Agent, out: TextIO, err: TextIO) -> None:
    if r["branch"] is None:
        print(f"No changes proposed ({r['status']}): {r['message']}\nThe worktree and branch "
              "were removed; your files were not touched.", file=out)
    else:
        print(f"Proposal {r['branch']} ({len(r['commits'])} commit(s)):", file=out)
        for line in r["commits"]:
            print(f"  {line}", file=out)
        print(f"patch:    {r['patch']}\nworktree: {r['worktree']}\n\n{r['summary']}\n", file=out)
        print(f"Review and apply hunks: flashcode review {r['branch']}\n"
              f"Discard it:             flashcode proposals --discard {r['branch']}", file=out)
    print(f"[{r['status']}] {agent.tally.line()}", file=err)
