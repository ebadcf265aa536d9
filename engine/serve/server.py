"""`flashcode serve`: an HTTP server over one in-process Engine that speaks three APIs.

    POST /v1/chat/completions       OpenAI Chat Completions (chat_completions.py)
    POST /v1/responses              OpenAI Responses (responses.py)
    POST /v1/messages               Anthropic Messages (messages.py)
    POST /v1/messages/count_tokens  the prompt's length, as Anthropic counts it
    GET  /v1/models                 the one model served
    GET  /health                    {"status": "ok"}, without the API key (HEAD / too)

Every API reads its request into one `wire.Turn` and runs it the same way (`_generate`): one
prompt encoding, one constraint for tool calls, one prefix cache, whichever API asks. A thread
per connection (stdlib ThreadingHTTPServer); generation itself is one sequence at a time
(Engine's lock), so concurrent requests queue. Clients are strangers, so:
  - with an API key (auth.py) every endpoint but /health wants `Authorization: Bearer KEY`
    (or Anthropic's `x-api-key: KEY`);
  - bad input of any kind gets a 4xx with the API's own error body (OpenAI's; Anthropic's
    under /v1/messages) before anything is generated; a prompt over the context window gets a
    400 naming it; the connection is closed after an error;
  - a request without max_tokens gets the server's default, and with `max_tokens_limit` none
    may ask for more, so no request holds the engine until the context window is full;
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
from urllib.parse import urlsplit

from engine.api import Engine, EngineClosed, PromptTooLong
from engine.serve import auth, chat_completions, messages, responses, wire
from engine.serve.guard import MAX_CONNECTIONS, GuardedHandler, GuardedServer
from engine.serve.request import BadRequest

MAX_TOKENS_DEFAULT = 4096  # generated tokens for a request that names no max_tokens
# path → the module that reads its requests into a Turn and a Reply
APIS = {"/v1/chat/completions": chat_completions, "/chat/completions": chat_completions,
        "/v1/responses": responses, "/responses": responses, "/v1/messages": messages}
COUNT_TOKENS = "/v1/messages/count_tokens"


class ClientGone(ConnectionError):
    """The client hung up before its reply was done."""


class Handler(GuardedHandler):
    server: Server

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self._handle(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self._post)

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle(self._head)

    def _head(self) -> tuple[int, str]:
        """Is anybody there? (Claude Code asks `HEAD /` before it starts.) No key needed,
        as for /health: the answer says nothing more than that the port is open."""
        if self._route() not in ("", "/health", "/v1/health"):
            raise BadRequest(f"HEAD {self.path} is not served; use GET", status=405)
        self._body()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return 200, ""

    def _route(self) -> str:
        """The path without its query (Claude Code posts /v1/messages?beta=true)."""
        return urlsplit(getattr(self, "path", "")).path.rstrip("/")  # none: unparsed request

    def _error_json(self, message: str, kind: str, param: str | None, code: str | None,
                    status: int) -> dict:
        if self._route().startswith("/v1/messages"):
            return messages.error_body(message, status)
        return super()._error_json(message, kind, param, code, status)

    def _fail(self, e: Exception, status: int = 500, says: str = "internal error"
              ) -> tuple[int, str]:
        if isinstance(e, EngineClosed):  # the process is exiting
            status, says = 503, "the server is shutting down"
        return super()._fail(e, status, says)

    def _get(self) -> tuple[int, str]:
        path = self._route()
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
        path = self._route()
        if path == COUNT_TOKENS:
            return self._count_tokens(self._body())
        api = APIS.get(path)
        if api is None:
            raise BadRequest(f"no such endpoint: POST {self.path}", status=404)
        turn, reply = api.read(self._body(), self.server)
        return self._generate(turn, reply)

    def _count_tokens(self, body: bytes) -> tuple[int, str]:
        turn = messages.read_count(body)
        try:
            n = len(self.server.engine.encode(turn.messages, turn.tools, turn.params))
        except ValueError as e:
            raise BadRequest(str(e)) from None
        self._json(200, {"input_tokens": n})
        return 200, f"input_tokens={n}"

    def _prepare(self, turn: wire.Turn):
        eng = self.server.engine
        limit = self.server.max_tokens_limit
        if limit and (turn.params.max_tokens or 0) > limit:
            turn.params = turn.params.model_copy(update={"max_tokens": limit})
        try:
            prep = eng.prepare(turn.messages, turn.tools, turn.params)
        except PromptTooLong as e:
            raise BadRequest(str(e), turn.where, "context_length_exceeded") from None
        except ValueError as e:
            raise BadRequest(str(e)) from None
        if prep.params.max_tokens is None:  # after prepare: the window still caps it there
            default = min(self.server.max_tokens_default, limit or self.server.max_tokens_default)
            prep.params = prep.params.model_copy(update={"max_tokens": default})
        return prep

    def _generate(self, turn: wire.Turn, reply: wire.Reply) -> tuple[int, str]:
        prep = self._prepare(turn)
        reply.prompt_tokens = len(prep.ids)
        events = self.server.engine.generate(prep)
        try:
            if turn.stream:
                self._stream(reply, self._watch(events))
            else:
                for ev in self._watch(events):
                    reply.add(ev)
                self._json(200, reply.whole())
        finally:
            events.close()  # a client that left frees the engine at once
        reply.finished()
        u = reply.usage
        note = f"stream={turn.stream} prompt={u.prompt_tokens} cached={u.cached_tokens} " \
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

    def _stream(self, reply: wire.Reply, events) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # the body ends when the connection does
        self.end_headers()
        self.close_connection = self.streaming = True
        self._send(reply.start())
        try:
            for ev in events:
                self._send(reply.add(ev))
        except ConnectionError:
            raise
        except Exception as e:  # headers are out: report in-band
            self._send(reply.failed(f"generation failed: {e}"))
            raise
        self._send(reply.end())

    def _send(self, frames: list[wire.Frame]) -> None:
        """Server-sent events: `event: NAME` when the API names them, then the data."""
        if not frames:
            return
        out = []
        for event, data in frames:
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            out.append((f"event: {event}\n" if event else "") + f"data: {text}\n\n")
        self.wfile.write("".join(out).encode())
        self.wfile.flush()


class Server(GuardedServer):
    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0, *,
                 api_key: str | None = None, max_tokens_default: int = MAX_TOKENS_DEFAULT,
                 max_tokens_limit: int | None = None,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.engine, self.started = engine, int(time.time())
        self.model_name = engine.name
        self.max_tokens_default = max_tokens_default
        self.max_tokens_limit = max_tokens_limit  # None: a request may ask up to the window
        self.responses = responses.Store()  # for previous_response_id
        super().__init__(host, port, Handler, api_key=api_key,
                         max_connections=max_connections)


def main(model: str, host: str = "127.0.0.1", port: int = 8000,
         context_window: int | None = None, name: str | None = None,
         device_map: str | None = None, kernels: str = "auto", api_key: str | None = None,
         max_tokens_default: int = MAX_TOKENS_DEFAULT, max_tokens_limit: int | None = None,
         decode: str | None = None) -> int:
    """Load, listen, serve until Ctrl-C. Exit 0 on Ctrl-C, 2 when listening beyond loopback
    without an API key (`api_key`, else FLASHCODE_SERVE_API_KEY), 4 when the model cannot
    load. `decode`: engine.decode's mode (None: FLASHCODE_DECODE, else auto)."""
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
                             name=name, decode=decode)
    except (ConfigError, LoadError, TokenizerMismatch, OSError, ValueError) as e:
        print(f"flashcode serve: cannot load {model}: {e}", file=sys.stderr)
        return 4
    server = Server(engine, host, port, api_key=api_key,
                    max_tokens_default=max_tokens_default, max_tokens_limit=max_tokens_limit)
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
