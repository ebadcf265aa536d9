"""Decode at Flash widths on one GPU: a random model with DeepSeek-V4-Flash's shapes and as many
of its blocks as fit, prefilled to a context, then decode steps eager and compiled + CUDA graph
(engine/decode.py), each as tok/s and as % of the HBM bound (bytes a step reads ÷ bandwidth
measured in the same run, bench/floor.py).

  python bench/gpu_decode.py [--layers N] [--ctx 4096] [--steps 64] [--json PATH] [--dry-run]

--layers: default as many as fit in 80 % of the free memory (Flash's 43 do not fit one H200).
The weights are random values in the stored formats (FP8 projections, FP4 experts), made on the
GPU: speed does not depend on them. --dry-run: a 2-block model at the tiny preset's widths on
the CPU (checks the script, not the GPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import floor  # noqa: E402
from engine.config import preset  # noqa: E402
from engine.decode import Decoder  # noqa: E402
from engine.kv.prefix import extend  # noqa: E402
from engine.model import Transformer  # noqa: E402
from engine.numerics import Numerics  # noqa: E402
from engine.weights import device_map  # noqa: E402


def config(name: str, layers: int | None):
    cfg = preset(name)
    n = layers or cfg.n_layers
    return preset(name, n_layers=n, compress_ratios=list(cfg.compress_ratios[:n]) + [0])


def block_bytes(name: str) -> tuple[int, int]:
    """(bytes of one CSA + one HCA block / 2, bytes outside the main blocks: embedding, head,
    the MTP block), from a meta model."""
    with torch.device("meta"):
        m = Transformer(config(name, 4), Numerics.of("official"))
    size = lambda mod: sum(p.numel() * p.element_size() for p in mod.parameters())  # noqa: E731
    per = (size(m.layers[2]) + size(m.layers[3])) // 2
    return per, size(m) - sum(size(b) for b in m.layers)


def fitting_layers(name: str, dev: str) -> int:
    free, _ = torch.cuda.mem_get_info(torch.device(dev))
    per, rest = block_bytes(name)
    return max(2, min(preset(name).n_layers, int((0.8 * free - rest) // per)))


@torch.no_grad()
def randomize_(model, seed: int = 0) -> None:
    """Every parameter random in its stored format, on its own device (fast on a GPU)."""
    g = torch.Generator(device=model.embed.weight.device).manual_seed(seed)
    for name, p in model.named_parameters():
        d = p.data
        if d.dtype == torch.float8_e4m3fn:  # |x| ≤ 1.75: bytes 0x00..0x3f, either sign
            b = torch.randint(0, 64, d.shape, generator=g, device=d.device, dtype=torch.uint8)
            s = torch.randint(0, 2, d.shape, generator=g, device=d.device, dtype=torch.uint8)
            d.view(torch.uint8).copy_(b | (s << 7))
        elif d.dtype == torch.float8_e8m0fnu:  # scales 2^-7
            d.view(torch.uint8).fill_(120)
        elif d.dtype == torch.int8:  # packed FP4 pairs
            d.copy_(torch.randint(-128, 128, d.shape, generator=g, device=d.device))
        elif d.dtype == torch.int64:  # hash routes
            d.copy_(torch.randint(0, model.cfg.n_routed_experts, d.shape, generator=g,
                                  device=d.device))
        elif name.endswith("norm.weight") or "attn_norm" in name or "ffn_norm" in name:
            d.fill_(1.0)
        else:
            d.copy_(torch.randn(d.shape, generator=g, device=d.device) * 0.02)


def build(name: str, layers: int, dev: str):
    """The model with its parameters made on `dev` (random, `randomize_`) and its plain tables
    (RoPE, slot numbers) as the constructor computes them: parameters are registered on meta
    while it runs, so nothing of their size is ever made on the CPU."""
    real = nn.Module.register_parameter

    def on_meta(self, pname, param):
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=False)
        real(self, pname, param)

    nn.Module.register_parameter = on_meta
    try:
        model = Transformer(config(name, layers), Numerics.of("official"))
    finally:
        nn.Module.register_parameter = real
    for mod in model.modules():
        for k, p in list(mod._parameters.items()):
            if p is not None:
                mod._parameters[k] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device=dev),
                                                  requires_grad=False)
    randomize_(model)
    device_map.place(model, device_map.resolve(dev, model))
    return model


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def decode_rate(model, state, mode: str, steps: int) -> tuple[float, float | None]:
    """(median seconds per step after warm-up, first-use compile seconds)."""
    dec = Decoder(model, mode, report=lambda line: print(line, flush=True))
    st = state.copy()
    for tok in range(3):  # compile, capture, settle
        dec.step(st, tok)
    times = []
    for i in range(steps):
        _sync()
        t = time.perf_counter()
        dec.step(st, i % 1000)
        _sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times), dec.compile_seconds


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args(argv)
    name, dev = ("tiny", "cpu") if a.dry_run else ("flash", "cuda:0")
    layers = a.layers or (2 if a.dry_run else fitting_layers(name, dev))
    ctx = min(a.ctx, 300) if a.dry_run else a.ctx
    t = time.perf_counter()
    model = build(name, layers, dev)
    print(f"{name} widths, {layers} blocks on {dev}: built in {time.perf_counter() - t:.0f} s",
          flush=True)
    toks = torch.randint(0, 1000, (ctx,), generator=torch.Generator().manual_seed(0)).to(dev)
    state = model.new_state()
    _sync()
    t = time.perf_counter()
    extend(model, toks, state, last_only=True)
    _sync()
    pre = ctx / (time.perf_counter() - t)
    bw = floor.read_bandwidth(2 << 30 if dev != "cpu" else 256 << 20, device=dev.split(":")[0])
    need = floor.step_bytes(model, state, ctx)
    out = {"preset": name, "layers": layers, "ctx": ctx, "device": dev,
           "device_name": torch.cuda.get_device_name() if dev != "cpu" else "cpu",
           "prefill_tok_s": pre, "read_bandwidth_Bps": bw, "step_bytes": need, "modes": {}}
    for mode in ("eager", "compile"):
        s, comp = decode_rate(model, state, mode, a.steps if not a.dry_run else 3)
        out["modes"][mode] = {"step_s": s, "tok_s": 1 / s, "pct_of_hbm_bound":
                              100 * need / bw / s, "compile_s": comp}
        print(f"decode {mode:8} {1 / s:8.1f} tok/s, {100 * need / bw / s:5.1f} % of the "
              f"memory bound ({need / 2**30:.2f} GiB a step at {bw / 1e12:.2f} TB/s)"
              + (f"; compiled in {comp:.0f} s" if comp else ""), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
