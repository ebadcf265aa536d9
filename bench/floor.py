"""The memory floor of a decode step: the bytes one token must read, over this machine's read
bandwidth measured in the same run. A step can be no faster than that; "× the floor" says how
far a measured step is from it (1.0 = memory-bound, at the machine's limit).

  bw = read_bandwidth()                   # bytes/s: the best of a few sums over 512 MiB
  need = step_bytes(model, c)             # weights as held + the KV rows read at context c
  floor_s = need / bw

What a step must read (batch 1): every weight of the main blocks, the hc/norm/gate tables and
the head, as the model holds them (resident copies where placement made them, else the stored
FP8/FP4 bytes and their scales), but only the routed experts a token picks (n_activated of
n_routed per block) and one embedding row; and the live KV rows it attends over (the window
ring, CSA's top-k compressed rows plus every indexer key, HCA's every compressed row). The MTP
block is not counted (plain decode does not run it).
"""

from __future__ import annotations

import time

import torch


def _cpu_or_wall():
    return time.perf_counter if torch.cuda.is_available() else time.process_time


def read_bandwidth(nbytes: int = 512 << 20, repeats: int = 5, device: str = "cpu") -> float:
    """Bytes per second a sum over `nbytes` of float32 reads on `device` (the best of
    `repeats`: the machine's limit, as the floor must be; CPU time on the CPU)."""
    x = torch.ones(nbytes // 4, device=device)
    clock, best = _cpu_or_wall(), float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        t = clock()
        x.sum().item()
        best = min(best, clock() - t)
    return nbytes / best


def _held(t) -> int:
    """Bytes of a weight copy as held: a tensor, a PackedF16, a Half, or a list of them."""
    if t is None:
        return 0
    if isinstance(t, (list, tuple)) and not hasattr(t, "half"):
        return sum(_held(x) for x in t)
    if hasattr(t, "nbytes") and not isinstance(t, torch.Tensor):  # PackedF16
        return t.nbytes
    if hasattr(t, "half") and not isinstance(t, torch.Tensor):    # Half
        t = t.half
    return t.numel() * t.element_size()


def _linear_bytes(lin) -> int:
    if lin.merged is not None:
        return _held(lin.merged)
    if lin.resident is not None:
        return _held(lin.resident)
    return sum(_held(p) for p in lin.parameters(recurse=False))


def _experts_bytes(mod, cfg) -> int:
    """The n_activated experts a token uses (of n_routed), as held."""
    if mod.resident is not None:
        total = sum(_held(w) for w in mod.resident.values())
    else:
        total = sum(_held(p) for p in mod.parameters(recurse=False))
    return total * cfg.n_activated_experts // cfg.n_routed_experts


def weight_bytes(model) -> int:
    """Weights one decode step reads (see the module docstring)."""
    from engine.layers.linear import Linear
    from engine.layers.moe import Experts
    from engine.weights.placement import _groups

    cfg, total = model.cfg, 0
    skip = {id(m) for m in model.mtp.modules()} | {id(model.embed)}
    skip |= {id(lin) for g in _groups(model) if g[0].merged is not None for lin in g[1:]}
    for mod in model.modules():
        if id(mod) in skip:
            continue
        if isinstance(mod, Linear):
            total += _linear_bytes(mod)
        elif isinstance(mod, Experts):
            total += _experts_bytes(mod, cfg)
        else:
            for pname, p in mod.named_parameters(recurse=False):
                if pname == "tid2eid":  # hash routing: one row of the table
                    total += p.shape[-1] * p.element_size()
                elif pname == "weight" and isinstance(getattr(mod, "resident", None),
                                                      torch.Tensor):
                    total += _held(mod.resident)  # the float copy is what is read
                else:
                    total += _held(p)
    e = model.embed.weight
    return total + e.shape[-1] * e.element_size()


def kv_bytes(model, state, c: int) -> int:
    """Live KV rows one step at context c attends over, in the state's formats."""
    cfg, total = model.cfg, 0
    for layer, s in enumerate(state.layers):
        total += s.window.nbytes()
        r = cfg.ratio(layer)
        if r == 4:
            total += s.comp.rows.nbytes(min(cfg.index_topk, c // r))
            total += s.index.rows.nbytes(c // r)
        elif r:
            total += s.comp.rows.nbytes(c // r)
    return total


def step_bytes(model, state, c: int) -> int:
    return weight_bytes(model) + kv_bytes(model, state, c)
