"""Memory plan: which placement of a checkpoint fits the GPUs at hand. Pure arithmetic on byte
counts read from safetensors headers (no torch, so `flashcode doctor` can call it).

Plans, tried in order:
  single-gpu       everything on cuda:0
  multi-gpu        blocks in order over cuda:0..n-1 (`--device-map`), embed on the first GPU,
                   the head on the last
  experts-in-host  everything but the routed experts on the GPU(s); the routed experts stay in
                   host memory and are streamed / computed there (the Flash checkpoint is about
                   149 GiB, 137 of them routed experts; one H200 holds about 139 GiB)
  none             not even that fits
Every GPU keeps `reserve` bytes free for the KV cache and activations.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

GIB = 2**30
RESERVE = 8 * GIB  # per GPU: KV cache, activations, CUDA context
_LAYER = re.compile(r"^(layers|mtp)\.(\d+)\.")
_EXPERT = re.compile(r"\.ffn\.experts\.\d+\.")


@dataclass
class Weights:
    """Stored bytes by placement unit: `blocks` maps 'layers.3' / 'mtp.0' to its bytes without
    routed experts; `experts` the routed experts' bytes per block; `other` embed/head/norms."""
    blocks: dict[str, int] = field(default_factory=dict)
    experts: dict[str, int] = field(default_factory=dict)
    other: int = 0

    @property
    def total(self) -> int:
        return self.other + sum(self.blocks.values()) + sum(self.experts.values())

    def add(self, name: str, nbytes: int) -> None:
        m = _LAYER.match(name)
        if m is None:
            self.other += nbytes
            return
        unit = f"{m.group(1)}.{m.group(2)}"
        table = self.experts if _EXPERT.search(name) else self.blocks
        table[unit] = table.get(unit, 0) + nbytes


def read_weights(ckpt: str | Path) -> Weights:
    """Bytes of every tensor in every *.safetensors shard of `ckpt`, from the headers only."""
    w = Weights()
    for shard in sorted(Path(ckpt).glob("*.safetensors")):
        with open(shard, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                start, end = info["data_offsets"]
                w.add(name, end - start)
    return w


def available_memory() -> int | None:
    """Bytes of host memory available to allocate now, None where the OS does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def flash_estimate(n_layers: int = 43, experts: int = 256, dim: int = 4096, inter: int = 2048,
                   total: int = 149 * GIB) -> Weights:
    """The Flash release without its files: MXFP4 routed experts (½ byte + 1/32 scale byte per
    weight), the rest spread evenly over the blocks."""
    per_block_experts = int(experts * 3 * dim * inter * (0.5 + 1 / 32))
    w = Weights(other=2 * 129280 * dim * 2)  # embed + head, bf16
    rest = total - w.other - n_layers * per_block_experts
    for i in range(n_layers):
        w.blocks[f"layers.{i}"] = rest // n_layers
        w.experts[f"layers.{i}"] = per_block_experts
    return w


@dataclass
class Plan:
    name: str                    # single-gpu | multi-gpu | experts-in-host | none
    fits: bool
    detail: str
    device_map: dict[str, str] = field(default_factory=dict)  # unit -> 'cuda:i' | 'cpu'


def _pack(units: dict[str, int], other: int, gpus: list[int], reserve: int) -> dict | None:
    """Blocks in order onto GPUs, moving on when one is full; None when they do not fit."""
    free = [g - reserve for g in gpus]
    if not free or other > free[0]:
        return None
    free[0] -= other
    out, i = {}, 0
    for unit, nbytes in units.items():
        while i < len(free) and nbytes > free[i]:
            i += 1
        if i == len(free):
            return None
        free[i] -= nbytes
        out[unit] = f"cuda:{i}"
    return out


def plan(w: Weights, gpus: list[int], host: int, reserve: int = RESERVE) -> Plan:
    """The first plan that fits `gpus` (bytes each) and `host` memory (bytes)."""
    whole = {u: w.blocks.get(u, 0) + w.experts.get(u, 0) for u in {**w.blocks, **w.experts}}
    whole = dict(sorted(whole.items(), key=_order))
    need = f"{w.total / GIB:.0f} GiB of weights"
    if gpus and w.total + reserve <= gpus[0]:
        return Plan("single-gpu", True, f"{need} fit on cuda:0",
                    dict.fromkeys(whole, "cuda:0"))
    m = _pack(whole, w.other, gpus, reserve) if len(gpus) > 1 else None
    if m is not None:
        return Plan("multi-gpu", True, f"{need} over {len(gpus)} GPUs (--device-map)", m)
    dense = dict(sorted(w.blocks.items(), key=_order))
    experts = sum(w.experts.values())
    m = _pack(dense, w.other, gpus, reserve)
    if m is not None and experts <= host * 0.9:
        m.update({f"{u}.ffn.experts": "cpu" for u in w.experts})
        return Plan("experts-in-host", True, f"{need}: {experts / GIB:.0f} GiB of routed "
                    f"experts in host memory, the rest ({(w.total - experts) / GIB:.0f} GiB) on "
                    f"{len(gpus)} GPU(s); decode is bound by host memory bandwidth", m)
    have = sum(gpus) / GIB
    return Plan("none", False, f"{need} do not fit {len(gpus)} GPU(s) with {have:.0f} GiB "
                f"and {host / GIB:.0f} GiB of host memory")


def _order(item: tuple[str, int]) -> tuple[int, int]:
    kind, idx = item[0].split(".")
    return (kind == "mtp", int(idx))


def parse_device_map(text: str) -> dict[str, str]:
    """`--device-map` 'layers.0-20=cuda:0,layers.21-42=cuda:1,mtp.0=cuda:1' -> unit -> device."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        units, _, device = part.partition("=")
        kind, _, span = units.partition(".")
        if not device or kind not in ("layers", "mtp") or not span:
            raise ValueError(f"--device-map: cannot read {part!r}; write e.g. layers.0-20=cuda:0")
        lo, _, hi = span.partition("-")
        for i in range(int(lo), int(hi or lo) + 1):
            out[f"{kind}.{i}"] = device
    return out


def spans(units: list[tuple[str, str]]) -> list[str]:
    """[(unit, tag)] in order -> 'kind.lo-hi' per run of consecutive units of one kind and
    tag, with '=tag' when the tag is not empty: [('layers.0', 'a'), ('layers.1', 'a')] ->
    ['layers.0-1=a']."""
    runs: list[list] = []  # [kind, lo, hi, tag]
    for unit, tag in units:
        kind, i = unit.split(".")
        if runs and runs[-1][0] == kind and runs[-1][2] == int(i) - 1 and runs[-1][3] == tag:
            runs[-1][2] = int(i)
        else:
            runs.append([kind, int(i), int(i), tag])
    return [f"{k}.{a}" + (f"-{b}" if b > a else "") + (f"={t}" if t else "")
            for k, a, b, t in runs]


def to_spec(device_map: dict[str, str]) -> str:
    """The `--device-map` text for a plan's map: 'layers.0-20=cuda:0,...,experts=cpu'."""
    parts = spans(sorted(((u, d) for u, d in device_map.items() if u.count(".") == 1),
                         key=_order))
    host = {d for u, d in device_map.items() if u.endswith(".ffn.experts")}
    if len(host) == 1:
        parts.append(f"experts={host.pop()}")
    return ",".join(parts)
