"""OpenAI chat-completions wire format over the engine: request body → engine arguments, engine
events → response JSON (whole or as `chat.completion.chunk`s).

Thinking on/off, in any of the spellings clients use (first one present wins):
    "thinking": true | false                       (flashcode)
    "thinking": {"type": "enabled" | "disabled"}   (DeepSeek API)
    "chat_template_kwargs": {"thinking": bool}     (vLLM / SGLang; also "enable_thinking")
Default: on. `reasoning_effort` low|medium|high|max ("max" adds V4's preamble).
Reasoning comes back as `reasoning_content`, tool calls as structured `tool_calls`.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
from engine.serve import wire
from engine.serve.request import BadRequest, error_body

__all__ = ["ChatRequest", "Reply", "read", "thinking_on"]

_CHOICE = "'auto', 'none', 'required' or {'type': 'function', 'function': {'name': ...}}"


class ChatRequest(BaseModel):
    """The fields this server reads; others (user, penalties, …) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)  # what torch's generator takes
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1)
    reasoning_effort: Literal["low", "medium", "high", "max"] | None = None
    thinking: bool | dict[str, Any] | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None

    @field_validator("tools")
    @classmethod
    def _tools_are_functions(cls, tools):
        for i, t in enumerate(tools or []):
            fn = t.get("function") if isinstance(t, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) \
                    or not isinstance(fn.get("parameters", {}), dict):
                raise ValueError(f"tools[{i}] must be {{'type': 'function', 'function': "
                                 "{'name': ..., 'parameters': {...}}}")
        return tools

    @field_validator("tool_choice")
    @classmethod
    def _choice_names_a_function(cls, choice):
        if isinstance(choice, dict):
            fn = choice.get("function")
            if choice.get("type") != "function" or not isinstance(fn, dict) \
                    or not isinstance(fn.get("name"), str):
                raise ValueError(f"tool_choice must be {_CHOICE}")
        return choice

    @field_validator("stop")
    @classmethod
    def _few_short_stops(cls, stop):
        wire.check_stops([stop] if isinstance(stop, str) else stop or [])
        return stop

    def thinking_on(self) -> bool:
        return thinking_on(self.thinking, self.chat_template_kwargs)

    def params(self) -> SamplingParams:
        picked = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                  "min_p": self.min_p, "seed": self.seed,
                  "max_tokens": self.max_completion_tokens or self.max_tokens,
                  "reasoning_effort": self.reasoning_effort,
                  "response_format": self.response_format, "tool_choice": self.tool_choice}
        stop = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return SamplingParams(**{k: v for k, v in picked.items() if v is not None},
                              stop=stop, thinking=self.thinking_on())


def thinking_on(thinking: bool | dict | None, template_kwargs: dict | None = None,
                default: bool = True) -> bool:
    """Thinking on or off, in any of the spellings clients use (see the module docstring)."""
    if isinstance(thinking, bool):
        return thinking
    if isinstance(thinking, dict) and "type" in thinking:
        return thinking["type"] != "disabled"
    kw = template_kwargs or {}
    for key in ("thinking", "enable_thinking"):
        if key in kw:
            return bool(kw[key])
    return default


def read(body: bytes, server=None) -> tuple[wire.Turn, Reply]:
    """The request as a Turn and the reply to fill, or BadRequest saying what is wrong."""
    try:
        req = ChatRequest.model_validate(wire.json_object(body))
    except ValidationError as e:
        raise wire.invalid(e) from None
    for i, m in enumerate(req.messages):
        _check_content(i, m)
    messages = wire.typed_messages(req.messages)
    turn = wire.Turn(messages, req.tools or [], req.params(), req.stream, req.model)
    include = bool((req.stream_options or {}).get("include_usage"))
    return turn, Reply(req.model or getattr(server, "model_name", "flashcode"), include)


def _check_content(i: int, m: dict) -> None:
    """OpenAI's rule: content is text, a string or a list of text parts; only an assistant
    message that calls tools may leave it out (or null). The chat encoder itself would take
    a missing content as empty and anything else as str(content)."""
    where, content = f"messages[{i}].content", m.get("content")
    if content is None:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            return
        raise BadRequest(f"{where}: a {m.get('role')} message needs content (a string or a "
                         "list of text parts)", where)
    if isinstance(content, str) or isinstance(content, list) and all(
            isinstance(p, dict) and p.get("type", "text") == "text"
            and isinstance(p.get("text"), str) for p in content):
        return
    raise BadRequest(f"{where}: must be a string or a list of {{'type': 'text', 'text': ...}} "
                     "parts", where)


def usage_dict(u: Usage) -> dict:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.generated_tokens,
            "total_tokens": u.prompt_tokens + u.generated_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
            "prefill_tokens_per_second": round(u.prefill_tps, 2),
            "decode_tokens_per_second": round(u.decode_tps, 2)}


def _finish(reason: str) -> str:
    return reason if reason in ("stop", "length", "tool_calls") else "stop"


class Reply(wire.Reply):
    """Turns one reply's engine events into OpenAI JSON: `chat.completion.chunk`s for a
    stream (usage in a last chunk when asked), `whole()` the non-streaming response."""

    def __init__(self, model: str, include_usage: bool = False) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created, self.model = int(time.time()), model
        self.include_usage = include_usage
        self.reasoning, self.content, self.calls = [], [], []
        self.call_ids: dict[int, str] = {}
        self.usage: Usage | None = None
        self.finish = "stop"

    def _base(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def _call_id(self, index: int) -> str:
        return self.call_ids.setdefault(index, f"call_{uuid.uuid4().hex[:24]}")

    def start(self) -> list[wire.Frame]:
        return [(None, self.chunk({"role": "assistant", "content": ""}))]

    def add(self, ev) -> list[wire.Frame]:
        delta = self._record(ev)
        return [(None, self.chunk(delta))] if delta else []

    def end(self) -> list[wire.Frame]:
        usage = [(None, self.usage_chunk())] if self.include_usage else []
        return [(None, self.chunk({}, self.finish)), *usage, (None, "[DONE]")]

    def failed(self, message: str) -> list[wire.Frame]:  # in-band, as OpenAI does
        return [(None, error_body(message, "server_error"))]

    def _record(self, ev) -> dict | None:
        """Record the event; the delta it makes for a stream chunk (None: nothing to send)."""
        if isinstance(ev, ReasoningDelta):
            self.reasoning.append(ev.text)
            return {"reasoning_content": ev.text}
        if isinstance(ev, TextDelta | FormatError):
            text = ev.text if isinstance(ev, TextDelta) else ev.raw  # unparsed markup as text
            self.content.append(text)
            return {"content": text}
        if isinstance(ev, ToolCallStarted):
            return {"tool_calls": [{"index": ev.index, "id": self._call_id(ev.index),
                                    "type": "function",
                                    "function": {"name": ev.name, "arguments": ""}}]}
        if isinstance(ev, ToolCallArgDelta):
            return {"tool_calls": [{"index": ev.index, "function": {"arguments": ev.text}}]}
        if isinstance(ev, ToolCallFinished):
            self.calls.append({"id": self._call_id(ev.index), "type": "function",
                               "function": {"name": ev.name, "arguments": json.dumps(
                                   ev.arguments, ensure_ascii=False)}})
        elif isinstance(ev, Usage):
            self.usage = ev
        elif isinstance(ev, Done):
            self.finish = _finish(ev.finish_reason)
        return None

    def chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {**self._base("chat.completion.chunk"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                             "logprobs": None}]}

    def usage_chunk(self) -> dict:
        return {**self._base("chat.completion.chunk"), "choices": [],
                "usage": usage_dict(self.usage) if self.usage else None}

    def whole(self) -> dict:
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            msg["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            msg["tool_calls"] = self.calls
        return {**self._base("chat.completion"),
                "choices": [{"index": 0, "message": msg, "finish_reason": self.finish,
                             "logprobs": None}],
                "usage": usage_dict(self.usage) if self.usage else None}
