#include "annx/cluster/kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include "annx/common/error.h"
#include "annx/common/normalize.h"
#include "annx/common/random.h"
#include "annx/common/thread_pool.h"
#include "annx/common/topk.h"
#include "annx/simd/kernels.h"

namespace annx {

// ------------------------------------------------------------------ CentroidTable

namespace {

constexpr size_t kArgminBlock = 64;

struct SelectScratch {
  std::vector<float> sample;
  std::vector<uint32_t> sel;
  std::vector<std::pair<float, uint32_t>> cand;
};

/// The p best (lowest) of k scores, sorted by (score, index), into D/I. A heap over
/// all k scores costs a branch misprediction per push; instead a threshold is
/// estimated from a strided sample (about 2p expected survivors), the survivors are
/// collected at SIMD speed (select_le) and only they are sorted. Falls back to all k
/// when the estimate admits fewer than p.
void select_best(const simd::KernelTable& K, const float* row, size_t k, size_t p,
                 SelectScratch& sc, float* D, uint32_t* I) {
  constexpr size_t kStride = 8;
  sc.sel.resize(k);
  size_t m = 0;
  if (p * 4 < k && k >= 16 * kStride) {
    const size_t ns = k / kStride;
    sc.sample.resize(ns);
    for (size_t i = 0; i < ns; ++i) sc.sample[i] = row[i * kStride];
    const size_t r = std::min(ns - 1, (2 * p) / kStride + 1);
    std::nth_element(sc.sample.begin(), sc.sample.begin() + static_cast<std::ptrdiff_t>(r),
                     sc.sample.end());
    m = K.select_le(row, k, sc.sample[r], sc.sel.data());
  }
  sc.cand.clear();
  if (m >= p) {
    for (size_t h = 0; h < m; ++h) sc.cand.emplace_back(row[sc.sel[h]], sc.sel[h]);
  } else {
    for (size_t j = 0; j < k; ++j) sc.cand.emplace_back(row[j], static_cast<uint32_t>(j));
  }
  // The p best by (score, index), ties to the lower index, in order: a selection, then a
  // sort of those p (std::partial_sort's heap cost 7 % of an IVF1024 search at nprobe 64).
  const auto mid = sc.cand.begin() + static_cast<std::ptrdiff_t>(p);
  if (mid != sc.cand.end()) std::nth_element(sc.cand.begin(), mid, sc.cand.end());
  std::sort(sc.cand.begin(), mid);
  for (size_t j = 0; j < p; ++j) {
    D[j] = sc.cand[j].first;
    I[j] = sc.cand[j].second;
  }
}

}  // namespace

CentroidTable::CentroidTable(const float* c, size_t k, size_t d, bool ip)
    : k_(k), d_(d), ip_(ip), c_(c, c + k * d), norms_(k) {
  const auto& K = simd::kernels();
  for (size_t j = 0; j < k; ++j) {
    double s = 0;
    for (size_t t = 0; t < d; ++t) s += double{c[j * d + t]} * c[j * d + t];
    norms_[j] = static_cast<float>(s);
  }
  if (!ip && d <= kSmallD) {
    kstride_ = (k + 15) / 16 * 16;
    transposed_.assign(d * kstride_, 0.f);
    for (size_t j = 0; j < k; ++j)
      for (size_t t = 0; t < d; ++t) transposed_[t * kstride_ + j] = c[j * d + t];
  }
  const size_t P = K.panel_rows, npanels = (k + P - 1) / P;
  panels_.assign(npanels * P * d, 0.f);
  for (size_t s = 0; s < npanels; ++s)
    K.pack_f32_panel(c + s * P * d, std::min(P, k - s * P), d, panels_.data() + s * P * d);
}

void CentroidTable::search(const float* x, size_t n, size_t p, float* D, uint32_t* I,
                           int threads) const {
  ANNX_CHECK(InvalidArgument, p >= 1 && p <= k_, "asked for ", p, " nearest of ", k_, " centroids");
  const auto& K = simd::kernels();
  if (p == 1 && !transposed_.empty()) {
    parallel_for(
        n, 4096,
        [&](size_t b, size_t e) {
          K.nearest_l2_small(x + b * d_, e - b, d_, transposed_.data(), k_, kstride_, I + b, D + b);
        },
        threads);
    return;
  }
  const size_t P = K.panel_rows, npanels = (k_ + P - 1) / P, kpad = npanels * P;
  // Query blocks sized so that a block's score tile stays in L2 (~256 KB).
  const size_t qb = std::clamp<size_t>((size_t{1} << 16) / kpad, 1, 64);
  const size_t work = std::max<size_t>(1, kpad * d_);
  const size_t grain = qb * std::max<size_t>(1, (size_t{1} << 22) / (qb * work));
  parallel_for(
      n, grain,
      [&](size_t b, size_t e) {
        // Per-thread scratch kept across calls: the tile is too big for a fresh
        // allocation per call (each would be a new mmap and page faults).
        thread_local std::vector<float> kept;
        std::vector<float> own;
        const bool small = qb * kpad <= (size_t{1} << 20);  // keep at most 4 MB per thread
        std::vector<float>& tile = small ? kept : own;
        if (tile.size() < qb * kpad) tile.resize(qb * kpad);
        SelectScratch sc;
        for (size_t a0 = b; a0 < e; a0 += qb) {
          const size_t mq = std::min(qb, e - a0);
          const float* xq = x + a0 * d_;
          for (size_t s = 0; s < npanels; ++s)
            K.dot_f32_panel(xq, mq, d_, panels_.data() + s * P * d_, tile.data() + s * P, kpad);
          for (size_t a = 0; a < mq; ++a) {
            float* row = tile.data() + a * kpad;
            float base = 0.f;
            if (!ip_) {
              double s = 0;
              const float* r = xq + a * d_;
              for (size_t t = 0; t < d_; ++t) s += double{r[t]} * r[t];
              base = static_cast<float>(s);
              for (size_t j = 0; j < k_; ++j)
                row[j] = std::max(0.f, base + norms_[j] - 2.f * row[j]);
            } else {
              for (size_t j = 0; j < k_; ++j) row[j] = -row[j];
            }
            float* Dr = D + (a0 + a) * p;
            uint32_t* Ir = I + (a0 + a) * p;
            if (p == 1) {
              // Argmin: SIMD-filter blocks against the best so far, look only at the
              // few that can improve it (ties keep the lower centroid number).
              size_t best = 0;
              uint32_t hit[kArgminBlock];
              for (size_t j0 = 0; j0 < k_; j0 += kArgminBlock) {
                const size_t len = std::min(kArgminBlock, k_ - j0);
                const size_t h = K.select_le(row + j0, len, row[best], hit);
                for (size_t t = 0; t < h; ++t)
                  if (row[j0 + hit[t]] < row[best]) best = j0 + hit[t];
              }
              Dr[0] = row[best];
              Ir[0] = static_cast<uint32_t>(best);
              continue;
            }
            select_best(K, row, k_, p, sc, Dr, Ir);
          }
        }
      },
      threads);
}

// -------------------------------------------------------------------------- k-means

namespace {

void normalize_rows(float* c, size_t k, size_t d) {
  for (size_t j = 0; j < k; ++j) normalize_row(c + j * d, d);  // zero rows stay zero
}

/// k-means++ seeding (D^2 sampling, squared L2 whatever the assignment metric).
void init_plus_plus(const float* x, size_t n, size_t d, size_t k, Rng& rng, int threads, float* c) {
  const auto& K = simd::kernels();
  const auto l2 = K.many[static_cast<int>(simd::DistKind::L2_F32)];
  std::vector<float> mind(n), dist(n);
  size_t pick = rng.below(n);
  std::copy(x + pick * d, x + (pick + 1) * d, c);
  const size_t grain = std::max<size_t>(256, (size_t{1} << 18) / std::max<size_t>(1, d));
  parallel_for(
      n, grain, [&](size_t b, size_t e) { l2(c, x + b * d, e - b, d, nullptr, &mind[b]); },
      threads);
  for (size_t j = 1; j < k; ++j) {
    double total = 0;
    for (size_t i = 0; i < n; ++i) total += mind[i];
    if (total > 0) {
      const double r = rng.uniform() * total;
      double acc = 0;
      pick = n - 1;
      for (size_t i = 0; i < n; ++i) {
        acc += mind[i];
        if (acc > r) {
          pick = i;
          break;
        }
      }
    } else {
      pick = rng.below(n);  // every point coincides with a centroid already
    }
    float* cj = c + j * d;
    std::copy(x + pick * d, x + (pick + 1) * d, cj);
    parallel_for(
        n, grain,
        [&](size_t b, size_t e) {
          l2(cj, x + b * d, e - b, d, nullptr, &dist[b]);
          for (size_t i = b; i < e; ++i) mind[i] = std::min(mind[i], dist[i]);
        },
        threads);
  }
}

/// Means of the assigned points, computed in parallel over ranges of centroids (each
/// range scans every assignment), so the sums do not depend on the thread count.
void update_centroids(const float* x, size_t n, size_t d, size_t k, const uint32_t* assign,
                      int threads, float* c, std::vector<size_t>& count) {
  count.assign(k, 0);
  for (size_t i = 0; i < n; ++i) ++count[assign[i]];
  const size_t grain = std::max<size_t>(1, k / (4 * static_cast<size_t>(std::max(1, threads)) + 1));
  parallel_for(
      k, grain,
      [&](size_t b, size_t e) {
        std::vector<double> sum((e - b) * d, 0.0);
        for (size_t i = 0; i < n; ++i) {
          const uint32_t a = assign[i];
          if (a < b || a >= e) continue;
          double* s = sum.data() + (a - b) * d;
          const float* r = x + i * d;
          for (size_t t = 0; t < d; ++t) s[t] += r[t];
        }
        for (size_t j = b; j < e; ++j) {
          if (count[j] == 0) continue;
          const double inv = 1.0 / static_cast<double>(count[j]);
          for (size_t t = 0; t < d; ++t)
            c[j * d + t] = static_cast<float>(sum[(j - b) * d + t] * inv);
        }
      },
      threads);
}

/// faiss's split_clusters: each empty cluster copies a donor drawn with probability
/// (size - 1) / (n - k) (falling back to the largest) and both copies are nudged apart
/// by a factor 1 +- 1/1024 per coordinate. Returns the number of splits.
size_t split_empty(size_t n, size_t d, size_t k, Rng& rng, float* c, std::vector<size_t>& count) {
  constexpr float kEps = 1.f / 1024.f;
  size_t splits = 0;
  for (size_t ci = 0; ci < k; ++ci) {
    if (count[ci] != 0) continue;
    size_t cj = 0;
    bool found = false;
    if (n > k) {
      // A bounded number of rounds of the faiss draw; the largest cluster otherwise.
      for (size_t tries = 0; tries < 4 * k && !found; ++tries) {
        const size_t cand = tries % k;
        const double prob = (static_cast<double>(count[cand]) - 1.0) / static_cast<double>(n - k);
        if (count[cand] > 1 && rng.uniform() < prob) {
          cj = cand;
          found = true;
        }
      }
    }
    if (!found)
      cj = static_cast<size_t>(std::max_element(count.begin(), count.end()) - count.begin());
    if (count[cj] < 2) continue;  // nothing to split (n <= k with duplicates)
    float* a = c + ci * d;
    float* b = c + cj * d;
    for (size_t t = 0; t < d; ++t) {
      const float v = b[t];
      a[t] = t % 2 == 0 ? v * (1 + kEps) : v * (1 - kEps);
      b[t] = t % 2 == 0 ? v * (1 - kEps) : v * (1 + kEps);
    }
    count[ci] = count[cj] / 2;
    count[cj] -= count[ci];
    ++splits;
  }
  return splits;
}

}  // namespace

KMeansResult kmeans(const float* x, size_t n, size_t d, size_t k, const KMeansOptions& opt) {
  ANNX_CHECK(InvalidArgument, k >= 1, "k-means needs k >= 1, got ", k);
  ANNX_CHECK(InvalidArgument, d >= 1, "k-means needs d >= 1");
  ANNX_CHECK(InvalidArgument, n >= k, "k-means with ", k, " centroids needs at least ", k,
             " training points, got ", n);
  ANNX_CHECK(InvalidArgument, opt.niter >= 0 && opt.nredo >= 1,
             "k-means needs niter >= 0 and nredo >= 1");
  std::optional<ProgressCounter> own;
  ProgressCounter& progress =
      opt.progress ? *opt.progress : own.emplace(kmeans_units(opt), "k-means");
  KMeansResult res;
  Rng rng(opt.seed);
  // Seeded subsample (partial Fisher-Yates), kept in ascending row order for locality.
  std::vector<float> sample;
  const float* xs = x;
  size_t ns = n;
  if (opt.max_points_per_centroid > 0 && n / k >= opt.max_points_per_centroid &&
      n > k * opt.max_points_per_centroid) {
    ns = k * opt.max_points_per_centroid;
    std::vector<uint64_t> perm(n);
    std::iota(perm.begin(), perm.end(), uint64_t{0});
    for (size_t i = 0; i < ns; ++i) std::swap(perm[i], perm[i + rng.below(n - i)]);
    std::sort(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(ns));
    sample.resize(ns * d);
    for (size_t i = 0; i < ns; ++i)
      std::copy(x + perm[i] * d, x + (perm[i] + 1) * d, &sample[i * d]);
    xs = sample.data();
  }
  res.n_train = ns;
  res.few_points = ns < k * opt.min_points_per_centroid;

  const bool plus_plus =
      opt.init == KMeansInit::PlusPlus ||
      (opt.init == KMeansInit::Auto &&
       static_cast<double>(ns) * static_cast<double>(k) * static_cast<double>(d) <= 2147483648.0);
  std::vector<uint32_t> assign(ns), best_assign;
  std::vector<float> dist(ns), c(k * d);
  std::vector<size_t> count;
  double best_obj = std::numeric_limits<double>::infinity();
  for (int redo = 0; redo < opt.nredo; ++redo) {
    Rng r(splitmix64(opt.seed + static_cast<uint64_t>(redo)));
    if (plus_plus) {
      init_plus_plus(xs, ns, d, k, r, opt.threads, c.data());
    } else {
      std::vector<uint64_t> perm(ns);
      std::iota(perm.begin(), perm.end(), uint64_t{0});
      for (size_t j = 0; j < k; ++j) {
        std::swap(perm[j], perm[j + r.below(ns - j)]);
        std::copy(xs + perm[j] * d, xs + (perm[j] + 1) * d, c.data() + j * d);
      }
    }
    if (opt.spherical) normalize_rows(c.data(), k, d);
    std::vector<double> obj;
    for (int it = 0; it < opt.niter; ++it) {
      CentroidTable(c.data(), k, d, opt.ip)
          .search(xs, ns, 1, dist.data(), assign.data(), opt.threads);
      double o = 0;
      for (float v : dist) o += v;
      obj.push_back(opt.ip ? -o : o);
      update_centroids(xs, ns, d, k, assign.data(), opt.threads, c.data(), count);
      // After the last update a split would only perturb a finished centroid (an
      // empty one is harmless: it is never nearest to a training point).
      if (it + 1 < opt.niter) res.n_split += split_empty(ns, d, k, r, c.data(), count);
      if (opt.spherical) normalize_rows(c.data(), k, d);
      progress.advance();
    }
    // Rank runs by their last objective (lower distance sum / higher IP sum is better).
    const double last = obj.empty() ? 0.0 : (opt.ip ? -obj.back() : obj.back());
    if (redo == 0 || last < best_obj) {
      best_obj = last;
      res.centroids = c;
      res.objective = std::move(obj);
      best_assign = assign;
    }
  }
  if (opt.niter > 0) {
    std::vector<double> sizes(k, 0.0);
    for (uint32_t a : best_assign) sizes[a] += 1;
    double s2 = 0;
    for (double s : sizes) s2 += s * s;
    res.imbalance =
        static_cast<double>(k) * s2 / (static_cast<double>(ns) * static_cast<double>(ns));
  }
  if (own) own->finish();
  return res;
}

}  // namespace annx
