"""V4 attention: q/kv projections with per-head RMS and partial RoPE, one softmax over the
sliding window ∪ compressed rows with a per-head sink, inverse RoPE on the output, and the
grouped low-rank output projection.

Shapes: x [S, D]; q [S, H, d]; kv rows [N, d] (K = V); mask [S, N]; out [S, D].
"""

from __future__ import annotations

import torch
from torch import nn

from engine.config import ModelConfig
from engine.kernels import registry
from engine.kernels.attention import sparse_attention_ref as sparse_attention  # noqa: F401
from engine.kernels.packed_f16 import PackedF16
from engine.kernels.rope import apply_rope, inv_freq
from engine.kv.state import LayerState
from engine.layers.compressor import Compressor
from engine.layers.indexer import Indexer
from engine.layers.linear import Linear
from engine.layers.norm import RMSNorm, rms
from engine.numerics import Numerics


def window_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int) -> torch.Tensor:
    """[S, N]: key position in (t − W, t]."""
    d = q_pos[:, None] - k_pos[None, :]
    return (d >= 0) & (d < window)


def compressed_visible(q_pos: torch.Tensor, n: int, ratio: int) -> torch.Tensor:
    """[S, n]: entry j is closed for query t iff j < (t+1) // ratio."""
    return torch.arange(n, device=q_pos.device)[None, :] < ((q_pos + 1) // ratio)[:, None]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int, numerics: Numerics):
        super().__init__()
        self.cfg, self.numerics = cfg, numerics
        self.ratio = cfg.ratio(layer)
        f, d, h = cfg.weight_dtype, cfg.head_dim, cfg.n_heads
        self.wq_a = Linear(cfg.dim, cfg.q_lora_rank, f, numerics)
        self.q_norm = RMSNorm(cfg.q_lora_rank, cfg.norm_eps)
        self.wq_b = Linear(cfg.q_lora_rank, h * d, f, numerics)
        self.wkv = Linear(cfg.dim, d, f, numerics)
        self.kv_norm = RMSNorm(d, cfg.norm_eps)
        self.wo_a = Linear(h * d // cfg.o_groups, cfg.o_groups * cfg.o_lora_rank, f, numerics,
                           groups=cfg.o_groups)
        self.wo_b = Linear(cfg.o_groups * cfg.o_lora_rank, cfg.dim, f, numerics)
        self.attn_sink = nn.Parameter(torch.zeros(h), requires_grad=False)
        if self.ratio:
            self.compressor = Compressor(cfg.dim, d, self.ratio, cfg.norm_eps, numerics)
        if self.ratio == 4:
            self.indexer = Indexer(cfg.dim, cfg.q_lora_rank, cfg.index_n_heads,
                                   cfg.index_head_dim, cfg.index_topk, f, cfg.norm_eps, numerics)
        if self.ratio:
            freqs = inv_freq(cfg.rope_head_dim, cfg.compress_rope_theta, cfg.rope_factor,
                             cfg.original_seq_len, cfg.beta_fast, cfg.beta_slow)
        else:
            freqs = inv_freq(cfg.rope_head_dim, cfg.rope_theta)
        self.freqs = freqs  # a plain tensor, not a parameter: computed, never loaded

    def new_state(self) -> LayerState:
        st, dev = LayerState(self.cfg.window_size), self.wkv.weight.device
        if self.ratio:
            st.comp = self.compressor.new_state(dev)
        if self.ratio == 4:
            st.index = self.indexer.compressor.new_state(dev)
        return st

    def rope(self, x: torch.Tensor, pos: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        return apply_rope(x, pos, self.freqs, inverse)

    def _qat_rope(self, rows: torch.Tensor, pos: torch.Tensor,
                  norm: torch.Tensor | None = None) -> torch.Tensor:
        """(RMSNorm with weight `norm`,) RoPE and (official) the FP8 round trip of the nope
        dims, fused in one kernel (engine/kernels/cache_insert.py)."""
        op = registry.get("cache_insert.norm_rope", rows.device)
        qblock = 64 if self.numerics.kv_fp8 else 0
        return op(rows, norm, self.cfg.norm_eps, pos, self.freqs, qblock)

    def forward(self, x: torch.Tensor, st: LayerState) -> torch.Tensor:
        """x [S, D] normed sublayer input at positions st.pos.. -> [S, D]; updates st."""
        cfg, s = self.cfg, x.shape[0]
        pos = torch.arange(st.pos, st.pos + s, device=x.device)
        qr = self.q_norm(self.wq_a(x))
        q = rms(self.wq_b(qr).view(s, cfg.n_heads, cfg.head_dim), cfg.norm_eps)
        q = self.rope(q, pos)
        kv = self._qat_rope(self.wkv(x), pos, self.kv_norm.float_weight())
        if s == 1 and st.pos >= cfg.window_size - 1 and st.window is not None:  # decode:
            st.push_window(kv)  # the full ring now holds exactly the W visible rows
            keys = st.window
            mask = torch.ones(1, cfg.window_size, dtype=torch.bool, device=x.device)
        else:
            prev, prev_pos = st.window_rows(cfg.head_dim, x.device)
            keys = torch.cat((prev.to(kv.dtype), kv))
            mask = window_mask(pos, torch.cat((prev_pos, pos)), cfg.window_size)
            st.push_window(kv)
        if self.ratio:
            keys, mask = self._compressed(x, qr, pos, st, keys, mask)
        attend = registry.get("attention.sparse_attention", q.device)
        o = attend(q, keys, mask, self.attn_sink, cfg.head_dim ** -0.5, (pos, self.freqs))
        return self._project_out(o)

    def _compressed(self, x, qr, pos, st: LayerState, keys, mask):
        """Append this block's compressed rows to the keys, visible by causality (HCA) or by
        causality and the indexer's top-k (CSA)."""
        self.compressor(x, pos, st.comp, self._qat_rope)
        rows = st.comp.rows
        visible = compressed_visible(pos, rows.shape[0], self.ratio)
        if self.ratio == 4:
            visible = self.indexer(x, qr, pos, st.index, visible, self.rope)
            if visible.shape[0] == 1:  # decode: attend over the top-k rows only, not all N
                rows = rows[visible[0].nonzero().squeeze(1)]
                visible = visible.new_ones(1, rows.shape[0])
        return torch.cat((keys, rows.to(keys.dtype))), torch.cat((mask, visible), 1)

    def _project_out(self, o: torch.Tensor) -> torch.Tensor:
        """o [S, H, d] -> groups [S, G, H·d/G] -> wo_a per group [S, G, r] -> wo_b [S, D]."""
        cfg = self.cfg
        g = o.reshape(o.shape[0], cfg.o_groups, -1)
        if isinstance(self.wo_a.resident, PackedF16):  # packed per group (engine.weights.placement)
            return self.wo_b(self.wo_a.resident.grouped(g).flatten(1))
        w = self.wo_a.dequantized().view(cfg.o_groups, cfg.o_lora_rank, -1)
        z = torch.einsum("sgi,goi->sgo", g, w.to(g.dtype))  # the release runs wo_a unquantized
        return self.wo_b(z.flatten(1))
