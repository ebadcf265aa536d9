"""Tensor names: the release's (official) names, and transformers' names for the same tensors.

Official names are the model's own parameter names, except routed experts, which the model
stacks: `layers.L.ffn.experts.E.w1.weight` is slice E of `layers.L.ffn.experts.w1_weight`.
"""

from __future__ import annotations

import re

# transformers suffix (after `model.layers.L.`) -> official suffix (after `layers.L.`)
_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_a_proj.weight": "attn.wq_a.weight",
    "self_attn.q_a_norm.weight": "attn.q_norm.weight",
    "self_attn.q_b_proj.weight": "attn.wq_b.weight",
    "self_attn.kv_proj.weight": "attn.wkv.weight",
    "self_attn.kv_norm.weight": "attn.kv_norm.weight",
    "self_attn.o_a_proj.weight": "attn.wo_a.weight",
    "self_attn.o_b_proj.weight": "attn.wo_b.weight",
    "self_attn.sinks": "attn.attn_sink",
    "self_attn.compressor.kv_proj.weight": "attn.compressor.wkv.weight",
    "self_attn.compressor.gate_proj.weight": "attn.compressor.wgate.weight",
    "self_attn.compressor.kv_norm.weight": "attn.compressor.norm.weight",
    "self_attn.compressor.position_bias": "attn.compressor.ape",
    "self_attn.compressor.indexer.q_b_proj.weight": "attn.indexer.wq_b.weight",
    "self_attn.compressor.indexer.scorer.weights_proj.weight": "attn.indexer.weights_proj.weight",
    "self_attn.compressor.indexer.kv_proj.weight": "attn.indexer.compressor.wkv.weight",
    "self_attn.compressor.indexer.gate_proj.weight": "attn.indexer.compressor.wgate.weight",
    "self_attn.compressor.indexer.kv_norm.weight": "attn.indexer.compressor.norm.weight",
    "self_attn.compressor.indexer.position_bias": "attn.indexer.compressor.ape",
    "mlp.gate.weight": "ffn.gate.weight",
    "mlp.gate.e_score_correction_bias": "ffn.gate.bias",
    "mlp.gate.tid2eid": "ffn.gate.tid2eid",
    "mlp.shared_experts.gate_proj.weight": "ffn.shared_experts.w1.weight",
    "mlp.shared_experts.up_proj.weight": "ffn.shared_experts.w3.weight",
    "mlp.shared_experts.down_proj.weight": "ffn.shared_experts.w2.weight",
    **{f"{s}_hc.{k}": f"hc_{s}_{k}" for s in ("attn", "ffn") for k in ("fn", "base", "scale")},
}
# older transformers spelling of the indexer's weight projection
_LAYER_ALIASES = {"self_attn.compressor.indexer.weights_proj.weight":
                  "attn.indexer.weights_proj.weight"}
_TOP = {
    "model.embed_tokens.weight": "embed.weight", "lm_head.weight": "head.weight",
    "model.norm.weight": "norm.weight", "model.hc_head.hc_fn": "hc_head_fn",
    "model.hc_head.hc_base": "hc_head_base", "model.hc_head.hc_scale": "hc_head_scale",
}
# fused expert tensors of transformers: name -> [(official expert weight, rows slice half)]
HF_EXPERTS = {"mlp.experts.gate_up_proj": ("w1", "w3"), "mlp.experts.down_proj": ("w2",)}

_HF_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)")
_EXPERT = re.compile(r"(.*ffn\.experts)\.(\d+)\.(w[123])\.(weight|scale)")


def from_transformers(name: str) -> str | None:
    """transformers name -> official name (None if it is not one we know)."""
    if name in _TOP:
        return _TOP[name]
    m = _HF_LAYER.fullmatch(name)
    if m:
        rest = _LAYER.get(m[2]) or _LAYER_ALIASES.get(m[2])
        return f"layers.{m[1]}.{rest}" if rest else None
    return None


def to_transformers(name: str) -> str | None:
    """official name -> transformers name (None for MTP and stacked experts)."""
    inv_top = {v: k for k, v in _TOP.items()}
    if name in inv_top:
        return inv_top[name]
    m = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
    inv = {v: k for k, v in _LAYER.items()}
    if m and m[2] in inv:
        return f"model.layers.{m[1]}.{inv[m[2]]}"
    return None


def split_expert(name: str) -> tuple[str, int] | None:
    """`…ffn.experts.E.w1.weight` -> (`…ffn.experts.w1_weight`, E); None for other names."""
    m = _EXPERT.fullmatch(name)
    return (f"{m[1]}.{m[3]}_{m[4]}", int(m[2])) if m else None


def expert_name(param: str, e: int) -> str:
    """Inverse of split_expert: (`…ffn.experts.w1_weight`, E) -> `…ffn.experts.E.w1.weight`."""
    base, leaf = param.rsplit(".", 1)
    w, kind = leaf.split("_")
    return f"{base}.{e}.{w}.{kind}"


def split_expert_param(param: str) -> tuple[str, str] | None:
    """`…ffn.experts.w1_weight` -> (`…ffn.experts`, `w1_weight`); None for other params."""
    m = re.fullmatch(r"(.*ffn\.experts)\.(w[123]_(?:weight|scale))", param)
    return (m[1], m[2]) if m else None


# transformers' save_pretrained (5.x) writes the release names back under `model.`, with these
# spellings of its own (its reverse rename also turns attn.kv_norm into attn.norm)
_SAVED = [(re.compile(r"embed_tokens\.weight"), "embed.weight"),
          (re.compile(r"hc_head\.hc_(fn|base|scale)"), r"hc_head_\1"),
          (re.compile(r"(layers\.\d+\.attn)\.norm\.weight"), r"\1.kv_norm.weight")]


def resolve(key: str, known) -> str | None:
    """Any spelling of a tensor name -> the official name if `known` has it (or it is a
    routed-expert slice); None if nothing matches."""
    def ok(n: str | None) -> bool:
        hit = split_expert(n) if n is not None else None
        return n is not None and (n in known or hit is not None and hit[0] in known)

    candidates = [key, key.removeprefix("model."), from_transformers(key)]
    short = key.removeprefix("model.")
    for pat, rep in _SAVED:
        if pat.fullmatch(short):
            candidates.append(pat.sub(rep, short))
    return next((c for c in candidates if ok(c)), None)
