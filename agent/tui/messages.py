"""Messages the agent's worker thread posts to the app (thread-safe: `App.post_message`).

The worker never touches a widget; these carry plain data up, and the app's handlers turn
them into widget updates on the UI thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

from agent.model import ToolCall

if TYPE_CHECKING:
    from concurrent.futures import Future

    from agent.conversation import TurnResult


class AgentEvents(Message):
    """The agent queued events in the app's Inbox ({"type": "text_delta", ...} and the like):
    take them. One is posted per batch, not per event."""


class TurnFinished(Message):
    def __init__(self, result: TurnResult):
        super().__init__()
        self.result = result


class TurnFailed(Message):
    """The turn raised (a bug, or a backend that failed outside the loop's handling)."""

    def __init__(self, error: str):
        super().__init__()
        self.error = error


class ApprovalRequested(Message):
    """The policy holds a call back; the answer ("yes" | "always" | "no" | "no: REASON") goes
    in `answer`. `preview`: the diff the call would make (writes), else None."""

    def __init__(self, call: ToolCall, effect: str, answer: Future, preview: str | None = None):
        super().__init__()
        self.call, self.effect, self.answer, self.preview = call, effect, answer, preview


class LoadProgress(Message):
    """The model is loading: `fraction` in [0, 1], `what` says which part."""

    def __init__(self, fraction: float, what: str = ""):
        super().__init__()
        self.fraction, self.what = fraction, what


class ModelReady(Message):
    def __init__(self, model, error: str | None = None):
        super().__init__()
        self.model, self.error = model, error


class SpecReady(Message):
    """The request was rewritten into `spec` (None when rewriting failed: see `error`)."""

    def __init__(self, request: str, spec: str | None, error: str | None = None):
        super().__init__()
        self.request, self.spec, self.error = request, spec, error
