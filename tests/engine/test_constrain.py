"""Constrained tool-call decoding: whatever a sampler picks under the mask, every tool call that
comes out parses into a registered tool with arguments of the schema's types."""

from __future__ import annotations

import time

import numpy as np
import pytest

from engine.chat import dsml
from engine.chat.constraint import ToolCallConstraint
from engine.chat.parse import parse_reply
from engine.chat.tokenizer import Tokenizer, write_tiny_tokenizer
from engine.events import FormatError, ToolCallFinished

TOOLS = [
    {"type": "function", "function": {"name": "read_file", "parameters": {
        "type": "object", "required": ["path"],
        "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}}}}},
    {"type": "function", "function": {"name": "search", "parameters": {
        "type": "object", "required": ["query", "paths"],
        "properties": {"query": {"type": "string"}, "regex": {"type": "boolean"},
                       "paths": {"type": "array"}, "opts": {"type": "object"},
                       "score": {"type": "number"}}}}},
    {"type": "function", "function": {"name": "note", "parameters": {}}},  # any parameters
]
PY_TYPES = {"string": str, "integer": int, "boolean": bool, "array": list, "object": dict,
            "number": (int, float)}


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    return Tokenizer.from_dir(write_tiny_tokenizer(tmp_path_factory.mktemp("tk"), 512).parent)


def _valid(name: str, args: dict) -> bool:
    spec = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}.get(name)
    if spec is None:
        return False
    props = spec.get("properties")
    if props is None:
        return True
    if not set(spec.get("required", ())) <= set(args) or not set(args) <= set(props):
        return False
    for k, v in args.items():
        want = PY_TYPES[props[k]["type"]]
        if not isinstance(v, want) or (want is int and isinstance(v, bool)):
            return False
    return True


def _target(rng) -> str:
    """A random well-formed reply for the sampler to drift towards (noise pulls it off)."""
    texts = ["a.py", 'say "hi" </b>', "北京 🙂", "x</｜DSML｜parameter", "line\nline"]
    calls = []
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.5:
            calls.append(("read_file", {"path": str(rng.choice(texts)),
                                        "limit": int(rng.integers(-5, 500))}))
        else:
            calls.append(("search", {"query": str(rng.choice(texts)), "paths": ["a", 1, None],
                                     "opts": {"k": [True, {"z": 1.5}]}, "score": -0.25}))
    return "Let me look." + dsml.tool_calls_block(calls) + dsml.EOS


class _Sampler:
    """Random logits under the mask, plus a pull towards a target text's next token (which the
    mask may veto). Pure noise when `pull` is 0."""

    def __init__(self, tok: Tokenizer, rng, pull: float, target: str | None = None) -> None:
        self.tok, self.rng, self.pull = tok, rng, pull
        self.by_text = {tok.decode([i]): i for i in range(tok.vocab_size)}
        self.rest = (_target(rng) if target is None else target) if pull else ""

    def pick(self, mask: np.ndarray) -> int:
        logits = self.rng.normal(size=mask.shape) * 3.0
        pulled = None
        for n in range(min(24, len(self.rest)), 0, -1):
            pulled = self.by_text.get(self.rest[:n])
            if pulled is not None and mask[pulled]:
                logits[pulled] += self.pull
                break
        logits[~mask] = -np.inf
        p = np.exp(logits - logits.max())
        i = int(self.rng.choice(len(p), p=p / p.sum()))
        if i == pulled:  # on track; noise leaves the target where it was
            self.rest = self.rest[n:]
        return i


def _run(tok, rng, pull: float, thinking: bool, steps: int = 300):
    c = ToolCallConstraint(tok, TOOLS, thinking=thinking, vocab_size=tok.vocab_size + 16)
    if thinking:
        c.feed_text("ok</think>")
    sampler, ids = _Sampler(tok, rng, pull), []
    for _ in range(steps):
        mask = c.allowed()
        assert mask.shape == (tok.vocab_size + 16,) and not mask[tok.vocab_size:].any()
        assert mask.any(), f"dead end after {tok.decode(ids)!r}"
        i = sampler.pick(mask)
        assert c.advance(i)
        ids.append(i)
        if i == tok.eos_id:
            break
    return ids


def test_every_emitted_tool_call_parses_and_fits_its_schema(tok):
    rng = np.random.default_rng(1234)
    finished = 0
    for run in range(30):
        pull = [0.0, 14.0, 20.0][run % 3]
        ids = _run(tok, rng, pull, thinking=run % 2 == 0)
        text = ("ok</think>" if run % 2 == 0 else "") + tok.decode(ids)
        events = parse_reply(text, thinking=run % 2 == 0)
        calls = [e for e in events if isinstance(e, ToolCallFinished)]
        errors = [e for e in events if isinstance(e, FormatError)]
        for call in calls:
            assert _valid(call.name, call.arguments), call
        if ids[-1] == tok.eos_id:
            assert not errors, (text, errors)
        else:  # cut off by the step limit: at most an unterminated block, nothing malformed
            assert all("ended inside" in e.reason for e in errors), errors
        finished += len(calls)
    assert finished >= 12  # the sampler does reach complete calls, so the check has teeth


def test_fast_paths_agree_with_the_full_trie_walk(tok):
    """The mask is built from precomputed sets, a pruned walk and per-state caches; it must
    equal trying every token through the grammar, state after state."""
    rng = np.random.default_rng(99)
    compared, modes = 0, set()
    for run in range(6):
        c = ToolCallConstraint(tok, TOOLS, thinking=run % 2 == 0)
        sampler = _Sampler(tok, rng, 14.0)
        for _ in range(160):
            fast = c.allowed()
            if not c.m.can_end() or c.m.mode == "content":  # (after the block: EOS only)
                slow = np.zeros_like(fast)
                c._walk(c.vocab.trie, c.m.clone(), c.raw, slow, exact=True)
                slow[tok.eos_id] = c.m.can_end()
                assert (fast == slow).all(), np.flatnonzero(fast != slow)
                compared += 1
                modes.add(c.m.mode)
            i = sampler.pick(fast)
            c.advance(i)
            if i == tok.eos_id:
                break
    assert compared > 400
    assert {"reasoning", "content", "expect", "name", "pname", "vstr", "vjson"} <= modes


def test_mask_inside_markup_is_exactly_the_grammar(tok):
    c = ToolCallConstraint(tok, TOOLS, thinking=False)
    assert c.feed_text('\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="se')
    texts = {tok.decode([i]) for i in c.allowed_ids()}
    assert texts and all("search".startswith("se" + t) or t.startswith("arch") for t in texts)
    assert tok.eos_id not in c.allowed_ids()
    assert c.feed_text('arch">\n<｜DSML｜parameter name="score" string="')
    assert {tok.decode([i]) for i in c.allowed_ids()} <= {"f", "fa", "fal", "fals", "false",
                                                          'false"', 'false">'}


def test_json_values_follow_the_schema_type(tok):
    c = ToolCallConstraint(tok, TOOLS, thinking=False)
    c.feed_text('<｜DSML｜tool_calls>\n<｜DSML｜invoke name="read_file">\n'
                '<｜DSML｜parameter name="limit" string="false">')
    starts = {tok.decode([i])[:1] for i in c.allowed_ids()}
    assert starts <= set("-0123456789 \t\n\r") and "-" in starts
    assert c.feed_text("12")
    texts = {tok.decode([i]) for i in c.allowed_ids()}
    assert "." not in texts and "<" in texts  # an integer: no fraction; may close here


def test_no_tools_means_no_block_and_eos_where_a_reply_may_end(tok):
    c = ToolCallConstraint(tok, [], thinking=True)
    assert tok.eos_id not in c.allowed_ids()  # still reasoning
    c.feed_text("hm</think>fine <")
    assert tok.special["dsml"] not in c.allowed_ids()
    assert tok.eos_id in ToolCallConstraint(tok, [], thinking=False).allowed_ids()
    for name in ("user", "assistant", "bos", "think_open"):
        assert tok.special[name] not in c.allowed_ids()


def test_per_token_cost_is_small(tok):
    rng = np.random.default_rng(7)
    start = time.perf_counter()
    ids = _run(tok, rng, 12.0, thinking=False, steps=200)
    per_token = (time.perf_counter() - start) / len(ids)
    assert per_token < 0.05, per_token  # measured ≈1 ms on the tiny vocab (2 shared cores)


def test_mask_width_follows_the_model_vocab(tok):
    wide = ToolCallConstraint(tok, TOOLS, thinking=False, vocab_size=tok.vocab_size + 100)
    narrow = ToolCallConstraint(tok, TOOLS, thinking=False, vocab_size=tok.vocab_size - 10)
    a, b = wide.allowed(), narrow.allowed()
    assert a.shape == (tok.vocab_size + 100,) and b.shape == (tok.vocab_size - 10,)
    assert not a[tok.vocab_size:].any() and (a[:tok.vocab_size - 10] == b).all()


@pytest.mark.parametrize("thinking", [False, True])
def test_forced_tool_choice_yields_a_call_to_that_tool(tok, thinking):
    rng = np.random.default_rng(5)
    named = 0
    for run in range(6):
        choice = {"type": "function", "function": {"name": "read_file"}} if run % 2 else \
            "required"
        c = ToolCallConstraint(tok, TOOLS, thinking=thinking, tool_choice=choice)
        if thinking:
            c.feed_text("plan")
            assert tok.special["think_close"] in c.allowed_ids()
            c.feed_text("</think>")
        assert set(c.allowed_ids()) <= {i for i in range(tok.vocab_size)
                                        if "\n\n<｜DSML｜tool_calls>".startswith(tok.decode([i]))}
        target = dsml.tool_calls_block([("read_file", {"path": "a.py", "limit": 3})]) + dsml.EOS
        sampler, ids = _Sampler(tok, rng, 20.0, target), []
        for _ in range(400):
            i = sampler.pick(c.allowed())
            assert c.advance(i)
            ids.append(i)
            if i == tok.eos_id:
                break
        calls = [e for e in parse_reply(tok.decode(ids), thinking=False)
                 if isinstance(e, ToolCallFinished)]
        assert calls and all(_valid(e.name, e.arguments) for e in calls), tok.decode(ids)
        if run % 2:
            assert {e.name for e in calls} == {"read_file"}
            named += 1
    assert named == 3
    with pytest.raises(ValueError, match="not among the tools"):
        ToolCallConstraint(tok, TOOLS, tool_choice="nope")
