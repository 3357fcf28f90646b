// k-means (Lloyd) and batched nearest-centroid search, shared by IVF (coarse
// quantizer) and PQ (sub-quantizer codebooks). No BLAS: distances come from the f32
// panel kernels of simd/kernels.h.
//
// Follows faiss's ClusteringParameters defaults (algorithms.md §3): 25 iterations, one
// run, seed 1234, at most 256 training points per centroid (a seeded subsample), a
// warning below 39 points per centroid and an error below 1; empty clusters are split
// from a donor drawn with probability proportional to (size - 1); spherical mode
// re-normalises centroids after every update and assigns by largest inner product.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace annx {

class ProgressCounter;

/// k centroids prepared for batched nearest-centroid search: packed into the panel
/// layout of the f32 kernels once, then searched by many query blocks.
class CentroidTable {
 public:
  CentroidTable() = default;
  /// `ip`: scores are negated inner products (best = largest IP); otherwise squared L2.
  CentroidTable(const float* c, size_t k, size_t d, bool ip);

  size_t k() const { return k_; }
  size_t d() const { return d_; }
  bool ip() const { return ip_; }
  const float* centroid(size_t j) const { return c_.data() + j * d_; }
  const std::vector<float>& centroids() const { return c_; }

  /// For each of the n rows of x, the p best centroids (p <= k), best first: scores
  /// (squared L2, or -<x, c>) in D and centroid numbers in I, both n x p. Ties go to
  /// the lower centroid number.
  void search(const float* x, size_t n, size_t p, float* D, uint32_t* I, int threads) const;

 private:
  size_t k_ = 0, d_ = 0;
  bool ip_ = false;
  std::vector<float> c_;       // k x d
  std::vector<float> norms_;   // squared norms
  std::vector<float> panels_;  // ceil(k / P) panels of P x d (zero-padded)
  // Few dimensions (L2): centroids transposed for the nearest_l2_small kernel, which
  // beats the GEMM panels when d is too small to amortise them.
  static constexpr size_t kSmallD = 16;
  std::vector<float> transposed_;  // d x kstride_
  size_t kstride_ = 0;
};

enum class KMeansInit : int {
  Auto = 0,      // k-means++ when n * k * d <= 2^31 (cheap), else random
  Random = 1,    // k distinct training points (faiss's default)
  PlusPlus = 2,  // k-means++ (D^2 sampling)
};

struct KMeansOptions {
  int niter = 25;
  int nredo = 1;  // runs with derived seeds; the lowest objective wins
  uint64_t seed = 1234;
  KMeansInit init = KMeansInit::Auto;
  size_t max_points_per_centroid = 256;  // 0: no subsampling
  size_t min_points_per_centroid = 39;   // below: `few_points` is set (callers warn)
  bool spherical = false;                // unit-norm centroids
  bool ip = false;                       // assign by largest inner product
  int threads = 0;
  /// Advanced once per Lloyd iteration (nredo * niter units; see kmeans_units). Null:
  /// kmeans() counts on its own counter, reporting to the calling thread's progress
  /// hook and cancellable through it. Callers running several k-means as one
  /// operation (IVF + PQ training) share one counter so its report runs 0 -> total once.
  ProgressCounter* progress = nullptr;
};

/// Progress units of one kmeans() call: its Lloyd iterations, nredo * niter.
inline size_t kmeans_units(const KMeansOptions& opt) {
  return static_cast<size_t>(opt.nredo) * static_cast<size_t>(opt.niter > 0 ? opt.niter : 0);
}

struct KMeansResult {
  std::vector<float> centroids;  // k x d
  /// Objective after each iteration's assignment of the winning run: sum of squared
  /// distances (L2) or sum of inner products (ip), over the training points used.
  std::vector<double> objective;
  double imbalance = 0;  // k * sum(n_j^2) / n^2 of the final assignment (1 = perfect)
  size_t n_train = 0;    // training points used after subsampling
  size_t n_split = 0;    // empty clusters split (all iterations)
  bool few_points = false;
};

/// Trains k centroids on n x d points (throws InvalidArgument when n < k). A cancel
/// through the progress hook throws annx::Cancelled (the hook's exception if it threw).
KMeansResult kmeans(const float* x, size_t n, size_t d, size_t k, const KMeansOptions& opt);

}  // namespace annx
