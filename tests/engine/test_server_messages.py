"""The official `anthropic` SDK's `messages.create` / `messages.stream` / `count_tokens`
against the real server (engine/serve/messages.py) over 127.0.0.1, serving a tiny random
checkpoint: text, thinking, forced tool use streamed and whole, tool results and thinking sent
back, stop sequences, x-api-key, errors in Anthropic's shape; and one prompt cache for all
three APIs."""

from __future__ import annotations

import threading

import anthropic
import openai
import pytest

from engine.api import Engine
from engine.serve.server import Server

WINDOW = 2048
KEY = "messages-key"
HI = [{"role": "user", "content": "hi"}]
TOOLS = [{"name": "ping", "description": "check",
          "input_schema": {"type": "object", "properties": {}}}]
CHAT_TOOLS = [{"type": "function", "function": {"name": "ping", "description": "check",
                                                "parameters": {"type": "object",
                                                               "properties": {}}}}]
THINK = {"type": "enabled", "budget_tokens": 1024}
GREEDY = {"temperature": 0}  # the SDK no longer takes temperature as an argument
LONG = "You are a careful assistant. " * 40  # past 128 tokens: the prefix cache keeps it


@pytest.fixture(scope="module")
def server(tiny_ckpt):
    engine = Engine.load(tiny_ckpt, context_window=WINDOW, name="tiny")
    srv = Server(engine, "127.0.0.1", 0, api_key=KEY)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def client(server) -> anthropic.Anthropic:
    """Anthropic's base URL has no /v1: the SDK adds it, and sends the key as x-api-key."""
    return anthropic.Anthropic(base_url=server.url.removesuffix("/v1"), api_key=KEY,
                               max_retries=0, timeout=120)


def create(client, **kw):
    return client.messages.create(model="tiny", **{"max_tokens": 6, "messages": HI,
                                                   "extra_body": GREEDY, **kw})


def test_text_reply_with_usage_and_count_tokens(client):
    m = create(client)
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_")
    assert [b.type for b in m.content] == ["text"]  # no thinking unless asked, as Anthropic
    assert m.stop_reason in ("end_turn", "max_tokens") and m.usage.output_tokens <= 6
    counted = client.messages.count_tokens(model="tiny", messages=HI).input_tokens
    assert counted == m.usage.input_tokens + m.usage.cache_read_input_tokens


def test_stream_gives_the_same_text_as_whole(client):
    whole = create(client, max_tokens=8)
    with client.messages.stream(model="tiny", max_tokens=8, messages=HI,
                                extra_body=GREEDY) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text == final.content[0].text
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_thinking_streams_as_thinking_deltas_with_a_signature(client):
    with client.messages.stream(model="tiny", max_tokens=8, messages=HI, thinking=THINK,
                                extra_body=GREEDY) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    deltas = [e.delta.thinking for e in events if e.type == "content_block_delta"
              and e.delta.type == "thinking_delta"]
    assert deltas and final.content[0].type == "thinking"
    assert final.content[0].thinking == "".join(deltas) and final.content[0].signature


def test_forced_tool_use_whole(client):
    m = create(client, tools=TOOLS, tool_choice={"type": "tool", "name": "ping"},
               max_tokens=200)
    uses = [b for b in m.content if b.type == "tool_use"]
    assert m.stop_reason == "tool_use" and uses and uses[0].name == "ping"
    assert uses[0].input == {} and uses[0].id.startswith("toolu_")


def test_forced_tool_use_streams_input_json_deltas(client):
    with client.messages.stream(model="tiny", max_tokens=200, messages=HI, tools=TOOLS,
                                tool_choice={"type": "any"}, extra_body=GREEDY) as stream:
        events = list(stream)
        final = stream.get_final_message()
    starts = [e for e in events if e.type == "content_block_start"]
    assert starts and starts[0].content_block.type == "tool_use"
    assert any(e.type == "content_block_delta" and e.delta.type == "input_json_delta"
               for e in events)
    assert final.stop_reason == "tool_use" and final.content[0].input == {}


def test_history_with_thinking_tool_use_and_results_is_the_chat_prompt(client, server):
    messages = [*HI, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "call it", "signature": "x"},
        {"type": "tool_use", "id": "toolu_1", "name": "ping", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "pong"},
            {"type": "text", "text": "and?"}]}]
    m = create(client, system=[{"type": "text", "text": "be brief"}], messages=messages,
               tools=TOOLS, thinking=THINK, max_tokens=3)
    chat = [{"role": "system", "content": "be brief"}, *HI,
            {"role": "assistant", "content": "", "reasoning_content": "call it",
             "tool_calls": [{"id": "toolu_1", "type": "function",
                             "function": {"name": "ping", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "pong"},
            {"role": "user", "content": "and?"}]
    assert m.usage.input_tokens + m.usage.cache_read_input_tokens == \
        server.engine.count_tokens(chat, CHAT_TOOLS)


def test_a_stop_sequence_ends_the_reply(client):
    text = create(client, max_tokens=12).content[0].text
    stop = text.strip()[2:4]
    assert len(stop) == 2
    m = create(client, max_tokens=12, stop_sequences=[stop])
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == stop
    assert stop not in m.content[0].text


def test_one_prompt_cache_for_all_three_apis(server):
    """The same conversation sent through chat, then Responses, then Messages: the later ones
    prefill only what the first did not already compute."""
    oc = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0)
    convo = [{"role": "system", "content": LONG}, {"role": "user", "content": "cache me"}]
    first = oc.chat.completions.create(model="tiny", messages=convo, max_tokens=1)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    r = oc.responses.create(model="tiny", instructions=LONG, input="cache me",
                            max_output_tokens=1)
    assert r.usage.input_tokens_details.cached_tokens >= 128
    ac = anthropic.Anthropic(base_url=server.url.removesuffix("/v1"), api_key=KEY,
                             max_retries=0)
    m = ac.messages.create(model="tiny", system=LONG, messages=convo[1:], max_tokens=1,
                           thinking=THINK)
    assert m.usage.cache_read_input_tokens >= 128
    assert m.usage.input_tokens + m.usage.cache_read_input_tokens == r.usage.input_tokens


@pytest.mark.parametrize("kw, says", [
    (dict(max_tokens=None), "max_tokens"),
    (dict(messages=[]), "messages"),
    (dict(messages=[{"role": "user", "content": [{"type": "image", "source": {}}]}]),
     "image"),
    (dict(messages=[{"role": "wizard", "content": "x"}]), "role"),
    (dict(tool_choice={"type": "tool"}, tools=TOOLS), "tool_choice"),
    (dict(tools=[{"name": "x"}]), "input_schema"),
    (dict(thinking={"type": "sometimes"}), "thinking"),
    (dict(messages=[{"role": "user", "content": "word " * WINDOW}]), "context window"),
])
def test_bad_requests_get_400_in_anthropics_shape(client, kw, says):
    body = {k: v for k, v in {"max_tokens": 6, "messages": HI, **kw}.items() if v is not None}
    raw = client.messages.with_raw_response
    with pytest.raises(anthropic.BadRequestError) as err:
        raw.create(model="tiny", **{k: v for k, v in body.items() if k != "max_tokens"},
                   max_tokens=body.get("max_tokens", anthropic.omit))
    assert err.value.status_code == 400
    assert err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert says in err.value.body["error"]["message"]


def test_a_wrong_x_api_key_gets_anthropics_authentication_error(server):
    bad = anthropic.Anthropic(base_url=server.url.removesuffix("/v1"), api_key="wrong",
                              max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as err:
        bad.messages.create(model="tiny", max_tokens=2, messages=HI)
    assert err.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as err:
        bad.with_options(api_key=KEY).post("/v1/messages/nope", body={}, cast_to=object)
    assert err.value.body["error"]["type"] == "not_found_error"


def test_head_slash_answers_without_the_key(server):
    """Claude Code asks `HEAD /` before it starts; the answer needs no key and has no body."""
    import urllib.error
    import urllib.request

    base = server.url.removesuffix("/v1")
    with urllib.request.urlopen(urllib.request.Request(base + "/", method="HEAD")) as r:
        assert r.status == 200 and r.read() == b""
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(base + "/v1/messages", method="HEAD"))
    assert err.value.code == 405
