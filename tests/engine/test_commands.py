"""`flashcode engine make-tiny | logits | inspect`, run as a user runs them."""

from __future__ import annotations

import numpy as np
import torch

from engine.chat.tokenizer import Tokenizer, v4_tokenizer_dir
from engine.config import load as load_config
from engine.weights.loader import load
from tests.conftest import CONFORMANCE, run_flashcode


def test_make_tiny_then_logits_then_inspect(tmp_path):
    out = run_flashcode("engine", "make-tiny", str(tmp_path / "m"), "--seed", "5",
                        "--tokenizer", "small")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "m" / "config.json").is_file()
    tok = Tokenizer.from_dir(tmp_path / "m")  # a real tokenizer with V4's special tokens
    tok.check_vocab(1024)
    assert tok.decode(tok.encode("def f(x):\n    return x")) == "def f(x):\n    return x"
    assert max(tok.special.values()) < 1024 and {"user", "assistant", "dsml"} <= set(tok.special)
    out = run_flashcode("engine", "logits", "--model", str(tmp_path / "m"), "--tokens",
                        "5,7,11,13,17", "--mode", "reference", "--out", str(tmp_path / "l.npy"))
    assert out.returncode == 0, out.stderr
    got = np.load(tmp_path / "l.npy")
    assert got.dtype == np.float32 and got.shape == (5, 1024)
    want = load(tmp_path / "m", mode="reference")(torch.tensor([5, 7, 11, 13, 17]))
    assert np.array_equal(got, want.numpy())
    out = run_flashcode("engine", "inspect", str(tmp_path / "m"))
    assert out.returncode == 0, out.stderr
    assert "layer 2  HCA" in out.stdout and "routed experts" in out.stdout
    assert "int8" in out.stdout and "float8_e4m3fn" in out.stdout


def test_make_tiny_writes_deepseek_v4_tokenizer_by_default(tmp_path):
    out = run_flashcode("engine", "make-tiny", str(tmp_path / "m"))
    assert out.returncode == 0, out.stderr
    assert "v4 tokenizer" in out.stdout
    for name in ("tokenizer.json", "tokenizer_config.json"):  # the files DeepSeek ships
        assert (tmp_path / "m" / name).read_bytes() == (v4_tokenizer_dir() / name).read_bytes()
    assert (tmp_path / "m" / "tokenizer_config.json").read_bytes() == \
        (CONFORMANCE / "dsv4-tokenizer" / "tokenizer_config.json").read_bytes()
    tok = Tokenizer.from_dir(tmp_path / "m")
    tok.check_vocab(load_config(tmp_path / "m").vocab_size)
    assert tok.vocab_size == 129280 and tok.special["dsml"] == 128825


def test_inspect_the_official_flash_config():
    out = run_flashcode("engine", "inspect", str(CONFORMANCE / "dsv4-flash-config"))
    assert out.returncode == 0, out.stderr
    assert "159,609,485,896 bytes" in out.stdout
    assert "layer 42 CSA" in out.stdout and "mtp.0    sliding" in out.stdout


def test_bad_inputs_exit_with_a_reason(tmp_path):
    out = run_flashcode("engine", "logits", "--model", str(tmp_path), "--tokens", "1",
                        "--out", str(tmp_path / "x.npy"))
    assert out.returncode == 4 and "cannot load" in out.stderr
    out = run_flashcode("engine", "make-tiny", str(tmp_path / "m"), "--preset", "nope")
    assert out.returncode == 2 and "preset" in out.stderr
    out = run_flashcode("engine", "make-tiny", str(tmp_path / "m"), "--tokenizer", "huge")
    assert out.returncode == 2 and "--tokenizer" in out.stderr
