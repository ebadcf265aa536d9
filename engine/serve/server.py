"""`flashcode serve`: an OpenAI-compatible HTTP server over one in-process Engine.

    POST /v1/chat/completions   streaming (SSE) or not; tools, tool_choice, reasoning_effort,
                                thinking on/off (see chat_completions.py), usage
    GET  /v1/models             the one model served

A thread per connection (stdlib ThreadingHTTPServer); generation itself is one sequence at a
time (Engine's lock), so concurrent requests queue. Bad input gets a 400 with OpenAI's error
body before anything is generated; a prompt over the context window gets a 400 naming it.
One log line per request on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from engine.api import Engine, PromptTooLong
from engine.serve.chat_completions import BadRequest, Reply, error_body, parse_request

MAX_BODY = 64 << 20  # bytes; a longer request is refused (413)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        pass  # one line per request comes from _log instead

    def _log(self, status: int, t0: float, note: str = "") -> None:
        took = time.perf_counter() - t0
        print(f"{self.client_address[0]} {self.command} {self.path} {status} {took:.2f}s"
              f"{' ' + note if note else ''}", file=sys.stderr, flush=True)

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        t0 = time.perf_counter()
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            eng = self.server.engine
            model = {"id": eng.name, "object": "model", "created": self.server.started,
                     "owned_by": "flashcode", "max_model_len": eng.context_window}
            self._json(200, {"object": "list", "data": [model]})
            return self._log(200, t0)
        if self.path.rstrip("/") in ("/health", "/v1/health"):
            self._json(200, {"status": "ok"})
            return self._log(200, t0)
        self._json(404, error_body(f"no such endpoint: GET {self.path}", "not_found_error"))
        return self._log(404, t0)

    def do_POST(self) -> None:  # noqa: N802
        t0 = time.perf_counter()
        self.streaming = False
        try:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._drain()
                self._json(404, error_body(f"no such endpoint: POST {self.path}",
                                           "not_found_error"))
                return self._log(404, t0)
            status, note = self._chat()
        except BadRequest as e:
            status, note = 400, str(e)
            self._json(400, error_body(str(e), param=e.param, code=e.code))
        except (BrokenPipeError, ConnectionResetError):
            status, note = 499, "client went away"
            self.close_connection = True
        except Exception as e:  # a bug, not bad input: say so, keep serving
            status, note = 500, f"{type(e).__name__}: {e}"
            self.close_connection = True
            if not self.streaming:
                self._json(500, error_body(f"internal error: {note}", "server_error"))
        self._log(status, t0, note)

    def _drain(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            raise BadRequest(f"the request body is {n} bytes; the limit is {MAX_BODY}")
        return self.rfile.read(n) if n else b""

    def _chat(self) -> tuple[int, str]:
        eng = self.server.engine
        req, messages, params = parse_request(self._drain())
        try:
            prep = eng.prepare(messages, req.tools, params)
        except PromptTooLong as e:
            raise BadRequest(str(e), "messages", "context_length_exceeded") from None
        except ValueError as e:
            raise BadRequest(str(e)) from None
        reply = Reply(req.model or eng.name)
        events = eng.generate(prep)
        try:
            if req.stream:
                include = bool((req.stream_options or {}).get("include_usage"))
                self._stream(reply, events, include)
            else:
                for ev in events:
                    reply.add(ev)
                self._json(200, reply.whole())
        finally:
            events.close()  # a client that left mid-stream frees the engine at once
        u = reply.usage
        note = f"stream={req.stream} prompt={u.prompt_tokens} cached={u.cached_tokens} " \
               f"generated={u.generated_tokens} finish={reply.finish}" if u else ""
        return 200, note

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


class Server(ThreadingHTTPServer):
    daemon_threads = True  # Ctrl-C does not wait for open connections

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.engine, self.started = engine, int(time.time())
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


def main(model: str, host: str = "127.0.0.1", port: int = 8000,
         context_window: int | None = None, name: str | None = None,
         device_map: str | None = None, kernels: str = "auto") -> int:
    """Load, listen, serve until Ctrl-C. Exit 0 on Ctrl-C, 4 when the model cannot load."""
    from engine.chat.tokenizer import TokenizerMismatch
    from engine.config import ConfigError
    from engine.weights.loader import LoadError

    try:
        engine = Engine.load(model, kernels, device_map, context_window=context_window,
                             name=name)
    except (ConfigError, LoadError, TokenizerMismatch, OSError, ValueError) as e:
        print(f"flashcode serve: cannot load {model}: {e}", file=sys.stderr)
        return 4
    server = Server(engine, host, port)
    print(f"flashcode serve: {engine.name} on {server.url} (context window "
          f"{engine.context_window} tokens; {engine.placement}); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("flashcode serve: stopping", file=sys.stderr, flush=True)
    finally:
        server.server_close()
    return 0
