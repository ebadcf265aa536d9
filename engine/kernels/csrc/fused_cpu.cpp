// Fused float32 CPU ops for eager decode steps (engine/kernels/fused_cpu.py: contracts, twins).
// Built with -ffp-contract=off: elementwise math rounds as torch's ops do; sums use FMAs.
#include <ATen/ATen.h>
#include <torch/library.h>
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <limits>
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

// sum of a[i]*b[i] in two AVX-512 accumulators (float32 rounding, another order than BLAS)
inline float dot(const float* a, const float* b, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (n - i)) - 1);
    s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

// e^x for the x ≤ 0 of a softmax (16 at a time, Cephes' polynomial, ~2 ulp): exactly 0 below
// -103 (and for -inf), NaN stays NaN
inline __m512 exp_neg(__m512 x) {
  const __m512 c = _mm512_max_ps(_mm512_set1_ps(-104.f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(c, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), c);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-103.f), _CMP_NLT_UQ);
  return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n));
}

inline __mmask16 tail(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

inline float sigmoid(float z) { return 1.f / (1.f + std::exp(-z)); }

Tensor rms_norm(const Tensor& x_, const c10::optional<Tensor>& w_, double eps) {
  const Tensor x = f32(x_, "x");
  const int64_t D = x.size(-1), R = D ? x.numel() / D : 0;
  const float* wp = nullptr;
  Tensor w;
  if (w_.has_value() && w_->defined()) {
    w = f32(*w_, "weight");
    TORCH_CHECK(w.numel() == D, "fused_cpu.rms_norm: weight has ", w.numel(), " of ", D);
    wp = w.const_data_ptr<float>();
  }
  Tensor y = at::empty(x.sizes(), x.options());
  const float* xp = x.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  const float e = static_cast<float>(eps), n = static_cast<float>(D);
  for (int64_t r = 0; r < R; ++r) {
    const float* a = xp + r * D;
    float* o = yp + r * D;
    const float inv = 1.f / std::sqrt(dot(a, a, D) / n + e);
    if (wp) for (int64_t d = 0; d < D; ++d) o[d] = wp[d] * (a[d] * inv);
    else for (int64_t d = 0; d < D; ++d) o[d] = a[d] * inv;
  }
  return y;
}

std::tuple<Tensor, Tensor> rotation(const Tensor& pos_, const Tensor& freqs2_,
                                    const Tensor& sign_) {
  TORCH_CHECK(pos_.device().is_cpu() && pos_.scalar_type() == at::kLong && pos_.dim() == 1,
              "fused_cpu.rotation: pos must be int64 [S] on the CPU");
  const Tensor pos = pos_.contiguous(), freqs2 = f32(freqs2_, "freqs2"),
               sign = f32(sign_, "sign");
  const int64_t S = pos.size(0), r = freqs2.numel();
  TORCH_CHECK(sign.numel() == r, "fused_cpu.rotation: sign and freqs2 differ in size");
  Tensor c = at::empty({S, r}, freqs2.options()), s = at::empty({S, r}, freqs2.options());
  const int64_t* pp = pos.const_data_ptr<int64_t>();
  const float *f = freqs2.const_data_ptr<float>(), *g = sign.const_data_ptr<float>();
  float *cp = c.mutable_data_ptr<float>(), *sp = s.mutable_data_ptr<float>();
  for (int64_t i = 0; i < S; ++i)
    for (int64_t k = 0; k < r; ++k) {
      const float a = static_cast<float>(pp[i]) * f[k];
      cp[i * r + k] = std::cos(a);
      sp[i * r + k] = std::sin(a) * g[k];
    }
  return {c, s};
}

Tensor rope(const Tensor& x_, const Tensor& cos_, const Tensor& sin_, bool inverse) {
  const Tensor x = f32(x_, "x"), cos = f32(cos_, "cos"), sin = f32(sin_, "sin");
  TORCH_CHECK(x.dim() >= 2 && cos.dim() == 2 && sin.sizes() == cos.sizes(),
              "fused_cpu.rope: x [S, .., d], cos/sin [S or 1, r]");
  const int64_t S = x.size(0), d = x.size(-1), r = cos.size(1);
  TORCH_CHECK(r <= d && r % 2 == 0 && (cos.size(0) == S || cos.size(0) == 1),
              "fused_cpu.rope: x ", x.sizes(), " with cos ", cos.sizes());
  Tensor y = at::empty(x.sizes(), x.options());
  if (x.numel() == 0) return y;
  const int64_t per = x.numel() / (S * d);  // rows per position (heads)
  const float *xp = x.const_data_ptr<float>(), *cp = cos.const_data_ptr<float>(),
              *sp = sin.const_data_ptr<float>();
  float* yp = y.mutable_data_ptr<float>();
  for (int64_t i = 0; i < S; ++i) {
    const float *c = cp + (cos.size(0) == 1 ? 0 : i * r), *s = sp + (cos.size(0) == 1 ? 0 : i * r);
    for (int64_t g = 0; g < per; ++g) {
      const float* a = xp + (i * per + g) * d;
      float* o = yp + (i * per + g) * d;
      for (int64_t k = 0; k < d - r; ++k) o[k] = a[k];
      const float* t = a + d - r;
      float* u = o + d - r;
      if (inverse) for (int64_t k = 0; k < r; ++k) u[k] = t[k] * c[k] - t[k ^ 1] * s[k];
      else for (int64_t k = 0; k < r; ++k) u[k] = t[k] * c[k] + t[k ^ 1] * s[k];
    }
  }
  return y;
}

std::tuple<Tensor, Tensor, Tensor> hc_pre(const Tensor& x_, const Tensor& fn_,
                                          const Tensor& base_, const Tensor& scale_,
                                          int64_t iters, double hc_eps,
                                          double norm_eps) {
  const Tensor x = f32(x_, "x"), fn = f32(fn_, "fn"), base = f32(base_, "base"),
               scale = f32(scale_, "scale");
  TORCH_CHECK(x.dim() == 3, "fused_cpu.hc_pre: x [S, n, D]");
  const int64_t S = x.size(0), n = x.size(1), D = x.size(2), K = n * D, m = (2 + n) * n;
  TORCH_CHECK(fn.dim() == 2 && fn.size(0) == m && fn.size(1) == K && base.numel() == m &&
              scale.numel() == 3, "fused_cpu.hc_pre: fn [", m, ", ", K, "], base [", m,
              "], scale [3]; got ", fn.sizes(), ", ", base.sizes(), ", ", scale.sizes());
  Tensor u = at::empty({S, D}, x.options()), post = at::empty({S, n}, x.options()),
         comb = at::empty({S, n, n}, x.options());
  const float *xp = x.const_data_ptr<float>(), *fp = fn.const_data_ptr<float>(),
              *bp = base.const_data_ptr<float>(), *sc = scale.const_data_ptr<float>();
  float *up = u.mutable_data_ptr<float>(), *pp = post.mutable_data_ptr<float>(),
        *cp = comb.mutable_data_ptr<float>();
  const float he = static_cast<float>(hc_eps), ne = static_cast<float>(norm_eps);
  std::vector<float> z(m), pre(n);
  for (int64_t s = 0; s < S; ++s) {
    const float* v = xp + s * K;
    const float inv = 1.f / std::sqrt(dot(v, v, K) / static_cast<float>(K) + ne);
    for (int64_t i = 0; i < m; ++i)
      z[i] = bp[i] + (dot(fp + i * K, v, K) * inv) * sc[i < n ? 0 : i < 2 * n ? 1 : 2];
    for (int64_t j = 0; j < n; ++j) {
      pre[j] = sigmoid(z[j]) + he;
      pp[s * n + j] = sigmoid(z[n + j]) * 2.f;
    }
    float* c = cp + s * n * n;  // Sinkhorn: row softmax + eps, a column pass, then rounds
    for (int64_t j = 0; j < n; ++j) {
      const float* l = z.data() + 2 * n + j * n;
      float mx = l[0], sum = 0.f;
      for (int64_t k = 1; k < n; ++k) mx = std::max(mx, l[k]);
      for (int64_t k = 0; k < n; ++k) sum += (c[j * n + k] = std::exp(l[k] - mx));
      for (int64_t k = 0; k < n; ++k) c[j * n + k] = c[j * n + k] / sum + he;
    }
    for (int64_t it = 0; it < iters; ++it) {
      if (it > 0)
        for (int64_t j = 0; j < n; ++j) {
          float t = 0.f;
          for (int64_t k = 0; k < n; ++k) t += c[j * n + k];
          for (int64_t k = 0; k < n; ++k) c[j * n + k] /= t + he;
        }
      for (int64_t k = 0; k < n; ++k) {
        float t = 0.f;
        for (int64_t j = 0; j < n; ++j) t += c[j * n + k];
        for (int64_t j = 0; j < n; ++j) c[j * n + k] /= t + he;
      }
    }
    float* o = up + s * D;
    for (int64_t d = 0; d < D; ++d) o[d] = 0.f;
    for (int64_t j = 0; j < n; ++j) {
      const float* xj = v + j * D;
      for (int64_t d = 0; d < D; ++d) o[d] += pre[j] * xj[d];
    }
  }
  return {u, post, comb};
}

Tensor hc_post(const Tensor& y_, const Tensor& x_, const Tensor& post_, const Tensor& comb_) {
  const Tensor y = f32(y_, "y"), x = f32(x_, "x"), post = f32(post_, "post"),
               comb = f32(comb_, "comb");
  TORCH_CHECK(x.dim() == 3, "fused_cpu.hc_post: x [S, n, D]");
  const int64_t S = x.size(0), n = x.size(1), D = x.size(2);
  TORCH_CHECK(y.numel() == S * D && post.numel() == S * n && comb.numel() == S * n * n,
              "fused_cpu.hc_post: y [S, D], post [S, n], comb [S, n, n] for x ", x.sizes());
  Tensor out = at::empty(x.sizes(), x.options());
  const float *yp = y.const_data_ptr<float>(), *xp = x.const_data_ptr<float>(),
              *pp = post.const_data_ptr<float>(), *cp = comb.const_data_ptr<float>();
  float* op = out.mutable_data_ptr<float>();
  for (int64_t s = 0; s < S; ++s)
    for (int64_t k = 0; k < n; ++k) {
      float* o = op + (s * n + k) * D;
      const float p = pp[s * n + k];
      const float* ys = yp + s * D;
      for (int64_t d = 0; d < D; ++d) o[d] = p * ys[d];
      for (int64_t j = 0; j < n; ++j) {
        const float w = cp[(s * n + j) * n + k];
        const float* xj = xp + (s * n + j) * D;
        for (int64_t d = 0; d < D; ++d) o[d] += w * xj[d];
      }
    }
  return out;
}

Tensor attend(const Tensor& q_, const Tensor& rows_, const Tensor& hide_, const Tensor& sink_,
              double scale) {
  const Tensor q = f32(q_, "q"), rows = f32(rows_, "rows"), sink = f32(sink_, "sink");
  TORCH_CHECK(hide_.device().is_cpu() && hide_.scalar_type() == at::kBool,
              "fused_cpu.attend: hide must be bool [N] on the CPU");
  const Tensor hide = hide_.contiguous();
  TORCH_CHECK(q.dim() == 3 && q.size(0) == 1 && rows.dim() == 2 && rows.size(1) == q.size(2) &&
              hide.numel() == rows.size(0) && sink.numel() == q.size(1),
              "fused_cpu.attend: q [1, H, d], rows [N, d], hide [N], sink [H]; got ", q.sizes(),
              ", ", rows.sizes(), ", ", hide.sizes(), ", ", sink.sizes());
  const int64_t H = q.size(1), d = q.size(2), N = rows.size(0);
  Tensor out = at::empty({1, H, d}, q.options());
  const float *qp = q.const_data_ptr<float>(), *rp = rows.const_data_ptr<float>(),
              *sk = sink.const_data_ptr<float>();
  const bool* hp = hide.const_data_ptr<bool>();
  float* op = out.mutable_data_ptr<float>();
  const float sc = static_cast<float>(scale), ninf = -std::numeric_limits<float>::infinity();
  std::vector<float> p(N);
  for (int64_t h = 0; h < H; ++h) {
    const float* qh = qp + h * d;
    float mx = sk[h];
    for (int64_t j = 0; j < N; ++j) {
      p[j] = hp[j] ? ninf : dot(qh, rp + j * d, d) * sc;
      mx = std::max(mx, p[j]);
    }
    float sum = std::exp(sk[h] - mx);
    const __m512 mv = _mm512_set1_ps(mx);
    for (int64_t j = 0; j < N; j += 16) {  // hidden rows hold -inf: weight exactly 0
      const __mmask16 msk = tail(N - j);
      const __m512 e = exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(msk, p.data() + j), mv));
      _mm512_mask_storeu_ps(p.data() + j, msk, e);
      sum += _mm512_reduce_add_ps(_mm512_maskz_mov_ps(msk, e));
    }
    float* o = op + h * d;
    for (int64_t k = 0; k < d; ++k) o[k] = 0.f;
    for (int64_t j = 0; j < N; ++j) {
      if (p[j] == 0.f) continue;
      const float w = p[j] / sum;
      const float* rj = rp + j * d;
      for (int64_t k = 0; k < d; ++k) o[k] += w * rj[k];
    }
  }
  return out;
}

Tensor swiglu(const Tensor& a_, const Tensor& b_, double limit) {
  const Tensor a = f32(a_, "a"), b = f32(b_, "b");
  TORCH_CHECK(a.sizes() == b.sizes(), "fused_cpu.swiglu: a ", a.sizes(), " and b ", b.sizes());
  Tensor out = at::empty(a.sizes(), a.options());
  const float *ap = a.const_data_ptr<float>(), *bp = b.const_data_ptr<float>();
  float* op = out.mutable_data_ptr<float>();
  const float L = static_cast<float>(limit);
  for (int64_t i = 0, n = a.numel(); i < n; ++i) {
    float u = ap[i], v = bp[i];
    if (L != 0.f) {
      u = std::min(u, L);
      v = std::min(std::max(v, -L), L);
    }
    op[i] = u / (1.f + std::exp(-u)) * v;
  }
  return out;
}

// A compressor's decode step: token t's kv and gate (+ ape[t % r]) into slot t % m, then the
// entry of window j = t // r pooled over the slots (per channel, softmax of the gates). CSA
// (overlap, m = 2r): slot i of the pooling is slot (i + (j+1)·r) % 2r, first half channels for
// i < r (the previous window), second half after. -> (pooled [1, d], j [1], j·r [1])
std::tuple<Tensor, Tensor, Tensor> compress_step(Tensor& kv_slots, Tensor& gate_slots,
                                                 const Tensor& kv_, const Tensor& gate_,
                                                 const Tensor& ape_, const Tensor& t_,
                                                 int64_t r, bool overlap) {
  TORCH_CHECK(kv_slots.scalar_type() == at::kFloat && gate_slots.scalar_type() == at::kFloat &&
              kv_slots.is_contiguous() && gate_slots.is_contiguous() &&
              kv_slots.sizes() == gate_slots.sizes() && kv_slots.dim() == 2,
              "fused_cpu.compress_step: slots must be contiguous float32 [m, w]");
  TORCH_CHECK(t_.device().is_cpu() && t_.scalar_type() == at::kLong && t_.numel() == 1,
              "fused_cpu.compress_step: t must be one int64 on the CPU");
  const Tensor kv = f32(kv_, "kv"), gate = f32(gate_, "gate"), ape = f32(ape_, "ape");
  const int64_t m = kv_slots.size(0), w = kv_slots.size(1), d = overlap ? w / 2 : w;
  TORCH_CHECK(r > 0 && m == (overlap ? 2 * r : r) && kv.numel() == w && gate.numel() == w &&
              ape.numel() == r * w, "fused_cpu.compress_step: slots ", kv_slots.sizes(),
              ", kv ", kv.sizes(), ", ape ", ape.sizes(), " for ratio ", r);
  const int64_t t = t_.const_data_ptr<int64_t>()[0], j = t / r;
  TORCH_CHECK(t >= 0, "fused_cpu.compress_step: position ", t);
  float *ks = kv_slots.mutable_data_ptr<float>(), *gs = gate_slots.mutable_data_ptr<float>();
  const float *kp = kv.const_data_ptr<float>(), *gp = gate.const_data_ptr<float>(),
              *ap = ape.const_data_ptr<float>() + (t % r) * w;
  for (int64_t c = 0; c < w; ++c) {
    ks[(t % m) * w + c] = kp[c];
    gs[(t % m) * w + c] = gp[c] + ap[c];
  }
  Tensor pooled = at::empty({1, d}, kv.options());
  Tensor jt = at::empty({1}, t_.options()), pt = at::empty({1}, t_.options());
  jt.mutable_data_ptr<int64_t>()[0] = j;
  pt.mutable_data_ptr<int64_t>()[0] = j * r;
  float* out = pooled.mutable_data_ptr<float>();
  std::vector<const float*> krow(m), grow(m);
  for (int64_t i = 0; i < m; ++i) {
    const int64_t src = overlap ? (i + (j + 1) * r) % (2 * r) : i;
    const int64_t col = overlap && i >= r ? d : 0;
    krow[i] = ks + src * w + col;
    grow[i] = gs + src * w + col;
  }
  for (int64_t c = 0; c < d; c += 16) {  // 16 channels at a time, the slots in turn
    const __mmask16 msk = tail(d - c);
    __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int64_t i = 0; i < m; ++i) mx = _mm512_max_ps(mx, _mm512_maskz_loadu_ps(msk, grow[i] + c));
    __m512 sum = _mm512_setzero_ps(), acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < m; ++i) {
      const __m512 e = exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(msk, grow[i] + c), mx));
      sum = _mm512_add_ps(sum, e);
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(msk, krow[i] + c), e, acc);
    }
    _mm512_mask_storeu_ps(out + c, msk, _mm512_div_ps(acc, sum));
  }
  return {pooled, jt, pt};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(flashcode, m) {
  m.def("rms_norm(Tensor x, Tensor? w, float eps) -> Tensor");
  m.def("rotation(Tensor pos, Tensor freqs2, Tensor sign) -> (Tensor, Tensor)");
  m.def("rope(Tensor x, Tensor cos, Tensor sin, bool inverse) -> Tensor");
  m.def("hc_pre(Tensor x, Tensor fn, Tensor base, Tensor scale, int iters, float hc_eps, "
        "float norm_eps) -> (Tensor, Tensor, Tensor)");
  m.def("hc_post(Tensor y, Tensor x, Tensor post, Tensor comb) -> Tensor");
  m.def("attend(Tensor q, Tensor rows, Tensor hide, Tensor sink, float scale) -> Tensor");
  m.def("swiglu(Tensor a, Tensor b, float limit) -> Tensor");
  m.def("compress_step(Tensor(a!) kv_slots, Tensor(b!) gate_slots, Tensor kv, Tensor gate, "
        "Tensor ape, Tensor t, int ratio, bool overlap) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(flashcode, CPU, m) {
  m.impl("rms_norm", &rms_norm);
  m.impl("rotation", &rotation);
  m.impl("rope", &rope);
  m.impl("hc_pre", &hc_pre);
  m.impl("hc_post", &hc_post);
  m.impl("attend", &attend);
  m.impl("swiglu", &swiglu);
  m.impl("compress_step", &compress_step);
}
