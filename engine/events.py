"""Typed events the engine yields while a reply streams in (chat.parse.StreamParser makes the
text ones; the generator adds Usage). Concatenating every ToolCallArgDelta of one call gives the
JSON text of its arguments, which is what OpenAI-style streaming clients expect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    index: int  # 0, 1, … within this reply
    name: str


@dataclass(frozen=True)
class ToolCallArgDelta:
    index: int
    text: str  # a fragment of the arguments' JSON text


@dataclass(frozen=True)
class ToolCallFinished:
    index: int
    name: str
    arguments: dict[str, Any]
    raw: str  # the call's DSML text, `<｜DSML｜invoke …` through `</｜DSML｜invoke>`


@dataclass(frozen=True)
class FormatError:
    """Markup the parser could not read; `raw` is the text from where the markup began."""

    raw: str
    reason: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    cached_tokens: int
    generated_tokens: int
    prefill_tps: float
    decode_tps: float
    spec_acceptance: float | None = None  # MTP drafts accepted / drafted; None: no speculation


@dataclass(frozen=True)
class Done:
    finish_reason: str  # "stop" | "tool_calls" | "length" | "error"
    tokens: list[int] | None = None  # the ids sampled (generate.py sets them), for exact replay


Event = (ReasoningDelta | TextDelta | ToolCallStarted | ToolCallArgDelta | ToolCallFinished
         | FormatError | Usage | Done)
