"""`reference` mode against transformers' DeepseekV4ForCausalLM, float32, same weights.

The tiny config has a sliding block, two CSA blocks and an HCA block, hash-routed MoE in blocks
0-1 and score-routed after; its index_topk exceeds the compressed rows here, so indexer ties
cannot matter. Lengths cross the CSA (4), window (128) and HCA (128) boundaries.
"""

from __future__ import annotations

import pytest
import torch

from engine.config import preset
from engine.weights.tiny import random_model, transformers_state_dict
from tests.engine.conftest import LENGTHS, hf_logits


def test_tiny_config_covers_every_block_kind(tiny_model):
    cfg = tiny_model.cfg
    assert set(cfg.layer_types) == {"sliding_attention", "compressed_sparse_attention",
                                    "heavily_compressed_attention"}
    assert set(cfg.mlp_layer_types) == {"hash_moe", "moe"}
    assert cfg.index_topk > 300 // 4


@pytest.mark.parametrize("n", LENGTHS)
def test_logits_match_transformers(n, tiny_model, hf_model, tokens):
    ours = tiny_model(tokens[:n])
    theirs = hf_logits(hf_model, tokens[:n])
    assert ours.shape == theirs.shape == (n, tiny_model.cfg.vocab_size)
    assert (ours - theirs).abs().max().item() <= 1e-4
    assert ours.std() > 0.1  # real signal, not a degenerate all-zero model


def test_hca_rows_reach_the_logits_only_after_their_window_closes(tiny_model, tokens):
    """Perturb the HCA block's compressor: positions < 127 cannot see entry 0, later ones do.
    This shows the comparison above really covers compressed attention."""
    ape = tiny_model.layers[2].attn.compressor.ape
    base = tiny_model(tokens[:200])
    saved = ape.data.clone()
    try:
        ape.data += torch.randn(ape.shape, generator=torch.Generator().manual_seed(1))
        moved = (tiny_model(tokens[:200]) - base).abs().amax(-1)
    finally:
        ape.data = saved
    assert moved[:127].max() == 0
    assert moved[127:].min() > 1e-4


@pytest.fixture(scope="module")
def small_window_pair():
    """Window 8 (both sides agree), so 300 tokens cross the window boundary 37 times."""
    from transformers import DeepseekV4Config, DeepseekV4ForCausalLM

    ours = random_model(preset("tiny", window_size=8), seed=4, mode="reference")
    cfg = DeepseekV4Config(**ours.cfg.to_transformers())
    cfg._attn_implementation = "eager"
    theirs = DeepseekV4ForCausalLM(cfg).float().eval()
    theirs.load_state_dict(transformers_state_dict(ours), strict=True)
    return ours, theirs


@pytest.mark.parametrize("n", [9, 17, 300])
def test_small_window_matches_transformers(n, small_window_pair, tokens):
    ours, theirs = small_window_pair
    assert (ours(tokens[:n]) - hf_logits(theirs, tokens[:n])).abs().max().item() <= 1e-4
