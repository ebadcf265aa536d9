"""Helpers shared by the chat/tokenizer/constraint tests (not fixtures of the model tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from engine.chat.parse import StreamParser
from engine.events import (
    Done,
    FormatError,
    ReasoningDelta,
    TextDelta,
    ToolCallArgDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from tests.conftest import CONFORMANCE

ENCODING = CONFORMANCE / "dsv4-encoding"
CASE_MODES = {1: True, 2: True, 3: True, 4: False}  # case → thinking mode (README table)


def load_case(n: int) -> list[dict]:
    """Case n's messages, with case 1's top-level tools put on the system message."""
    data = json.loads((ENCODING / f"test_input_{n}.json").read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data["messages"][0]["tools"] = data["tools"]
        return data["messages"]
    return data


def expected(n: int) -> str:
    return (ENCODING / f"test_output_{n}.txt").read_text(encoding="utf-8")


@dataclass
class Reply:
    """Everything one reply's events say, gathered."""

    reasoning: str = ""
    content: str = ""
    calls: list[tuple[str, dict]] = field(default_factory=list)
    arg_json: dict[int, str] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    errors: list[FormatError] = field(default_factory=list)
    done: list[Done] = field(default_factory=list)


def gather(events) -> Reply:
    r = Reply()
    for e in events:
        if isinstance(e, ReasoningDelta):
            r.reasoning += e.text
        elif isinstance(e, TextDelta):
            r.content += e.text
        elif isinstance(e, ToolCallStarted):
            r.started.append(e.name)
        elif isinstance(e, ToolCallArgDelta):
            r.arg_json[e.index] = r.arg_json.get(e.index, "") + e.text
        elif isinstance(e, ToolCallFinished):
            r.calls.append((e.name, e.arguments))
        elif isinstance(e, FormatError):
            r.errors.append(e)
        elif isinstance(e, Done):
            r.done.append(e)
    return r


def parse_chunks(chunks: list[str], thinking: bool = True) -> Reply:
    p = StreamParser(thinking)
    events = [e for c in chunks for e in p.feed(c)] + p.finish()
    return gather(events)
