// LeanVec linear dimensionality reduction (Tepper et al., arXiv 2312.16335; shared
// design algorithms.md section 5): database vectors are mapped by a data matrix and
// queries by a query matrix (the same matrix for LeanVec-ID / PCA, separate learned
// ones for LeanVec-OOD), so that inner products (and, for L2, distances) in the
// reduced space approximate those in the full space.
//
// This class only applies matrices. Fitting them (PCA, the Frank-Wolfe OOD solver)
// happens in numpy on the Python side (python/annx/transforms.py), which keeps the
// C++ core free of LAPACK; C++ users pass matrices to set().
//
//   data:    x' = B^T (x - mean)
//   queries: q' = A^T (q - mean)   for L2 and cosine (normalised vectors)
//            q' = A^T q            for inner product (the dropped term
//                                  <A^T q, B^T mean> is constant per query)
//
// Residual column (used by LeanVecIndex for LeanVec-OOD with L2 and cosine): data
// rows get one more coordinate r = sqrt(max(0, |x - mean|^2 - |x'|^2)) and queries a 0
// there, so the reduced squared distance |q' - x'|^2 + r^2 = |q'|^2 - 2 <q', x'> +
// |x - mean|^2 keeps each vector's exact norm and errs only in the inner-product term,
// which is what the OOD matrices are fitted for (|B|_2 <= 1, so r is real).
#pragma once

#include <cstddef>
#include <vector>

namespace annx {

class LeanVecTransform {
 public:
  LeanVecTransform(int d_in, int d_out);

  int d_in() const { return d_in_; }
  int d_out() const { return d_out_; }
  bool is_set() const { return !mean_.empty(); }

  /// mean: d_in floats; data, query: d_in x d_out row-major (column j is output
  /// dimension j, as in numpy's `(x - mean) @ B`). Throws InvalidArgument on a
  /// non-finite value or an all-zero matrix.
  void set(const float* mean, const float* data, const float* query);

  /// out (n rows, d_out + residual floats each) = rows of x (n x d_in) mapped by the
  /// data matrix, followed by the residual column when `residual`.
  void apply_data(const float* x, size_t n, bool residual, float* out, int threads) const;
  /// out (n rows, d_out + residual floats each) = queries mapped by the query matrix,
  /// centred first when `center`, followed by a 0 when `residual`.
  void apply_queries(const float* q, size_t n, bool center, bool residual, float* out,
                     int threads) const;

  const std::vector<float>& mean() const { return mean_; }
  /// Matrices in the layout set() takes (d_in x d_out).
  std::vector<float> data_matrix() const { return untranspose(data_t_); }
  std::vector<float> query_matrix() const { return untranspose(query_t_); }

 private:
  enum class Extra { None, Residual, Zero };
  void apply(const std::vector<float>& mt, const float* x, size_t n, bool center, Extra extra,
             float* out, int threads) const;
  std::vector<float> untranspose(const std::vector<float>& mt) const;

  int d_in_, d_out_;
  std::vector<float> mean_;
  std::vector<float> data_t_, query_t_;  // d_out x d_in: row j = output dimension j
};

}  // namespace annx
