#include "insert_order.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "annx/common/random.h"
#include "annx/common/thread_pool.h"
#include "annx/simd/kernels.h"

namespace annx::graph {
namespace {

void to_mobius(const float* x, size_t d, float* y) {
  double n2 = 0;
  for (size_t j = 0; j < d; ++j) n2 += double{x[j]} * x[j];
  const float inv = n2 > 0 ? static_cast<float>(1.0 / n2) : 0.f;
  for (size_t j = 0; j < d; ++j) y[j] = x[j] * inv;
}

}  // namespace

std::vector<float> lid_estimates(const float* x, size_t n, size_t d, bool mobius, uint64_t seed,
                                 int threads) {
  std::vector<float> lid(n, 0.f);
  if (n < 2 || d == 0) return lid;
  // Seeded sample of s distinct rows (partial Fisher-Yates), stored contiguously.
  const size_t s = std::min(n, kLidSample);
  std::vector<uint32_t> pick(n);
  std::iota(pick.begin(), pick.end(), 0u);
  uint64_t st = splitmix64(seed ^ 0x11d0c0deULL);
  for (size_t i = 0; i < s; ++i) {
    st = splitmix64(st);
    std::swap(pick[i], pick[i + st % (n - i)]);
  }
  std::vector<float> sample(s * d);
  for (size_t i = 0; i < s; ++i) {
    const float* r = x + size_t{pick[i]} * d;
    if (mobius) {
      to_mobius(r, d, sample.data() + i * d);
    } else {
      std::copy(r, r + d, sample.data() + i * d);
    }
  }
  // Squared distances by |q|^2 + |y|^2 - 2<q, y> with the packed-panel kernel Flat
  // uses (blocks of kQB rows against the whole sample). A distance below a relative
  // epsilon counts as zero (the row itself, duplicates).
  const auto& K = simd::kernels();
  const size_t P = K.panel_rows;
  const size_t npan = (s + P - 1) / P, sp = npan * P;
  std::vector<float> panels(sp * d), snorm(s);
  for (size_t p = 0; p < npan; ++p)
    K.pack_f32_panel(sample.data() + p * P * d, std::min(P, s - p * P), d,
                     panels.data() + p * P * d);
  for (size_t j = 0; j < s; ++j) {
    double a = 0;
    for (size_t t = 0; t < d; ++t) a += double{sample[j * d + t]} * sample[j * d + t];
    snorm[j] = static_cast<float>(a);
  }
  constexpr size_t kQB = 16;
  parallel_for(
      n, 256,
      [&](size_t b, size_t e) {
        std::vector<float> rows(kQB * d), dot(kQB * sp), dist(kLidNeighbours);
        for (size_t b0 = b; b0 < e; b0 += kQB) {
          const size_t mq = std::min(kQB, e - b0);
          for (size_t a = 0; a < mq; ++a) {
            const float* r = x + (b0 + a) * d;
            if (mobius) {
              to_mobius(r, d, rows.data() + a * d);
            } else {
              std::copy(r, r + d, rows.data() + a * d);
            }
          }
          for (size_t p = 0; p < npan; ++p)
            K.dot_f32_panel(rows.data(), mq, d, panels.data() + p * P * d, dot.data() + p * P, sp);
          for (size_t a = 0; a < mq; ++a) {
            const float* q = rows.data() + a * d;
            double qa = 0;
            for (size_t t = 0; t < d; ++t) qa += double{q[t]} * q[t];
            const float qn = static_cast<float>(qa);
            const float* dr = dot.data() + a * sp;
            // The k smallest positive squared distances, kept sorted in dist[0..m): most
            // candidates fail the threshold test (predictable; nth_element over the
            // whole row cost ~10x the distances).
            const size_t k = kLidNeighbours;
            size_t m = 0;
            float thr = std::numeric_limits<float>::infinity();
            for (size_t j = 0; j < s; ++j) {
              const float v = qn + snorm[j] - 2.f * dr[j];
              if (!(v < thr) || !(v > 1e-5f * (qn + snorm[j]))) continue;  // NaN fails too
              size_t pos = m < k ? m++ : k - 1;
              for (; pos > 0 && dist[pos - 1] > v; --pos) dist[pos] = dist[pos - 1];
              dist[pos] = v;
              if (m == k) thr = dist[k - 1];
            }
            if (m < k) continue;
            const float rk = dist[k - 1];
            double acc = 0;  // sum of ln(r_i / r_k) = 0.5 ln(d_i / d_k) over squared d
            for (size_t j = 0; j < k; ++j) acc += 0.5 * std::log(double{dist[j]} / rk);
            const double v = acc < 0 ? -static_cast<double>(k) / acc : 0.0;
            lid[b0 + a] = std::isfinite(v) ? static_cast<float>(v) : 0.f;
          }
        }
      },
      threads);
  return lid;
}

std::vector<uint32_t> lid_desc_order(const float* x, size_t n, size_t d, bool mobius, uint64_t seed,
                                     int threads) {
  const std::vector<float> lid = lid_estimates(x, n, d, mobius, seed, threads);
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return lid[a] > lid[b]; });
  return order;
}

}  // namespace annx::graph
