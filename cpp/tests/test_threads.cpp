// Concurrency stress test of the index classes, meant for ThreadSanitizer builds
// (-DANNX_TSAN=ON; CI runs it that way). Searchers run while a writer adds, removes
// (HNSW: slot reuse and re-linking), trains nothing, and reads the memory accounting and
// serialises the index, as docs/threading.md says they may. No framework: main returns
// non-zero on any failed check; TSan reports races itself (and exits non-zero).
#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "annx/common/thread_pool.h"
#include "annx/factory.h"
#include "annx/index/index.h"

using namespace annx;

namespace {

int g_failures = 0;

#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) {                                                            \
      ++g_failures;                                                           \
      std::fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                         \
  } while (0)

std::vector<float> gaussian(size_t n, size_t d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> x(n * d);
  for (float& v : x) v = g(rng);
  return x;
}

// Searches until `stop`, checking every returned id is one that was ever added and every
// distance is finite or padding.
void searcher(const Index& index, const std::vector<float>& q, size_t d, idx_t max_id,
              const std::atomic<bool>& stop, std::atomic<int>& rounds) {
  const size_t nq = q.size() / d, k = 5;
  std::vector<float> D(nq * k);
  std::vector<idx_t> I(nq * k);
  SearchParams p;
  p.threads = 1;
  while (!stop.load()) {
    index.search(q.data(), nq, k, p, D.data(), I.data());
    for (size_t i = 0; i < nq * k; ++i) {
      CHECK(I[i] >= -1 && I[i] <= max_id);
      CHECK(I[i] < 0 || std::isfinite(D[i]));
    }
    (void)index.memory_bytes();
    (void)index.bytes_per_vector();
    rounds.fetch_add(1);
  }
}

void stress(const std::string& spec, bool train) {
  const size_t d = 16, n = 600, batch = 100;
  std::unique_ptr<Index> index = make_index(static_cast<int>(d), spec, Metric::L2);
  const std::vector<float> x = gaussian(n, d, 1), q = gaussian(8, d, 2);
  if (train) index->train(x.data(), n);
  index->add(x.data(), batch, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int> rounds{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t)
    readers.emplace_back([&] { searcher(*index, q, d, static_cast<idx_t>(n), stop, rounds); });
  // Writer: grow in batches, remove every third id of the last batch, then keep adding
  // (structures with holes reuse the freed slots), serialising in between.
  for (size_t b = batch; b < n; b += batch) {
    index->add(x.data() + b * d, batch, nullptr);
    std::vector<idx_t> gone;
    for (size_t i = b; i < b + batch; i += 3) gone.push_back(static_cast<idx_t>(i));
    index->remove(gone.data(), gone.size());
    CHECK(!index->to_bytes().empty());
  }
  // Let every reader finish a few rounds alongside the last state too.
  const int seen = rounds.load();
  while (rounds.load() < seen + 4) std::this_thread::yield();
  stop.store(true);
  for (auto& t : readers) t.join();
  const size_t removed = ((n - batch) / batch) * ((batch + 2) / 3);
  CHECK(index->ntotal() == n - removed);
  std::printf("%-28s ok (%d concurrent search rounds, %zu vectors)\n", spec.c_str(), rounds.load(),
              index->ntotal());
}

}  // namespace

int main() {
  set_num_threads(2);  // the internal pool runs alongside the test's own threads
  for (const char* spec : {"Flat", "Flat,SQ8", "HNSW8", "HNSW8,SQ8,Refine(F32)", "IVF8,Flat",
                           "IVF8_HNSW4,PQ4x4fs,Refine(F32)"}) {
    // (LeanVec is trained from Python, which fits its matrices: covered by test_threads.py.)
    const std::string s = spec;
    const bool train = s.find("SQ8") != std::string::npos || s.rfind("IVF", 0) == 0;
    stress(s, train);
  }
  if (g_failures) {
    std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("all concurrency checks passed\n");
  return 0;
}
