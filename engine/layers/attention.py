"""V4 attention: q/kv projections with per-head RMS and partial RoPE, one softmax over the
sliding window ∪ compressed rows with a per-head sink, inverse RoPE on the output, and the
grouped low-rank output projection.

Shapes: x [S, D]; q [S, H, d]; kv rows [N, d] (K = V); out [S, D]. Prefill (`forward`) gives
each query an index set into one table of rows (its window band, then the compressed rows it
may see); a decode step (`decode`) reads the whole ring and the selected rows: [W + k, d].
"""

from __future__ import annotations

import torch
from torch import nn

from engine.config import ModelConfig
from engine.kernels import fused_cpu, gemv_f16
from engine.kernels.attention import sparse_attention_ref as sparse_attention  # noqa: F401
from engine.kernels.packed_f16 import PackedF16
from engine.kernels.rope import apply_rope, inv_freq
from engine.kernels.scalars import cached, scalar
from engine.kv.rows import Rows
from engine.kv.state import LayerState
from engine.layers.compressor import Compressor
from engine.layers.indexer import Indexer
from engine.layers.linear import Half, Linear, project, rows_at
from engine.layers.norm import RMSNorm, rms
from engine.layers.ops import fp8_roundtrip, kernel, op
from engine.layers.rotary import Rotation, rotate, rotate_tail, rotation, tables
from engine.numerics import Numerics


def window_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int) -> torch.Tensor:
    """[S, N]: key position in (t − W, t]."""
    d = q_pos[:, None] - k_pos[None, :]
    return (d >= 0) & (d < window)


def compressed_visible(q_pos: torch.Tensor, n: int, ratio: int) -> torch.Tensor:
    """[S, n]: entry j is closed for query t iff j < (t+1) // ratio."""
    return torch.arange(n, device=q_pos.device)[None, :] < ((q_pos + 1) // ratio)[:, None]


def attend(q: torch.Tensor, rows: torch.Tensor, hide: torch.Tensor, sink: torch.Tensor,
           scale: float) -> torch.Tensor:
    """One query's attention in a few ops: q [1, H, d] over rows [N, d] (K = V) but the hidden
    ones [N], with a per-head sink in the softmax -> [1, H, d] (no inverse RoPE).
    engine/kernels/attention.py's sparse_attention_ref, summed in another order (one fused op
    in an eager float32 CPU step: engine/kernels/fused_cpu.py)."""
    if hide.dtype == torch.bool and fused_cpu.ready(q, rows, sink):
        return fused_cpu.attend(q, rows, hide, sink, scale)
    s = torch.mm(q[0].float(), rows.t())
    s = s * scalar(scale, s)                                           # [H, N]
    s = torch.cat((s.masked_fill(hide, float("-inf")), sink.float().unsqueeze(-1)), -1)
    p = torch.softmax(s, -1)
    return torch.mm(p[:, :-1], rows).to(q.dtype).unsqueeze(0)


def window_band(s: int, prev: int, window: int, device=None) -> torch.Tensor:
    """[S, W] rows of the table [prev rows, then the chunk's S] that query i sees: rows
    i+prev−W+1 .. i+prev, −1 before the first."""
    idx = torch.arange(s, device=device)[:, None] + torch.arange(prev - window + 1, prev + 1,
                                                                 device=device)
    return torch.where(idx >= 0, idx, -1)


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
        self.freqs2, self.sign = tables(freqs)   # decode steps' RoPE (layers/rotary.py)
        self.slots = torch.arange(cfg.window_size, device="cpu")  # the ring's slot numbers

    def new_state(self, dtype: torch.dtype = torch.float32) -> LayerState:
        """Official numerics keep the rows as the release caches them (fp8 KV, fp4 indexer
        keys); reference numerics keep floats (engine/kv/rows.py)."""
        cfg, dev = self.cfg, self.wkv.weight.device
        fmt, r = ("fp8" if self.numerics.kv_fp8 else "float"), cfg.rope_head_dim
        st = LayerState(cfg.window_size, 0, Rows.empty(fmt, cfg.head_dim, cfg.window_size, dev,
                                                       r, dtype))
        if self.ratio:
            st.comp = self.compressor.new_state(fmt, dev, r, cfg.index_topk if self.ratio == 4
                                                else 0)
        if self.ratio == 4:
            st.index = self.indexer.new_state(dev)
        return st

    def rope(self, x: torch.Tensor, pos: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        return apply_rope(x, pos, self.freqs, inverse)

    def _qat_rope(self, rows: torch.Tensor, pos: torch.Tensor, norm=None) -> torch.Tensor:
        """RMSNorm (module `norm`, if any), RoPE and (official) the FP8 round trip of the nope
        dims, fused in one kernel (engine/kernels/cache_insert.py)."""
        qblock = 64 if self.numerics.kv_fp8 else 0
        w = None if norm is None else norm.float_weight()
        return op("cache_insert.norm_rope", rows.device)(rows, w, self.cfg.norm_eps, pos,
                                                          self.freqs, qblock)

    def _q_kv(self, x: torch.Tensor, pos: torch.Tensor):
        """qr [S, q_lora] (normed), q [S, H, d] (per-head RMS, roped), kv [S, d] (normed,
        roped, rounded)."""
        cfg, s = self.cfg, x.shape[0]
        qr, kv = project(x, (self.wq_a, self.wkv))
        qr = self.q_norm(qr)
        q = self.rope(rms(self.wq_b(qr).view(s, cfg.n_heads, cfg.head_dim), cfg.norm_eps), pos)
        return qr, q, self._qat_rope(kv, pos, self.kv_norm)

    def forward(self, x: torch.Tensor, st: LayerState) -> torch.Tensor:
        """Prefill: x [S, D] normed sublayer input at positions st.pos.. -> [S, D]; updates st."""
        cfg, s, p0 = self.cfg, x.shape[0], st.pos
        pos = torch.arange(p0, p0 + s, device=x.device)
        qr, q, kv = self._q_kv(x, pos)
        kv = st.window.decode(st.window.encode(kv))  # as stored: what later steps read
        prev, _ = st.window_rows()
        table = torch.cat((prev, kv.float()))
        idx = window_band(s, prev.shape[0], cfg.window_size, x.device)
        st.push_window(kv)
        if self.ratio:
            st.reserve(p0 + s)
            self.compressor(x, p0, st.comp, self._qat_rope)
            limit = (pos + 1) // self.ratio
            n = (p0 + s) // self.ratio
            if self.ratio == 4:
                ids, ok = self.indexer(x, qr, pos, p0, st.index, limit, self.rope)
            else:
                ids = torch.arange(n, device=x.device).expand(s, n)
                ok = ids < limit[:, None]
            idx = torch.cat((idx, torch.where(ok, ids + table.shape[0], -1)), 1)
            table = torch.cat((table, st.comp.rows.dense(n)))
        attend = op("sparse_rows.gather_attention", q.device)
        o = attend(q, table, idx.to(torch.int32), self.attn_sink, cfg.head_dim ** -0.5,
                   (pos, self.freqs))
        return self._project_out(o)

    def decode(self, x: torch.Tensor, t: torch.Tensor, st: LayerState) -> torch.Tensor:
        """One token x [1, D] at position t [1] -> [1, D]. Static shapes: the ring [W] and the
        top-k (CSA) or every row of the capacity (HCA), masked; writes st in place."""
        cfg, h, d = self.cfg, self.cfg.n_heads, self.cfg.head_dim
        rot = rotation(t, self.freqs2, self.sign)
        qr, kv = project(x, (self.wq_a, self.wkv))
        qr = self.q_norm(qr)
        q = rotate(rms(self.wq_b(qr).view(1, h, d), cfg.norm_eps), rot)
        st.window.put(t % cfg.window_size, self._row(kv, t, rot, self.kv_norm))
        rows, hide = st.window.dense(), self.slots > t  # every slot once t ≥ W−1
        if self.ratio:
            self.compressor.decode(x, t, st.comp, self._entry)
            if self.ratio == 4:
                ids, ok = self.indexer.decode(x, qr, t, st.index, rot, self._entry_rope)
                extra = st.comp.rows.gather(ids)
            else:
                extra = st.comp.rows.dense()
                ok = torch.arange(extra.shape[0], device=x.device) < (t + 1) // self.ratio
            rows, hide = torch.cat((rows, extra)), torch.cat((hide, ~ok))
        fused = kernel("attention.sparse_attention", x.device)
        if fused is not None:  # the Triton kernel, inverse RoPE fused
            o = fused(q, rows, ~hide[None], self.attn_sink, d ** -0.5, (t, self.freqs))
        else:
            o = rotate(attend(q, rows, hide, self.attn_sink, d ** -0.5), rot, inverse=True)
        return self._project_out(o)

    def _row(self, x: torch.Tensor, pos: torch.Tensor, rot: Rotation, norm) -> torch.Tensor:
        """A KV row or compressed entry x [1, d]: RMSNorm, RoPE at pos, (official) the FP8
        round trip of the nope dims: `_qat_rope` in a decode step's few ops."""
        fused = kernel("cache_insert.norm_rope", x.device)
        if fused is not None:
            return fused(x, norm.float_weight(), self.cfg.norm_eps, pos, self.freqs,
                         64 if self.numerics.kv_fp8 else 0)
        r = self.cfg.rope_head_dim
        x = norm(x)
        if not self.numerics.kv_fp8:
            return rotate(x, rot)
        nope, tail = x[:, :-r], rotate_tail(x[:, -r:].float(), rot)
        nope = fp8_roundtrip(nope, 64)
        return torch.cat((nope, tail.to(nope.dtype)), -1)

    def _entry_rope(self, pos: torch.Tensor) -> Rotation:
        return rotation(pos, self.freqs2, self.sign)

    def _entry(self, pooled: torch.Tensor, pos: torch.Tensor, norm) -> torch.Tensor:
        """A decode step's compressed entry [1, d] at position pos [1] (see `_row`)."""
        return self._row(pooled, pos, self._entry_rope(pos), norm)

    def _project_out(self, o: torch.Tensor) -> torch.Tensor:
        """o [S, H, d] -> groups [S, G, H·d/G] -> wo_a per group [S, G, r] -> wo_b [S, D]."""
        cfg = self.cfg
        g = o.reshape(o.shape[0], cfg.o_groups, -1)
        res = self.wo_a.resident
        if isinstance(res, PackedF16):  # packed per group (engine.weights.placement)
            return self.wo_b(res.grouped(g).flatten(1))
        scale = 1.0
        if isinstance(res, Half):
            w, scale = res.half.view(cfg.o_groups, cfg.o_lora_rank, -1), 2.0 ** res.shift
        else:
            w = self.wo_a.dequantized().view(cfg.o_groups, cfg.o_lora_rank, -1)
        if g.shape[0] == 1 and (torch.compiler.is_compiling() or gemv_f16.usable(w)):
            z = rows_at(g[0], w, _groups(cfg.o_groups, g.device)).unsqueeze(0)
        else:
            z = torch.einsum("sgi,goi->sgo", g, w.to(g.dtype))  # the release runs wo_a unquantized
        return self.wo_b((z * scale if scale != 1.0 else z).flatten(1))


def _groups(n: int, device: torch.device) -> torch.Tensor:
    """[0, 1, .., n-1]: wo_a's groups as rows_at's index (built once when running eagerly)."""
    if torch.compiler.is_compiling():
        return torch.arange(n, device=device)
    return cached(("arange", n), device, lambda: torch.arange(n, device=device))
