// Exact Chamfer similarity: see annx/index/chamfer.h.
#include "annx/index/chamfer.h"

#include <algorithm>
#include <limits>

#include "annx/common/ragged.h"
#include "annx/common/thread_pool.h"
#include "annx/simd/kernels.h"

namespace annx {

PackedQuerySet::PackedQuerySet(const float* q, size_t nq, size_t d)
    : nq_(nq), qw_((nq + 15) / 16 * 16), d_(d), qt_(d * qw_, 0.f) {
  for (size_t a = 0; a < nq; ++a)
    for (size_t k = 0; k < d; ++k) qt_[k * qw_ + a] = q[a * d + k];
}

float PackedQuerySet::score(const simd::KernelTable& K, const float* x, size_t nx,
                            float* best) const {
  std::fill(best, best + qw_, -std::numeric_limits<float>::infinity());
  K.maxsim_f32(qt_.data(), qw_, x, nx, d_, best);
  double s = 0;
  for (size_t a = 0; a < nq_; ++a) s += best[a];
  return static_cast<float>(s);
}

void chamfer_scores(const float* q, size_t nq, const float* docs, const int64_t* offsets, size_t n,
                    size_t dim, float* out, int threads) {
  if (n == 0) return;
  const auto& K = simd::kernels();
  const PackedQuerySet qs(q, nq, dim);
  parallel_for(
      n, 64,
      [&](size_t b, size_t e) {
        std::vector<float> best(qs.width());
        for (size_t i = b; i < e; ++i)
          out[i] = qs.score(K, docs + size_t(offsets[i]) * dim, size_t(offsets[i + 1] - offsets[i]),
                            best.data());
      },
      threads);
}

void chamfer_matrix(const float* qtokens, const int64_t* qoffsets, size_t nsets, const float* docs,
                    const int64_t* offsets, size_t n, size_t dim, float* out, int threads) {
  if (n == 0 || nsets == 0) return;
  const auto& K = simd::kernels();
  std::vector<PackedQuerySet> qs;
  qs.reserve(nsets);
  size_t width = 0;
  for (size_t j = 0; j < nsets; ++j) {
    qs.emplace_back(qtokens + size_t(qoffsets[j]) * dim, size_t(qoffsets[j + 1] - qoffsets[j]),
                    dim);
    width = std::max(width, qs.back().width());
  }
  // Blocks of documents small enough to stay in L2 while every query set passes.
  constexpr size_t kBlockBytes = 256 * 1024;
  const std::vector<size_t> starts =
      group_sets(offsets, n, std::max<size_t>(1, kBlockBytes / (dim * sizeof(float))));
  parallel_for(
      starts.size() - 1, 1,
      [&](size_t b, size_t e) {
        std::vector<float> best(width);
        for (size_t blk = b; blk < e; ++blk)
          for (size_t j = 0; j < nsets; ++j)
            for (size_t i = starts[blk]; i < starts[blk + 1]; ++i)
              out[j * n + i] = qs[j].score(K, docs + size_t(offsets[i]) * dim,
                                           size_t(offsets[i + 1] - offsets[i]), best.data());
      },
      threads);
}

}  // namespace annx
