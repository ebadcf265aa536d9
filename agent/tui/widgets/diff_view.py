"""The changes of one turn, hunk by hunk, each accepted or rejected before they are settled.

Hunks are focusable: `a` accepts, `r` rejects, space toggles; Enter on "Apply" (or Ctrl-S
anywhere in the view) settles them. The view posts `DiffView.Decided` with the rejected
(file index, hunk index) pairs; the app reverts those in the working tree.
"""

from __future__ import annotations

from rich.syntax import Syntax
from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Static

from agent.hunks import FileDiff, Hunk

_ADD_BG = {True: "on #12361f", False: "on #d8f5dd"}  # keyed by "is the theme dark"
_DEL_BG = {True: "on #3f1518", False: "on #fadadd"}


def highlight_hunk(path: str, hunk: Hunk, dark: bool = True) -> Text:
    """The hunk with code coloured for `path`'s language and added/removed lines tinted."""
    body = [line[1:] if line[:1] in " +-" else line for line in hunk.lines]
    lexer = Syntax.guess_lexer(path, code="\n".join(body))
    syntax = Syntax("", lexer, theme="monokai" if dark else "default", background_color="default")
    coded = syntax.highlight("\n".join(body)).split("\n", allow_blank=True)
    out = Text(hunk.header + "\n", style="bold cyan")
    for raw, code in zip(hunk.lines, coded, strict=False):
        mark = raw[:1]
        if mark == "+":
            line = Text("+", style="bold green") + code
            line.stylize(_ADD_BG[dark])
        elif mark == "-":
            line = Text("-", style="bold red") + code
            line.stylize(_DEL_BG[dark])
        else:
            line = Text(mark or " ", style="dim") + code
        out.append_text(line)
        out.append("\n")
    out.rstrip()
    return out


class HunkView(Static, can_focus=True):
    BINDINGS = [
        Binding("a", "decide('accept')", "accept hunk"),
        Binding("r", "decide('reject')", "reject hunk"),
        Binding("space", "toggle", "toggle"),
    ]

    def __init__(self, file_index: int, hunk_index: int, path: str, hunk: Hunk):
        super().__init__(id=f"hunk-{file_index}-{hunk_index}", classes="hunk accept")
        self.key = (file_index, hunk_index)
        self.path, self.hunk = path, hunk
        self.decision = "accept"
        self.locked = False

    def render(self) -> Text:
        badge = {"accept": ("[accept] ", "bold green"), "reject": ("[reject] ", "bold red")}
        label, style = badge[self.decision]
        head = Text.assemble((label, style), (f"{self.path}  ", "bold"),
                             (f"+{self.hunk.added} -{self.hunk.removed}\n", "dim"))
        return head + highlight_hunk(self.path, self.hunk, self.app.current_theme.dark)

    def action_decide(self, decision: str) -> None:
        if not self.locked:
            self.decision = decision
            self.set_classes(f"hunk {decision}")
            self.refresh()

    def action_toggle(self) -> None:
        self.action_decide("reject" if self.decision == "accept" else "accept")


class DiffView(Vertical):
    BINDINGS = [Binding("ctrl+s", "apply", "apply decisions"),
                Binding("escape", "leave", "back to the prompt")]

    class Decided(Message):
        def __init__(self, view: DiffView, rejected: set[tuple[int, int]]):
            super().__init__()
            self.view, self.rejected = view, rejected

    class Leave(Message):
        """Escape: the keys go back to the prompt (the hunks keep their decisions)."""

    def __init__(self, files: list[FileDiff], take_focus: bool = False, **kw):
        super().__init__(classes="diff", **kw)
        self.files = files
        self.settled = False
        self.take_focus = take_focus  # the keys go to the review once it is shown

    def compose(self):
        n = sum(max(len(f.hunks), 1) for f in self.files)
        yield Static(Text(f"Changes in this turn: {len(self.files)} file(s), {n} hunk(s). "
                          "a accept · r reject · Ctrl-S apply", style="bold"),
                     classes="diff-title")
        for fi, f in enumerate(self.files):
            if f.is_binary_or_meta:
                yield Static(Text(f"{f.path}: {' '.join(f.head[1:3])}"), classes="diff-meta")
            for hi, hunk in enumerate(f.hunks):
                yield HunkView(fi, hi, f.path, hunk)
        with Horizontal(classes="diff-buttons"):
            yield Button("Apply decisions", id="apply-hunks", variant="primary")
            yield Button("Reject all", id="reject-all", variant="error")

    def on_mount(self) -> None:
        if self.take_focus:
            self.call_after_refresh(self.focus_first)

    def focus_first(self) -> None:
        """Focus the first hunk, so a / r / Ctrl-S act on the review at once."""
        targets = [*self.hunk_views(), *self.query("#apply-hunks")]
        if targets and not self.settled:
            targets[0].focus()

    def action_leave(self) -> None:
        self.post_message(self.Leave())

    def hunk_views(self) -> list[HunkView]:
        return list(self.query(HunkView))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "reject-all":
            for view in self.hunk_views():
                view.action_decide("reject")
        self.action_apply()

    def action_apply(self) -> None:
        if self.settled:
            return
        self.settled = True
        rejected = {v.key for v in self.hunk_views() if v.decision == "reject"}
        for view in self.hunk_views():
            view.locked = True
        for button in self.query(Button):
            button.disabled = True
        self.post_message(self.Decided(self, rejected))
