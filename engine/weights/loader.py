"""Load a checkpoint directory into a `Transformer`, tensor by tensor from memory-mapped
safetensors shards, by the release's names or by transformers' names.

Quantized tensors (FP8 e4m3 + e8m0 block scales, int8-packed MXFP4 + e8m0 scales) are kept as
stored; the layers dequantize per use. Unquantized tensors keep the checkpoint's float dtype
(bf16 in the release, float32 from a transformers `save_pretrained` of a float32 model).
A missing, unknown or mis-shaped tensor raises `LoadError` naming the tensor, the file and
the expected shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from engine import config as config_mod
from engine.model import Transformer
from engine.numerics import Numerics
from engine.weights import device_map as dm
from engine.weights import names

_QUANT = (torch.float8_e4m3fn, torch.float8_e8m0fnu, torch.int8, torch.int64)


class LoadError(RuntimeError):
    """The checkpoint does not fit the model; the message names tensor, file and shape."""


def shard_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / f for f in files]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise LoadError(f"{model_dir}: no *.safetensors files")
    return files


def _has_mtp(files: list[Path]) -> bool:
    for f in files:
        with safe_open(str(f), "pt") as h:
            if any(k.startswith("mtp.") for k in h.keys()):  # noqa: SIM118 (not a dict)
                return True
    return False


def build(cfg: config_mod.ModelConfig, mode: str = "official", with_mtp: bool = True,
          dtype: torch.dtype = torch.float32, device: str = "meta") -> Transformer:
    """A model with no storage (meta) whose tensors the loader replaces."""
    with torch.device(device):
        return Transformer(cfg, Numerics.of(mode), dtype, with_mtp)


@dataclass
class _Fill:
    """Which stacked-expert slices have arrived, per stacked parameter."""
    experts: dict[str, set[int]] = field(default_factory=dict)
    plain: set[str] = field(default_factory=set)
    dmap: dict[str, str] = field(default_factory=dict)  # engine.weights.device_map: unit -> device

    def device(self, name: str) -> str:
        return dm.device_of(name, self.dmap)


def load(model_dir: str | Path, mode: str = "official", dtype: torch.dtype = torch.float32,
         device_map: str | dict | None = None) -> Transformer:
    """Read config.json and every shard; return a ready model, each tensor read straight onto
    its device under `device_map` (engine.weights.device_map; default: the CPU)."""
    model_dir = Path(model_dir)
    cfg = config_mod.load(model_dir)
    files = shard_files(model_dir)
    model = build(cfg, mode, _has_mtp(files), dtype)
    params = dict(model.named_parameters())
    fill = _Fill(dmap=dm.resolve(device_map, model))
    for f in files:
        with safe_open(str(f), "pt") as h:
            for key in h.keys():  # noqa: SIM118
                _load_one(model, params, fill, key, h, f)
    _check_complete(params, fill, cfg, files)
    dm.place(model, fill.dmap)  # what the files do not hold (RoPE tables); pins host experts
    model.device_map = fill.dmap
    return model


def _load_one(model, params, fill: _Fill, key: str, h, f: Path) -> None:
    if key in HF_FUSED_SUFFIXES or any(key.endswith(s) for s in HF_FUSED_SUFFIXES):
        return _load_fused_experts(model, params, fill, key, h, f)
    name = names.resolve(key, params)
    if name is None:
        raise LoadError(f"{key} in {f.name}: unexpected tensor (no such weight in this model)")
    hit = names.split_expert(name)
    if hit is not None:
        param, e = hit
        if param not in params or e >= params[param].shape[0]:
            raise LoadError(f"{key} in {f.name}: unexpected tensor (no such expert)")
        _put_expert(model, params, fill, param, e, _checked(h, key, f, params[param][e]))
        return None
    if name not in params:
        raise LoadError(f"{key} in {f.name}: unexpected tensor (no such weight in this model)")
    _set_param(model, name, _checked(h, key, f, params[name]).to(fill.device(name)))
    fill.plain.add(name)
    return None


HF_FUSED_SUFFIXES = tuple(names.HF_EXPERTS)


def _load_fused_experts(model, params, fill, key, h, f) -> None:
    """transformers' gate_up_proj [E, 2I, D] (gate first) / down_proj [E, D, I]."""
    layer = key.split(".")[2]
    t = h.get_tensor(key)
    parts = names.HF_EXPERTS[key.split(f"layers.{layer}.", 1)[1]]
    chunks = t.chunk(len(parts), dim=1)
    for w, chunk in zip(parts, chunks, strict=True):
        param = f"layers.{layer}.ffn.experts.{w}_weight"
        if param not in params:
            raise LoadError(f"{key} in {f.name}: unexpected tensor")
        want = params[param]
        if tuple(chunk.shape) != tuple(want.shape):
            raise LoadError(f"{key} in {f.name}: {w} part has shape {list(chunk.shape)}, "
                            f"expected {list(want.shape)}")
        _set_param(model, param, chunk.contiguous().to(fill.device(param)))
        fill.experts[param] = set(range(want.shape[0]))


def _checked(h, key: str, f: Path, want: torch.Tensor) -> torch.Tensor:
    sl = h.get_slice(key)
    shape = tuple(sl.get_shape())
    if shape != tuple(want.shape):
        raise LoadError(f"{key} in {f.name}: shape {list(shape)}, expected {list(want.shape)}")
    t = h.get_tensor(key)
    if want.dtype in _QUANT and t.dtype != want.dtype:
        raise LoadError(f"{key} in {f.name}: dtype {t.dtype}, expected {want.dtype}")
    if want.dtype not in _QUANT and not t.dtype.is_floating_point:
        raise LoadError(f"{key} in {f.name}: dtype {t.dtype}, expected a float dtype")
    return t


def _set_param(model: nn.Module, name: str, t: torch.Tensor) -> None:
    mod_name, leaf = name.rsplit(".", 1) if "." in name else ("", name)
    mod = model.get_submodule(mod_name)
    mod._parameters[leaf] = nn.Parameter(t, requires_grad=False)


def _put_expert(model, params, fill: _Fill, param: str, e: int, t: torch.Tensor) -> None:
    mod_name, leaf = param.rsplit(".", 1)
    mod = model.get_submodule(mod_name)
    cur = mod._parameters[leaf]
    if cur.is_meta:  # first expert of this stack: allocate in the slice's dtype
        dev = fill.device(param)
        pin = dev == "cpu" and any(d.startswith("cuda") for d in fill.dmap.values())
        cur = nn.Parameter(torch.empty(cur.shape, dtype=t.dtype, device=dev, pin_memory=pin),
                           requires_grad=False)  # pinned: host experts copy fast to a GPU
        mod._parameters[leaf] = cur
    cur.data[e] = t
    fill.experts.setdefault(param, set()).add(e)


def _check_complete(params, fill: _Fill, cfg, files) -> None:
    where = files[0].name if len(files) == 1 else f"{files[0].parent} ({len(files)} shards)"
    for name, p in params.items():
        if names.split_expert_param(name) is not None:
            got = fill.experts.get(name, set())
            if len(got) < p.shape[0]:
                e = min(set(range(p.shape[0])) - got)
                raise LoadError(f"{names.expert_name(name, e)}: missing from {where}; expected "
                                f"shape {list(p.shape[1:])}")
        elif name not in fill.plain:
            raise LoadError(f"{name}: missing from {where}; expected shape {list(p.shape)}")


SAFETENSORS_DTYPE = {torch.bfloat16: "BF16", torch.float32: "F32", torch.float8_e4m3fn: "F8_E4M3",
                     torch.float8_e8m0fnu: "F8_E8M0", torch.int64: "I64", torch.int8: "I8",
                     torch.float16: "F16"}


def expected_tensors(model: Transformer) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every tensor a release checkpoint of this model holds: name -> (shape, dtype)."""
    out = {}
    for name, p in model.named_parameters():
        dt = SAFETENSORS_DTYPE[p.dtype]
        if names.split_expert_param(name) is None:
            out[name] = (tuple(p.shape), dt)
            continue
        for e in range(p.shape[0]):
            out[names.expert_name(name, e)] = (tuple(p.shape[1:]), dt)
    return out
