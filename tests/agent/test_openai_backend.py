"""The `openai` backend with the real `openai` client against a real loopback HTTP server."""

from __future__ import annotations

import json
import socket
import time

import pytest

from agent.backends.openai_compat import OpenAIModel
from agent.model import (
    BackendError,
    BackendUnavailable,
    Done,
    FormatError,
    ReasoningDelta,
    Reply,
    TextDelta,
    ToolCall,
    Usage,
)
from tests.conftest import run_flashcode
from tests.fake_openai import FakeOpenAIServer, FakeReply, HTTPFailure, Stall

TOOLS = [{"type": "function", "function": {"name": "read", "description": "read a file",
                                           "parameters": {"type": "object"}}}]


def model_for(server, **kw) -> OpenAIModel:
    return OpenAIModel(server.url, "fake-flash", backoff=0.01, **kw)


def collect(model, messages=None, **kw) -> tuple[list, Reply]:
    events = list(model.stream(messages or [{"role": "user", "content": "hi"}], TOOLS, **kw))
    reply = Reply()
    for e in events:
        reply.add(e)
    return events, reply


def test_streams_reasoning_text_tool_calls_and_usage():
    reply = FakeReply(text="Reading it.", reasoning="I should read a.py",
                      tool_calls=[("read", '{"path": "a.py", "start_line": 2}'),
                                  ("read", '{"path": "b.py"}')], usage=(1234, 56, 1000))
    with FakeOpenAIServer([reply]) as server:
        events, got = collect(model_for(server))
    assert got.reasoning == "I should read a.py" and got.text == "Reading it."
    assert got.tool_calls == [ToolCall("call_0", "read", {"path": "a.py", "start_line": 2}),
                              ToolCall("call_1", "read", {"path": "b.py"})]
    assert (got.usage.prompt_tokens, got.usage.completion_tokens, got.usage.cached_tokens) == \
        (1234, 56, 1000)
    assert got.finish_reason == "tool_calls"
    kinds = [type(e) for e in events]
    assert kinds.index(ReasoningDelta) < kinds.index(TextDelta) < kinds.index(ToolCall) \
        < kinds.index(Usage) < kinds.index(Done)
    body = server.requests[0]
    assert body["model"] == "fake-flash" and body["stream"] is True
    assert body["tools"] == TOOLS and body["stream_options"] == {"include_usage": True}


def test_messages_go_out_in_wire_form_and_options_pass_through():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c", "type": "function",
                 "function": {"name": "read", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "r", "extra": "dropped"}]
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    with FakeOpenAIServer([FakeReply(text="{}")]) as server:
        collect(model_for(server), msgs, thinking=False, max_tokens=77, response_format=fmt)
    body = server.requests[0]
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "c", "content": "r"}
    assert body["max_tokens"] == 77 and body["response_format"] == fmt
    assert body["thinking"] == {"type": "disabled"}


def test_unparseable_tool_arguments_become_a_format_error():
    with FakeOpenAIServer([FakeReply(tool_calls=[("read", '{"path": "a.py"')])]) as server:
        _, got = collect(model_for(server))
    assert not got.tool_calls
    assert isinstance(got.format_errors[0], FormatError)
    assert "not valid JSON" in got.format_errors[0].reason


def test_retries_429_and_5xx_with_backoff_then_succeeds():
    script = [HTTPFailure(429, "slow down"), HTTPFailure(503, "busy"), FakeReply(text="ok")]
    with FakeOpenAIServer(script) as server:
        started = time.monotonic()
        _, got = collect(model_for(server, retries=3))
    assert got.text == "ok" and len(server.requests) == 3
    assert time.monotonic() - started >= 0.01 + 0.02  # backoff doubled between tries


def test_gives_up_after_the_retries_with_the_last_status():
    with FakeOpenAIServer([HTTPFailure(500, "boom")] * 3) as server:
        with pytest.raises(BackendError, match="after 3 attempts.*500.*boom"):
            collect(model_for(server, retries=2))


def test_a_refused_key_names_the_variable_to_set():
    with FakeOpenAIServer([FakeReply(text="x")], api_key="right") as server:
        with pytest.raises(BackendUnavailable, match="refused the API key.*MY_KEY"):
            collect(model_for(server, api_key="wrong", key_env="MY_KEY"))
        _, got = collect(model_for(server, api_key="right"))
        assert got.text == "x"


def test_an_unreachable_host_is_backend_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    model = OpenAIModel(f"http://127.0.0.1:{port}/v1", "m", backoff=0.01, retries=1)
    with pytest.raises(BackendUnavailable, match="unreachable"):
        collect(model)


def test_a_stalled_server_times_out():
    with FakeOpenAIServer([Stall(1.0)]) as server:
        with pytest.raises(BackendError, match="did not answer within 0.3 s"):
            collect(model_for(server, timeout=0.3, retries=0))


def test_exec_against_an_endpoint_reads_a_file_and_answers(git_repo, isolated_env, tmp_path):
    (git_repo / "a.py").write_text("X = 42\n")
    script = [FakeReply(tool_calls=[("read", '{"path": "a.py"}')], usage=(500, 10, 0)),
              FakeReply(text="X is 42.", usage=(600, 5, 500))]
    env = {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data"), "OPENAI_API_KEY": "k"}
    with FakeOpenAIServer(script, api_key="k") as server:
        out = run_flashcode("exec", "what is X?", "--json", "--endpoint", server.url,
                            "--model-name", "fake-flash", "-C", str(git_repo), env=env)
    assert out.returncode == 0, out.stderr
    events = [json.loads(x) for x in out.stdout.splitlines()]
    assert events[-1]["message"] == "X is 42."
    assert events[-1]["usage"]["models"]["fake-flash"] == {
        "prompt_tokens": 1100, "cached_tokens": 500, "completion_tokens": 15, "cost": 0}
    second = server.requests[1]["messages"]
    assert second[-1]["role"] == "tool" and "X = 42" in second[-1]["content"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "read"


def test_exec_with_an_unreachable_endpoint_exits_4(git_repo, isolated_env, tmp_path):
    env = {**isolated_env, "XDG_DATA_HOME": str(tmp_path / "data")}
    out = run_flashcode("exec", "hi", "--endpoint", "http://127.0.0.1:9/v1", "--model-name",
                        "m", "-C", str(git_repo), env=env)
    assert out.returncode == 4, out.stderr
    assert "unreachable" in out.stdout + out.stderr


def test_window_and_exact_counts_come_from_the_server_when_it_offers_them():
    msgs = [{"role": "user", "content": "x" * 400}]
    with FakeOpenAIServer([], max_model_len=65_536, tokenize=True) as server:
        model = model_for(server)
        assert model.context_window == 65_536
        assert model.count_tokens(msgs, []) == 100
    with FakeOpenAIServer([]) as server:
        model = model_for(server)
        assert model.context_window == 131_072  # nothing listed: the default
        estimate = model.count_tokens(msgs, [])
        assert estimate != 100 and 100 <= estimate <= 140
        assert model._tokenize_ok is False  # not asked again
    assert OpenAIModel("http://127.0.0.1:9/v1", "m", window=4096).context_window == 4096


def test_deepseek_v4_prompts_are_counted_with_its_tokenizer_and_estimates_say_so():
    from engine.chat.render import encode_conversation, messages_from_openai
    from engine.chat.tokenizer import Tokenizer, v4_tokenizer_dir

    calls = [{"id": "c1", "type": "function", "function": {"name": "read",
                                                           "arguments": '{"path": "a.py"}'}}]
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "北京天气 and some code: def f(x): return x\n" * 8},
            {"role": "assistant", "content": "", "reasoning_content": "read it",
             "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c1", "content": "print('hi')"}]
    want = len(encode_conversation(messages_from_openai(msgs),
                                   Tokenizer.from_dir(v4_tokenizer_dir()), TOOLS))
    with FakeOpenAIServer([]) as server:  # no /tokenize
        v4 = OpenAIModel(server.url, "deepseek-v4-flash", backoff=0.01)
        assert v4.count_tokens(msgs, TOOLS) == want
        assert v4.token_counting.startswith("exact (DeepSeek-V4")
        other = model_for(server)  # "fake-flash", served by someone else: estimated
        assert other.count_tokens(msgs, TOOLS) != want
        assert other.token_counting.startswith("estimated")
    with FakeOpenAIServer([], owned_by="flashcode") as server:  # `flashcode serve`: V4
        served = model_for(server)
        assert served.count_tokens(msgs, TOOLS) == want
        assert served.token_counting.startswith("exact (DeepSeek-V4")
    with FakeOpenAIServer([], tokenize=True) as server:  # /tokenize first, where there is one
        v4 = OpenAIModel(server.url, "deepseek-v4-pro", backoff=0.01)
        v4.count_tokens(msgs, TOOLS)
        assert v4.token_counting == "exact (the server's /tokenize)"


def test_interrupt_aborts_a_blocked_stream(git_repo, tmp_path):
    import threading

    from agent.loop import Agent, Interrupted
    from agent.session import Session
    from tools.base import ToolContext

    slow = FakeReply(text="a very slow answer indeed", chunk_delay=5.0)
    with FakeOpenAIServer([slow]) as server:
        agent = Agent(model_for(server), ToolContext(git_repo),
                      Session.create(git_repo, "m", base=tmp_path))
        threading.Timer(0.5, agent.interrupt).start()
        started = time.monotonic()
        result = agent.run("hi")
        elapsed = time.monotonic() - started
    assert isinstance(result, Interrupted)
    assert elapsed < 2  # did not wait for the next chunk, 5 s away
    assert [m["role"] for m in agent.session.messages] == ["system", "user"]


def test_a_tool_name_repeated_in_every_chunk_is_not_concatenated():
    from agent.backends.openai_compat import _grow

    name = ""
    for piece in ["read", "read", "read"]:
        name = _grow(name, piece)
    assert name == "read"
    for pieces, want in ((["re", "ad"], "read"), (["r", "re", "rea", "read"], "read"),
                         (["read_file"], "read_file")):
        name = ""
        for piece in pieces:
            name = _grow(name, piece)
        assert name == want


def test_tool_call_turns_carry_reasoning_content_in_thinking_mode():
    from agent.backends.openai_compat import _wire

    turn = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "read", "arguments": "{}"}}]}
    assert _wire(turn, thinking=True)["reasoning_content"] == ""
    assert "reasoning_content" not in _wire(turn, thinking=False)
    assert "reasoning_content" not in _wire({"role": "assistant", "content": "hi"}, True)
