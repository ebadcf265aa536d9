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
        # (the conversation before the turn, without system messages; the turn's record)
        self._turns: list[tuple[list[Message], dict]] = []
        state: list[Message] = []
        records = read_records(self.path)
        only_assistant = all(r["message"]["role"] in ("assistant", "system")
                             for r in records if r.get("type") == "message")
        for r in records:
            if r.get("type") == "event" and r.get("kind") == "compaction":
                state = [m for m in r["messages"] if m.get("role") != "system"]
            elif r.get("type") == "message" and r["message"].get("role") != "system":
                if r["message"]["role"] == "assistant":
                    self._turns.append((list(state), r))
                state.append(r["message"])
        self._only_assistant = only_assistant
        self._next = 0  # the first turn not played yet
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
        live = [_normal(m) for m in self._view(messages)]
        # The first unplayed turn whose recorded conversation matches the live one: a resumed
        # or compacted session finds its place too.
        for k in range(self._next, len(self._turns)):
            if [_normal(m) for m in self._turns[k][0]] == live:
                self._next = k + 1
                return self._play(self._turns[k][1])
        if self._next >= len(self._turns):
            raise ReplayDiverged(f"the recording {self.path} has {len(self._turns)} assistant "
                                 "turns and all were played; the conversation asked for more.")
        raise self._difference(self._view(messages), self._turns[self._next][0])

    def _view(self, messages: list[Message]) -> list[Message]:
        keep = ("assistant",) if self._only_assistant else ("user", "assistant", "tool")
        return [m for m in messages if m.get("role") in keep]

    @staticmethod
    def _play(record: dict) -> Iterator[Event]:
        for error in record.get("format_errors") or []:
            yield FormatError(**error)
        yield from events_of_message(record["message"], record.get("usage"),
                                     record.get("tokens"))

    def _difference(self, live: list[Message], expected: list[Message]) -> ReplayDiverged:
        for i, (got, want) in enumerate(zip(live, expected, strict=False)):
            if _normal(got) != _normal(want):
                return ReplayDiverged(
                    f"message {i + 1} ({want.get('role')}) differs from the recording "
                    f"{self.path}:\n  recorded: {_short(want)}\n  live:     {_short(got)}")
        return ReplayDiverged(f"before assistant turn {self._next + 1} the recording has "
                              f"{len(expected)} messages and the conversation {len(live)}; "
                              f"it diverged from {self.path}.")


def _normal(msg: Message) -> str:
    content = msg.get("content") or ""
    if msg.get("role") == "tool":
        content = _DIGITS.sub("N", content)
    keep = {k: v for k, v in msg.items() if k in ("role", "tool_call_id", "tool_calls")}
    return json.dumps({**keep, "content": content}, sort_keys=True)


def _short(msg: Message) -> str:
    text = json.dumps(msg.get("content") or msg.get("tool_calls"), ensure_ascii=False)
    return text[:300] + ("…" if len(text) > 300 else "")
