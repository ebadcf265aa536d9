"""A small OpenAI-compatible HTTP server on 127.0.0.1, for testing clients for real.

It answers POST /v1/chat/completions from a script, one entry per request:
    FakeReply(text=..., reasoning=..., tool_calls=[(name, arguments_json)], usage=(p, c, cached))
    HTTPFailure(status, message)       an error response
    Stall(seconds)                     wait before answering (for timeouts)
GET /v1/models lists "fake-flash" (with max_model_len when given) and POST /tokenize counts
one token per 4 characters of content when `tokenize` is on (vLLM has both).
Streaming requests get server-sent events split into small chunks (tool-call arguments in
several fragments); `server.requests` holds every request body received.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FakeReply:
    text: str = ""
    reasoning: str = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    usage: tuple[int, int, int] = (100, 10, 0)  # prompt, completion, cached
    chunk_delay: float = 0.0  # seconds between chunks (a slow stream)


@dataclass
class HTTPFailure:
    status: int
    message: str = "failure"


@dataclass
class Stall:
    seconds: float


def _pieces(text: str, n: int = 3) -> list[str]:
    step = max(len(text) // n, 1)
    return [text[i:i + step] for i in range(0, len(text), step)]


def sse_chunks(reply: FakeReply, model: str) -> list[dict]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model}
    choice = lambda delta, finish=None: {**base, "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]}
    out = [choice({"role": "assistant", "content": ""})]
    out += [choice({"reasoning_content": p}) for p in _pieces(reply.reasoning)]
    out += [choice({"content": p}) for p in _pieces(reply.text)]
    for i, (name, args) in enumerate(reply.tool_calls):
        out.append(choice({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                           "function": {"name": name, "arguments": ""}}]}))
        out += [choice({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
                for p in _pieces(args)]
    out.append(choice({}, "tool_calls" if reply.tool_calls else "stop"))
    p, c, cached = reply.usage
    out.append({**base, "choices": [], "usage": {
        "prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
        "prompt_tokens_details": {"cached_tokens": cached}}})
    return out


class FakeOpenAIServer:
    def __init__(self, script, api_key: str | None = None, max_model_len: int | None = None,
                 tokenize: bool = False, owned_by: str = "me"):
        self.script = list(script)
        self.api_key = api_key
        self.max_model_len = max_model_len  # listed on /v1/models, as vLLM does
        self.tokenize = tokenize  # serve /tokenize (vLLM): one token per 4 characters
        self.owned_by = owned_by  # on /v1/models ("flashcode": as `flashcode serve` lists)
        self.requests: list[dict] = []
        self.auth: list[str | None] = []  # the Authorization header of every request, in order
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # a slow stream must not hold up the test's end
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _next(self, body: dict):
        self.requests.append(body)
        return self.script.pop(0) if self.script else HTTPFailure(500, "script exhausted")

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output clean
                pass

            def do_GET(self):
                server.auth.append(self.headers.get("Authorization"))
                model = {"id": "fake-flash", "object": "model", "created": 0,
                         "owned_by": server.owned_by}
                if server.max_model_len:
                    model["max_model_len"] = server.max_model_len
                self._json(200, {"object": "list", "data": [model]})

            def do_POST(self):
                server.auth.append(self.headers.get("Authorization"))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":
                    if not server.tokenize:
                        return self._json(404, {"detail": "Not Found"})
                    chars = sum(len(m.get("content") or "") for m in body["messages"])
                    return self._json(200, {"count": chars // 4, "max_model_len": 1})
                if server.api_key and self.headers.get("Authorization") != \
                        f"Bearer {server.api_key}":
                    return self._json(401, {"error": {"message": "bad key"}})
                entry = server._next(body)
                if isinstance(entry, Stall):
                    time.sleep(entry.seconds)
                    entry = server._next(body) if server.script else FakeReply("late")
                if isinstance(entry, HTTPFailure):
                    return self._json(entry.status, {"error": {"message": entry.message}})
                self._stream(sse_chunks(entry, body.get("model", "")), entry.chunk_delay)

            def _json(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, chunks, delay):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    for chunk in chunks:
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        time.sleep(delay)
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up (cancelled)

        return Handler
