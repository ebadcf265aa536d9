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
from engine.kernels import registry
from engine.kernels.indexer import index_scores_ref as index_scores  # noqa: F401
from engine.kernels.indexer import topk_mask
from engine.kv.state import CompressorState
from engine.layers.compressor import Compressor
from engine.layers.linear import PLAIN, Linear
from engine.numerics import Numerics


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
        scores = registry.get("indexer.index_scores", q.device)(q, st.rows, w)
        return topk_mask(scores, visible, self.topk)
