"""A tool call as the transcript shows it: what ran, how it ended, the first lines of its
output, and the rest behind a collapsible.
"""

from __future__ import annotations

import json

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Collapsible, Static

PREVIEW_LINES = 6
MAX_SHOWN_LINES = 2000  # the full output lives in the session log and the spill file


def call_summary(name: str, arguments: dict) -> str:
    """`read app.py`, `shell pytest -q`: the tool and its main argument, one line."""
    for key in ("command", "cmd", "path", "file", "pattern", "query"):
        value = arguments.get(key)
        if isinstance(value, list):
            value = " ".join(map(str, value))
        if isinstance(value, str):
            return f"{name} {value}".splitlines()[0][:200]
    args = json.dumps(arguments, ensure_ascii=False)
    return f"{name} {args}"[:200]


class ToolPanel(Vertical):
    """States: running → ok | failed. `status` is the exit status as text."""

    def __init__(self, name: str, arguments: dict):
        super().__init__(classes="tool running")
        self.tool_name, self.arguments = name, arguments
        self.status = "running"
        self.output = ""
        self.header = Static(self._header_text(), classes="tool-header")

    def compose(self):
        yield self.header

    def _header_text(self) -> Text:
        mark = {"running": "⋯", "ok": "✓", "failed": "✗"}[self.status]
        return Text.assemble((f"{mark} ", "bold"), call_summary(self.tool_name, self.arguments))

    def finish(self, ok: bool, content: str) -> None:
        self.status = "ok" if ok else "failed"
        self.output = content
        self.set_classes(f"tool {self.status}")
        self.header.update(self._header_text())
        lines = content.splitlines()
        if lines:
            self.mount(Static(Text("\n".join(lines[:PREVIEW_LINES])), classes="tool-preview"))
        if len(lines) > PREVIEW_LINES:
            rest = lines[PREVIEW_LINES:MAX_SHOWN_LINES]
            more = f"{len(lines) - PREVIEW_LINES} more lines"
            self.mount(Collapsible(Static(Text("\n".join(rest)), classes="tool-more-text"),
                                   title=more, collapsed=True, classes="tool-more"))
