"""What the three wire formats share (chat_completions.py, responses.py, messages.py).

Every API reads its request into a `Turn`: OpenAI-chat-shaped message dicts made typed by the
same `messages_from_openai`, OpenAI function tools, and SamplingParams. server.py runs every
Turn the same way (Engine.prepare → generate, one constraint for tool calls), so one
conversation renders to the same prompt whichever API sends it, and the engine's prefix cache
serves a turn sent through one API to the next sent through another.

Each API's `Reply` turns the engine's events into frames for a stream, `(SSE event name or
None, JSON object or raw data)`, or into one JSON body. `Blocks` splits a reply into the runs
the Responses API calls output items and the Messages API content blocks: reasoning, text, one
per tool call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from engine.chat.render import messages_from_openai
from engine.events import (
    Done,
    FormatError,
    ReasoningDelta,
    TextDelta,
    ToolCallArgDelta,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
)
from engine.sampling import SamplingParams
from engine.serve.request import BadRequest, load_json

Frame = tuple[str | None, dict | str]
MAX_STOPS, MAX_STOP_CHARS = 16, 512  # each generated token is checked against every stop


@dataclass
class Turn:
    """One generation request as the engine takes it. `where`: the request field a prompt
    over the context window is blamed on (OpenAI's `param`)."""

    messages: list  # typed (engine.chat.render)
    tools: list[dict]  # [{"type": "function", "function": {...}}]
    params: SamplingParams
    stream: bool = False
    model: str | None = None
    where: str = "messages"


class Reply:
    """One reply in one API's shape. Subclasses record what they need in `add` and return the
    frames the event makes; `prompt_tokens` is set before `start`."""

    prompt_tokens = 0
    usage: Usage | None = None
    finish = "stop"  # the engine's finish reason

    def start(self) -> list[Frame]:
        return []

    def add(self, ev) -> list[Frame]:
        raise NotImplementedError

    def end(self) -> list[Frame]:
        return []

    def whole(self) -> dict:
        raise NotImplementedError

    def failed(self, message: str) -> list[Frame]:
        """The frames that report a failure once the stream's headers are out."""
        raise NotImplementedError

    def finished(self) -> None:
        """Called once the reply was delivered whole (the Responses API stores it here)."""


class BlockReply(Reply):
    """A reply made of content blocks (Responses items, Messages blocks): each event becomes
    block steps (`Blocks.feed`), each step `_{step}(block, text)` in the subclass; the reply's
    token ids are kept from `Done`."""

    blocks: Blocks
    tokens: list[int] | None = None

    @property
    def usage(self):
        return self.blocks.usage

    @property
    def finish(self) -> str:
        return self.blocks.finish

    def add(self, ev) -> list[Frame]:
        if isinstance(ev, Done):
            self.tokens = ev.tokens
        frames = []
        for step, block, text in self.blocks.feed(ev):
            frames += getattr(self, f"_{step}")(block, text)
        return frames


def json_object(body: bytes) -> dict:
    data = load_json(body)
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def invalid(e: ValidationError) -> BadRequest:
    """A pydantic error as a 400 naming the field (`messages.0.content: ...`)."""
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return BadRequest(f"{loc}: {err['msg']}" if loc else err["msg"], loc or None)


def typed_messages(dicts: list[dict], where: str = "messages") -> list:
    """OpenAI-chat-shaped dicts → the engine's typed messages, or a 400 naming `where`."""
    try:
        return messages_from_openai(dicts)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"][1:])
        raise BadRequest(f"{where}: {loc + ': ' if loc else ''}{err['msg']}", where) from None
    except (KeyError, TypeError, AttributeError) as e:
        raise BadRequest(f"{where}: malformed message ({e})", where) from None


def merge_leading_system(dicts: list[dict]) -> list[dict]:
    """Several system (or developer) messages before the first other one become one: V4 has
    one system prompt, and its encoder would run their texts together."""
    n = 0
    while n < len(dicts) and dicts[n].get("role") == "system":
        n += 1
    if n < 2:
        return dicts
    text = "\n\n".join(d.get("content") or "" for d in dicts[:n])
    return [{"role": "system", "content": text}, *dicts[n:]]


def function_tool(name: Any, description: Any, parameters: Any, where: str) -> dict:
    """One OpenAI function tool, checked: a name, a JSON-object schema."""
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name must be a non-empty string", f"{where}.name")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise BadRequest(f"{where}: the tool's schema must be a JSON object", where)
    fn = {"name": name, "parameters": parameters}
    if isinstance(description, str):
        fn["description"] = description
    return {"type": "function", "function": fn}


def check_stops(stops: list[str]) -> list[str]:
    if len(stops) > MAX_STOPS or any(len(s) > MAX_STOP_CHARS for s in stops):
        raise ValueError(f"takes at most {MAX_STOPS} strings of at most {MAX_STOP_CHARS} "
                         "characters each")
    return stops


def arguments_text(arguments: dict) -> str:
    return json.dumps(arguments, ensure_ascii=False)


@dataclass
class Block:
    """A run of one kind in a reply: reasoning, text, or one tool call (`call`: the engine's
    index of it; `arguments`: set when it finished)."""

    kind: str  # "reasoning" | "text" | "call"
    index: int  # its position among the reply's blocks
    name: str = ""
    call: int | None = None
    parts: list[str] = field(default_factory=list)
    arguments: dict | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def arguments_json(self) -> str:
        """The arguments as streamed (their deltas joined), else as parsed."""
        return self.text or arguments_text(self.arguments or {})


class Blocks:
    """A reply's events as blocks. `feed` returns the steps an event makes, each
    ("start" | "delta" | "stop", block, delta text); it also keeps usage and the finish."""

    def __init__(self) -> None:
        self.all: list[Block] = []
        self.open: Block | None = None
        self.usage: Usage | None = None
        self.finish = "stop"

    def _start(self, kind: str, **kw) -> list[tuple]:
        steps = self._stop()
        self.open = Block(kind, len(self.all), **kw)
        self.all.append(self.open)
        return [*steps, ("start", self.open, "")]

    def _stop(self) -> list[tuple]:
        block, self.open = self.open, None
        return [("stop", block, "")] if block is not None else []

    def _delta(self, kind: str, text: str) -> list[tuple]:
        if not text:
            return []
        steps = [] if self.open is not None and self.open.kind == kind else self._start(kind)
        self.open.parts.append(text)
        return [*steps, ("delta", self.open, text)]

    def feed(self, ev) -> list[tuple]:
        if isinstance(ev, ReasoningDelta):
            return self._delta("reasoning", ev.text)
        if isinstance(ev, TextDelta | FormatError):  # unparsed markup reaches the client as text
            return self._delta("text", ev.text if isinstance(ev, TextDelta) else ev.raw)
        if isinstance(ev, ToolCallStarted):
            return self._start("call", name=ev.name, call=ev.index)
        if isinstance(ev, ToolCallArgDelta) and self.open is not None and ev.text:
            self.open.parts.append(ev.text)
            return [("delta", self.open, ev.text)]
        if isinstance(ev, ToolCallFinished):
            steps = []
            if self.open is None or self.open.call != ev.index:  # a call with no start event
                steps = self._start("call", name=ev.name, call=ev.index)
            self.open.arguments = ev.arguments
            return [*steps, *self._stop()]
        if isinstance(ev, Usage):
            self.usage = ev
        elif isinstance(ev, Done):
            self.finish = ev.finish_reason
            return self._stop()
        return []
