"""The approval modal: a call the policy holds back, answered once, always, or denied.

A write shows the diff it would make (colored, scrollable); a command shows its arguments. The
optional reason is sent to the model with a denial, so it knows what to do instead.
Dismisses with "yes" | "always" | "no" | "no: REASON"; Escape denies.
"""

from __future__ import annotations

import json

from rich.syntax import Syntax
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from agent.model import ToolCall, call_summary

_WHAT = {"write": "change files", "exec": "run a command", "read": "read files"}
PREVIEW_CHARS = 20_000


class ApprovalScreen(ModalScreen[str]):
    BINDINGS = [
        Binding("y", "answer('yes')", "yes, once"),
        Binding("a", "answer('always')", "always this session"),
        Binding("n", "answer('no')", "deny"),
        Binding("escape", "answer('no')", "deny"),
    ]

    def __init__(self, call: ToolCall, effect: str, preview: str | None = None):
        super().__init__(classes="approval-screen")
        self.call, self.effect, self.preview = call, effect, preview

    def compose(self):
        with Vertical(id="approval"):
            yield Static(Text(f"The agent wants to {_WHAT.get(self.effect, self.effect)}:",
                              style="bold"), id="approval-title")
            yield Static(Text(call_summary(self.call.name, self.call.arguments)),
                         id="approval-summary")
            with VerticalScroll(id="approval-body"):
                yield Static(self._body(), id="approval-args")
            yield Input(placeholder="reason for a denial, sent to the model (optional)",
                        id="approval-reason")
            with Horizontal(id="approval-buttons"):
                yield Button("Yes once (y)", id="yes", variant="success")
                yield Button("Always (a)", id="always", variant="primary")
                yield Button("No (n)", id="no", variant="error")

    def _body(self):
        if self.preview:
            text = self.preview[:PREVIEW_CHARS] + ("\n…" if len(self.preview) > PREVIEW_CHARS
                                                    else "")
            return Syntax(text, "diff", theme="ansi_dark", background_color="default")
        args = json.dumps(self.call.arguments, indent=2, ensure_ascii=False)
        return Text(args[:2000] + ("\n…" if len(args) > 2000 else ""))

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_answer(event.button.id)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_answer("no")  # Enter in the reason denies with it

    def action_answer(self, answer: str) -> None:
        reason = " ".join(self.query_one("#approval-reason", Input).value.split())
        self.dismiss(f"no: {reason}" if answer == "no" and reason else answer)
