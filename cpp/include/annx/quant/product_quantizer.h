// Product quantization (Jegou et al.; algorithms.md §4): d dimensions are cut into M
// sub-vectors of dsub = ceil(d / M) dimensions (zero-padded), each encoded as the
// number of its nearest of ksub = 2^nbits centroids (nbits 4 or 8). Codes are one
// byte per sub-quantizer here; 4-bit codes are packed for fast-scan by pq4_layout.h.
//
// Distances to codes are asymmetric (ADC): a query builds an M x ksub lookup table
// once, and a code's distance is the sum of its M table entries. Tables are "lower
// is better": squared L2 partial distances, or negated partial inner products.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace annx {

class ProgressCounter;

class ProductQuantizer {
 public:
  ProductQuantizer() = default;
  ProductQuantizer(size_t d, size_t M, size_t nbits);

  size_t d() const { return d_; }
  size_t M() const { return M_; }
  size_t nbits() const { return nbits_; }
  size_t ksub() const { return ksub_; }
  size_t dsub() const { return dsub_; }
  bool is_trained() const { return !codebooks_.empty(); }

  /// Trains every sub-quantizer with k-means (L2, `niter` iterations, at most 256
  /// points per centroid, seeds derived from `seed`); parallel over sub-quantizers.
  /// Advances `progress` once per iteration of each sub-quantizer (M * niter units;
  /// null: a counter of its own). Codebooks change only once every one succeeded.
  void train(const float* x, size_t n, int niter, uint64_t seed, int threads,
             ProgressCounter* progress = nullptr);
  /// Progress units of train(): M * niter.
  size_t train_units(int niter) const { return M_ * static_cast<size_t>(niter > 0 ? niter : 0); }
  /// codes: n x M bytes (values < ksub).
  void encode(const float* x, size_t n, uint8_t* codes, int threads) const;
  void decode(const uint8_t* codes, size_t n, float* x) const;
  /// lut: M x ksub floats for query q (d floats): ||q_m - C_m[j]||^2, or -<q_m, C_m[j]>
  /// when `ip`.
  void compute_lut(const float* q, bool ip, float* lut) const;
  /// The query-independent part of L2 tables of residuals q - c (faiss's IVFPQ
  /// "precomputed table"): out[l][m][j] = ||C_m[j]||^2 + 2 <c_l,m, C_m[j]> for each of
  /// the nlist rows c_l of `centroids` (nlist x d), computed in double; out holds
  /// nlist x M x ksub floats. The table of q - c_l is then out[l] - 2 <q_m, C_m[j]> plus
  /// ||q_m - c_l,m||^2 per sub-quantizer (whose sum, ||q - c_l||^2, is one bias).
  void residual_terms(const float* centroids, size_t nlist, float* out) const;

  /// Codebooks: M x ksub x dsub floats (for persistence and tests).
  const std::vector<float>& codebooks() const { return codebooks_; }
  /// Throws FormatError when the size is wrong or a value is not finite.
  void set_codebooks(std::vector<float> cb);

 private:
  /// Sub-vector m of the rows of x, zero-padded: n x dsub.
  void slice(const float* x, size_t n, size_t m, float* out) const;

  void build_transposed();

  size_t d_ = 0, M_ = 0, nbits_ = 0, ksub_ = 0, dsub_ = 0;
  std::vector<float> codebooks_;
  // Per sub-quantizer, its centroids transposed (dsub x kstride_) for nearest_l2_small.
  std::vector<float> transposed_;
  size_t kstride_ = 0;
};

}  // namespace annx
