"""Long-context runtime benchmark: flashcode's engine vs transformers' DeepseekV4ForCausalLM,
same random mid-size V4 weights, same process, same thread count.

  python bench/engine.py [--quick] [--threads 1] [--decode eager|compile] [--device-map SPEC]
                         [--repeats 3] [--contexts-only] [--json PATH]

Prints: prefill tok/s at 1K/4K/16K (and the first 1K vs the last 1K before 16K); decode per
token at each context as CPU time (wall time on a GPU), the median of 3 repeats that interleave
the sides (flashcode with its resident fp16 weights, flashcode with float32 copies, transformers
in float32: the same-dtype ratio beside the resident one) with their spread, and each as "× the
memory floor" (bytes the step reads ÷ read bandwidth measured in this run, bench/floor.py); KV
bytes per token by kind vs bf16 dense MLA-style and GQA caches; a 20-turn agent session with
prefix reuse on and off (bench/engine_session.py); save → load of the 16K state and the next
token's logits; MTP speculation. Both sides prefill in chunks of 512 tokens (flashcode's end on
multiples of 128) as a one-shot 16K prefill materializes [S, H, S] scores (~10 GB) in either.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import floor  # noqa: E402
from bench.engine_kv import print_kv_bytes, print_traffic, save_load, speculation  # noqa: E402
from bench.engine_session import agent_session, print_session  # noqa: E402
from engine.config import build  # noqa: E402
from engine.kv.prefix import extend  # noqa: E402
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

def _clock():
    """CPU time on the CPU (what a shared machine's load does not inflate); wall time on a GPU."""
    return time.perf_counter if torch.cuda.is_available() else time.process_time


def _timed(fn):
    """(seconds, result) of fn(), GPU work included."""
    clock = _clock()
    t = clock()
    r = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return clock() - t, r


class Sides:
    """The decoders compared, each a model and a decode mode (engine/decode.py): flashcode as
    placed (`fc`: resident fp16 on the CPU), flashcode with float32 copies (`fc32`, CPU only:
    what transformers reads), each in every mode asked for (a compiled side gets its own model:
    compiling re-lays its weights), and transformers (`hf`, float32)."""

    def __init__(self, cfg, model, hf, modes: list[str]):
        from engine.decode import Decoder

        self.models, self.steps = {}, {}
        cpu = model.device_map["layers.0"] == "cpu"
        for mode in modes:
            for kind in ("fc", "fc32") if cpu else ("fc",):
                m = model if kind == "fc" and mode == "eager" else _copy(cfg, model, kind, mode)
                name = f"{kind} {mode}"
                self.models[name] = m
                self.steps[name] = self._ours(Decoder(m, mode, report=_note))
        self.steps["hf"] = lambda tok, st, kv: hf(tok.view(1, 1), cache=kv, use_cache=True)

    @staticmethod
    def _ours(dec):
        return lambda tok, st, kv: dec.step(st, int(tok))

    def decode(self, st, kv, toks, repeats: int = 3) -> dict[str, list[float]]:
        """{side: [median seconds per step, one per repeat]}: the repeats interleave the
        sides (A, B, C, A, B, C, ...), each run from copies of the same state."""
        out = {k: [] for k in self.steps}
        for name, step in self.steps.items():  # warm-up (a compiled side compiles here)
            step(toks[0], st.copy(), copy.deepcopy(kv) if name == "hf" else None)
        for _ in range(repeats):
            for name, step in self.steps.items():
                s, c = st.copy(), copy.deepcopy(kv) if name == "hf" else None
                times = [_timed(lambda t=tok, f=step, s=s, c=c: f(t, s, c))[0]
                         for tok in toks]
                out[name].append(statistics.median(times))
        return out


def _copy(cfg, model, kind: str, mode: str):
    """The same weights again (the same seed), placed like `model`; `fc32`: float32 copies."""
    m = random_model(cfg, seed=0, mode="reference")
    device_map_mod.place(m, model.device_map)
    m.device_map = model.device_map
    if m.device_map["layers.0"] == "cpu":
        resident_weights(m, layout="float" if kind == "fc32" else
                         "plain" if mode == "compile" else None)
    return m


def _note(line: str) -> None:
    print(line, flush=True)


@torch.no_grad()
def run_contexts(model, hf, hc, toks, n_dec, sides: Sides, chunk=512, repeats: int = 3):
    """Both prefill the same tokens to 16K in interleaved 512-token chunks (CPU time per
    chunk); at each context point, `repeats` interleaved decode runs of each side and the
    memory floor (measured bandwidth, bytes a step reads). -> (results, state, logits)"""
    from transformers import DynamicCache

    st, kv = model.new_state(), DynamicCache(config=hc)
    done, out = 0, {"chunks": [], "dec": {}, "floor": {}}
    dev = str(model.embed.weight.device)
    lo, hi = CONTEXTS[0], CONTEXTS[-1]
    for c in CONTEXTS:
        for i in range(done, c, chunk):
            if i <= hi - lo < i + chunk:  # the last `lo` tokens before `hi` start from here
                out["late"] = (i, st.copy())
            part = toks[i:min(c, i + chunk)]
            dt, fc_last = _timed(lambda p=part: extend(model, p, st, last_only=True))
            dh, hf_out = _timed(lambda p=part: hf(p[None], cache=kv, use_cache=True))
            out["chunks"].append((i + len(part), dt, dh))
        done = c
        out["dec"][c] = sides.decode(st, kv, toks[c:c + n_dec], repeats)
        bw = floor.read_bandwidth(device=dev if dev.startswith("cuda") else "cpu")
        out["floor"][c] = ({k: floor.step_bytes(m, st, c) for k, m in sides.models.items()}, bw)
    out["prefill_ab"] = prefill_ab(model, out.pop("late"), toks, chunk, repeats)
    return out, st, (fc_last[-1], hf_out.logits[0, -1])


def prefill_ab(model, late, toks, chunk: int, repeats: int) -> dict[str, list[float]]:
    """flashcode's prefill tok/s of the first `lo` tokens (from an empty state) and of the
    last `lo` before `hi` (from a copy of the state at hi − lo), interleaved `repeats` times:
    the 16K ÷ 1K comparison on one machine load."""
    lo, hi = CONTEXTS[0], CONTEXTS[-1]
    p, late = late
    if p < hi - lo:  # from the chunk start before hi − lo to it
        extend(model, toks[p:hi - lo], late)
    out = {"first": [], "last": []}
    for _ in range(repeats):
        for name, (start, st) in (("first", (0, None)), ("last", (hi - lo, late))):
            st = st.copy() if st is not None else model.new_state()
            dt = sum(_timed(partial(extend, model, toks[i:i + chunk], st, last_only=True))[0]
                     for i in range(start, start + lo, chunk))
            out[name].append(lo / dt)
    return out


def prefill_rates(chunks, lo: int, hi: int) -> tuple[float, float]:
    """(fc, hf) tok/s over the chunks ending in (lo, hi]."""
    sel = [(e, a, b) for e, a, b in chunks if lo < e <= hi]
    n = sel[-1][0] - lo
    return n / sum(a for _, a, _ in sel), n / sum(b for _, _, b in sel)


def rows_read(cfg, c: int) -> tuple[int, int]:
    """KV rows one decode token attends over, summed over layers: (V4 compressed, dense)."""
    ours = 0
    for layer in range(cfg.n_layers):
        r = cfg.ratio(layer)
        ours += min(c, cfg.window_size)
        ours += min(cfg.index_topk, c // 4) if r == 4 else (c // r if r else 0)
    return ours, cfg.n_layers * c


def _ms(xs: list[float]) -> str:
    """Median of the repeats and their spread, in ms."""
    return f"{statistics.median(xs) * 1e3:7.2f} [{min(xs) * 1e3:.2f}-{max(xs) * 1e3:.2f}]"


def print_contexts(cfg, res, repeats: int):
    chunks, dec, fl = res["chunks"], res["dec"], res["floor"]
    print("\n== prefill (tok/s from 0 to ctx, CPU time), flashcode vs transformers ==")
    print(f"{'ctx':>6} {'fc pre':>8} {'hf pre':>8} {'ratio':>6}")
    for c in CONTEXTS:
        fp, hp = prefill_rates(chunks, 0, c)
        print(f"{c:>6} {fp:>8.0f} {hp:>8.0f} {fp / hp:>6.2f}")
    lo, hi = CONTEXTS[0], CONTEXTS[-1]
    (f1, h1), (f2, h2) = prefill_rates(chunks, 0, lo), prefill_rates(chunks, hi - lo, hi)
    print(f"prefill tok/s, first {lo} vs last {lo} before {hi}: flashcode {f1:.0f} -> {f2:.0f} "
          f"({f1 / f2:.2f}x slower), transformers {h1:.0f} -> {h2:.0f} ({h1 / h2:.2f}x)")
    ab = res["prefill_ab"]
    a, b = statistics.median(ab["first"]), statistics.median(ab["last"])
    print(f"  again, interleaved {repeats}x (flashcode): first {lo} {a:.0f} "
          f"[{min(ab['first']):.0f}-{max(ab['first']):.0f}], last {lo} before {hi} {b:.0f} "
          f"[{min(ab['last']):.0f}-{max(ab['last']):.0f}] tok/s: {a / b:.2f}x slower")
    bw = max(b for _, b in fl.values())
    print(f"\n== decode: ms per token (CPU time; wall on a GPU), median of {repeats} interleaved "
          f"repeats [spread]; floor = bytes a step reads / {bw / 1e9:.1f} GB/s read bandwidth "
          "measured in this run ==")
    print(f"{'ctx':>6} {'side':<13} {'ms/token [spread]':>24} {'tok/s':>7} {'hf/side':>7} "
          f"{'MiB read':>8} {'floor ms':>8} {'x floor':>7}")
    for c in CONTEXTS:
        hf_med = statistics.median(dec[c]["hf"])
        for side, xs in dec[c].items():
            med, need = statistics.median(xs), fl[c][0].get(side)
            tail = (f"{need / 2**20:>8.1f} {need / bw * 1e3:>8.2f} {med / (need / bw):>7.2f}"
                    if need else f"{'-':>8} {'-':>8} {'-':>7}")
            print(f"{c:>6} {side:<13} {_ms(xs):>24} {1 / med:>7.1f} {hf_med / med:>7.2f} {tail}")
    print("(fc: resident fp16 weights; fc32: float32 copies, what transformers reads: hf/side "
          "on an fc32 row is the same-dtype ratio; MiB read: weights as held + KV rows read)")
    (o1, d1), (o2, d2) = rows_read(cfg, lo), rows_read(cfg, hi)
    first = next(iter(dec[lo]))
    m1, m2 = statistics.median(dec[lo][first]), statistics.median(dec[hi][first])
    print(f"decode time/token {hi} / {lo}: flashcode ({first}) {m2 / m1:.2f}, transformers "
          f"{statistics.median(dec[hi]['hf']) / statistics.median(dec[lo]['hf']):.2f}; KV rows "
          f"read per token {o1} -> {o2} ({o2 / o1:.2f}x), dense attention {d1} -> {d2} "
          f"({d2 / d1:.0f}x)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer decode steps; shorter session")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device-map", default="cpu",
                    help="where our model runs (engine.weights.device_map: cpu, cuda:0, "
                         "cuda:0,experts=cpu, ...); transformers' goes on the first block's device")
    ap.add_argument("--decode", default="eager",
                    help="how flashcode's decode steps run, comma-separated for several sides "
                         "(engine/decode.py: eager, compile = torch.compile, and CUDA graphs on "
                         "a GPU); e.g. eager,compile")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved decode repeats")
    ap.add_argument("--contexts-only", action="store_true",
                    help="prefill/decode only: no KV, save/load, speculation or session")
    ap.add_argument("--json", metavar="PATH", help="also write the context figures here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = bench_config()
    t = time.perf_counter()
    model, hf, hc, stored = load_models(cfg, args.device_map)
    print(f"model: {stored / 2**20:.0f} MiB stored, {cfg.n_layers} blocks "
          f"(ratios {[cfg.ratio(i) for i in range(cfg.n_layers)]}), built in "
          f"{time.perf_counter() - t:.0f} s; torch threads {args.threads}; "
          f"{device_map_mod.describe(model.device_map)}; decode {args.decode}")
    n_dec = 8 if args.quick else 16
    toks = torch.randint(0, cfg.vocab_size, (CONTEXTS[-1] + n_dec + 1,),
                         generator=torch.Generator().manual_seed(0)).to(model.embed.weight.device)
    sides = Sides(cfg, model, hf, args.decode.split(","))
    res, state, (fc_last, hf_last) = run_contexts(model, hf, hc, toks, n_dec, sides,
                                                  repeats=args.repeats)
    print_contexts(cfg, res, args.repeats)
    print_traffic(model)
    diff = (fc_last - hf_last).abs().max().item()
    print(f"last prefill logits, flashcode vs transformers: max |Δ| {diff:.1e}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary(res, diff, args), indent=1))
    if args.contexts_only:
        return
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


def summary(res, diff: float, args) -> dict:
    """The context figures as data (bench/gpu_check.sh collects them)."""
    bw = max(b for _, b in res["floor"].values())
    out = {"device_map": args.device_map, "decode": args.decode, "read_bandwidth_Bps": bw,
           "logits_max_abs_diff": diff, "contexts": {}}
    lo, hi = CONTEXTS[0], CONTEXTS[-1]
    f1, f2 = prefill_rates(res["chunks"], 0, lo)[0], prefill_rates(res["chunks"], hi - lo, hi)[0]
    ab = res["prefill_ab"]
    out["prefill_first_vs_last_1k"] = {"sequential": f1 / f2, "interleaved": statistics.median(
        ab["first"]) / statistics.median(ab["last"]), "tok_s": ab}
    for c in CONTEXTS:
        med = {k: statistics.median(v) for k, v in res["dec"][c].items()}
        fp, hp = prefill_rates(res["chunks"], 0, c)
        need = res["floor"][c][0]
        out["contexts"][c] = {
            "prefill_tok_s": {"fc": fp, "hf": hp}, "decode_s": res["dec"][c],
            "decode_tok_s": {k: 1 / v for k, v in med.items()},
            "hf_over_side": {k: med["hf"] / v for k, v in med.items()},
            "step_bytes": need, "x_floor": {k: med[k] / (n / bw) for k, n in need.items()}}
    return out


if __name__ == "__main__":
    main()
