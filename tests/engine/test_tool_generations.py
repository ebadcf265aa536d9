"""Tool calls generated through `flashcode serve` by a tiny random-weight model with DeepSeek-V4's
real vocabulary, at temperature 1.0, against the 24-tool schema corpus, with tool_choice auto,
required and a named tool, thinking on and off: no call fails `jsonschema` validation, names an
unknown tool, or comes with markup the parser refuses.

A random model almost never writes `</think>`, `<` + `｜DSML｜` or a value's `</` of its own
(one id in 129,280), so its logits get a fixed bias towards those few ids (like a request's
`logit_bias`): replies then end, calls begin and values close, while every choice the grammar
leaves open stays random. The default run makes a few dozen generations; the `slow` one 540
(`scripts/test --slow`, or `-m slow`), and prints its tally."""

from __future__ import annotations

import json
import threading

import jsonschema
import openai
import pytest
import torch

from engine.api import Engine
from engine.chat.render import render
from engine.serve.server import Server
from tests.engine.schema_corpus import TOOLS, by_name

VALIDATORS = {n: jsonschema.Draft202012Validator(f["parameters"]) for n, f in by_name().items()}
NAMES = list(VALIDATORS)
ASK = [{"role": "user", "content": "Use one of the tools, please."}]
BIAS_TEXT = {"</": 10.0, "<": 9.0, '"': 9.0, "]": 5.0, "}": 5.0}  # by the token's text
BIAS_SPECIAL = {"dsml": 12.5, "think_close": 10.0, "eos": 9.0}


@pytest.fixture(scope="module")
def served(v4_ckpt):
    """(client, engine) of a server over the biased random model, one torch thread (on a small
    shared machine more threads spin against other work)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    engine = Engine.load(v4_ckpt, context_window=8192, name="tiny-v4")
    tok, model = engine.tok, engine.model
    bias = torch.zeros(model.cfg.vocab_size)
    for text, b in BIAS_TEXT.items():
        (tid,) = tok.encode(text)
        bias[tid] = b
    for name, b in BIAS_SPECIAL.items():
        bias[tok.eos_id if name == "eos" else tok.special[name]] = b
    # every path to logits (prefill, decode_step as engine/decode.py runs it) ends in logits()
    logits = model.logits
    model.logits = lambda streams: logits(streams) + bias  # [S, vocab]
    srv = Server(engine, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    client = openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=600)
    yield client, engine
    srv.shutdown()
    srv.server_close()
    model.logits = logits
    torch.set_num_threads(threads)


def generate(client, k: int, max_tokens: int = 200):
    """Generation k: tool_choice auto, required or a named tool in turn, thinking every other
    time (the named tool goes round the corpus)."""
    choice = ["auto", "required", {"type": "function",
                                   "function": {"name": NAMES[(k // 3) % len(NAMES)]}}][k % 3]
    return client.chat.completions.create(
        model="tiny-v4", messages=ASK, tools=TOOLS, tool_choice=choice, temperature=1.0,
        seed=k, max_tokens=max_tokens, extra_body={"thinking": k % 2 == 0})


MODES = ("auto", "required", "named")  # generation k's tool_choice is MODES[k % 3]
KEYS = ("replies", "with_calls", "calls", "schema_failures", "unknown_names", "malformed",
        "cut", "forced_replies_without_call")


def tally(responses) -> dict[str, dict[str, int]]:
    """Counts per tool_choice mode and in all: replies, replies with calls, calls, calls that
    fail jsonschema or name an unknown tool, replies with refused markup (it comes back as
    text), replies cut by max_tokens, forced replies that made no call."""
    t = {m: dict.fromkeys(KEYS, 0) for m in (*MODES, "all")}
    for k, r in responses:
        for c in (t[MODES[k % 3]], t["all"]):
            _count(c, r.choices[0], forced=k % 3 > 0)
    return t


def _count(t: dict[str, int], choice, forced: bool) -> None:
    calls = choice.message.tool_calls or []
    t["replies"] += 1
    t["with_calls"] += bool(calls)
    t["calls"] += len(calls)
    for c in calls:
        if c.function.name not in VALIDATORS:
            t["unknown_names"] += 1
            continue
        args = json.loads(c.function.arguments)
        t["schema_failures"] += any(True for _ in VALIDATORS[c.function.name].iter_errors(args))
    if choice.finish_reason == "length":
        t["cut"] += 1  # cut by max_tokens (an open block comes back as text)
    elif "｜DSML｜" in (choice.message.content or ""):
        t["malformed"] += 1  # markup the parser refused comes back as text
    elif forced and not calls:
        t["forced_replies_without_call"] += 1


def _check(tallies: dict[str, dict[str, int]]) -> None:
    t = tallies["all"]
    assert t["schema_failures"] == t["unknown_names"] == t["malformed"] == 0, tallies
    assert t["forced_replies_without_call"] == 0, tallies


def test_generated_calls_fit_their_schemas(served):
    client, _ = served
    t = tally([(k, generate(client, k, max_tokens=160)) for k in range(9)])
    _check(t)
    assert t["all"]["calls"] >= 3, t  # the check has teeth


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_540_generated_replies_fit_their_schemas(served):
    client, _ = served
    t = tally([(k, generate(client, k)) for k in range(540)])
    print("\n540 generations through serve:")
    for mode, counts in t.items():
        print(f"  {mode:9}", counts)
    _check(t)
    assert t["all"]["calls"] >= 300 and t["auto"]["calls"] >= 50, t


def test_prompt_tokens_in_serve_are_the_rendered_prompts(served):
    """Defect 1 through serve: reasoning_effort max, tools, no system text."""
    client, engine = served
    r = client.chat.completions.create(model="tiny-v4", messages=ASK, tools=TOOLS[:3],
                                       reasoning_effort="max", max_tokens=1)
    want = engine.tok.encode(render(ASK, TOOLS[:3], reasoning_effort="max"))
    assert r.usage.prompt_tokens == len(want)
