"""`--endpoint URL --model-name NAME`: any OpenAI-compatible chat endpoint, streamed.

vLLM, SGLang, the DeepSeek API and `flashcode serve` all speak this. Opening a stream is
retried with exponential backoff on 429, 5xx, timeouts and refused connections; a refused key
or an unreachable host becomes `BackendUnavailable` with what to do about it. Tool calls
arrive in fragments (by `index`) and are parsed once the stream ends; arguments that are not
a JSON object become `FormatError`s for the loop to send back.

Prompt tokens (context accounting, compaction) are counted exactly where that is possible: by
the server's /tokenize (vLLM, SGLang), else, for a DeepSeek-V4 model (its name says so, or the
server is `flashcode serve`), by DeepSeek-V4's own tokenizer over the V4 prompt
(engine.chat.render, torch-free); otherwise estimated. `token_counting` says which.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import openai

from agent.context import estimate_tokens
from agent.model import (
    BackendError,
    BackendUnavailable,
    Done,
    Event,
    Message,
    ReasoningDelta,
    TextDelta,
    Usage,
    parse_tool_call,
)

_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)
_WIRE_KEYS = ("role", "content", "reasoning_content", "tool_calls", "tool_call_id", "name")
DEFAULT_WINDOW = 131_072
_V4_NAME = re.compile(r"deepseek[-_ ]?v4|v4[-_ ](flash|pro)", re.IGNORECASE)
ESTIMATED = "estimated (about 3.5 characters a token)"


def _wire(message: Message, thinking: bool = False) -> dict:
    """The message as the API takes it (our extra keys stay home). In thinking mode a
    tool-call turn always carries `reasoning_content` (empty when there was none): DeepSeek's
    API refuses such a turn without it."""
    wire = {k: message[k] for k in _WIRE_KEYS if k in message}
    if thinking and wire.get("role") == "assistant" and wire.get("tool_calls"):
        wire.setdefault("reasoning_content", "")
    return wire


@dataclass
class OpenAIModel:
    endpoint: str
    model_name: str
    api_key: str = ""
    key_env: str = "OPENAI_API_KEY"  # named in errors, so the user knows what to set
    window: int | None = None  # None: ask the server (vLLM lists max_model_len), else 128K
    timeout: float = 600.0  # seconds without progress before a request is abandoned
    retries: int = 4
    backoff: float = 1.0  # first retry after this many seconds, doubling each time
    name: str = ""
    _client: openai.OpenAI | None = field(default=None, repr=False)
    _tokenize_ok: bool | None = None  # None: not tried yet
    token_counting: str = "not counted yet"  # how count_tokens counted last: see module doc
    _owner: str = ""  # `owned_by` of the served model ("flashcode": a V4 model)
    _v4_tokenizer: object = field(default=None, repr=False)  # False: not a V4 model

    @classmethod
    def from_settings(cls, settings, endpoint: str | None = None,
                      model_name: str | None = None) -> OpenAIModel:
        endpoint = endpoint or settings.endpoint
        model_name = model_name or settings.model_name or "default"
        return cls(endpoint, model_name, os.environ.get(settings.api_key_env, ""),
                   settings.api_key_env, settings.context_window)

    def __post_init__(self) -> None:
        self.name = self.name or self.model_name

    @property
    def context_window(self) -> int:
        if self.window is None:
            self.window = self._served_window() or DEFAULT_WINDOW
        return self.window

    def count_tokens(self, messages: list[Message], tools: list[dict]) -> int:
        """Exact from the server's /tokenize (vLLM, SGLang) when it has one, else with
        DeepSeek-V4's tokenizer for a V4 model, else estimated (`token_counting` says which)."""
        if self._tokenize_ok is not False:
            count = self._tokenize(messages, tools)
            self._tokenize_ok = count is not None
            if count is not None:
                self.token_counting = "exact (the server's /tokenize)"
                return count
        count = self._v4_count(messages, tools)
        if count is not None:
            self.token_counting = "exact (DeepSeek-V4's tokenizer over the V4 prompt)"
            return count
        self.token_counting = ESTIMATED
        return estimate_tokens(messages) + estimate_tokens(tools)

    def _v4_count(self, messages: list[Message], tools: list[dict]) -> int | None:
        """Tokens of the V4 prompt these messages and tools render to; None when the model is
        not DeepSeek-V4 or its tokenizer is not installed."""
        if self._v4_tokenizer is None:
            self._v4_tokenizer = self._load_v4_tokenizer() or False
        if self._v4_tokenizer is False:
            return None
        from engine.chat.render import encode_conversation, messages_from_openai

        try:
            msgs = messages_from_openai([_wire(m) for m in messages])
            return len(encode_conversation(msgs, self._v4_tokenizer, tools or None))
        except (ValueError, TypeError, KeyError):
            return None

    def _load_v4_tokenizer(self):
        if not _V4_NAME.search(self.model_name):
            self._served_window()  # asks the server who serves the model
            if self._owner != "flashcode":
                return None
        from engine.chat.tokenizer import Tokenizer, v4_tokenizer_dir

        try:
            return Tokenizer.from_dir(v4_tokenizer_dir())
        except (OSError, ValueError):
            return None

    def _served_window(self) -> int | None:
        try:
            for m in self.client().models.list().data:
                if m.id == self.model_name:
                    self._owner = getattr(m, "owned_by", "") or ""
                    if getattr(m, "max_model_len", None):
                        return int(m.max_model_len)
        except (openai.APIError, ValueError, TypeError):
            pass
        return None

    def _tokenize(self, messages: list[Message], tools: list[dict]) -> int | None:
        root = self.endpoint.rstrip("/").removesuffix("/v1")
        body = {"model": self.model_name, "messages": [_wire(m) for m in messages]}
        if tools:
            body["tools"] = tools
        req = urllib.request.Request(f"{root}/tokenize", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.api_key}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(json.load(resp)["count"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def client(self) -> openai.OpenAI:
        if self._client is None:
            self._client = openai.OpenAI(base_url=self.endpoint, api_key=self.api_key or "none",
                                         timeout=self.timeout, max_retries=0)
        return self._client

    def stream(self, messages, tools, *, thinking=True, max_tokens=None,
               response_format=None) -> Iterator[Event]:
        request = {"model": self.model_name, "stream": True,
                   "stream_options": {"include_usage": True},
                   "messages": [_wire(m, thinking) for m in messages]}
        if tools:
            request["tools"] = tools
        if max_tokens:
            request["max_tokens"] = max_tokens
        if response_format:
            request["response_format"] = response_format
        if not thinking:  # DeepSeek API and vLLM/SGLang chat-template spellings
            request["extra_body"] = {"thinking": {"type": "disabled"},
                                     "chat_template_kwargs": {"thinking": False}}
        return self._events(self._open(request))

    def _open(self, request: dict):
        for attempt in range(self.retries + 1):
            try:
                return self.client().chat.completions.create(**request)
            except _RETRYABLE as exc:
                # A refused connection is retried once only: a server that is down rarely
                # comes back within the backoff, and the user should hear about it quickly.
                refused = type(exc) is openai.APIConnectionError
                if attempt == self.retries or (refused and attempt >= 1):
                    raise self._final_error(exc, attempt + 1) from None
                time.sleep(self.backoff * 2**attempt)
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise BackendUnavailable(
                    f"{self.endpoint} refused the API key (HTTP {exc.status_code}). Set "
                    f"{self.key_env} to a valid key.") from None
            except openai.NotFoundError:
                raise BackendUnavailable(
                    f"{self.endpoint} has no chat endpoint or no model '{self.model_name}' "
                    "(HTTP 404). Check the URL (most end in /v1) and --model-name.") from None
            except openai.APIStatusError as exc:
                raise BackendError(f"{self.endpoint} rejected the request (HTTP "
                                   f"{exc.status_code}): {_detail(exc)}") from None

    def _final_error(self, exc: Exception, attempts: int) -> BackendError:
        tries = f"after {attempts} attempts"
        if isinstance(exc, openai.APITimeoutError):
            return BackendError(f"{self.endpoint} did not answer within {self.timeout:g} s "
                                f"({tries}).")
        if isinstance(exc, openai.APIConnectionError):
            return BackendUnavailable(f"{self.endpoint} is unreachable ({tries}): start the "
                                      "server or fix --endpoint.")
        return BackendError(f"{self.endpoint} kept failing ({tries}; last: HTTP "
                            f"{getattr(exc, 'status_code', '?')} {_detail(exc)}).")

    def _events(self, chunks) -> Iterator[Event]:
        acc = _Accumulator(started=time.monotonic())
        try:
            for chunk in chunks:
                yield from acc.take(chunk)
        except openai.APIError as exc:
            raise BackendError(f"the stream from {self.endpoint} broke: {exc}") from None
        finally:
            getattr(chunks, "close", lambda: None)()
        yield from acc.finish()


@dataclass
class _Accumulator:
    """Folds stream chunks into events; tool-call fragments are joined by index."""

    started: float
    first_token: float | None = None
    calls: dict[int, list[str]] = field(default_factory=dict)  # index → [id, name, arguments]
    usage: object = None
    finish_reason: str = "stop"

    def take(self, chunk) -> Iterator[Event]:
        if getattr(chunk, "usage", None):
            self.usage = chunk.usage
        for choice in chunk.choices or []:
            delta = choice.delta
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
            if delta is None:
                continue
            self.first_token = self.first_token or time.monotonic()
            reasoning = getattr(delta, "reasoning_content", None) or getattr(
                delta, "reasoning", None)
            if reasoning:
                yield ReasoningDelta(reasoning)
            if delta.content:
                yield TextDelta(delta.content)
            for tc in delta.tool_calls or []:
                slot = self.calls.setdefault(tc.index or 0, ["", "", ""])
                slot[0] = tc.id or slot[0]
                if tc.function:
                    slot[1] = _grow(slot[1], tc.function.name or "")
                    slot[2] += tc.function.arguments or ""

    def finish(self) -> Iterator[Event]:
        for index in sorted(self.calls):
            call_id, name, arguments = self.calls[index]
            yield parse_tool_call(call_id or f"call_{index}", name, arguments)
        if self.usage is not None:
            yield self._usage()
        yield Done(self.finish_reason)

    def _usage(self) -> Usage:
        u = self.usage
        details = getattr(u, "prompt_tokens_details", None)
        cached = getattr(details, "cached_tokens", None) or getattr(
            u, "prompt_cache_hit_tokens", None) or 0
        end = time.monotonic()
        first = self.first_token or end
        decode = u.completion_tokens / (end - first) if end > first else None
        # no prefill rate: the time to the first token is network, queue and server cache
        return Usage(u.prompt_tokens, cached, u.completion_tokens, None, decode)


def _grow(name: str, piece: str) -> str:
    """A tool name from stream chunks: servers send it once, in pieces, or whole in every
    chunk; a repeat is not appended ("readreadread")."""
    if not piece or name.endswith(piece):
        return name
    return piece if piece.startswith(name) else name + piece


def _detail(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        return str(err.get("message", err) if isinstance(err, dict) else err)[:300]
    return str(getattr(exc, "message", exc))[:300]
