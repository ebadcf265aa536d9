"""Bodies of `flashcode engine make-tiny | logits | inspect`: plain functions returning an exit
code (0 ok, 2 bad input, 4 unusable model), printing to stdout/stderr."""

from __future__ import annotations

import sys
from pathlib import Path

KINDS = [  # (label, test on the parameter name), first match wins
    ("mtp", lambda n: n.startswith("mtp.")),
    ("embed+head", lambda n: n.startswith(("embed.", "head."))),
    ("routed experts", lambda n: ".ffn.experts." in n),
    ("shared experts", lambda n: ".ffn.shared_experts." in n),
    ("router", lambda n: ".ffn.gate." in n),
    ("indexer", lambda n: ".attn.indexer." in n),
    ("compressor", lambda n: ".attn.compressor." in n),
    ("attention", lambda n: ".attn." in n),
    ("mHC", lambda n: "hc_" in n),
    ("norms", lambda n: True),
]


def make_tiny(out: str, preset: str = "tiny", seed: int = 0, tokenizer: str = "v4") -> int:
    from engine.config import ConfigError
    from engine.weights.tiny import make_tiny as write

    try:
        path = write(Path(out), preset, seed, tokenizer)
    except (ConfigError, FileNotFoundError) as e:
        print(f"flashcode engine make-tiny: {e}", file=sys.stderr)
        return 2
    print(f"wrote a random '{preset}' checkpoint (seed {seed}, {tokenizer} tokenizer) to {path}")
    return 0


def logits(model_dir: str, tokens: str, mode: str, out: str) -> int:
    """Full-sequence logits [T, vocab] float32 saved with numpy.save."""
    import numpy as np
    import torch

    try:
        ids = [int(t) for t in tokens.split(",") if t.strip()]
    except ValueError:
        print(f"flashcode engine logits: --tokens must be comma-separated integers, got "
              f"{tokens!r}", file=sys.stderr)
        return 2
    model = _load(model_dir, mode)
    if model is None:
        return 4
    bad = [t for t in ids if not 0 <= t < model.cfg.vocab_size]
    if not ids or bad:
        print(f"flashcode engine logits: token ids must be in [0, {model.cfg.vocab_size}); "
              f"got {bad or 'none'}", file=sys.stderr)
        return 2
    lg = model(torch.tensor(ids)).float().numpy()
    np.save(out, lg.astype(np.float32))
    print(f"saved logits {list(lg.shape)} float32 ({mode}) to {out}")
    return 0


def _load(model_dir: str, mode: str):
    from engine.config import ConfigError
    from engine.weights.loader import LoadError, load

    try:
        return load(model_dir, mode=mode)
    except (ConfigError, LoadError, OSError) as e:
        print(f"flashcode engine: cannot load {model_dir}: {e}", file=sys.stderr)
        return None


def inspect(model_dir: str) -> int:
    """Config, layer pattern and stored bytes by kind and dtype (from config.json alone)."""
    from engine.config import ConfigError, load
    from engine.weights.loader import build

    try:
        cfg = load(model_dir)
    except ConfigError as e:
        print(f"flashcode engine inspect: {e}", file=sys.stderr)
        return 4
    print(_config_lines(cfg))
    print("layers:")
    for i in range(cfg.n_layers + cfg.n_mtp_layers):
        print("  " + _layer_line(cfg, i))
    model = build(cfg)
    print(_bytes_table(model))
    return 0


def _config_lines(cfg) -> str:
    keys = ("vocab_size", "dim", "n_layers", "n_heads", "head_dim", "rope_head_dim",
            "q_lora_rank", "o_groups", "o_lora_rank", "window_size", "index_n_heads",
            "index_head_dim", "index_topk", "n_routed_experts", "n_activated_experts",
            "moe_inter_dim", "n_hash_layers", "route_scale", "hc_mult", "n_mtp_layers",
            "weight_dtype", "expert_dtype")
    return "config:\n" + "\n".join(f"  {k:20} {getattr(cfg, k)}" for k in keys)


def _layer_line(cfg, i: int) -> str:
    kind = {0: "sliding", 4: "CSA", 128: "HCA"}.get(cfg.ratio(i), f"ratio {cfg.ratio(i)}")
    name = f"mtp.{i - cfg.n_layers}" if i >= cfg.n_layers else f"layer {i}"
    moe = "hash-routed MoE" if cfg.is_hash(i) else "score-routed MoE"
    return f"{name:8} {kind:8} {moe}"


def _bytes_table(model) -> str:
    by_kind: dict[str, int] = {}
    by_dtype: dict[str, int] = {}
    for name, p in model.named_parameters():
        n = p.numel() * p.element_size()
        kind = next(label for label, test in KINDS if test(name))
        by_kind[kind] = by_kind.get(kind, 0) + n
        dt = str(p.dtype).removeprefix("torch.")
        by_dtype[dt] = by_dtype.get(dt, 0) + n
    total = sum(by_kind.values())
    lines = ["parameter bytes as stored, by kind:"]
    lines += [f"  {k:16} {_gb(v)}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])]
    lines.append("by dtype:")
    lines += [f"  {k:16} {_gb(v)}" for k, v in sorted(by_dtype.items(), key=lambda kv: -kv[1])]
    lines.append(f"total            {_gb(total)} ({total:,} bytes)")
    return "\n".join(lines)


def _gb(n: int) -> str:
    return f"{n / 1e9:10.3f} GB" if n >= 1e7 else f"{n / 1e3:10.1f} kB"
