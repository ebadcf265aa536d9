"""Loader: the release layout (make-tiny round trip, every Flash tensor name), transformers'
checkpoints, and errors that name the tensor, the file and the expected shape."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.config import preset
from engine.weights import loader
from engine.weights.tiny import official_tensors, random_model, transformers_state_dict
from tests.conftest import CONFORMANCE, REPO_ROOT

FAMILIES = CONFORMANCE / "dsv4-flash-config" / "tensor_families.json"


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality, whatever the dtype (float8 has no ==)."""
    return a.dtype == b.dtype and torch.equal(a.view(torch.uint8), b.view(torch.uint8))


def test_make_tiny_round_trips_exactly(tiny_ckpt):
    original = official_tensors(random_model(preset("tiny"), seed=0))
    loaded = official_tensors(loader.load(tiny_ckpt))
    assert loaded.keys() == original.keys()
    assert all(_same(loaded[k].contiguous(), original[k]) for k in original)


def test_make_tiny_writes_the_release_formats(tiny_ckpt):
    index = json.loads((tiny_ckpt / "model.safetensors.index.json").read_text())
    shard = tiny_ckpt / index["weight_map"]["layers.1.attn.wq_a.weight"]
    dtypes = {}
    for f in sorted(set(index["weight_map"].values())):
        with safe_open(str(tiny_ckpt / f), "pt") as h:
            dtypes.update({k: h.get_slice(k).get_dtype() for k in h.keys()})  # noqa: SIM118
    assert shard.is_file()
    assert dtypes["layers.1.attn.wq_a.weight"] == "F8_E4M3"
    assert dtypes["layers.1.attn.wq_a.scale"] == "F8_E8M0"
    assert dtypes["layers.3.ffn.experts.7.w2.weight"] == "I8"
    assert dtypes["layers.0.ffn.gate.tid2eid"] == "I64"
    assert dtypes["mtp.0.e_proj.weight"] == "F8_E4M3"
    assert dtypes["layers.2.attn.compressor.ape"] == "F32"


def test_loaded_checkpoint_gives_the_same_logits(tiny_ckpt, tiny_model, tokens):
    model = loader.load(tiny_ckpt, mode="reference")
    assert torch.equal(model(tokens[:40]), tiny_model(tokens[:40]))


def test_transformers_save_pretrained_checkpoint_loads(tmp_path, hf_model, tiny_model, tokens):
    hf_model.save_pretrained(tmp_path / "hf")
    model = loader.load(tmp_path / "hf", mode="reference")
    assert model.cfg.weight_dtype == "bf16" and len(model.mtp) == 0
    assert model.layers[0].attn.wq_a.weight.dtype == torch.float32  # kept as saved
    assert (model(tokens[:140]) - tiny_model(tokens[:140])).abs().max() <= 1e-5


def test_transformers_runtime_names_load(tmp_path, hf_model, tiny_model, tokens):
    """The module names transformers uses in memory (fused gate_up_proj, q_a_proj, …)."""
    out = tmp_path / "rt"
    out.mkdir()
    save_file(transformers_state_dict(tiny_model), str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(hf_model.config.to_dict()))
    model = loader.load(out, mode="reference")
    assert (model(tokens[:60]) - tiny_model(tokens[:60])).abs().max() <= 1e-5


def _edit_shard(ckpt, tmp_path, edit):
    dst = tmp_path / "edited"
    shutil.copytree(ckpt, dst)
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    fname = index["weight_map"]["layers.1.attn.wkv.weight"]
    with safe_open(str(dst / fname), "pt") as h:
        tensors = {k: h.get_tensor(k) for k in h.keys()}  # noqa: SIM118
    edit(tensors)
    save_file(tensors, str(dst / fname))
    return dst, fname


def test_missing_tensor_is_named_with_its_shape(tiny_ckpt, tmp_path):
    dst, _ = _edit_shard(tiny_ckpt, tmp_path, lambda t: t.pop("layers.1.attn.wkv.weight"))
    with pytest.raises(loader.LoadError, match=r"layers\.1\.attn\.wkv\.weight: missing .*"
                                               r"expected shape \[64, 64\]"):
        loader.load(dst)


def test_missing_expert_is_named(tiny_ckpt, tmp_path):
    dropped = []

    def drop(t):
        dropped.append(next(k for k in sorted(t) if re.fullmatch(r".*experts\.\d+\.w2\.scale", k)))
        t.pop(dropped[0])
    dst, _ = _edit_shard(tiny_ckpt, tmp_path, drop)
    with pytest.raises(loader.LoadError, match=re.escape(dropped[0]) + r": missing .*\[64, 1\]"):
        loader.load(dst)


def test_extra_tensor_is_named_with_its_file(tiny_ckpt, tmp_path):
    def add(t):
        t["layers.1.attn.surprise"] = torch.zeros(3)
    dst, fname = _edit_shard(tiny_ckpt, tmp_path, add)
    with pytest.raises(loader.LoadError, match=re.escape(f"layers.1.attn.surprise in {fname}: "
                                                         "unexpected")):
        loader.load(dst)


def test_misshaped_tensor_names_file_and_expected_shape(tiny_ckpt, tmp_path):
    def bad(t):
        t["layers.1.attn.wkv.weight"] = t["layers.1.attn.wkv.weight"][:32].contiguous()
    dst, fname = _edit_shard(tiny_ckpt, tmp_path, bad)
    with pytest.raises(loader.LoadError, match=re.escape(
            f"layers.1.attn.wkv.weight in {fname}: shape [32, 64], expected [64, 64]")):
        loader.load(dst)


def _expand(spec: str | None) -> list[int]:
    out = []
    for part in (spec or "").split(","):
        if "-" in part:
            a, b = part.split("-")
            out += range(int(a), int(b) + 1)
        elif part:
            out.append(int(part))
    return out


def test_every_flash_tensor_name_maps_with_its_shape_and_dtype():
    fam = json.loads(FAMILIES.read_text())
    want = {}
    for f in fam["families"]:
        for layer in _expand(f["layers"]) or [None]:
            for e in _expand(f.get("experts")) or [None]:
                name = f["name"].replace("{L}", str(layer)).replace("{E}", str(e))
                want[name] = (tuple(f["shape"]), f["dtype"])
    assert len(want) == fam["expected_totals"]["tensors"] == 69187
    got = loader.expected_tensors(loader.build(preset("flash")))
    assert got == want


def test_flash_on_meta_reports_stored_bytes():
    model = loader.build(preset("flash"))
    main = sum(model.stored_bytes(include_mtp=False).values())
    total = sum(model.stored_bytes().values())
    assert 155e9 < main < 157e9  # ≈156 GB: FP8/FP4 as stored, not a bf16 blow-up
    assert total == 159_609_485_896  # the published tensor bytes of the release


def test_loading_a_checkpoint_imports_neither_dynamo_nor_triton(tiny_ckpt):
    """Loading builds the model on the meta device: a random init there pulls in torch._dynamo
    and a compiled triton, which then keeps the kernel tests (and TRITON_INTERPRET) from
    working in the same process, and costs seconds."""
    import subprocess
    import sys

    code = ("import sys; from engine.api import Engine; Engine.load(sys.argv[1]); "
            "print(sorted(m for m in ('triton', 'torch._dynamo') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_ckpt)], capture_output=True,
                         text=True, timeout=120, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
