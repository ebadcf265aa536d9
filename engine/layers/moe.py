"""V4 MoE: sqrt-softplus affinities; hash routing (tid2eid) in the first layers, top-k on
affinity + bias (selection only) after; weights normalised and scaled; routed experts with a
clamped SwiGLU; one shared expert.

Routed experts are stacked: w1/w3 [E, I, D], w2 [E, D, I] in the checkpoint's format (FP4
packed [E, out, in/2] + scales [E, out, in/32]); the loader fills expert e's slice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine import offload
from engine.config import ModelConfig
from engine.kernels import fused_cpu, registry
from engine.kernels.gemv_f16 import usable
from engine.kernels.moe_fp4 import experts_ref, swiglu
from engine.kernels.scalars import f32, scalar
from engine.layers.linear import Half, Linear, dequant, project, rows_at, weight_shapes
from engine.layers.ops import fp8_roundtrip
from engine.numerics import Numerics


def route_scores(logits: torch.Tensor, func: str) -> torch.Tensor:
    if func == "sqrtsoftplus":
        return F.softplus(logits).sqrt()
    if func == "sigmoid":
        return logits.sigmoid()
    return logits.softmax(-1)


def route(scores: torch.Tensor, ids: torch.Tensor, scale: float) -> torch.Tensor:
    """Weights of the chosen experts: s[E] / Σ s[E] · route_scale.  [S, E] -> [S, k]."""
    w = scores.gather(1, ids)
    return w / (w.sum(-1, keepdim=True) + scalar(1e-20, w)) * scalar(scale, w)


class Gate(nn.Module):
    """`weight` [E, D]; `bias` [E] (score-routed) or `tid2eid` [vocab, k] (hash-routed)."""

    def __init__(self, cfg: ModelConfig, hashed: bool, numerics: Numerics):
        super().__init__()
        self.cfg, self.hashed = cfg, hashed
        self.weight = nn.Parameter(torch.zeros(cfg.n_routed_experts, cfg.dim,
                                               dtype=torch.bfloat16), requires_grad=False)
        if hashed:
            self.tid2eid = nn.Parameter(torch.zeros(cfg.vocab_size, cfg.n_activated_experts,
                                                    dtype=torch.int64), requires_grad=False)
        else:
            self.bias = nn.Parameter(torch.zeros(cfg.n_routed_experts), requires_grad=False)
        # float32 copy of `weight` (engine.weights.placement)
        self.resident: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, tokens: torch.Tensor):
        """x [S, D] -> (expert ids [S, k], weights [S, k])."""
        w = self.resident if self.resident is not None else self.weight.float()
        xf = x if x.dtype == torch.float32 else x.float()
        scores = route_scores(torch.mm(xf, w.t()), self.cfg.score_func)
        if self.hashed:
            ids = self.tid2eid[tokens]  # int64 [vocab, k]
        else:
            ids = (scores + self.bias).topk(self.cfg.n_activated_experts, -1).indices
        return ids, route(scores, ids, self.cfg.route_scale)


class Experts(nn.Module):
    """Stacked routed experts: `w1`, `w2`, `w3` each with `.weight` (and `.scale`). They may
    live in host memory apart from their block (engine.weights.device_map); engine.offload runs them
    then, and counts what crossed in `traffic`."""

    stream_from = offload.STREAM_FROM

    def __init__(self, cfg: ModelConfig, numerics: Numerics):
        super().__init__()
        self.fmt, self.numerics, self.limit = cfg.expert_dtype, numerics, cfg.swiglu_limit
        e, d, i = cfg.n_routed_experts, cfg.dim, cfg.moe_inter_dim
        self.dims = (e, d, i)
        for name, (o, n) in {"w1": (i, d), "w2": (d, i), "w3": (i, d)}.items():
            ws, wd, ss = weight_shapes(self.fmt, o, n, (e,))
            self.register_parameter(f"{name}_weight", nn.Parameter(torch.empty(ws, dtype=wd),
                                                                   requires_grad=False))
            scale = None if ss is None else nn.Parameter(
                torch.empty(ss, dtype=torch.float8_e8m0fnu), requires_grad=False)
            self.register_parameter(f"{name}_scale", scale)
        self.resident: dict[str, torch.Tensor] | None = None  # name -> float [E, out, in]
        self.traffic = {"compute_bytes": 0, "streamed_bytes": 0, "streamed_experts": 0}

    def weight(self, name: str, e: int) -> torch.Tensor:
        """Expert e's `name` weight, dequantized to float32 [out, in]."""
        if self.resident is not None:
            return self.resident[name][e].float()
        s = getattr(self, f"{name}_scale")
        return dequant(self.fmt, getattr(self, f"{name}_weight")[e], None if s is None else s[e])

    def forward(self, x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """x [S, D], ids/weights [S, k] -> Σ_k weight·expert(x) [S, D], fp32 accumulation."""
        if self.w1_weight.device != x.device:
            return offload.run(self, x, ids, weights)
        if torch.compiler.is_compiling() or x.is_meta or (x.shape[0] == 1 and self._in_place()):
            return self.gathered(x, ids, weights)  # no host read of ids
        return self.at_home(x, ids, weights)

    def _in_place(self) -> bool:
        """Whether one token's experts read their fp16 copies in place, by index
        (linear.rows_at with engine/kernels/gemv_f16.py's op): three dispatches, not 3·k."""
        res = self.resident
        return isinstance(res, dict) and isinstance(res["w1"], Half) and usable(res["w1"].half)

    def _chosen(self, name: str, ids: torch.Tensor) -> torch.Tensor:
        """The chosen experts' `name` weights, float [S, k, out, in] (gathered by index)."""
        res = None if self.resident is None else self.resident[name]
        if isinstance(res, Half):
            return res.half[ids].float() * 2.0 ** res.shift
        if isinstance(res, torch.Tensor):
            return res[ids].float()
        if res is not None:
            raise RuntimeError("experts: packed resident weights cannot be gathered by index; "
                               "compiled steps need placement's plain layout")
        s = getattr(self, f"{name}_scale")
        return dequant(self.fmt, getattr(self, f"{name}_weight")[ids], None if s is None
                       else s[ids])

    def _products(self, name: str, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """x [S, k or 1, K] -> [S, k, N]: each slot's input times its expert's `name` rows
        (one token with fp16 copies: linear.rows_at, the rows read in place)."""
        res = None if self.resident is None else self.resident[name]
        if x.shape[0] == 1 and isinstance(res, Half):
            y = rows_at(f32(x[0]), res.half, ids[0])
            return (y * scalar(2.0 ** res.shift, y) if res.shift else y).unsqueeze(0)
        return (x.unsqueeze(-2) * self._chosen(name, ids)).sum(-1)

    def gathered(self, x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor):
        """`forward` with static shapes and no host read of ids, for compiled steps (a few
        tokens): each (token, slot) multiplies its expert's rows, which inductor reads once by
        index. The numerics of engine.kernels.moe_fp4.experts_ref, summed in slot order."""
        act = self.numerics.act_fp8 and self.fmt in ("fp8", "fp4")
        rnd = (lambda v: fp8_roundtrip(v, 128)) if act else (lambda v: v)
        xs = rnd(x)[:, None, :]                                           # [S, 1, D]
        h = _swiglu(self._products("w1", xs, ids), self._products("w3", xs, ids),
                    self.limit)                                           # [S, k, I]
        wt = f32(weights.unsqueeze(-1))
        if self.numerics.weight_before_w2:
            h = h * wt
        y = self._products("w2", rnd(h if h.dtype == x.dtype else h.to(x.dtype)), ids)
        if not self.numerics.weight_before_w2:
            y = y * wt                                                    # [S, k, D]
        return f32(y).sum(1)

    def at_home(self, x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """`forward` with everything on the experts' own device."""
        if self.resident is not None:  # the twin reads scale-less weights as dequantized
            w = {n: (_widened(self.resident[n]), None) for n in ("w1", "w2", "w3")}
            op = experts_ref
        else:
            w = {n: (getattr(self, f"{n}_weight"), getattr(self, f"{n}_scale"))
                 for n in ("w1", "w2", "w3")}
            op = registry.get("moe_fp4.experts", x.device)
        return op(x, ids, weights, w, self.fmt, self.numerics.act_fp8, self.limit,
                  self.numerics.weight_before_w2)


def _swiglu(a: torch.Tensor, b: torch.Tensor, limit: float) -> torch.Tensor:
    """moe_fp4.swiglu, as one fused op in an eager float32 CPU step (kernels/fused_cpu.py)
    for a few tokens (its exp is libm's, one value at a time: torch's vector form wins on a
    prefill chunk)."""
    if a.numel() <= 16384 and fused_cpu.ready(a, b):
        return fused_cpu.swiglu(a, b, limit)
    return swiglu(a, b, limit)


class _Widened:
    """A Half stack read one expert at a time, as the twin reads a stack: [e] -> float32."""

    def __init__(self, h: Half):
        self.h = h

    def __getitem__(self, e) -> torch.Tensor:
        return self.h.half[e].float() * 2.0 ** self.h.shift


def _widened(w):
    return _Widened(w) if isinstance(w, Half) else w


class SharedExpert(nn.Module):
    def __init__(self, cfg: ModelConfig, numerics: Numerics):
        super().__init__()
        f, d, i = cfg.weight_dtype, cfg.dim, cfg.moe_inter_dim * cfg.n_shared_experts
        self.w1, self.w2, self.w3 = (Linear(d, i, f, numerics), Linear(i, d, f, numerics),
                                     Linear(d, i, f, numerics))
        self.numerics, self.limit = numerics, cfg.swiglu_limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        limit = self.limit if self.numerics.shared_clamp else 0.0
        return self.w2(_swiglu(*project(x, (self.w1, self.w3)), limit))


class MoE(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int, numerics: Numerics):
        super().__init__()
        self.gate = Gate(cfg, cfg.is_hash(layer), numerics)
        self.experts = Experts(cfg, numerics)
        self.shared_experts = SharedExpert(cfg, numerics) if cfg.n_shared_experts else None

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        ids, w = self.gate(x, tokens)
        y = self.experts(x, ids, w)
        if self.shared_experts is not None:
            y = y + self.shared_experts(x)  # fp32 accumulation (promotes a narrower x)
        return y if y.dtype == x.dtype else y.to(x.dtype)

