"""Byte-row storage formats of KV rows and indexer keys, and cache bytes per token.

Row formats (one row = one token's kv in the window ring, or one compressed entry), bytes:
  kv "fp8"   nope dims as e4m3 + one e8m0 scale per 64 (+ pad to 8) | rope dims bf16
             d=512, rope 64: 448 + 8 + 128 = 584 B  (the release's cache layout)
  kv "fp8r32" the same with fp32 rope dims: 712 B (exact for rows this engine computes in fp32,
             e.g. compressed entries, whose rope dims are not bf16 values)
  kv "bf16"  every dim bf16 (fallback: values that are not FP8-exact, e.g. reference mode)
  kv "fp32"  as computed (lossless for anything)
  index "fp4"  indexer key as e2m1 codes two a byte + e8m0 per 32: di=128 -> 64 + 4 = 68 B
  index "fp8"  e4m3 + e8m0 per 128 (+ pad to 4): 128 + 4 = 132 B
In official numerics the nope dims were already FP8-rounded in 64-wide blocks and the indexer
keys MXFP4-rounded, so "fp8"/"fp4" store them exactly (the rope dims exactly when the model
runs in bf16). A row is one byte vector (the layout vLLM's caches use; the live state keeps
the same bytes in planes: engine/kv/rows.py).
"""

from __future__ import annotations

import torch

from engine import quant

KV_FORMATS = ("fp8", "fp8r32", "bf16", "fp32")
INDEX_FORMATS = ("fp4", "fp8", "bf16", "fp32")


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


def kv_row_bytes(fmt: str, dim: int, rope_dim: int) -> int:
    if fmt in ("fp8", "fp8r32"):
        nope = dim - rope_dim
        return nope + _pad(nope // min(64, nope), 8) + (2 if fmt == "fp8" else 4) * rope_dim
    return dim * (2 if fmt == "bf16" else 4)


def index_row_bytes(fmt: str, dim: int) -> int:
    return {"fp4": dim // 2 + dim // 32, "fp8": dim + _pad(max(dim // 128, 1), 4),
            "bf16": 2 * dim, "fp32": 4 * dim}[fmt]


def _bytes(t: torch.Tensor) -> torch.Tensor:
    """[n, k] any dtype -> [n, k·size] uint8 (same memory, reinterpreted)."""
    t = t.contiguous()
    return t.view(torch.uint8).reshape(t.shape[0], t.shape[1:].numel() * t.element_size())


def _scale_bytes(s: torch.Tensor, width: int) -> torch.Tensor:
    """pow2 scales [n, k] -> e8m0 bytes padded to `width`."""
    b = _bytes(s.to(torch.float8_e8m0fnu))
    return torch.cat((b, b.new_zeros(b.shape[0], width - b.shape[1])), 1)


def pack_kv(rows: torch.Tensor, rope_dim: int, fmt: str) -> torch.Tensor:
    """[n, d] float -> [n, kv_row_bytes] uint8."""
    if fmt == "bf16":
        return _bytes(rows.to(torch.bfloat16))
    if fmt == "fp32":
        return _bytes(rows.float())
    nope = rows[:, :-rope_dim].float()
    nope = nope.unflatten(-1, (-1, min(64, nope.shape[1])))            # [n, k, 64]
    s = quant.pow2_scale(nope.abs().amax(-1, keepdim=True), quant.FP8_MAX)
    q = (nope / s).clamp(-quant.FP8_MAX, quant.FP8_MAX).to(torch.float8_e4m3fn).flatten(1)
    k = nope.shape[1]
    return torch.cat((_bytes(q), _scale_bytes(s.squeeze(-1), _pad(k, 8)),
                      _bytes(rows[:, -rope_dim:].to(_rope_dtype(fmt)))), 1)


def _rope_dtype(fmt: str) -> torch.dtype:
    return torch.bfloat16 if fmt == "fp8" else torch.float32


def unpack_kv(raw: torch.Tensor, dim: int, rope_dim: int, fmt: str) -> torch.Tensor:
    """[n, kv_row_bytes] uint8 -> [n, d] float32."""
    if fmt in ("bf16", "fp32"):
        return raw.contiguous().view(torch.bfloat16 if fmt == "bf16" else torch.float32).float()
    nope = dim - rope_dim
    k = nope // min(64, nope)  # blocks of 64 (one block when narrower, as quant does)
    q = raw[:, :nope].contiguous().view(torch.float8_e4m3fn).float().unflatten(-1, (k, -1))
    s = raw[:, nope:nope + k].contiguous().view(torch.float8_e8m0fnu).float()
    rope = raw[:, nope + _pad(k, 8):].contiguous().view(_rope_dtype(fmt)).float()
    return torch.cat(((q * s.unsqueeze(-1)).flatten(1), rope), 1)


def pack_index(keys: torch.Tensor, fmt: str) -> torch.Tensor:
    """[n, di] float -> [n, index_row_bytes] uint8."""
    if fmt in ("bf16", "fp32"):
        return _bytes(keys.to(torch.bfloat16 if fmt == "bf16" else torch.float32))
    if fmt == "fp4":
        packed, s = quant.quantize_fp4_weight(keys.float())
        return torch.cat((_bytes(packed), _bytes(s)), 1)
    kb = keys.float().unflatten(-1, (-1, min(128, keys.shape[1])))
    s = quant.pow2_scale(kb.abs().amax(-1, keepdim=True), quant.FP8_MAX)
    q = (kb / s).clamp(-quant.FP8_MAX, quant.FP8_MAX).to(torch.float8_e4m3fn).flatten(1)
    return torch.cat((_bytes(q), _scale_bytes(s.squeeze(-1), _pad(kb.shape[1], 4))), 1)


def unpack_index(raw: torch.Tensor, dim: int, fmt: str) -> torch.Tensor:
    if fmt in ("bf16", "fp32"):
        return raw.contiguous().view(torch.bfloat16 if fmt == "bf16" else torch.float32).float()
    if fmt == "fp4":
        packed = raw[:, :dim // 2].contiguous().view(torch.int8)
        s = raw[:, dim // 2:].contiguous().view(torch.float8_e8m0fnu)
        return quant.dequant_fp4_weight(packed, s)
    blk = min(128, dim)
    q = raw[:, :dim].contiguous().view(torch.float8_e4m3fn).float().unflatten(-1, (-1, blk))
    s = raw[:, dim:dim + dim // blk].contiguous().view(torch.float8_e8m0fnu).float()
    return (q * s.unsqueeze(-1)).flatten(1)


# ---- bytes per token -------------------------------------------------------------------------

def bytes_per_token(cfg, context: int, kv_fmt: str = "fp8", index_fmt: str = "fp4",
                    gqa_kv_heads: int = 8, gqa_head_dim: int = 128) -> dict[str, float]:
    """Cache bytes per token of context, by kind, summed over the main layers, and the bf16
    caches of dense MLA-style (one shared d-dim latent per token and layer) and GQA (K and V
    of `gqa_kv_heads` heads) models of the same depth for comparison."""
    kv = kv_row_bytes(kv_fmt, cfg.head_dim, cfg.rope_head_dim)
    ix = index_row_bytes(index_fmt, cfg.index_head_dim)
    out = {"window": 0.0, "compressed": 0.0, "indexer": 0.0}
    for layer in range(cfg.n_layers):
        r = cfg.ratio(layer)
        out["window"] += min(context, cfg.window_size) * kv / context
        if r:
            out["compressed"] += (context // r) * kv / context
        if r == 4:
            out["indexer"] += (context // 4) * ix / context
    out["total"] = out["window"] + out["compressed"] + out["indexer"]
    out["dense_mla_bf16"] = float(cfg.n_layers * cfg.head_dim * 2)
    out["gqa_bf16"] = float(cfg.n_layers * 2 * gqa_kv_heads * gqa_head_dim * 2)
    return out
