"""Exact replay: an assistant turn keeps the ids it sampled and re-rendering the conversation
reproduces them, so each turn's prompt is a prefix of the next one, token for token."""

from __future__ import annotations

import re

import pytest

from engine.chat.render import (
    Assistant,
    System,
    ToolCall,
    ToolResult,
    User,
    encode_conversation,
    render,
)
from engine.chat.tokenizer import SPECIALS, Tokenizer, write_tiny_tokenizer

TOOLS = [{"type": "function", "function": {"name": "read", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    return Tokenizer.from_dir(write_tiny_tokenizer(tmp_path_factory.mktemp("tk"), 400).parent)


def _sampled(tok: Tokenizer, text: str) -> list[int]:
    """Ids as a sampler might produce them: valid, but not the canonical BPE segmentation
    (every character its own run of byte tokens), so re-tokenizing the text would differ."""
    specials = sorted(SPECIALS.values(), key=len, reverse=True)
    parts = re.split("(" + "|".join(map(re.escape, specials)) + ")", text)
    ids = []
    for part in parts:
        ids += tok.encode(part) if part in specials else [i for ch in part
                                                          for i in tok.encode(ch)]
    assert tok.decode(ids) == text
    return ids


def test_without_token_ids_pieces_equal_whole_text(tok):
    msgs = [System(content="sys"), User(content="hi <b>"), Assistant(
        reasoning="r", content="c", tool_calls=[ToolCall(name="read", arguments={"path": "a"})]),
        ToolResult(content="x"), User(content="more")]
    assert encode_conversation(msgs, tok, tools=TOOLS) == tok.encode(render(msgs, tools=TOOLS))


def test_each_prompt_is_a_prefix_of_the_next(tok):
    msgs: list = [System(content="You code."), User(content="fix the bug")]
    prompts = []
    replies = [("look first", "", [ToolCall(name="read", arguments={"path": "a.py"}, id="1")]),
               ("found it", "Done: the bug was an off-by-one.", [])]
    for reasoning, content, calls in replies:
        prompt = encode_conversation(msgs, tok, tools=TOOLS)
        prompts.append(prompt)
        body = render([User(), Assistant(reasoning=reasoning, content=content,
                                         tool_calls=calls)], thinking=True)
        body = body[body.index("<think>") + len("<think>"):]
        ids = _sampled(tok, body)
        assert ids != tok.encode(body)  # the splice, not re-tokenizing, keeps these ids
        msgs += [Assistant(reasoning=reasoning, content=content, tool_calls=calls,
                           token_ids=ids)]
        assert encode_conversation(msgs, tok, tools=TOOLS)[:len(prompt) + len(ids)] == \
            prompt + ids
        msgs += [ToolResult(content="1: x = y[len(y)]", tool_call_id="1"),
                 User(content="and now?")]
    final = encode_conversation(msgs, tok, tools=TOOLS)
    for p in prompts:
        assert final[:len(p)] == p


def test_eos_is_added_when_the_sampled_ids_stop_short(tok):
    ids = tok.encode("r</think>answer")
    msgs = [User(content="q"), Assistant(reasoning="r", content="answer", token_ids=ids)]
    out = encode_conversation(msgs, tok, drop_thinking=False)
    assert out == tok.encode(render(msgs, drop_thinking=False))


def test_dropped_reasoning_keeps_only_ids_after_think(tok):
    body_ids = _sampled(tok, "secret plan</think>Hello!<｜end▁of▁sentence｜>")
    msgs = [User(content="hi"), Assistant(reasoning="secret plan", content="Hello!",
                                          token_ids=body_ids), User(content="again")]
    out = encode_conversation(msgs, tok)  # no tools: earlier reasoning is dropped
    text = tok.decode(out)
    assert text == render(msgs) and "secret plan" not in text
    after = body_ids[body_ids.index(tok.special["think_close"]) + 1:]
    i = out.index(tok.special["assistant"])
    assert out[i + 1] == tok.special["think_close"] and out[i + 2:i + 2 + len(after)] == after


def test_token_reply_parser_feeds_ids_and_gives_a_replayable_turn(tok):
    from engine.chat.parse import TokenReplyParser
    from engine.events import Done, ToolCallFinished

    msgs: list = [System(content="s"), User(content="read it 𝄞")]
    prompt = encode_conversation(msgs, tok, tools=TOOLS)
    turn = Assistant(reasoning="need 𝄞 file", content="", tool_calls=[
        ToolCall(name="read", arguments={"path": "dir/𝄞.txt"}, id="call_0")])
    text = render([User(), turn])
    sampled = _sampled(tok, text[text.index("<think>") + len("<think>"):])
    p = TokenReplyParser(tok, thinking=True)
    events = [e for i in sampled for e in p.step(i)]
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "tool_calls"
    assert [e.arguments for e in events if isinstance(e, ToolCallFinished)] == \
        [{"path": "dir/𝄞.txt"}]
    msg = p.message()
    assert msg.token_ids == sampled and msg.reasoning == "need 𝄞 file"
    nxt = encode_conversation([*msgs, msg, ToolResult(content="ok", tool_call_id="call_0")],
                              tok, tools=TOOLS)
    assert nxt[:len(prompt) + len(sampled)] == prompt + sampled
    assert p.step(5) == []  # nothing after EOS
