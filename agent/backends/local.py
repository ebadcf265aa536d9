"""`--model DIR`: the in-process DeepSeek-V4 engine (engine/api.py). This module is the one
place besides agent/cli that imports the engine, and it does so when a model is loaded, so
torch loads only then.

`EngineModel` turns the engine's events (engine.events) into the agent's (agent.model).
"""

from __future__ import annotations

import itertools
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
from engine import events as ev  # plain dataclasses: no torch

RESIDENT = {"auto": None, "on": True, "off": False}  # setting -> Engine.load(resident=)


def load(settings) -> EngineModel:
    """A LanguageModel over the in-process engine, or BackendUnavailable saying why not."""
    try:
        from engine.api import Engine
    except ImportError as exc:  # torch, triton or another engine requirement is broken
        raise BackendUnavailable(
            f"the in-process engine cannot be imported ({type(exc).__name__}: {exc}). "
            "Reinstall flashcode (scripts/setup), check `flashcode doctor`, or use an "
            "endpoint instead: --endpoint URL --model-name NAME.") from None
    try:
        engine = Engine.load(settings.model, kernels=settings.kernels,
                             device_map=settings.device_map,
                             context_window=settings.context_window,
                             resident=RESIDENT[settings.resident],
                             decode=settings.decode,
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
        self._replies = itertools.count()  # numbers the replies: call ids never repeat
        self._stats = self._kv_stats()

    @property
    def context_window(self) -> int:
        return self._window or self.engine.context_window

    def count_tokens(self, messages, tools) -> int:
        return self.engine.count_tokens(messages, tools)

    def stream(self, messages, tools, *, thinking=True, max_tokens=None,
               response_format=None) -> Iterator[Event]:
        reply, prefix = Reply(), f"call_{next(self._replies)}"
        for event in self.engine.stream(self._with_ids(messages), tools, thinking=thinking,
                                        max_tokens=max_tokens, response_format=response_format):
            converted = convert(event, prefix)
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


def convert(event: Any, call_prefix: str = "call") -> Event | None:
    """One engine event as the agent's event; None for fragments the agent does not need.
    A tool call's id is `call_prefix` and its index in the reply."""
    if isinstance(event, ev.ReasoningDelta):
        return ReasoningDelta(event.text)
    if isinstance(event, ev.TextDelta):
        return TextDelta(event.text)
    if isinstance(event, ev.ToolCallFinished):
        return ToolCall(f"{call_prefix}_{event.index}", event.name, dict(event.arguments))
    if isinstance(event, ev.FormatError):
        return FormatError(event.reason, event.raw)
    if isinstance(event, ev.Usage):
        return Usage(event.prompt_tokens, event.cached_tokens, event.generated_tokens,
                     event.prefill_tps, event.decode_tps)
    if isinstance(event, ev.Done):
        return Done(event.finish_reason, event.tokens)
    return None  # ToolCallStarted, ToolCallArgDelta: the finished call carries everything
