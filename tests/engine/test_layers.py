"""Spec facts about single ops (docs/v4-flash-spec.md §2), independent of transformers."""

from __future__ import annotations

import torch

from engine.kernels.rope import apply_rope, inv_freq
from engine.layers import mhc
from engine.layers.attention import compressed_visible, sparse_attention, window_mask


def test_flash_yarn_table_blends_between_dims_15_and_25():
    plain = inv_freq(64, 160000.0)
    yarn = inv_freq(64, 160000.0, factor=16, orig_len=65536, beta_fast=32, beta_slow=1)
    assert torch.equal(yarn[:16], plain[:16])  # ramp 0 up to lo = 15
    assert torch.allclose(yarn[25:], plain[25:] / 16)  # ramp 1 from hi = 25
    assert ((yarn[16:25] < plain[16:25]) & (yarn[16:25] > plain[16:25] / 16)).all()


def test_rope_touches_only_the_trailing_dims_and_inverts():
    x = torch.randn(5, 3, 64, generator=torch.Generator().manual_seed(0))
    pos, f = torch.arange(100, 105), inv_freq(16, 10000.0)
    y = apply_rope(x, pos, f)
    assert torch.equal(y[..., :48], x[..., :48]) and not torch.equal(y[..., 48:], x[..., 48:])
    assert torch.allclose(apply_rope(y, pos, f, inverse=True), x, atol=1e-5)
    # interleaved pairs: channel 48/49 rotate by pos·f_0 = pos (f_0 = 1)
    a = torch.atan2(y[:, 0, 49], y[:, 0, 48]) - torch.atan2(x[:, 0, 49], x[:, 0, 48])
    assert torch.allclose(torch.remainder(a - pos.float() + torch.pi, 2 * torch.pi), torch.full(
        (5,), torch.pi), atol=1e-4)


def test_sinkhorn_order_row_softmax_then_columns_first():
    logits = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(1)) * 3
    c = mhc.sinkhorn(logits, iters=1, eps=1e-6)
    # one iteration = row softmax (+eps) and a single column normalisation
    want = torch.softmax(logits, -1) + 1e-6
    want = want / (want.sum(-2, keepdim=True) + 1e-6)
    assert torch.allclose(c, want)
    c20 = mhc.sinkhorn(logits, iters=20, eps=1e-6)
    assert torch.allclose(c20.sum(-2), torch.ones(2, 4), atol=1e-5)  # columns end normalised
    assert torch.allclose(c20.sum(-1), torch.ones(2, 4), atol=1e-2)  # rows nearly


def test_hc_post_applies_comb_transposed():
    x = torch.randn(1, 4, 8)
    comb = torch.zeros(1, 4, 4)
    comb[0, 2, 0] = 1.0  # C[j=2][k=0]: stream 2 flows into stream 0
    out = mhc.hc_post(torch.zeros(1, 8), x, torch.zeros(1, 4), comb)
    assert torch.equal(out[0, 0], x[0, 2]) and torch.equal(out[0, 2], torch.zeros(8))


def test_masks_follow_window_and_compression_causality():
    q = torch.tensor([0, 3, 130])
    w = window_mask(q, torch.arange(131), 128)
    assert w[0].nonzero().flatten().tolist() == [0]
    assert w[2].sum() == 128 and not w[2, 2] and w[2, 3]
    v = compressed_visible(torch.tensor([2, 3, 7, 8]), 3, 4)
    assert v.sum(-1).tolist() == [0, 1, 2, 2]


def test_sink_only_adds_to_the_denominator():
    q = torch.ones(1, 2, 4)
    kv = torch.ones(1, 4)
    o = sparse_attention(q, kv, torch.ones(1, 1, dtype=torch.bool), torch.tensor([-1e9, 2.0]),
                         0.5)
    # score 2 for the one row; head 0's sink is nothing, head 1's equals the score
    assert torch.allclose(o[0, 0], torch.ones(4)) and torch.allclose(o[0, 1], torch.full((4,), .5))
