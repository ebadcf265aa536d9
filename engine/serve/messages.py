"""Anthropic Messages wire format (POST /v1/messages, /v1/messages/count_tokens), as Claude
Code and the anthropic SDK speak it. The reply's shape and events live in messages_reply.py.

Read from a request:
    model, max_tokens       both required, as Anthropic requires them (count_tokens: model)
    system                  a string or text blocks
    messages                user / assistant turns (and system ones, as Claude Code sends them
                            mid-conversation) with text, tool_use, tool_result and thinking
                            blocks; redacted_thinking is dropped, images are refused
    tools                   {name, description, input_schema}; Anthropic's own server tools
                            (web search, code execution, ...) are not offered to the model
    tool_choice             {"type": auto | any | none | tool, "name": ...}
    thinking                {"type": "enabled" | "adaptive"} thinks, {"type": "disabled"} or
                            none at all answers straight away (Anthropic's default)
    output_config.effort    low | medium | high | max (V4's reasoning effort)
    stop_sequences, temperature, top_p, top_k, stream
Headers `x-api-key` (server.py checks it against --api-key) and `anthropic-version`,
`anthropic-beta` are accepted; the betas change nothing here. Errors have Anthropic's shape:
{"type": "error", "error": {"type": "invalid_request_error", "message": ...}}.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.sampling import SamplingParams
from engine.serve import wire
from engine.serve.messages_reply import Reply, error_body
from engine.serve.request import BadRequest

__all__ = ["MessagesRequest", "Reply", "error_body", "read", "read_count"]

_EFFORTS = ("low", "medium", "high", "max")


class CountRequest(BaseModel):
    """What count_tokens reads (and every request to /v1/messages)."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[Any] = Field(min_length=1)
    system: str | list[Any] | None = None
    tools: list[Any] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None


class MessagesRequest(CountRequest):
    max_tokens: int = Field(ge=1)
    stream: bool = False
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)  # flashcode's own

    @field_validator("stop_sequences")
    @classmethod
    def _few_short_stops(cls, stops):
        return wire.check_stops(stops or []) or None


def read(body: bytes, server) -> tuple[wire.Turn, Reply]:
    """The request as a Turn and the reply to fill, or BadRequest saying what is wrong."""
    try:
        req = MessagesRequest.model_validate(wire.json_object(body))
    except ValidationError as e:
        raise wire.invalid(e) from None
    turn = _turn(req)
    turn.stream = req.stream
    decode = server.engine.tok.decode
    return turn, Reply(req.model, req.stop_sequences or [], decode)


def read_count(body: bytes) -> wire.Turn:
    try:
        req = CountRequest.model_validate(wire.json_object(body))
    except ValidationError as e:
        raise wire.invalid(e) from None
    return _turn(req)


def _turn(req: CountRequest) -> wire.Turn:
    dicts = [*_system(req.system), *conversation(req.messages)]
    messages = wire.typed_messages(wire.merge_leading_system(dicts), "messages")
    return wire.Turn(messages, tools(req.tools), params(req), model=req.model)


def params(req: CountRequest) -> SamplingParams:
    kind = (req.thinking or {}).get("type")
    if kind not in (None, "enabled", "disabled", "adaptive"):
        raise BadRequest("thinking.type must be enabled, adaptive or disabled")
    effort = (req.output_config or {}).get("effort")
    if effort is not None and effort not in _EFFORTS:
        raise BadRequest(f"output_config.effort must be one of {', '.join(_EFFORTS)}")
    picked = {"reasoning_effort": effort, "tool_choice": tool_choice(req.tool_choice)}
    if isinstance(req, MessagesRequest):
        picked |= {"max_tokens": req.max_tokens, "temperature": req.temperature,
                   "top_p": req.top_p, "top_k": req.top_k, "seed": req.seed}
        stops = req.stop_sequences or []
    else:
        stops = []
    return SamplingParams(**{k: v for k, v in picked.items() if v is not None}, stop=stops,
                          thinking=kind in ("enabled", "adaptive"))


def tool_choice(choice: dict | None) -> str | dict | None:
    if choice is None:
        return None
    kind = choice.get("type")
    simple = {"auto": "auto", "any": "required", "none": "none"}
    if isinstance(kind, str) and kind in simple:
        return simple[kind]
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise BadRequest("tool_choice must be {\"type\": \"auto\" | \"any\" | \"none\"} or "
                     "{\"type\": \"tool\", \"name\": ...}")


def tools(given: list | None) -> list[dict]:
    """Custom tools as OpenAI function tools. A tool with another `type` is one of
    Anthropic's own, run on Anthropic's side or with a schema only Claude knows."""
    out = []
    for i, t in enumerate(given or []):
        where = f"tools.{i}"
        if not isinstance(t, dict):
            raise BadRequest(f"{where}: a tool must be an object")
        if t.get("type", "custom") != "custom":
            continue
        if not isinstance(t.get("input_schema"), dict):
            raise BadRequest(f"{where}.input_schema: a custom tool needs a JSON Schema object")
        out.append(wire.function_tool(t.get("name"), t.get("description"),
                                      t["input_schema"], where))
    return out


# --- messages → OpenAI-chat-shaped dicts ------------------------------------------------

def _system(system: str | list | None) -> list[dict]:
    if system is None:
        return []
    text = _texts(system, "system") if isinstance(system, list) else system
    return [{"role": "system", "content": text}] if text else []


def _texts(blocks: list, where: str) -> str:
    out = []
    for i, b in enumerate(blocks):
        if not isinstance(b, dict) or b.get("type") != "text" or not isinstance(b.get("text"),
                                                                               str):
            raise BadRequest(f"{where}.{i}: only text blocks are supported here (this model "
                             "reads text only)")
        out.append(b["text"])
    return "".join(out)


def conversation(messages: list) -> list[dict]:
    out: list[dict] = []
    for i, m in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
            raise BadRequest(f"{where}.role must be user or assistant")
        content = m.get("content")
        if isinstance(content, str):
            out.append({"role": m["role"], "content": content})
        elif not isinstance(content, list):
            raise BadRequest(f"{where}.content must be a string or a list of content blocks")
        elif m["role"] == "assistant":
            out.append(_assistant(content, f"{where}.content"))
        elif m["role"] == "system":
            out.append({"role": "system", "content": _texts(content, f"{where}.content")})
        else:
            out.extend(_user(content, f"{where}.content"))
    return out


def _block(b: Any, where: str, kinds: tuple[str, ...]) -> dict:
    if not isinstance(b, dict) or b.get("type") not in kinds:
        kind = b.get("type") if isinstance(b, dict) else type(b).__name__
        raise BadRequest(f"{where}: a {str(kind)[:40]!r} block is not supported here; send "
                         f"{', '.join(kinds)} (this model reads text only)")
    return b


def _string(b: dict, key: str, where: str) -> str:
    if not isinstance(b.get(key), str):
        raise BadRequest(f"{where}.{key} must be a string")
    return b[key]


def _user(blocks: list, where: str) -> list[dict]:
    """Text blocks become user messages, each tool_result a tool message, in their order."""
    out: list[dict] = []
    for i, b in enumerate(blocks):
        b = _block(b, f"{where}.{i}", ("text", "tool_result"))
        if b["type"] == "tool_result":
            text = _result_text(b.get("content", ""), f"{where}.{i}.content")
            if b.get("is_error"):
                text = f"Error: {text}"
            out.append({"role": "tool", "content": text,
                        "tool_call_id": _string(b, "tool_use_id", f"{where}.{i}")})
        elif out and out[-1]["role"] == "user":  # blocks run on, as chat's text parts do
            out[-1]["content"] += _string(b, "text", f"{where}.{i}")
        else:
            out.append({"role": "user", "content": _string(b, "text", f"{where}.{i}")})
    return out


def _result_text(content: Any, where: str) -> str:
    """A tool result's text; an image in it becomes a note (a tool may return one)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or a list of text blocks")
    parts = []
    for i, b in enumerate(content):
        b = _block(b, f"{where}.{i}", ("text", "image", "document", "search_result"))
        parts.append(_string(b, "text", f"{where}.{i}") if b["type"] == "text"
                     else f"[{b['type']} left out: this model reads text only]")
    return "\n\n".join(parts)


def _assistant(blocks: list, where: str) -> dict:
    text, reasoning, calls = [], [], []
    for i, b in enumerate(blocks):
        b = _block(b, f"{where}.{i}", ("text", "thinking", "redacted_thinking", "tool_use"))
        if b["type"] == "text":
            text.append(_string(b, "text", f"{where}.{i}"))
        elif b["type"] == "thinking":
            reasoning.append(_string(b, "thinking", f"{where}.{i}"))
        elif b["type"] == "tool_use":
            if not isinstance(b.get("input"), dict):
                raise BadRequest(f"{where}.{i}.input must be an object")
            calls.append({"id": _string(b, "id", f"{where}.{i}"), "type": "function",
                          "function": {"name": _string(b, "name", f"{where}.{i}"),
                                       "arguments": b["input"]}})
    turn: dict = {"role": "assistant", "content": "".join(text), "tool_calls": calls}
    if reasoning:
        turn["reasoning_content"] = "".join(reasoning)
    return turn

