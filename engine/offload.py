"""Routed experts kept in host memory while their block runs on a GPU (the Flash checkpoint is
about 149 GiB, 137 of them routed experts; one H200 holds about 139 GiB).

Two ways to run them, chosen per call by the number of tokens:
  compute  (few tokens: decode, speculation) the activations go to the host, the experts run
           there on the weights where they lie, the sum comes back: a few KB each way, and
           host memory bandwidth reads only the k experts each token picked
  stream   (many tokens: prefill chunks) copy the experts that any token picked to the GPU
           and run them there; a chunk of hundreds of tokens picks most experts, and the GPU's
           arithmetic wins over copying ~3.4 GB per Flash layer over PCIe
Both give the same numbers as running at home: the same op over the same experts in the same
order (ids are remapped monotonically), only the device differs.
"""

from __future__ import annotations

import torch

from engine.kernels import registry

STREAM_FROM = 64  # tokens per call from which `stream` beats `compute`
NAMES = ("w1", "w2", "w3")


def home(experts) -> torch.device:
    """Where the routed experts' weights lie."""
    return experts.w1_weight.device


def run(experts, x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_k weight·expert(x) [S, D] fp32 on x's device, for experts living elsewhere."""
    if x.shape[0] >= experts.stream_from:
        return stream(experts, x, ids, weights)
    return compute(experts, x, ids, weights)


def _args(experts):
    return experts.fmt, experts.numerics.act_fp8, experts.limit, experts.numerics.weight_before_w2


def compute(experts, x, ids, weights) -> torch.Tensor:
    """Run at home (the host) on activations sent there; the result comes back."""
    dev = home(experts)
    y = experts.at_home(x.to(dev), ids.to(dev), weights.to(dev))
    experts.traffic["compute_bytes"] += x.numel() * x.element_size() + y.numel() * y.element_size()
    return y.to(x.device)


def stream(experts, x, ids, weights) -> torch.Tensor:
    """Copy only the experts some token picked to x's device and run them there."""
    hit = ids.unique()                      # sorted: the op visits experts in this order
    local = torch.searchsorted(hit, ids)    # ids -> 0..len(hit)-1, order kept
    idx = hit.to(home(experts))
    w, moved = {}, 0
    for n in NAMES:
        q, s = getattr(experts, f"{n}_weight"), getattr(experts, f"{n}_scale")
        q = q.index_select(0, idx).to(x.device, non_blocking=True)
        s = None if s is None else s.index_select(0, idx).to(x.device, non_blocking=True)
        moved += q.numel() * q.element_size() + (0 if s is None else s.numel() * s.element_size())
        w[n] = (q, s)
    experts.traffic["streamed_bytes"] += moved
    experts.traffic["streamed_experts"] += int(hit.numel())
    op = registry.get("moe_fp4.experts", x.device)
    return op(x, local, weights, w, *_args(experts))


def stored_bytes(experts) -> int:
    """All of one layer's routed experts as stored."""
    return sum(t.numel() * t.element_size() for n in NAMES
               for t in (getattr(experts, f"{n}_weight"), getattr(experts, f"{n}_scale"))
               if t is not None)
