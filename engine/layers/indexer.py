"""The lightning indexer of CSA blocks: picks which compressed rows each query attends to.

  K_j = indexer-compressed entry j (di dims, roped);  q_h = (wq_b·qr)_h, roped
  official: Hadamard then MXFP4 round trip on both
  I(t, j) = Σ_h w_h(t) · ReLU(q_h · K_j) · di^-½,  w = weights_proj·x · H^-½
  S_t = top-k over visible j (< (t+1)//4)
"""

from __future__ import annotations

import torch
from torch import nn

from engine import quant
from engine.layers.compressor import Compressor
from engine.layers.linear import PLAIN, Linear
from engine.numerics import Numerics
from engine.state import CompressorState


def index_scores(q: torch.Tensor, keys: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """q [S, H, di], keys [N, di], w [S, H] (scales folded in) -> scores [S, N]."""
    s = torch.relu(torch.einsum("shd,nd->shn", q.float(), keys.float()))
    return (s * w.float().unsqueeze(-1)).sum(1)


def topk_mask(scores: torch.Tensor, visible: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean [S, N]: the top-k visible entries per query (fewer when fewer are visible).
    Equal scores are common (ReLU makes many exactly 0; FP4 keys collide), so ties break
    towards the lower index, the same for a query whether it comes alone or in a chunk."""
    n = scores.shape[1]
    if n == 0:
        return visible
    scores = scores.masked_fill(~visible, float("-inf"))
    idx = torch.sort(scores, dim=-1, descending=True, stable=True).indices[:, : min(k, n)]
    sel = torch.zeros_like(visible).scatter_(1, idx, True)
    return sel & visible


class Indexer(nn.Module):
    """Checkpoint names: `wq_b`, `weights_proj`, `compressor.{wkv,wgate,ape,norm}`."""

    def __init__(self, dim: int, q_lora: int, heads: int, head_dim: int, topk: int,
                 fmt: str, eps: float, numerics: Numerics):
        super().__init__()
        self.heads, self.head_dim, self.topk, self.numerics = heads, head_dim, topk, numerics
        self.wq_b = Linear(q_lora, heads * head_dim, fmt, numerics)
        self.weights_proj = Linear(dim, heads, PLAIN, numerics)
        self.compressor = Compressor(dim, head_dim, 4, eps, numerics)

    def _qat(self, x: torch.Tensor) -> torch.Tensor:
        if not self.numerics.indexer_fp4:
            return x
        return quant.fp4_roundtrip(quant.hadamard(x), 32)

    def forward(self, x: torch.Tensor, qr: torch.Tensor, pos: torch.Tensor, st: CompressorState,
                visible: torch.Tensor, rope) -> torch.Tensor:
        """x [S, D], qr [S, q_lora] -> selection mask [S, N] over the compressed rows."""
        self.compressor(x, pos, st, lambda r, p: self._qat(rope(r, p)))
        q = self.wq_b(qr).view(x.shape[0], self.heads, self.head_dim)
        q = self._qat(rope(q, pos))
        w = self.weights_proj(x.float(), act_quant=False) * (self.heads ** -0.5
                                                             * self.head_dim ** -0.5)
        return topk_mask(index_scores(q, st.rows, w), visible, self.topk)
