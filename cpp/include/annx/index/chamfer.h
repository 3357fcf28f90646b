// Exact Chamfer (MaxSim) similarity of token-vector sets, the one implementation shared
// by annx.chamfer and MultiVectorIndex's re-ranking:
//   chamfer(Q, P) = sum over q in Q of max over p in P of <q, p>.
// A query set is packed once by columns (PackedQuerySet) and the maxsim_f32 kernel
// streams document tokens against it, so documents are never copied or packed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace annx {

namespace simd {
struct KernelTable;
}

class PackedQuerySet {
 public:
  PackedQuerySet(const float* q, size_t nq, size_t d);
  size_t size() const { return nq_; }
  /// Chamfer score of the nx document tokens x (row-major, d floats each; nx >= 1).
  /// `best` is scratch of at least width() floats.
  float score(const simd::KernelTable& K, const float* x, size_t nx, float* best) const;
  size_t width() const { return qw_; }

 private:
  size_t nq_, qw_, d_;
  std::vector<float> qt_;  // d x qw
};

/// out[i] = chamfer(q, document i) for documents given as rows [offsets[i],
/// offsets[i+1]) of `docs` (every document non-empty). Parallel over documents.
void chamfer_scores(const float* q, size_t nq, const float* docs, const int64_t* offsets, size_t n,
                    size_t dim, float* out, int threads = 0);

/// out[j * n + i] = chamfer(query set j, document i) for nsets query sets (rows
/// [qoffsets[j], qoffsets[j+1]) of `qtokens`). Documents are processed in cache-sized
/// blocks against every query set.
void chamfer_matrix(const float* qtokens, const int64_t* qoffsets, size_t nsets, const float* docs,
                    const int64_t* offsets, size_t n, size_t dim, float* out, int threads = 0);

}  // namespace annx
