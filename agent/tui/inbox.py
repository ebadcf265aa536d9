"""The agent's events on their way to the UI: queued in order by the agent's thread, taken in
batches by the UI thread, with one wake-up message per batch.

Posting a message per token made the UI thread handle (and hold the GIL for) every token,
which slowed the thread producing them; now a burst of tokens costs one wake-up, and runs of
deltas are joined so a batch is one Markdown append. Timing for the status bar is stamped
here, on the agent's thread, as events happen (not when the UI gets to them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DELTAS = ("text_delta", "reasoning_delta")


class Inbox:
    def __init__(self, wake: Callable[[], None]):
        self.wake = wake  # called (on the agent's thread) when a batch starts
        self._events: list[dict] = []
        self._lock = threading.Lock()
        self._woken = False
        self.asked_at: float | None = None  # when the current request went to the model
        self.first_at: float | None = None  # when its first token came back

    def start_request(self) -> None:
        self.asked_at, self.first_at = time.monotonic(), None

    def put(self, event: dict) -> None:
        """The agent's `on_event` (agent thread): queue `event`, wake the UI if needed."""
        event = self._stamp(event)
        with self._lock:
            self._events.append(event)
            if self._woken:
                return
            self._woken = True
        self.wake()

    def _stamp(self, event: dict) -> dict:
        now, kind = time.monotonic(), event["type"]
        if kind in DELTAS and self.first_at is None:
            self.first_at = now
        elif kind == "usage" and self.asked_at and self.first_at:
            # ttft → prefill speed; first token → now → decode speed (status bar fallbacks)
            event = {**event, "ttft": self.first_at - self.asked_at,
                     "gen_seconds": now - self.first_at}
        elif kind in ("assistant", "tool_result"):
            self.start_request()  # the next request follows
        return event

    def take(self) -> list[dict]:
        """Everything queued so far, in order, with runs of same-kind deltas joined."""
        with self._lock:
            events, self._events = self._events, []
            self._woken = False
        return join_deltas(events)


def join_deltas(events: list[dict]) -> list[dict]:
    out: list[dict] = []
    for event in events:
        if event["type"] in DELTAS and out and out[-1]["type"] == event["type"]:
            out[-1] = {**out[-1], "text": out[-1]["text"] + event["text"]}
        else:
            out.append(event)
    return out
