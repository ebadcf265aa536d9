// engine/quant.py's activation round trips for eager CPU steps, bit for bit
// (engine/kernels/fused_cpu.py: contracts, twins).
#include <ATen/ATen.h>
#include <c10/util/Float8_e4m3fn.h>
#include <torch/library.h>
#include <algorithm>
#include <cmath>
#include <cstring>

namespace {
using at::Tensor;

// t as a contiguous float32 CPU tensor (a copy only if it is strided)
Tensor f32(const Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat,
              "fused_cpu: ", what, " must be a float32 CPU tensor");
  return t.contiguous();
}

// quant.pow2_scale: 2^ceil(log2(max(amax, 1e-4) / qmax))
inline float pow2_scale(float amax, float qmax) {
  return std::exp2(std::ceil(std::log2(std::max(amax, 1e-4f) / qmax)));
}

// quant.fp8_roundtrip / fp4_roundtrip: per block of b channels, one power-of-two scale
Tensor fp8_roundtrip(const Tensor& x_, int64_t block) {
  const Tensor x = f32(x_, "x");
  const int64_t K = x.size(-1), b = std::min(block, K);
  TORCH_CHECK(b > 0 && K % b == 0, "fused_cpu.fp8_roundtrip: last dim ", K,
              " is not a multiple of the block ", b);
  Tensor y = at::empty(x.sizes(), x.options());
  const float* xp = x.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  for (int64_t i = 0, n = x.numel(); i < n; i += b) {
    float amax = 0.f;
    for (int64_t k = 0; k < b; ++k) amax = std::max(amax, std::fabs(xp[i + k]));
    const float s = pow2_scale(amax, 448.f);
    for (int64_t k = 0; k < b; ++k) {
      const float q = std::min(std::max(xp[i + k] / s, -448.f), 448.f);
      yp[i + k] = static_cast<float>(c10::Float8_e4m3fn(q)) * s;
    }
  }
  return y;
}

Tensor fp4_roundtrip(const Tensor& x_, int64_t block) {
  static const float values[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};
  const Tensor x = f32(x_, "x");
  const int64_t K = x.size(-1), b = std::min(block, K);
  TORCH_CHECK(b > 0 && K % b == 0, "fused_cpu.fp4_roundtrip: last dim ", K,
              " is not a multiple of the block ", b);
  Tensor y = at::empty(x.sizes(), x.options());
  const float* xp = x.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  for (int64_t i = 0, n = x.numel(); i < n; i += b) {
    float amax = 0.f;
    for (int64_t k = 0; k < b; ++k) amax = std::max(amax, std::fabs(xp[i + k]));
    const float s = pow2_scale(amax, 6.f);
    for (int64_t k = 0; k < b; ++k) {
      const float v = xp[i + k] / s, mag = std::min(std::fabs(v), 6.f);
      int idx = 0;  // nearest magnitude; the lower code on ties
      float best = std::fabs(mag - values[0]);
      for (int c = 1; c < 8; ++c) {
        const float dist = std::fabs(mag - values[c]);
        if (dist < best) best = dist, idx = c;
      }
      yp[i + k] = (v < 0.f && idx > 0 ? -values[idx] : values[idx]) * s;
    }
  }
  return y;
}

// quant.hadamard: butterflies over pairs (i, i+h) within blocks of 2h, then / sqrt(n)
Tensor hadamard(const Tensor& x_) {
  const Tensor x = f32(x_, "x");
  const int64_t n = x.size(-1);
  TORCH_CHECK(n > 0 && (n & (n - 1)) == 0, "fused_cpu.hadamard: size ", n,
              " is not a power of two");
  Tensor y = at::empty(x.sizes(), x.options());
  std::memcpy(y.mutable_data_ptr<float>(), x.const_data_ptr<float>(), x.numel() * sizeof(float));
  float* yp = y.mutable_data_ptr<float>();
  const float root = static_cast<float>(std::sqrt(static_cast<double>(n)));
  for (int64_t r = 0, R = x.numel() / n; r < R; ++r) {
    float* a = yp + r * n;
    for (int64_t h = 1; h < n; h *= 2)
      for (int64_t base = 0; base < n; base += 2 * h)
        for (int64_t i = base; i < base + h; ++i) {
          const float u = a[i], v = a[i + h];
          a[i] = u + v;
          a[i + h] = u - v;
        }
    for (int64_t i = 0; i < n; ++i) a[i] = a[i] / root;
  }
  return y;
}
}  // namespace

TORCH_LIBRARY_FRAGMENT(flashcode, m) {
  m.def("fp8_roundtrip(Tensor x, int block) -> Tensor");
  m.def("fp4_roundtrip(Tensor x, int block) -> Tensor");
  m.def("hadamard(Tensor x) -> Tensor");
}

TORCH_LIBRARY_IMPL(flashcode, CPU, m) {
  m.impl("fp8_roundtrip", &fp8_roundtrip);
  m.impl("fp4_roundtrip", &fp4_roundtrip);
  m.impl("hadamard", &hadamard);
}
