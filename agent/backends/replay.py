"""`--model replay:PATH`: replay the assistant turns of a recorded session, in order.

For demos, bug reports and tests. Each `stream` call plays the recorded assistant turn that
comes after those already in the conversation (reasoning, text, tool calls, malformed calls,
usage, tokens), after checking that the conversation so far matches the recording; when it
does not, it fails with the first difference. Tool output is compared with digits masked, so
timings may differ. A recording with only assistant turns (hand-written) is checked on those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from agent.model import BackendError, Event, FormatError, Message, events_of_message
from agent.session import read_records

_DIGITS = re.compile(r"\d+(?:\.\d+)?")


class ReplayDiverged(BackendError):
    """The live conversation no longer matches the recording."""


class ReplayModel:
    def __init__(self, path: Path, context_window: int = 1_048_576):
        self.path = Path(path)
        self.name = f"replay:{self.path.name}"
        self._window = context_window
        self._records = [r for r in read_records(self.path) if r.get("type") == "message"
                         and r["message"].get("role") != "system"]
        self._turns = [i for i, r in enumerate(self._records)
                       if r["message"]["role"] == "assistant"]
        self._only_assistant = len(self._turns) == len(self._records)
        self._next = 0
        if not self._turns:
            raise BackendError(f"{self.path} holds no assistant turns to replay.")

    @property
    def context_window(self) -> int:
        return self._window

    def count_tokens(self, messages: list[Message], tools: list[dict]) -> int:
        from agent.context import estimate_tokens

        return estimate_tokens(messages) + estimate_tokens(tools)

    def stream(self, messages, tools, *, thinking=True, max_tokens=None,
               response_format=None) -> Iterator[Event]:
        # The turn to play is the one after those already in the conversation, so a resumed
        # session picks up where it stopped.
        self._next = sum(1 for m in messages if m.get("role") == "assistant")
        if self._next >= len(self._turns):
            raise ReplayDiverged(f"the recording {self.path} has {len(self._turns)} assistant "
                                 "turns and all were played; the conversation asked for more.")
        at = self._turns[self._next]
        self._check(messages, self._records[:at])
        return self._play(self._records[at])

    @staticmethod
    def _play(record: dict) -> Iterator[Event]:
        for error in record.get("format_errors") or []:
            yield FormatError(**error)
        yield from events_of_message(record["message"], record.get("usage"),
                                     record.get("tokens"))

    def _check(self, messages: list[Message], expected_records: list[dict]) -> None:
        live = [m for m in messages if m.get("role") != "system"]
        expected = [r["message"] for r in expected_records]
        if self._only_assistant:
            live = [m for m in live if m["role"] == "assistant"]
        if len(live) != len(expected):
            raise ReplayDiverged(f"before assistant turn {self._next + 1} the recording has "
                                 f"{len(expected)} messages and the conversation "
                                 f"{len(live)}; it diverged from {self.path}.")
        for i, (got, want) in enumerate(zip(live, expected, strict=True)):
            if _normal(got) != _normal(want):
                raise ReplayDiverged(
                    f"message {i + 1} ({want.get('role')}) differs from the recording "
                    f"{self.path}:\n  recorded: {_short(want)}\n  live:     {_short(got)}")


def _normal(msg: Message) -> str:
    content = msg.get("content") or ""
    if msg.get("role") == "tool":
        content = _DIGITS.sub("N", content)
    keep = {k: v for k, v in msg.items() if k in ("role", "tool_call_id", "tool_calls")}
    return json.dumps({**keep, "content": content}, sort_keys=True)


def _short(msg: Message) -> str:
    text = json.dumps(msg.get("content") or msg.get("tool_calls"), ensure_ascii=False)
    return text[:300] + ("…" if len(text) > 300 else "")
