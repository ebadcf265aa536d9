"""Kernel benchmark: each Triton kernel against its plain-PyTorch twin (measured in the same
run, on the same GPU) and against its roofline, max(bytes moved ÷ HBM bandwidth, FLOPs ÷ peak),
at DeepSeek-V4-Flash shapes: decode batch 1 at 8K, 128K and 1M context, prefill chunks of 4K.

    python bench/kernels.py                 # needs CUDA; says so and exits 0 without it
    python bench/kernels.py --dry-run       # tiny shapes on the CPU interpreter: a smoke test
    python bench/kernels.py --only attention --bw 4.8e12 --peak 989e12
    python bench/kernels.py --compile-only --arch 80,89,90,100   # no GPU needed

Columns: kernel and twin time (ms), twin/kernel (speed-up), roofline time, kernel/roofline
(1.0 = at the roofline), max |kernel − twin| / max |twin| where the twin ran. A twin whose
intermediates would not fit (dense [S, H, N] scores at 1M context) is skipped and says so.
The peak is dense bf16 tensor FLOP/s; the indexer kernel dots in tf32.

--compile-only builds every case for each arch with Triton's compiler and ptxas through
engine/kernels/standin.py (inputs are untouched `torch.empty` tensors: nothing runs), one row
per kernel launch: registers, spilled bytes, shared memory (bytes, share of a block's limit),
warps, pipeline stages, resident blocks per SM, programs, waves (programs ÷ SMs × blocks),
autotune configs built, and the predicted (roofline) time of the case at the arch's HBM
bandwidth and bf16 peak, which a GPU run of this bench is compared with. Exit 1 on a compile
error, a spill, or shared memory over the limit (attention and MoE: over 60 % of it) in any
build, autotune candidates included.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import product
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# (HBM bytes/s, dense bf16 FLOP/s) by device-name fragment
PEAKS = {"H200": (4.8e12, 989e12), "H100": (3.35e12, 989e12), "H800": (3.35e12, 989e12),
         "A100": (2.039e12, 312e12), "L40S": (0.864e12, 362e12), "4090": (1.008e12, 165e12)}
FLASH = dict(H=64, d=512, r=64, W=128, topk=512, ih=64, idim=128, D=4096, n=4, E=256, k=6,
             I=2048, chunk=4096, ctx=(8192, 131072, 1 << 20), twin_bytes=16e9)
HOT_SMEM = 0.6  # --compile-only: the hottest kernels (attention, MoE) leave room to co-reside
TINY = dict(H=4, d=64, r=16, W=8, topk=4, ih=4, idim=32, D=64, n=4, E=8, k=2, I=64, chunk=8,
            ctx=(32, 64), twin_bytes=1e8)


@dataclass
class Case:
    name: str
    run: Callable[[], object]
    ref: Callable[[], object] | None  # None: the twin's intermediates would not fit
    bytes: float
    flops: float
    op: str = ""  # the registry's name for it, where the registry may run the twin instead
    smem: float = 1.0  # --compile-only: the share of a block's shared memory it may use


class Make:
    """Inputs on `dev`: random ones to time and compare, or, for --compile-only, untouched
    `torch.empty` ones of the same dtype, shape and strides (the launch compiles and runs
    nothing, so even 1M-context and all-256-expert tensors cost no host memory)."""

    def __init__(self, dev, empty: bool = False):
        self.dev, self.empty = dev, empty

    def rand(self, *shape, dtype=None, scale=1.0):
        import torch

        if self.empty:
            return torch.empty(*shape, dtype=dtype or torch.float32, device=self.dev)
        t = torch.randn(*shape, device=self.dev) * scale
        return t.to(dtype) if dtype is not None else t

    def weight(self, fmt: str, *shape, scale=0.02):
        """(codes, scales) of an fp8 or fp4 weight [..., out, in]."""
        import torch

        from engine import quant
        if not self.empty:
            q = quant.quantize_fp8_weight if fmt == "fp8" else quant.quantize_fp4_weight
            return q(self.rand(*shape, scale=scale))
        *lead, o, i = shape
        if fmt == "fp8":
            return (self.rand(*shape, dtype=torch.float8_e4m3fn),
                    self.rand(*lead, *quant.fp8_scale_shape(o, i), dtype=torch.float8_e8m0fnu))
        return (self.rand(*lead, o, i // 2, dtype=torch.int8),
                self.rand(*lead, o, i // 32, dtype=torch.float8_e8m0fnu))


def attention_cases(s: dict, mk: Make) -> list[Case]:
    import torch

    from engine.kernels import attention as A
    out = []
    for ctx in s["ctx"]:
        for kind, n_comp, n_pick in (("CSA", ctx // 4, s["topk"]), ("HCA", ctx // 128, None)):
            n, nope = s["W"] + n_comp, s["d"] - s["r"]
            kvs = {"": A.KVFp8(mk.rand(n, nope, dtype=torch.float8_e4m3fn),
                               torch.ones(n, max(nope // 64, 1), device=mk.dev),
                               mk.rand(n, s["r"], dtype=torch.bfloat16))}
            if kind == "CSA" and ctx == s["ctx"][0]:  # the model's bf16 rows (today's path)
                kvs["rows "] = mk.rand(n, s["d"], dtype=torch.bfloat16)
            for (fmt, kv), (phase, q_len) in product(kvs.items(), (("decode", 1),
                                                                 ("prefill", s["chunk"]))):
                if phase == "prefill" and kind == "HCA" and ctx > s["ctx"][0]:
                    continue  # one HCA prefill case is enough: same kernels, dense index set
                out.append(_attention_case(s, mk, f"attention {kind} {fmt}{phase} ctx={ctx}", kv,
                                           ctx, q_len, n_comp, min(n_pick or n_comp, n_comp)))
    return out


def _attention_case(s: dict, mk: Make, name: str, kv, ctx: int, q_len: int, n_comp: int,
                    pick: int) -> Case:
    """q_len queries attending the window and `pick` of the `n_comp` compressed rows."""
    import torch

    from engine.kernels import attention as A
    from engine.kernels.rope import inv_freq
    dev, n = mk.dev, s["W"] + n_comp
    comp = torch.randperm(n_comp, device=dev)[:pick] + s["W"]
    idx = torch.cat((torch.arange(s["W"], device=dev), comp)).int().expand(q_len, -1)
    q = mk.rand(q_len, s["H"], s["d"], dtype=torch.bfloat16)
    k = idx.shape[1]
    row_bytes = (kv.nope.shape[1] + 4 * kv.scale.shape[1] + 2 * s["r"]
                 if isinstance(kv, A.KVFp8) else kv.element_size() * s["d"])
    rows = min(q_len * k, n) if q_len == 1 else n
    fits = 4 * q_len * s["H"] * n * 3 < s["twin_bytes"]
    pos = torch.full((q_len,), ctx - 1, device=dev) - torch.arange(q_len, device=dev)
    freqs = inv_freq(s["r"], 160000.0, 16.0, 65536).to(dev)
    args = (q, kv, idx.contiguous(), torch.zeros(s["H"], device=dev), 0.04,
            (pos.flip(0), freqs))  # + the fused inverse RoPE
    return Case(name, partial(A.gather_attention, *args),
                partial(A.gather_attention_ref, *args) if fits else None,
                rows * row_bytes + 4 * q.numel() + 4 * q_len * k,
                4.0 * q_len * s["H"] * k * s["d"], smem=HOT_SMEM)


def indexer_cases(s: dict, mk: Make) -> list[Case]:
    dev = mk.dev
    import torch

    from engine.kernels import indexer as I
    out = []
    for ctx in s["ctx"]:
        n = ctx // 4
        packed, sc = mk.weight("fp4", n, s["idim"], scale=1.0)
        keys = I.KeysFp4(packed, sc.float())
        for phase, q_len in (("decode", 1), ("prefill", s["chunk"])):
            q = mk.rand(q_len, s["ih"], s["idim"], dtype=torch.bfloat16)
            w = mk.rand(q_len, s["ih"])
            lim = torch.full((q_len,), n, dtype=torch.int32, device=dev)
            fits = 4 * q_len * s["ih"] * n * 2 < s["twin_bytes"]
            args = (q, keys, w, lim)
            out.append(Case(f"indexer {phase} ctx={ctx}", partial(I.index_scores, *args),
                            partial(I.index_scores_ref, *args) if fits else None,
                            n * (s["idim"] // 2 + s["idim"] // 8) + 4 * q_len * n,
                            2.0 * q_len * s["ih"] * s["idim"] * n))
    return out


def compressor_cases(s: dict, mk: Make) -> list[Case]:
    dev = mk.dev
    from engine.kernels import cache_insert as CI
    from engine.kernels import compressor as C
    from engine.kernels.rope import inv_freq
    out = []
    for kind, ratio, slots in (("CSA", 4, 8), ("HCA", 128, 128)):
        for phase, windows in (("decode", 1), ("prefill", max(s["chunk"] // ratio, 1))):
            kv, gate = (mk.rand(windows, slots, s["d"]) for _ in range(2))
            out.append(Case(f"compressor pool {kind} {phase}", partial(C.pool, kv, gate),
                            partial(C.pool_ref, kv, gate),
                            8 * kv.numel() + 4 * windows * s["d"], 4.0 * kv.numel()))
    import torch

    freqs = inv_freq(s["r"], 160000.0, 16.0, 65536).to(dev)
    for phase, rows in (("decode", 1), ("prefill", s["chunk"])):
        x, w = mk.rand(rows, s["d"]), mk.rand(s["d"])
        pos = torch.arange(rows, device=dev)
        args = (x, w, 1e-6, pos, freqs, 64)
        out.append(Case(f"norm+rope+fp8 {phase}", partial(CI.norm_rope, *args),
                        partial(CI.norm_rope_ref, *args),
                        8.0 * x.numel(), 10.0 * x.numel()))
    return out


def mhc_cases(s: dict, mk: Make) -> list[Case]:
    dev = mk.dev
    import torch

    from engine.kernels import mhc as M
    n, D = s["n"], s["D"]
    m = (2 + n) * n
    fn, base, scale = mk.rand(m, n * D, scale=0.01), mk.rand(m), mk.rand(3)
    out = []
    for phase, rows in (("decode", 1), ("prefill", s["chunk"])):
        x = mk.rand(rows, n, D, dtype=torch.bfloat16)
        y = mk.rand(rows, D, dtype=torch.bfloat16)
        post, comb = mk.rand(rows, n), torch.rand(rows, n, n, device=dev)
        args = (x, fn, base, scale, 20, 1e-6, 1e-6)
        out.append(Case(f"mhc pre {phase}", partial(M.hc_pre, *args), partial(M.hc_pre_ref, *args),
                        2 * x.numel() * 2 + 4 * fn.numel() + 2 * y.numel(), 2.0 * rows * m * n * D))
        args = (y, x, post, comb)
        out.append(Case(f"mhc post {phase}", partial(M.hc_post, *args),
                        partial(M.hc_post_ref, *args),
                        2 * (2 * x.numel() + y.numel()), 2.0 * rows * n * n * D))
    return out


def gemm_cases(s: dict, mk: Make) -> list[Case]:
    dev = mk.dev
    import torch

    from engine.kernels import gemm_fp8 as G
    from engine.kernels import moe_fp4 as MO
    out = []
    shapes = (("wq_a", s["D"] // 4, s["D"]), ("wq_b", s["H"] * s["d"], s["D"] // 4))
    for name, n, k in shapes:
        w, sc = mk.weight("fp8", n, k)
        for phase, rows in (("decode", 1), ("prefill", s["chunk"])):
            x = mk.rand(rows, k, dtype=torch.bfloat16)
            args = (x, w, sc, "fp8", True)
            out.append(Case(f"fp8 gemm {name} {phase}", partial(G.linear, *args),
                            partial(G.linear_ref, *args),
                            n * k + 2 * rows * (k + n), 2.0 * rows * n * k, "gemm_fp8.linear"))
    E, D, inter, top = s["E"], s["D"], s["I"], s["k"]
    ws = {nm: mk.weight("fp4", E, o, i)
          for nm, (o, i) in {"w1": (inter, D), "w2": (D, inter), "w3": (inter, D)}.items()}
    for phase, rows in (("decode", 1), ("prefill", s["chunk"])):
        x = mk.rand(rows, D, dtype=torch.bfloat16)
        ids = torch.rand(rows, E, device=dev).topk(top, -1).indices
        wt = torch.rand(rows, top, device=dev)
        touched = min(E, rows * top)
        args = (x, ids, wt, ws, "fp4", True, 10.0, True)
        out.append(Case(f"moe fp4 {phase}", partial(MO.experts, *args),
                        partial(MO.experts_ref, *args),
                        touched * 3 * inter * D * (0.5 + 1 / 32) + 2 * rows * D * 2,
                        2.0 * rows * top * 3 * inter * D, smem=HOT_SMEM))
    return out


GROUPS = {"attention": attention_cases, "indexer": indexer_cases,
          "compressor": compressor_cases, "mhc": mhc_cases, "gemm": gemm_cases}


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _time(fn, cuda: bool) -> float:
    """ms a call: do_bench on GPU (after an untimed call: compile, autotune), one CPU call."""
    if cuda:
        from triton.testing import do_bench

        fn()
        return do_bench(fn, warmup=5, rep=30)
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def _err(a, b) -> float:
    a, b = _first(a).float(), _first(b).float()
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item() if b.numel() else 0.0


def run(cases: list[Case], cuda: bool, bw: float, peak: float, tol: float) -> bool:
    """Print one line per case; False when a kernel is further than `tol` from its twin."""
    head = (f"{'op':36} {'kernel ms':>10} {'twin ms':>9} {'twin/kern':>9} {'roof ms':>8} "
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
        print(f"{c.name:36} {t:10.4f} {col(twin, '9.4f'):>9} "
              f"{col(twin / t if twin else None, '9.2f'):>9} {roof:8.4f} {t / roof:9.2f} "
              f"{'mem' if roof_mem >= roof_cmp else 'flop':>5} {col(err, '8.1e'):>8}", flush=True)
    return ok


def _compile_rows(c: Case, cc: int) -> tuple[list[str], list[str]]:
    """Build one case for sm_`cc` through the stand-in driver: a row per kernel launch (what
    ran; autotune candidates are checked, not listed) and the problems found in any build."""
    from engine.kernels import registry, standin

    if cc < registry.NEEDS_CC.get(c.op, 0):
        return [f"{c.name:36} needs sm_{registry.NEEDS_CC[c.op]}+ (e4m3): on sm_{cc} the "
                "registry runs its twin"], []
    with standin.target(cc) as rec:
        try:
            c.run()
        except Exception as e:  # a compile error: report it, go on with the other cases
            rec.errors.append(standin.error_line(e))
    roof = max(c.bytes / rec.arch.bw, c.flops / rec.arch.peak) * 1e3
    rows, seen, tuned = [], set(), set()
    for ln in rec.launches:
        if ln.tuning:  # the autotuner's candidates for the launch that follows
            tuned.add(id(ln.build))
            continue
        n_cfg, tuned = len(tuned), set()
        if (id(ln.build), ln.grid) not in seen:
            seen.add((id(ln.build), ln.grid))
            rows.append(f"{c.name if not rows else '':36} {ln.columns()} {n_cfg or '':>4} "
                        + (f"{roof:9.4f}" if len(rows) == 0 else ""))
    return rows or [f"{c.name:36} (no kernel launched)"], [f"{c.name}: {p}"
                                                          for p in rec.problems(c.smem)]


def compile_only(archs: list[int], groups: list[str], ctx: tuple[int, ...]) -> bool:
    """--compile-only: every case at Flash shapes built for each arch, nothing run. False on
    a compile error, a spill, or shared memory over the arch's limit."""
    from engine.kernels import standin

    shapes, ok = dict(FLASH, ctx=ctx), True
    if unknown := set(archs) - set(standin.ARCHS):
        raise SystemExit(f"--arch: unknown {sorted(unknown)}; known: {sorted(standin.ARCHS)}")
    for cc in archs:
        print(f"\n{standin.ARCHS[cc]}")
        head = (f"{'op':36} {'kernel':17} {'regs':>4} {'spill':>6} {'shared':>8} {'smem':>5} "
                f"{'wrp':>3} {'stg':>3} {'b/S':>3} {'programs':>8} {'waves':>6} {'cfgs':>4} "
                f"{'pred ms':>9}")
        print(f"{head}\n{'-' * len(head)}", flush=True)
        bad: list[str] = []
        for g in groups:
            for c in GROUPS[g](shapes, Make("cpu", empty=True)):
                rows, problems = _compile_rows(c, cc)
                print("\n".join(rows), flush=True)
                bad += problems
        print("\n".join(f"FAIL sm_{cc}: {p}" for p in bad) or f"sm_{cc}: every build compiled, "
              "spill-free, within shared memory (attention, MoE: 60 %)")
        ok = ok and not bad
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
    ap.add_argument("--compile-only", action="store_true",
                    help="no GPU needed: build every kernel at Flash shapes for --arch and print "
                         "registers, spills, shared memory, occupancy and the predicted time; "
                         "exit 1 on a compile error, a spill or too much shared memory (over "
                         "60%% for attention and MoE)")
    ap.add_argument("--arch", default="90",
                    help="compute capabilities for --compile-only, comma-separated: 80, 89, 90, "
                         "100 (default 90)")
    ap.add_argument("--ctx", type=int, action="append",
                    help="context lengths for --compile-only (default: 8K, 128K and 1M)")
    a = ap.parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # triton 3.9's default, said aloud
    if a.compile_only:  # no GPU, no interpreter: builds only
        archs = [int(x) for x in a.arch.split(",")]
        return 0 if compile_only(archs, a.only or list(GROUPS), tuple(a.ctx or FLASH["ctx"])) else 1
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
            ok = run(GROUPS[g](shapes, Make(dev)), cuda, bw, peak, a.tol) and ok
    if not ok:
        print(f"FAIL: a kernel differs from its twin by more than {a.tol:g} (rel err column)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
