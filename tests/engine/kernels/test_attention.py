"""Attention kernels vs their twin: decode and prefill, plain and FP8-nope + bf16-rope storage,
odd row counts, empty and length-1 index sets, window-edge masks, sink; the index set split
across programs and merged (flash decoding), queries in scratch-sized chunks, every autotune
config.
Tolerance: fp32 accumulation on both sides, so 1e-4 relative/absolute on fp32 inputs;
2e-2 for bf16 q (the output is rounded to bf16)."""

from __future__ import annotations

import pytest
import torch

from engine.kernels import attention as A
from engine.kernels._triton import pin_config
from engine.kernels.rope import inv_freq
from engine.layers.attention import compressed_visible, window_mask
from engine.quant import fp8_roundtrip
from tests.engine.kernels.conftest import gen


def _fp8_rows(n: int, d: int, r: int, g) -> A.KVFp8:
    """Rows in the cache's storage format, quantized per 64 nope channels."""
    x = torch.randn(n, d, generator=g) * 3
    nope = x[:, : d - r].unflatten(-1, (-1, min(64, d - r)))
    s = torch.exp2(torch.ceil(torch.log2(nope.abs().amax(-1).clamp(min=1e-4) / 448)))
    q = (nope / s[..., None]).to(torch.float8_e4m3fn).flatten(1)
    return A.KVFp8(q, s, x[:, d - r:].bfloat16())


@pytest.mark.parametrize("s,h,d,n", [(1, 4, 64, 37), (5, 3, 64, 130), (7, 17, 48, 1)])
def test_plain_rows_random_masks(s, h, d, n):
    g = gen(s * 100 + n)
    q, kv = torch.randn(s, h, d, generator=g), torch.randn(n, d, generator=g)
    mask = torch.rand(s, n, generator=g) < 0.4
    mask[-1, n // 2] = True    # the last query sees ≥ 1 row
    if s > 1:
        mask[0] = False        # an empty index set: only the sink, output 0
    sink = torch.randn(h, generator=g)
    want = A.sparse_attention_ref(q, kv, mask, sink, d ** -0.5)
    got = A.sparse_attention(q, kv, mask, sink, d ** -0.5)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    if s > 1:
        assert got[0].abs().max() == 0


def test_window_edge_and_compressed_rows_fp8_storage():
    """Prefill of 9 queries at positions 120..128 with window 128: the first key falls out of
    the window exactly at the edge; plus HCA-style causally visible compressed rows."""
    g, h, d, r = gen(3), 5, 144, 16
    pos = torch.arange(120, 129)
    kpos = torch.arange(0, 129)
    mask = torch.cat((window_mask(pos, kpos, 128), compressed_visible(pos, 33, 4)), 1)
    kv = _fp8_rows(129 + 33, d, r, g)
    q = torch.randn(9, h, d, generator=g).bfloat16()
    sink = torch.randn(h, generator=g)
    want = A.sparse_attention_ref(q, kv, mask, sink, d ** -0.5)
    got = A.sparse_attention(q, kv, mask, sink, d ** -0.5)
    assert not mask[-1, 0] and mask[-2, 0]
    torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-2)
    # the storage format dequantizes to what the model's FP8 round trip keeps
    dense = kv.dequant()
    torch.testing.assert_close(fp8_roundtrip(dense[:, : d - r], 64), dense[:, : d - r])


def test_fp8_storage_tiny_block():
    """Tiny models have 48 nope dims: one scale covers them all."""
    g = gen(5)
    kv, q = _fp8_rows(21, 64, 16, g), torch.randn(4, 4, 64, generator=g)
    mask, sink = torch.rand(4, 21, generator=g) < 0.5, torch.randn(4, generator=g)
    torch.testing.assert_close(A.sparse_attention(q, kv, mask, sink, 0.125),
                               A.sparse_attention_ref(q, kv, mask, sink, 0.125),
                               rtol=1e-4, atol=1e-4)


def test_index_form_with_padding_and_length_one():
    g, h, d = gen(4), 2, 64
    q, kv = torch.randn(3, h, d, generator=g), torch.randn(10, d, generator=g)
    idx = torch.tensor([[9, -1, -1], [4, 0, 7], [-1, -1, -1]], dtype=torch.int32)
    sink = torch.zeros(h)
    got = A.gather_attention(q, kv, idx, sink, 0.125)
    torch.testing.assert_close(got, A.gather_attention_ref(q, kv, idx, sink, 0.125),
                               rtol=1e-4, atol=1e-4)
    # one row and sink 0: o = e^s/(e^s+1)·kv_9
    s = (q[0] @ kv[9]) * 0.125
    torch.testing.assert_close(got[0], torch.sigmoid(s)[:, None] * kv[9], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)])
def test_fused_inverse_rope(dtype, tol):
    """The output's last 16 dims rotated back by −pos·f inside the kernel, at large positions."""
    g, h, d = gen(6), 3, 64
    q, kv = torch.randn(4, h, d, generator=g).to(dtype), torch.randn(30, d, generator=g)
    mask, sink = torch.rand(4, 30, generator=g) < 0.5, torch.randn(h, generator=g)
    rope = (torch.tensor([0, 7, 1 << 16, (1 << 20) - 1]), inv_freq(16, 160000.0, 16.0, 65536))
    got = A.sparse_attention(q, kv, mask, sink, 0.125, rope)
    want = A.sparse_attention_ref(q, kv, mask, sink, 0.125, rope)
    torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol)
    plain = A.sparse_attention_ref(q, kv, mask, sink, 0.125)
    assert torch.equal(got[0], A.sparse_attention(q, kv, mask, sink, 0.125, rope)[0])
    torch.testing.assert_close(got[:, :, :48].float(), plain[:, :, :48].float(), rtol=tol,
                               atol=tol)  # nope dims untouched


def _distinct_rows(s: int, k: int, n: int, g) -> torch.Tensor:
    """[s, k] int32 index sets, each k distinct rows of n in random order (as the indexer's)."""
    return torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(s)]).int()


@pytest.mark.parametrize("fp8", [False, True])
@pytest.mark.parametrize("split", [1, 7, 32])
def test_rows_split_across_programs_merge_exactly(fp8, split):
    """Each program takes `split` rows of the index set (a split may be all padding, another
    hold one row); _combine_kernel merges them with the sink and the inverse RoPE."""
    g, h, d, r = gen(7 + split), 5, 80, 16
    kv = _fp8_rows(90, d, r, g) if fp8 else torch.randn(90, d, generator=g)
    q = torch.randn(3, h, d, generator=g)
    idx = _distinct_rows(3, 70, 90, g)
    idx[0, 33:] = -1    # padding: whole splits see no row
    idx[2] = -1         # only the sink
    sink = torch.randn(h, generator=g)
    rope = (torch.tensor([5, 900, 77]), inv_freq(r, 160000.0, 16.0, 65536))
    want = A.gather_attention_ref(q, kv, idx, sink, 0.1, rope)
    torch.testing.assert_close(A.gather_attention(q, kv, idx, sink, 0.1, rope, split=split),
                               want, rtol=1e-4, atol=1e-4)


def test_split_rows_fill_the_gpu_in_decode_only():
    assert A.split_rows(4096, 640, 132) == 640              # prefill: one program per query
    assert A.split_rows(1, 640, 132) == 32                  # decode: 20 programs of 32 rows
    assert A.split_rows(1, 8320, 132) == 64                 # 1M-context HCA: 130 programs
    assert A.split_rows(1, 40, 132) == 40                   # too few rows to split


def test_queries_in_chunks_when_the_scores_would_not_fit(monkeypatch):
    monkeypatch.setattr(A, "SCORES_BYTES", 4 * 3 * 20 * 2)  # two queries' scores a launch
    g = gen(8)
    q, kv = torch.randn(5, 3, 32, generator=g), torch.randn(20, 32, generator=g)
    mask, sink = torch.rand(5, 20, generator=g) < 0.6, torch.randn(3, generator=g)
    torch.testing.assert_close(A.sparse_attention(q, kv, mask, sink, 0.2),
                               A.sparse_attention_ref(q, kv, mask, sink, 0.2),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("config", range(len(A.QK_CONFIGS)))
def test_every_config_matches_the_twin(config):
    """Each autotune config's tile sizes (64 heads a tile included) on FP8 storage, split."""
    g, h, d, r = gen(9), 66, 144, 16
    kv, q = _fp8_rows(50, d, r, g), torch.randn(2, h, d, generator=g)
    idx = _distinct_rows(2, 45, 50, g)
    idx[1, ::3] = -1
    sink = torch.randn(h, generator=g)
    with pin_config(config):
        got = A.gather_attention(q, kv, idx, sink, 0.1, split=32)
    torch.testing.assert_close(got, A.gather_attention_ref(q, kv, idx, sink, 0.1),
                               rtol=1e-4, atol=1e-4)


def test_launcher_rejects_bad_layouts():
    q, kv = torch.randn(2, 2, 64), torch.randn(5, 64)
    with pytest.raises(ValueError, match="int32"):
        A.gather_attention(q, kv, torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2), 1.0)
    with pytest.raises(ValueError, match="kv must be"):
        A.gather_attention(q, torch.randn(5, 32), torch.zeros(2, 1, dtype=torch.int32),
                           torch.zeros(2), 1.0)
