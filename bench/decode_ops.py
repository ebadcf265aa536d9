"""What one decode step costs at a preset's shapes, without its weights: the model is built on
the `meta` device (bench and tiny presets run on the CPU with random weights instead).

  python bench/decode_ops.py --preset NAME [--json] [--mode official|reference] [--compiled]

NAME: flash, pro, bench (bench/engine.py's model, with its resident fp16 weights) or a tiny
preset. Reports, per decode step:
  eager_ops_per_step     ops the step dispatches run op by op (the profiler's count of aten and
                         flashcode ops, nested calls included: the figure issue 16 started
                         from, when only aten ops existed), and the leaf count
  graph_breaks           under torch.compile(fullgraph=True) (dynamo's explain; on meta where it
                         traces, else on the tiny preset)
  live_kv_bytes_per_token  the live state's KV rows (window rings, compressed entries, indexer
                         keys) at 1M tokens of context, per token, in `mode`'s formats
  state_bytes_at_1m      everything a 1M-token state allocates (rows in whole pages, open-window
                         slots, rings), MTP block included
  compiled_ops_per_step  (--compiled, CPU presets) ops the inductor-compiled step still
                         dispatches (its extern kernels), by the same count
On meta, routed experts take the static gather path (the one compiled steps run: the CPU's eager
loop reads the expert ids) and Sinkhorn its torch rounds (the CPU runs them in numpy).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import PRESETS, preset  # noqa: E402
from engine.model import Transformer  # noqa: E402
from engine.numerics import Numerics  # noqa: E402

CONTEXT = 1 << 20
OPS = ("aten::", "flashcode::")  # torch's ops and ours (engine/kernels/gemv_f16.py, fused_cpu.py)


def config(name: str):
    if name == "bench":
        spec = importlib.util.spec_from_file_location("bench_engine",
                                                      Path(__file__).parent / "engine.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.bench_config()
    if name not in PRESETS:
        raise SystemExit(f"unknown preset {name!r}: flash, pro, bench or {sorted(PRESETS)}")
    return preset(name)


def build(cfg, mode: str, on_meta: bool):
    """The model: random weights on the CPU, or none on meta (tables moved there too)."""
    if not on_meta:  # as bench/engine.py runs it: resident fp16 copies on the CPU
        from engine.weights.placement import resident_weights
        from engine.weights.tiny import random_model

        model = random_model(cfg, seed=0, mode=mode)
        resident_weights(model)
        return model
    with torch.device("meta"):
        model = Transformer(cfg, Numerics.of(mode))
    for mod in model.modules():
        for k, v in list(vars(mod).items()):
            if isinstance(v, torch.Tensor) and not isinstance(v, torch.nn.Parameter):
                setattr(mod, k, v.to("meta"))
    return model


class _Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def _inputs(model, state, pos: int):
    dev = model.embed.weight.device
    state.reserve(pos + 1)
    for s in state.layers:
        s.pos = pos
    return torch.zeros(1, dtype=torch.long, device=dev), torch.full((1,), pos, device=dev)


def count_ops(fn, *args, leaf: bool = True) -> tuple[int, int, list]:
    """(profiler aten events, leaf dispatches, the commonest leaf ops) of fn(*args); leaf=False
    (a compiled fn: dynamo refuses to run under a dispatch mode): the profiler's only."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        fn(*args)  # warm
        with profile(activities=[ProfilerActivity.CPU]) as p:
            fn(*args)
        events = [e.name for e in p.events() if e.name.startswith(OPS)]
        if not leaf:
            return len(events), 0, collections.Counter(events).most_common(8)
        with _Count() as c:
            fn(*args)
    return len(events), sum(c.ops.values()), c.ops.most_common(8)


def graph_breaks(model, state, pos: int) -> int:
    """Graph breaks of the step as the Decoder compiles it (fbgemm's packed weights become
    plain ones first, as engine/decode.py does)."""
    from engine.weights.placement import layout_of, resident_weights

    if layout_of(model) == "packed":
        resident_weights(model, layout="plain")
    tok, t = _inputs(model, state, pos)
    torch._dynamo.reset()
    with torch.no_grad():
        ex = torch._dynamo.explain(model.decode_step)(tok, t, state)
    torch._dynamo.reset()
    return ex.graph_break_count


def kv_bytes(state, context: int = CONTEXT) -> dict[str, float]:
    """Live KV rows per token at `context` tokens, by kind (rings amortized over it)."""
    out = {"window": 0.0, "compressed": 0.0, "indexer": 0.0}
    for s in (*state.layers, *state.mtp):
        out["window"] += s.window.nbytes() / context
        for kind, c in (("compressed", s.comp), ("indexer", s.index)):
            if c is not None:
                out[kind] += c.rows.nbytes(context // c.ratio) / context
    out["total"] = sum(out.values())
    return out


def state_bytes(state) -> int:
    return sum(s.nbytes() for s in (*state.layers, *state.mtp))


def compiled_ops(model, state, pos: int) -> int:
    from engine.decode import Decoder
    from engine.weights.placement import resident_weights

    resident_weights(model, layout="plain")
    dec = Decoder(model, "compile", report=lambda line: print(line, file=sys.stderr))
    dec.step(state, 0)
    return count_ops(dec.step, state, 0, leaf=False)[0]


def measure(name: str, mode: str, compiled: bool = False) -> dict:
    cfg = config(name)
    on_meta = name not in ("bench",) and not name.startswith("tiny")
    model = build(cfg, mode, on_meta)
    state = model.new_state()
    pos = min(4096, cfg.max_position_embeddings - 1)  # every compressor has closed entries
    tok, t = _inputs(model, state, pos)
    events, leaf, common = count_ops(model.decode_step, tok, t, state)
    try:
        breaks, where = graph_breaks(model, model.new_state(), pos), "meta" if on_meta else "cpu"
    except Exception as e:  # noqa: BLE001 - meta cannot trace everything: the tiny preset can
        tiny = build(preset("tiny"), mode, False)
        breaks, where = graph_breaks(tiny, tiny.new_state(), 300), f"tiny (meta: {e!r:.80})"
    big = model.new_state()
    big.reserve(CONTEXT)
    out = {"preset": name, "mode": mode, "device": "meta" if on_meta else "cpu",
           "eager_ops_per_step": events, "eager_ops_dispatched": leaf,
           "commonest_ops": common, "graph_breaks": breaks, "graph_breaks_on": where,
           "live_kv_bytes_per_token": kv_bytes(big), "state_bytes_at_1m": state_bytes(big)}
    if compiled and not on_meta:
        out["compiled_ops_per_step"] = compiled_ops(model, state, pos)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", required=True)
    ap.add_argument("--mode", default="official", choices=("official", "reference"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compiled", action="store_true", help="also compile (CPU presets)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    r = measure(a.preset, a.mode, a.compiled)
    if a.json:
        print(json.dumps(r))
        return
    kv = r["live_kv_bytes_per_token"]
    print(f"{r['preset']} ({r['mode']} numerics, on {r['device']}), per decode step:")
    print(f"  eager ops          {r['eager_ops_per_step']} ({r['eager_ops_dispatched']} leaf "
          f"dispatches; commonest {r['commonest_ops'][:4]})")
    if "compiled_ops_per_step" in r:
        print(f"  compiled step      {r['compiled_ops_per_step']} ops (extern kernels)")
    print(f"  graph breaks       {r['graph_breaks']} (torch.compile fullgraph, traced on "
          f"{r['graph_breaks_on']})")
    print(f"  live KV at 1M      {kv['total']:.0f} B/token (window {kv['window']:.1f}, "
          f"compressed {kv['compressed']:.0f}, indexer {kv['indexer']:.0f})")
    print(f"  state at 1M        {r['state_bytes_at_1m'] / 2**30:.2f} GiB allocated")


if __name__ == "__main__":
    main()
