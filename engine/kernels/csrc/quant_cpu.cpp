// engine/quant.py's activation round trips for eager CPU steps, bit for bit
// (engine/kernels/fused_cpu.py: contracts, twins).
#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Float8_e4m3fn.h>
#include <torch/library.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>
#include <vector>

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

const float kFp4[8] = {0.f, 0.5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};  // e2m1 magnitudes by code

// engine/kv/rows.py's storage formats (bit for bit): e8m0 scales as the exponent byte of a
// float32 power of two; "fp8" rows = nope e4m3 bytes + a scale byte per min(64, nope) + rope
// bf16; "fp4" rows = e2m1 codes two a byte (low nibble first) + a scale byte per 32.
inline uint8_t e8m0_byte(float s) {
  uint32_t b;
  std::memcpy(&b, &s, 4);
  return static_cast<uint8_t>(b >> 23);
}

inline float e8m0_value(uint8_t e) {
  const uint32_t b = static_cast<uint32_t>(e) << 23;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// the e2m1 code of v (|v| ≤ 6 after scaling): the nearest magnitude, the lower code on ties
inline uint8_t fp4_code(float v) {
  const float mag = std::min(std::fabs(v), 6.f);
  int idx = 0;
  float best = std::fabs(mag - kFp4[0]);
  for (int c = 1; c < 8; ++c) {
    const float dist = std::fabs(mag - kFp4[c]);
    if (dist < best) best = dist, idx = c;
  }
  return static_cast<uint8_t>(idx | (v < 0.f && idx > 0 ? 8 : 0));
}

inline float fp4_value(uint8_t c) { return (c & 8) ? -kFp4[c & 7] : kFp4[c & 7]; }

// v (divided by its scale already) as e4m3, saturated at ±448
inline c10::Float8_e4m3fn fp8(float v) {
  return c10::Float8_e4m3fn(std::min(std::max(v, -448.f), 448.f));
}

// the power-of-two scale of b values: quant.pow2_scale of their largest magnitude
inline float block_scale(const float* x, int64_t b, float qmax) {
  float amax = 0.f;
  for (int64_t k = 0; k < b; ++k) amax = std::max(amax, std::fabs(x[k]));
  return pow2_scale(amax, qmax);
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
    const float s = block_scale(xp + i, b, 448.f);
    for (int64_t k = i; k < i + b; ++k) yp[k] = static_cast<float>(fp8(xp[k] / s)) * s;
  }
  return y;
}

Tensor fp4_roundtrip(const Tensor& x_, int64_t block) {
  const Tensor x = f32(x_, "x");
  const int64_t K = x.size(-1), b = std::min(block, K);
  TORCH_CHECK(b > 0 && K % b == 0, "fused_cpu.fp4_roundtrip: last dim ", K,
              " is not a multiple of the block ", b);
  Tensor y = at::empty(x.sizes(), x.options());
  const float* xp = x.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  for (int64_t i = 0, n = x.numel(); i < n; i += b) {
    const float s = block_scale(xp + i, b, 6.f);
    for (int64_t k = i; k < i + b; ++k) yp[k] = fp4_value(fp4_code(xp[k] / s)) * s;
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

std::tuple<Tensor, Tensor, Tensor> fp8_rows_encode(const Tensor& v_, int64_t rope) {
  const Tensor v = f32(v_, "v");
  TORCH_CHECK(v.dim() == 2 && rope > 0 && rope < v.size(1),
              "fused_cpu.fp8_rows_encode: rows [n, d] with 0 < rope < d; got ", v.sizes());
  const int64_t n = v.size(0), d = v.size(1), nope = d - rope, b = std::min<int64_t>(64, nope);
  TORCH_CHECK(nope % b == 0, "fused_cpu.fp8_rows_encode: nope dims ", nope, " by ", b);
  Tensor q = at::empty({n, nope}, v.options().dtype(at::kByte));
  Tensor sc = at::empty({n, nope / b}, v.options().dtype(at::kByte));
  Tensor r = at::empty({n, rope}, v.options().dtype(at::kBFloat16));
  const float* vp = v.const_data_ptr<float>();
  uint8_t *qp = q.mutable_data_ptr<uint8_t>(), *sp = sc.mutable_data_ptr<uint8_t>();
  c10::BFloat16* rp = r.mutable_data_ptr<c10::BFloat16>();
  for (int64_t i = 0; i < n; ++i) {
    const float* x = vp + i * d;
    for (int64_t k = 0; k < nope; k += b) {
      const float s = block_scale(x + k, b, 448.f);
      sp[i * (nope / b) + k / b] = e8m0_byte(s);
      for (int64_t j = k; j < k + b; ++j) qp[i * nope + j] = fp8(x[j] / s).x;
    }
    for (int64_t j = 0; j < rope; ++j) rp[i * rope + j] = c10::BFloat16(x[nope + j]);
  }
  return {q, sc, r};
}

Tensor fp8_rows_decode(const Tensor& q_, const Tensor& sc_, const Tensor& r_) {
  TORCH_CHECK(q_.scalar_type() == at::kByte && sc_.scalar_type() == at::kByte &&
              r_.scalar_type() == at::kBFloat16 && q_.device().is_cpu(),
              "fused_cpu.fp8_rows_decode: uint8 nope and scale planes, bf16 rope, on the CPU");
  const Tensor q = q_.contiguous(), sc = sc_.contiguous(), r = r_.contiguous();
  const int64_t nope = q.size(-1), k = sc.size(-1), rope = r.size(-1);
  const int64_t n = nope ? q.numel() / nope : 0;
  TORCH_CHECK(k > 0 && nope % k == 0 && sc.numel() == n * k && r.numel() == n * rope,
              "fused_cpu.fp8_rows_decode: planes ", q.sizes(), ", ", sc.sizes(), ", ", r.sizes());
  std::vector<int64_t> shape(q.sizes().begin(), q.sizes().end());
  shape.back() = nope + rope;
  Tensor out = at::empty(shape, q.options().dtype(at::kFloat));
  const uint8_t *qp = q.const_data_ptr<uint8_t>(), *sp = sc.const_data_ptr<uint8_t>();
  const c10::BFloat16* rp = r.const_data_ptr<c10::BFloat16>();
  float* op = out.mutable_data_ptr<float>();
  const int64_t b = nope / k;
  for (int64_t i = 0; i < n; ++i) {
    float* o = op + i * (nope + rope);
    for (int64_t j = 0; j < nope; ++j)
      o[j] = static_cast<float>(c10::Float8_e4m3fn(qp[i * nope + j],
                                                   c10::Float8_e4m3fn::from_bits())) *
             e8m0_value(sp[i * k + j / b]);
    for (int64_t j = 0; j < rope; ++j) o[nope + j] = static_cast<float>(rp[i * rope + j]);
  }
  return out;
}

std::tuple<Tensor, Tensor> fp4_rows_encode(const Tensor& v_) {
  const Tensor v = f32(v_, "v");
  const int64_t di = v.size(-1), n = di ? v.numel() / di : 0;
  TORCH_CHECK(di % 32 == 0, "fused_cpu.fp4_rows_encode: width ", di, " is not a multiple of 32");
  std::vector<int64_t> shape(v.sizes().begin(), v.sizes().end());
  shape.back() = di / 2;
  Tensor packed = at::empty(shape, v.options().dtype(at::kByte));
  shape.back() = di / 32;
  Tensor sc = at::empty(shape, v.options().dtype(at::kByte));
  const float* vp = v.const_data_ptr<float>();
  uint8_t *pp = packed.mutable_data_ptr<uint8_t>(), *sp = sc.mutable_data_ptr<uint8_t>();
  for (int64_t i = 0; i < n * di; i += 32) {
    const float s = block_scale(vp + i, 32, 6.f);
    sp[i / 32] = e8m0_byte(s);
    for (int64_t j = i; j < i + 32; j += 2)
      pp[j / 2] = static_cast<uint8_t>(fp4_code(vp[j] / s) | (fp4_code(vp[j + 1] / s) << 4));
  }
  return {packed, sc};
}

Tensor fp4_rows_decode(const Tensor& p_, const Tensor& sc_) {
  TORCH_CHECK(p_.scalar_type() == at::kByte && sc_.scalar_type() == at::kByte &&
              p_.device().is_cpu(), "fused_cpu.fp4_rows_decode: uint8 planes on the CPU");
  const Tensor p = p_.contiguous(), sc = sc_.contiguous();
  const int64_t half = p.size(-1), di = 2 * half, n = half ? p.numel() / half : 0;
  TORCH_CHECK(di % 32 == 0 && sc.numel() == n * (di / 32),
              "fused_cpu.fp4_rows_decode: planes ", p.sizes(), " and ", sc.sizes());
  std::vector<int64_t> shape(p.sizes().begin(), p.sizes().end());
  shape.back() = di;
  Tensor out = at::empty(shape, p.options().dtype(at::kFloat));
  const uint8_t *pp = p.const_data_ptr<uint8_t>(), *sp = sc.const_data_ptr<uint8_t>();
  float* op = out.mutable_data_ptr<float>();
  for (int64_t j = 0; j < n * di; ++j) {
    op[j] = fp4_value((j & 1) ? pp[j / 2] >> 4 : pp[j / 2] & 15) * e8m0_value(sp[j / 32]);
  }
  return out;
}
}  // namespace

TORCH_LIBRARY_FRAGMENT(flashcode, m) {
  m.def("fp8_roundtrip(Tensor x, int block) -> Tensor");
  m.def("fp4_roundtrip(Tensor x, int block) -> Tensor");
  m.def("hadamard(Tensor x) -> Tensor");
  m.def("fp8_rows_encode(Tensor v, int rope) -> (Tensor, Tensor, Tensor)");
  m.def("fp8_rows_decode(Tensor nope, Tensor scale, Tensor rope) -> Tensor");
  m.def("fp4_rows_encode(Tensor v) -> (Tensor, Tensor)");
  m.def("fp4_rows_decode(Tensor packed, Tensor scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(flashcode, CPU, m) {
  m.impl("fp8_roundtrip", &fp8_roundtrip);
  m.impl("fp4_roundtrip", &fp4_roundtrip);
  m.impl("hadamard", &hadamard);
  m.impl("fp8_rows_encode", &fp8_rows_encode);
  m.impl("fp8_rows_decode", &fp8_rows_decode);
  m.impl("fp4_rows_encode", &fp4_rows_encode);
  m.impl("fp4_rows_decode", &fp4_rows_decode);
}
