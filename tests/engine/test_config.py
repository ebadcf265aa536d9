"""ModelConfig: the three spellings of config.json, presets, errors naming the field."""

from __future__ import annotations

import json

import pytest

from engine import config
from tests.conftest import CONFORMANCE

FLASH_DIR = CONFORMANCE / "dsv4-flash-config"


def test_official_flash_config_is_the_flash_preset():
    cfg = config.load(FLASH_DIR)
    assert cfg == config.preset("flash")
    assert cfg.layer_types[:4] == ["sliding_attention", "sliding_attention",
                                   "compressed_sparse_attention", "heavily_compressed_attention"]
    assert cfg.ratio(cfg.n_layers) == 0  # the MTP block is sliding-only
    assert cfg.weight_dtype == "fp8" and cfg.expert_dtype == "fp4"
    assert cfg.rope_factor == 16 and cfg.route_scale == 1.5 and cfg.n_hash_layers == 3


def test_inference_names_agree_with_the_release_names():
    assert config.load(FLASH_DIR / "inference" / "config.json") == config.load(FLASH_DIR)


def test_transformers_names_round_trip():
    from transformers import DeepseekV4Config

    for name in ("tiny", "flash"):
        cfg = config.preset(name)
        hf = DeepseekV4Config(**cfg.to_transformers()).to_dict()
        back = config.from_dict(hf)
        skip = {"weight_dtype", "expert_dtype"}  # transformers checkpoints are unquantized
        assert back.model_dump(exclude=skip) == cfg.model_dump(exclude=skip)
        assert back.weight_dtype == "bf16"
    tiny = config.preset("tiny")
    assert config.from_dict(tiny.to_official()) == tiny


def test_pro_preset_shape():
    pro = config.preset("pro")
    assert len(pro.compress_ratios) == 62 and pro.ratio(0) == 128 and pro.ratio(2) == 4
    assert pro.index_topk == 1024 and pro.route_scale == 2.5


@pytest.mark.parametrize("patch, field", [
    ({"compress_ratios": [0, 4]}, "compress_ratios"),
    ({"compress_ratios": None, "layer_types": ["sliding_attention", "global"]}, "layer_types"),
    ({"mlp_layer_types": ["moe", "hash_moe", "moe", "moe"]}, "mlp_layer_types"),
    ({"o_groups": 3}, "o_groups"),
    ({"num_hidden_layers": "many"}, "n_layers"),
])
def test_inconsistent_config_names_the_field(patch, field, tmp_path):
    raw = config.preset("tiny").to_official()
    raw.update(patch)
    raw = {k: v for k, v in raw.items() if v is not None}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(config.ConfigError) as e:
        config.load(tmp_path)
    assert str(e.value).startswith(field)


def test_unknown_preset_lists_the_choices():
    with pytest.raises(config.ConfigError, match="flash"):
        config.preset("huge")
