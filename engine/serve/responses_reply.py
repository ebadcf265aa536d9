"""A Responses API reply (responses.py reads the request): the `response` object and, for a
stream, its event sequence, each event with a `sequence_number`:

    response.created, response.in_progress
    per output item (reasoning, then the message, then one per function call):
      response.output_item.added
      reasoning:  response.content_part.added, response.reasoning_text.delta…,
                  response.reasoning_text.done, response.content_part.done
      message:    response.content_part.added, response.output_text.delta…,
                  response.output_text.done, response.content_part.done
      call:       response.function_call_arguments.delta…, …arguments.done
      response.output_item.done
    response.completed (or response.incomplete when max_output_tokens cut it short), with
    usage: input_tokens (cached_tokens among them), output_tokens (reasoning_tokens among them)

A failure after the headers are out is an `error` event, then `response.failed`. `Store`
keeps finished responses' conversations for `previous_response_id`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

from engine.serve import wire

MAX_STORED = 256  # responses kept for previous_response_id
MAX_STORED_CHARS = 64 << 20  # their conversations' JSON text, all together


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


class Store:
    """Finished responses' conversations (OpenAI-chat-shaped dicts, instructions left out),
    the newest MAX_STORED of them within MAX_STORED_CHARS; the least recently used go first."""

    def __init__(self, max_items: int = MAX_STORED, max_chars: int = MAX_STORED_CHARS) -> None:
        self.max_items, self.max_chars = max_items, max_chars
        self._items: OrderedDict[str, tuple[list[dict], int]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()  # a thread per connection

    def get(self, rid: str) -> list[dict] | None:
        with self._lock:
            if rid not in self._items:
                return None
            self._items.move_to_end(rid)
            return self._items[rid][0]

    def put(self, rid: str, convo: list[dict]) -> None:
        size = len(json.dumps(convo, ensure_ascii=False))
        if size > self.max_chars:
            return
        with self._lock:
            self._items[rid] = (convo, size)
            self._chars += size
            while len(self._items) > self.max_items or self._chars > self.max_chars:
                self._chars -= self._items.popitem(last=False)[1][1]

    def __len__(self) -> int:
        return len(self._items)


class Reply(wire.BlockReply):
    def __init__(self, req, model: str, convo: list[dict], spaces: dict[str, str],
                 count: Callable[[str], int], store: Store | None) -> None:
        self.req, self.model, self.convo, self.spaces = req, model, convo, spaces
        self.count, self.store = count, store
        self.id, self.created = _id("resp"), int(time.time())
        self.blocks = wire.Blocks()
        self.item_ids: dict[int, str] = {}  # block index → item id
        self.call_ids: dict[int, str] = {}
        self.seq = -1

    def _event(self, kind: str, **fields) -> wire.Frame:
        self.seq += 1
        return kind, {"type": kind, "sequence_number": self.seq, **fields}

    def start(self) -> list[wire.Frame]:
        shell = self.response("in_progress", [])
        return [self._event("response.created", response=shell),
                self._event("response.in_progress", response=shell)]

    def end(self) -> list[wire.Frame]:
        status = self.status()
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [self._event(kind, response=self.whole())]

    def failed(self, message: str) -> list[wire.Frame]:
        error = {"code": "server_error", "message": message}
        failed = {**self.response("failed", self.output()), "error": error}
        return [self._event("error", code="server_error", message=message, param=None),
                self._event("response.failed", response=failed)]

    def whole(self) -> dict:
        return self.response(self.status(), self.output())

    def finished(self) -> None:
        if self.store is not None:
            self.store.put(self.id, [*self.convo, self.assistant()])

    def status(self) -> str:
        return "incomplete" if self.finish == "length" else "completed"

    # --- the stream's steps (wire.Blocks) ---------------------------------------------------

    def _start(self, block: wire.Block, text: str) -> list[wire.Frame]:
        prefix = {"reasoning": "rs", "text": "msg", "call": "fc"}[block.kind]
        self.item_ids[block.index] = _id(prefix)
        at = {"output_index": block.index}
        frames = [self._event("response.output_item.added", **at,
                              item=self.item(block, "in_progress"))]
        if block.kind != "call":
            frames.append(self._event("response.content_part.added", **self._where(block),
                                      part=self._part(block, "")))
        return frames

    def _delta(self, block: wire.Block, text: str) -> list[wire.Frame]:
        kind = {"reasoning": "response.reasoning_text.delta",
                "text": "response.output_text.delta",
                "call": "response.function_call_arguments.delta"}[block.kind]
        extra = {"logprobs": []} if block.kind == "text" else {}
        where = self._where(block) if block.kind != "call" else \
            {"item_id": self.item_ids[block.index], "output_index": block.index}
        return [self._event(kind, **where, delta=text, **extra)]

    def _stop(self, block: wire.Block, text: str) -> list[wire.Frame]:
        item = self.item(block, "completed")
        if block.kind == "call":
            frames = [self._event("response.function_call_arguments.done",
                                  item_id=item["id"], output_index=block.index,
                                  name=block.name, arguments=item["arguments"])]
        else:
            kind = "reasoning_text" if block.kind == "reasoning" else "output_text"
            extra = {"logprobs": []} if block.kind == "text" else {}
            frames = [self._event(f"response.{kind}.done", **self._where(block),
                                  text=block.text, **extra),
                      self._event("response.content_part.done", **self._where(block),
                                  part=self._part(block, block.text))]
        return [*frames, self._event("response.output_item.done", output_index=block.index,
                                     item=item)]

    def _where(self, block: wire.Block) -> dict:
        return {"item_id": self.item_ids[block.index], "output_index": block.index,
                "content_index": 0}

    # --- items and the response object ------------------------------------------------------

    def _part(self, block: wire.Block, text: str) -> dict:
        if block.kind == "reasoning":
            return {"type": "reasoning_text", "text": text}
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def item(self, block: wire.Block, status: str) -> dict:
        rid, done = self.item_ids.setdefault(block.index, _id("item")), status == "completed"
        if block.kind == "call":
            call = {"id": rid, "type": "function_call", "status": status,
                    "call_id": self.call_ids.setdefault(block.index, _id("call")),
                    "name": block.name, "arguments": block.arguments_json() if done else ""}
            if block.name in self.spaces:
                call["namespace"] = self.spaces[block.name]
            return call
        parts = [self._part(block, block.text)] if done else []
        if block.kind == "reasoning":
            return {"id": rid, "type": "reasoning", "status": status, "summary": [],
                    "content": parts, "encrypted_content": None}
        return {"id": rid, "type": "message", "status": status, "role": "assistant",
                "content": parts}

    def output(self) -> list[dict]:
        return [self.item(b, "completed") for b in self.blocks.all]

    def response(self, status: str, output: list[dict]) -> dict:
        r = self.req
        effort = (r.reasoning or {}).get("effort")
        return {"id": self.id, "object": "response", "created_at": self.created,
                "status": status, "error": None,
                "incomplete_details": {"reason": "max_output_tokens"}
                if status == "incomplete" else None,
                "instructions": r.instructions, "max_output_tokens": r.max_output_tokens,
                "model": self.model, "output": output,
                "parallel_tool_calls": r.parallel_tool_calls is not False,
                "previous_response_id": r.previous_response_id,
                "reasoning": {"effort": effort, "summary": None}, "store": r.store,
                "temperature": r.temperature, "text": r.text or {"format": {"type": "text"}},
                "tool_choice": r.tool_choice or "auto", "tools": r.tools or [],
                "top_p": r.top_p, "truncation": "disabled", "metadata": r.metadata or {},
                "usage": self.usage_dict() if status != "in_progress" else None}

    def usage_dict(self) -> dict | None:
        u = self.usage
        if u is None:
            return None
        reasoning = "".join(b.text for b in self.blocks.all if b.kind == "reasoning")
        thought = min(self.count(reasoning), u.generated_tokens) if reasoning else 0
        return {"input_tokens": u.prompt_tokens,
                "input_tokens_details": {"cached_tokens": u.cached_tokens,
                                         "cache_write_tokens": 0},
                "output_tokens": u.generated_tokens,
                "output_tokens_details": {"reasoning_tokens": thought},
                "total_tokens": u.prompt_tokens + u.generated_tokens}

    def assistant(self) -> dict:
        """The reply as the next request's history holds it, with the ids it sampled, so
        that turn is spliced into the next prompt token for token."""
        kinds = lambda k: [b for b in self.blocks.all if b.kind == k]
        calls = [{"id": self.call_ids.get(b.index), "type": "function",
                  "function": {"name": b.name, "arguments": b.arguments_json()}}
                 for b in kinds("call")]
        turn = {"role": "assistant", "content": "".join(b.text for b in kinds("text")),
                "reasoning_content": "".join(b.text for b in kinds("reasoning")),
                "tool_calls": calls}
        if self.tokens:
            turn["token_ids"] = list(self.tokens)
        return turn
