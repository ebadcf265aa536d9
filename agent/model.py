"""The one way the agent sees a model: the `LanguageModel` protocol and the events it streams.

Messages are OpenAI-style dicts, the shape DeepSeek's V4 chat encoder also takes:
    {"role": "system" | "user", "content": str}
    {"role": "assistant", "content": str, "reasoning_content"?: str,
     "tool_calls"?: [{"id", "type": "function", "function": {"name", "arguments": JSON str}}]}
    {"role": "tool", "tool_call_id": str, "content": str}
Tools are OpenAI function specs: {"type": "function", "function": {"name", "description",
"parameters": JSON schema}}.

A backend streams, in order: ReasoningDelta* TextDelta* (ToolCall | FormatError)* Usage? Done.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, Any]


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class FormatError:
    """The model tried to call a tool but the call could not be parsed; `reason` says why."""

    reason: str
    raw: str = ""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    prefill_tps: float | None = None
    decode_tps: float | None = None


@dataclass(frozen=True)
class Done:
    finish_reason: str = "stop"  # "stop" | "tool_calls" | "length"
    tokens: list[int] | None = None  # the exact sampled token ids, when the backend knows them


Event = ReasoningDelta | TextDelta | ToolCall | FormatError | Usage | Done


class BackendError(Exception):
    """The backend failed; the message says what to do about it."""


class Cancelled(Exception):
    """`pump` stopped waiting for the model because the stop flag was set."""


class BackendUnavailable(BackendError):
    """No usable model: unreachable host, refused key, missing weights. CLI exit code 4."""


@runtime_checkable
class LanguageModel(Protocol):
    name: str

    @property
    def context_window(self) -> int: ...

    def stream(self, messages: list[Message], tools: list[dict], *, thinking: bool = True,
               max_tokens: int | None = None,
               response_format: dict | None = None) -> Iterator[Event]:
        """Generate one assistant turn. `response_format` is OpenAI's json_schema form."""
        ...

    def count_tokens(self, messages: list[Message], tools: list[dict]) -> int:
        """Prompt tokens these messages and tools take (exact where the backend can tell)."""
        ...


@dataclass
class Reply:
    """One assistant turn, assembled from its events."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    format_errors: list[FormatError] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str = "stop"
    tokens: list[int] | None = None
    elapsed: float = 0.0  # seconds the turn took to stream

    def add(self, event: Event) -> None:
        match event:
            case ReasoningDelta(text=t):
                self.reasoning += t
            case TextDelta(text=t):
                self.text += t
            case ToolCall():
                self.tool_calls.append(event)
            case FormatError():
                self.format_errors.append(event)
            case Usage():
                self.usage = event
            case Done(finish_reason=reason, tokens=tokens):
                self.finish_reason, self.tokens = reason, tokens

    def usage_dict(self) -> dict | None:
        if self.usage is None:
            return None
        return {k: v for k, v in asdict(self.usage).items() if v is not None}

    def message(self) -> Message:
        """The assistant message as the conversation records it."""
        msg: Message = {"role": "assistant", "content": self.text}
        if self.reasoning:
            msg["reasoning_content"] = self.reasoning
        if self.tool_calls:
            msg["tool_calls"] = [tool_call_dict(c) for c in self.tool_calls]
        return msg


def tool_call_dict(call: ToolCall) -> dict:
    return {"id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}


def events_of_message(msg: Message, usage: dict | None = None,
                      tokens: list[int] | None = None) -> Iterator[Event]:
    """The events that would have produced a recorded assistant message (for replay, tests)."""
    if msg.get("reasoning_content"):
        yield ReasoningDelta(msg["reasoning_content"])
    if msg.get("content"):
        yield TextDelta(msg["content"])
    for call in msg.get("tool_calls") or []:
        fn = call["function"]
        yield parse_tool_call(call.get("id", ""), fn["name"], fn.get("arguments") or "{}")
    if usage:
        yield Usage(**usage)
    yield Done("tool_calls" if msg.get("tool_calls") else "stop", tokens)


def parse_tool_call(call_id: str, name: str, arguments: str) -> ToolCall | FormatError:
    """A ToolCall when `arguments` is a JSON object, else a FormatError saying what is wrong."""
    if not name:
        return FormatError("a tool call has no tool name", arguments)
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError as exc:
        return FormatError(f"the arguments of '{name}' are not valid JSON ({exc})", arguments)
    if not isinstance(parsed, dict):
        return FormatError(f"the arguments of '{name}' must be a JSON object", arguments)
    return ToolCall(call_id, name, parsed)


def event_dict(event: Event) -> dict:
    """{"type": "text_delta", ...}: an event as JSON-ready data."""
    kind = {ReasoningDelta: "reasoning_delta", TextDelta: "text_delta", ToolCall: "tool_call",
            FormatError: "format_error", Usage: "usage", Done: "done"}[type(event)]
    return {"type": kind, **asdict(event)}


_END = object()


def pump(events: Iterable[Event], stop: threading.Event, poll: float = 0.1) -> Iterator[Event]:
    """`events`, iterated in a worker thread, so that the consumer can give up at once when
    `stop` is set (raising Cancelled) even while the backend blocks on a slow read. The worker
    then stops at its next event and closes the stream (the engine stops generating)."""
    q: queue.Queue = queue.Queue(maxsize=64)  # bounded: an endless stream cannot run ahead
    gone = threading.Event()  # the consumer left: the worker should stop

    def put(item) -> None:
        while not gone.is_set():
            try:
                return q.put(item, timeout=poll)
            except queue.Full:
                continue

    def work() -> None:
        it = iter(events)
        try:
            for event in it:
                if gone.is_set():
                    break
                put((event, None))
            put((_END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((_END, exc))
        finally:
            getattr(it, "close", lambda: None)()

    threading.Thread(target=work, daemon=True, name="model-stream").start()
    try:
        while True:
            try:
                item, exc = q.get(timeout=poll)
            except queue.Empty:
                if stop.is_set():
                    raise Cancelled() from None
                continue
            if exc is not None:
                raise exc
            if item is _END:
                return
            yield item
    finally:
        gone.set()


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
