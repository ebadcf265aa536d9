"""The official `openai` client against the real server (engine/serve/server.py) over 127.0.0.1,
serving a tiny random checkpoint: chat with and without streaming, thinking on and off, a
forced tool call as a structured `tool_calls` entry, 8 concurrent streams, 400s."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from engine.api import Engine
from engine.serve.server import Server

WINDOW = 2048
HI = [{"role": "user", "content": "hi"}]
PING = [{"type": "function", "function": {"name": "ping", "description": "check",
                                          "parameters": {"type": "object", "properties": {}}}}]
NO_THINK = {"thinking": False}


@pytest.fixture(scope="module")
def server(tiny_ckpt):
    engine = Engine.load(tiny_ckpt, context_window=WINDOW, name="tiny")
    srv = Server(engine, "127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


def chat(client, **kw):
    return client.chat.completions.create(model="tiny", messages=kw.pop("messages", HI), **kw)


def test_models_lists_the_served_model(client):
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny"]
    assert models[0].model_extra["max_model_len"] == WINDOW


def test_non_streaming_chat_with_usage(client, server):
    r = chat(client, max_tokens=6, temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason in ("length", "stop") and choice.message.role == "assistant"
    assert choice.message.model_extra.get("reasoning_content")  # thinking is on by default
    assert r.usage.prompt_tokens == server.engine.count_tokens(HI)
    assert r.usage.completion_tokens <= 6
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_gives_the_same_reply_as_non_streaming(client):
    whole = chat(client, max_tokens=8, temperature=0, extra_body=NO_THINK)
    chunks = list(chat(client, max_tokens=8, temperature=0, extra_body=NO_THINK, stream=True,
                       stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == \
        whole.usage.completion_tokens


@pytest.mark.parametrize("extra", [{"thinking": False}, {"thinking": {"type": "disabled"}},
                                   {"chat_template_kwargs": {"thinking": False}}])
def test_every_thinking_off_spelling_turns_reasoning_off(client, extra):
    r = chat(client, max_tokens=6, temperature=0, extra_body=extra)
    assert not r.choices[0].message.model_extra.get("reasoning_content")


def test_reasoning_effort_max_lengthens_the_prompt(client):
    plain = chat(client, max_tokens=1, temperature=0)
    most = chat(client, max_tokens=1, temperature=0, reasoning_effort="max")
    assert most.usage.prompt_tokens > plain.usage.prompt_tokens


def test_forced_tool_call_arrives_as_structured_tool_calls(client):
    r = chat(client, tools=PING, tool_choice={"type": "function", "function": {"name": "ping"}},
             max_tokens=200, temperature=0, extra_body=NO_THINK)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and all(c.function.name == "ping" for c in calls)
    assert json.loads(calls[0].function.arguments) == {} and calls[0].id.startswith("call_")
    assert len({c.id for c in calls}) == len(calls)


def test_forced_tool_call_streams_as_tool_call_deltas(client):
    chunks = list(chat(client, tools=PING, tool_choice="required", max_tokens=200,
                       temperature=0, extra_body=NO_THINK, stream=True))
    calls: dict[int, dict] = {}
    for c in chunks:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            slot = calls.setdefault(tc.index, {"name": "", "args": "", "id": None})
            slot["id"] = slot["id"] or tc.id
            slot["name"] += tc.function.name or ""
            slot["args"] += tc.function.arguments or ""
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert calls and all(v["name"] == "ping" and json.loads(v["args"]) == {} and v["id"]
                         for v in calls.values())


def test_eight_concurrent_streams(client):
    def one(i: int) -> tuple[str, str]:
        chunks = list(chat(client, messages=[{"role": "user", "content": f"client {i % 2}"}],
                           max_tokens=6, temperature=0, extra_body=NO_THINK, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, chunks[-1].choices[0].finish_reason

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert all(finish in ("length", "stop") for _, finish in results)
    # greedy, queued one at a time: the same request gets the same reply every time
    assert len({results[i][0] for i in range(0, 8, 2)}) == 1
    assert len({results[i][0] for i in range(1, 8, 2)}) == 1


def test_bad_requests_get_400_with_a_json_error(client):
    cases = [dict(messages=[]), dict(temperature=5), dict(n=2),
             dict(messages=[{"role": "wizard", "content": "x"}]),
             dict(tools=PING, tool_choice={"type": "function", "function": {"name": "nope"}}),
             dict(tool_choice="required"), dict(reasoning_effort="extreme"),
             dict(max_tokens=0), dict(stop=5), dict(tools=[{"type": "function"}])]
    for kw in cases:
        with pytest.raises(openai.BadRequestError) as err:
            chat(client, **kw)
        body = err.value.body
        assert err.value.status_code == 400 and isinstance(body["message"], str), kw


def test_over_long_prompt_gets_a_400_naming_the_limit(client):
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, messages=[{"role": "user", "content": "word " * WINDOW}])
    assert f"context window is {WINDOW} tokens" in str(err.value)
    assert err.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        chat(client, max_tokens=WINDOW)


def _post(url: str, body: bytes, path: str = "/chat/completions") -> tuple[int, dict]:
    req = urllib.request.Request(url + path, data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_malformed_json_and_unknown_paths(server):
    status, body = _post(server.url, b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = _post(server.url, b"[1, 2]")
    assert status == 400 and "JSON object" in body["error"]["message"]
    status, body = _post(server.url, b"{}", "/completions")
    assert status == 404 and body["error"]["type"] == "not_found_error"
    # still serving after all that
    status, body = _post(server.url, json.dumps({"messages": HI, "max_tokens": 2}).encode())
    assert status == 200 and body["usage"]["completion_tokens"] <= 2


def test_the_agents_openai_backend_talks_to_it(server):
    from agent.backends.openai_compat import OpenAIModel
    from agent.config import Settings
    from agent.model import Done, Reply

    model = OpenAIModel.from_settings(Settings(endpoint=server.url, model_name="tiny"))
    assert model.context_window == WINDOW  # read from /v1/models
    reply = Reply()
    events = list(model.stream(HI, [], thinking=False, max_tokens=5))
    for e in events:
        reply.add(e)
    assert isinstance(events[-1], Done) and reply.usage.completion_tokens <= 5
    assert reply.reasoning == ""


def test_a_client_that_leaves_mid_stream_frees_the_engine(client, server):
    engine = server.engine
    prompt = engine.count_tokens(HI)
    stream = chat(client, max_tokens=1500, temperature=1.0, seed=0, stream=True)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    assert engine.lock.acquire(timeout=60)  # generation stopped (it would run 1500 tokens)
    try:
        generated = len(engine.gen.cache.sequences()[-1]) - prompt
    finally:
        engine.lock.release()
    assert 0 < generated < 300, generated


def test_json_response_format_gives_a_json_object(client):
    # a random model writes long JSON strings; every reply it ends by itself is one object
    ended = 0
    for seed in range(6):
        r = chat(client, max_tokens=200, temperature=1.0, seed=seed, extra_body=NO_THINK,
                 messages=[{"role": "user", "content": "hello there, write some code"}],
                 response_format={"type": "json_object"})
        assert r.choices[0].message.content.startswith("{")
        if r.choices[0].finish_reason == "stop":
            ended += 1
            assert isinstance(json.loads(r.choices[0].message.content), dict)
    assert ended >= 3
