"""Item: a client that closed its connection mid-reply was not noticed for a non-streaming
request, so the engine (one sequence at a time) generated to the end for nobody and every
later request waited. Now the server polls the connection between tokens and stops."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.security.conftest import HI, port_of, post

LONG = 1500  # tokens asked for: minutes of work if nobody stops it


def _wait_until_generating(engine, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not engine.lock.locked():
        assert time.monotonic() < deadline, "generation never started"
        time.sleep(0.01)
    time.sleep(0.3)  # a few tokens in


def _generated_after(engine, prompt: int) -> int:
    """Tokens the last reply generated, once the engine is free again (or fail)."""
    assert engine.lock.acquire(timeout=60), "the engine is still busy for a client that left"
    try:
        return len(engine.gen.cache.sequences()[-1]) - prompt
    finally:
        engine.lock.release()


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_stops_generation_and_the_next_request_is_served(
        serve, engine, stream):
    port = port_of(serve())
    body = json.dumps({"messages": HI, "max_tokens": LONG, "temperature": 1.0, "seed": 0,
                       "stream": stream}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
              b"application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
              + body)
    _wait_until_generating(engine)
    s.close()
    generated = _generated_after(engine, engine.count_tokens(HI))
    assert 0 < generated < 300, generated  # it would run to 1500
    started = time.monotonic()
    status, reply, _ = post(port, {"messages": HI, "max_tokens": 2}, timeout=120)
    assert status == 200 and reply["usage"]["completion_tokens"] <= 2
    assert time.monotonic() - started < 60
