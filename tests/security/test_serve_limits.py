"""Item: a request that names no max_tokens generated until the context window ran out,
holding the one sequence slot all along. Now the server's default (--max-tokens-default)
caps it; a request may still ask for more. Messages that must carry text and do not get a 400."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import run_flashcode
from tests.security.conftest import HI, assert_openai_error, port_of, post


def client_for(srv) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=120)


def test_a_request_without_max_tokens_stops_at_the_servers_default(serve):
    srv = serve(max_tokens_default=5)
    r = client_for(srv).chat.completions.create(model="tiny", messages=HI, temperature=1.0,
                                                seed=0)
    assert r.usage.completion_tokens <= 5
    assert r.choices[0].finish_reason in ("length", "stop")


def test_the_default_default_is_4096(serve):
    assert serve().max_tokens_default == 4096


def test_a_request_may_ask_for_more_than_the_default(serve):
    srv = serve(max_tokens_default=2)
    r = client_for(srv).chat.completions.create(model="tiny", messages=HI, max_tokens=9,
                                                temperature=1.0, seed=0)
    assert 2 < r.usage.completion_tokens <= 9


@pytest.mark.parametrize("message", [
    {"role": "user"},
    {"role": "user", "content": None},
    {"role": "system"},
    {"role": "tool", "tool_call_id": "call_1"},
    {"role": "assistant"},  # neither content nor tool_calls
    {"role": "user", "content": 5},
    {"role": "user", "content": {"text": "hi"}},
    {"role": "user", "content": [{"type": "text", "text": 5}]},
    {"role": "user", "content": ["hi"]},
])
def test_a_message_without_text_content_gets_400(serve, message):
    port = port_of(serve())
    msgs = [message, *HI] if message["role"] in ("system", "assistant") else [*HI, message]
    status, body, _ = post(port, {"messages": msgs, "max_tokens": 2})
    assert_openai_error(status, body, 400, "content")
    assert body["error"]["type"] == "invalid_request_error"


def test_an_assistant_tool_call_may_omit_content(serve):
    port = port_of(serve())
    call = {"id": "call_1", "type": "function",
            "function": {"name": "ping", "arguments": "{}"}}
    msgs = [*HI, {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "pong"}]
    status, body, _ = post(port, {"messages": msgs, "max_tokens": 2})
    assert status == 200, body
    assert body["usage"]["completion_tokens"] <= 2


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_serve_wants_a_positive_default(tmp_path, value):
    out = run_flashcode("serve", "--model", str(tmp_path), "--max-tokens-default", value)
    assert out.returncode == 2 and "at least 1" in out.stderr
