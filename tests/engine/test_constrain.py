"""Constrained decoding with llguidance (engine/chat/guide.py) at DeepSeek-V4's real vocabulary:
every reply DeepSeek's encoder renders for the schema corpus is accepted, its markup forced
token for token as the tokenizer writes it; what breaks a schema is refused at the offending
token; random walks under the mask only ever complete calls that validate against their JSON
Schema, name a known tool and parse."""

from __future__ import annotations

import json
import time

import jsonschema
import numpy as np
import pytest

from engine.chat import dsml
from engine.chat.guide import guide_for
from engine.chat.parse import parse_reply
from engine.events import FormatError, ToolCallFinished
from tests.engine.schema_corpus import EXAMPLES, TOOLS, by_name

VALIDATORS = {n: jsonschema.Draft202012Validator(f["parameters"]) for n, f in by_name().items()}
THINK = "Let me see.</think>"


@pytest.fixture(scope="module")
def guide(v4_tok):
    return guide_for(v4_tok)


def walk(c, ids: list[int]) -> tuple[int, list[int]]:
    """Feed `ids` through the constraint as generation would: forced ids must match, sampled
    ones must be in the mask. (ids taken before the first refused one, ids that were forced)."""
    pending, forced = list(c.begin()), []
    for k, i in enumerate(ids):
        if pending:
            if pending.pop(0) != i:
                return k, forced
            forced.append(i)
            continue
        if not c.mask()[i]:
            return k, forced
        pending = list(c.advance(i))
    assert not pending or pending == [1], pending  # EOS may remain forced at the very end
    return len(ids), forced


def reply(name: str, args, content: str = "Calling it.") -> str:
    return THINK + content + dsml.tool_calls_block([(name, args)]) + dsml.EOS


def test_every_rendered_corpus_call_is_accepted_and_its_markup_forced(v4_tok, guide):
    assert len(TOOLS) >= 20
    n_forced = 0
    for name, args in EXAMPLES.items():
        assert not list(VALIDATORS[name].iter_errors(args)), name
        ids = v4_tok.encode(reply(name, args))
        taken, forced = walk(guide.constraint(TOOLS, "auto", None, True), ids)
        assert taken == len(ids), (name, v4_tok.decode(ids[:taken + 1]))
        n_forced += len(forced)
    assert n_forced > 500  # markup, names: forced, never sampled
    # all calls in one block, and under tool_choice "required" in chat mode
    text = dsml.tool_calls_block(list(EXAMPLES.items())) + dsml.EOS
    ids = v4_tok.encode(text)
    assert walk(guide.constraint(TOOLS, "required", None, False), ids)[0] == len(ids)


def test_forced_ids_are_the_tokenizers_own(v4_tok, guide):
    ids = v4_tok.encode(dsml.tool_calls_block([("create_user", EXAMPLES["create_user"])]))
    c = guide.constraint(TOOLS, {"type": "function", "function": {"name": "create_user"}},
                         None, False)
    forced = c.begin()  # the block's opening, the one tool's name, its one parameter…
    assert forced == ids[:len(forced)]
    assert v4_tok.decode(forced).endswith('<｜DSML｜invoke name="create_user">\n'
                                          '<｜DSML｜parameter name="user" string="false">'
                                          '{"name":')  # … up to the first free choice
    assert v4_tok.special["dsml"] in forced


STRING_VALUES = [("set_color", {"color": "red"}), ("nullable", {"note": "hi", "count": None}),
                 ("tag", {"tags": ["x"], "mode": "append"}), ("noop", {}),
                 ("free_form", {"a": "x</b>y", "b": [1]}), ("geo", {"shape": {"kind": "circle",
                                                                          "r": 0.5}})]


@pytest.mark.parametrize("name,args", STRING_VALUES)
def test_strings_written_raw_where_the_schema_admits_them(v4_tok, guide, name, args):
    ids = v4_tok.encode(reply(name, args))
    assert walk(guide.constraint(TOOLS, "auto", None, True), ids)[0] == len(ids)


VIOLATIONS = [  # (tool, arguments breaking its schema, text just before the refused token)
    ("read_file", {"path": "a", "lines": [3, "x"]}, '"lines" string="false">[3,'),
    ("read_file", {"path": "a", "lines": [0]}, '"lines" string="false">['),
    ("read_file", {"path": "a", "encoding": "ascii"}, '"encoding" string="true">'),
    ("read_file", {"path": "a", "mode": "r"}, '</｜DSML｜parameter>\n<｜DSML｜parameter name="'),
    ("plot", {"points": [None, 1]}, '"points" string="false">['),
    ("set_level", {"level": 4}, '"level" string="false">'),
    ("resize", {"width": 5000, "height": 1}, '"width" string="false">500'),  # max 4096
    ("resize", {"width": 5}, '"width" string="false">5</｜DSML｜parameter>\n'),
    ("create_user", {"user": {"name": "A"}}, '"name": "A"'),
    ("create_user", {"user": {"name": "A", "address": {"city": "x", "country": "y"}}},
     '"city": "x", "'),
    ("create_user", {"user": {"name": "A", "address": {"city": "x", "zip": "1234a"}}},
     '"zip": "1234'),
    ("deep", {"a": {"b": {"c": {"d": 8}}}}, '"d": '),
    ("no_such_tool", {}, 'invoke name="no'),  # (a prefix of "noop")
]


@pytest.mark.parametrize("name,args,before", VIOLATIONS)
def test_schema_violations_are_refused_at_the_offending_token(v4_tok, guide, name, args,
                                                              before):
    ids = v4_tok.encode(reply(name, args))
    taken, _ = walk(guide.constraint(TOOLS, "auto", None, True), ids)
    assert taken < len(ids), "accepted"
    assert v4_tok.decode(ids[:taken]).endswith(before), v4_tok.decode(ids[:taken + 1])


def test_payload_cannot_spell_out_what_the_parser_reads_as_markup(v4_tok, guide):
    def spell(*pieces) -> list[int]:  # text token by token: markup strings not as specials
        return [i for p in pieces for i in (p if isinstance(p, list) else v4_tok.encode(p))]

    close = [v4_tok.special["think_close"]]
    cases = [(spell("a", "</", "think", ">", "b"), True),  # reasoning would end here
             (spell("x", close, "a <", "｜", "DSML", "｜", "tool"), True),  # markup in content
             (spell("a <", "｜", "end", "▁of▁sentence", "｜", ">"), False),  # EOS as text
             (spell("a <", "think", ">"), False),  # DeepSeek's parser refuses it in content
             (spell(close, '\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="shell">\n'
                    '<｜DSML｜parameter name="command" string="true">ls</', "｜", "DSML", "｜",
                    "parameter>"), True)]  # a raw value's end, spelled out, is not its end
    for ids, thinking in cases:
        taken, _ = walk(guide.constraint(TOOLS, "auto", None, thinking), ids)
        assert taken < len(ids), v4_tok.decode(ids)


def test_tool_choice_none_required_and_a_name(v4_tok, guide):
    call = dsml.tool_calls_block([("ping", {})])
    none = guide.constraint(TOOLS, "none", None, False)
    ids = v4_tok.encode("Hi." + call)
    assert walk(none, ids)[0] < len(ids)  # no block at all
    required = guide.constraint(TOOLS, "required", None, False)
    assert v4_tok.decode(required.begin()).startswith("\n\n<｜DSML｜tool_calls>\n")
    ids = v4_tok.encode("Hi." + call)
    assert walk(guide.constraint(TOOLS, "required", None, False), ids)[0] == 0  # no prose
    named = guide.constraint(TOOLS, {"type": "function", "function": {"name": "ping"}}, None,
                             True)
    assert named.begin() == []  # reasoning first
    with pytest.raises(ValueError, match="not among the tools"):
        guide.constraint(TOOLS, "nope")


def test_json_response_format_enforces_its_schema(v4_tok, guide):
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1},
                                               "tags": {"type": "array",
                                                        "items": {"type": "string"}}},
              "required": ["n"], "additionalProperties": False}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    good = v4_tok.encode('{\n  "n": 3,\n  "tags": ["a"]\n}' + dsml.EOS)
    assert walk(guide.constraint([], "auto", fmt, False), good)[0] == len(good)
    for bad in ('{"n": 0}', '{"tags": []}', '{"n": 1, "x": 2}', 'Sure: {"n": 1}'):
        ids = v4_tok.encode(bad + dsml.EOS)
        assert walk(guide.constraint([], "auto", fmt, False), ids)[0] < len(ids), bad
    obj = guide.constraint([], "auto", {"type": "json_object"}, True)
    ids = v4_tok.encode('hmm</think>{"a": [1, {"b": null}]}' + dsml.EOS)
    assert walk(obj, ids)[0] == len(ids)
    with pytest.raises(ValueError, match="exclude each other"):
        guide.constraint(TOOLS, "required", {"type": "json_object"})


def test_mask_width_follows_the_model_vocab(v4_tok, guide):
    wide = guide.constraint(TOOLS, "auto", None, False, width=v4_tok.vocab_size + 100).mask()
    narrow = guide.constraint(TOOLS, "auto", None, False, width=v4_tok.vocab_size - 10).mask()
    assert wide.shape == (v4_tok.vocab_size + 100,) and not wide[v4_tok.vocab_size:].any()
    assert (wide[:v4_tok.vocab_size - 10] == narrow).all() and wide.sum() > 100_000
    # specials a reply never holds are never allowed
    for name in ("bos", "user", "assistant", "think_open", "task_action"):
        assert not wide[v4_tok.special[name]]


def test_grammars_are_compiled_once_per_request_shape(guide):
    a = guide.compiled(TOOLS, "auto", None, True)
    assert guide.compiled([dict(t) for t in TOOLS], "auto", None, True) is a
    assert guide.compiled(TOOLS, "required", None, True) is not a
    assert guide.compiled(TOOLS, "auto", None, False) is not a


def test_a_schema_llguidance_refuses_is_loosened_not_fatal(v4_tok, guide):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {
            "a": {"type": "array", "items": {"type": "string", "pattern": "(?<=x)y"}},
            "b": {"type": "integer"},
            "c": {"type": "string", "pattern": "^(?!x)"}}}}}]  # look-ahead: not for llguidance
    c = guide.constraint(tools, "required", None, False)
    text = dsml.tool_calls_block([("f", {"a": ["q"], "b": 2, "c": "xy"})]) + dsml.EOS
    assert walk(c, v4_tok.encode(text))[0] == len(v4_tok.encode(text))


class _Sampler:
    """Uniform noise over the allowed ids, pulled towards a target reply's next token (which
    the mask may veto); noise leaves the target where it was."""

    def __init__(self, tok, rng, target: str, pull: float) -> None:
        self.tok, self.rng, self.pull = tok, rng, pull
        self.rest = tok.encode(target)

    def pick(self, mask: np.ndarray) -> int:
        if self.rest and mask[self.rest[0]] and self.rng.random() < self.pull:
            return self.rest.pop(0)
        return int(self.rng.choice(np.flatnonzero(mask)))

    def forced(self, ids: list[int]) -> None:
        if self.rest[:len(ids)] == ids:
            del self.rest[:len(ids)]


def _random_reply(tok, guide, rng, steps: int = 400) -> tuple[str, bool]:
    name = str(rng.choice(list(EXAMPLES)))
    thinking = bool(rng.random() < 0.5)
    choice = ["auto", "required", {"type": "function", "function": {"name": name}}][
        int(rng.integers(3))]
    target = (THINK if thinking else "") + dsml.tool_calls_block([(name, EXAMPLES[name])])
    c = guide.constraint(TOOLS, choice, None, thinking)
    s = _Sampler(tok, rng, target + dsml.EOS, pull=float(rng.choice([0.7, 0.9])))
    ids = list(c.begin())
    s.forced(ids)
    while len(ids) < steps and (not ids or ids[-1] != tok.eos_id):
        t = s.pick(c.mask())
        more = c.advance(t)
        s.forced(more)
        ids += [t, *more]
    return ("<think>" if thinking else "") + tok.decode(ids), ids[-1] == tok.eos_id


def check_reply(text: str, finished: bool) -> tuple[int, list[str]]:
    """(completed calls, problems) of one generated reply: a call naming no known tool or
    failing its schema, or markup the parser refuses in a reply that ended by EOS."""
    thinking = text.startswith("<think>")
    events = parse_reply(text.removeprefix("<think>"), thinking)
    calls = [e for e in events if isinstance(e, ToolCallFinished)]
    problems = [f"unknown tool {c.name}" for c in calls if c.name not in VALIDATORS]
    problems += [f"{c.name}: {e.message}" for c in calls if c.name in VALIDATORS
                 for e in VALIDATORS[c.name].iter_errors(c.arguments)]
    errors = [e for e in events if isinstance(e, FormatError)]
    if finished:
        problems += [f"malformed: {e.reason}" for e in errors]
    else:  # cut by the step limit: at most an unterminated block
        problems += [f"malformed: {e.reason}" for e in errors if "ended inside" not in e.reason]
    return len(calls), problems


def test_random_walks_complete_only_valid_calls(v4_tok, guide):
    rng = np.random.default_rng(18)
    calls = finished = 0
    for _ in range(40):
        text, done = _random_reply(v4_tok, guide, rng)
        n, problems = check_reply(text, done)
        assert not problems, (problems, text)
        calls, finished = calls + n, finished + done
    assert calls >= 20 and finished >= 20  # the walks do reach complete calls


def test_mask_per_token_is_cheap(v4_tok, guide):
    ids = v4_tok.encode(reply("search", EXAMPLES["search"]))
    c = guide.constraint(TOOLS, "auto", None, True, overlap=False)
    times, pending = [], list(c.begin())
    for i in ids:
        if pending:
            pending.pop(0)
            continue
        t = time.perf_counter()
        c.mask()
        times.append(time.perf_counter() - t)
        pending = list(c.advance(i))
    assert np.median(times) < 0.002, times  # ≈0.03 ms measured (2 shared cores)


def test_overlapped_and_synchronous_masks_agree(v4_tok, guide):
    ids = v4_tok.encode(reply("edit", EXAMPLES["edit"]))
    masks = []
    for overlap in (True, False):
        c, seen = guide.constraint(TOOLS, "auto", None, True, overlap=overlap), []
        pending = list(c.begin())
        for i in ids:
            if pending:
                pending.pop(0)
                continue
            seen.append(np.flatnonzero(c.mask()))
            pending = list(c.advance(i))
        c.close()
        masks.append(seen)
    assert all(np.array_equal(a, b) for a, b in zip(*masks, strict=True))


def test_json_values_come_in_the_official_encoders_style(v4_tok, guide):
    def call(value: str) -> list[int]:
        return v4_tok.encode('\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="kv">\n'
                             f'<｜DSML｜parameter name="pairs" string="false">{value}'
                             '</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>')

    choice = {"type": "function", "function": {"name": "kv"}}
    good = call(json.dumps([["a", 1], ["b", 2]]))  # `, ` between items, `": "`: json.dumps
    assert walk(guide.constraint(TOOLS, choice, None, False), good)[0] == len(good)
    for other in ('[["a",1]]', '[ ["a", 1]]', '[["a", 1] ]', '[\n["a", 1]]'):
        ids = call(other)
        assert walk(guide.constraint(TOOLS, choice, None, False), ids)[0] < len(ids), other
