"""The transcript: user requests, streamed answers (Markdown), collapsible reasoning, tool
panels, diffs and notices, in order, scrolled to the newest while the user has not scrolled up.

The app calls these methods on the UI thread; streaming text arrives in batches (the app
coalesces deltas), so a long answer costs one Markdown append per batch, not per token.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Collapsible, Static

from agent.model import Message
from agent.tui.widgets.tool_panel import ToolPanel


class UserMessage(Static):
    pass


class Notice(Static):
    """A line from flashcode itself: an exit, an error, a command's answer."""


class Reasoning(Collapsible):
    def __init__(self, text: str = ""):
        self.text = text
        self.body = Static(Text(text), classes="reasoning-text")
        super().__init__(self.body, title="Thinking", collapsed=True, classes="reasoning")

    def append(self, text: str) -> None:
        self.text += text
        self.body.update(Text(self.text))


def answer_class() -> type:
    """`Answer`, a Markdown widget: made with the first answer, not the first screen (the
    Markdown widget loads markdown-it, which the empty app does not need)."""
    global _ANSWER
    if _ANSWER is None:
        from textual.widgets import Markdown

        _ANSWER = type("Answer", (Markdown,), {"__module__": __name__})
    return _ANSWER


_ANSWER: type | None = None


def __getattr__(name: str):
    if name == "Answer":  # `from agent.tui.widgets.transcript import Answer`
        return answer_class()
    raise AttributeError(name)


class Transcript(VerticalScroll):
    """Holds the conversation's widgets; `current_*` are the ones a streaming turn extends."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.current_answer = None  # the Answer being streamed
        self.current_reasoning: Reasoning | None = None
        self.panels: dict[str, ToolPanel] = {}
        self.user_scrolled = False

    # Following the newest content: on unless the user scrolled up (mouse wheel or keys),
    # and on again once they scroll back to the end. (Textual's anchor() left a streamed
    # answer drawn from its top now and then in a real terminal; bench/tui.py caught it.)

    def on_mouse_scroll_up(self) -> None:
        self.user_scrolled = True

    def on_mouse_scroll_down(self) -> None:
        self.call_after_refresh(self._maybe_resume)

    def action_scroll_up(self) -> None:
        self.user_scrolled = True
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.user_scrolled = True
        super().action_page_up()

    def action_scroll_end(self) -> None:
        self.user_scrolled = False
        super().action_scroll_end()

    def _maybe_resume(self) -> None:
        if self.is_vertical_scroll_end:
            self.user_scrolled = False

    def follow(self) -> None:
        """Keep the newest content in view (after the next layout), unless scrolled away."""
        if not self.user_scrolled:
            self.scroll_end(animate=False)  # runs after refresh: the new height is known

    def _add(self, widget: Widget) -> Widget:
        self.mount(widget)
        self.follow()
        return widget

    def add_user(self, text: str) -> None:
        self.end_stream()
        self._add(UserMessage(Text(text), classes="user"))

    def add_notice(self, text: str, kind: str = "info") -> Notice:
        self.end_stream()
        return self._add(Notice(Text(text), classes=f"notice {kind}"))

    async def append_reasoning(self, text: str) -> None:
        if self.current_reasoning is None:
            self.current_reasoning = self._add(Reasoning())
        self.current_reasoning.append(text)
        self.follow()

    async def append_answer(self, text: str) -> None:
        if self.current_answer is None:
            self.current_answer = answer_class()(classes="answer")
            await self.mount(self.current_answer)  # Markdown appends only once mounted
        if not self.current_answer.is_mounted:  # the app is closing: nothing to draw into
            return
        await self.current_answer.append(text)
        self.follow()

    def end_stream(self) -> None:
        """The reply in flight is complete: the next text starts a new block."""
        self.current_answer = self.current_reasoning = None

    def add_tool_call(self, call_id: str, name: str, arguments: dict) -> ToolPanel:
        # The stream announces a call as it is parsed, the loop again as it runs it: one panel.
        # `panels` holds the calls not finished yet, so an id a backend uses again in a later
        # reply (some number calls per reply) gets a panel of its own.
        if call_id in self.panels:
            return self.panels[call_id]
        self.end_stream()
        panel = self._add(ToolPanel(name, arguments))
        self.panels[call_id] = panel
        return panel

    def finish_tool_call(self, call_id: str, ok: bool, content: str,
                         output: dict | None = None) -> None:
        panel = self.panels.pop(call_id, None)
        if panel is not None:
            panel.finish(ok, content, output)

    def add_widget(self, widget: Widget) -> Widget:
        self.end_stream()
        return self._add(widget)

    def clear_all(self) -> None:
        self.end_stream()
        self.panels.clear()
        self.remove_children()  # removal is scheduled; widgets mounted after it stay

    def replay(self, records: list[dict]) -> None:
        """Show a recorded session (on resume): requests, answers, tool calls, results.

        `records` are the session log's records; message records carry `ok` for tool results.
        """
        for record in records:
            if record.get("type") != "message":
                continue
            msg = record["message"]
            role = msg.get("role")
            if role == "user":
                self.add_user(msg.get("content") or "")
            elif role == "assistant":
                self._replay_assistant(msg)
            elif role == "tool":
                self.finish_tool_call(msg.get("tool_call_id", ""), record.get("ok", True),
                                      msg.get("content") or "")
        self.end_stream()

    def _replay_assistant(self, msg: Message) -> None:
        if msg.get("reasoning_content"):
            self._add(Reasoning(msg["reasoning_content"]))
        if msg.get("content"):
            self._add(answer_class()(msg["content"], classes="answer"))
        for call in msg.get("tool_calls") or []:
            fn = call["function"]
            self.add_tool_call(call["id"], fn["name"], _args(fn.get("arguments")))


def _args(raw) -> dict:
    import json

    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"arguments": raw}
    return value if isinstance(value, dict) else {"arguments": value}


