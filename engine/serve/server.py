"""`flashcode serve`: an OpenAI-compatible HTTP server over one in-process Engine.

    POST /v1/chat/completions   streaming (SSE) or not; tools, tool_choice, reasoning_effort,
                                thinking on/off (see chat_completions.py), usage
    GET  /v1/models             the one model served
    GET  /health                {"status": "ok"}, without the API key

A thread per connection (stdlib ThreadingHTTPServer); generation itself is one sequence at a
time (Engine's lock), so concurrent requests queue. Clients are strangers, so:
  - with an API key (auth.py) every endpoint but /health wants `Authorization: Bearer KEY`;
  - bad input of any kind gets a 4xx with OpenAI's error body before anything is generated
    (request.py reads the body, chat_completions.py the request; a prompt over the context
    window gets a 400 naming it), and the connection is closed after an error;
  - a request without max_tokens gets the server's default, so none holds the engine until
    the context window is full;
  - a client that hangs up mid-reply stops the generation within a token (streaming or not);
  - the HTTP side (guard.py): malformed requests, web pages, stalled or too many connections.
One log line per request on stderr.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import time
from collections.abc import Iterator

from engine.api import Engine, EngineClosed, PromptTooLong
from engine.serve import auth
from engine.serve.chat_completions import Reply, parse_request
from engine.serve.guard import MAX_CONNECTIONS, GuardedHandler, GuardedServer
from engine.serve.request import BadRequest, error_body

MAX_TOKENS_DEFAULT = 4096  # generated tokens for a request that names no max_tokens


class ClientGone(ConnectionError):
    """The client hung up before its reply was done."""


class Handler(GuardedHandler):
    server: Server

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self._handle(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self._post)

    def _fail(self, e: Exception, status: int = 500, says: str = "internal error"
              ) -> tuple[int, str]:
        if isinstance(e, EngineClosed):  # the process is exiting
            status, says = 503, "the server is shutting down"
        return super()._fail(e, status, says)

    def _get(self) -> tuple[int, str]:
        path = self.path.rstrip("/")
        if path not in ("/health", "/v1/health"):
            self._authorize()
        self._body()  # a body on a GET is read and dropped, never taken for a next request
        if path in ("/v1/models", "/models"):
            eng = self.server.engine
            model = {"id": eng.name, "object": "model", "created": self.server.started,
                     "owned_by": "flashcode", "max_model_len": eng.context_window}
            self._json(200, {"object": "list", "data": [model]})
        elif path in ("/health", "/v1/health"):
            self._json(200, {"status": "ok"})
        else:
            raise BadRequest(f"no such endpoint: GET {self.path}", status=404)
        return 200, ""

    def _post(self) -> tuple[int, str]:
        self._authorize()
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            raise BadRequest(f"no such endpoint: POST {self.path}", status=404)
        return self._chat(self._body())

    def _chat(self, body: bytes) -> tuple[int, str]:
        eng = self.server.engine
        req, messages, params = parse_request(body)
        try:
            prep = eng.prepare(messages, req.tools, params)
        except PromptTooLong as e:
            raise BadRequest(str(e), "messages", "context_length_exceeded") from None
        except ValueError as e:
            raise BadRequest(str(e)) from None
        if prep.params.max_tokens is None:  # after prepare: the window still caps it there
            prep.params = prep.params.model_copy(
                update={"max_tokens": self.server.max_tokens_default})
        reply = Reply(req.model or eng.name)
        events = eng.generate(prep)
        try:
            if req.stream:
                include = bool((req.stream_options or {}).get("include_usage"))
                self._stream(reply, self._watch(events), include)
            else:
                for ev in self._watch(events):
                    reply.add(ev)
                self._json(200, reply.whole())
        finally:
            events.close()  # a client that left frees the engine at once
        u = reply.usage
        note = f"stream={req.stream} prompt={u.prompt_tokens} cached={u.cached_tokens} " \
               f"generated={u.generated_tokens} finish={reply.finish}" if u else ""
        return 200, note

    def _watch(self, events) -> Iterator:
        """`events`, raising ClientGone between two of them once the client has hung up (a
        zero-timeout poll for EOF: a non-streaming reply writes nothing until its end, and a
        stream may go a while without a chunk)."""
        poller = select.poll()  # not select(): no limit on the descriptor's number
        poller.register(self.connection, select.POLLIN | select.POLLPRI)
        for ev in events:
            if poller.poll(0) and self._hung_up():
                raise ClientGone()
            yield ev

    def _hung_up(self) -> bool:
        """Readable: EOF or a reset means gone; data (a pipelined request) does not."""
        try:
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _stream(self, reply: Reply, events, include_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # the body ends when the connection does
        self.end_headers()
        self.close_connection = self.streaming = True
        self._send(reply.chunk({"role": "assistant", "content": ""}))
        try:
            for ev in events:
                delta = reply.add(ev)
                if delta:
                    self._send(reply.chunk(delta))
        except ConnectionError:
            raise
        except Exception as e:  # headers are out: report in-band, as OpenAI does
            self._send(error_body(f"generation failed: {e}", "server_error"))
            raise
        self._send(reply.chunk({}, reply.finish))
        if include_usage:
            self._send(reply.usage_chunk())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _send(self, obj: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n")
        self.wfile.flush()


class Server(GuardedServer):
    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0, *,
                 api_key: str | None = None, max_tokens_default: int = MAX_TOKENS_DEFAULT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.engine, self.started = engine, int(time.time())
        self.max_tokens_default = max_tokens_default
        super().__init__(host, port, Handler, api_key=api_key,
                         max_connections=max_connections)


def main(model: str, host: str = "127.0.0.1", port: int = 8000,
         context_window: int | None = None, name: str | None = None,
         device_map: str | None = None, kernels: str = "auto", api_key: str | None = None,
         max_tokens_default: int = MAX_TOKENS_DEFAULT) -> int:
    """Load, listen, serve until Ctrl-C. Exit 0 on Ctrl-C, 2 when listening beyond loopback
    without an API key (`api_key`, else FLASHCODE_SERVE_API_KEY), 4 when the model cannot
    load."""
    from engine.chat.tokenizer import TokenizerMismatch
    from engine.config import ConfigError
    from engine.weights.loader import LoadError

    if api_key is None:
        api_key = os.environ.get(auth.ENV) or None
    refusal = auth.bind_refusal(host, api_key)
    if refusal:
        print(f"flashcode serve: {refusal}", file=sys.stderr)
        return 2
    try:
        engine = Engine.load(model, kernels, device_map, context_window=context_window,
                             name=name)
    except (ConfigError, LoadError, TokenizerMismatch, OSError, ValueError) as e:
        print(f"flashcode serve: cannot load {model}: {e}", file=sys.stderr)
        return 4
    server = Server(engine, host, port, api_key=api_key,
                    max_tokens_default=max_tokens_default)
    print(f"flashcode serve: {engine.name} on {server.url} (context window "
          f"{engine.context_window} tokens; {engine.placement}; "
          f"{'API key required' if api_key else 'no API key'}); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("flashcode serve: stopping", file=sys.stderr, flush=True)
    finally:
        server.server_close()
    return 0
