"""`flashcode --plain`: the same session as the app, as a line interface (prompt_toolkit).

Used when asked, and automatically when stdout is not a terminal. Answers stream as plain
text, tool calls print one line each with the first lines of their output, approvals are
y / a / n questions. On a terminal the prompt has history and completes /commands and @paths;
with piped input it reads lines from stdin (and a y/n question reads the next line).

The turn runs on the main thread, so Ctrl-C raises KeyboardInterrupt inside the agent, which
ends the turn as Interrupted; Ctrl-C or Ctrl-D at the prompt quits.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer
from prompt_toolkit.completion import Completion as PTCompletion
from prompt_toolkit.history import InMemoryHistory

from agent import slash, wiring
from agent.completion import (
    PathIndex,
    append_history,
    complete,
    history_path,
    read_history,
)
from agent.config import Settings
from agent.conversation import Conversation, resume_hint
from agent.exits import Submitted
from agent.model import LanguageModel, ToolCall, call_summary
from agent.session import Session, SessionError, find_session
from agent.session import data_dir as default_data_dir

PREVIEW_LINES = 6
PREVIEW_DIFF_LINES = 60  # lines of a write's diff shown before asking
Reader = Callable[[str], str]  # prompt → line; raises EOFError at the end, KeyboardInterrupt


class PlainUI:
    """The line interface around one Conversation, which it builds with its own handlers."""

    def __init__(self, settings: Settings, root: Path, model: LanguageModel, read: Reader,
                 out: TextIO, *, session: Session | None = None, data_dir: Path | None = None,
                 color: bool = False, history_file: Path | None = None):
        self.read, self.out, self.color = read, out, color
        self.history_file = history_file
        self._shown_calls: set[str] = set()
        self._in_reasoning = False
        self._line_open = False  # streamed text has not ended with a newline yet
        self.piped = False  # input comes from a pipe, not a person (set by run_plain)
        self.last_code = 0  # the exit code of the last turn
        self.conv = Conversation(model, root, settings, session=session, data_dir=data_dir,
                                 ask=self.ask, on_event=self.on_event,
                                 backend=wiring.backend_label(settings))

    # --- output ----------------------------------------------------------------------------

    def say(self, text: str = "", style: str = "") -> None:
        self._end_line()
        codes = {"dim": "2", "bold": "1", "red": "31", "green": "32", "yellow": "33"}
        if self.color and style in codes:
            text = f"\x1b[{codes[style]}m{text}\x1b[0m"
        self.out.write(text + "\n")
        self.out.flush()

    def _stream(self, text: str, style: str = "") -> None:
        if self.color and style == "dim":
            text = f"\x1b[2m{text}\x1b[0m"
        self.out.write(text)
        self.out.flush()
        self._line_open = not text.endswith("\n")

    def _end_line(self) -> None:
        if self._line_open:
            self.out.write("\n")
            self._line_open = False

    def on_event(self, event: dict) -> None:
        kind = event["type"]
        if kind == "reasoning_delta":
            if not self._in_reasoning:
                self._end_line()
                self._stream("thinking: ", "dim")
                self._in_reasoning = True
            self._stream(event["text"], "dim")
        elif kind == "text_delta":
            if self._in_reasoning:
                self._end_line()
                self._in_reasoning = False
            self._stream(event["text"])
        elif kind == "tool_call" and event["id"] not in self._shown_calls:
            self._shown_calls.add(event["id"])
            self._in_reasoning = False
            self.say(f"→ {call_summary(event['name'], event['arguments'])}", "bold")
        elif kind == "tool_result":
            self._tool_result(event)
        elif kind == "assistant":
            self._end_line()
            self._in_reasoning = False
        elif kind == "format_error":
            self.say(f"malformed tool call: {event['reason']}", "red")
        elif kind == "cut_off":
            self.say("(the reply was cut off at the length limit; the model continues)", "dim")
        elif kind == "compaction":
            self.say(f"(context compacted to {event['messages']} messages)", "dim")
        elif kind == "mcp":
            self.say(f"MCP server {event['server']} {event['state']}: {event['error']}", "red")

    def _tool_result(self, event: dict) -> None:
        lines = event["content"].splitlines()
        mark, style = ("✓", "green") if event["ok"] else ("✗", "red")
        self.say(f"  {mark} {event['name']}", style)
        for line in lines[:PREVIEW_LINES]:
            self.say(f"    {line}", "dim")
        if len(lines) > PREVIEW_LINES:
            self.say(f"    … {len(lines) - PREVIEW_LINES} more lines", "dim")

    # --- questions -------------------------------------------------------------------------

    def ask(self, call: ToolCall, effect: str, preview: str | None = None) -> str:
        """The Asker: y = once, a = always this session, n = deny (also the default);
        `n REASON` denies and tells the model why. A write shows its diff first."""
        self.say(f"The agent wants to {'run' if effect == 'exec' else effect}: "
                 f"{call_summary(call.name, call.arguments)}", "yellow")
        for line in (preview or "").splitlines()[:PREVIEW_DIFF_LINES]:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
            self.say(f"  {line}", style)
        choices = {"y": "yes", "yes": "yes", "a": "always", "always": "always",
                   "n": "no", "no": "no", "": "no"}
        while True:
            try:
                raw = self.read("Allow? [y]es once / [a]lways / [n]o (n REASON tells the "
                                "model why): ").strip()
            except EOFError:
                return "no"
            word, _, reason = raw.partition(" ")
            if word.lower() in ("n", "no") and reason.strip():
                return f"no: {reason.strip()}"
            if raw.lower() in choices:
                return choices[raw.lower()]
            self.say("Answer y, a or n (or n and a reason).")

    def confirm(self, question: str, default: bool = True) -> bool:
        """A yes/no question; anything but y/yes/n/no (or Enter) is asked again, so a
        stray `/cost` never counts as an answer."""
        hint = "[Y/n]" if default else "[y/N]"
        while True:
            try:
                answer = self.read(f"{question} {hint} ").strip().lower()
            except EOFError:
                return default
            if answer in ("", "y", "yes", "n", "no"):
                return default if not answer else answer.startswith("y")
            self.say("Answer y or n.")

    # --- the loop --------------------------------------------------------------------------

    def loop(self) -> int:
        self.say(f"flashcode {self.conv.model.name} in {self.conv.root} "
                 "(/help for commands, Ctrl-D quits)", "dim")
        while True:
            try:
                line = self.read("> ").strip()
            except (EOFError, KeyboardInterrupt):
                self.say()
                return self.leave()
            if not line:
                continue
            if self.history_file is not None:
                append_history(self.history_file, line)
            if line.startswith("/"):
                if self.command(line) == "quit":
                    return self.leave()
            else:
                self.turn(line)

    def leave(self) -> int:
        """Say how to come back; piped, exit with the last turn's code (a script can tell a
        failed turn from a finished one)."""
        if resume_hint(self.conv):
            self.say(resume_hint(self.conv), "dim")
        return self.last_code if self.piped else 0

    def turn(self, text: str) -> None:
        self._shown_calls.clear()
        task = self.task_for(text)
        if task is None:
            return
        result = self.conv.run_turn(task)
        self.last_code = result.exit.code
        self._end_line()
        if not isinstance(result.exit, Submitted):
            self.say(result.exit.message, "yellow")
        if result.files:
            n = sum(max(len(f.hunks), 1) for f in result.files)
            self.say(f"Changed {len(result.files)} file(s), {n} hunk(s): /diff reviews them "
                     "hunk by hunk, /undo reverts the turn.", "dim")

    def task_for(self, request: str) -> str | None:
        """The request, or its task spec when rewriting is on and the user accepts it."""
        if not self.conv.settings.rewrite:
            return request
        try:
            spec = self.conv.rewrite(request)
        except Exception as exc:  # any failure: the request goes as typed
            self.say(f"(rewriting failed: {exc}; sending your words as they are)", "dim")
            return request
        self.say("Task spec:", "bold")
        self.say(spec)
        choices = {"a": spec, "accept": spec, "y": spec, "yes": spec, "": spec,
                   "s": request, "skip": request, "c": None, "cancel": None, "n": None}
        while True:
            try:
                answer = self.read("[a]ccept / [s]kip (send my words) / [c]ancel: ")
            except EOFError:
                return None
            if answer.strip().lower() in choices:
                chosen = choices[answer.strip().lower()]
                if chosen is None:
                    self.say("Cancelled: nothing was sent.", "dim")
                return chosen
            self.say("Answer a, s or c.")

    def command(self, line: str) -> str | None:
        """Run a slash command; "quit" when it says to leave."""
        notice = slash.run(self.conv, line, own={"/diff": self.review})
        if notice is None:
            return None
        if notice.quit:
            return "quit"
        if notice.text:
            self.say(notice.text, "red" if notice.style == "error" else "")
        return None

    def review(self, arg: str) -> slash.Notice:
        """/diff: each hunk of the last turn's changes, kept or reverted by a y/n answer."""
        files = slash.turn_files(self.conv)
        if isinstance(files, slash.Notice):
            return files
        rejected = set()
        for fi, f in enumerate(files):
            for hi, hunk in enumerate(f.hunks):
                self.say(f"--- {f.path} (+{hunk.added} -{hunk.removed})", "bold")
                self.say(hunk.text().rstrip("\n"))
                if not self.confirm("Keep this hunk?"):
                    rejected.add((fi, hi))
        self.conv.reject_hunks(files, rejected)
        return slash.Notice(f"Reverted {len(rejected)} hunk(s).")


class PathCompleter(Completer):
    """prompt_toolkit's view of agent.completion: /commands at the start, @paths anywhere."""

    def __init__(self, paths: PathIndex):
        self.paths = paths

    def get_completions(self, document, complete_event):
        cursor = document.cursor_position
        for c in complete(document.text, cursor, self.paths):
            yield PTCompletion(c.text, start_position=c.start - cursor, display=c.display)


def terminal_reader(root: Path, history_file: Path, **session_kw) -> Reader:
    """A prompt_toolkit prompt with history and /command + @path completion."""
    history = InMemoryHistory()
    for line in read_history(history_file):
        history.append_string(line)
    session = PromptSession(history=history, completer=PathCompleter(PathIndex(root)),
                            complete_while_typing=True, **session_kw)
    return lambda prompt: session.prompt(prompt)


def stdin_reader(stream: TextIO = sys.stdin, echo: TextIO | None = None) -> Reader:
    """Lines from a pipe; EOFError at its end. Prompts go to `echo` (stdout) when given."""
    def read(prompt: str) -> str:
        if echo is not None:
            echo.write(prompt)
            echo.flush()
        line = stream.readline()
        if not line:
            raise EOFError
        if echo is not None:
            echo.write(line if line.endswith("\n") else line + "\n")
        return line.rstrip("\n")
    return read


def run_plain(settings: Settings, root: Path, model: LanguageModel, *,
              resume: str | None = None, data_dir: Path | None = None,
              read: Reader | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    base = data_dir or default_data_dir()
    session = None
    if resume is not None:
        try:
            session = Session.load(find_session(root, resume or None, data_dir))
        except SessionError as exc:
            print(f"flashcode: cannot resume: {exc}", file=sys.stderr)
            return 2
    tty = sys.stdin.isatty() and out.isatty()
    if read is None:
        read = terminal_reader(root, history_path(base)) if tty else stdin_reader(echo=out)
    ui = PlainUI(settings, root, model, read, out, session=session, data_dir=data_dir,
                 color=out.isatty(), history_file=history_path(base))
    ui.piped = not tty
    if session is not None:
        ui.say(f"Resumed session {session.id} ({len(session.messages)} messages).", "dim")
    return ui.loop()
