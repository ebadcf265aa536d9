"""Cache formats: sizes, exactness on the official path, paged storage, bytes per token."""

from __future__ import annotations

import pytest
import torch

from engine.config import preset
from engine.kv import pages
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


def test_paged_rows_append_gather_truncate_and_reuse():
    pool = pages.PagePool(row_bytes=5, page_rows=4)
    a, b = pages.PagedRows(pool), pages.PagedRows(pool)
    data = torch.arange(50, dtype=torch.uint8).view(10, 5)
    a.append(data[:3])
    b.append(data[:6])
    a.append(data[3:])
    assert torch.equal(a.rows(), data) and torch.equal(b.rows(), data[:6])
    assert len(a.table) == 3 and len(pool.pages) == 5
    a.truncate(5)
    assert torch.equal(a.rows(), data[:5]) and len(pool.free) == 1
    c = pages.PagedRows(pool)
    c.append(data[:2])
    assert len(pool.pages) == 5  # the freed page was reused


@pytest.fixture(scope="module")
def official():
    return random_model(preset("tiny"), seed=2, mode="official")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_state_is_lossless_on_the_official_path(official, tokens, dtype):
    """fp8r32 rows + fp4 keys: the continuation's logits are identical (not just close)."""
    official.dtype = dtype
    try:
        st = official.new_state()
        official(tokens[:270], st)
        pools = pages.Pools.for_config(official.cfg, "fp8r32", "fp4")
        packed = [pages.pack_layer(s, pools) for s in st.layers]
        back = st.copy()
        back.layers = [pages.unpack_layer(p, pools, dtype) for p in packed]
        want = official(tokens[270:280], st)
        got = official(tokens[270:280], back)
    finally:
        official.dtype = torch.float32
    assert torch.equal(got, want)
    sizes = pages.packed_bytes(packed)
    assert sizes["compressed"] == (270 // 4 * 2 + 270 // 128) * 120  # d=64, rope 16: 48 + 8 + 4·16
    assert sizes["indexer"] == 270 // 4 * 2 * 17  # di=32: 16 + 1


def test_bytes_per_token_compressed_far_below_dense():
    cfg = preset("flash")
    b = pages.bytes_per_token(cfg, 16384)
    assert b["dense_mla_bf16"] == 43 * 1024
    assert b["total"] < b["dense_mla_bf16"] / 5
    short = pages.bytes_per_token(cfg, 1024)
    assert short["window"] > b["window"]  # the ring is a fixed cost, spread over the context


def test_release_layout_is_exact_for_a_bf16_models_window(official, tokens):
    """584-B-style rows (bf16 rope) hold a bf16 model's window rows exactly; the compressed
    entries this engine computes in fp32 need fp8r32 (their rope dims are not bf16 values)."""
    official.dtype = torch.bfloat16
    try:
        st = official.new_state()
        official(tokens[:200], st)
    finally:
        official.dtype = torch.float32
    lay = st.layers[1]
    raw = pages.pack_kv(lay.window.float(), 16, "fp8")
    assert torch.equal(pages.unpack_kv(raw, 64, 16, "fp8"), lay.window.float())
    rows = lay.comp.rows
    back = pages.unpack_kv(pages.pack_kv(rows, 16, "fp8"), 64, 16, "fp8")
    assert torch.equal(back[:, :48], rows[:, :48]) and not torch.equal(back, rows)


@pytest.mark.parametrize("n", [1, 3, 100])
def test_a_short_state_packs_before_any_window_closed(official, tokens, n):
    """Under 128 tokens the HCA compressor has no rows yet (under 4, the CSA ones neither)."""
    st = official.new_state()
    official(tokens[:n], st)
    pools = pages.Pools.for_config(official.cfg, "fp8r32", "fp4")
    packed = [pages.pack_layer(s, pools) for s in st.layers]
    back = st.copy()
    back.layers = [pages.unpack_layer(p, pools, torch.float32) for p in packed]
    assert torch.equal(official(tokens[n:n + 2], back), official(tokens[n:n + 2], st))
