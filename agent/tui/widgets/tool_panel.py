"""A tool call as the transcript shows it: what ran, how it ended, the first lines of its
output, and the rest behind a collapsible.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Collapsible, Static

from agent.model import call_summary

PREVIEW_LINES = 6
MAX_SHOWN_LINES = 2000  # the full output lives in the session log and the spill file


class ToolPanel(Vertical):
    """States: running → ok | failed. `status` is the exit status as text."""

    def __init__(self, name: str, arguments: dict):
        super().__init__(classes="tool running")
        self.tool_name, self.arguments = name, arguments
        self.status = "running"
        self.output = ""
        self.exit_note = ""  # " · exit 1", " · timed out": from the tool's result data
        self.header = Static(self._header_text(), classes="tool-header")
        self._composed = False

    def compose(self):
        self._composed = True
        yield self.header
        yield from self._result_widgets()  # when the result came before the panel was drawn

    def _header_text(self) -> Text:
        mark = {"running": "⋯", "ok": "✓", "failed": "✗"}[self.status]
        return Text.assemble((f"{mark} ", "bold"), call_summary(self.tool_name, self.arguments),
                             (self.exit_note, "bold"))

    def finish(self, ok: bool, content: str, output: dict | None = None) -> None:
        """`output` is the tool's result as data; a command's exit code shows in the header."""
        output = output if isinstance(output, dict) else {}
        code = output.get("exit_code")
        if output.get("timed_out"):
            self.exit_note = " · timed out"
        elif isinstance(code, int):
            self.exit_note = f" · exit {code}"
        failed = not ok or output.get("timed_out") or code not in (None, 0)
        self.status = "failed" if failed else "ok"
        self.output = content
        self.set_classes(f"tool {self.status}")
        self.header.update(self._header_text())
        if self._composed:
            self.mount_all(self._result_widgets())

    def _result_widgets(self) -> list:
        """The first lines of the output, and the rest behind a collapsible."""
        lines = self.output.splitlines()
        out = []
        if lines:
            out.append(Static(Text("\n".join(lines[:PREVIEW_LINES])), classes="tool-preview"))
        if len(lines) > PREVIEW_LINES:
            rest = lines[PREVIEW_LINES:MAX_SHOWN_LINES]
            more = f"{len(lines) - PREVIEW_LINES} more lines"
            out.append(Collapsible(Static(Text("\n".join(rest)), classes="tool-more-text"),
                                   title=more, collapsed=True, classes="tool-more"))
        return out
