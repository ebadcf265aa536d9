"""The task spec a request was rewritten into, shown before work starts.

Accept runs the spec (as edited); Skip runs the original request; Escape cancels the turn.
Dismisses with ("accept", spec_text) | ("skip", original) | ("cancel", "").
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TextArea


class TaskSpecScreen(ModalScreen[tuple[str, str]]):
    BINDINGS = [
        Binding("ctrl+s", "accept", "accept"),
        Binding("escape", "cancel", "cancel"),
    ]

    def __init__(self, request: str, spec: str):
        super().__init__(classes="taskspec-screen")
        self.request, self.spec = request, spec

    def compose(self):
        with Vertical(id="taskspec"):
            yield Static(Text("The request, rewritten as a task spec. Edit it, then accept "
                              "(Ctrl-S), or skip to send your words as they are.", style="bold"),
                         id="taskspec-title")
            area = TextArea(self.spec, id="taskspec-text", soft_wrap=True)
            area.cursor_blink = False
            yield area
            with Horizontal(id="taskspec-buttons"):
                yield Button("Accept (Ctrl-S)", id="accept", variant="success")
                yield Button("Skip: use my words", id="skip")
                yield Button("Cancel (Esc)", id="cancel", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {"accept": self.action_accept, "skip": self.action_skip,
         "cancel": self.action_cancel}[event.button.id]()

    def action_accept(self) -> None:
        self.dismiss(("accept", self.query_one("#taskspec-text", TextArea).text))

    def action_skip(self) -> None:
        self.dismiss(("skip", self.request))

    def action_cancel(self) -> None:
        self.dismiss(("cancel", ""))
