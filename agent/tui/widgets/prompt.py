"""The input: a multi-line editor with history, `/command` and `@path` completion.

Enter submits; Ctrl-J (or Alt-Enter / Shift-Enter where the terminal sends them) adds a
line. Up/Down on the first/last line walk the history. While the completion menu is open,
Up/Down move in it, Tab or Enter takes the highlighted item and Escape closes it.
"""

from __future__ import annotations

from textual import events, on
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, TextArea
from textual.widgets.option_list import Option

from agent.completion import Completion, PathIndex, complete

NEWLINE_KEYS = {"ctrl+j", "alt+enter", "shift+enter"}


class PromptArea(TextArea):
    """The editor itself; the surrounding PromptBox owns the menu and the history."""

    async def _on_key(self, event: events.Key) -> None:
        box = self.parent
        if isinstance(box, PromptBox) and box.take_key(event.key):
            event.stop()
            event.prevent_default()
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        await super()._on_key(event)


class PromptBox(Vertical):
    """Menu above, editor below. Posts `Submitted(text)` when the user presses Enter."""

    class Submitted(Message):
        def __init__(self, text: str):
            super().__init__()
            self.text = text

    def __init__(self, paths: PathIndex | None = None, history: list[str] | None = None,
                 **kw):
        super().__init__(**kw)
        self.paths = paths
        self.history: list[str] = list(history or [])
        self._hist_pos: int | None = None  # index into history while walking it
        self._draft = ""
        self._items: list[Completion] = []
        self._quiet_change = False  # the next Changed came from history: no menu for it

    def compose(self):
        yield OptionList(id="completions")
        yield PromptArea(id="prompt", soft_wrap=True, compact=True, highlight_cursor_line=False,
                         placeholder="Ask, or /help   (Enter sends, Ctrl-J new line)")

    def on_mount(self) -> None:
        area = self.query_one(PromptArea)
        area.cursor_blink = False  # a blinking cursor redraws twice a second: not quiet
        self.query_one(OptionList).display = False

    @property
    def area(self) -> PromptArea:
        return self.query_one(PromptArea)

    @property
    def menu_open(self) -> bool:
        return bool(self._items)

    def take_key(self, key: str) -> bool:
        """True when the key was ours (menu, history, submit)."""
        if key == "enter" and self.menu_open and self._word_is_complete():
            self._set_items([])  # "/model" typed in full: Enter runs it
        if self.menu_open and key in ("up", "down", "tab", "enter", "escape"):
            return self._menu_key(key)
        if key == "enter":
            self._submit()
            return True
        if key in ("up", "down") and self.history:
            return self._history_key(key)
        return False

    def _menu_key(self, key: str) -> bool:
        menu = self.query_one(OptionList)
        if key == "escape":
            self._set_items([])
        elif key in ("up", "down"):
            step = -1 if key == "up" else 1
            menu.highlighted = ((menu.highlighted or 0) + step) % len(self._items)
        else:
            self.accept_completion(menu.highlighted or 0)
        return True

    def _word_is_complete(self) -> bool:
        menu = self.query_one(OptionList)
        item = self._items[menu.highlighted or 0]
        area = self.area
        cursor = area.document.get_index_from_location(area.cursor_location)
        return area.text[item.start:cursor] == item.text.strip()

    def accept_completion(self, index: int) -> None:
        item = self._items[index]
        area = self.area
        cursor = area.document.get_index_from_location(area.cursor_location)
        start = area.document.get_location_from_index(item.start)
        area.replace(item.text, start, area.document.get_location_from_index(cursor))
        self._set_items([])

    def _history_key(self, key: str) -> bool:
        area = self.area
        row = area.cursor_location[0]
        if key == "up" and row != 0 or key == "down" and row != area.document.line_count - 1:
            return False
        if self._hist_pos is None:
            if key == "down":
                return False
            self._draft, self._hist_pos = area.text, len(self.history)
        self._hist_pos += -1 if key == "up" else 1
        self._hist_pos = max(self._hist_pos, 0)
        if self._hist_pos >= len(self.history):
            text, self._hist_pos = self._draft, None
        else:
            text = self.history[self._hist_pos]
        self._quiet_change = True
        area.load_text(text)
        area.move_cursor(area.document.end)
        return True

    def _submit(self) -> None:
        text = self.area.text.strip()
        if not text:
            return
        if not self.history or self.history[-1] != text:
            self.history.append(text)
        self._hist_pos = None
        self.area.load_text("")
        self._set_items([])
        self.post_message(self.Submitted(text))

    @on(TextArea.Changed)
    def _refresh_menu(self, event: TextArea.Changed) -> None:
        if self._quiet_change:
            self._quiet_change = False
            self._set_items([])
            return
        area = self.area
        cursor = area.document.get_index_from_location(area.cursor_location)
        self._set_items(complete(area.text, cursor, self.paths))

    def _set_items(self, items: list[Completion]) -> None:
        self._items = items
        menu = self.query_one(OptionList)
        menu.clear_options()
        menu.add_options([Option(i.display) for i in items])
        menu.display = bool(items)
        if items:
            menu.highlighted = 0

    @on(OptionList.OptionSelected)
    def _clicked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.accept_completion(event.option_index)
        self.area.focus()
