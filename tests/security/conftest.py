"""A real `flashcode serve` server (engine/serve/server.py) on 127.0.0.1 over a tiny random
checkpoint, started in this process, and raw-socket helpers for what a well-behaved client
(the `openai` SDK) never sends."""

from __future__ import annotations

import json
import re
import socket
import threading

import pytest

from engine.api import Engine
from engine.serve.server import Server
from engine.weights.tiny import make_tiny

WINDOW = 2048
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    return make_tiny(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny", seed=0,
                     tokenizer="small")


@pytest.fixture(scope="session")
def engine(tiny_ckpt):
    return Engine.load(tiny_ckpt, context_window=WINDOW, name="tiny")


@pytest.fixture
def serve(engine):
    """serve(**server_kwargs) -> a running Server; every one is shut down after the test."""
    started = []

    def start(**kw) -> Server:
        srv = Server(engine, "127.0.0.1", 0, **kw)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


def port_of(srv: Server) -> int:
    return srv.server_address[1]


def request(port: int, data: bytes, timeout: float = 30) -> tuple[int, dict | bytes, bytes]:
    """Send raw bytes, read one response: (status, JSON body or raw bytes, head)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_response(s)


def read_response(s: socket.socket) -> tuple[int, dict | bytes, bytes]:
    """One response (after any interim 1xx, e.g. 100 Continue): (status, JSON body or raw
    bytes, head); status 0 when the server closed without one."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        if not re.match(rb"HTTP/1\.1 1\d\d ", head):
            break
        buf = body
    lines = head.split(b"\r\n")
    fields = dict(ln.lower().split(b": ", 1) for ln in lines[1:] if b": " in ln)
    n = int(fields.get(b"content-length", b"-1"))
    while len(body) < n or n < 0:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    status = int(lines[0].split()[1]) if lines[0].startswith(b"HTTP/") else 0
    try:
        return status, json.loads(body), head
    except ValueError:
        return status, body, head


def post(port: int, body: bytes | dict, path: str = "/v1/chat/completions",
         headers: dict | None = None, method: str = "POST", timeout: float = 30):
    """A request with a correct Content-Length unless `headers` says otherwise."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    fields = {"Host": "127.0.0.1", "Content-Type": "application/json",
              "Content-Length": str(len(body)), **(headers or {})}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in fields.items() if v is not None) + "\r\n"
    return request(port, head.encode() + body, timeout)


def assert_openai_error(status: int, body, expect_status: int, says: str = "") -> None:
    """An OpenAI-shaped error body: {"error": {"message", "type", "param", "code"}}."""
    assert status == expect_status, (status, body)
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"] and "type" in err, body
    assert says.lower() in err["message"].lower(), (says, err["message"])
