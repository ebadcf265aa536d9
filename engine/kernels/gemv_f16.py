"""One-row products for CPU decode steps: y = x·wᵀ, float32 sums, weights read as they are held
(fp16 copies, named for them; bf16 and float32 too).

A compiled decode step on the CPU spends most of its time reading weights. Inductor's own
loop (a multiply and a sum, fused with the widening) streams fp16 weights at ~70 % of the
machine's read bandwidth on one core (bench/floor.py): its loads wait on memory. This kernel
reads four rows at a time and prefetches the next four in software, which keeps enough
memory requests in flight to stream at ~95 % of it (the same 80 matrices of 8 MiB, one
thread: 10.2 GiB/s vs inductor's 7.3 and a float32 sum's 10.7).

  gemv(x [M, K] f32, w [N, K] f16|bf16|f32)     -> [M, N] f32  (rows of x one by one)
  gemv_at(x [k or 1, K] f32, w [E, N, K], ids [k]) -> [k, N] f32  (row j: w[ids[j]])

They are the `flashcode::gemv_f16` / `flashcode::gemv_f16_at` ops, written in C++ with AVX-512
and built once per machine with the compiler inductor itself needs (g++; the build is cached
under FLASHCODE_COMPILE_CACHE like inductor's: engine/kernels/cpp.py), so a compiled step
calls them from its C++ wrapper like any aten op, and an eager one in one dispatch (fbgemm's
GEMV takes four). `available()` is False where they cannot be built or run (no AVX-512, no
compiler, not Linux): steps then keep inductor's loop or fbgemm's packed weights. The twins
below are the plain-PyTorch sums they must equal to float32 rounding (another summation
order).
"""

from __future__ import annotations

import torch

from engine.kernels import cpp

_SRC = r"""
#include <ATen/ATen.h>
#include <torch/library.h>
#include <immintrin.h>

namespace {

// 16 weights as float32, from fp16, bf16 (the high half of a float32) or float32 rows
struct F16 {
  using T = uint16_t;
  static __m512 load(const T* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
  static __m512 load(__mmask16 m, const T* p) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  }
};
struct BF16 {
  using T = uint16_t;
  static __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 load(const T* p) { return widen(_mm256_loadu_si256((const __m256i*)p)); }
  static __m512 load(__mmask16 m, const T* p) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};
struct F32 {
  using T = float;
  static __m512 load(const T* p) { return _mm512_loadu_ps(p); }
  static __m512 load(__mmask16 m, const T* p) { return _mm512_maskz_loadu_ps(m, p); }
};

// y[r] = sum_k x[k] * w[r][k] for four rows at once, each row's line `ahead` on prefetched.
template <class L>
inline void rows4(const float* x, const typename L::T* w, int64_t K, int64_t ahead, float* y) {
  constexpr int64_t line = 64 / sizeof(typename L::T);  // weights per cache line
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const typename L::T *r0 = w, *r1 = w + K, *r2 = w + 2 * K, *r3 = w + 3 * K;
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    if ((k & (line - 1)) == 0) {
      _mm_prefetch(reinterpret_cast<const char*>(r0 + k + ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(r1 + k + ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(r2 + k + ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(r3 + k + ahead), _MM_HINT_T0);
    }
    __m512 xv = _mm512_loadu_ps(x + k);
    a0 = _mm512_fmadd_ps(L::load(r0 + k), xv, a0);
    a1 = _mm512_fmadd_ps(L::load(r1 + k), xv, a1);
    a2 = _mm512_fmadd_ps(L::load(r2 + k), xv, a2);
    a3 = _mm512_fmadd_ps(L::load(r3 + k), xv, a3);
  }
  if (k < K) {
    __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
    __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
    a0 = _mm512_fmadd_ps(L::load(m, r0 + k), xv, a0);
    a1 = _mm512_fmadd_ps(L::load(m, r1 + k), xv, a1);
    a2 = _mm512_fmadd_ps(L::load(m, r2 + k), xv, a2);
    a3 = _mm512_fmadd_ps(L::load(m, r3 + k), xv, a3);
  }
  y[0] = _mm512_reduce_add_ps(a0); y[1] = _mm512_reduce_add_ps(a1);
  y[2] = _mm512_reduce_add_ps(a2); y[3] = _mm512_reduce_add_ps(a3);
}

template <class L>
inline float row1(const float* x, const typename L::T* r, int64_t K) {
  __m512 a = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) a = _mm512_fmadd_ps(L::load(r + k), _mm512_loadu_ps(x + k), a);
  if (k < K) {
    __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
    a = _mm512_fmadd_ps(L::load(m, r + k), _mm512_maskz_loadu_ps(m, x + k), a);
  }
  return _mm512_reduce_add_ps(a);
}

// y [N] = w [N, K] · x [K]
template <class L>
void matvec(const float* x, const typename L::T* w, int64_t N, int64_t K, float* y) {
  int64_t n = 0;
  for (; n + 4 <= N; n += 4) rows4<L>(x, w + n * K, K, (n + 8 <= N) ? 4 * K : 0, y + n);
  for (; n < N; ++n) y[n] = row1<L>(x, w + n * K, K);
}

// rows row0 .. row0+N of w (contiguous [.., K]) times x, by w's dtype
void matvec_of(const at::Tensor& w, int64_t row0, const float* x, int64_t N, int64_t K,
               float* y) {
  const int64_t at = row0 * K;
  switch (w.scalar_type()) {
    case at::kHalf:
      return matvec<F16>(x, reinterpret_cast<const uint16_t*>(w.const_data_ptr()) + at, N, K, y);
    case at::kBFloat16:
      return matvec<BF16>(x, reinterpret_cast<const uint16_t*>(w.const_data_ptr()) + at, N, K, y);
    default:
      return matvec<F32>(x, w.const_data_ptr<float>() + at, N, K, y);
  }
}

void check(const at::Tensor& x, const at::Tensor& w, int64_t wdim) {
  TORCH_CHECK(x.device().is_cpu() && w.device().is_cpu(), "gemv_f16: CPU tensors");
  const auto t = w.scalar_type();
  TORCH_CHECK(x.scalar_type() == at::kFloat &&
              (t == at::kHalf || t == at::kBFloat16 || t == at::kFloat),
              "gemv_f16: x float32, w float16, bfloat16 or float32");
  TORCH_CHECK(x.dim() == 2 && w.dim() == wdim && x.size(1) == w.size(-1),
              "gemv_f16: shapes ", x.sizes(), " and ", w.sizes());
}

at::Tensor gemv(const at::Tensor& x_, const at::Tensor& w_) {
  check(x_, w_, 2);
  auto x = x_.contiguous();
  auto w = w_.contiguous();
  const int64_t M = x.size(0), N = w.size(0), K = w.size(1);
  auto y = at::empty({M, N}, x.options());
  for (int64_t m = 0; m < M; ++m)
    matvec_of(w, 0, x.const_data_ptr<float>() + m * K, N, K, y.mutable_data_ptr<float>() + m * N);
  return y;
}

at::Tensor gemv_at(const at::Tensor& x_, const at::Tensor& w_, const at::Tensor& ids_) {
  check(x_, w_, 3);
  TORCH_CHECK(ids_.dim() == 1 && ids_.scalar_type() == at::kLong, "gemv_f16_at: ids [k] int64");
  auto x = x_.contiguous();
  auto w = w_.contiguous();
  auto ids = ids_.contiguous();
  const int64_t k = ids.size(0), E = w.size(0), N = w.size(1), K = w.size(2);
  TORCH_CHECK(x.size(0) == k || x.size(0) == 1, "gemv_f16_at: x has ", x.size(0), " rows");
  auto y = at::empty({k, N}, x.options());
  const int64_t* ip = ids.const_data_ptr<int64_t>();
  for (int64_t j = 0; j < k; ++j) {
    const int64_t e = ip[j];
    TORCH_CHECK(0 <= e && e < E, "gemv_f16_at: expert ", e, " of ", E);
    matvec_of(w, e * N, x.const_data_ptr<float>() + (x.size(0) == 1 ? 0 : j * K), N, K,
              y.mutable_data_ptr<float>() + j * N);
  }
  return y;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(flashcode, m) {
  m.def("gemv_f16(Tensor x, Tensor w) -> Tensor");
  m.def("gemv_f16_at(Tensor x, Tensor w, Tensor ids) -> Tensor");
}

TORCH_LIBRARY_IMPL(flashcode, CPU, m) {
  m.impl("gemv_f16", &gemv);
  m.impl("gemv_f16_at", &gemv_at);
}
"""

_FLAGS = ["-O3", "-shared", "-fPIC", "-std=c++17", "-mavx512f", "-mavx512bw", "-mavx512vl",
          "-mf16c", "-mfma"]
_fakes: set[str] = set()
_DTYPES = (torch.float16, torch.bfloat16, torch.float32)  # the weights it reads


def gemv_ref(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The twin of `gemv`: x [M, K] f32, w [N, K] f16 -> [M, N] f32."""
    return (x.unsqueeze(-2) * w.float()).sum(-1)


def gemv_at_ref(x: torch.Tensor, w: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The twin of `gemv_at`: row j is x[j] (or x[0]) · w[ids[j]]ᵀ."""
    return (x.unsqueeze(-2) * w[ids].float()).sum(-1)


def available() -> bool:
    """Whether the ops are loaded (built on first call; False, once, if they cannot be:
    `why()` says why)."""
    if "gemv_f16" not in _fakes and why() is None:
        _fakes.add("gemv_f16")
        _register_fakes()
    return cpp.loaded("gemv_f16")


def why() -> str | None:
    """None when the ops are loaded, else the reason they are not."""
    return cpp.load("gemv_f16", _SRC, _FLAGS, "FLASHCODE_GEMV_F16")


def _register_fakes() -> None:
    @torch.library.register_fake("flashcode::gemv_f16")
    def _(x, w):
        return x.new_empty(x.shape[0], w.shape[0])

    @torch.library.register_fake("flashcode::gemv_f16_at")
    def _(x, w, ids):
        return x.new_empty(ids.shape[0], w.shape[1])


def gemv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.ops.flashcode.gemv_f16(x, w)


def gemv_at(x: torch.Tensor, w: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return torch.ops.flashcode.gemv_f16_at(x, w, ids)


def usable(w: torch.Tensor) -> bool:
    """Whether the ops take weight w (fp16, bf16 or float32, on the CPU) and are loaded, without
    building them:
    what a step being traced asks (engine/decode.py calls `available()` before it compiles)."""
    return w.dtype in _DTYPES and w.device.type == "cpu" and cpp.loaded("gemv_f16")
