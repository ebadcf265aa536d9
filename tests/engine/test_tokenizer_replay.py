"""Exact replay: an assistant turn keeps the ids it sampled and re-rendering the conversation
reproduces them, so each turn's prompt is a prefix of the next one, token for token."""

from __future__ import annotations

import pytest

from engine.chat import Assistant, System, ToolCall, ToolResult, User, render
from engine.tokenizer import Tokenizer, encode_conversation, write_tiny_tokenizer

TOOLS = [{"type": "function", "function": {"name": "read", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    return Tokenizer.from_dir(write_tiny_tokenizer(tmp_path_factory.mktemp("tk"), 400).parent)


def _sampled(tok: Tokenizer, text: str) -> list[int]:
    """Ids as a sampler might produce them: valid, but not the canonical BPE segmentation
    (every character its own run of byte tokens), so re-tokenizing the text would differ."""
    ids, specials = [], set(tok.special.values())
    for piece in tok.encode(text):
        ids += [piece] if piece in specials else [i for ch in tok.decode([piece])
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
