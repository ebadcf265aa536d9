"""The DeepSeek-V4 model config, read from a checkpoint's `config.json`.

One typed `ModelConfig` whatever the source spelled: the official release's `config.json`
(`compress_ratios`, `num_hash_layers`, `rope_scaling`), DeepSeek's inference names (`dim`,
`n_layers`, `route_scale`, `window_size`, …) and transformers' structured names (`layer_types`,
`mlp_layer_types`, `compress_rates`, `rope_parameters`). A config that does not add up raises
`ConfigError` naming the field. Presets: `flash`, `pro`, and tiny ones for tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

LAYER_TYPE_RATIO = {"sliding_attention": 0, "compressed_sparse_attention": 4,
                    "heavily_compressed_attention": 128}
MLP_TYPES = ("hash_moe", "moe")


class ConfigError(ValueError):
    """A model config that cannot describe a V4 model; the message names the field."""


class ModelConfig(BaseModel):
    """DeepSeek-V4 architecture. Names follow DeepSeek's inference code; defaults are Flash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(129280, gt=0, description="Embedding rows.")
    dim: int = Field(4096, gt=0, description="Hidden size D.")
    n_layers: int = Field(43, gt=0, description="Main transformer blocks.")
    n_heads: int = Field(64, gt=0, description="Attention heads H.")
    head_dim: int = Field(512, gt=0, description="Per-head dim d (shared K=V latent).")
    rope_head_dim: int = Field(64, gt=0, description="Trailing dims of each head that get RoPE.")
    q_lora_rank: int = Field(1024, gt=0, description="Query low-rank width.")
    o_groups: int = Field(8, gt=0, description="Groups of the grouped output projection.")
    o_lora_rank: int = Field(1024, gt=0, description="Per-group width of the output projection.")
    window_size: int = Field(128, gt=0, description="Sliding window rows incl. the current one.")
    compress_ratios: tuple[int, ...] = Field(
        (), description="Per block: 0 sliding only, 4 CSA, 128 HCA; main layers then MTP.")
    index_n_heads: int = Field(64, gt=0, description="Lightning indexer heads.")
    index_head_dim: int = Field(128, gt=0, description="Lightning indexer head dim.")
    index_topk: int = Field(512, gt=0, description="Compressed rows a CSA query attends to.")
    n_routed_experts: int = Field(256, gt=0, description="Routed experts per MoE layer.")
    n_shared_experts: int = Field(1, ge=0, description="Always-on shared experts.")
    n_activated_experts: int = Field(6, gt=0, description="Routed experts per token.")
    moe_inter_dim: int = Field(2048, gt=0, description="Expert (routed and shared) width.")
    n_hash_layers: int = Field(3, ge=0, description="Leading layers routed by tid2eid.")
    score_func: Literal["sqrtsoftplus", "sigmoid", "softmax"] = "sqrtsoftplus"
    route_scale: float = Field(1.5, description="Multiplies the normalised routing weights.")
    swiglu_limit: float = Field(10.0, description="Clamp of routed experts' gate/up (0: none).")
    hc_mult: int = Field(4, gt=0, description="mHC residual streams.")
    hc_sinkhorn_iters: int = Field(20, gt=0, description="Sinkhorn rounds for the comb matrix.")
    hc_eps: float = 1e-6
    norm_eps: float = 1e-6
    rope_theta: float = Field(10000.0, description="RoPE base of sliding-only blocks.")
    compress_rope_theta: float = Field(160000.0, description="RoPE base of compressed blocks.")
    rope_factor: float = Field(16.0, description="YaRN factor of the compress table (1: none).")
    original_seq_len: int = Field(65536, description="YaRN original context.")
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    max_position_embeddings: int = 1048576
    n_mtp_layers: int = Field(1, ge=0, description="Next-token-prediction blocks.")
    bos_token_id: int = 0
    eos_token_id: int = 1
    weight_dtype: Literal["fp8", "bf16"] = Field("fp8", description="Dense projections format.")
    expert_dtype: Literal["fp4", "fp8", "bf16"] = Field("fp4", description="Routed experts.")

    def model_post_init(self, _ctx: Any) -> None:
        _check(self)

    # ---- derived views -------------------------------------------------------------------
    def ratio(self, layer: int) -> int:
        """Compress ratio of block `layer` (n_layers.. are the MTP blocks)."""
        return self.compress_ratios[layer]

    def is_hash(self, layer: int) -> bool:
        return layer < self.n_hash_layers

    @property
    def layer_types(self) -> list[str]:
        names = {v: k for k, v in LAYER_TYPE_RATIO.items()}
        return [names[r] for r in self.compress_ratios[: self.n_layers]]

    @property
    def mlp_layer_types(self) -> list[str]:
        return ["hash_moe" if self.is_hash(i) else "moe" for i in range(self.n_layers)]

    def to_transformers(self) -> dict:
        """The same model as transformers' `DeepseekV4Config` keyword arguments."""
        return dict(
            vocab_size=self.vocab_size, hidden_size=self.dim, num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads, num_key_value_heads=1, head_dim=self.head_dim,
            q_lora_rank=self.q_lora_rank, o_groups=self.o_groups, o_lora_rank=self.o_lora_rank,
            sliding_window=self.window_size, layer_types=self.layer_types,
            mlp_layer_types=self.mlp_layer_types, index_n_heads=self.index_n_heads,
            index_head_dim=self.index_head_dim, index_topk=self.index_topk,
            n_routed_experts=self.n_routed_experts, n_shared_experts=self.n_shared_experts,
            num_experts_per_tok=self.n_activated_experts,
            moe_intermediate_size=self.moe_inter_dim, scoring_func=self.score_func,
            routed_scaling_factor=self.route_scale, swiglu_limit=self.swiglu_limit,
            hc_mult=self.hc_mult, hc_sinkhorn_iters=self.hc_sinkhorn_iters, hc_eps=self.hc_eps,
            rms_norm_eps=self.norm_eps, rope_theta=self.rope_theta,
            compress_rope_theta=self.compress_rope_theta,
            partial_rotary_factor=self.rope_head_dim / self.head_dim,
            rope_parameters=self._hf_rope(), max_position_embeddings=self.max_position_embeddings,
            num_nextn_predict_layers=self.n_mtp_layers, bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id, tie_word_embeddings=False)

    def _hf_rope(self) -> dict:
        prf = self.rope_head_dim / self.head_dim
        main = {"rope_type": "default", "rope_theta": self.rope_theta, "partial_rotary_factor": prf}
        comp: dict = {"rope_type": "default", "rope_theta": self.compress_rope_theta,
                      "partial_rotary_factor": prf}
        if self.rope_factor > 1:
            comp.update(rope_type="yarn", factor=self.rope_factor, attention_factor=1.0,
                        original_max_position_embeddings=self.original_seq_len,
                        beta_fast=self.beta_fast, beta_slow=self.beta_slow)
        return {"main": main, "compress": comp}

    def to_official(self) -> dict:
        """The release's `config.json` spelling (HF-style names plus `compress_ratios`)."""
        d = dict(
            architectures=["DeepseekV4ForCausalLM"], model_type="deepseek_v4",
            vocab_size=self.vocab_size, hidden_size=self.dim, num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads, num_key_value_heads=1, head_dim=self.head_dim,
            qk_rope_head_dim=self.rope_head_dim, q_lora_rank=self.q_lora_rank,
            o_groups=self.o_groups, o_lora_rank=self.o_lora_rank, sliding_window=self.window_size,
            compress_ratios=list(self.compress_ratios), index_n_heads=self.index_n_heads,
            index_head_dim=self.index_head_dim, index_topk=self.index_topk,
            n_routed_experts=self.n_routed_experts, n_shared_experts=self.n_shared_experts,
            num_experts_per_tok=self.n_activated_experts,
            moe_intermediate_size=self.moe_inter_dim, num_hash_layers=self.n_hash_layers,
            scoring_func=self.score_func, routed_scaling_factor=self.route_scale,
            swiglu_limit=self.swiglu_limit, hc_mult=self.hc_mult,
            hc_sinkhorn_iters=self.hc_sinkhorn_iters, hc_eps=self.hc_eps,
            rms_norm_eps=self.norm_eps, rope_theta=self.rope_theta,
            compress_rope_theta=self.compress_rope_theta,
            max_position_embeddings=self.max_position_embeddings,
            num_nextn_predict_layers=self.n_mtp_layers, bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id, tie_word_embeddings=False,
            expert_dtype=self.expert_dtype)
        if self.rope_factor > 1:
            d["rope_scaling"] = {"type": "yarn", "factor": self.rope_factor,
                                 "original_max_position_embeddings": self.original_seq_len,
                                 "beta_fast": self.beta_fast, "beta_slow": self.beta_slow}
        if self.weight_dtype == "fp8":
            d["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3",
                                        "scale_fmt": "ue8m0", "activation_scheme": "dynamic",
                                        "weight_block_size": [128, 128]}
        return d


def _check(c: ModelConfig) -> None:
    """Cross-field rules; each failure names the field a user would fix."""
    want = c.n_layers + c.n_mtp_layers
    if len(c.compress_ratios) != want:
        raise ConfigError(f"compress_ratios: has {len(c.compress_ratios)} entries, expected "
                          f"{want} (n_layers {c.n_layers} + MTP {c.n_mtp_layers})")
    if any(r < 0 for r in c.compress_ratios):
        raise ConfigError(f"compress_ratios: ratios must be 0 or positive, got "
                          f"{list(c.compress_ratios)}")
    rules = [
        (c.rope_head_dim <= c.head_dim and c.rope_head_dim % 2 == 0, "rope_head_dim",
         f"{c.rope_head_dim} must be even and at most head_dim {c.head_dim}"),
        (c.n_heads % c.o_groups == 0, "o_groups", f"{c.o_groups} must divide n_heads {c.n_heads}"),
        (c.n_activated_experts <= c.n_routed_experts, "n_activated_experts",
         f"{c.n_activated_experts} exceeds n_routed_experts {c.n_routed_experts}"),
        (c.n_hash_layers <= c.n_layers, "n_hash_layers",
         f"{c.n_hash_layers} exceeds n_layers {c.n_layers}"),
        (c.index_head_dim >= c.rope_head_dim, "index_head_dim",
         f"{c.index_head_dim} is smaller than rope_head_dim {c.rope_head_dim}"),
    ]
    for ok, field, msg in rules:
        if not ok:
            raise ConfigError(f"{field}: {msg}")


# ---- reading config.json in any of the three spellings --------------------------------------

# official/transformers name -> ModelConfig name (DeepSeek's inference names pass through)
_ALIASES = {
    "hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
    "qk_rope_head_dim": "rope_head_dim", "sliding_window": "window_size",
    "num_experts_per_tok": "n_activated_experts", "moe_intermediate_size": "moe_inter_dim",
    "num_hash_layers": "n_hash_layers", "scoring_func": "score_func",
    "routed_scaling_factor": "route_scale", "rms_norm_eps": "norm_eps",
    "num_nextn_predict_layers": "n_mtp_layers", "original_max_position_embeddings":
    "original_seq_len", "n_nextn_layers": "n_mtp_layers",
}
# keys that say nothing about the architecture we run
_IGNORED = {
    "architectures", "model_type", "attention_bias", "attention_dropout", "hidden_act",
    "initializer_range", "num_key_value_heads", "norm_topk_prob", "topk_method",
    "torch_dtype", "dtype", "transformers_version", "use_cache", "tie_word_embeddings",
    "scale_fmt", "pad_token_id", "router_aux_loss_coef", "router_jitter_noise",
    "output_router_logits", "mlp_bias", "rope_type", "auto_map", "n_routed_experts_score",
}


def from_dict(raw: dict) -> ModelConfig:
    """Build a config from any spelling of `config.json`; keys that are not architecture are
    skipped."""
    d = dict(raw)
    out: dict[str, Any] = {}
    _fold_quantization(d, out)
    _fold_rope(d, out)
    _fold_layer_types(d, out)
    if "partial_rotary_factor" in d and d["partial_rotary_factor"] is not None:
        prf = d.pop("partial_rotary_factor")
        out["rope_head_dim"] = int(round(prf * d.get("head_dim", 512)))
    for key, value in d.items():
        if key in _IGNORED:
            continue
        name = _ALIASES.get(key, key)
        if name in ModelConfig.model_fields:  # other keys (generation, hub metadata) don't matter
            out[name] = value
    if "compress_ratios" not in out:
        raise ConfigError("compress_ratios: missing (or give layer_types)")
    if len(out["compress_ratios"]) == out.get("n_layers", 43):
        out["compress_ratios"] = [*out["compress_ratios"], *[0] * out.get("n_mtp_layers", 1)]
    return build(**out)


def build(**fields: Any) -> ModelConfig:
    """ModelConfig(**fields), with every failure as one ConfigError naming the field."""
    try:
        return ModelConfig(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        inner = err.get("ctx", {}).get("error")
        if isinstance(inner, ConfigError):
            raise inner from None
        field = ".".join(str(p) for p in err["loc"]) or "config"
        raise ConfigError(f"{field}: {err['msg']}") from None


def _fold_quantization(d: dict, out: dict) -> None:
    """FP8 dense weights iff `quantization_config` (release) or `dtype: fp8` (inference) says
    so; routed experts then default to FP4 (the Flash release has no `expert_dtype` key)."""
    q = d.pop("quantization_config", None) or {}
    quantized = q.get("quant_method") == "fp8" or d.get("dtype") == "fp8"
    out["weight_dtype"] = "fp8" if quantized else "bf16"
    expert = d.pop("expert_dtype", None) or q.get("expert_dtype")
    out["expert_dtype"] = expert or ("fp4" if quantized else "bf16")


def _fold_rope(d: dict, out: dict) -> None:
    """`rope_scaling` (official), flat YaRN keys (inference) or `rope_parameters` (transformers)."""
    rs = d.pop("rope_scaling", None) or {}
    rp = d.pop("rope_parameters", None) or {}
    if isinstance(rp.get("main"), dict):
        out["rope_theta"] = rp["main"].get("rope_theta", 10000.0)
        rs = rp.get("compress", {})
        out["compress_rope_theta"] = rs.get("rope_theta", d.get("compress_rope_theta", 160000.0))
        d.pop("rope_theta", None)
        d.pop("compress_rope_theta", None)
    elif rp:
        rs = rp
    if rs.get("type", rs.get("rope_type")) == "yarn":
        out["rope_factor"] = rs.get("factor", 16.0)
        out["original_seq_len"] = rs.get("original_max_position_embeddings", 65536)
        out["beta_fast"] = rs.get("beta_fast", 32)
        out["beta_slow"] = rs.get("beta_slow", 1)
    elif "rope_factor" not in d:
        out["rope_factor"] = 1.0  # no YaRN anywhere: plain RoPE on the compress table too


def _fold_layer_types(d: dict, out: dict) -> None:
    lt = d.pop("layer_types", None)
    mlt = d.pop("mlp_layer_types", None)
    rates = d.pop("compress_rates", None) or {}
    ratio_of = {**LAYER_TYPE_RATIO, **rates}
    ratio_of.update({k: v for k, v in (("compressed_sparse_attention", d.pop(
        "compress_rate_csa", None)), ("heavily_compressed_attention", d.pop(
        "compress_rate_hca", None))) if v is not None})
    _check_rates(ratio_of)
    if lt is not None and "compress_ratios" not in d:
        unknown = [t for t in lt if t not in ratio_of]
        if unknown:
            raise ConfigError(f"layer_types: unknown layer type {unknown[0]!r}; expected one of "
                              f"{sorted(LAYER_TYPE_RATIO)}")
        out["compress_ratios"] = [ratio_of[t] for t in lt]
    if mlt is not None:
        unknown = [t for t in mlt if t not in MLP_TYPES]
        if unknown:
            raise ConfigError(f"mlp_layer_types: unknown type {unknown[0]!r}; expected one of "
                              f"{list(MLP_TYPES)}")
        n_hash = mlt.count("hash_moe")
        if mlt[:n_hash] != ["hash_moe"] * n_hash:
            raise ConfigError("mlp_layer_types: hash_moe layers must come first")
        out["n_hash_layers"] = n_hash


def _check_rates(ratio_of: dict) -> None:
    """The model tells CSA from HCA by the ratio alone, as DeepSeek's reference code does: 4
    means CSA (overlapping windows, the lightning indexer), any other positive ratio HCA. A
    transformers config naming the two apart with other rates would load as the wrong kind
    and fail on tensor shapes (`compressor.ape`), so say so here."""
    csa = ratio_of.get("compressed_sparse_attention")
    hca = ratio_of.get("heavily_compressed_attention")
    if csa != 4:
        raise ConfigError(f"compress_rates: a compressed_sparse_attention rate of {csa} is not "
                          "supported; CSA layers compress by 4 (this engine, like DeepSeek's "
                          "reference code, knows CSA by ratio 4: overlapping windows and the "
                          "lightning indexer)")
    if hca == 4 or not isinstance(hca, int) or hca < 1:
        raise ConfigError(f"compress_rates: a heavily_compressed_attention rate of {hca} is not "
                          "supported; it must be a positive ratio other than 4 (ratio 4 means "
                          "CSA, with overlapping windows and an indexer HCA layers do not have)")


def load(path: str | Path) -> ModelConfig:
    """Read `DIR/config.json` (or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    try:
        raw = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{p}: cannot read model config ({e})") from None
    return from_dict(raw)


# ---- presets ---------------------------------------------------------------------------------

def _flash_ratios() -> list[int]:
    return [0, 0, *[4, 128] * 20, 4, 0]


PRESETS: dict[str, dict] = {
    "flash": dict(compress_ratios=_flash_ratios()),
    "pro": dict(dim=7168, n_layers=61, n_heads=128, q_lora_rank=1536, o_groups=16,
                index_topk=1024, n_routed_experts=384, moe_inter_dim=3072, route_scale=2.5,
                compress_ratios=[128, 128, *[4, 128] * 29, 4, 0]),
    # 4 blocks: sliding, CSA, HCA, CSA (+ a sliding MTP block); hash MoE in 0-1, scored after.
    # index_topk exceeds the compressed rows of a few-hundred-token test, so no ties matter.
    "tiny": dict(vocab_size=1024, dim=64, n_layers=4, n_heads=4, head_dim=64, rope_head_dim=16,
                 q_lora_rank=32, o_groups=2, o_lora_rank=32, compress_ratios=[0, 4, 128, 4, 0],
                 index_n_heads=4, index_head_dim=32, index_topk=512, n_routed_experts=8,
                 n_activated_experts=2, moe_inter_dim=32, n_hash_layers=2),
}
# the same with a small top-k, so CSA really selects (for self-consistency tests)
PRESETS["tiny-topk"] = {**PRESETS["tiny"], "index_topk": 4}
# a small window, so short tests cross the window boundary many times
PRESETS["tiny-window"] = {**PRESETS["tiny"], "window_size": 8, "index_topk": 3}


def preset(name: str, **overrides: Any) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return build(**{**PRESETS[name], **overrides})
