"""Every slash command once: `fn(conversation, arg) -> Notice`.

The app and the plain mode both dispatch through `run` and only display the notice. The few
commands that need a screen of their own (the /diff review, the /sessions picker, /theme) are
passed to `run` by the front end as `own` handlers; `turn_files` gives both /diff reviews the
same files and messages. Names and help here are also what completion offers and /help shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent import checkpoints, hunks
from agent.session import Session, SessionError

if TYPE_CHECKING:
    from agent.conversation import Conversation


@dataclass(frozen=True)
class Notice:
    """What a command says. `session`: the conversation switched to it (redraw it); `quit`:
    leave the front end."""

    text: str
    style: str = ""  # "" or "error"
    session: Session | None = None
    quit: bool = False


Handler = Callable[["Conversation", str], Notice]
OwnHandler = Callable[[str], "Notice | None"]  # a front end's own: arg → notice (None: silent)


@dataclass(frozen=True)
class Command:
    help: str
    run: Handler | None  # None: only a front end's own handler can do it
    needs_model: bool = True  # refused until the model is loaded
    while_busy: bool = False  # allowed while the agent works


def _help(conv: Conversation | None, arg: str) -> Notice:
    return Notice(help_text())


def _model(conv: Conversation, arg: str) -> Notice:
    m = conv.model
    return Notice(f"Model {m.name} via {conv.backend or 'unknown backend'}, context window "
                  f"{m.context_window:,} tokens, thinking "
                  f"{'on' if conv.settings.thinking else 'off'}, approval "
                  f"{conv.settings.approval}.")


def _rewrite(conv: Conversation, arg: str) -> Notice:
    settings = conv.settings
    settings.rewrite = arg == "on" if arg in ("on", "off") else not settings.rewrite
    return Notice(f"Rewriting requests into a task spec: {'on' if settings.rewrite else 'off'}.")


def _undo(conv: Conversation, arg: str) -> Notice:
    try:
        return Notice(conv.undo().summary())
    except checkpoints.CheckpointError as exc:
        return Notice(str(exc), "error")


def _compact(conv: Conversation, arg: str) -> Notice:
    before, after = conv.compact()
    return Notice(f"Compacted: {before} → {after} messages.")


def _escalate(conv: Conversation, arg: str) -> Notice:
    if conv.escalate():
        return Notice("From now on the escalation model answers.")
    return Notice("No escalation model is configured (set escalation_endpoint and "
                  "escalation_model_name).", "error")


def _sessions(conv: Conversation, arg: str) -> Notice:
    rows = [f"{'*' if s.id == conv.session.id else ' '} {s.id}  {s.messages:>3} msgs  "
            f"{s.first_request}" for s in conv.sessions()]
    return Notice("\n".join(rows) or "No sessions yet.")


def _resume(conv: Conversation, arg: str) -> Notice:
    try:
        session = conv.resume(arg)
    except SessionError as exc:
        return Notice(f"Cannot resume: {exc}", "error")
    return Notice(f"Resumed session {session.id} ({len(session.messages)} messages).",
                  session=session)


def _cost(conv: Conversation, arg: str) -> Notice:
    return Notice(conv.cost_line())


def _clear(conv: Conversation, arg: str) -> Notice:
    session = conv.clear()
    return Notice(f"New session {session.id}.", session=session)


def _theme(conv: Conversation | None, arg: str) -> Notice:
    return Notice("Themes apply to the full-screen app.")


def _mcp(conv: Conversation, arg: str) -> Notice:
    servers = conv.mcp
    if servers is None:
        return Notice("No MCP servers are configured. Add them to config.toml as "
                      "[mcp_servers.NAME] with command (and args, env) or url.")
    if arg not in ("", "start"):
        return Notice("Write /mcp to list the servers, /mcp start to start them now.", "error")
    if arg == "start":
        servers.start()
    return Notice(mcp_report(servers.status()))


def mcp_report(statuses: list) -> str:
    """/mcp's text: each server, its state, and the tools the model sees (or its error)."""
    lines = ["MCP servers (tools are approved like shell commands; rules name them "
             "mcp__SERVER__TOOL):"]
    for s in statuses:
        lines.append(f"  {s.name}  {s.state}  {s.transport}: {s.where}")
        if s.state == "ready":
            lines.append(f"    {len(s.tools)} tools: {', '.join(s.tools) or '(none)'}")
        elif s.state == "not started":
            lines.append("    starts with the first request (or /mcp start)")
        elif s.error:
            lines.append(f"    {s.error}")
    return "\n".join(lines)


def _quit(conv: Conversation | None, arg: str) -> Notice:
    return Notice("", quit=True)


# name → command; the order here is the order /help and completion show.
COMMANDS: dict[str, Command] = {
    "/help": Command("list commands and keys", _help, needs_model=False, while_busy=True),
    "/model": Command("show the model, backend and context window", _model, while_busy=True),
    "/rewrite": Command("toggle rewriting requests into a task spec first", _rewrite),
    "/diff": Command("show what the agent changed since the last turn began", None),
    "/undo": Command("restore the files to the checkpoint before the last turn", _undo),
    "/compact": Command("compact the conversation now to free context", _compact),
    "/escalate": Command("hand the next turn to the escalation model", _escalate),
    "/sessions": Command("list this repository's sessions and resume one", _sessions),
    "/resume": Command("resume a session: /resume [ID] (the latest without an ID)", _resume),
    "/cost": Command("tokens and cost of this session so far", _cost, while_busy=True),
    "/mcp": Command("list the MCP servers, their state and tools: /mcp [start]", _mcp,
                    while_busy=True),
    "/clear": Command("clear the transcript and start a new session", _clear),
    "/theme": Command("switch between the dark and light theme", _theme, needs_model=False,
                      while_busy=True),
    "/quit": Command("leave flashcode", _quit, needs_model=False, while_busy=True),
}


def help_text() -> str:
    return "\n".join(f"{name:<10} {c.help}" for name, c in COMMANDS.items())


def run(conv: Conversation | None, line: str, own: Mapping[str, OwnHandler] | None = None,
        busy: bool = False) -> Notice | None:
    """Run one `/command arg` line; `own` holds the front end's handlers, which win.
    `conv` is None while the model loads; `busy` while the agent works."""
    name, _, arg = line.strip().partition(" ")
    command = COMMANDS.get(name)
    if command is None:
        close = [c for c in COMMANDS if c.startswith(name[:3])]
        hint = f" Did you mean {', '.join(close)}?" if close else " See /help."
        return Notice(f"Unknown command {name}.{hint}", "error")
    if command.needs_model and conv is None:
        return Notice("The model is not ready yet.", "error")
    if busy and not command.while_busy:
        return Notice(f"{name} waits until the agent stops (Ctrl-C).", "error")
    handler = (own or {}).get(name)
    if handler is not None:
        return handler(arg.strip())
    if command.run is None:
        return Notice(f"{name} is not available here.", "error")
    return command.run(conv, arg.strip())


def turn_files(conv: Conversation) -> list[hunks.FileDiff] | Notice:
    """What /diff reviews: the files changed since the last turn began, or why there is
    nothing to review."""
    if conv.last_before is None:
        return Notice("No turn has run yet in this session.")
    files = hunks.parse(conv.diff_since(conv.last_before))
    return files or Notice("No changes since the last turn began.")
