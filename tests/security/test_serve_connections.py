"""Connections as strangers hold them: web pages (cross-site requests and DNS rebinding) may
not drive the model, the number of open connections is capped, and clients that reset their
connection do not fill the log with tracebacks."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from tests.security.conftest import HI, assert_openai_error, port_of, post, request


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Host": "evil.example"},
    {"Host": "evil.example:8000"},
    {"Host": "127.0.0.1.evil.example"},
])
def test_requests_a_web_page_could_make_are_refused(serve, headers):
    port = port_of(serve())
    status, body, _ = post(port, {"messages": HI, "max_tokens": 2}, headers=headers)
    assert_openai_error(status, body, 403)
    status, body, _ = request(port, b"GET /v1/models HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in {"Host": "127.0.0.1", **headers}.items()).encode()
        + b"\r\n")
    assert_openai_error(status, body, 403)


def test_with_an_api_key_the_key_is_the_guard(serve):
    port = port_of(serve(api_key="k"))
    status, body, _ = post(port, {"messages": HI, "max_tokens": 2}, headers={
        "Origin": "http://localhost:3000", "Host": "api.example", "Authorization": "Bearer k"})
    assert status == 200, body  # e.g. behind a reverse proxy that passes its Host on


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:{port}", "localhost:{port}",
                                  "LOCALHOST", "[::1]:{port}", None])
def test_loopback_hosts_are_served(serve, host):
    port = port_of(serve())
    head = b"GET /v1/models HTTP/1.1\r\n"
    if host is not None:
        head += f"Host: {host.format(port=port)}\r\n".encode()
    status, body, _ = request(port, head + b"\r\n")
    assert status == 200, body


def test_open_connections_are_capped(serve):
    srv = serve(max_connections=2)
    port = port_of(srv)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    time.sleep(0.5)  # both taken by their threads
    status, body, _ = post(port, {"messages": HI, "max_tokens": 2})
    assert_openai_error(status, body, 503, "connections")
    for s in idle:
        s.close()
    deadline = time.monotonic() + 30
    while (status := post(port, {"messages": HI, "max_tokens": 2})[0]) != 200:
        assert time.monotonic() < deadline, status  # the slots come back
        time.sleep(0.2)


def test_a_client_that_resets_does_not_log_a_traceback(serve, capsys):
    port = port_of(serve())
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                  b"\r\n[]")
        s.close()  # a reset, before the answer is read
    time.sleep(1)
    status, _, _ = post(port, {"messages": HI, "max_tokens": 2})
    assert status == 200
    assert "Traceback" not in capsys.readouterr().err
