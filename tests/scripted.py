"""ScriptedModel: a LanguageModel that plays canned replies, for loop, CLI and TUI tests.

A script is a list of replies; each reply is a list of events (agent.model types), played in
order, one reply per `stream` call. An exception object inside a reply is raised when reached
(an exception mid-stream). Helpers build the common replies:

    model = ScriptedModel([
        call("read", path="app.py"),                  # one tool call
        malformed("edit", '{"path": "app.py", '),     # arguments that are not JSON
        say("Done: fixed the off-by-one."),           # a final answer
    ])
    ScriptedModel.forever(call("list", path="."))     # a model that never stops
    ScriptedModel([endless_text()])                   # a reply that never ends

`model.prompts` holds the messages each call saw, for assertions.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from agent.context import estimate_tokens
from agent.model import (
    Done,
    Event,
    FormatError,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)

_ids = itertools.count(1)


def say(text: str, reasoning: str = "") -> list:
    """A final answer (no tool calls)."""
    return [*([ReasoningDelta(reasoning)] if reasoning else []), TextDelta(text), Done("stop")]


def call(name: str, /, **arguments) -> list:
    """A reply calling one tool (to add text before the call, use `calls(..., text=)`)."""
    return calls((name, arguments))


def calls(*pairs: tuple[str, dict], text: str = "") -> list:
    """A reply calling several tools, in order: calls(("read", {...}), ("shell", {...}))."""
    events: list = [TextDelta(text)] if text else []
    events += [ToolCall(f"call_{next(_ids)}", name, args) for name, args in pairs]
    return [*events, Done("tool_calls")]


def malformed(name: str, raw_arguments: str) -> list:
    """A reply whose tool call arguments are not a JSON object."""
    from agent.model import parse_tool_call

    parsed = parse_tool_call(f"call_{next(_ids)}", name, raw_arguments)
    assert isinstance(parsed, FormatError), "malformed() needs arguments that fail to parse"
    return [parsed, Done("tool_calls")]


def explode(after: list, exc: Exception | None = None) -> list:
    """A reply that streams `after`'s events up to Done, then raises mid-stream."""
    body = [e for e in after if not isinstance(e, Done)]
    return [*body, exc or RuntimeError("connection reset mid-stream")]


def endless_text(chunk: str = "thinking... ") -> Iterator[Event]:
    """A reply that never ends (for time limits and interrupts)."""
    while True:
        yield TextDelta(chunk)


class ScriptedModel:
    name = "scripted"

    def __init__(self, replies: Iterable, context_window: int = 131_072):
        self._replies = iter(replies)
        self._window = context_window
        self.prompts: list[list[Message]] = []
        self.tools_seen: list[list[dict]] = []

    @classmethod
    def forever(cls, reply: list, **kw) -> ScriptedModel:
        """A model that repeats the same reply (typically a tool call) and never finishes."""
        def again():
            while True:
                yield [ToolCall(f"call_{next(_ids)}", e.name, e.arguments)
                       if isinstance(e, ToolCall) else e for e in reply]
        return cls(again(), **kw)

    @property
    def context_window(self) -> int:
        return self._window

    def count_tokens(self, messages: list[Message], tools: list[dict]) -> int:
        return estimate_tokens(messages) + estimate_tokens(tools)

    def stream(self, messages, tools, *, thinking=True, max_tokens=None, response_format=None):
        self.prompts.append([dict(m) for m in messages])
        self.tools_seen.append(tools)
        reply = next(self._replies, None)
        if reply is None:
            raise RuntimeError(f"ScriptedModel ran out of replies after {len(self.prompts) - 1}")
        return self._play(reply, messages)

    def _play(self, reply, messages) -> Iterator[Event]:
        generated = 0
        for event in reply:
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, Done):
                yield Usage(self.count_tokens(messages, []), 0, max(generated // 4, 1))
            generated += len(getattr(event, "text", "") or "")
            yield event
