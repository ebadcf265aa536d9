"""The lightning indexer of CSA blocks: picks which compressed rows each query attends to.

  K_j = indexer-compressed entry j (di dims, roped);  q_h = (wq_b·qr)_h, roped
  official: Hadamard then MXFP4 round trip on both
  I(t, j) = Σ_h w_h(t) · ReLU(q_h · K_j) · di^-½,  w = weights_proj·x · H^-½
  S_t = top-k over visible j (< (t+1)//4)
"""

from __future__ import annotations

import torch
from torch import nn

from engine.kernels.indexer import index_scores_ref as index_scores  # noqa: F401
from engine.kv.state import CompressorState
from engine.layers.compressor import Compressor
from engine.layers.linear import PLAIN, Linear
from engine.layers.ops import fp4_hadamard, kernel, op
from engine.layers.rotary import Rotation, rotate
from engine.numerics import Numerics


def order_keys(scores: torch.Tensor) -> torch.Tensor:
    """float32 scores [..., N] -> int64 keys in the same order, ties broken towards the lower
    index: top-k over them is one well-defined set (ReLU makes many scores exactly 0 and FP4
    keys collide), whatever the kernel and whether a query comes alone or in a chunk."""
    b = scores.contiguous().view(torch.int32)
    key = (b ^ ((b >> 31) & 0x7FFFFFFF)).long()  # IEEE order as integers
    n = scores.shape[-1]
    return key * n + torch.arange(n - 1, -1, -1, device=scores.device)


def select(scores: torch.Tensor, limit: torch.Tensor, k: int):
    """The top-k of scores [S, N] among entries j < limit [S]: (ids [S, k] ascending,
    ok [S, k] — False where fewer than k are visible). Static shapes: k does not depend on
    the values."""
    cols = torch.arange(scores.shape[-1], device=scores.device)
    scores = scores.masked_fill(cols >= limit.unsqueeze(-1), float("-inf"))
    ids = order_keys(scores).topk(k, -1).indices.sort(-1).values
    return ids, ids < limit.unsqueeze(-1)


class Indexer(nn.Module):
    """Checkpoint names: `wq_b`, `weights_proj`, `compressor.{wkv,wgate,ape,norm}`."""

    def __init__(self, dim: int, q_lora: int, heads: int, head_dim: int, topk: int,
                 fmt: str, eps: float, numerics: Numerics):
        super().__init__()
        self.heads, self.head_dim, self.topk, self.numerics = heads, head_dim, topk, numerics
        self.wq_b = Linear(q_lora, heads * head_dim, fmt, numerics)
        self.weights_proj = Linear(dim, heads, PLAIN, numerics)
        self.compressor = Compressor(dim, head_dim, 4, eps, numerics)

    def new_state(self, device=None) -> CompressorState:
        fmt = "fp4" if self.numerics.indexer_fp4 else "float"
        return self.compressor.new_state(fmt, device, floor=self.topk)

    def _qat(self, x: torch.Tensor) -> torch.Tensor:
        if not self.numerics.indexer_fp4:
            return x
        return fp4_hadamard(x, 32)

    def _query(self, x, qr, pos, rope):
        """q [S, H, di] (roped, rounded) and head weights w [S, H]."""
        q = self.wq_b(qr).view(x.shape[0], self.heads, self.head_dim)
        x = x if x.dtype == torch.float32 else x.float()
        w = self.weights_proj(x, act_quant=False) * (self.heads ** -0.5 * self.head_dim ** -0.5)
        return self._qat(rope(q, pos)), w

    def _finish(self, rope):
        return lambda rows, pos, norm: self._qat(rope(norm(rows), pos))

    def forward(self, x: torch.Tensor, qr: torch.Tensor, pos: torch.Tensor, p0: int,
                st: CompressorState, limit: torch.Tensor, rope):
        """Prefill: x [S, D], qr [S, q_lora] at positions p0.. -> (ids, ok) [S, k] of the
        rows each query attends to (`select`); limit [S] = its visible rows."""
        self.compressor(x, p0, st, self._finish(rope))
        q, w = self._query(x, qr, pos, rope)
        keys = st.rows.dense((p0 + x.shape[0]) // 4)
        scores = op("indexer.index_scores", q.device)(q, keys, w, limit)
        return select(scores, limit, min(self.topk, keys.shape[0]))

    def decode(self, x: torch.Tensor, qr: torch.Tensor, t: torch.Tensor, st: CompressorState,
               rot: Rotation, rotation_at):
        """One token at position t [1] (rot: its rotation; rotation_at(pos): an entry's)
        -> (ids, ok) [k] over the whole capacity (≥ k rows)."""
        self.compressor.decode(x, t, st, lambda rows, pos, norm: self._qat(
            rotate(norm(rows), rotation_at(pos))))
        q = self._qat(rotate(self.wq_b(qr).view(1, self.heads, self.head_dim), rot))
        x = x if x.dtype == torch.float32 else x.float()
        w = self.weights_proj(x, act_quant=False) * (self.heads ** -0.5 * self.head_dim ** -0.5)
        fused = kernel("indexer.index_scores", q.device)
        if fused is not None:
            scores = fused(q, st.rows.dense(), w)
        else:  # Σ_h w_h·ReLU(q_h·K_j) as two products: [H, di]·[di, N], then [H]·[H, N]
            scores = torch.mm(w, torch.relu(torch.mm(q[0].float(), st.rows.dense().t())))
        ids, ok = select(scores, (t + 1) // 4, self.topk)
        return ids[0], ok[0]
