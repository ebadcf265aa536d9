"""The MTP block: from the main model's final streams at i and token i+1, logits for i+2."""

from __future__ import annotations

import torch


def test_mtp_logits_shape_and_dependence(tiny_model, tokens):
    toks = tokens[:50]
    st = tiny_model.new_state()
    streams = tiny_model.streams(toks[:-1], st)
    lg = tiny_model.mtp_logits(streams, toks[1:], st)
    assert lg.shape == (49, tiny_model.cfg.vocab_size) and lg.std() > 0.1
    other = tiny_model.mtp_logits(streams, (toks[1:] + 1) % 1024, tiny_model.new_state())
    assert (other - lg).abs().amax(-1).min() > 1e-4  # each position sees its next token


def test_mtp_block_is_a_sliding_window_block_with_its_own_state(tiny_model):
    blk = tiny_model.mtp[0]
    assert blk.attn.ratio == 0 and not blk.ffn.gate.hashed
    assert tiny_model.new_state().mtp[0].comp is None


def test_mtp_decode_equals_mtp_prefill(tiny_model, tokens):
    toks = tokens[:140]
    st = tiny_model.new_state()
    streams = tiny_model.streams(toks[:-1], st)
    full = tiny_model.mtp_logits(streams, toks[1:], st)
    st2 = tiny_model.new_state()
    steps = [tiny_model.mtp_logits(streams[i:i + 1], toks[i + 1:i + 2], st2)
             for i in range(len(toks) - 1)]
    assert (torch.cat(steps) - full).abs().max() <= 1e-5
