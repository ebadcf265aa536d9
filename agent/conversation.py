"""One interactive session, front-end neutral: the app and the plain mode both drive this.

It owns the agent, its session log and the checkpoints around each turn, and answers the
slash commands that are not about the screen (/diff, /undo, /compact, /cost, /resume, ...).
A turn runs on whatever thread calls `run_turn`; `interrupt` is safe from any other thread.

Per-hunk review: a checkpoint is taken before each turn and after it; the turn's changes are
the diff between the two trees. Rejecting a hunk reverts it in the working tree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import prompts
from agent import checkpoints, context, hunks, wiring
from agent import rewrite as rewrite_mod
from agent.config import Settings
from agent.escalation import EscalatingModel
from agent.exits import AgentExit
from agent.loop import Agent
from agent.model import LanguageModel
from agent.session import (
    Session,
    SessionError,
    find_session,
    list_sessions,
    read_records,
)
from agent.toolrun import Asker
from tools import gitcmd


@dataclass
class TurnResult:
    exit: AgentExit
    diff: str = ""  # `git diff` of the files the turn changed ("" when none, or no git)
    files: list[hunks.FileDiff] = field(default_factory=list)


@dataclass(frozen=True)
class SessionInfo:
    id: str
    path: Path
    first_request: str  # the first user message, one line
    messages: int


class Conversation:
    """`ask` answers approvals and `on_event` receives the agent's events: the front end's
    handlers, given once and used for every session this conversation switches to."""

    def __init__(self, model: LanguageModel, root: Path, settings: Settings,
                 session: Session | None = None, data_dir: Path | None = None, *,
                 ask: Asker | None = None, on_event: Callable[[dict], None] | None = None,
                 backend: str = ""):
        self.settings, self.data_dir, self.backend = settings, data_dir, backend
        self.root = Path(root).resolve()
        self._model, self._ask, self._on_event = model, ask, on_event
        self.mcp = wiring.mcp_tools(settings, self.root)  # one set of servers for every session
        session = session or Session.create(self.root, model.name, data_dir)
        self.agent = self._new_agent(session)
        self.last_before: checkpoints.Checkpoint | None = None  # checkpoint before the last turn
        self.notes: list[str] = []  # what the user changed, for the model's next request

    def _new_agent(self, session: Session) -> Agent:
        # With an escalation endpoint configured, /escalate (or failed tests) hands over.
        return wiring.build_agent(self.settings, self._model, self.root, session,
                                  ask=self._ask, on_event=self._on_event, mcp=self.mcp)

    @property
    def model(self) -> LanguageModel:
        """The model answering now (the escalation model once escalated)."""
        return self.agent.model

    @property
    def session(self) -> Session:
        return self.agent.session

    # --- turns -----------------------------------------------------------------------------

    def run_turn(self, text: str) -> TurnResult:
        """Run the agent on one request until it exits; the files it changed come back too.
        What the user changed since the last turn (rejected hunks, an undo) is told first, and
        the files the request names as @path go with it."""
        before = self._checkpoint("before turn")
        self.last_before = before or self.last_before
        notes, self.notes = self.notes, []
        text = "\n\n".join([*notes, context.with_attachments(text, self.root, self.agent.ctx)])
        result = self.agent.run(text)
        diff = self.diff_since(before) if before else ""
        return TurnResult(result, diff, hunks.parse(diff))

    def rewrite(self, request: str) -> str:
        """The request rewritten as a task spec, as the editable text the agent will get."""
        facts = rewrite_mod.gather_facts(self.root, request)
        spec = rewrite_mod.rewrite(self.model, request, facts,
                                   lambda usage: self.agent.tally.add(self.model.name, usage))
        return rewrite_mod.task_message(request, spec)

    def interrupt(self) -> None:
        self.agent.interrupt()

    def _checkpoint(self, label: str) -> checkpoints.Checkpoint | None:
        if not (self.root / ".git").exists():
            return None
        try:
            return checkpoints.create(self.root, f"flashcode {label} ({self.session.id})")
        except checkpoints.CheckpointError:
            return None  # e.g. a repository without commits or git missing: no review then

    def diff_since(self, before: checkpoints.Checkpoint) -> str:
        """Working-tree changes since `before`, new and deleted files included."""
        after = self._checkpoint("after turn")
        if after is None or after.tree == before.tree:
            return ""
        proc = gitcmd.run(self.root, "diff-tree", "-p", "--no-renames", "--no-color",
                          "--no-ext-diff", "--no-textconv", before.tree, after.tree)
        return proc.stdout if proc.returncode == 0 else ""

    # --- review ----------------------------------------------------------------------------

    def reject_hunks(self, files: list[hunks.FileDiff], rejected: set[tuple[int, int]]) -> None:
        """Revert the rejected (file, hunk) pairs in the working tree; all or nothing."""
        hunks.apply(self.root, hunks.select(files, rejected), reverse=True)
        if rejected:
            self.session.event("hunks_rejected", hunks=sorted(rejected))
            paths = sorted({files[fi].path for fi, _ in rejected})
            self._tell(f"reverted {len(rejected)} of the hunks you changed", paths)

    def undo(self) -> checkpoints.Restored:
        """Restore the files to the checkpoint before the last turn."""
        if self.last_before is None:
            raise checkpoints.CheckpointError("No turn has changed anything yet.")
        restored = checkpoints.restore(self.root, self.last_before)
        if restored.changes:
            self._tell("undid your last turn (/undo), putting these files back",
                       [p for _, p in restored.changes])
        return restored

    def _tell(self, what: str, paths: list[str]) -> None:
        """Keep a note for the model, sent with the next request."""
        shown = ", ".join(paths[:20]) + (f" and {len(paths) - 20} more" if len(paths) > 20
                                          else "")
        self.notes.append(prompts.render("agent/user_changed.md.j2", what=what,
                                         files=shown).strip())

    # --- commands --------------------------------------------------------------------------

    def compact(self) -> tuple[int, int]:
        """Compact the conversation now; (messages before, after)."""
        msgs = self.session.messages
        before = len(msgs)
        target = context.budget(self.model.context_window) // 2
        count = lambda m: self.model.count_tokens(m, self.agent.tools or [])
        compacted = context.compact(msgs, min(target, count(msgs) // 2), count)
        msgs[:] = compacted
        self.session.event("compaction", messages=compacted)
        return before, len(compacted)

    def escalate(self) -> bool:
        """Hand the rest of the session to the escalation model; False when none is set."""
        return isinstance(self.model, EscalatingModel) and \
            self.model.escalate("the user asked (/escalate)")

    def cost_line(self) -> str:
        return self.agent.tally.line()

    def context_used(self) -> int:
        """Tokens the conversation takes now (exact as of the last reply, estimated since)."""
        return self.agent.tokens.of(self.session.messages)

    def sessions(self) -> list[SessionInfo]:
        """This repository's sessions, newest first."""
        return [session_info(p) for p in reversed(list_sessions(self.root, self.data_dir))]

    def resume(self, session_id: str | None) -> Session:
        """Switch to a recorded session (without an id: the latest other than this one)."""
        if session_id:
            path = find_session(self.root, session_id, self.data_dir)
        else:
            others = [p for p in list_sessions(self.root, self.data_dir)
                      if p.stem != self.session.id]
            if not others:
                raise SessionError(f"no other session of {self.root} to resume.")
            path = others[-1]
        session = Session.load(path)
        self.agent = self._new_agent(session)
        return session

    def clear(self) -> Session:
        """Start a new, empty session (the old one stays on disk)."""
        self.agent = self._new_agent(Session.create(self.root, self.model.name, self.data_dir))
        return self.session


def session_info(path: Path) -> SessionInfo:
    try:
        records = read_records(path)
    except SessionError as exc:  # listed all the same, saying why it cannot be resumed
        return SessionInfo(path.stem, path, f"(damaged: {exc})"[:80], 0)
    msgs = [r["message"] for r in records if r.get("type") == "message"]
    first = next((m.get("content") or "" for m in msgs if m.get("role") == "user"), "")
    return SessionInfo(path.stem, path, " ".join(first.split())[:80], len(msgs))


def resume_hint(conv: Conversation | None) -> str:
    """How to come back to this conversation's session ("" when it has no request yet)."""
    if conv is None or not any(m.get("role") == "user" for m in conv.session.messages):
        return ""
    return f"Resume this session: flashcode --resume {conv.session.id}"
