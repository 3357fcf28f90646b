#include "annx/transform/leanvec.h"

#include <algorithm>
#include <cmath>

#include "annx/common/error.h"
#include "annx/common/thread_pool.h"
#include "annx/simd/kernels.h"

namespace annx {

LeanVecTransform::LeanVecTransform(int d_in, int d_out) : d_in_(d_in), d_out_(d_out) {
  ANNX_CHECK(InvalidArgument, d_out >= 1 && d_out < d_in,
             "LeanVec target dimension must be in [1, d), got ", d_out, " for d = ", d_in);
}

void LeanVecTransform::set(const float* mean, const float* data, const float* query) {
  const size_t D = static_cast<size_t>(d_in_), d = static_cast<size_t>(d_out_);
  for (size_t i = 0; i < D; ++i)
    ANNX_CHECK(InvalidArgument, std::isfinite(mean[i]), "LeanVec mean has a non-finite value");
  auto transpose = [&](const float* m, const char* what) {
    std::vector<float> t(d * D);
    bool nonzero = false;
    for (size_t i = 0; i < D; ++i)
      for (size_t j = 0; j < d; ++j) {
        const float v = m[i * d + j];
        ANNX_CHECK(InvalidArgument, std::isfinite(v), "LeanVec ", what,
                   " matrix has a non-finite value at (", i, ", ", j, ")");
        nonzero |= v != 0.f;
        t[j * D + i] = v;
      }
    ANNX_CHECK(InvalidArgument, nonzero, "LeanVec ", what, " matrix is all zeros");
    return t;
  };
  std::vector<float> dt = transpose(data, "data");
  std::vector<float> qt = transpose(query, "query");
  mean_.assign(mean, mean + D);
  data_t_ = std::move(dt);
  query_t_ = std::move(qt);
}

std::vector<float> LeanVecTransform::untranspose(const std::vector<float>& mt) const {
  const size_t D = static_cast<size_t>(d_in_), d = static_cast<size_t>(d_out_);
  std::vector<float> m(mt.empty() ? 0 : D * d);
  for (size_t j = 0; j < d && !mt.empty(); ++j)
    for (size_t i = 0; i < D; ++i) m[i * d + j] = mt[j * D + i];
  return m;
}

void LeanVecTransform::apply_data(const float* x, size_t n, bool residual, float* out,
                                  int threads) const {
  apply(data_t_, x, n, /*center=*/true, residual ? Extra::Residual : Extra::None, out, threads);
}

void LeanVecTransform::apply_queries(const float* q, size_t n, bool center, bool residual,
                                     float* out, int threads) const {
  apply(query_t_, q, n, center, residual ? Extra::Zero : Extra::None, out, threads);
}

// A small GEMM, (n x D) times (D x d): the matrix rows are packed once into the
// kernel table's panels and each block of input rows is multiplied panel by panel,
// the same blocked kernel exact search and k-means use.
void LeanVecTransform::apply(const std::vector<float>& mt, const float* x, size_t n, bool center,
                             Extra extra, float* out, int threads) const {
  ANNX_CHECK(NotTrained, is_set(), "LeanVec matrices are not set: train the index first");
  if (n == 0) return;
  const auto& K = simd::kernels();
  const size_t D = static_cast<size_t>(d_in_), d = static_cast<size_t>(d_out_);
  const size_t P = K.panel_rows, npanels = (d + P - 1) / P, dpad = npanels * P;
  const size_t stride = d + (extra == Extra::None ? 0 : 1);
  std::vector<float> panels(npanels * P * D, 0.f);
  for (size_t s = 0; s < npanels; ++s)
    K.pack_f32_panel(mt.data() + s * P * D, std::min(P, d - s * P), D, panels.data() + s * P * D);
  constexpr size_t kBlock = 32;
  parallel_for(
      n, 256,
      [&](size_t b, size_t e) {
        std::vector<float> centred(center ? kBlock * D : 0), tile(kBlock * dpad);
        for (size_t r0 = b; r0 < e; r0 += kBlock) {
          const size_t m = std::min(kBlock, e - r0);
          const float* rows = x + r0 * D;
          if (center) {
            for (size_t r = 0; r < m; ++r)
              for (size_t i = 0; i < D; ++i) centred[r * D + i] = rows[r * D + i] - mean_[i];
            rows = centred.data();
          }
          for (size_t s = 0; s < npanels; ++s)
            K.dot_f32_panel(rows, m, D, panels.data() + s * P * D, tile.data() + s * P, dpad);
          for (size_t r = 0; r < m; ++r) {
            const float* y = tile.data() + r * dpad;
            float* o = out + (r0 + r) * stride;
            std::copy(y, y + d, o);
            if (extra == Extra::Zero) o[d] = 0.f;
            if (extra == Extra::Residual) {
              double full = 0, kept = 0;
              for (size_t i = 0; i < D; ++i) full += double{rows[r * D + i]} * rows[r * D + i];
              for (size_t j = 0; j < d; ++j) kept += double{y[j]} * y[j];
              o[d] = static_cast<float>(std::sqrt(std::max(0.0, full - kept)));
            }
          }
        }
      },
      threads);
}

}  // namespace annx
