"""Decode profile of the bench model (bench/engine.py's bench_config): median ms per decode
step for flashcode and transformers at one context, then where flashcode's time goes.

  python bench/prof_decode.py [--ctx 1024] [--steps 20] [--profile [--shapes]] [--no-hf]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.kv.prefix import extend  # noqa: E402


def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_engine", Path(__file__).parent
                                                  / "engine.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _profile(model, st, toks, shapes: bool, sort: str = "tottime"):
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=shapes) as p:
        for t in toks[:10]:
            model(t.view(1), st)
    table = p.key_averages(group_by_input_shape=shapes)
    print(table.table(sort_by="self_cpu_time_total", row_limit=40 if shapes else 25))
    import cProfile
    import pstats

    pr = cProfile.Profile()
    pr.enable()
    for t in toks[10:20]:
        model(t.view(1), st)
    pr.disable()
    pstats.Stats(pr).sort_stats(sort).print_stats(30)


def _timed(fn) -> tuple[float, float]:
    """(wall, process CPU) seconds of fn(); CPU time is steadier on a shared machine."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _med(xs, i: int) -> float:
    return statistics.median(x[i] for x in xs)


def _line(name: str, xs) -> str:
    return f"{name} {_med(xs, 0) * 1e3:.2f} ms/step (cpu {_med(xs, 1) * 1e3:.2f})"


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--shapes", action="store_true", help="profile: group by input shapes")
    ap.add_argument("--sort", default="tottime", help="cProfile order: tottime, cumtime")
    ap.add_argument("--no-hf", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    eb = _bench_module()
    cfg = eb.bench_config()
    model, hf, hc, _ = eb.load_models(cfg)
    from transformers import DynamicCache

    n = a.ctx + a.steps + 20
    toks = torch.randint(0, cfg.vocab_size, (n,), generator=torch.Generator().manual_seed(0))
    st, kv = model.new_state(), DynamicCache(config=hc)
    for i in range(0, a.ctx, 512):
        extend(model, toks[i:min(a.ctx, i + 512)], st, last_only=True)
        if not a.no_hf:
            hf(toks[i:min(a.ctx, i + 512)][None], cache=kv, use_cache=True)
    fc, tr = [], []
    for j in range(a.steps):
        fc.append(_timed(lambda j=j: model(toks[a.ctx + j].view(1), st)))
        if not a.no_hf:
            tr.append(_timed(lambda j=j: hf(toks[a.ctx + j].view(1, 1), cache=kv,
                                            use_cache=True)))
    print(f"ctx {a.ctx}: {_line('flashcode', fc)}" + (
        f", {_line('transformers', tr)}, ratio wall {_med(tr, 0) / _med(fc, 0):.2f} "
        f"cpu {_med(tr, 1) / _med(fc, 1):.2f}" if tr else ""), flush=True)
    if a.profile:
        _profile(model, st, toks[a.ctx + a.steps:], a.shapes, a.sort)


if __name__ == "__main__":
    main()
