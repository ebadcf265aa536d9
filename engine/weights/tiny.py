"""Random checkpoints in the release's layout and formats (`flashcode engine make-tiny`).

Weights are random but well scaled (unit-variance activations), then stored as the release
stores them: FP8 e4m3 + e8m0 128×128 block scales for dense projections, MXFP4 (int8-packed,
e8m0 per 32) for routed experts, bf16/f32 for the rest, sharded with an index file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

from engine.chat.tokenizer import V4_VOCAB, write_tiny_tokenizer, write_v4_tokenizer
from engine.config import ModelConfig
from engine.config import preset as get_preset
from engine.layers.linear import Linear, init_linear_, set_weight_
from engine.layers.moe import Experts, Gate
from engine.model import Transformer
from engine.weights import names


def random_model(cfg: ModelConfig, seed: int = 0, mode: str = "official") -> Transformer:
    """A model with every tensor filled with seeded random values in its stored format."""
    from engine.numerics import Numerics

    gen = torch.Generator().manual_seed(seed)
    model = Transformer(cfg, Numerics.of(mode))
    for mod in model.modules():
        if isinstance(mod, Linear):
            init_linear_(mod, gen)
        elif isinstance(mod, Experts):
            _init_experts(mod, cfg, gen)
        elif isinstance(mod, Gate) and mod.hashed:
            ids = torch.stack([torch.randperm(cfg.n_routed_experts, generator=gen)
                               [: cfg.n_activated_experts] for _ in range(cfg.vocab_size)])
            mod.tid2eid.data = ids
    for name, p in model.named_parameters():
        if p.dtype in (torch.float8_e4m3fn, torch.float8_e8m0fnu, torch.int8, torch.int64):
            continue
        if not _is_linear_weight(model, name):
            p.data = _random_like(name, p, gen)
    return model


def _is_linear_weight(model: Transformer, name: str) -> bool:
    owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    return isinstance(owner, (Linear, Experts))


def _random_like(name: str, p: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Scale by role: norms near 1, mixing projections unit-variance on normed inputs."""
    r = torch.randn(p.shape, generator=gen)
    leaf = name.rsplit(".", 1)[-1]
    if name.endswith("norm.weight"):
        r = 1 + 0.1 * r
    elif leaf.endswith("_fn"):
        r = r / math.sqrt(p.shape[-1])
    elif leaf.endswith("_scale"):
        r = 1 + 0.1 * r
    elif leaf.endswith("_base") or leaf in ("ape", "bias"):
        r = 0.5 * r
    elif name.endswith("gate.weight"):
        r = r / math.sqrt(p.shape[-1])
    return r.to(p.dtype)


def _init_experts(mod: Experts, cfg: ModelConfig, gen: torch.Generator) -> None:
    e, d, i = cfg.n_routed_experts, cfg.dim, cfg.moe_inter_dim
    for name, (o, n) in {"w1": (i, d), "w2": (d, i), "w3": (i, d)}.items():
        w = torch.randn(e, o, n, generator=gen) / math.sqrt(n)
        set_weight_(getattr(mod, f"{name}_weight"), getattr(mod, f"{name}_scale"), mod.fmt, w)


def official_tensors(model: Transformer) -> dict[str, torch.Tensor]:
    """Every tensor under its release name (experts unstacked), in its stored dtype."""
    out = {}
    for name, p in model.named_parameters():
        hit = names.split_expert_param(name)
        if hit is None:
            out[name] = p.data.contiguous()
            continue
        for e in range(p.shape[0]):
            out[names.expert_name(name, e)] = p.data[e].contiguous()
    return out


def write_checkpoint(model: Transformer, out: Path, shards: int = 2) -> None:
    """config.json + model-0000i-of-0000n.safetensors + model.safetensors.index.json."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = official_tensors(model)
    keys = sorted(tensors)
    weight_map = {}
    per = math.ceil(len(keys) / shards)
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: tensors[k] for k in keys[s * per:(s + 1) * per]}
        save_file(part, str(out / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, fname))
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size()
                                            for t in tensors.values())},
             "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    (out / "config.json").write_text(json.dumps(model.cfg.to_official(), indent=2))


TOKENIZERS = ("v4", "small")


def make_tiny(out: Path, preset: str = "tiny", seed: int = 0, tokenizer: str = "v4") -> Path:
    """A random checkpoint in `out`. `tokenizer`: "v4" (DeepSeek-V4's own tokenizer.json; the
    embedding gets its 129,280 rows) or "small" (a BPE trained here, as many ids as the
    preset's vocab_size: the fastest tests)."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {TOKENIZERS}, not {tokenizer!r}")
    cfg = get_preset(preset, **({"vocab_size": V4_VOCAB} if tokenizer == "v4" else {}))
    write_checkpoint(random_model(cfg, seed), Path(out))
    if tokenizer == "v4":
        write_v4_tokenizer(Path(out))
    else:
        write_tiny_tokenizer(Path(out), cfg.vocab_size)  # real BPE + V4 specials, ids < vocab
    return Path(out)


def transformers_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """The same weights under transformers' names, dequantized to float32 (no MTP)."""
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if name.startswith("mtp.") or name.endswith(".scale") and p.dtype == torch.float8_e8m0fnu:
            continue
        if names.split_expert_param(name) is not None:
            continue
        hf = names.to_transformers(name)
        if hf is None:
            raise KeyError(f"{name}: no transformers name")
        owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        t = owner.dequantized() if isinstance(owner, Linear) else p.data
        out[hf] = t if t.dtype == torch.int64 else t.float()
    for i, blk in enumerate(model.layers):
        ex = blk.ffn.experts
        w = {k: torch.stack([ex.weight(k, e) for e in range(model.cfg.n_routed_experts)])
             for k in ("w1", "w2", "w3")}
        out[f"model.layers.{i}.mlp.experts.gate_up_proj"] = torch.cat((w["w1"], w["w3"]), 1)
        out[f"model.layers.{i}.mlp.experts.down_proj"] = w["w2"]
    return out



