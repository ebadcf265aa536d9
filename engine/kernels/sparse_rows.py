"""Attention over an index set per query, for prefill chunks at long context: each query reads
only its window rows and the compressed rows it selected, never every row of the table.

  o_h = Σ_{i ∈ idx[s]} e^{s_i−M}·kv_i / (Σ e^{s_i−M} + e^{sink_h−M}),  s_i = q_h·kv_i·scale

The launcher is engine/kernels/attention.py's index-form kernel (`gather_attention`); this
module gives it a twin that gathers each query's rows (in blocks of queries, so memory stays
bounded) instead of the mask over all N rows that `attention.gather_attention_ref` builds: a
16K-token CSA layer selects 128-640 of thousands of rows, and O(S·K) beats O(S·N).

Shapes: q [S, H, d]; kv [N, d] float rows; idx [S, K] int32 row numbers, −1 = none; sink [H];
out [S, H, d] in q's dtype; inv_rope = (pos [S], freqs [r/2]) rotates the output back.
"""

from __future__ import annotations

import torch

from engine.kernels.attention import gather_attention  # noqa: F401 - the launcher
from engine.kernels.rope import apply_rope

QUERY_BLOCK = 64  # queries gathered at once: [64, K, d] floats


def gather_attention_ref(q: torch.Tensor, kv: torch.Tensor, idx: torch.Tensor,
                         sink: torch.Tensor, scale: float,
                         inv_rope: tuple | None = None) -> torch.Tensor:
    """The twin: per block of queries, gather their rows [s, K, d] and attend."""
    out = torch.empty_like(q)
    for a in range(0, q.shape[0], QUERY_BLOCK):
        b = min(a + QUERY_BLOCK, q.shape[0])
        out[a:b] = _block(q[a:b], kv, idx[a:b].long(), sink, scale)
    if inv_rope is not None:
        out = apply_rope(out, inv_rope[0], inv_rope[1], inverse=True)
    return out


def _block(q, kv, idx, sink, scale):
    rows = kv.float()[idx.clamp(min=0)]                              # [s, K, d]
    s = torch.einsum("shd,skd->shk", q.float(), rows) * scale
    s = s.masked_fill((idx < 0).unsqueeze(1), float("-inf"))
    sinks = sink.float().view(1, -1, 1).expand(s.shape[0], -1, 1)
    p = torch.softmax(torch.cat((s, sinks), -1), dim=-1)[..., :-1]
    return torch.einsum("shk,skd->shd", p, rows).to(q.dtype)
