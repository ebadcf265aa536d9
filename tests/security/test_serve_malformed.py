"""Item: malformed requests got a 500 (a crash, a hang or an HTML page) instead of a 400 with
OpenAI's error body saying what was wrong. Each case is what an attacker sent."""

from __future__ import annotations

import socket
import time

import pytest

from tests.security.conftest import (
    HI,
    assert_openai_error,
    port_of,
    post,
    read_response,
    request,
)

PING = [{"type": "function", "function": {"name": "ping", "parameters": {"type": "object"}}}]
PATH = "/v1/chat/completions"


def chat(**kw) -> dict:
    return {"messages": HI, "max_tokens": 2, **kw}


def raw_chat(text: bytes) -> bytes:
    return text.replace(b"MSGS", b'[{"role": "user", "content": "hi"}]')


BODY_CASES = {
    "deeply nested JSON": (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
    "deeply nested top level": (b"[" * 100_000 + b"]" * 100_000, "nested"),
    "nested past the limit": (raw_chat(b'{"messages": MSGS, "response_format": '
                                       + b'{"a": ' * 200 + b"1" + b"}" * 201), "nested"),
    "lone surrogate in a value": (b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
                                  "surrogate"),
    "lone surrogate in a key": (raw_chat(b'{"messages": MSGS, "\\udfff": 1}'), "surrogate"),
    "seed 2**70": (chat(seed=2**70), "seed"),
    "seed 2**64": (chat(seed=2**64), "seed"),
    "17 stop strings": (chat(stop=[f"s{i}" for i in range(17)]), "stop"),
    "a 10k-character stop string": (chat(stop="x" * 10_000), "stop"),
    "NaN": (raw_chat(b'{"messages": MSGS, "temperature": NaN}'), "NaN"),
    "tool_choice without a name": (chat(tools=PING, tool_choice={"type": "function"}),
                                   "tool_choice"),
    "tool_choice function a string": (chat(tools=PING, tool_choice={
        "type": "function", "function": "ping"}), "tool_choice"),
    "tool_choice name not a string": (chat(tools=PING, tool_choice={
        "type": "function", "function": {"name": 5}}), "tool_choice"),
    "token_ids out of range": (chat(messages=[*HI, {"role": "assistant", "content": "x",
                                                    "token_ids": [10**9]}, *HI]),
                               "token_ids"),
    "negative token_ids": (chat(messages=[*HI, {"role": "assistant", "content": "x",
                                                "token_ids": [-1]}, *HI]), "token_ids"),
    "tool parameters not an object": (chat(tools=[{"type": "function", "function": {
        "name": "p", "parameters": "x"}}]), "tools"),
}


@pytest.mark.parametrize("case", BODY_CASES)
def test_a_malformed_body_gets_400_saying_what_is_wrong(serve, case):
    port = port_of(serve())
    body, says = BODY_CASES[case]
    status, reply, _ = post(port, body)
    assert_openai_error(status, reply, 400, says)
    assert reply["error"]["type"] == "invalid_request_error"
    status, reply, _ = post(port, chat())  # and it still serves
    assert status == 200, reply


HEADER_CASES = {
    "Content-Length abc": ({"Content-Length": "abc"}, 400, "Content-Length"),
    "Content-Length -5": ({"Content-Length": "-5"}, 400, "Content-Length"),
    "Content-Length 1e3": ({"Content-Length": "1e3"}, 400, "Content-Length"),
    "Content-Length over the limit": ({"Content-Length": str(10**11)}, 413, "limit"),
    "chunked body": ({"Transfer-Encoding": "chunked", "Content-Length": None}, 411,
                     "Content-Length"),
}


@pytest.mark.parametrize("case", HEADER_CASES)
def test_bad_headers_get_an_openai_error(serve, case):
    port = port_of(serve())
    headers, code, says = HEADER_CASES[case]
    status, reply, _ = post(port, b'{"messages": []}', headers=headers, timeout=20)
    assert_openai_error(status, reply, code, says)


def test_conflicting_content_lengths_get_400(serve):
    port = port_of(serve())
    status, reply, _ = request(port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Content-Length: 2\r\nContent-Length: 5\r\n\r\n{}")
    assert_openai_error(status, reply, 400, "Content-Length")


def test_a_body_shorter_than_its_content_length_gets_400(serve):
    port = port_of(serve())
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Length: 100\r\n\r\n{}")
        s.shutdown(socket.SHUT_WR)  # the rest never comes
        status, reply, _ = read_response(s)
    assert_openai_error(status, reply, 400, "body")


@pytest.mark.parametrize("line, code", [
    (b"PUT /v1/chat/completions HTTP/1.1", 405),
    (b"DELETE /v1/models HTTP/1.1", 405),
    (b"FOO / HTTP/1.1", 405),
    (b"GET /v1/models HTTP/2.0", 400),
    (b"GET /v1/models HTTP/x.y", 400),
    (b"\x00\x01\x02 hello", 400),
])
def test_bad_methods_and_request_lines_get_4xx_with_an_openai_error(serve, line, code):
    port = port_of(serve())
    status, reply, _ = request(port, line + b"\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
    assert_openai_error(status, reply, code)


def test_a_get_with_a_body_does_not_smuggle_a_second_request(serve):
    port = port_of(serve())
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
                  + str(len(smuggled)).encode() + b"\r\n\r\n" + smuggled)
        seen = b""
        try:
            while chunk := s.recv(65536):
                seen += chunk
        except TimeoutError:
            pass
    assert seen.startswith(b"HTTP/1.1 200")
    assert seen.count(b"HTTP/1.1 ") == 1, seen  # the body was not taken for a request


def test_the_request_log_escapes_control_characters(serve, capsys):
    port = port_of(serve())
    status, _, _ = request(port, b"GET /\x1b[2Jgone HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 404
    err, deadline = "", time.monotonic() + 10
    while "gone" not in err and time.monotonic() < deadline:  # logged after the answer
        time.sleep(0.05)
        err += capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b[2Jgone" in err
