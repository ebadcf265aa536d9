"""Generation over a tiny random checkpoint: sampling, determinism, stop strings, max tokens,
prefix reuse, usage, and constrained tool calls that always parse."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from engine.api import Engine, PromptTooLong
from engine.chat import dsml
from engine.chat.parse import TokenReplyParser, parse_reply, reply_message
from engine.events import (
    Done,
    FormatError,
    ReasoningDelta,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
)
from engine.kv.prefix import PrefixCache
from engine.sampling import SamplingParams, StopStrings, generator_for, sample

HI = [{"role": "user", "content": "hello there, write some code"}]


def fn(name: str, props: dict, required=()) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": props, "required": list(required)}}}


TOOLS = [fn("ping", {}), fn("flag", {"on": {"type": "boolean"}}, ["on"]),
         fn("count", {"n": {"type": "integer"}}, ["n"]),
         fn("read_file", {"path": {"type": "string"}}, ["path"])]


@pytest.fixture(scope="module")
def engine(tiny_ckpt) -> Engine:
    return Engine.load(tiny_ckpt)


def run(engine: Engine, messages=HI, tools=None, **kw) -> list:
    return list(engine.stream(messages, tools, SamplingParams(**kw)))


def text_of(events, cls) -> str:
    return "".join(e.text for e in events if isinstance(e, cls))


def test_greedy_is_deterministic_and_ends_with_usage_then_done(engine):
    a = run(engine, temperature=0, max_tokens=12)
    b = run(engine, temperature=0, max_tokens=12)
    assert isinstance(a[-1], Done) and isinstance(a[-2], Usage)
    assert a[-1].tokens == b[-1].tokens and len(a[-1].tokens) == 12
    assert a[-1].finish_reason == "length"
    u = a[-2]
    assert u.prompt_tokens == engine.count_tokens(HI) and u.generated_tokens == 12
    assert u.prefill_tps > 0 and u.decode_tps > 0
    assert text_of(a, ReasoningDelta) == text_of(b, ReasoningDelta) != ""  # thinking: reasoning


def test_seeded_sampling_reproduces_and_seeds_differ(engine):
    runs = {s: run(engine, temperature=1.0, seed=s, max_tokens=16)[-1].tokens for s in (1, 2)}
    again = run(engine, temperature=1.0, seed=1, max_tokens=16)[-1].tokens
    assert again == runs[1]
    assert runs[1] != runs[2]


def test_sampler_filters_and_mask():
    logits = torch.tensor([0.0, 3.0, 2.9, 1.0, 5.0])
    mask = torch.tensor([True, True, True, True, False]).numpy()
    g = generator_for(0)
    assert sample(logits, mask, SamplingParams(temperature=0), g) == 1  # 4 is masked off
    for p in (SamplingParams(top_k=1), SamplingParams(min_p=0.99), SamplingParams(top_p=0.01)):
        assert {sample(logits, mask, p, g) for _ in range(30)} == {1}
    wide = {sample(logits, mask, SamplingParams(temperature=2.0), g) for _ in range(300)}
    assert 4 not in wide and len(wide) >= 3
    with pytest.raises(RuntimeError, match="no token is allowed"):
        sample(logits, mask & False, SamplingParams(), g)


def test_stop_string_cuts_the_text_before_it(engine):
    full = run(engine, temperature=0, max_tokens=24)
    text = text_of(full, ReasoningDelta)
    stop = text[6:9]
    assert len(stop) == 3
    cut = run(engine, temperature=0, max_tokens=24, stop=[stop, "never-there"])
    assert text_of(cut, ReasoningDelta) == text[:text.find(stop)]
    assert cut[-1].finish_reason == "stop"
    assert len(cut[-1].tokens) < 24


def test_thinking_off_writes_content_and_max_tokens_holds(engine):
    ev = run(engine, temperature=0, max_tokens=5, thinking=False)
    assert text_of(ev, ReasoningDelta) == ""
    assert ev[-2].generated_tokens <= 5 and ev[-1].finish_reason in ("length", "stop")
    assert text_of(ev, TextDelta) or ev[-1].finish_reason == "stop"


def test_keyword_form_the_agent_adapter_uses(engine):
    ev = list(engine.stream(HI, [], thinking=False, max_tokens=3, response_format=None))
    assert isinstance(ev[-1], Done) and ev[-2].generated_tokens <= 3


def test_prefix_reuse_gives_the_same_reply_as_a_fresh_prefill(engine):
    # thinking off: with it on and no tools, V4 drops earlier reasoning, so no prefix is shared
    engine.gen.cache = PrefixCache()
    first = run(engine, temperature=0, max_tokens=6, thinking=False)
    turn = reply_message(first, first[-1].tokens)  # Assistant with the sampled token_ids
    follow = [*HI, turn.model_dump(), {"role": "user", "content": "and then?"}]
    reused = run(engine, follow, temperature=0, max_tokens=8, thinking=False)
    assert reused[-2].cached_tokens >= first[-2].prompt_tokens  # the whole first turn reused
    engine.gen.cache = PrefixCache()
    fresh = run(engine, follow, temperature=0, max_tokens=8, thinking=False)
    assert fresh[-2].cached_tokens == 0
    assert fresh[-1].tokens == reused[-1].tokens


def test_prefix_cache_hits_only_extensions_and_hands_out_copies(tiny_ckpt, engine):
    model = engine.model
    cache, state = PrefixCache(), model.new_state()
    model(torch.tensor([5, 6, 7]), state)
    cache.store([5, 6, 7], state)
    assert cache.lookup([5, 6]) == (None, 0) and cache.lookup([5, 9, 7, 8]) == (None, 0)
    got, n = cache.lookup([5, 6, 7, 8])
    assert n == 3 and got.pos == 3
    model(torch.tensor([8]), got)
    assert cache.lookup([5, 6, 7, 1])[0].pos == 3  # the stored state did not move
    with pytest.raises(ValueError):
        cache.store([1, 2], state)


def test_over_long_prompt_and_unknown_forced_tool_are_refused(tiny_ckpt, engine):
    small = Engine(engine.model, engine.tok, context_window=20)
    with pytest.raises(PromptTooLong, match="context window is 20 tokens"):
        small.prepare([{"role": "user", "content": "word " * 40}])
    with pytest.raises(ValueError, match="not among the tools"):
        engine.prepare(HI, TOOLS, SamplingParams(tool_choice="nope"))


def _check_calls(events, thinking: bool) -> list[ToolCallFinished]:
    """Every finished call names a registered tool with arguments of the schema's types."""
    calls = [e for e in events if isinstance(e, ToolCallFinished)]
    schema = {t["function"]["name"]: t["function"]["parameters"]["properties"] for t in TOOLS}
    py = {"boolean": bool, "integer": int, "string": str}
    for c in calls:
        assert set(c.arguments) <= set(schema[c.name])
        for k, v in c.arguments.items():
            assert type(v) is py[schema[c.name][k]["type"]]
        block = f"{dsml.CALLS_OPEN}\n{c.raw}\n{dsml.CALLS_CLOSE}"
        again = [e for e in parse_reply(block, thinking) if isinstance(e, ToolCallFinished)]
        assert [(a.name, a.arguments) for a in again] == [(c.name, c.arguments)]
    return calls


@pytest.mark.parametrize("seed", range(4))
def test_constrained_forced_calls_always_parse(engine, seed):
    ev = run(engine, tools=TOOLS, temperature=1.0, seed=seed, max_tokens=120,
             thinking=False, tool_choice="required")
    calls = _check_calls(ev, thinking=False)
    done = ev[-1]
    if done.finish_reason != "length":  # a reply that ended by itself is all calls
        assert done.finish_reason == "tool_calls" and calls
        assert not any(isinstance(e, FormatError) for e in ev)
        assert text_of(ev, TextDelta).strip() == ""
    assert any(isinstance(e, ToolCallStarted) for e in ev)  # required: the block is opened


def test_forced_named_tool_completes(engine):
    ev = run(engine, tools=TOOLS, temperature=0, max_tokens=200, thinking=False,
             tool_choice={"type": "function", "function": {"name": "ping"}})
    calls = _check_calls(ev, thinking=False)
    assert ev[-1].finish_reason == "tool_calls"
    assert calls and {c.name for c in calls} == {"ping"} and calls[0].arguments == {}
    replay = TokenReplyParser(engine.tok, thinking=False)  # the reported ids, parsed again
    for i in ev[-1].tokens:
        replay.step(i)
    turn = replay.message()
    assert [c.name for c in turn.tool_calls] == ["ping"] * len(calls)
    assert turn.token_ids == ev[-1].tokens


def test_forced_ids_are_not_sampled_and_go_in_together(engine, monkeypatch):
    """Markup, the one tool's name and its one parameter's name are forced: taken without
    sampling, and fed to the model several ids per forward; the reply is the same as feeding
    them one at a time (only the integer's digits are sampled)."""
    import engine.generate as gen

    forwards, samples = [], []
    forward, sampler = engine.model.forward, gen.sample
    monkeypatch.setattr(engine.model, "forward",
                        lambda ids, *a, **kw: forwards.append(len(ids)) or forward(ids, *a, **kw))
    monkeypatch.setattr(gen, "sample", lambda *a: samples.append(1) or sampler(*a))
    ev = run(engine, tools=TOOLS, temperature=0, max_tokens=200, thinking=False, speculate=False,
             tool_choice={"type": "function", "function": {"name": "count"}})
    n = len(ev[-1].tokens)
    assert ev[-1].finish_reason == "tool_calls" and len(samples) < n / 2, (len(samples), n)
    assert max(forwards[1:]) > 1 and len(forwards) - 1 < n  # after the prompt's prefill
    monkeypatch.setattr(gen, "_feed", lambda stepper, toks: [stepper.next(t) for t in toks][-1])
    again = run(engine, tools=TOOLS, temperature=0, max_tokens=200, thinking=False,
                speculate=False, tool_choice={"type": "function", "function": {"name": "count"}})
    assert again[-1].tokens == ev[-1].tokens


def test_tool_choice_none_never_opens_a_call(engine):
    for seed in range(2):
        ev = run(engine, tools=TOOLS, temperature=1.0, seed=seed, max_tokens=40,
                 thinking=False, tool_choice="none")
        assert not any(isinstance(e, ToolCallStarted | FormatError) for e in ev)


def test_the_agents_local_backend_streams_from_the_engine(tiny_ckpt, tmp_path):
    from agent.backends import local
    from agent.config import Settings
    from agent.model import BackendUnavailable, Reply
    from agent.model import Done as AgentDone

    model = local.load(Settings(model=str(tiny_ckpt), context_window=4096))
    assert model.context_window == 4096 and model.engine.context_window == 4096
    events = list(model.stream(HI, [], thinking=True, max_tokens=4))
    reply = Reply()
    for e in events:
        reply.add(e)
    assert isinstance(events[-1], AgentDone) and len(reply.tokens) == 4
    assert reply.reasoning and reply.usage.completion_tokens == 4
    assert model.count_tokens(HI, []) == reply.usage.prompt_tokens
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BackendUnavailable, match="cannot load the checkpoint"):
        local.load(Settings(model=str(tmp_path)))


@given(st.text(alphabet="abcx", max_size=30), st.lists(st.text(alphabet="abc", min_size=1,
                                                               max_size=4), max_size=3),
       st.lists(st.integers(0, 30), max_size=6))
@example("xabcx", ["abc", "b"], [])  # "b" completes first, whatever the split
@example("xabcx", ["abc", "b"], [2, 3])
def test_stop_strings_hold_back_exactly_what_might_start_a_stop(text, stops, cuts):
    gate, out, hit = StopStrings(stops), [], False
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    for a, b in zip(bounds, bounds[1:], strict=False):
        piece, hit = gate.feed(text[a:b])
        out.append(piece)
        if hit:
            break
    if not hit:
        out.append(gate.flush())
    # reference: a character at a time, cut where the first stop string completes
    ends = [(e, e - len(s)) for e in range(len(text) + 1) for s in stops
            if text[:e].endswith(s)]
    assert "".join(out) == (text[:min(ends)[1]] if ends else text)
    assert hit == bool(ends)


def test_local_backend_hands_sampled_ids_back_so_the_next_turn_reuses_the_prefix(engine):
    from agent.backends.local import EngineModel
    from agent.model import Reply

    def turn(model, messages) -> Reply:
        reply = Reply()
        for e in model.stream(messages, TOOLS, thinking=True, max_tokens=12):
            reply.add(e)
        return reply

    def two_turns(model) -> tuple[Reply, Reply]:
        engine.gen.cache = PrefixCache()
        first = turn(model, HI)
        follow = [*HI, first.message(), {"role": "user", "content": "go on"}]
        return first, turn(model, follow)

    first, second = two_turns(EngineModel(engine, "local"))
    # the whole first prompt and the reply's ids (all but the last, never fed) are reused
    assert second.usage.cached_tokens == first.usage.prompt_tokens + 11
    amnesiac = EngineModel(engine, "local")
    amnesiac.REMEMBER = 0  # forgets at once: the reply is re-tokenized from its text
    first2, again = two_turns(amnesiac)
    # re-tokenizing the text can reuse no more than the exact ids would; it is usually less,
    # but a random reply can happen to tokenize back to the ids it was sampled as
    assert again.usage.cached_tokens <= first2.usage.prompt_tokens + 11


def test_json_response_format_keeps_the_content_a_json_object(engine):
    from engine.chat.guide import guide_for

    finished = 0
    for temperature, seed in ((0.0, None), (1.0, 0), (1.0, 1), (1.0, 2)):
        ev = run(engine, temperature=temperature, seed=seed, max_tokens=100, thinking=False,
                 response_format={"type": "json_object"})
        content = text_of(ev, TextDelta)
        assert content.startswith("{"), content
        c = guide_for(engine.tok).constraint([], "auto", {"type": "json_object"}, False)
        pending = c.begin()
        for t in ev[-1].tokens:  # a JSON object's prefix all along
            if pending:
                assert pending.pop(0) == t
                continue
            assert c.mask()[t], content
            pending = c.advance(t)
        if ev[-1].finish_reason == "stop":
            assert isinstance(__import__("json").loads(content), dict)
            finished += 1
    assert finished  # one closes its object within the budget
    with pytest.raises(ValueError, match="exclude each other"):
        engine.prepare(HI, TOOLS, SamplingParams(response_format={"type": "json_object"},
                                                 tool_choice="required"))


def test_kv_bytes_count_the_cached_state(engine):
    from engine.kv.prefix import state_bytes

    plain = Engine(engine.model, engine.tok)
    assert plain.kv_bytes() == 0
    # past 128 tokens: every compressor has emitted a row
    long = [{"role": "user", "content": "count the words: " + "one two three " * 60}]
    run(plain, long, temperature=0, max_tokens=6)
    (seq,) = plain.gen.cache.sequences()
    assert plain.kv_bytes() == state_bytes(plain.gen.cache.lookup(list(seq) + [0])[0]) > 0
    stats = plain.kv_stats()
    assert stats["kv_tokens"] == len(seq) and stats["kv_sequences"] == 1
