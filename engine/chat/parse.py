"""Reading V4 output back as it streams: `StreamParser` turns text deltas (split anywhere, even
inside a marker) into typed events (engine/events.py), using the reply grammar of
grammar.py. Markup off the grammar becomes one FormatError carrying the raw text from
where the markup began, never an exception.
"""

from __future__ import annotations

import json
from typing import Any

from engine.chat import dsml
from engine.chat.grammar import Machine, Sink
from engine.chat.render import Assistant, ToolCall
from engine.events import (
    Done,
    Event,
    FormatError,
    ReasoningDelta,
    TextDelta,
    ToolCallArgDelta,
    ToolCallFinished,
    ToolCallStarted,
)


class StreamParser(Sink):
    """Text deltas in, events out. `feed(text)` returns the events that text completes;
    `finish(reason)` flushes held text, reports an unterminated block and ends with Done."""

    def __init__(self, thinking: bool = True) -> None:
        self.m = Machine(thinking, sink=self)
        self.text: list[str] = []  # everything fed, for FormatError/ToolCallFinished raw text
        self.events: list[Event] = []
        self.calls = 0
        self.block_at = self.invoke_at = 0
        self.args: dict[str, Any] = {}
        self.buf: list[str] = []
        self.is_str = False
        self.done = False

    def feed(self, text: str) -> list[Event]:
        if self.done:
            return []
        self.text.append(text)
        m, i = self.m, 0
        while i < len(text) and m.mode not in ("error", "end"):
            j = m.plain_run(text, i)  # payload with nothing to watch for: take it whole
            if j > i:
                m.feed_run(text[i:j])
                i = j
            elif not m.feed(text[i]):
                break
            else:
                i += 1
        if self.m.mode == "end":
            return self._flush() + self.finish("stop")
        return self._flush()

    def finish(self, reason: str = "stop") -> list[Event]:
        if self.done:
            return []
        self.done = True
        m = self.m
        if m.mode in ("reasoning", "content") and m.pending and m.sink:
            self.payload(m.mode, m.pending)
        elif m.mode not in ("reasoning", "content", "end", "error") and not m.can_end():
            m.mode, m.error = "error", "the reply ended inside a tool-call block"
        if m.mode == "error":
            raw = "".join(self.text)[self.block_at:]
            end = raw.find(dsml.EOS)
            self.events.append(FormatError(raw[:end] if end >= 0 else raw, m.error))
            reason = "error" if not self.calls else reason
        self.events.append(Done("tool_calls" if self.calls else reason))
        return self._flush()

    def _flush(self) -> list[Event]:
        out = []
        for e in self.events:
            if isinstance(e, list):  # [(delta class, call index), [text parts]]
                (cls, index), parts = e
                text = "".join(parts)
                out.append(cls(text) if index is None else cls(index, text))
            else:
                out.append(e)
        self.events = []
        return out

    def _emit(self, ev: Event) -> None:
        """Queue an event; consecutive deltas of one kind merge (parts joined at flush)."""
        if isinstance(ev, ReasoningDelta | TextDelta | ToolCallArgDelta):
            key = (type(ev), getattr(ev, "index", None))
            last = self.events[-1] if self.events else None
            if isinstance(last, list) and last[0] == key:
                last[1].append(ev.text)
            else:
                self.events.append([key, [ev.text]])
        else:
            self.events.append(ev)

    # -- Sink -----------------------------------------------------------------------------------

    def payload(self, mode: str, text: str) -> None:
        if mode == "reasoning":
            self._emit(ReasoningDelta(text))
        elif mode == "content":
            self._emit(TextDelta(text))
        else:
            self.buf.append(text)
            delta = json.dumps(text, ensure_ascii=False)[1:-1] if self.is_str else text
            self._emit(ToolCallArgDelta(self.calls, delta))

    def mark(self, what: str, pos: int) -> None:
        if what == "block":
            self.block_at = pos
        else:
            self.invoke_at = pos

    def call_start(self, name: str) -> None:
        self.args = {}
        self._emit(ToolCallStarted(self.calls, name))

    def param(self, name: str, is_str: bool) -> None:
        sep = "{" if not self.args else ", "
        self.is_str, self.buf = is_str, []
        self.args[name] = None
        key = json.dumps(name, ensure_ascii=False)
        self._emit(ToolCallArgDelta(self.calls, f"{sep}{key}: " + ('"' if is_str else "")))

    def param_end(self) -> None:
        value = "".join(self.buf)
        self.args[self.m.param] = value if self.is_str else json.loads(value)
        if self.is_str:
            self._emit(ToolCallArgDelta(self.calls, '"'))

    def call_end(self) -> None:
        self._emit(ToolCallArgDelta(self.calls, "}" if self.args else "{}"))
        raw = "".join(self.text)[self.invoke_at:self.m.pos]
        self._emit(ToolCallFinished(self.calls, self.m.tool, self.args, raw))
        self.calls += 1


def parse_reply(text: str, thinking: bool = True) -> list[Event]:
    """All events of one complete reply (the assistant text after the prompt's opener)."""
    p = StreamParser(thinking)
    return p.feed(text) + p.finish()


def reply_message(events: list[Event], token_ids: list[int] | None = None) -> Assistant:
    """The assistant turn a reply's events describe, keeping the ids it sampled for exact
    replay. Calls get ids `call_0`, `call_1`, … (unique within the reply)."""
    reasoning, content, calls = [], [], []
    for e in events:
        if isinstance(e, ReasoningDelta):
            reasoning.append(e.text)
        elif isinstance(e, TextDelta):
            content.append(e.text)
        elif isinstance(e, ToolCallFinished):
            calls.append(ToolCall(name=e.name, arguments=e.arguments, id=f"call_{e.index}"))
    return Assistant(reasoning="".join(reasoning), content="".join(content), tool_calls=calls,
                     token_ids=None if token_ids is None else list(token_ids))


class TokenReplyParser:
    """Sampled ids in, events out: decodes byte-exactly (a character split over tokens waits
    for its last byte), parses, stops at EOS, and keeps the ids for exact replay.

        p = TokenReplyParser(tokenizer, thinking=True)
        for id in sampled: events = p.step(id)
        events = p.finish("length")        # when generation stopped without EOS
        turn = p.message()                 # Assistant with token_ids, for the next prompt
    """

    def __init__(self, tokenizer, thinking: bool = True) -> None:
        self.eos_id = tokenizer.eos_id
        self.decoder = tokenizer.stream_decoder()
        self.parser = StreamParser(thinking)
        self.ids: list[int] = []
        self.events: list[Event] = []

    def step(self, token_id: int) -> list[Event]:
        if self.parser.done:
            return []
        self.ids.append(token_id)
        if token_id == self.eos_id:
            return self._keep(self.parser.feed(self.decoder.flush()) + self.parser.finish())
        return self._keep(self.parser.feed(self.decoder.step(token_id)))

    def finish(self, reason: str = "stop") -> list[Event]:
        return self._keep(self.parser.feed(self.decoder.flush()) + self.parser.finish(reason))

    def message(self) -> Assistant:
        return reply_message(self.events, self.ids)

    def _keep(self, events: list[Event]) -> list[Event]:
        self.events += events
        return events
