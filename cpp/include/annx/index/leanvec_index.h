// LeanVecIndex: a LeanVec transform in front of any single-vector index, with a
// full-dimension secondary store for re-ranking (SVS's primary/secondary split; shared
// design algorithms.md section 5). Spec: "LeanVec<D>[_ood],<inner spec>,Refine(F32|F16)".
//
// - The inner ("primary") index holds the reduced vectors B^T (x - mean) and is any
//   structure and codec the factory builds (Flat, HNSW, IVF, PQ), an IP index for
//   inner product and an L2 index for L2 and cosine (unit vectors rank alike under
//   both). Its ids are this index's slots.
//   - LeanVec-ID (orthonormal P): target_dim dimensions. |P^T (q - x)| <= |q - x|, so
//     the reduced distance is a lower bound and true neighbours rank early.
//   - LeanVec-OOD with L2 / cosine: target_dim + 1 dimensions, the last being the
//     residual-norm column (transform/leanvec.h): A != B breaks the lower bound, and
//     the column restores each vector's exact norm.
//   Measured recall@10 of the exact top 20 in the reduced space, D = 128 (ID data:
//   MiniLM-100k; OOD data: minilm-ood, titles against paragraphs):
//     ID  without / with the column:  0.929 / 0.907 (ID data), 0.925 / 0.946 (OOD data)
//     OOD without / with the column:                           0.920 / 0.942 (OOD data)
// - The secondary store holds every vector in full dimension (F32 or F16), one row
//   per slot. A search asks the inner index for `rerank` candidates with the
//   projected query and re-scores them exactly in full dimension.
// - Removal removes the slot from the inner index and leaves a hole that a later add
//   reuses (lowest first), so slots, inner ids and secondary rows stay aligned.
// - range_search scans the secondary store (exact, linear in the index size).
//
// Concurrency: an add projects and encodes its vectors while searches run, publishes
// the secondary rows and ids under the exclusive lock (short), then adds the reduced
// vectors to the inner index, whose own contract then applies (an HNSW inner index
// keeps answering searches while it links). A search overlapping an add may or may
// not see the add's vectors. Remove blocks searches; train blocks them only to commit.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "annx/common/shared_array.h"
#include "annx/index/index.h"
#include "annx/index/vector_codec.h"
#include "annx/transform/leanvec.h"

namespace annx {

class LeanVecIndex final : public Index {
 public:
  LeanVecIndex(int d, Metric metric, int target_dim, bool ood, std::unique_ptr<Index> inner,
               CodecKind secondary, uint64_t seed = 0);

  std::string spec() const override;
  bool is_trained() const override;
  /// The inner index's: the projection is fitted outside (Python) or given.
  size_t train_units() const override { return inner_->train_units(); }

  int target_dim() const { return transform_.d_out(); }
  bool ood() const { return ood_; }
  /// Seed of the fit's training sample (also given to the inner index).
  uint64_t seed() const { return seed_; }
  /// The inner index's canonical spec (at target_dim dimensions).
  std::string inner_spec() const { return inner_->spec(); }
  Metric inner_metric() const { return inner_->metric(); }
  /// Bytes per vector of the inner (reduced) index and of the full-dimension store.
  double primary_bytes_per_vector() const;
  double secondary_bytes_per_vector() const;
  /// The fitted mean (d), data matrix and query matrix (d x target_dim row-major);
  /// empty before training.
  std::vector<float> mean() const;
  std::vector<float> data_matrix() const;
  std::vector<float> query_matrix() const;

  /// Sets the transform (see LeanVecTransform::set) and trains the inner index on the
  /// reduced x, atomically: a failure or a cancel leaves the index as it was. Refused
  /// once the index holds vectors. x is validated and normalised for cosine like add's
  /// input. Reports the inner training's progress (train_units() units).
  void train_with_matrices(const float* mean, const float* data, const float* query, const float* x,
                           size_t n);

 protected:
  /// Trains the inner index on x with the matrices already set (NotTrained otherwise).
  void train_impl(const float* x, size_t n, ProgressCounter& progress) override;
  void add_impl(const float* x, size_t n) override;
  size_t memory_bytes_impl() const override;
  bool has_holes() const override { return true; }
  double bytes_per_vector_impl() const override;
  void add_prepared(const float* x, size_t n, const idx_t* ids, int threads) override;
  void remove_slots(std::vector<slot_t>& slots) override;
  void remove_slot_impl(slot_t s) override;
  void search_impl(const float* q, size_t nq, size_t k, const SearchParams& params,
                   const std::vector<slot_t>* allowed, float* D, idx_t* I) const override;
  void range_impl(const float* q, size_t nq, float score_radius, const SearchParams& params,
                  const std::vector<slot_t>* allowed, RangeResult& out) const override;
  void reconstruct_impl(const slot_t* slots, size_t n, float* out) const override;
  void write_impl(io::Manifest& manifest, std::vector<Section>& sections,
                  std::vector<std::vector<uint8_t>>& scratch) const override;
  void read_impl(const io::ContainerReader& r, const io::Manifest& m, size_t nslots) override;
  void after_load() override;

 private:
  void project_queries(const float* q, size_t nq, float* out, int threads) const;
  bool residual_column() const { return ood_ && metric_ != Metric::IP; }

  LeanVecTransform transform_;
  bool ood_;
  uint64_t seed_;
  std::unique_ptr<Index> inner_;
  VectorCodec secondary_;
  SharedArray<uint8_t> secondary_codes_;  // nslots x secondary_.code_size()
  std::vector<slot_t> free_slots_;        // holes, descending (lowest reused first)
};

}  // namespace annx
