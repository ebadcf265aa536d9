"""The approval modal: a call the policy holds back, answered once, always, or denied.

Dismisses with "yes" | "always" | "no"; Escape denies.
"""

from __future__ import annotations

import json

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from agent.conversation import call_summary
from agent.model import ToolCall

_WHAT = {"write": "change files", "exec": "run a command", "read": "read files"}


class ApprovalScreen(ModalScreen[str]):
    BINDINGS = [
        Binding("y", "answer('yes')", "yes, once"),
        Binding("a", "answer('always')", "always this session"),
        Binding("n", "answer('no')", "deny"),
        Binding("escape", "answer('no')", "deny"),
    ]

    def __init__(self, call: ToolCall, effect: str):
        super().__init__(classes="approval-screen")
        self.call, self.effect = call, effect

    def compose(self):
        args = json.dumps(self.call.arguments, indent=2, ensure_ascii=False)
        if len(args) > 2000:
            args = args[:2000] + "\n…"
        with Vertical(id="approval"):
            yield Static(Text(f"The agent wants to {_WHAT.get(self.effect, self.effect)}:",
                              style="bold"), id="approval-title")
            yield Static(Text(call_summary(self.call.name, self.call.arguments)),
                         id="approval-summary")
            yield Static(Text(args), id="approval-args")
            with Horizontal(id="approval-buttons"):
                yield Button("Yes once (y)", id="yes", variant="success")
                yield Button("Always (a)", id="always", variant="primary")
                yield Button("No (n)", id="no", variant="error")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id)

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)
