"""The engine bench's state figures (bench/engine.py runs them): weight traffic per step, KV
bytes per token (live and in the paged format), a save → load of a long context through
KV-on-disk, and MTP speculation against plain greedy decoding."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.kv import pages as kvcache  # noqa: E402
from engine.kv.disk import KVStore, model_identity  # noqa: E402
from engine.kv.prefix import extend  # noqa: E402


def print_traffic(model):
    """With routed experts in host memory: what crossed to and from them."""
    t: dict[str, int] = {}
    for blk in model.layers:
        for k, v in blk.ffn.experts.traffic.items():
            t[k] = t.get(k, 0) + v
    if t.get("compute_bytes") or t.get("streamed_bytes"):
        print(f"routed experts in host memory: {t['streamed_bytes'] / 2**20:.0f} MiB streamed "
              f"({t['streamed_experts']} expert copies) for prefill chunks, "
              f"{t['compute_bytes'] / 2**20:.1f} MiB of activations for host-computed steps")


def live_kv_bytes(state, c: int) -> dict[str, int]:
    """Bytes the live state's rows take for c tokens, by kind: every window ring, and the
    closed entries of each compressor (engine/kv/rows.py formats; capacity not counted)."""
    out = {"window": 0, "compressed": 0, "indexer": 0}
    for s in state.layers:
        out["window"] += s.window.nbytes()
        for kind, comp in (("compressed", s.comp), ("indexer", s.index)):
            if comp is not None:
                out[kind] += comp.rows.nbytes(c // comp.ratio)
    return out


def print_kv_bytes(cfg, model, c):
    """The official state's formats (fp8 rows, fp4 keys) at c tokens, per token."""
    state = model.new_state() if model.numerics.kv_fp8 else None
    if state is None:  # reference numerics keep floats: ask an official state for its sizes
        from engine.numerics import Numerics

        old = Numerics(**vars(model.numerics))
        model.numerics.set(Numerics.of("official"))
        try:
            state = model.new_state()
        finally:
            model.numerics.set(old)
    sizes = live_kv_bytes(state, c)
    ref = kvcache.bytes_per_token(cfg, c)
    s = state.layers[next(i for i, x in enumerate(state.layers) if x.index is not None)]
    print(f"\n== live KV bytes per token at {c} tokens, official formats (fp8 nope + bf16 rope "
          f"rows {s.comp.rows.nbytes(1)} B, fp4 indexer keys {s.index.rows.nbytes(1)} B) ==")
    for kind, n in sizes.items():
        print(f"  {kind:<13} {n / c:>8.1f}")
    total = sum(sizes.values()) / c
    print(f"  {'total':<13} {total:>8.1f}   vs bf16 dense MLA-style {ref['dense_mla_bf16']:.0f} "
          f"({ref['dense_mla_bf16'] / total:.1f}x), bf16 GQA 8x128 {ref['gqa_bf16']:.0f} "
          f"({ref['gqa_bf16'] / total:.1f}x)")


def save_load(model, state, toks, c):
    with tempfile.TemporaryDirectory() as d:
        store = KVStore(d, model_identity(model))
        t = time.perf_counter()
        path = store.save(toks[:c].tolist(), state)
        ts = time.perf_counter() - t
        t = time.perf_counter()
        got, n = store.load(toks[:c + 1].tolist())
        tl = time.perf_counter() - t
        size = path.stat().st_size
    nxt = toks[c:c + 1]
    a, b = model(nxt, state.copy()), model(nxt, got)
    print(f"\n== KV on disk: {c}-token session ==\nsave {ts:.2f} s, load {tl:.2f} s, "
          f"{size / 2**20:.1f} MiB, loaded {n} tokens; next-token logits identical: "
          f"{torch.equal(a, b)} (max |Δ| {(a - b).abs().max().item():.1e})")


def _speculate(model, prompt: torch.Tensor, n: int):
    """n greedy tokens decoded as engine/generate.py decodes them (a chunked prefill keeping the
    last chunk's streams for the drafter, then speculate.Stepper), and the stepper's counts."""
    from engine.speculate import Stepper

    state, chunk = model.new_state(), []
    logits = extend(model, prompt, state, last_only=True, streams=chunk)[-1]
    stepper = Stepper(model, state, True, *chunk[0])
    out = [int(logits.argmax())]
    while len(out) < n:
        out.append(int(stepper.next(out[-1]).argmax()))
    return out, stepper.stats


def speculation(model, toks, n: int):
    from engine.speculate import greedy

    prompt = toks[:1024].tolist()
    t = time.perf_counter()
    plain = greedy(model, prompt, n)
    tp = time.perf_counter() - t
    t = time.perf_counter()
    spec, stats = _speculate(model, toks[:1024], n)
    ts = time.perf_counter() - t
    print(f"\n== MTP speculation, {n} greedy tokens after 1K (random MTP weights: acceptance is "
          f"chance level) ==\nidentical to plain greedy: {spec == plain}; acceptance "
          f"{stats.acceptance:.2f}; tokens per main forward {stats.tokens / stats.forwards:.2f}; "
          f"time spec/plain {ts / tp:.2f}")
