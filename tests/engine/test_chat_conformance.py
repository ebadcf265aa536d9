"""The four official DeepSeek-V4 encoding vectors, byte for byte, and the parse-back checks
upstream's test script makes."""

from __future__ import annotations

import pytest

from engine.chat.dsml import EFFORT_MAX
from engine.chat.render import Assistant, System, ToolResult, User, messages_from_openai, render
from tests.engine.chat_fixtures import CASE_MODES, expected, load_case, parse_chunks


@pytest.mark.parametrize("n", sorted(CASE_MODES))
def test_official_vector_byte_for_byte(n):
    got = render(load_case(n), thinking=CASE_MODES[n])
    assert got.encode("utf-8") == expected(n).encode("utf-8")


def _turn(prompt: str, start: str, stop: str | None) -> str:
    a = prompt.index(start) + len(start)
    b = prompt.index(stop, a) if stop else len(prompt)
    return prompt[a:b]


def test_case1_turns_parse_back():
    prompt = render(load_case(1))
    first = parse_chunks([_turn(prompt, "<｜Assistant｜><think>", "<｜User｜>")])
    assert first.reasoning == ("The user wants to know the weather in Beijing. "
                               "I should use the get_weather tool.")
    assert first.content == ""
    assert first.calls == [("get_weather", {"location": "Beijing", "unit": "celsius"})]
    assert first.done[0].finish_reason == "tool_calls" and not first.errors
    last = parse_chunks([prompt[prompt.rindex("<｜Assistant｜><think>") + 20:]])
    assert last.reasoning == "Got the weather data. Let me format a nice response."
    assert "22°C" in last.content and last.calls == [] and not last.errors


def test_case2_drops_earlier_reasoning_and_parses_last_turn():
    prompt = render(load_case(2))
    assert "The user said hello" not in prompt
    last = parse_chunks([prompt[prompt.rindex("<｜Assistant｜><think>") + 20:]])
    assert last.reasoning == "The user asks about the capital of France. It is Paris."
    assert last.content == "The capital of France is Paris."
    assert last.done[0].finish_reason == "stop"


def test_typed_messages_render_like_dicts():
    typed = messages_from_openai(load_case(1))
    assert isinstance(typed[2], Assistant) and isinstance(typed[3], ToolResult)
    assert render(typed) == expected(1)


def test_generation_opener_and_chat_mode():
    msgs = [System(content="S"), User(content="hi")]
    assert render(msgs).endswith("<｜User｜>hi<｜Assistant｜><think>")
    assert render(msgs, thinking=False).endswith("<｜User｜>hi<｜Assistant｜></think>")


def test_reasoning_effort_max_preamble_only_in_thinking_mode():
    msgs = [System(content="S"), User(content="hi")]
    bos = "<｜begin▁of▁sentence｜>"
    assert render(msgs, reasoning_effort="max").startswith(bos + EFFORT_MAX + "S")
    assert EFFORT_MAX.endswith("left unchecked.\n\n")
    assert EFFORT_MAX not in render(msgs, thinking=False, reasoning_effort="max")
    assert EFFORT_MAX not in render(msgs, reasoning_effort="high")
    with pytest.raises(ValueError, match="reasoning_effort"):
        render(msgs, reasoning_effort="extreme")


def test_tool_results_fold_into_next_user_turn_in_call_order():
    calls = [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
             {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{\"x\": 1}"}}]
    msgs = [{"role": "user", "content": "go"},
            {"role": "assistant", "content": "", "reasoning_content": "r", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "b", "content": "B"},
            {"role": "tool", "tool_call_id": "a", "content": "A"},
            {"role": "user", "content": "and?"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    out = render(msgs, tools=tools)
    assert ("<｜User｜><tool_result>A</tool_result>\n\n<tool_result>B</tool_result>\n\nand?"
            "<｜Assistant｜><think>") in out
    assert '<｜DSML｜parameter name="x" string="false">1</｜DSML｜parameter>' in out
    assert "<think>r</think>" in out  # tools present: reasoning kept


def test_drop_thinking_off_keeps_every_reasoning():
    msgs = load_case(2)
    out = render(msgs, drop_thinking=False)
    assert "<think>The user said hello, I should greet back.</think>" in out
