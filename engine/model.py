"""DeepSeek-V4 in plain PyTorch, in the order of the spec (docs/v4-flash-spec.md §2):

  embed → n_hc copies of the stream → blocks (mHC ∘ attention, mHC ∘ MoE) → hc_head → norm
  → head;  MTP: embed(next token) + streams → one more block → its own hc_head/norm → head.

One sequence at a time (no batch dim): tokens [S] at positions state.pos.., streams [S, n, D].
Module names equal the release's tensor names (experts stacked, see layers/moe.py), so the
loader maps `layers.3.attn.wq_a.weight` straight onto `layers.3.attn.wq_a.weight`.
Quantization is data (the weights' formats) and numerics (`Numerics`), both set from outside.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.config import ModelConfig
from engine.kv.state import LayerState, ModelState
from engine.layers import mhc
from engine.layers.attention import Attention
from engine.layers.linear import Linear
from engine.layers.moe import MoE
from engine.layers.norm import RMSNorm
from engine.numerics import Numerics


class Block(nn.Module):
    """One transformer block: X ← site_attn(X, Attention); X ← site_ffn(X, MoE)."""

    def __init__(self, cfg: ModelConfig, layer: int, numerics: Numerics):
        super().__init__()
        self.cfg = cfg
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg, layer, numerics)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn = MoE(cfg, layer, numerics)
        m, n = (2 + cfg.hc_mult) * cfg.hc_mult, cfg.hc_mult * cfg.dim
        for site in ("attn", "ffn"):
            self.register_parameter(f"hc_{site}_fn", _param(m, n))
            self.register_parameter(f"hc_{site}_base", _param(m))
            self.register_parameter(f"hc_{site}_scale", _param(3))
        self.hc_sel = mhc.scale_index(cfg.hc_mult)

    def _site(self, site: str, x: torch.Tensor):
        c = self.cfg
        return mhc.hc_pre(x, getattr(self, f"hc_{site}_fn"), getattr(self, f"hc_{site}_base"),
                          getattr(self, f"hc_{site}_scale"), c.hc_sinkhorn_iters, c.hc_eps,
                          c.norm_eps, self.hc_sel)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, st: LayerState,
                t: torch.Tensor | None = None) -> torch.Tensor:
        """x [S, n, D] streams -> [S, n, D]. With t (one token's position [1]) attention takes
        its static decode step."""
        u, post, comb = self._site("attn", x)
        a = self.attn(self.attn_norm(u), st) if t is None else self.attn.decode(
            self.attn_norm(u), t, st)
        x = mhc.hc_post(a, x, post, comb)
        u, post, comb = self._site("ffn", x)
        return mhc.hc_post(self.ffn(self.ffn_norm(u), tokens), x, post, comb)


def _param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.zeros(shape), requires_grad=False)


def _to(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x if x.device == device else x.to(device)


class MTPBlock(Block):
    """Next-next-token block: X̃_j = e_proj·enorm(embed[t+1]) + h_proj·hnorm(X_j), then a
    sliding-window block, then its own hc_head and norm (embed/head shared with the model)."""

    def __init__(self, cfg: ModelConfig, layer: int, numerics: Numerics):
        super().__init__(cfg, layer, numerics)
        self.e_proj = Linear(cfg.dim, cfg.dim, cfg.weight_dtype, numerics)
        self.h_proj = Linear(cfg.dim, cfg.dim, cfg.weight_dtype, numerics)
        self.enorm, self.hnorm = RMSNorm(cfg.dim, cfg.norm_eps), RMSNorm(cfg.dim, cfg.norm_eps)
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.hc_head_fn = _param(cfg.hc_mult, cfg.hc_mult * cfg.dim)
        self.hc_head_base, self.hc_head_scale = _param(cfg.hc_mult), _param(1)

    def forward_mtp(self, streams: torch.Tensor, e: torch.Tensor, tokens: torch.Tensor,
                    st: LayerState) -> torch.Tensor:
        """streams [S, n, D] (main model, before hc_head), e = embed[next tokens] [S, D]
        -> normed hidden [S, D] for the head."""
        x = self.e_proj(self.enorm(e)).unsqueeze(1) + self.h_proj(self.hnorm(streams))
        x = self.forward(x, tokens, st)
        c = self.cfg
        h = mhc.hc_head(x, self.hc_head_fn, self.hc_head_base, self.hc_head_scale, c.hc_eps,
                        c.norm_eps)
        return self.norm(h)


class Transformer(nn.Module):
    """The whole model. `forward(tokens, state)` -> logits [S, vocab] (float32)."""

    def __init__(self, cfg: ModelConfig, numerics: Numerics | None = None,
                 dtype: torch.dtype = torch.float32, with_mtp: bool = True):
        super().__init__()
        self.cfg, self.dtype = cfg, dtype
        self.numerics = numerics or Numerics.of("official")
        nm = self.numerics
        # given storage: no random init (on meta that would import torch._dynamo and triton)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim, _weight=torch.empty(
            cfg.vocab_size, cfg.dim, dtype=torch.bfloat16))
        self.embed.weight.requires_grad_(False)
        self.layers = nn.ModuleList(Block(cfg, i, nm) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.head = Linear(cfg.dim, cfg.vocab_size, "bf16", nm)
        self.hc_head_fn = _param(cfg.hc_mult, cfg.hc_mult * cfg.dim)
        self.hc_head_base, self.hc_head_scale = _param(cfg.hc_mult), _param(1)
        n_mtp = cfg.n_mtp_layers if with_mtp else 0
        self.mtp = nn.ModuleList(MTPBlock(cfg, cfg.n_layers + i, nm) for i in range(n_mtp))

    def set_mode(self, mode: str) -> None:
        """'reference' or 'official' (see engine.numerics)."""
        self.numerics.set(Numerics.of(mode))

    def new_state(self) -> ModelState:
        return ModelState([b.attn.new_state(self.dtype) for b in self.layers],
                          [b.attn.new_state(self.dtype) for b in self.mtp])

    def streams(self, tokens: torch.Tensor, state: ModelState,
                t: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [S] at positions state.pos.. -> final residual streams [S, n, D]. With t
        (the position [1] of one token) every block takes its static decode step, and the
        caller advances the blocks' positions (see `decode_step`)."""
        tokens = _to(tokens, self.embed.weight.device)  # callers build ids on the CPU
        e = self.embed(tokens)
        e = e if e.dtype == self.dtype else e.to(self.dtype)
        x = e.unsqueeze(1).expand(-1, self.cfg.hc_mult, -1).contiguous()
        for block, st in zip(self.layers, state.layers, strict=True):
            dev = block.attn_norm.weight.device  # blocks may sit on several devices
            x = block(_to(x, dev), _to(tokens, dev), st, None if t is None else _to(t, dev))
        return x

    def decode_step(self, token: torch.Tensor, t: torch.Tensor,
                    state: ModelState) -> torch.Tensor:
        """One token [1] at position t [1] (a tensor on the weights' device) -> logits
        [1, vocab]. Static shapes, no host reads: every block writes its state in place, and
        nothing here depends on the context length but the buffers' capacities (reserve them
        first). The positions are the caller's to advance (engine/decode.py); the same
        function runs eagerly, compiled and captured as a CUDA graph."""
        return self.logits(self.streams(token, state, t))

    def logits(self, streams: torch.Tensor) -> torch.Tensor:
        """hc_head → norm → head, float32 [S, vocab]."""
        c = self.cfg
        streams = streams.to(self.hc_head_fn.device)
        h = mhc.hc_head(streams, self.hc_head_fn, self.hc_head_base, self.hc_head_scale,
                        c.hc_eps, c.norm_eps)
        h = self.norm(h)
        y = self.head(h if h.dtype == torch.float32 else h.float(), act_quant=False)
        return y if y.dtype == torch.float32 else y.float()

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, state: ModelState | None = None) -> torch.Tensor:
        """Prefill or decode: any number of tokens, continuing from `state` (fresh if None).
        One token takes the static decode step (eagerly; engine/decode.py compiles it)."""
        state = state if state is not None else self.new_state()
        if tokens.shape[0] != 1:
            return self.logits(self.streams(tokens, state))
        state.reserve(state.pos + 1)
        t = torch.full((1,), state.pos, device=self.embed.weight.device)
        logits = self.decode_step(tokens, t, state)
        for s in state.layers:
            s.pos += 1
        return logits

    @torch.no_grad()
    def mtp_logits(self, streams: torch.Tensor, next_tokens: torch.Tensor,
                   state: ModelState, depth: int = 0) -> torch.Tensor:
        """MTP: streams of positions i [S, n, D] and tokens i+1 [S] -> logits for i+2."""
        blk = self.mtp[depth]
        next_tokens = next_tokens.to(self.embed.weight.device)
        e = self.embed(next_tokens).to(self.dtype)
        dev = blk.attn_norm.weight.device
        h = blk.forward_mtp(streams.to(dev), e.to(dev), next_tokens.to(dev), state.mtp[depth])
        return self.head(h.float().to(self.head.weight.device), act_quant=False).float()

    def stored_bytes(self, include_mtp: bool = True) -> dict[str, int]:
        """Bytes of every tensor as stored, by dtype (works on the meta device)."""
        out: dict[str, int] = {}
        for name, p in self.named_parameters():
            if not include_mtp and name.startswith("mtp."):
                continue
            key = str(p.dtype).removeprefix("torch.")
            out[key] = out.get(key, 0) + p.numel() * p.element_size()
        return out
