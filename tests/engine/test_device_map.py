"""Device maps: reading the spec, placing a model's tensors, loading straight onto devices.

This machine has no GPU, so placement is checked with 'meta' as the second device (where every
tensor must land is the point) and numerics on the CPU; the `gpu` tests run the same model over
real CUDA devices and compare its logits with the CPU's."""

from __future__ import annotations

import copy

import pytest
import torch

from engine.api import Engine
from engine.kv.prefix import extend
from engine.weights import device_map as dm
from engine.weights.loader import build, load

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def meta_model(tiny_model):
    return build(tiny_model.cfg, with_mtp=True)


def test_cpu_and_nothing_put_every_unit_on_the_cpu(meta_model):
    for spec in (None, "", "cpu"):
        dmap = dm.resolve(spec, meta_model)
        assert set(dmap.values()) == {"cpu"}
        assert {"embed", "head", "layers.0", "layers.3", "mtp.0"} <= set(dmap)


def test_a_list_of_devices_splits_blocks_in_order_by_bytes(meta_model):
    dmap = dm.resolve("cpu,meta", meta_model)
    order = [dmap[u] for u in dm.blocks(meta_model)]
    assert order == sorted(order, key=["cpu", "meta"].index)  # contiguous, in order
    w = dm.weights_of(meta_model)
    share = {d: sum(w.blocks[u] + w.experts.get(u, 0) for u in dm.blocks(meta_model)
                    if dmap[u] == d) for d in ("cpu", "meta")}
    assert min(share.values()) > 0.25 * sum(share.values())  # both carry a real share
    assert dmap["embed"] == "cpu" and dmap["head"] == dmap["layers.3"]


def test_devices_and_units_mix(meta_model):
    dmap = dm.resolve("meta,experts=cpu,layers.0=cpu", meta_model)
    assert dmap["layers.0"] == "cpu" and dmap["layers.1"] == "meta" and dmap["mtp.0"] == "meta"
    assert all(dmap[f"layers.{i}.ffn.experts"] == "cpu" for i in range(4))


def test_explicit_units_and_host_experts(meta_model):
    dmap = dm.resolve("layers.0-1=cpu,layers.2-3=meta,mtp.0=meta,experts=cpu", meta_model)
    assert dmap["layers.1"] == "cpu" and dmap["layers.2"] == "meta"
    assert dmap["layers.3.ffn.experts"] == "cpu" and dmap["head"] == "meta"
    assert dm.device_of("layers.3.ffn.experts.w1_weight", dmap) == "cpu"
    assert dm.device_of("layers.3.ffn.gate.weight", dmap) == "meta"
    assert dm.describe(dmap) == "layers.0-1 cpu; layers.2-3, mtp.0 meta; routed experts cpu"
    assert dm.describe(dm.resolve("cpu", meta_model)
                       ) == "layers.0-3, mtp.0 cpu"


@pytest.mark.parametrize("spec, says", [
    ("layers.0-1=cpu", "no device for layers.2-3, mtp.0"),
    ("layers.0-3=cpu,layers.9=cpu,mtp.0=cpu", "no layers.9"),
    ("layers=cpu", "cannot read 'layers=cpu'"),
    ("xpu:0", "only cpu and cuda"),
    ("nonsense!", "not a device"),
])
def test_bad_specs_say_what_is_wrong(meta_model, spec, says):
    with pytest.raises(ValueError, match="--device-map") as e:
        dm.resolve(spec, meta_model)
    assert says in str(e.value)


@pytest.mark.skipif(not NO_CUDA, reason="checks the message on a machine without CUDA")
def test_a_gpu_on_a_machine_without_one_is_refused_at_load(tiny_ckpt):
    with pytest.raises(ValueError, match="CUDA is not available"):
        Engine.load(tiny_ckpt, device_map="cuda:0")
    assert set(dm.resolve("auto", build(load(tiny_ckpt).cfg)).values()) == {"cpu"}


def test_place_moves_every_tensor_where_the_map_says(tiny_model):
    model = copy.deepcopy(tiny_model)
    dmap = dm.resolve("layers.0-1=cpu,layers.2-3=meta,mtp.0=meta,experts=cpu", model)
    dm.place(model, dmap)
    for name, p in model.named_parameters():
        assert p.device.type == dm.device_of(name, dmap), name
    assert model.layers[0].attn.freqs.device.type == "cpu"
    assert model.layers[2].attn.freqs.device.type == "meta"  # plain tensors follow the block
    assert model.layers[2].ffn.experts.w1_weight.device.type == "cpu"
    assert model.embed.weight.device.type == "cpu" and model.head.weight.device.type == "meta"


def test_loading_with_a_map_gives_the_same_logits(tiny_ckpt, tokens):
    plain = load(tiny_ckpt, "reference")
    mapped = load(tiny_ckpt, "reference", device_map="layers.0-1=cpu,layers.2-3=cpu,mtp.0=cpu,"
                                                     "experts=cpu")
    assert torch.equal(plain(tokens[:140]), mapped(tokens[:140]))


@pytest.mark.gpu
@pytest.mark.skipif(NO_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("spec", ["cuda:0", "auto", "layers.0-1=cuda:0,layers.2-3=cuda:{last},"
                                  "mtp.0=cuda:{last}", "cuda:0,experts=cpu"])
def test_gpu_maps_match_the_cpu(tiny_ckpt, tokens, spec):
    last = torch.cuda.device_count() - 1
    spec = spec.format(last=last)
    ref = load(tiny_ckpt, "reference")
    gpu = load(tiny_ckpt, "reference", device_map=spec)
    st_r, st_g = ref.new_state(), gpu.new_state()
    a = extend(ref, tokens[:200], st_r, last_only=True)
    b = extend(gpu, tokens[:200], st_g, last_only=True).cpu()
    assert (a - b).abs().max() <= 1e-3
    a, b = ref(tokens[200:201], st_r), gpu(tokens[200:201], st_g).cpu()  # decode: host compute
    assert (a - b).abs().max() <= 1e-3
