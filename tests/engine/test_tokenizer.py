"""engine/chat/tokenizer.py over a tiny real byte-level BPE: special tokens looked up by name, exact
encode/decode of code and unicode, streaming decode across split characters, the vocab check,
and exact replay of sampled turns."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.chat import dsml
from engine.chat.tokenizer import (
    SPECIALS,
    Tokenizer,
    TokenizerMismatch,
    write_tiny_tokenizer,
)


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    return Tokenizer.from_dir(write_tiny_tokenizer(tmp_path_factory.mktemp("tk"), 512).parent)


@pytest.mark.parametrize("size", [300, 512, 2048])
def test_tiny_tokenizer_fits_and_holds_every_special(tmp_path, size):
    path = write_tiny_tokenizer(tmp_path, size)
    assert path.name == "tokenizer.json" and (tmp_path / "tokenizer_config.json").is_file()
    tk = Tokenizer.from_dir(tmp_path)
    assert tk.vocab_size <= size
    assert (tk.special["bos"], tk.special["eos"]) == (0, 1)
    for name, text in SPECIALS.items():
        assert tk.encode(text) == [tk.special[name]], name
    assert len(set(tk.special.values())) == len(SPECIALS)
    with pytest.raises(ValueError, match="below"):
        write_tiny_tokenizer(tmp_path / "small", 100)


def test_spec_example_shape(tok):
    s = "<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>"
    ids = tok.encode(s)
    sp = tok.special
    assert ids[0] == sp["user"] and ids[-1] == sp["eos"]
    assert [sp["assistant"], sp["think_open"]] == ids[ids.index(sp["assistant"]):][:2]
    assert sp["think_close"] in ids and tok.decode(ids) == s
    # the DSML closing tag is `</` + the marker token, as in the real vocab
    close = tok.encode(dsml.PARAM_CLOSE)
    assert sp["dsml"] in close and tok.decode(close[:close.index(sp["dsml"])]) == "</"


CODE = 'def f(s: str) -> str:\n    return f"{s!r} → \\"ok\\"" if s else \'\'\n\t# 北京 🙂 ☃\n'


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60) | st.sampled_from([CODE, "🙂🙂", "\x00\x7f", "  \n\n  "]))
def test_encode_decode_round_trip(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert b"".join(tok.token_bytes[i] for i in ids) == text.encode("utf-8")
    dec = tok.stream_decoder()
    assert "".join(dec.step(i) for i in ids) + dec.flush() == text


def test_stream_decoder_holds_partial_characters(tok):
    ids = tok.encode("𝄞")  # not in the training text, so it stays four byte tokens
    assert len(ids) > 1  # byte-level: one emoji, several tokens
    dec = tok.stream_decoder()
    parts = [dec.step(i) for i in ids]
    assert parts[:-1] == [""] * (len(ids) - 1) and parts[-1] == "𝄞"


def test_check_vocab_names_both_sizes(tok):
    tok.check_vocab(tok.vocab_size)
    tok.check_vocab(129280)
    with pytest.raises(TokenizerMismatch, match=rf"{tok.vocab_size} tokens.*300 rows"):
        tok.check_vocab(300)


def test_not_a_v4_tokenizer(tmp_path):
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    tk = HFTokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel()
    tk.train_from_iterator(["hello world"] * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>"], show_progress=False))
    tk.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(TokenizerMismatch, match="not a DeepSeek-V4 tokenizer"):
        Tokenizer.from_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_dir(tmp_path / "nowhere")


def test_tokenizer_config_with_other_bos_is_refused(tmp_path):
    write_tiny_tokenizer(tmp_path, 300)
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
    cfg["bos_token"] = {"content": "<s>"}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(TokenizerMismatch, match="bos_token"):
        Tokenizer.from_dir(tmp_path)


def test_trailing_added_tokens_past_the_embedding_are_tolerated_but_never_encoded(tmp_path):
    from tokenizers import AddedToken

    write_tiny_tokenizer(tmp_path, 300)
    tk = Tokenizer.from_dir(tmp_path)
    tk.tk.add_tokens([AddedToken("<extra_a>"), AddedToken("<extra_b>")])
    tk.check_vocab(tk.vocab_size - 2)  # only the two unused added tokens hang over
    assert tk.encode("plain <｜User｜>") == tk.encode("plain ") + [tk.special["user"]]
    with pytest.raises(TokenizerMismatch, match="<extra_b>"):
        tk.encode("x <extra_b>")
    with pytest.raises(TokenizerMismatch, match="rows"):
        tk.check_vocab(tk.vocab_size - 3)  # now a base-vocabulary token is past the end
