"""`--model DIR`: the in-process DeepSeek-V4 engine, imported lazily (torch loads only here).

The engine's surface (engine/api.py):
    Engine.load(path, kernels=..., device_map=..., context_window=..., resident=...) -> Engine
    engine.stream(messages, tools, thinking=..., max_tokens=..., response_format=...)
        yields engine.events: ReasoningDelta, TextDelta, ToolCallStarted, ToolCallArgDelta,
        ToolCallFinished(index, name, arguments, raw), FormatError(raw, reason),
        Usage(prompt_tokens, cached_tokens, generated_tokens, prefill_tps, decode_tps),
        Done(finish_reason, tokens)
    engine.count_tokens(messages, tools) -> int;  engine.context_window -> int
    engine.kv_stats() -> {"kv_bytes", "kv_sequences", "kv_tokens", ...}  (ints)
`EngineModel` maps those events to the agent's own (by class name: no engine import here).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from typing import Any

from agent.model import (
    BackendUnavailable,
    Done,
    Event,
    FormatError,
    ReasoningDelta,
    Reply,
    TextDelta,
    ToolCall,
    Usage,
)
from agent.paths import flashcode_dir

RESIDENT = {"auto": None, "on": True, "off": False}  # setting -> Engine.load(resident=)

NOT_AVAILABLE = ("the in-process engine is not available in this build; use an endpoint "
                 "instead: --endpoint URL --model-name NAME (vLLM, SGLang, the DeepSeek API, "
                 "or `flashcode serve` on a machine with the weights)")


def load(settings) -> EngineModel:
    """A LanguageModel over the in-process engine, or BackendUnavailable saying why not."""
    try:  # by name: engine.api may not exist in this build, and importing it loads torch
        engine_cls = importlib.import_module("engine.api").Engine
    except (ImportError, AttributeError):
        raise BackendUnavailable(NOT_AVAILABLE) from None
    try:
        engine = engine_cls.load(settings.model, kernels=settings.kernels,
                                 device_map=settings.device_map,
                                 context_window=settings.context_window,
                                 resident=RESIDENT[settings.resident],
                                 kv_cache_bytes=int(settings.kv_cache_gib * 2**30),
                                 kv_dir=kv_dir(settings),
                                 kv_dir_bytes=int(settings.kv_dir_gib * 2**30))
    except (OSError, ValueError, RuntimeError) as exc:  # no weights, bad config, wrong tokenizer
        raise BackendUnavailable(f"cannot load the checkpoint {settings.model}: {exc}") from None
    return EngineModel(engine, f"local:{settings.model}", settings.context_window)


def kv_dir(settings) -> str | None:
    """Where the engine saves prompt states: the setting, else the XDG cache; None when off."""
    if settings.kv_dir.strip().lower() == "off":
        return None
    if settings.kv_dir.strip():
        return os.path.expanduser(settings.kv_dir)
    return str(flashcode_dir("cache") / "kv")


class EngineModel:
    """Remembers the token ids of the replies it produced (the last REMEMBER), and hands them
    back with the same assistant message on later turns: the engine then splices the sampled
    ids instead of re-tokenizing the text, so the new prompt extends the old one token for
    token and its prefix is reused.

    `stats()` answers from a snapshot of the engine's KV numbers taken on the streaming thread
    when a reply's Usage arrives (the engine's cache is not locked, and the UI asks from
    another thread)."""

    REMEMBER = 64

    def __init__(self, engine: Any, name: str, window: int | None = None):
        self.engine, self.name, self._window = engine, name, window
        self._sampled: dict[str, list[int]] = {}  # _turn_key(message) → ids
        self._stats = self._kv_stats()

    @property
    def context_window(self) -> int:
        return self._window or self.engine.context_window

    def count_tokens(self, messages, tools) -> int:
        return self.engine.count_tokens(messages, tools)

    def stream(self, messages, tools, *, thinking=True, max_tokens=None,
               response_format=None) -> Iterator[Event]:
        reply = Reply()
        for event in self.engine.stream(self._with_ids(messages), tools, thinking=thinking,
                                        max_tokens=max_tokens, response_format=response_format):
            converted = convert(event)
            if isinstance(converted, Usage):  # the reply's state is in the cache by now
                self._stats = self._kv_stats()
            if converted is not None:
                reply.add(converted)
                yield converted
        if reply.tokens:
            self._sampled[_turn_key(reply.message())] = list(reply.tokens)
            while len(self._sampled) > self.REMEMBER:
                self._sampled.pop(next(iter(self._sampled)))

    def stats(self) -> dict[str, int]:
        """{"kv_bytes", "kv_sequences", "kv_tokens", "prefix_hits", ...} as of the last reply
        ({} from an engine that does not report them)."""
        return dict(self._stats)

    def _kv_stats(self) -> dict[str, int]:
        report = getattr(self.engine, "kv_stats", None)
        return report() if callable(report) else {}

    def _with_ids(self, messages: list[dict]) -> list[dict]:
        out = []
        for m in messages:
            ids = self._sampled.get(_turn_key(m)) if m.get("role") == "assistant" else None
            out.append({**m, "token_ids": ids} if ids and "token_ids" not in m else m)
        return out


def _turn_key(m: dict) -> str:
    """An assistant message by what the model wrote (call ids and extra keys aside)."""
    calls = [(c["function"]["name"], c["function"].get("arguments"))
             for c in m.get("tool_calls") or []]
    return json.dumps([m.get("content") or "", m.get("reasoning_content") or "", calls])


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
