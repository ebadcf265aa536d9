"""Kernel benchmark: each Triton kernel against its plain-PyTorch twin (measured in the same
run, on the same GPU) and against its roofline, max(bytes moved ÷ HBM bandwidth, FLOPs ÷ peak),
at DeepSeek-V4-Flash shapes: decode batch 1 at 8K, 128K and 1M context, prefill chunks of 4K.

    python bench/kernels.py                 # needs CUDA; says so and exits 0 without it
    python bench/kernels.py --dry-run       # tiny shapes on the CPU interpreter: a smoke test
    python bench/kernels.py --only attention --bw 4.8e12 --peak 989e12

Columns: kernel and twin time (ms), twin/kernel (speed-up), roofline time, kernel/roofline
(1.0 = at the roofline), max |kernel − twin| / max |twin| where the twin ran. A twin whose
intermediates would not fit (dense [S, H, N] scores at 1M context) is skipped and says so.
The peak is dense bf16 tensor FLOP/s; the attention and indexer kernels dot in tf32/fp32.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# (HBM bytes/s, dense bf16 FLOP/s) by device-name fragment
PEAKS = {"H200": (4.8e12, 989e12), "H100": (3.35e12, 989e12), "H800": (3.35e12, 989e12),
         "A100": (2.039e12, 312e12), "L40S": (0.864e12, 362e12), "4090": (1.008e12, 165e12)}
FLASH = dict(H=64, d=512, r=64, W=128, topk=512, ih=64, idim=128, D=4096, n=4, E=256, k=6,
             I=2048, chunk=4096, ctx=(8192, 131072, 1 << 20), twin_bytes=16e9)
TINY = dict(H=4, d=64, r=16, W=8, topk=4, ih=4, idim=32, D=64, n=4, E=8, k=2, I=64, chunk=8,
            ctx=(32, 64), twin_bytes=1e8)


@dataclass
class Case:
    name: str
    run: Callable[[], object]
    ref: Callable[[], object] | None  # None: the twin's intermediates would not fit
    bytes: float
    flops: float


def _rand(*shape, dev, dtype=None, scale=1.0):
    import torch

    t = torch.randn(*shape, device=dev) * scale
    return t.to(dtype) if dtype is not None else t


def attention_cases(s: dict, dev) -> list[Case]:
    import torch

    from engine.kernels import attention as A
    from engine.kernels.rope import inv_freq
    freqs = inv_freq(s["r"], 160000.0, 16.0, 65536).to(dev)
    out = []
    for ctx in s["ctx"]:
        for kind, n_comp, n_pick in (("CSA", ctx // 4, s["topk"]), ("HCA", ctx // 128, None)):
            n = s["W"] + n_comp
            nope = s["d"] - s["r"]
            kv = A.KVFp8(_rand(n, nope, dev=dev).to(torch.float8_e4m3fn),
                         torch.ones(n, max(nope // 64, 1), device=dev),
                         _rand(n, s["r"], dev=dev, dtype=torch.bfloat16))
            for phase, q_len in (("decode", 1), ("prefill", s["chunk"])):
                if phase == "prefill" and kind == "HCA" and ctx > s["ctx"][0]:
                    continue  # one HCA prefill case is enough: same kernel, dense index set
                pick = min(n_pick or n_comp, n_comp)
                comp = torch.randperm(n_comp, device=dev)[:pick] + s["W"]
                row = torch.cat((torch.arange(s["W"], device=dev), comp)).int()
                idx = row.expand(q_len, -1).contiguous()
                q = _rand(q_len, s["H"], s["d"], dev=dev, dtype=torch.bfloat16)
                sink = torch.zeros(s["H"], device=dev)
                k = idx.shape[1]
                rows = min(q_len * k, n) if phase == "decode" else n
                byt = (rows * (nope + 4 * kv.scale.shape[1] + 2 * s["r"]) + 4 * q.numel()
                       + 4 * q_len * k)
                fits = 4 * q_len * s["H"] * n * 3 < s["twin_bytes"]
                pos = torch.full((q_len,), ctx - 1, device=dev) - torch.arange(q_len, device=dev)
                args = (q, kv, idx, sink, 0.04, (pos.flip(0), freqs))  # + fused inverse RoPE
                out.append(Case(f"attention {kind} {phase} ctx={ctx}",
                                partial(A.gather_attention, *args),
                                partial(A.gather_attention_ref, *args) if fits else None,
                                byt, 4.0 * q_len * s["H"] * k * s["d"]))
    return out


def indexer_cases(s: dict, dev) -> list[Case]:
    import torch

    from engine import quant
    from engine.kernels import indexer as I
    out = []
    for ctx in s["ctx"]:
        n = ctx // 4
        packed, sc = quant.quantize_fp4_weight(_rand(n, s["idim"], dev=dev))
        keys = I.KeysFp4(packed, sc.float())
        for phase, q_len in (("decode", 1), ("prefill", s["chunk"])):
            q = _rand(q_len, s["ih"], s["idim"], dev=dev, dtype=torch.bfloat16)
            w = _rand(q_len, s["ih"], dev=dev)
            lim = torch.full((q_len,), n, dtype=torch.int32, device=dev)
            fits = 4 * q_len * s["ih"] * n * 2 < s["twin_bytes"]
            args = (q, keys, w, lim)
            out.append(Case(f"indexer {phase} ctx={ctx}", partial(I.index_scores, *args),
                            partial(I.index_scores_ref, *args) if fits else None,
                            n * (s["idim"] // 2 + s["idim"] // 8) + 4 * q_len * n,
                            2.0 * q_len * s["ih"] * s["idim"] * n))
    return out


def compressor_cases(s: dict, dev) -> list[Case]:
    from engine.kernels import cache_insert as CI
    from engine.kernels import compressor as C
    from engine.kernels.rope import inv_freq
    out = []
    for kind, ratio, slots in (("CSA", 4, 8), ("HCA", 128, 128)):
        for phase, windows in (("decode", 1), ("prefill", max(s["chunk"] // ratio, 1))):
            kv, gate = (_rand(windows, slots, s["d"], dev=dev) for _ in range(2))
            out.append(Case(f"compressor pool {kind} {phase}", partial(C.pool, kv, gate),
                            partial(C.pool_ref, kv, gate),
                            8 * kv.numel() + 4 * windows * s["d"], 4.0 * kv.numel()))
    import torch

    freqs = inv_freq(s["r"], 160000.0, 16.0, 65536).to(dev)
    for phase, rows in (("decode", 1), ("prefill", s["chunk"])):
        x, w = _rand(rows, s["d"], dev=dev), _rand(s["d"], dev=dev)
        pos = torch.arange(rows, device=dev)
        args = (x, w, 1e-6, pos, freqs, 64)
        out.append(Case(f"norm+rope+fp8 {phase}", partial(CI.norm_rope, *args),
                        partial(CI.norm_rope_ref, *args),
                        8.0 * x.numel(), 10.0 * x.numel()))
    return out


def mhc_cases(s: dict, dev) -> list[Case]:
    import torch

    from engine.kernels import mhc as M
    n, D = s["n"], s["D"]
    m = (2 + n) * n
    fn, base, scale = _rand(m, n * D, dev=dev, scale=0.01), _rand(m, dev=dev), _rand(3, dev=dev)
    out = []
    for phase, rows in (("decode", 1), ("prefill", s["chunk"])):
        x = _rand(rows, n, D, dev=dev, dtype=torch.bfloat16)
        y = _rand(rows, D, dev=dev, dtype=torch.bfloat16)
        post, comb = _rand(rows, n, dev=dev), torch.rand(rows, n, n, device=dev)
        args = (x, fn, base, scale, 20, 1e-6, 1e-6)
        out.append(Case(f"mhc pre {phase}", partial(M.hc_pre, *args), partial(M.hc_pre_ref, *args),
                        2 * x.numel() * 2 + 4 * fn.numel() + 2 * y.numel(), 2.0 * rows * m * n * D))
        args = (y, x, post, comb)
        out.append(Case(f"mhc post {phase}", partial(M.hc_post, *args),
                        partial(M.hc_post_ref, *args),
                        2 * (2 * x.numel() + y.numel()), 2.0 * rows * n * n * D))
    return out


def gemm_cases(s: dict, dev) -> list[Case]:
    import torch

    from engine import quant
    from engine.kernels import gemm_fp8 as G
    from engine.kernels import moe_fp4 as MO
    out = []
    shapes = (("wq_a", s["D"] // 4, s["D"]), ("wq_b", s["H"] * s["d"], s["D"] // 4))
    for name, n, k in shapes:
        w, sc = quant.quantize_fp8_weight(_rand(n, k, dev=dev, scale=0.02))
        for phase, rows in (("decode", 1), ("prefill", s["chunk"])):
            x = _rand(rows, k, dev=dev, dtype=torch.bfloat16)
            args = (x, w, sc, "fp8", True)
            out.append(Case(f"fp8 gemm {name} {phase}", partial(G.linear, *args),
                            partial(G.linear_ref, *args),
                            n * k + 2 * rows * (k + n), 2.0 * rows * n * k))
    E, D, inter, top = s["E"], s["D"], s["I"], s["k"]
    ws = {nm: quant.quantize_fp4_weight(_rand(E, o, i, dev=dev, scale=0.02))
          for nm, (o, i) in {"w1": (inter, D), "w2": (D, inter), "w3": (inter, D)}.items()}
    for phase, rows in (("decode", 1), ("prefill", s["chunk"])):
        x = _rand(rows, D, dev=dev, dtype=torch.bfloat16)
        ids = torch.rand(rows, E, device=dev).topk(top, -1).indices
        wt = torch.rand(rows, top, device=dev)
        touched = min(E, rows * top)
        args = (x, ids, wt, ws, "fp4", True, 10.0, True)
        out.append(Case(f"moe fp4 {phase}", partial(MO.experts, *args),
                        partial(MO.experts_ref, *args),
                        touched * 3 * inter * D * (0.5 + 1 / 32) + 2 * rows * D * 2,
                        2.0 * rows * top * 3 * inter * D))
    return out


GROUPS = {"attention": attention_cases, "indexer": indexer_cases,
          "compressor": compressor_cases, "mhc": mhc_cases, "gemm": gemm_cases}


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _time(fn, cuda: bool) -> float:
    """Milliseconds per call: triton's do_bench on GPU, one timed call on the CPU."""
    if cuda:
        from triton.testing import do_bench

        return do_bench(fn, warmup=5, rep=30)
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def _err(a, b) -> float:
    a, b = _first(a).float(), _first(b).float()
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item() if b.numel() else 0.0


def run(cases: list[Case], cuda: bool, bw: float, peak: float, tol: float) -> bool:
    """Print one line per case; False when a kernel is further than `tol` from its twin."""
    head = (f"{'op':34} {'kernel ms':>10} {'twin ms':>9} {'twin/kern':>9} {'roof ms':>8} "
            f"{'kern/roof':>9} {'bound':>5} {'rel err':>8}")
    print(f"{head}\n{'-' * len(head)}", flush=True)
    ok = True
    for c in cases:
        t = _time(c.run, cuda)
        roof_mem, roof_cmp = c.bytes / bw * 1e3, c.flops / peak * 1e3
        roof = max(roof_mem, roof_cmp)
        twin = err = None
        if c.ref is not None:
            twin, err = _time(c.ref, cuda), _err(c.run(), c.ref())
        col = lambda v, f: f"{v:{f}}" if v is not None else "—"  # noqa: E731
        ok = ok and (err is None or err <= tol)
        print(f"{c.name:34} {t:10.4f} {col(twin, '9.4f'):>9} "
              f"{col(twin / t if twin else None, '9.2f'):>9} {roof:8.4f} {t / roof:9.2f} "
              f"{'mem' if roof_mem >= roof_cmp else 'flop':>5} {col(err, '8.1e'):>8}", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true",
                    help="tiny shapes on the CPU Triton interpreter (a smoke test; times mean "
                         "nothing)")
    ap.add_argument("--small", action="store_true",
                    help="the dry run's tiny shapes, on the GPU (a quick correctness check)")
    ap.add_argument("--tol", type=float, default=5e-2,
                    help="largest max|kernel − twin| / max|twin| accepted (default 5e-2: bf16 "
                         "outputs); exit 1 beyond it")
    ap.add_argument("--only", choices=sorted(GROUPS), action="append", help="run these groups")
    ap.add_argument("--bw", type=float, help="HBM bytes/s (default: from the device name)")
    ap.add_argument("--peak", type=float, help="dense bf16 FLOP/s (default: from the device name)")
    a = ap.parse_args(argv)
    if a.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is first imported
    import torch

    cuda = torch.cuda.is_available() and not a.dry_run
    if not cuda and not a.dry_run:
        print("no CUDA device: bench/kernels.py measures GPU kernels; nothing was measured. "
              "Use --dry-run for the CPU-interpreter smoke test.")
        return 0
    from engine.kernels import registry

    dev, shapes = ("cuda" if cuda else "cpu"), (FLASH if cuda and not a.small else TINY)
    name = torch.cuda.get_device_name() if cuda else "CPU (Triton interpreter, dry run)"
    bw, peak = next((v for k, v in PEAKS.items() if k in name), (3.35e12, 989e12))
    bw, peak = a.bw or bw, a.peak or peak
    print(f"device: {name}; roofline from {bw / 1e12:.2f} TB/s and {peak / 1e12:.0f} TFLOP/s"
          + (" (dry run: times mean nothing)" if not cuda else ""))
    torch.manual_seed(0)
    ok = True
    with registry.use("triton"), torch.no_grad():
        for g in a.only or list(GROUPS):
            ok = run(GROUPS[g](shapes, dev), cuda, bw, peak, a.tol) and ok
    if not ok:
        print(f"FAIL: a kernel differs from its twin by more than {a.tol:g} (rel err column)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
