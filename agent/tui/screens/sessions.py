"""This repository's sessions, newest first; choosing one resumes it.

Dismisses with the chosen session id, or None (Escape).
"""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from agent.conversation import SessionInfo


class SessionsScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "close", "close")]

    def __init__(self, sessions: list[SessionInfo], current: str):
        super().__init__(classes="sessions-screen")
        self.sessions, self.current = sessions, current

    def compose(self):
        with Vertical(id="sessions"):
            yield Static("Sessions in this repository (Enter resumes, Esc closes)",
                         id="sessions-title")
            options = [Option(self._label(s), id=s.id) for s in self.sessions]
            yield OptionList(*options, id="sessions-list")

    def _label(self, s: SessionInfo) -> str:
        mark = "● " if s.id == self.current else "  "
        return f"{mark}{s.id}  {s.messages:>3} msgs  {s.first_request or '(empty)'}"

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_close(self) -> None:
        self.dismiss(None)
