"""Cost of the tool-call constraint at DeepSeek-V4's real vocabulary (129,280 ids): llguidance
(engine/chat/guide.py) against the hand-written trie machine it replaced (read from git as of
OLD_REV, so it runs in the same process), over the same token sequences; then decode ms/token
on a tiny random checkpoint with the real vocabulary, with tools and without.

  python bench/mask.py [--quick] [--no-old] [--threads 1]

Sequences: one reply per tool of tests/engine/schema_corpus.py (24 tools; reasoning, a
sentence, then the call as DeepSeek's encoder renders it, then EOS), tokenized by the real
tokenizer and walked twice (cold: first visit of every grammar state; warm: again). Per step:
the time to get the mask of allowed ids (numpy bool over the vocabulary) and to take the token.
The new constraint needs no mask where the grammar forces the token (markup, names): those
steps are counted apart. Decode: a make-tiny checkpoint (v4 tokenizer), temperature 1, up to
64 tokens per reply, thinking off; no tools, the 24 tools with tool_choice auto (then also
with no constraint at all: the same long prompt, so the difference is the constraint's), and
required (a call is forced: markup and names come as forced ids).

Measured (2 shared CPU cores, 1 torch thread; old = the trie machine of edcdc24):
  mask per sampled step   llguidance median 0.020 ms, p99 0.99 ms (1,154 of 1,937 ids forced)
                          old        median 0.078 ms, p99 37.2 ms cold; 0.012 / 19.9 ms warm
  constraint per token    llguidance 0.044 ms; old 6.1 ms cold, 3.2 ms warm
  decode ms/token         no tools 13.4 (no constraint 13.2, old 25.9); 24 tools auto 13.7
                          (no constraint 13.5, old 25.8); 24 tools required 6.0 (old 13.9)
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.chat import dsml  # noqa: E402
from engine.chat.guide import guide_for  # noqa: E402
from engine.chat.tokenizer import Tokenizer, v4_tokenizer_dir  # noqa: E402
from tests.engine.schema_corpus import EXAMPLES, TOOLS  # noqa: E402


def replies(tok: Tokenizer) -> list[list[int]]:
    """Token ids of one reply per corpus tool (after the `<think>` opener)."""
    out = []
    for name, args in EXAMPLES.items():
        text = ("The user wants this; I will call the tool.</think>Calling it now."
                + dsml.tool_calls_block([(name, args)]) + dsml.EOS)
        out.append(tok.encode(text))
    return out


OLD_REV = "edcdc24"  # the commit before llguidance came in (the branch point from main)


def old_machinery(rev: str = OLD_REV):
    """engine/chat/constraint.py as it was at `rev` (with that commit's grammar.py and
    json_prefix.py), read from git into a scratch package: the machine llguidance replaced,
    measured in this same run."""
    root = Path(__file__).resolve().parents[1]
    pkg = Path(tempfile.mkdtemp()) / "oldchat"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in ("constraint", "grammar", "json_prefix"):
        src = subprocess.run(["git", "show", f"{rev}:engine/chat/{name}.py"], cwd=root,
                             check=True, capture_output=True, text=True).stdout
        for mod in ("grammar", "json_prefix"):
            src = src.replace(f"from engine.chat.{mod} ", f"from oldchat.{mod} ")
        (pkg / f"{name}.py").write_text(src)
    sys.path.insert(0, str(pkg.parent))
    return importlib.import_module("oldchat.constraint")


class Old:
    """The old trie machine under the new interface: no forced tokens, a mask every step."""

    def __init__(self, tok: Tokenizer) -> None:
        old = old_machinery()
        self.tok, self.cls = tok, old.ToolCallConstraint
        t = time.perf_counter()
        old.vocab_tables(tok)
        self.setup = time.perf_counter() - t

    def constraint(self, tools, choice, fmt, thinking, width=None, overlap=False):
        c = self.cls(self.tok, tools, thinking, width, choice)
        c.begin = lambda: []
        c.mask = c.allowed
        advance = c.advance
        c.advance = lambda t: (advance(t), [])[1]
        c.close = lambda: None
        return c


def walk(make, seqs: list[list[int]]) -> tuple[list[float], list[float], int, int]:
    """(mask seconds per sampled step, take seconds per step, forced steps, replies refused)
    over the sequences; a reply stops at an id its side refuses."""
    masks, takes, forced, refused = [], [], 0, 0
    for ids in seqs:
        c = make()
        pending = list(c.begin())
        for i in ids:
            if pending:
                assert pending.pop(0) == i, "forced id differs from the reply"
                forced += 1
                continue
            t0 = time.perf_counter()
            m = c.mask()
            t1 = time.perf_counter()
            if not m[i]:
                refused += 1
                break
            pending = list(c.advance(i))
            takes.append(time.perf_counter() - t1)
            masks.append(t1 - t0)
    return masks, takes, forced, refused


def _ms(xs: list[float]) -> str:
    q = np.quantile(np.array(xs) * 1e3, [0.5, 0.99])
    return f"median {q[0]:7.3f} ms  p99 {q[1]:7.3f} ms  (n={len(xs)})"


def mask_bench(tok: Tokenizer, old: bool) -> None:
    seqs = replies(tok)
    n_tok = sum(map(len, seqs))
    t = time.perf_counter()
    new = guide_for(tok)
    print(f"setup: llguidance tokenizer {time.perf_counter() - t:.2f} s", end="")
    sides = {"llguidance": lambda: new.constraint(TOOLS, "auto", None, True, overlap=False)}
    if old:
        o = Old(tok)
        print(f"; old vocab trie {o.setup:.2f} s", end="")
        sides["old trie machine"] = lambda: o.constraint(TOOLS, "auto", None, True)
    print(f"\n{len(seqs)} replies, {n_tok} tokens, vocabulary {tok.vocab_size}")
    for name, make in sides.items():
        for phase in ("cold", "warm"):
            t0 = time.perf_counter()
            masks, takes, forced, refused = walk(make, seqs)
            total = time.perf_counter() - t0
            print(f"{name:17} {phase}: mask {_ms(masks)}; take {_ms(takes)}")
            print(f"{'':17}       {forced} of {n_tok} ids forced (no mask), {refused} replies "
                  f"refused; constraint time per reply token {total / n_tok * 1e3:.3f} ms")


def decode_bench(old: bool, replies_per_case: int) -> None:
    """ms/token of decoding (prefill excluded): each case and side in turn, reply by reply, so
    that a busy machine slows all alike."""
    from engine.api import Engine
    from engine.events import Usage
    from engine.weights.tiny import make_tiny

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine.load(make_tiny(Path(tmp) / "tiny", "tiny", 0, "v4"), context_window=4096)
    guide, width = guide_for(engine.tok), engine.model.cfg.vocab_size
    sides = {"llguidance": lambda tools, choice: guide.constraint(tools, choice, None, False,
                                                                  width),
             "llguidance, no overlap": lambda tools, choice: guide.constraint(
                 tools, choice, None, False, width, overlap=False),
             "no constraint": None}
    if old:
        o = Old(engine.tok)
        sides["old trie machine"] = lambda tools, choice: o.constraint(tools, choice, None,
                                                                       False, width)
    cases = {"no tools": ([], "auto"), "24 tools, auto": (TOOLS, "auto"),
             "24 tools, required": (TOOLS, "required")}
    msgs = [{"role": "user", "content": "Please use a tool."}]
    ms: dict[tuple[str, str], list[float]] = {}
    for seed in range(replies_per_case):
        for case, (tools, choice) in cases.items():
            for side, make in sides.items():
                if make is None and choice != "auto":
                    continue  # without a constraint nothing forces a call
                req = engine.prepare(msgs, tools, temperature=1.0, seed=seed, max_tokens=64,
                                     thinking=False, tool_choice=choice,
                                     constrain=make is not None)
                if make is not None:
                    req.constraint = make(tools, choice)
                usage = next(e for e in engine.generate(req) if isinstance(e, Usage))
                ms.setdefault((case, side), []).append(1e3 / usage.decode_tps)
    for (case, side), xs in ms.items():
        print(f"decode {case:19} {side:23}: {statistics.median(xs):6.1f} ms/token "
              f"(median of {len(xs)} replies of up to 64 tokens)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer decode replies")
    ap.add_argument("--no-old", action="store_true", help="only the llguidance constraint")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a small shared machine more threads "
                         "spin against other work, several times slower)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    tok = Tokenizer.from_dir(v4_tokenizer_dir())
    mask_bench(tok, not args.no_old)
    decode_bench(not args.no_old, 2 if args.quick else 8)


if __name__ == "__main__":
    main()
