"""`--model DIR`: the in-process DeepSeek-V4 engine, imported lazily (torch loads only here).

The engine's surface (engine/api.py, not in this build yet) is expected to be:
    Engine.load(path, kernels=..., device_map=...) -> Engine
    engine.stream(messages, tools, thinking=..., max_tokens=..., response_format=...)
        yields engine.events: ReasoningDelta, TextDelta, ToolCallStarted, ToolCallArgDelta,
        ToolCallFinished(index, name, arguments, raw), FormatError(raw, reason),
        Usage(prompt_tokens, cached_tokens, generated_tokens, prefill_tps, decode_tps),
        Done(finish_reason[, tokens])
    engine.count_tokens(messages, tools) -> int;  engine.context_window -> int
`EngineModel` maps those events to the agent's own (by class name: no engine import here).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from agent.model import (
    BackendUnavailable,
    Done,
    Event,
    FormatError,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)

NOT_AVAILABLE = ("the in-process engine is not available in this build; use an endpoint "
                 "instead: --endpoint URL --model-name NAME (vLLM, SGLang, the DeepSeek API, "
                 "or `flashcode serve` on a machine with the weights)")


def load(settings) -> EngineModel:
    """A LanguageModel over the in-process engine, or BackendUnavailable saying why not."""
    try:  # by name: engine.api may not exist in this build, and importing it loads torch
        engine_cls = importlib.import_module("engine.api").Engine
    except (ImportError, AttributeError):
        raise BackendUnavailable(NOT_AVAILABLE) from None
    engine = engine_cls.load(settings.model, kernels=settings.kernels,
                             device_map=settings.device_map)
    return EngineModel(engine, f"local:{settings.model}", settings.context_window)


class EngineModel:
    def __init__(self, engine: Any, name: str, window: int | None = None):
        self.engine, self.name, self._window = engine, name, window

    @property
    def context_window(self) -> int:
        return self._window or self.engine.context_window

    def count_tokens(self, messages, tools) -> int:
        return self.engine.count_tokens(messages, tools)

    def stream(self, messages, tools, *, thinking=True, max_tokens=None,
               response_format=None) -> Iterator[Event]:
        for event in self.engine.stream(messages, tools, thinking=thinking,
                                        max_tokens=max_tokens, response_format=response_format):
            converted = convert(event)
            if converted is not None:
                yield converted


def convert(event: Any) -> Event | None:
    """One engine event as the agent's event; None for fragments the agent does not need."""
    kind = type(event).__name__
    if kind == "ReasoningDelta":
        return ReasoningDelta(event.text)
    if kind == "TextDelta":
        return TextDelta(event.text)
    if kind == "ToolCallFinished":
        return ToolCall(f"call_{event.index}", event.name, dict(event.arguments))
    if kind == "FormatError":
        return FormatError(event.reason, event.raw)
    if kind == "Usage":
        return Usage(event.prompt_tokens, event.cached_tokens, event.generated_tokens,
                     event.prefill_tps, event.decode_tps)
    if kind == "Done":
        return Done(event.finish_reason, getattr(event, "tokens", None))
    return None  # ToolCallStarted, ToolCallArgDelta: the finished call carries everything
