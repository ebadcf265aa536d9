"""OpenAI Responses wire format (POST /v1/responses), as Codex CLI and the openai SDK's
`responses.create` speak it. The reply's shape, events and store live in responses_reply.py.

Read from a request:
    input           a string, or items: message (user, assistant, system, developer; text
                    parts), function_call, function_call_output, reasoning (its text goes
                    back into the prompt as the assistant turn's reasoning)
    instructions    the system prompt (not carried over from a previous response, as OpenAI)
    tools           function tools, also inside a `namespace` tool; hosted tools (web_search,
                    file_search, ...) run on OpenAI's side, so the model is not offered them
    tool_choice     auto | none | required | {"type": "function", "name": ...}
    reasoning       {"effort": none (no thinking) | minimal | low | medium | high | xhigh}
    text.format     text | json_object | json_schema (as chat's response_format)
    previous_response_id, store   responses are kept in memory (bounded) unless store=false
    max_output_tokens, temperature, top_p; flashcode's own top_k, min_p, seed, thinking
Other fields (include, metadata, prompt_cache_key, parallel_tool_calls, ...) are accepted; the
prefix cache needs no key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.sampling import SamplingParams
from engine.serve import wire
from engine.serve.chat_completions import thinking_on
from engine.serve.request import BadRequest
from engine.serve.responses_reply import Reply, Store

__all__ = ["Reply", "ResponsesRequest", "Store", "read"]

_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "max"}
_TEXT_PARTS = ("input_text", "output_text", "text", "refusal", "summary_text", "reasoning_text")
_CHOICE = "'auto', 'none', 'required' or {'type': 'function', 'name': ...}"


class ResponsesRequest(BaseModel):
    """The fields this server reads; the others are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    input: str | list[Any] | None = None
    instructions: str | None = None
    tools: list[Any] | None = None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    thinking: bool | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


def read(body: bytes, server) -> tuple[wire.Turn, Reply]:
    """The request as a Turn and the reply to fill, or BadRequest saying what is wrong."""
    try:
        req = ResponsesRequest.model_validate(wire.json_object(body))
    except ValidationError as e:
        raise wire.invalid(e) from None
    history: list[dict] = []
    if req.previous_response_id is not None:
        history = server.responses.get(req.previous_response_id)
        if history is None:
            raise BadRequest(f"previous response with id {req.previous_response_id!r} not "
                             "found (responses are kept in memory, a bounded number of them, "
                             "and not with store=false)", "previous_response_id",
                             "previous_response_not_found")
    convo = [*history, *input_messages(req.input)]
    if not convo:
        raise BadRequest("input: give the conversation (a string or a list of items)", "input")
    system = [{"role": "system", "content": req.instructions}] if req.instructions else []
    messages = wire.typed_messages(wire.merge_leading_system([*system, *convo]), "input")
    tools, spaces = function_tools(req.tools)
    turn = wire.Turn(messages, tools, params(req), req.stream, req.model, where="input")
    count = lambda text: len(server.engine.tok.encode(text))
    reply = Reply(req, req.model or server.model_name, convo, spaces, count,
                  server.responses if req.store else None)
    return turn, reply


def params(req: ResponsesRequest) -> SamplingParams:
    effort = (req.reasoning or {}).get("effort")
    if effort is not None and (not isinstance(effort, str) or effort != "none"
                               and effort not in _EFFORT):
        raise BadRequest(f"reasoning.effort must be one of none, {', '.join(_EFFORT)}",
                         "reasoning.effort")
    thinking = thinking_on(req.thinking, None, default=effort != "none")
    picked = {"temperature": req.temperature, "top_p": req.top_p, "top_k": req.top_k,
              "min_p": req.min_p, "seed": req.seed, "max_tokens": req.max_output_tokens,
              "reasoning_effort": _EFFORT.get(effort), "tool_choice": tool_choice(req),
              "response_format": response_format(req.text)}
    return SamplingParams(**{k: v for k, v in picked.items() if v is not None},
                          thinking=thinking)


def tool_choice(req: ResponsesRequest) -> str | dict | None:
    choice = req.tool_choice
    if not isinstance(choice, dict):
        return choice
    name = choice.get("name")
    if choice.get("type") != "function" or not isinstance(name, str):
        raise BadRequest(f"tool_choice must be {_CHOICE} (hosted tools and allowed_tools are "
                         "not supported)", "tool_choice")
    return {"type": "function", "function": {"name": name}}


def response_format(text: dict | None) -> dict | None:
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise BadRequest("text.format.type must be text, json_object or json_schema",
                     "text.format")


def function_tools(tools: list | None) -> tuple[list[dict], dict[str, str]]:
    """(OpenAI chat function tools, function name → its namespace)."""
    out, spaces = [], {}
    for i, t in enumerate(tools or []):
        where = f"tools[{i}]"
        if not isinstance(t, dict):
            raise BadRequest(f"{where} must be an object", where)
        if t.get("type") == "function":
            out.append(wire.function_tool(t.get("name"), t.get("description"),
                                          t.get("parameters"), where))
        elif t.get("type") == "namespace" and isinstance(t.get("tools"), list):
            for j, f in enumerate(t["tools"]):
                if isinstance(f, dict) and f.get("type", "function") == "function":
                    out.append(wire.function_tool(f.get("name"), f.get("description"),
                                                  f.get("parameters"), f"{where}.tools[{j}]"))
                    spaces[f["name"]] = t.get("name")
    return out, spaces


# --- input items → OpenAI-chat-shaped messages ------------------------------------------

def input_messages(items: str | list | None) -> list[dict]:
    if items is None:
        return []
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object (an input item)", where)
        kind = item.get("type", "message" if "role" in item else None)
        handler = _ITEMS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise BadRequest(f"{where}.type {str(kind)[:60]!r} is not supported; send message, "
                             "function_call, function_call_output or reasoning items",
                             f"{where}.type")
        handler(out, item, where)
    return out


def _text(content: Any, where: str, images: bool = False) -> str:
    """Text parts joined; an image is refused in a message, a note in a tool's output."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or a list of text parts", where)
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in _TEXT_PARTS and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        elif images and kind in ("input_image", "input_file"):
            texts.append(f"[{kind[6:]} left out: this model reads text only]")
        else:
            raise BadRequest(f"{where}[{j}]: only text parts are supported (input_text, "
                             "output_text); this model reads text only", where)
    return "".join(texts)


def _turn(out: list[dict], reuse) -> dict:
    """The assistant turn an item joins: the last message when `reuse(it)` says so, else a
    new one."""
    last = out[-1] if out else None
    if last is not None and last["role"] == "assistant" and reuse(last):
        return last
    out.append({"role": "assistant", "content": "", "tool_calls": []})
    return out[-1]


def _message(out: list[dict], item: dict, where: str) -> None:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise BadRequest(f"{where}.role must be user, assistant, system or developer",
                         f"{where}.role")
    text = _text(item.get("content"), f"{where}.content")
    if role == "assistant":
        _turn(out, lambda t: not t["content"] and not t["tool_calls"])["content"] = text
    else:
        out.append({"role": "system" if role == "developer" else role, "content": text})


def _function_call(out: list[dict], item: dict, where: str) -> None:
    name, args = item.get("name"), item.get("arguments", "{}")
    if not isinstance(name, str) or not isinstance(args, str):
        raise BadRequest(f"{where}: a function_call needs a name and its arguments (a JSON "
                         "string)", where)
    call_id = item.get("call_id") if isinstance(item.get("call_id"), str) else None
    _turn(out, lambda t: True)["tool_calls"].append(
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}})


def _function_output(out: list[dict], item: dict, where: str) -> None:
    call_id = item.get("call_id")
    if not isinstance(call_id, str):
        raise BadRequest(f"{where}.call_id must be a string", f"{where}.call_id")
    text = _text(item.get("output", ""), f"{where}.output", images=True)
    out.append({"role": "tool", "tool_call_id": call_id, "content": text})


def _reasoning(out: list[dict], item: dict, where: str) -> None:
    parts = item.get("content") or item.get("summary") or []
    text = _text(parts, f"{where}.content")
    turn = _turn(out, lambda t: not t["content"] and not t["tool_calls"]
                 and not t.get("reasoning_content"))
    turn["reasoning_content"] = text


_ITEMS = {"message": _message, "function_call": _function_call,
          "function_call_output": _function_output, "reasoning": _reasoning}
