"""A bounded fuzz of `flashcode serve` over 127.0.0.1: a few hundred requests made by mutating
valid ones to each API it speaks (Chat Completions, Responses, Anthropic Messages and its
count_tokens) (wrong types, missing fields, huge numbers, odd unicode, nesting, truncated bodies,
bad headers, methods, paths and versions), each on its own connection. Passing means: no
response is a 5xx, none hangs, the server logs no traceback, and it answers a normal request
afterwards. Seeded, so a failure replays (FLASHCODE_FUZZ_SEED picks another run)."""

from __future__ import annotations

import collections
import copy
import json
import os
import random
import socket
import time

import anthropic
import openai

from tests.security.conftest import HI, port_of, read_response

N = 500
KEY = "fuzz-key"
PING = {"type": "function", "function": {"name": "ping", "description": "check",
                                         "parameters": {"type": "object", "properties": {
                                             "host": {"type": "string"}}}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "ping", "arguments": "{}"}}
VALID = [
    {"model": "tiny", "messages": HI, "max_tokens": 3},
    {"messages": HI, "max_tokens": 4, "temperature": 0, "thinking": False, "stop": ["a"]},
    {"messages": [{"role": "system", "content": "be brief"}, *HI], "max_tokens": 2,
     "stream": True, "stream_options": {"include_usage": True}, "seed": 7},
    {"messages": HI, "max_tokens": 4, "tools": [PING], "tool_choice": "auto", "top_p": 0.9},
    {"messages": HI, "max_tokens": 4, "tools": [PING], "thinking": {"type": "disabled"},
     "tool_choice": {"type": "function", "function": {"name": "ping"}}},
    {"messages": [*HI, {"role": "assistant", "content": None, "tool_calls": [CALL]},
                  {"role": "tool", "tool_call_id": "call_1", "content": "pong"}],
     "max_tokens": 3, "tools": [PING], "reasoning_effort": "low"},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
     "max_tokens": 2, "response_format": {"type": "json_object"}, "top_k": 5, "min_p": 0.1},
]
FC = {"type": "function", "name": "ping", "parameters": {"type": "object", "properties": {}}}
RESPONSES = [
    {"model": "tiny", "input": "hi", "max_output_tokens": 3},
    {"input": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": [
        {"type": "input_text", "text": "hi"}]}], "instructions": "x", "max_output_tokens": 2,
     "stream": True, "reasoning": {"effort": "none"}, "store": False},
    {"input": [{"role": "user", "content": "hi"},
               {"type": "reasoning", "summary": [], "content": [
                   {"type": "reasoning_text", "text": "t"}]},
               {"type": "function_call", "call_id": "c1", "name": "ping", "arguments": "{}"},
               {"type": "function_call_output", "call_id": "c1", "output": "pong"}],
     "tools": [FC, {"type": "web_search"}], "tool_choice": {"type": "function", "name": "ping"},
     "max_output_tokens": 4, "text": {"format": {"type": "json_object"}}},
    {"input": "again", "previous_response_id": "resp_x", "max_output_tokens": 2},
]
TOOL = {"name": "ping", "input_schema": {"type": "object", "properties": {}}}
MESSAGES = [
    {"model": "tiny", "max_tokens": 3, "messages": HI},
    {"model": "tiny", "max_tokens": 2, "system": [{"type": "text", "text": "be brief"}],
     "messages": HI, "stream": True, "thinking": {"type": "enabled", "budget_tokens": 1024},
     "stop_sequences": ["a"]},
    {"model": "tiny", "max_tokens": 4, "tools": [TOOL], "tool_choice": {"type": "any"},
     "messages": [*HI, {"role": "assistant", "content": [
         {"type": "thinking", "thinking": "t", "signature": "s"},
         {"type": "tool_use", "id": "t1", "name": "ping", "input": {}}]},
         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                       "content": [{"type": "text", "text": "pong"}]}]}]},
]
COUNT = [{"model": "tiny", "messages": HI, "tools": [TOOL]}]
BODIES = {"/v1/chat/completions": VALID, "/v1/responses": RESPONSES, "/v1/messages": MESSAGES,
          "/v1/messages/count_tokens": COUNT}
EVIL = [None, "", "x" * 5000, 0, -1, 1, 2**31, 2**63, 2**70, -(2**70), 1.5, 1e308, -0.0,
        True, [], {}, [[[[[]]]]], {"a": {"b": {"c": {}}}}, "\ud800", "\udfff\ud800", "\x00",
        "<｜User｜>", "</think>", "🙂" * 50, "\u202e", {"type": "function"},
        {"name": None}, [{"role": "user"}], [None], ["x"], "NaN", "function", "auto"]


def _paths(tree, at=()):
    """Every (path, value) in a JSON tree, the root first."""
    yield at, tree
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) \
        if isinstance(tree, list) else ()
    for k, v in items:
        yield from _paths(v, (*at, k))


def _set(tree, path, value):
    for k in path[:-1]:
        tree = tree[k]
    if value is _DROP:
        del tree[path[-1]]
    else:
        tree[path[-1]] = value


_DROP = object()


def mutate_json(rng: random.Random, valid: list[dict]) -> object:
    body = copy.deepcopy(rng.choice(valid))
    for _ in range(rng.randint(1, 3)):
        paths = [p for p, _ in _paths(body) if p]
        if not paths or not isinstance(body, dict):
            break
        path = rng.choice(paths)
        op = rng.random()
        if op < 0.3:
            _set(body, path, _DROP)
        elif op < 0.8:
            _set(body, path, copy.deepcopy(rng.choice(EVIL)))
        elif op < 0.9:
            _set(body, path, [copy.deepcopy(dict(_paths(body)).get(path))] * rng.randint(2, 40))
        else:
            body[rng.choice(["n", "logprobs", "user", "functions", "x" * 300])] = \
                rng.choice(EVIL)
    if rng.random() < 0.05:
        body = rng.choice([[body], "body", 5, None])
    return body


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    op = rng.randrange(5)
    if op == 0:  # truncated
        return data[:rng.randrange(len(data))]
    if op == 1:  # flipped bytes, invalid UTF-8 included
        b = bytearray(data)
        for _ in range(rng.randint(1, 5)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if op == 2:  # deep nesting
        depth = rng.choice([50, 200, 5000, 200_000])
        return data[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"
    if op == 3:  # escapes: lone surrogates, NUL, overlong numbers
        return data.replace(b'"hi"', rng.choice([b'"\\ud800"', b'"\\u0000"', b'"\\udc00x"',
                                                 b"1" * 5000, b"1e99999", b"-"]))
    return data + rng.choice([b"garbage", b"}", b"\x00", b" " * 1000])


def make_request(rng: random.Random) -> tuple[bytes, bool]:
    """(raw request, whether to half-close after sending)."""
    path = rng.choices(["/v1/chat/completions", "/chat/completions/", "/v1/responses",
                        "/v1/messages?beta=true", "/v1/messages/count_tokens", "/v1/models",
                        "/health", "/v1/completions", "/../../etc/passwd", "/%00", "*",
                        "/v1/x?y=z", "/" + "a" * 70_000],
                       [30, 4, 18, 18, 6, 6, 4, 3, 2, 2, 2, 3, 1])[0]
    valid = BODIES.get(path.split("?")[0].rstrip("/"), VALID)
    body = json.dumps(mutate_json(rng, valid)).encode()
    if rng.random() < 0.3:
        body = mutate_bytes(body, rng)
    method = rng.choices(["POST", "GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "FOO",
                          ""], [70, 8, 3, 3, 3, 3, 2, 2, 1])[0]
    version = rng.choices(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/x", ""],
                          [85, 6, 3, 2, 2, 2])[0]
    headers = {"Host": "127.0.0.1", "Content-Type": "application/json",
               "Content-Length": str(len(body)), "Connection": "close"}
    if rng.random() < 0.85:
        if rng.random() < 0.7:
            headers["Authorization"] = f"Bearer {KEY}"
        else:
            headers["x-api-key"] = KEY  # Anthropic's header, taken by every endpoint
    half_close = False
    if rng.random() < 0.2:
        k = rng.choice(["Content-Length", "Transfer-Encoding", "Authorization", "Expect",
                        "X-Junk", "Content-Type"])
        headers[k] = rng.choice(["abc", "-5", "1e3", " 12 ", "+5", "0x10", str(2**70), "",
                                 "chunked", "100-continue", "Bearer " + "k" * 9000,
                                 str(len(body) + 50), "\u00ff\u00fe"])
        half_close = k == "Content-Length"
    line = " ".join(x for x in (method, path, version) if x)
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1", "replace") + body, half_close


def send(port: int, data: bytes, half_close: bool) -> int | str:
    """The status code, or 'closed' when the server hung up without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (e.g. 413) and closed
        try:
            status, body, _ = read_response(s)
        except ConnectionResetError:
            return "closed"
        if status and status >= 400:
            assert isinstance(body, dict) and isinstance(body.get("error"), dict), \
                (status, body, data[:300])
            assert body["error"]["message"], body
        return status or "closed"


def test_serve_fuzz(serve, capsys):
    seed = int(os.environ.get("FLASHCODE_FUZZ_SEED", "20260501"))
    rng = random.Random(seed)
    srv = serve(api_key=KEY, max_tokens_default=4)
    port = port_of(srv)
    seen: collections.Counter = collections.Counter()
    started = time.monotonic()
    for i in range(N):
        data, half_close = make_request(rng)
        try:
            status = send(port, data, half_close)
        except TimeoutError:
            raise AssertionError(f"request {i} hung (seed {seed}): {data[:300]!r}") from None
        seen[status] += 1
        assert not (isinstance(status, int) and status >= 500), \
            f"request {i} got {status} (seed {seed}): {data[:300]!r}"
    took = time.monotonic() - started
    client = openai.OpenAI(base_url=srv.url, api_key=KEY, max_retries=0, timeout=60)
    r = client.chat.completions.create(model="tiny", messages=HI, max_tokens=2)
    assert r.usage.completion_tokens <= 2
    assert client.responses.create(model="tiny", input="hi", max_output_tokens=2).usage
    anthropic_client = anthropic.Anthropic(base_url=srv.url.removesuffix("/v1"), api_key=KEY,
                                           max_retries=0, timeout=60)
    assert anthropic_client.messages.create(model="tiny", messages=HI, max_tokens=2).usage
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    with capsys.disabled():
        print(f"\nserve fuzz: {N} requests in {took:.1f}s (seed {seed}): "
              f"{dict(sorted(seen.items(), key=str))}")
