"""DeepSeek-V4 chat encoding: typed messages → the prompt string, exactly as DeepSeek's reference
encoder writes it (checked byte for byte against ../shared/conformance/dsv4-encoding).

    render(messages, tools=None, thinking=True, reasoning_effort=None, drop_thinking=True) -> str
    encode_conversation(messages, tokenizer, tools=None, ...) -> list[int]   # the same, as ids

Rules in short (the conformance README has them in full): BOS, then each message; tool results
fold into the next user turn in call order; after the last user turn comes `<｜Assistant｜>` and
`<think>` (thinking) or `</think>` (chat); without tools anywhere, earlier turns lose their
reasoning ("drop thinking"). `render_segments` gives the same text split so that an assistant
turn carrying the `token_ids` it sampled can be spliced in verbatim: `encode_conversation`
tokenizes the pieces and splices those ids in, so turn N's prompt is a prefix of turn N+1's,
token for token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, model_validator

from engine.chat import dsml

if TYPE_CHECKING:
    from engine.chat.tokenizer import Tokenizer

Task = Literal["action", "query", "authority", "domain", "title", "read_url"]


class Tool(BaseModel):
    """One tool's function schema (OpenAI `function` object); extra keys are kept, and so is
    the order the client gave them in (the tools block shows each function as sent)."""

    model_config = ConfigDict(extra="allow")
    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    _order: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _keep_order(cls, data: Any, handler) -> Tool:
        tool = handler(data)
        if isinstance(data, dict):
            tool._order = tuple(data)
        return tool

    @classmethod
    def from_openai(cls, obj: dict) -> Tool:
        """Accepts `{"type": "function", "function": {...}}` or the bare function object."""
        return cls.model_validate(obj.get("function", obj))

    def function(self) -> dict:
        d = self.model_dump(exclude_unset=True)
        return {**{k: d[k] for k in self._order if k in d}, **d}


class ToolCall(BaseModel):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)  # str: not a JSON object
    id: str | None = None


class System(BaseModel):
    role: Literal["system"] = "system"
    content: str = ""
    tools: list[Tool] | None = None
    response_format: dict | None = None


class Developer(BaseModel):
    """DeepSeek's internal search-agent role: rendered as a user turn, may carry tools."""

    role: Literal["developer"] = "developer"
    content: str = ""
    tools: list[Tool] | None = None
    response_format: dict | None = None


class User(BaseModel):
    role: Literal["user"] = "user"
    content: str = ""
    task: Task | None = None


class LatestReminder(BaseModel):
    role: Literal["latest_reminder"] = "latest_reminder"
    content: str = ""


class Assistant(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    # The ids this turn sampled (reasoning + `</think>` + content + calls [+ EOS]); when present,
    # encode_conversation splices them in instead of re-tokenizing the text.
    token_ids: list[int] | None = None
    task: Task | None = None


class ToolResult(BaseModel):
    role: Literal["tool"] = "tool"
    content: str = ""
    tool_call_id: str | None = None


Message = Annotated[System | Developer | User | LatestReminder | Assistant | ToolResult,
                    Field(discriminator="role")]
_MESSAGES = TypeAdapter(list[Message])


def _text(content: Any, sep: str = "") -> str:
    """OpenAI content: a string, None, or a list of `{"type": "text", "text": …}` parts, joined
    with `sep` (DeepSeek's encoder joins a tool result's parts with a blank line and writes
    `[Unsupported TYPE]` for a part that is not text)."""
    if content is None:
        return ""
    if isinstance(content, list):
        return sep.join(_part(p) for p in content if isinstance(p, dict))
    return str(content)


def _part(p: dict) -> str:
    kind = p.get("type", "text")
    return p.get("text", "") if kind == "text" else f"[Unsupported {kind}]"


def _call_from_openai(tc: dict) -> dict:
    fn = tc.get("function", tc)
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            parsed = json.loads(args)
            args = parsed if isinstance(parsed, dict) else args
        except ValueError:
            pass
    return {"name": fn["name"], "arguments": args, "id": tc.get("id")}


def messages_from_openai(messages: list[dict]) -> list[Message]:
    """OpenAI-style dicts (`reasoning_content`, `tool_calls` with JSON-string arguments, content
    parts) → typed messages. Unknown keys (e.g. `mask`) are ignored."""
    out = []
    for m in messages:
        m = dict(m)
        m["content"] = _text(m.get("content"), "\n\n" if m.get("role") == "tool" else "")
        if "reasoning_content" in m:
            m["reasoning"] = m.pop("reasoning_content")
        if m.get("tools"):
            m["tools"] = [Tool.from_openai(t) for t in m["tools"]]
        if m.get("tool_calls"):
            m["tool_calls"] = [_call_from_openai(tc) for tc in m["tool_calls"]]
        out.append(m)
    return _MESSAGES.validate_python(out)


@dataclass
class Splice:
    """An assistant body whose sampled ids replace its text when tokenizing. `after_think`: the
    turn's reasoning is dropped, so only the ids after its `</think>` belong in the prompt."""

    ids: list[int]
    text: str
    after_think: bool = False


@dataclass
class _UserTurn:
    """One `<｜User｜>` turn: user texts and tool results merged, in order."""

    blocks: list[str] = field(default_factory=list)
    result_ids: list[str | None] = field(default_factory=list)  # per block; None = user text
    task: Task | None = None
    role: str = "user"


def _merge_tool_results(messages: list) -> list:
    """Tool results (and user texts after them) fold into one user turn, as V4 has no tool role."""
    turns: list = []
    for m in messages:
        prev = turns[-1] if turns and isinstance(turns[-1], _UserTurn) else None
        if isinstance(m, ToolResult):
            block, rid = f"<tool_result>{m.content}</tool_result>", m.tool_call_id or ""
            if prev is None:
                prev = _UserTurn()
                turns.append(prev)
            prev.blocks.append(block)
            prev.result_ids.append(rid)
        elif isinstance(m, User) and prev is not None and prev.task is None:
            prev.blocks.append(m.content)
            prev.result_ids.append(None)  # its task is not carried over (as upstream does)
        elif isinstance(m, User):
            turns.append(_UserTurn([m.content], [None], m.task))
        else:
            turns.append(m)
    return turns


def _sort_results(turns: list) -> None:
    """Within a user turn, tool results follow the order of the preceding assistant's calls."""
    order: dict[str, int] = {}
    for t in turns:
        if isinstance(t, Assistant) and t.tool_calls:
            order = {c.id: i for i, c in enumerate(t.tool_calls) if c.id}
        elif isinstance(t, _UserTurn) and order:
            slots = [i for i, rid in enumerate(t.result_ids) if rid is not None]
            if len(slots) < 2:
                continue
            ranked = sorted(slots, key=lambda i: order.get(t.result_ids[i], 0))
            blocks, rids = list(t.blocks), list(t.result_ids)
            for slot, src in zip(slots, ranked, strict=True):
                t.blocks[slot], t.result_ids[slot] = blocks[src], rids[src]


def _role(t) -> str:
    return t.role


def _last_user(turns: list) -> int:
    for i in range(len(turns) - 1, -1, -1):
        if _role(turns[i]) in ("user", "developer"):
            return i
    return -1


def _drop_earlier(turns: list) -> list:
    """Drop-thinking: developer turns before the last user turn disappear (assistant turns there
    lose their reasoning when rendered, see `_assistant`)."""
    last = _last_user(turns)
    return [t for i, t in enumerate(turns) if i >= last or _role(t) != "developer"]


@dataclass
class _Ctx:
    turns: list
    thinking: bool
    drop: bool  # effective drop-thinking (off whenever tools are present)
    last_user: int


def _with_tools(text: str, m: System | Developer) -> str:
    if m.tools:
        text += "\n\n" + dsml.tools_block([t.function() for t in m.tools])
    if m.response_format:
        text += "\n\n" + dsml.response_format_block(m.response_format)
    return text


def _assistant(i: int, m: Assistant, ctx: _Ctx) -> str | Splice:
    calls = [(c.name, c.arguments) for c in m.tool_calls]
    tail = m.content + (dsml.tool_calls_block(calls) if calls else "") + dsml.EOS
    prev = ctx.turns[i - 1] if i > 0 else None
    answers_task = prev is not None and getattr(prev, "task", None) is not None
    kept = not ctx.drop or i > ctx.last_user
    body = tail
    if ctx.thinking and not answers_task and kept:
        body = (m.reasoning or "") + dsml.THINK_CLOSE + tail
    if m.token_ids is None:
        return body
    return Splice(list(m.token_ids), body, after_think=ctx.thinking and not kept)


def _opener(i: int, t, ctx: _Ctx) -> str:
    """What follows turn i when the next turn is the assistant's (or it is the last turn)."""
    nxt = ctx.turns[i + 1] if i + 1 < len(ctx.turns) else None
    if nxt is not None and _role(nxt) not in ("assistant", "latest_reminder"):
        return ""
    task = getattr(t, "task", None)
    if task == "action":
        think = dsml.THINK_OPEN if ctx.thinking else dsml.THINK_CLOSE
        return dsml.ASSISTANT + think + dsml.TASK_TOKENS["action"]
    if task is not None:
        return dsml.TASK_TOKENS[task]
    if _role(t) in ("user", "developer"):
        keep = ctx.thinking and (not ctx.drop or i >= ctx.last_user)
        return dsml.ASSISTANT + (dsml.THINK_OPEN if keep else dsml.THINK_CLOSE)
    return ""


def _turn(i: int, t, ctx: _Ctx) -> str | Splice:
    if isinstance(t, System):
        return _with_tools(t.content, t)
    if isinstance(t, Developer):
        return dsml.USER + _with_tools(t.content, t)
    if isinstance(t, _UserTurn):
        return dsml.USER + "\n\n".join(t.blocks)
    if isinstance(t, LatestReminder):
        return dsml.LATEST_REMINDER + t.content
    return _assistant(i, t, ctx)


def render_segments(messages: list, tools: list | None = None, thinking: bool = True,
                    reasoning_effort: str | None = None,
                    drop_thinking: bool = True) -> list[str | Splice]:
    """The prompt as text pieces and Splices (assistant turns that carry token ids)."""
    if reasoning_effort is not None and reasoning_effort not in dsml.REASONING_EFFORTS:
        raise ValueError(f"reasoning_effort must be one of {dsml.REASONING_EFFORTS}, "
                         f"not {reasoning_effort!r}")
    messages = _attach_tools(list(messages), tools)
    turns = _merge_tool_results(messages)
    _sort_results(turns)
    has_tools = any(getattr(t, "tools", None) for t in turns)
    drop = drop_thinking and not has_tools
    if thinking and drop:
        turns = _drop_earlier(turns)
    ctx = _Ctx(turns, thinking, drop, _last_user(turns))
    out: list[str | Splice] = [dsml.BOS]
    if thinking and reasoning_effort == "max":
        out.append(dsml.EFFORT_MAX)
    for i, t in enumerate(turns):
        out.append(_turn(i, t, ctx))
        out.append(_opener(i, t, ctx))
    return [s for s in out if s != ""]


def _attach_tools(messages: list, tools: list | None) -> list:
    """`tools=` goes on the first system message (one is added if there is none)."""
    if not tools:
        return messages
    tools = [t if isinstance(t, Tool) else Tool.from_openai(t) for t in tools]
    if messages and isinstance(messages[0], System):
        messages[0] = messages[0].model_copy(update={"tools": tools})
    else:
        messages.insert(0, System(tools=tools))
    return messages


def render(messages: list, tools: list | None = None, thinking: bool = True,
           reasoning_effort: str | None = None, drop_thinking: bool = True) -> str:
    """The V4 prompt for `messages` (typed, or OpenAI dicts), ending with the assistant opener
    when the last turn is the user's."""
    if messages and isinstance(messages[0], dict):
        messages = messages_from_openai(messages)
    segs = render_segments(messages, tools, thinking, reasoning_effort, drop_thinking)
    return "".join(s.text if isinstance(s, Splice) else s for s in segs)


def encode_conversation(messages: list, tokenizer: Tokenizer, tools: list | None = None,
                        thinking: bool = True, reasoning_effort: str | None = None,
                        drop_thinking: bool = True) -> list[int]:
    """Prompt ids for typed `messages` (the other arguments as for `render`). Assistant turns with
    `token_ids` are spliced in verbatim (EOS appended if the ids stop short of it); if such a
    turn's reasoning is dropped, only its ids after `</think>` are kept. Every splice sits
    between special tokens, so tokenizing the pieces apart equals tokenizing the whole text."""
    ids: list[int] = []
    think_close = tokenizer.special["think_close"]
    for seg in _joined(render_segments(messages, tools, thinking, reasoning_effort,
                                       drop_thinking)):
        if not isinstance(seg, Splice):
            ids += tokenizer.encode(seg)
            continue
        body = list(seg.ids)
        if seg.after_think and think_close in body:
            body = body[body.index(think_close) + 1:]
        if not body or body[-1] != tokenizer.eos_id:
            body.append(tokenizer.eos_id)
        ids += body
    return ids


def _joined(segments: list[str | Splice]) -> list[str | Splice]:
    """Neighbouring text segments as one: a segment boundary is not a token boundary (the
    effort preamble's `.\n\n` and a system text starting with `\n\n` merge into one token)."""
    out: list[str | Splice] = []
    for seg in segments:
        if out and isinstance(seg, str) and isinstance(out[-1], str):
            out[-1] += seg
        else:
            out.append(seg)
    return out
