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

enum class CodecKind : int { F32 = 0, F16 = 1, BF16 = 2, SQ8 = 3 };

const char* codec_name(CodecKind k);  // "F32", "F16", "BF16", "SQ8"

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
  bool is_trained() const { return !needs_training() || !vmin_.empty(); }

  /// SQ8: per-dimension min and max over x (n rows). Others: no-op.
  void train(const float* x, size_t n);
  void encode(const float* x, size_t n, uint8_t* codes) const;
  void decode(const uint8_t* codes, size_t n, float* x) const;

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
