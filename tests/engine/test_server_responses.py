"""The official `openai` SDK's `responses.create` / `responses.stream` against the real
server (engine/serve/responses.py) over 127.0.0.1, serving a tiny random checkpoint: text and
reasoning items, the event sequence, forced function calls streamed and whole, tool results
and reasoning sent back, previous_response_id (and store=false), errors in OpenAI's shape."""

from __future__ import annotations

import json
import threading

import openai
import pytest

from engine.api import Engine
from engine.serve.server import Server

WINDOW = 2048
PING = [{"type": "function", "name": "ping", "description": "check",
         "parameters": {"type": "object", "properties": {}}}]
CHAT_PING = [{"type": "function", "function": {"name": "ping", "description": "check",
                                               "parameters": {"type": "object",
                                                              "properties": {}}}}]
NO_THINK = {"effort": "none"}
LONG = "You are a careful assistant. " * 40  # past 128 tokens: the prefix cache keeps it


@pytest.fixture(scope="module")
def server(tiny_ckpt):
    engine = Engine.load(tiny_ckpt, context_window=WINDOW, name="tiny")
    srv = Server(engine, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


def respond(client, **kw):
    return client.responses.create(model="tiny", **{"input": "hi", "temperature": 0, **kw})


def test_text_reply_with_reasoning_and_usage(client, server):
    r = respond(client, max_output_tokens=6)
    assert r.object == "response" and r.id.startswith("resp_") and r.model == "tiny"
    assert r.status in ("completed", "incomplete")
    assert r.output[0].type == "reasoning"  # thinking is on unless reasoning.effort is none
    assert r.output[0].content[0].type == "reasoning_text" and r.output[0].content[0].text
    assert r.usage.input_tokens == server.engine.count_tokens([{"role": "user",
                                                               "content": "hi"}])
    assert r.usage.output_tokens <= 6 and r.usage.input_tokens_details.cached_tokens == 0
    assert 0 < r.usage.output_tokens_details.reasoning_tokens <= r.usage.output_tokens
    if r.status == "incomplete":
        assert r.incomplete_details.reason == "max_output_tokens"


def test_stream_events_in_order_and_the_same_reply_as_whole(client):
    whole = respond(client, max_output_tokens=8, reasoning=NO_THINK)
    events = list(respond(client, max_output_tokens=8, reasoning=NO_THINK, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress",
                         "response.output_item.added"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == whole.output_text and text
    assert "response.output_text.done" in kinds and "response.content_part.done" in kinds
    final = events[-1].response
    assert final.output_text == text and final.usage.output_tokens == whole.usage.output_tokens


def test_reasoning_streams_as_reasoning_text_deltas(client):
    events = list(respond(client, max_output_tokens=6, stream=True))
    deltas = [e for e in events if e.type == "response.reasoning_text.delta"]
    assert deltas and deltas[0].item_id.startswith("rs_")
    done = [e for e in events if e.type == "response.output_item.done"][0]
    assert done.item.type == "reasoning"
    assert done.item.content[0].text == "".join(d.delta for d in deltas)


def test_forced_function_call_whole(client):
    r = respond(client, tools=PING, tool_choice={"type": "function", "name": "ping"},
                max_output_tokens=200, reasoning=NO_THINK)
    calls = [o for o in r.output if o.type == "function_call"]
    assert r.status == "completed" and calls and all(c.name == "ping" for c in calls)
    assert json.loads(calls[0].arguments) == {} and calls[0].call_id.startswith("call_")
    assert calls[0].id.startswith("fc_") and calls[0].status == "completed"


def test_forced_function_call_streams_argument_deltas(client):
    with client.responses.stream(model="tiny", input="hi", tools=PING, tool_choice="required",
                                 max_output_tokens=200, temperature=0,
                                 reasoning=NO_THINK) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done and json.loads(done[0].arguments) == {}
    assert kinds[-1] == "response.completed"
    assert [o.type for o in final.output] == ["function_call"] * len(done)


def test_tool_results_go_back_as_input_items_into_the_same_prompt_as_chat(client, server):
    """function_call + function_call_output items and a reasoning item: the prompt is the one
    the chat API renders for the same conversation (one request path for every API)."""
    items = [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"},
             {"type": "reasoning", "id": "rs_1", "summary": [],
              "content": [{"type": "reasoning_text", "text": "call it"}]},
             {"type": "function_call", "call_id": "call_1", "name": "ping", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "call_1", "output": "pong"}]
    r = respond(client, input=items, tools=PING, max_output_tokens=3)
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "reasoning_content": "call it",
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": "ping", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "pong"}]
    assert r.usage.input_tokens == server.engine.count_tokens(chat, CHAT_PING)


def test_previous_response_id_continues_the_conversation_from_the_cache(client, server):
    first = respond(client, instructions=LONG, max_output_tokens=5, reasoning=NO_THINK)
    second = respond(client, instructions=LONG, input="and now?", max_output_tokens=5,
                     previous_response_id=first.id, reasoning=NO_THINK)
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    assert second.usage.input_tokens_details.cached_tokens >= 128  # the first turn's prefix
    with pytest.raises(openai.BadRequestError) as err:
        respond(client, previous_response_id="resp_nope", max_output_tokens=2)
    assert err.value.body["param"] == "previous_response_id"
    unstored = respond(client, store=False, max_output_tokens=2, reasoning=NO_THINK)
    with pytest.raises(openai.BadRequestError, match="not found"):
        respond(client, previous_response_id=unstored.id, max_output_tokens=2)


def test_the_store_is_bounded():
    from engine.serve.responses_reply import Store

    store = Store(max_items=3, max_chars=200)
    for i in range(5):
        store.put(f"r{i}", [{"role": "user", "content": str(i)}])
    assert len(store) == 3 and store.get("r0") is None and store.get("r4") is not None
    store.put("big", [{"role": "user", "content": "x" * 500}])  # alone over the limit
    assert store.get("big") is None
    store.put("r5", [{"role": "user", "content": "y" * 150}])
    assert len(store) == 1 and store.get("r5")


@pytest.mark.parametrize("kw, param", [
    (dict(input=[{"type": "computer_call"}]), "input[0].type"),
    (dict(input=[{"role": "user", "content": [{"type": "input_image",
                                                "image_url": "x"}]}]), "input[0].content"),
    (dict(input=[{"role": "wizard", "content": "x"}]), "input[0].role"),
    (dict(tools=PING, tool_choice={"type": "function", "name": "nope"}), None),
    (dict(tool_choice={"type": "web_search"}, tools=PING), "tool_choice"),
    (dict(reasoning={"effort": "extreme"}), "reasoning.effort"),
    (dict(max_output_tokens=0), "max_output_tokens"),
    (dict(input=[]), "input"),
])
def test_bad_requests_get_400_in_openais_shape(client, kw, param):
    with pytest.raises(openai.BadRequestError) as err:
        respond(client, **kw)
    body = err.value.body
    assert err.value.status_code == 400 and body["message"] and body["type"]
    assert body["param"] == param


def test_over_long_input_names_the_context_window(client):
    with pytest.raises(openai.BadRequestError) as err:
        respond(client, input="word " * WINDOW)
    assert err.value.code == "context_length_exceeded" and err.value.body["param"] == "input"
