// A small end-to-end test of the C++ library on the active ISA level (on aarch64, NEON):
// Flat, HNSW, SQ8, IVF with 4-bit fast-scan PQ and with 8-bit PQ, each built through the
// factory on clustered random data, searched and checked against a float64 brute force
// (exact top-k for Flat, fixed-seed recall floors for the approximate ones), then saved
// to a file and loaded back with identical results.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "annx/factory.h"
#include "annx/index/index.h"
#include "annx/simd/isa.h"

namespace {

int g_failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("  %-4s %s\n", ok ? "ok" : "FAIL", what.c_str());
  if (!ok) ++g_failures;
}

/// Exact k nearest (squared L2, ties to the lower id) of each query, in double.
std::vector<std::vector<int64_t>> brute_force(const std::vector<float>& x, size_t n,
                                              const std::vector<float>& q, size_t nq, size_t d,
                                              size_t k) {
  std::vector<std::vector<int64_t>> out(nq);
  std::vector<std::pair<double, int64_t>> dist(n);
  for (size_t i = 0; i < nq; ++i) {
    for (size_t j = 0; j < n; ++j) {
      double s = 0;
      for (size_t t = 0; t < d; ++t) {
        const double diff = double{q[i * d + t]} - x[j * d + t];
        s += diff * diff;
      }
      dist[j] = {s, static_cast<int64_t>(j)};
    }
    std::partial_sort(dist.begin(), dist.begin() + static_cast<long>(k), dist.end());
    for (size_t r = 0; r < k; ++r) out[i].push_back(dist[r].second);
  }
  return out;
}

double recall(const std::vector<int64_t>& I, const std::vector<std::vector<int64_t>>& truth,
              size_t k) {
  size_t hit = 0;
  for (size_t i = 0; i < truth.size(); ++i)
    for (size_t r = 0; r < k; ++r)
      hit += std::count(I.begin() + static_cast<long>(i * k),
                        I.begin() + static_cast<long>((i + 1) * k), truth[i][r]) > 0;
  return static_cast<double>(hit) / static_cast<double>(truth.size() * k);
}

}  // namespace

int main() {
  std::printf("index end-to-end test on ISA level: %s\n",
              annx::simd::isa_name(annx::simd::active_isa()));
  const size_t d = 40, n = 2000, nq = 40, k = 10;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> g(0.f, 1.f);
  // 30 clusters with offsets and per-dimension scales (anisotropic, not centred).
  std::vector<float> centres(30 * d), scale(d);
  for (auto& c : centres) c = 3.f * g(rng) + 1.f;
  for (auto& s : scale) s = 0.3f + std::fabs(g(rng));
  auto draw = [&](std::vector<float>& v, size_t m) {
    v.resize(m * d);
    for (size_t i = 0; i < m; ++i) {
      const size_t c = rng() % 30;
      for (size_t t = 0; t < d; ++t) v[i * d + t] = centres[c * d + t] + scale[t] * g(rng);
    }
  };
  std::vector<float> x, q;
  draw(x, n);
  draw(q, nq);
  const auto truth = brute_force(x, n, q, nq, d, k);

  struct Case {
    const char* spec;
    double min_recall;
    int nprobe;
    size_t ntrain;  // 8-bit PQ trains 256 centroids per sub-quantizer: few points under qemu
  };
  const Case cases[] = {{"Flat", 1.0, 0, n},           {"Flat,F16", 0.97, 0, n},
                        {"HNSW16", 0.9, 0, n},         {"HNSW16,SQ8", 0.85, 0, n},
                        {"IVF16,PQ20x4fs", 0.5, 8, n}, {"IVF16,PQ10,Refine(F32)", 0.9, 8, 512}};
  const auto dir = std::filesystem::temp_directory_path() /
                   ("annx_test_index_" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  for (const Case& c : cases) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      annx::FactoryOptions opts;
      if (std::string(c.spec).rfind("HNSW", 0) == 0)
        opts.ef_construction = 40;  // qemu: keep it short
      auto index = annx::make_index(static_cast<int>(d), c.spec, annx::Metric::L2, opts);
      if (!index->is_trained()) index->train(x.data(), c.ntrain);
      index->add(x.data(), n, nullptr, 2);
      annx::SearchParams p;
      p.nprobe = c.nprobe;
      p.ef_search = 64;
      std::vector<float> D(nq * k);
      std::vector<int64_t> I(nq * k);
      index->search(q.data(), nq, k, p, D.data(), I.data());
      const double r = recall(I, truth, k);
      char line[160];
      std::snprintf(line, sizeof line, "%-24s recall@%zu %.3f (floor %.2f)", c.spec, k, r,
                    c.min_recall);
      check(r >= c.min_recall, line);
      bool sorted = true;
      for (size_t i = 0; i < nq; ++i)
        sorted = sorted && std::is_sorted(D.begin() + static_cast<long>(i * k),
                                          D.begin() + static_cast<long>((i + 1) * k));
      check(sorted, std::string(c.spec) + " distances ascending");
      const std::string path = (dir / "index.annx").string();
      index->save(path);
      auto back = annx::load_index_file(path, false);
      std::vector<float> D2(nq * k);
      std::vector<int64_t> I2(nq * k);
      back->search(q.data(), nq, k, p, D2.data(), I2.data());
      check(I2 == I && D2 == D, std::string(c.spec) + " save/load gives identical results");
      std::printf("       (%.2f s)\n",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    } catch (const std::exception& e) {
      check(false, std::string(c.spec) + " threw: " + e.what());
    }
  }
  std::filesystem::remove_all(dir);
  std::printf("%s: %d failures\n", g_failures ? "FAILED" : "OK", g_failures);
  return g_failures ? 1 : 0;
}
