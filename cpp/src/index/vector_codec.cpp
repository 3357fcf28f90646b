#include "annx/index/vector_codec.h"

#include <algorithm>
#include <cmath>

#include "annx/common/error.h"

namespace annx {

const char* codec_name(CodecKind k) {
  switch (k) {
    case CodecKind::F32: return "F32";
    case CodecKind::F16: return "F16";
    case CodecKind::BF16: return "BF16";
    case CodecKind::SQ8: return "SQ8";
  }
  return "?";
}

size_t VectorCodec::code_size() const {
  const size_t d = static_cast<size_t>(d_);
  switch (kind_) {
    case CodecKind::F32: return 4 * d;
    case CodecKind::F16:
    case CodecKind::BF16: return 2 * d;
    case CodecKind::SQ8: return d;
  }
  return 0;
}

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
  }
}

void VectorCodec::decode(const uint8_t* codes, size_t n, float* x) const {
  const auto& k = simd::kernels();
  const size_t d = static_cast<size_t>(d_);
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
  }
}

PreparedQuery VectorCodec::prepare(const float* q, Metric metric) const {
  PreparedQuery p;
  const bool l2 = metric == Metric::L2;
  p.negate = !l2;
  const size_t d = static_cast<size_t>(d_);
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
        for (size_t j = 0; j < d; ++j) p.q[j] = (q[j] - vmin_[j]) / vscale_[j];
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
  }
  p.q.assign(q, q + d);
  return p;
}

}  // namespace annx
