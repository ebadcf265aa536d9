"""Cache formats: sizes, exactness on the official path, the live rows, bytes per token."""

from __future__ import annotations

import pytest
import torch

from engine.config import preset
from engine.kv import pages, rows
from engine.quant import fp4_roundtrip, fp8_roundtrip, hadamard
from engine.weights.tiny import random_model


def test_row_sizes_of_the_flash_layout():
    cfg = preset("flash")
    assert pages.kv_row_bytes("fp8", cfg.head_dim, cfg.rope_head_dim) == 584
    assert pages.kv_row_bytes("bf16", cfg.head_dim, cfg.rope_head_dim) == 1024
    assert pages.index_row_bytes("fp4", cfg.index_head_dim) == 68
    assert pages.index_row_bytes("fp8", cfg.index_head_dim) == 132


def kv_qat(kv: torch.Tensor, rope_dim: int) -> torch.Tensor:
    """The official KV rounding (spec §2.11): FP8 round trip of the nope dims, 64-wide blocks."""
    return torch.cat((fp8_roundtrip(kv[..., :-rope_dim], 64), kv[..., -rope_dim:]), -1)


def _rows(n=37, d=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(n, d, generator=g) * torch.logspace(-3, 2, n)[:, None]
    r[3] = 0  # an all-zero row (amax floor)
    return r


@pytest.mark.parametrize("fmt", ["fp8", "fp8r32"])
def test_fp8_rows_are_exact_on_qat_values(fmt):
    rows = kv_qat(_rows(), 64)
    if fmt == "fp8":
        rows = rows.to(torch.bfloat16).float()  # a bf16 model's rope dims
    raw = pages.pack_kv(rows, 64, fmt)
    assert raw.shape == (37, pages.kv_row_bytes(fmt, 512, 64)) and raw.dtype == torch.uint8
    assert torch.equal(pages.unpack_kv(raw, 512, 64, fmt), rows)


def test_fp8_rows_round_unrounded_values():
    rows = _rows()
    back = pages.unpack_kv(pages.pack_kv(rows, 64, "fp8"), 512, 64, "fp8")
    assert not torch.equal(back, rows)
    assert torch.allclose(back, rows, rtol=0.07, atol=1e-6)


@pytest.mark.parametrize("fmt", ["fp4", "fp8", "bf16", "fp32"])
def test_index_keys(fmt):
    keys = fp4_roundtrip(hadamard(_rows(d=128)), 32)
    back = pages.unpack_index(pages.pack_index(keys, fmt), 128, fmt)
    assert back.shape == keys.shape
    if fmt in ("fp4", "fp32"):
        assert torch.equal(back, keys)  # fp4: exact on MXFP4-rounded keys (official)
    else:
        assert torch.allclose(back, keys, rtol=0.07, atol=1e-6)


def test_live_row_sizes_at_flash_shapes():
    cfg = preset("flash")
    assert rows.row_bytes("fp8", cfg.head_dim, cfg.rope_head_dim) == 583  # 448 + 7 + 128
    assert rows.row_bytes("fp4", cfg.index_head_dim) == 68
    live = rows.Rows.empty("fp8", cfg.head_dim, 64, rope=cfg.rope_head_dim)
    assert live.nbytes() == 64 * 583 and live.capacity == 64


@pytest.mark.parametrize("rope_dtype", [torch.float32, torch.bfloat16])
def test_fp8_live_rows_store_qat_values_and_read_bf16_rope(rope_dtype):
    vals = kv_qat(_rows(), 64)
    vals[:, -64:] = vals[:, -64:].to(rope_dtype).float()
    live = rows.Rows.empty("fp8", 512, 64, rope=64)
    live.put(torch.arange(37) * 1, vals)
    got = live.gather(torch.arange(37))
    assert torch.equal(got[:, :-64], vals[:, :-64])  # nope: exact
    assert torch.equal(got[:, -64:], vals[:, -64:].to(torch.bfloat16).float())
    assert torch.equal(live.dense(37), got)


def test_fp4_live_keys_are_exact_on_rounded_keys():
    keys = fp4_roundtrip(hadamard(_rows(d=128)), 32)
    live = rows.Rows.empty("fp4", 128, 64)
    live.write(3, keys)
    assert torch.equal(live.dense(40)[3:], keys)
    assert torch.equal(live.gather(torch.tensor([5, 3])), keys[[2, 0]])


def test_rows_grow_by_whole_pages_in_place_of_cat():
    live = rows.Rows.empty("float", 8, rows.PAGE)
    vals = torch.randn(200, 8)
    live.write(0, vals[:64])
    plane = live.planes[0]
    live.reserve(64)
    assert live.planes[0] is plane  # enough room: nothing moves
    live.reserve(65)
    assert live.capacity == 2 * rows.PAGE  # doubling, whole pages
    live.reserve(200)
    assert live.capacity == 4 * rows.PAGE
    live.write(64, vals[64:])
    assert torch.equal(live.dense(200), vals)
    assert live.copy(70).capacity == 2 * rows.PAGE  # a copy keeps the pages in use


@pytest.fixture(scope="module")
def official():
    return random_model(preset("tiny"), seed=2, mode="official")


def test_the_official_state_is_compact(official, tokens):
    """fp8 rows (window ring and compressed entries) and fp4 keys, read back as the decode
    step reads them: d=64, rope 16 -> 81 B a row (vs 256 B in float32), di=32 -> 17 B."""
    st = official.new_state()
    official(tokens[:270], st)
    lay = st.layers[1]
    assert lay.window.fmt == lay.comp.rows.fmt == "fp8" and lay.index.rows.fmt == "fp4"
    assert lay.window.nbytes() == 128 * 81 and lay.comp.rows.nbytes(1) == 81
    assert lay.index.rows.nbytes(1) == 17
    ref = random_model(preset("tiny"), seed=2, mode="reference").new_state()
    assert ref.layers[1].comp.rows.fmt == "float"  # reference numerics keep floats


def test_bytes_per_token_compressed_far_below_dense():
    cfg = preset("flash")
    b = pages.bytes_per_token(cfg, 16384)
    assert b["dense_mla_bf16"] == 43 * 1024
    assert b["total"] < b["dense_mla_bf16"] / 5
    short = pages.bytes_per_token(cfg, 1024)
    assert short["window"] > b["window"]  # the ring is a fixed cost, spread over the context
