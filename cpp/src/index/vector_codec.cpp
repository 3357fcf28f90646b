#include "annx/index/vector_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "annx/common/error.h"
#include "annx/common/finite.h"

namespace annx {

namespace {

constexpr const char* kBinaryNames[2][kMaxBinaryLevels] = {
    {"BIN", "BEBR2", "BEBR3", "BEBR4", "BEBR5", "BEBR6", "BEBR7", "BEBR8"},
    {"BIN_adc", "BEBR2_adc", "BEBR3_adc", "BEBR4_adc", "BEBR5_adc", "BEBR6_adc", "BEBR7_adc",
     "BEBR8_adc"}};

size_t binary_header_bytes(size_t L) { return ((L + 1) * 4 + 7) / 8 * 8; }
size_t binary_words(size_t d) { return (d + 63) / 64; }

}  // namespace

const char* codec_name(CodecKind k) {
  switch (k) {
    case CodecKind::F32: return "F32";
    case CodecKind::F16: return "F16";
    case CodecKind::BF16: return "BF16";
    case CodecKind::SQ8: return "SQ8";
    default: break;
  }
  if (const int L = binary_levels(k)) return kBinaryNames[binary_adc(k) ? 1 : 0][L - 1];
  return "?";
}

const std::vector<CodecKind>& all_codec_kinds() {
  static const std::vector<CodecKind> kinds = [] {
    std::vector<CodecKind> v{CodecKind::F32, CodecKind::F16, CodecKind::BF16, CodecKind::SQ8};
    for (int adc = 0; adc < 2; ++adc)
      for (int L = 1; L <= kMaxBinaryLevels; ++L) v.push_back(binary_codec(L, adc != 0));
    return v;
  }();
  return kinds;
}

size_t VectorCodec::first_invalid_code(const uint8_t* codes, size_t n, size_t stride) const {
  const size_t d = static_cast<size_t>(d_);
  if (kind_ == CodecKind::SQ8) return n;
  if (const int L = levels()) {
    for (size_t i = 0; i < n; ++i) {
      // Level scales, then |x^|^2; |x^| <= sqrt(d) * sum_t |alpha_t|.
      float f[kMaxBinaryLevels + 1];
      std::memcpy(f, codes + i * stride, (size_t(L) + 1) * 4);  // need not be float-aligned
      if (first_non_finite(f, size_t(L) + 1) != size_t(L) + 1) return i;
      double a = 0;
      for (int t = 0; t < L; ++t) a += std::fabs(double{f[t]});
      if (a * a * static_cast<double>(d) > kMaxNorm2 || f[L] < 0 || f[L] > kMaxNorm2) return i;
    }
    return n;
  }
  // Float codecs: one SIMD squared norm per row screens finiteness and range together.
  const auto& K = simd::kernels();
  const auto ip = K.one[static_cast<int>(simd::DistKind::IP_F32)];
  std::vector<float> row(kind_ == CodecKind::F32 ? 0 : d);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* c = codes + i * stride;
    const float* x = reinterpret_cast<const float*>(c);
    if (kind_ != CodecKind::F32) {
      const auto* h = reinterpret_cast<const uint16_t*>(c);
      (kind_ == CodecKind::F16 ? K.f16_to_f32 : K.bf16_to_f32)(h, row.data(), d);
      x = row.data();
    }
    if (!row_in_range(x, d, ip(x, x, d, nullptr))) return i;
  }
  return n;
}

size_t VectorCodec::code_size() const {
  const size_t d = static_cast<size_t>(d_);
  if (const int L = levels())
    return binary_header_bytes(size_t(L)) + 8 * size_t(L) * binary_words(d);
  switch (kind_) {
    case CodecKind::F32: return 4 * d;
    case CodecKind::F16:
    case CodecKind::BF16: return 2 * d;
    case CodecKind::SQ8: return d;
    default: break;
  }
  return 0;
}

namespace {

/// Greedy residual sign binarization (training-free BEBR baseline): r_0 = x; for each
/// level t, s_t = sign(r_t) (0 -> +1), alpha_t = |r_t|_1 / d (the least-squares scale
/// for fixed signs), r_{t+1} = r_t - alpha_t s_t. |r_{t+1}|^2 = |r_t|^2 - d alpha_t^2, so
/// every level lowers the error. Writes one code (layout in vector_codec.h).
void binarize(const float* x, size_t d, size_t L, uint8_t* code) {
  const size_t W = binary_words(d), H = binary_header_bytes(L);
  std::fill(code, code + H + 8 * L * W, uint8_t{0});
  std::vector<double> r(x, x + d);  // the residual; x^ = x - r
  float alpha[kMaxBinaryLevels];
  for (size_t t = 0; t < L; ++t) {
    double l1 = 0;
    for (size_t i = 0; i < d; ++i) l1 += std::fabs(r[i]);
    const double a = l1 / static_cast<double>(d);
    alpha[t] = static_cast<float>(a);
    const double af = alpha[t];  // reconstruct with the stored (float) scale
    uint8_t* plane = code + H + 8 * t * W;
    for (size_t i = 0; i < d; ++i) {
      const bool pos = r[i] >= 0;
      if (pos) plane[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
      const double s = pos ? af : -af;
      r[i] -= s;
    }
  }
  double n2 = 0;
  for (size_t i = 0; i < d; ++i) n2 += (double{x[i]} - r[i]) * (double{x[i]} - r[i]);
  const float norm2 = static_cast<float>(n2);
  std::memcpy(code, alpha, 4 * L);
  std::memcpy(code + 4 * L, &norm2, 4);
}

void unbinarize(const uint8_t* code, size_t d, size_t L, float* x) {
  // Byte by byte: a set bit adds 2 alpha_t to the all-minus start -sum_t alpha_t (the
  // structures decode codes for graph construction, so this runs often).
  const size_t W = binary_words(d), H = binary_header_bytes(L);
  float alpha[kMaxBinaryLevels];
  std::memcpy(alpha, code, 4 * L);
  float base = 0.f;
  for (size_t t = 0; t < L; ++t) base -= alpha[t];
  std::fill(x, x + d, base);
  for (size_t t = 0; t < L; ++t) {
    const float two_a = 2.f * alpha[t];
    const uint8_t* plane = code + H + 8 * t * W;
    for (size_t j = 0; j * 8 < d; ++j) {
      const unsigned b = plane[j];
      float* xj = x + 8 * j;
      const size_t m = d - 8 * j < 8 ? d - 8 * j : 8;
      for (size_t k = 0; k < m; ++k) xj[k] += static_cast<float>((b >> k) & 1u) * two_a;
    }
  }
}

/// An ADC query as a code of B + 1 sign levels (B = kBebrAdcQueryBits): u_i =
/// round((q_i - lo) / step) in [0, 2^B), step = (hi - lo) / (2^B - 1), so q_i ~ lo + step
/// u_i = c + sum_b (step 2^b / 2) (2 bit_b(u_i) - 1) with c = lo + step (2^B - 1) / 2.
/// Level 0 is the constant: all bits 0 (sign -1) with scale -c; level 1 + b holds bit b
/// with scale step 2^b / 2. The kernels then score it like any code (level pairs).
void quantize_query_levels(const float* q, size_t d, uint8_t* code) {
  constexpr size_t B = simd::kBebrAdcQueryBits, LQ = B + 1;
  constexpr float top = static_cast<float>((1u << B) - 1);
  const size_t W = binary_words(d), H = binary_header_bytes(LQ);
  std::fill(code, code + H + 8 * LQ * W, uint8_t{0});
  float lo = q[0], hi = q[0];
  for (size_t i = 1; i < d; ++i) lo = std::min(lo, q[i]), hi = std::max(hi, q[i]);
  const float step = (hi - lo) / top;  // 0 for a constant query: every u is 0
  float scale[LQ];
  scale[0] = -(lo + step * (0.5f * top));
  for (size_t b = 0; b < B; ++b) scale[1 + b] = step * static_cast<float>(1u << b) * 0.5f;
  std::memcpy(code, scale, sizeof scale);
  if (step > 0.f) {
    for (size_t i = 0; i < d; ++i) {
      const float u = std::clamp(std::nearbyint((q[i] - lo) / step), 0.f, top);
      const unsigned v = static_cast<unsigned>(u);
      for (size_t b = 0; b < B; ++b)
        if ((v >> b) & 1u) code[H + 8 * (1 + b) * W + i / 8] |= static_cast<uint8_t>(1u << (i % 8));
    }
  }
}

}  // namespace

void VectorCodec::train(const float* x, size_t n) {
  if (kind_ != CodecKind::SQ8) return;
  ANNX_CHECK(InvalidArgument, n >= 1, "SQ8 training needs at least 1 vector, got 0");
  std::vector<float> lo(x, x + d_), hi(x, x + d_);
  for (size_t i = 1; i < n; ++i) {
    const float* r = x + i * static_cast<size_t>(d_);
    for (int j = 0; j < d_; ++j) {
      lo[j] = std::min(lo[j], r[j]);
      hi[j] = std::max(hi[j], r[j]);
    }
  }
  std::vector<float> scale(d_);
  for (int j = 0; j < d_; ++j) scale[j] = hi[j] > lo[j] ? (hi[j] - lo[j]) / 255.f : 1.f;
  set_sq_params(std::move(lo), std::move(scale));
}

void VectorCodec::set_sq_params(std::vector<float> vmin, std::vector<float> vscale) {
  vmin_ = std::move(vmin);
  vscale_ = std::move(vscale);
  weight_.resize(vscale_.size());
  for (size_t j = 0; j < vscale_.size(); ++j) weight_[j] = vscale_[j] * vscale_[j];
}

void VectorCodec::encode(const float* x, size_t n, uint8_t* codes) const {
  const auto& k = simd::kernels();
  const size_t d = static_cast<size_t>(d_);
  if (const int L = levels()) {
    const size_t cs = code_size();
    for (size_t i = 0; i < n; ++i) binarize(x + i * d, d, size_t(L), codes + i * cs);
    return;
  }
  switch (kind_) {
    case CodecKind::F32: std::copy(x, x + n * d, reinterpret_cast<float*>(codes)); return;
    case CodecKind::F16:
    case CodecKind::BF16: {
      uint16_t* h = reinterpret_cast<uint16_t*>(codes);
      const bool f16 = kind_ == CodecKind::F16;
      (f16 ? k.f32_to_f16 : k.f32_to_bf16)(x, h, n * d);
      // A finite input that rounds to infinity would silently corrupt distances.
      const uint16_t exp_mask = f16 ? 0x7c00 : 0x7f80;
      for (size_t i = 0; i < n * d; ++i)
        ANNX_CHECK(InvalidArgument, (h[i] & exp_mask) != exp_mask, "x row ", i / d, ", column ",
                   i % d, ": value ", x[i], " is outside the ", f16 ? "float16" : "bfloat16",
                   " range (|x| <= ", f16 ? "65504" : "3.39e38", ")");
      return;
    }
    case CodecKind::SQ8:
      ANNX_CHECK(NotTrained, is_trained(), "SQ8 codec is not trained");
      for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < d; ++j) {
          // Values outside the trained range are clamped to it.
          const float t = std::nearbyint((x[i * d + j] - vmin_[j]) / vscale_[j]);
          codes[i * d + j] = static_cast<uint8_t>(std::clamp(t, 0.f, 255.f));
        }
      return;
    default: break;
  }
}

void VectorCodec::decode(const uint8_t* codes, size_t n, float* x) const {
  const auto& k = simd::kernels();
  const size_t d = static_cast<size_t>(d_);
  if (const int L = levels()) {
    const size_t cs = code_size();
    for (size_t i = 0; i < n; ++i) unbinarize(codes + i * cs, d, size_t(L), x + i * d);
    return;
  }
  switch (kind_) {
    case CodecKind::F32: {
      const float* c = reinterpret_cast<const float*>(codes);
      std::copy(c, c + n * d, x);
      return;
    }
    case CodecKind::F16: k.f16_to_f32(reinterpret_cast<const uint16_t*>(codes), x, n * d); return;
    case CodecKind::BF16: k.bf16_to_f32(reinterpret_cast<const uint16_t*>(codes), x, n * d); return;
    case CodecKind::SQ8:
      for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < d; ++j) x[i * d + j] = vmin_[j] + codes[i * d + j] * vscale_[j];
      return;
    default: break;
  }
}

PreparedQuery VectorCodec::prepare(const float* q, Metric metric) const {
  PreparedQuery p;
  const bool l2 = metric == Metric::L2;
  p.negate = !l2;
  const size_t d = static_cast<size_t>(d_);
  if (const int L = levels()) {
    // Header (see kernels/bebr_body-inl.h): levels, metric, squared norm, the query
    // code's levels; then the query code: its own code (SDC) or its B-bit quantization
    // written as B + 1 sign levels (ADC).
    const bool adc = binary_adc(kind_);
    p.kind = adc ? simd::DistKind::BEBR_ADC : simd::DistKind::BEBR_SDC;
    const float m = l2 ? 1.f : metric == Metric::Cosine ? 2.f : 0.f;
    const size_t LQ = adc ? size_t{simd::kBebrAdcQueryBits} + 1 : size_t(L);
    const size_t qbytes = binary_header_bytes(LQ) + 8 * LQ * binary_words(d);
    p.q.assign(4 + (qbytes + 3) / 4, 0.f);
    uint8_t* c = reinterpret_cast<uint8_t*>(p.q.data() + 4);
    float qn2;
    if (adc) {
      quantize_query_levels(q, d, c);
      double n2 = 0;
      for (size_t j = 0; j < d; ++j) n2 += double{q[j]} * q[j];
      qn2 = static_cast<float>(n2);
    } else {
      binarize(q, d, size_t(L), c);
      std::memcpy(&qn2, c + 4 * size_t(L), 4);
    }
    p.q[0] = float(L), p.q[1] = m, p.q[2] = qn2, p.q[3] = float(LQ);
    return p;
  }
  switch (kind_) {
    case CodecKind::F32: p.kind = l2 ? simd::DistKind::L2_F32 : simd::DistKind::IP_F32; break;
    case CodecKind::F16: p.kind = l2 ? simd::DistKind::L2_F16 : simd::DistKind::IP_F16; break;
    case CodecKind::BF16: p.kind = l2 ? simd::DistKind::L2_BF16 : simd::DistKind::IP_BF16; break;
    case CodecKind::SQ8:
      ANNX_CHECK(NotTrained, is_trained(), "SQ8 codec is not trained");
      p.q.resize(d);
      if (l2) {
        // sum_j (q_j - min_j - c_j s_j)^2 = sum_j s_j^2 ((q_j - min_j)/s_j - c_j)^2
        p.kind = simd::DistKind::WL2_U8;
        // A dimension where the query lies beyond 2^32 steps of the grid (a tiny trained
        // range, or a far query) would overflow the kernel's (q'_j - c)^2 and lose its
        // term to s_j^2 underflowing to 0. Its term there is (q_j - min_j - c s_j)^2
        // = (q_j - centre_j)^2 (1 + O(255 / 2^32)) for every code c: it goes into the
        // offset, in double, and the kernel sees the grid's centre (a term <= 127.5^2 s_j^2).
        double far = 0;
        for (size_t j = 0; j < d; ++j) {
          const float qj = (q[j] - vmin_[j]) / vscale_[j];
          if (std::fabs(qj) <= 0x1p32f) {
            p.q[j] = qj;
          } else {
            const double centre = double{vmin_[j]} + 127.5 * double{vscale_[j]};
            far += (double{q[j]} - centre) * (double{q[j]} - centre);
            p.q[j] = 127.5f;
          }
        }
        p.offset = static_cast<float>(far);
        p.aux = weight_.data();
      } else {
        // sum_j q_j (min_j + c_j s_j) = sum_j q_j min_j + sum_j (q_j s_j) c_j
        p.kind = simd::DistKind::IP_U8;
        double off = 0;
        for (size_t j = 0; j < d; ++j) {
          p.q[j] = q[j] * vscale_[j];
          off += double{q[j]} * vmin_[j];
        }
        p.offset = static_cast<float>(off);
      }
      return p;
    default: break;
  }
  p.q.assign(q, q + d);
  return p;
}

}  // namespace annx
