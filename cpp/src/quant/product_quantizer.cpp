#include "annx/quant/product_quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include "annx/cluster/kmeans.h"
#include "annx/common/error.h"
#include "annx/common/random.h"
#include "annx/common/thread_pool.h"
#include "annx/simd/kernels.h"

namespace annx {

ProductQuantizer::ProductQuantizer(size_t d, size_t M, size_t nbits)
    : d_(d), M_(M), nbits_(nbits), ksub_(size_t{1} << nbits), dsub_((d + M - 1) / M) {
  ANNX_CHECK(InvalidArgument, M >= 1 && M <= d, "PQ needs 1 <= M <= d (d = ", d, "), got M = ", M);
  ANNX_CHECK(InvalidArgument, nbits == 4 || nbits == 8, "PQ supports 4 or 8 bits per code, got ",
             nbits);
}

void ProductQuantizer::slice(const float* x, size_t n, size_t m, float* out) const {
  const size_t b = m * dsub_, e = std::min(d_, b + dsub_);
  for (size_t i = 0; i < n; ++i) {
    float* o = out + i * dsub_;
    for (size_t t = b; t < b + dsub_; ++t) o[t - b] = t < e ? x[i * d_ + t] : 0.f;
  }
}

void ProductQuantizer::train(const float* x, size_t n, int niter, uint64_t seed, int threads,
                             ProgressCounter* progress) {
  ANNX_CHECK(InvalidArgument, n >= ksub_, "training PQ with ", ksub_,
             " centroids per sub-quantizer needs at least ", ksub_, " vectors, got ", n);
  std::optional<ProgressCounter> own;
  if (!progress) progress = &own.emplace(train_units(niter), "PQ training");
  std::vector<float> cb(M_ * ksub_ * dsub_);
  // One sub-quantizer per task: the k-means inside runs inline on that thread.
  parallel_for(
      M_, 1,
      [&](size_t b, size_t e) {
        std::vector<float> sub(n * dsub_);
        for (size_t m = b; m < e; ++m) {
          slice(x, n, m, sub.data());
          KMeansOptions o;
          o.niter = niter;
          o.seed = splitmix64(seed + m);
          o.threads = 1;
          // Shared by the sub-quantizers on every thread: workers only count, the
          // caller reports (see ProgressCounter).
          o.progress = progress;
          const KMeansResult r = kmeans(sub.data(), n, dsub_, ksub_, o);
          std::copy(r.centroids.begin(), r.centroids.end(), cb.begin() + m * ksub_ * dsub_);
        }
      },
      threads);
  if (own) own->finish();
  codebooks_ = std::move(cb);
  build_transposed();
}

void ProductQuantizer::build_transposed() {
  kstride_ = (ksub_ + 15) / 16 * 16;
  transposed_.assign(M_ * dsub_ * kstride_, 0.f);
  for (size_t m = 0; m < M_; ++m)
    for (size_t j = 0; j < ksub_; ++j)
      for (size_t t = 0; t < dsub_; ++t)
        transposed_[(m * dsub_ + t) * kstride_ + j] = codebooks_[(m * ksub_ + j) * dsub_ + t];
}

void ProductQuantizer::encode(const float* x, size_t n, uint8_t* codes, int threads) const {
  ANNX_CHECK(NotTrained, is_trained(), "PQ must be trained before encoding");
  const auto& K = simd::kernels();
  const size_t chunk = 4096;
  parallel_for((n + chunk - 1) / chunk, 1,
               [&](size_t b, size_t e) {
                 std::vector<float> sub(chunk * dsub_), dist(chunk);
                 std::vector<uint32_t> best(chunk);
                 for (size_t c = b; c < e; ++c) {
                   const size_t i0 = c * chunk, nc = std::min(chunk, n - i0);
                   for (size_t m = 0; m < M_; ++m) {
                     slice(x + i0 * d_, nc, m, sub.data());
                     // Direct squared distances: exact ties and tiny distances matter for
                     // codes (the expanded |x|^2 + |c|^2 - 2<x,c> form loses them).
                     K.nearest_l2_small(sub.data(), nc, dsub_,
                                        transposed_.data() + m * dsub_ * kstride_, ksub_, kstride_,
                                        best.data(), dist.data());
                     for (size_t i = 0; i < nc; ++i)
                       codes[(i0 + i) * M_ + m] = static_cast<uint8_t>(best[i]);
                   }
                 }
               },
               threads);
}

void ProductQuantizer::decode(const uint8_t* codes, size_t n, float* x) const {
  for (size_t i = 0; i < n; ++i)
    for (size_t m = 0; m < M_; ++m) {
      const float* c = codebooks_.data() + (m * ksub_ + codes[i * M_ + m]) * dsub_;
      const size_t b = m * dsub_, e = std::min(d_, b + dsub_);
      for (size_t t = b; t < e; ++t) x[i * d_ + t] = c[t - b];
    }
}

void ProductQuantizer::compute_lut(const float* q, bool ip, float* lut) const {
  // Over the transposed codebooks, so the inner loop runs over centroids (a kernel: this
  // table is built for every query and, with L2 residuals, for every probed list).
  simd::kernels().pq_lut(q, d_, M_, dsub_, transposed_.data(), kstride_, ksub_, ip, lut);
}

void ProductQuantizer::residual_terms(const float* centroids, size_t nlist, float* out) const {
  std::vector<double> norms(M_ * ksub_);
  for (size_t m = 0; m < M_; ++m)
    for (size_t j = 0; j < ksub_; ++j) {
      const float* y = codebooks_.data() + (m * ksub_ + j) * dsub_;
      double s = 0;
      for (size_t t = 0; t < dsub_; ++t) s += static_cast<double>(y[t]) * y[t];
      norms[m * ksub_ + j] = s;
    }
  for (size_t l = 0; l < nlist; ++l) {
    const float* c = centroids + l * d_;
    float* o = out + l * M_ * ksub_;
    for (size_t m = 0; m < M_; ++m) {
      const size_t b = m * dsub_, e = std::min(d_, b + dsub_);  // padding dims: c is 0
      for (size_t j = 0; j < ksub_; ++j) {
        const float* y = codebooks_.data() + (m * ksub_ + j) * dsub_;
        double ip = 0;
        for (size_t t = b; t < e; ++t) ip += static_cast<double>(c[t]) * y[t - b];
        o[m * ksub_ + j] = static_cast<float>(norms[m * ksub_ + j] + 2.0 * ip);
      }
    }
  }
}

void ProductQuantizer::set_codebooks(std::vector<float> cb) {
  ANNX_CHECK(FormatError, cb.size() == M_ * ksub_ * dsub_, "PQ codebooks have ", cb.size(),
             " values, expected ", M_ * ksub_ * dsub_);
  for (float v : cb)
    ANNX_CHECK(FormatError, std::isfinite(v), "PQ codebooks hold a non-finite value");
  codebooks_ = std::move(cb);
  build_transposed();
}

}  // namespace annx
