"""Long-context runtime benchmark: flashcode's engine vs transformers' DeepseekV4ForCausalLM,
same random mid-size V4 weights, same process, same thread count.

  python bench/engine.py [--quick] [--threads 1]

Prints: prefill/decode tok/s at 1K/4K/16K and the ratios flashcode/transformers; decode time
per token at 16K ÷ 1K (and what dense attention would read); KV bytes per token by kind vs
bf16 dense MLA-style and GQA caches; a 20-turn agent session with prefix reuse on and off
(tokens prefilled per turn, time to first token); save → load of the 16K state and the next
token's logits. Both sides prefill in chunks of 512 tokens (flashcode's end on multiples of 128) as
a one-shot 16K prefill materializes [S, H, S] scores (~10 GB) in either.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import build  # noqa: E402
from engine.kv import pages as kvcache  # noqa: E402
from engine.kv.disk import KVStore, model_identity  # noqa: E402
from engine.kv.prefix import PrefixCache, extend  # noqa: E402
from engine.weights import device_map as device_map_mod  # noqa: E402
from engine.weights.placement import resident_weights  # noqa: E402
from engine.weights.tiny import random_model, transformers_state_dict  # noqa: E402

CONTEXTS = (1024, 4096, 16384)


def bench_config():
    """~130 MB stored (FP4 experts, FP8 projections): 6 blocks sliding/CSA/HCA/CSA/HCA/sliding."""
    return build(vocab_size=8192, dim=512, n_layers=6, n_heads=8, head_dim=256,
                 rope_head_dim=64, q_lora_rank=256, o_groups=2, o_lora_rank=256,
                 compress_ratios=[0, 4, 128, 4, 128, 0, 0], index_n_heads=8, index_head_dim=64,
                 index_topk=128, n_routed_experts=32, n_activated_experts=2, moe_inter_dim=512,
                 n_hash_layers=2)


def load_models(cfg, device_map: str = "cpu"):
    """Both models on the same weights; ours placed by `device_map` (engine.weights.device_map),
    transformers' on the device of our first block."""
    from transformers import DeepseekV4Config, DeepseekV4ForCausalLM

    model = random_model(cfg, seed=0, mode="reference")
    hc = DeepseekV4Config(**cfg.to_transformers())
    hc._attn_implementation = "eager"
    hf = DeepseekV4ForCausalLM(hc).float().eval()
    hf.load_state_dict(transformers_state_dict(model), strict=True)
    dmap = device_map_mod.resolve(device_map, model)
    device_map_mod.place(model, dmap)
    model.device_map = dmap
    hf.to(dmap["layers.0"])
    if dmap["layers.0"] == "cpu":  # transformers holds float32 weights: compare like with like
        resident_weights(model)
    stored = sum(model.stored_bytes().values())
    return model, hf, hc, stored


# ---- contexts --------------------------------------------------------------------------------

def _timed(fn):
    """(seconds, result) of fn(), GPU work included."""
    t = time.perf_counter()
    r = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, r


def _decode_both(model, st, hf, kv, toks) -> tuple[float, float]:
    """Median seconds per decode step of each, steps interleaved so that both sides see the
    same load on this shared machine."""
    st, kv = st.copy(), copy.deepcopy(kv)
    fc, tr = [], []
    for tok in toks:
        fc.append(_timed(lambda tok=tok: model(tok.view(1), st))[0])
        tr.append(_timed(lambda tok=tok: hf(tok.view(1, 1), cache=kv, use_cache=True))[0])
    return statistics.median(fc), statistics.median(tr)


@torch.no_grad()
def run_contexts(model, hf, hc, toks, n_dec, chunk=512):
    """Both prefill the same tokens to 16K in interleaved 512-token chunks; at each context
    point, prefill tok/s so far and an interleaved decode run. -> ({c: (fc, hf)}, state, logits)"""
    from transformers import DynamicCache

    st, kv = model.new_state(), DynamicCache(config=hc)
    done, spent, out = 0, [0.0, 0.0], {}
    for c in CONTEXTS:
        for i in range(done, c, chunk):
            part = toks[i:min(c, i + chunk)]
            dt, fc_last = _timed(lambda p=part: extend(model, p, st, last_only=True))
            spent[0] += dt
            dt, hf_out = _timed(lambda p=part: hf(p[None], cache=kv, use_cache=True))
            spent[1] += dt
        done = c
        dec = _decode_both(model, st, hf, kv, toks[c:c + n_dec])
        out[c] = ((c / spent[0], dec[0]), (c / spent[1], dec[1]))
    return out, st, (fc_last[-1], hf_out.logits[0, -1])


def rows_read(cfg, c: int) -> tuple[int, int]:
    """KV rows one decode token attends over, summed over layers: (V4 compressed, dense)."""
    ours = 0
    for layer in range(cfg.n_layers):
        r = cfg.ratio(layer)
        ours += min(c, cfg.window_size)
        ours += min(cfg.index_topk, c // 4) if r == 4 else (c // r if r else 0)
    return ours, cfg.n_layers * c


def print_contexts(cfg, both):
    print("\n== prefill / decode (tok/s; decode = 1 / median step), flashcode vs transformers ==")
    print(f"{'ctx':>6} {'fc pre':>8} {'hf pre':>8} {'ratio':>6} {'fc dec':>8} {'hf dec':>8} "
          f"{'ratio':>6}")
    for c in CONTEXTS:
        (fp, fd), (hp, hd) = both[c]
        print(f"{c:>6} {fp:>8.0f} {hp:>8.0f} {fp / hp:>6.2f} {1 / fd:>8.1f} {1 / hd:>8.1f} "
              f"{hd / fd:>6.2f}")
    lo, hi = CONTEXTS[0], CONTEXTS[-1]
    (_, f1), (_, h1) = both[lo]
    (_, f2), (_, h2) = both[hi]
    print(f"decode time/token {hi} ÷ {lo}: flashcode {f2 / f1:.2f}, transformers {h2 / h1:.2f}")
    (o1, d1), (o2, d2) = rows_read(cfg, lo), rows_read(cfg, hi)
    print(f"KV rows read per decode token {lo} -> {hi}: V4 compressed {o1} -> {o2} "
          f"({o2 / o1:.2f}x); dense attention {d1} -> {d2} ({d2 / d1:.0f}x: its attention "
          "time per token grows 16x)")


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


# ---- agent session ---------------------------------------------------------------------------

def _turn(model, prompt, n_reply, pc: PrefixCache | None):
    """Prefill (reusing what the cache has) and decode a reply: (reply, prefilled, ttft, lg)."""
    t = time.perf_counter()
    st, n = pc.lookup(prompt) if pc is not None else (None, 0)
    st = st if st is not None else model.new_state()
    lg = extend(model, torch.tensor(prompt[n:]), st, last_only=True)[-1]
    ttft = time.perf_counter() - t
    reply = [int(lg.argmax())]
    while len(reply) < n_reply:
        reply.append(int(model(torch.tensor(reply[-1:]), st)[-1].argmax()))
    if pc is not None:
        pc.store(prompt + reply[:-1], st)  # the last reply token is sampled, not yet run
    return reply, len(prompt) - n, ttft, lg


def agent_session(model, turns: int, sizes, n_reply: int, off_turns: set[int]):
    rng = random.Random(1)
    prompt = [rng.randrange(model.cfg.vocab_size) for _ in range(300)]  # system + task
    pc, rows = PrefixCache(), []
    for k in range(1, turns + 1):
        prompt = prompt + [rng.randrange(model.cfg.vocab_size)
                           for _ in range(rng.randint(*sizes))]  # the tool result
        reply, pre, ttft, lg = _turn(model, prompt, n_reply, pc)
        off = _turn(model, prompt, n_reply, None) if k in off_turns else None
        rows.append((k, len(prompt), pre, ttft, off, (reply, lg)))
        prompt = prompt + reply
    return rows, pc


def print_session(rows, pc):
    print("\n== agent session: prompt grows by a tool result (and the reply) each turn ==")
    print(f"{'turn':>4} {'prompt':>7} {'new':>6} {'reuse: prefilled':>16} {'ttft s':>7} "
          f"{'no reuse: prefilled':>19} {'ttft s':>7} {'same reply':>10} {'max |Δlogit|':>12}")
    prev = 300
    for k, n, pre, ttft, off, (reply, lg) in rows:
        new = n - prev
        if off is None:
            tail = f"{'-':>19} {'-':>7} {'-':>10} {'-':>12}"
        else:
            same = off[0] == reply
            tail = (f"{off[1]:>19} {off[2]:>7.2f} {str(same):>10} "
                    f"{(off[3] - lg).abs().max().item():>12.2e}")
        print(f"{k:>4} {n:>7} {new:>6} {pre:>16} {ttft:>7.2f} {tail}")
        prev = n + len(reply)
    print("(new = the tool result; with reuse the reply's last token, sampled but not yet run, "
          "is prefilled with it. max |Δlogit| = first-token logits, reuse vs none: different "
          "chunkings differ by ~1e-6, which can flip the indexer's top-k at long context)")
    print(f"prefix cache: {pc.hits} hits, {pc.reused_tokens} tokens reused, "
          f"{pc.nbytes / 2**20:.1f} MiB held")


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
    from engine.kv.prefix import extend
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer decode steps; shorter session")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device-map", default="cpu",
                    help="where our model runs (engine.weights.device_map: cpu, cuda:0, "
                         "cuda:0,experts=cpu, ...); transformers' goes on the first block's device")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = bench_config()
    t = time.perf_counter()
    model, hf, hc, stored = load_models(cfg, args.device_map)
    print(f"model: {stored / 2**20:.0f} MiB stored, {cfg.n_layers} blocks "
          f"(ratios {[cfg.ratio(i) for i in range(cfg.n_layers)]}), built in "
          f"{time.perf_counter() - t:.0f} s; torch threads {args.threads}; "
          f"{device_map_mod.describe(model.device_map)}")
    n_dec = 16 if args.quick else 48
    toks = torch.randint(0, cfg.vocab_size, (CONTEXTS[-1] + n_dec + 1,),
                         generator=torch.Generator().manual_seed(0)).to(model.embed.weight.device)
    both, state, (fc_last, hf_last) = run_contexts(model, hf, hc, toks, n_dec)
    print_contexts(cfg, both)
    print_traffic(model)
    print(f"last prefill logits, flashcode vs transformers: max |Δ| "
          f"{(fc_last - hf_last).abs().max().item():.1e}")
    print_kv_bytes(cfg, model, CONTEXTS[-1])
    save_load(model, state, toks, CONTEXTS[-1])
    del hf
    speculation(model, toks, 16 if args.quick else 48)
    sizes, off = ((200, 600), {1, 5, 10, 15, 20}) if args.quick else ((200, 2000), set(
        range(1, 21)))
    rows, pc = agent_session(model, 20, sizes, 4 if args.quick else 16, off)
    if args.quick:
        print("(--quick: tool results of 200-600 tokens; reuse off measured on turns "
              f"{sorted(off)} only)")
    print_session(rows, pc)


if __name__ == "__main__":
    main()
