"""The local-engine adapter: engine events (mirrored here by class name) become agent events,
and a build without engine.api says to use an endpoint."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import pytest

from agent.backends import local
from agent.config import Settings
from agent.model import BackendUnavailable, Done, FormatError, Reply, ToolCall, Usage


# The engine's event shapes (engine/events.py on the chat branch), by name and fields.
@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    index: int
    name: str


@dataclass(frozen=True)
class ToolCallArgDelta:
    index: int
    text: str


@dataclass(frozen=True)
class ToolCallFinished:
    index: int
    name: str
    arguments: dict[str, Any]
    raw: str


@dataclass(frozen=True)
class EngineFormatError:
    raw: str
    reason: str


EngineFormatError.__name__ = "FormatError"


@dataclass(frozen=True)
class EngineUsage:
    prompt_tokens: int
    cached_tokens: int
    generated_tokens: int
    prefill_tps: float
    decode_tps: float


EngineUsage.__name__ = "Usage"


@dataclass(frozen=True)
class EngineDone:
    finish_reason: str


EngineDone.__name__ = "Done"


class FakeEngine:
    context_window = 1_048_576

    def __init__(self, events):
        self.events, self.calls = events, []

    def stream(self, messages, tools, **kw):
        self.calls.append(kw)
        yield from self.events

    def count_tokens(self, messages, tools):
        return 7 * len(messages)


def test_engine_events_become_agent_events():
    engine = FakeEngine([ReasoningDelta("hmm"), TextDelta("ok"), ToolCallStarted(0, "read"),
                         ToolCallArgDelta(0, '{"path":'), ToolCallArgDelta(0, '"a"}'),
                         ToolCallFinished(0, "read", {"path": "a"}, "<dsml>"),
                         EngineFormatError("<bad", "unclosed invoke"),
                         EngineUsage(100, 80, 12, 5000.0, 40.0), EngineDone("tool_calls")])
    model = local.EngineModel(engine, "local:x")
    reply = Reply()
    events = list(model.stream([{"role": "user", "content": "hi"}], [], thinking=False))
    for e in events:
        reply.add(e)
    assert (reply.reasoning, reply.text) == ("hmm", "ok")
    assert reply.tool_calls == [ToolCall("call_0", "read", {"path": "a"})]
    assert reply.format_errors == [FormatError("unclosed invoke", "<bad")]
    assert reply.usage == Usage(100, 80, 12, 5000.0, 40.0)
    assert isinstance(events[-1], Done) and reply.finish_reason == "tool_calls"
    assert engine.calls[0]["thinking"] is False
    assert model.context_window == 1_048_576 and model.count_tokens([{}, {}], []) == 14


def test_without_the_engine_it_says_to_use_an_endpoint(tmp_path):
    if importlib.util.find_spec("engine.api") is not None:
        pytest.skip("this build has the in-process engine")
    with pytest.raises(BackendUnavailable, match="--endpoint URL"):
        local.load(Settings(model=str(tmp_path)))
