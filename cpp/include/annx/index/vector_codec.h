// Storage codecs for float vectors: F32 (lossless), F16 / BF16 (rounding only) and
// SQ8 (8-bit scalar quantization with a trained per-dimension min/max).
//
// A codec turns rows of d floats into fixed-size codes and prepares a query once so
// that distances to codes can be computed with the shared kernels (simd/kernels.h).
// Every structure (Flat now; HNSW, IVF later) stores its vectors through one of these.
#pragma once

#include <string>
#include <vector>

#include "annx/common/types.h"
#include "annx/simd/kernels.h"

namespace annx {

// Binary codecs (shared design algorithms.md section 7): BIN (1 bit per dimension)
// and BEBR<L> (L bits per dimension by recurrent residual binarization), each scored
// with the symmetric distance between codes (SDC) or, with the _adc spelling, with the
// float query against the codes (ADC). Code: L float scales, |x^|^2 (padded to 8
// bytes), then L bit-planes of ceil(d / 64) words. Training-free.
enum class CodecKind : int {
  F32 = 0,
  F16 = 1,
  BF16 = 2,
  SQ8 = 3,
  BIN = 4,          // = BEBR1; BEBR<L> is BIN + L - 1, L <= kMaxBinaryLevels
  BIN_ADC = 4 + 8,  // asymmetric scoring of the same codes; BEBR<L>_adc = BIN_ADC + L - 1
};
inline constexpr int kMaxBinaryLevels = 8;

/// Levels of a binary codec (1..8), 0 for the float / 8-bit codecs.
inline int binary_levels(CodecKind k) {
  const int v = static_cast<int>(k);
  if (v >= 4 && v < 4 + 2 * kMaxBinaryLevels) return (v - 4) % kMaxBinaryLevels + 1;
  return 0;
}
inline bool binary_adc(CodecKind k) { return static_cast<int>(k) >= 4 + kMaxBinaryLevels; }
inline CodecKind binary_codec(int levels, bool adc) {
  return static_cast<CodecKind>(4 + (adc ? kMaxBinaryLevels : 0) + levels - 1);
}

/// "F32", "F16", "BF16", "SQ8", "BIN", "BEBR2".."BEBR8", "BIN_adc", "BEBR2_adc"...
const char* codec_name(CodecKind k);
/// Every codec kind, in enum order (for parsing).
const std::vector<CodecKind>& all_codec_kinds();

/// A query prepared against one codec and metric. score() is "lower is better":
/// squared L2 for L2, the negated similarity for IP / cosine.
struct PreparedQuery {
  simd::DistKind kind;
  std::vector<float> q;  // the (transformed) query the kernel sees
  const float* aux = nullptr;
  float offset = 0.f;   // added to the kernel value
  bool negate = false;  // similarity kernels: score = -(value + offset)

  float finish(float v) const { return negate ? -(v + offset) : v + offset; }
  void finish_all(float* v, size_t n) const {
    if (negate) {
      for (size_t i = 0; i < n; ++i) v[i] = -(v[i] + offset);
    } else if (offset != 0.f) {
      for (size_t i = 0; i < n; ++i) v[i] += offset;
    }
  }
};

class VectorCodec {
 public:
  VectorCodec(CodecKind kind, int d) : kind_(kind), d_(d) {}

  CodecKind kind() const { return kind_; }
  int d() const { return d_; }
  size_t code_size() const;
  bool needs_training() const { return kind_ == CodecKind::SQ8; }
  /// Levels of a binary codec, 0 otherwise.
  int levels() const { return binary_levels(kind_); }
  bool is_trained() const { return !needs_training() || !vmin_.empty(); }

  /// SQ8: per-dimension min and max over x (n rows). Others: no-op.
  void train(const float* x, size_t n);
  void encode(const float* x, size_t n, uint8_t* codes) const;
  /// Binary codecs: the reconstruction x^ = sum_t alpha_t s_t.
  void decode(const uint8_t* codes, size_t n, float* x) const;

  /// Index of the first of n codes (`stride` bytes apart) that encode() could not have
  /// written: a non-finite value (F32, F16, BF16 components; a binary code's level scales
  /// and norm) or a decoded norm beyond kMaxNorm2 (finite.h); n when all are valid. SQ8
  /// codes are bytes (its parameters are checked instead). For loaders.
  size_t first_invalid_code(const uint8_t* codes, size_t n, size_t stride) const;

  /// Prepares `q` (d floats, already normalised for cosine) for `metric`.
  PreparedQuery prepare(const float* q, Metric metric) const;

  /// SQ8 parameters (empty for other codecs); for persistence.
  const std::vector<float>& sq_min() const { return vmin_; }
  const std::vector<float>& sq_scale() const { return vscale_; }
  void set_sq_params(std::vector<float> vmin, std::vector<float> vscale);

 private:
  CodecKind kind_;
  int d_;
  std::vector<float> vmin_, vscale_, weight_;  // SQ8: x ~ vmin + code * vscale; weight = vscale^2
};

}  // namespace annx
