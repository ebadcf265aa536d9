"""An Anthropic Messages reply (messages.py reads the request): the `message` object and, for
a stream, Anthropic's events:

    message_start        the message with no content; usage counts the prompt
    content_block_start  per block: thinking, text, tool_use (in the order the model wrote
    content_block_delta    them), with thinking_delta, text_delta or input_json_delta
    content_block_stop     (a thinking block's signature_delta comes just before its stop)
    message_delta        stop_reason (end_turn, max_tokens, stop_sequence, tool_use) and the
                         final usage: input_tokens (the uncached part, as Anthropic counts
                         it), cache_read_input_tokens, output_tokens
    message_stop
A failure after the headers are out is an `error` event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from engine.serve import wire

EOS_ID = 1  # DeepSeek-V4's end of sentence: a reply that ends without it met a stop string
# Anthropic signs thinking so it can check what comes back; nothing is checked here
SIGNATURE = "flashcode-unsigned"
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 408: "timeout_error",
                413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error"}


def error_body(message: str, status: int) -> dict:
    kind = _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class Reply(wire.BlockReply):
    def __init__(self, model: str, stops: list[str], decode: Callable[[list[int]], str]
                 ) -> None:
        self.id, self.model = f"msg_{uuid.uuid4().hex[:24]}", model
        self.stops, self.decode = stops, decode
        self.blocks = wire.Blocks()
        self.tool_ids: dict[int, str] = {}  # block index → tool_use id

    def start(self) -> list[wire.Frame]:
        message = {**self._message([]), "usage": {
            "input_tokens": self.prompt_tokens, "output_tokens": 0,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}
        return [("message_start", {"type": "message_start", "message": message}),
                ("ping", {"type": "ping"})]

    def end(self) -> list[wire.Frame]:
        reason, sequence = self.stop_reason()
        delta = {"type": "message_delta",
                 "delta": {"stop_reason": reason, "stop_sequence": sequence},
                 "usage": self.usage_dict()}
        return [("message_delta", delta), ("message_stop", {"type": "message_stop"})]

    def failed(self, message: str) -> list[wire.Frame]:
        return [("error", error_body(message, 500))]

    def whole(self) -> dict:
        reason, sequence = self.stop_reason()
        content = [self._block(b, done=True) for b in self.blocks.all]
        return {**self._message(content), "stop_reason": reason, "stop_sequence": sequence,
                "usage": self.usage_dict()}

    # --- the stream's steps (wire.Blocks) ---------------------------------------------------

    def _start(self, block: wire.Block, text: str) -> list[wire.Frame]:
        return [("content_block_start", {"type": "content_block_start", "index": block.index,
                                         "content_block": self._block(block, done=False)})]

    def _delta(self, block: wire.Block, text: str) -> list[wire.Frame]:
        delta = {"reasoning": {"type": "thinking_delta", "thinking": text},
                 "text": {"type": "text_delta", "text": text},
                 "call": {"type": "input_json_delta", "partial_json": text}}[block.kind]
        return [("content_block_delta", {"type": "content_block_delta", "index": block.index,
                                         "delta": delta})]

    def _stop(self, block: wire.Block, text: str) -> list[wire.Frame]:
        frames = []
        if block.kind == "reasoning":
            frames.append(("content_block_delta", {
                "type": "content_block_delta", "index": block.index,
                "delta": {"type": "signature_delta", "signature": SIGNATURE}}))
        return [*frames, ("content_block_stop", {"type": "content_block_stop",
                                                 "index": block.index})]

    # --- content and the message ------------------------------------------------------------

    def _block(self, block: wire.Block, done: bool) -> dict:
        if block.kind == "reasoning":
            return {"type": "thinking", "thinking": block.text if done else "",
                    "signature": SIGNATURE if done else ""}
        if block.kind == "text":
            return {"type": "text", "text": block.text if done else ""}
        tool_id = self.tool_ids.setdefault(block.index, f"toolu_{uuid.uuid4().hex[:24]}")
        return {"type": "tool_use", "id": tool_id, "name": block.name,
                "input": (block.arguments or {}) if done else {}}

    def _message(self, content: list[dict]) -> dict:
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": content, "stop_reason": None, "stop_sequence": None}

    def stop_reason(self) -> tuple[str, str | None]:
        if self.finish == "tool_calls":
            return "tool_use", None
        if self.finish == "length":
            return "max_tokens", None
        if self.stops and self.tokens and self.tokens[-1] != EOS_ID:
            tail = self.decode(self.tokens[-64:])  # the stop string was cut from the text
            hits = [(tail.rfind(s), s) for s in self.stops if s in tail]
            if hits:
                return "stop_sequence", max(hits)[1]
        return "end_turn", None

    def usage_dict(self) -> dict:
        u = self.usage
        if u is None:
            return {"input_tokens": self.prompt_tokens, "output_tokens": 0}
        return {"input_tokens": u.prompt_tokens - u.cached_tokens,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": u.cached_tokens,
                "output_tokens": u.generated_tokens}
