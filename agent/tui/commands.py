"""Slash commands in the app. Each is a function (app, argument) → None; names and help come
from agent.completion.SLASH_COMMANDS, so completion, /help and dispatch agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent import checkpoints
from agent.completion import SLASH_COMMANDS
from agent.hunks import parse
from agent.tui.widgets.diff_view import HunkView

if TYPE_CHECKING:
    from agent.tui.app import FlashcodeApp

KEYS_HELP = ("Keys: Enter sends · Ctrl-J new line · Up/Down history · Tab completes /commands "
             "and @paths · Ctrl-C interrupts (twice quits) · Ctrl-Q quits · in a diff: a accept, "
             "r reject, Ctrl-S apply · in an approval: y once, a always, n deny")


def run(app: FlashcodeApp, line: str) -> None:
    name, _, arg = line.strip().partition(" ")
    handler = _HANDLERS.get(name)
    if handler is None:
        close = [c for c in SLASH_COMMANDS if c.startswith(name[:3])]
        hint = f" Did you mean {', '.join(close)}?" if close else " See /help."
        app.transcript.add_notice(f"Unknown command {name}.{hint}", "error")
        return
    needs_model = name not in ("/help", "/quit", "/theme", "/sessions")
    if needs_model and app.conversation is None:
        app.transcript.add_notice("The model is not ready yet.", "error")
        return
    if app.busy and name not in ("/help", "/quit", "/theme", "/cost", "/model"):
        app.transcript.add_notice(f"{name} waits until the agent stops (Ctrl-C).", "error")
        return
    handler(app, arg.strip())


def _help(app: FlashcodeApp, arg: str) -> None:
    rows = [f"{name:<10} {text}" for name, text in SLASH_COMMANDS.items()]
    app.transcript.add_notice("\n".join(rows) + "\n\n" + KEYS_HELP)


def _model(app: FlashcodeApp, arg: str) -> None:
    m = app.model
    app.transcript.add_notice(f"Model {m.name} via {app.backend or 'unknown backend'}, "
                              f"context window {m.context_window:,} tokens, thinking "
                              f"{'on' if app.settings.thinking else 'off'}, approval "
                              f"{app.settings.approval}.")


def _rewrite(app: FlashcodeApp, arg: str) -> None:
    app.settings.rewrite = not app.settings.rewrite if arg not in ("on", "off") else arg == "on"
    state = "on" if app.settings.rewrite else "off"
    app.transcript.add_notice(f"Rewriting requests into a task spec: {state}.")


def _diff(app: FlashcodeApp, arg: str) -> None:
    conv = app.conversation
    if conv.last_before is None:
        app.transcript.add_notice("No turn has run yet in this session.")
        return
    files = parse(conv.diff_since(conv.last_before))
    if not files:
        app.transcript.add_notice("No changes since the last turn began.")
        return
    app.show_diff(files)


def _undo(app: FlashcodeApp, arg: str) -> None:
    try:
        restored = app.conversation.undo()
    except checkpoints.CheckpointError as exc:
        app.transcript.add_notice(str(exc), "error")
        return
    app.transcript.add_notice(restored.summary())


def _compact(app: FlashcodeApp, arg: str) -> None:
    before, after = app.conversation.compact()
    app.status.context_used = app.conversation.context_used()
    app.transcript.add_notice(f"Compacted: {before} → {after} messages.")


def _escalate(app: FlashcodeApp, arg: str) -> None:
    if app.conversation.escalate():
        app.transcript.add_notice("From now on the escalation model answers.")
    else:
        app.transcript.add_notice("No escalation model is configured (set "
                                  "escalation_endpoint and escalation_model_name).", "error")


def _sessions(app: FlashcodeApp, arg: str) -> None:
    from agent.tui.screens.sessions import SessionsScreen

    if app.conversation is None:
        app.transcript.add_notice("The model is not ready yet.", "error")
        return

    def chosen(session_id: str | None) -> None:
        if session_id:
            app.resume_session(session_id)
    app.push_screen(SessionsScreen(app.conversation.sessions(), app.conversation.session.id),
                    chosen)


def _resume(app: FlashcodeApp, arg: str) -> None:
    app.resume_session(arg)


def _cost(app: FlashcodeApp, arg: str) -> None:
    app.transcript.add_notice(app.conversation.cost_line())


def _clear(app: FlashcodeApp, arg: str) -> None:
    app.transcript.clear_all()
    session = app.conversation.clear()
    app.status.context_used = 0
    app.transcript.add_notice(f"New session {session.id}.")


def _theme(app: FlashcodeApp, arg: str) -> None:
    light = arg == "light" if arg in ("dark", "light") else app.current_theme.dark  # toggle
    app.theme = "textual-light" if light else "textual-dark"
    for view in app.query(HunkView):
        view.refresh()  # its colours come from the theme at render time


def _quit(app: FlashcodeApp, arg: str) -> None:
    app.exit()


_HANDLERS = {"/help": _help, "/model": _model, "/rewrite": _rewrite, "/diff": _diff,
             "/undo": _undo, "/compact": _compact, "/escalate": _escalate,
             "/sessions": _sessions, "/resume": _resume, "/cost": _cost, "/clear": _clear,
             "/theme": _theme, "/quit": _quit}
