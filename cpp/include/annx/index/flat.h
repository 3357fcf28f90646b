// FlatIndex: exact search by scanning every stored vector.
//
// Storage is one dense array of codes (F32, F16, BF16 or SQ8) in slot order; removal
// moves the last vector into the freed slot, so scans never skip tombstones.
// Search strategies (chosen per call):
// - float-like codes with many queries (also under a filter): a blocked many-to-many
//   kernel (query block x base block of inner products, norms added for L2; narrow codes
//   decoded per block, a filter's rows gathered per block), then the candidates' scores
//   are recomputed with the one-query kernel and proven, so the answers do not depend on
//   the path (scan_float_blocks, shared with Flat,<codec>,Refine; IVF batches use the same
//   tiles and proof list by list);
// - binary codes with a few queries or more: tiles of queries over blocks of codes;
// - few queries over many vectors: one query at a time, split across threads by base
//   blocks, per-block top-k merged;
// - otherwise: the one-to-many kernel per query, queries split across threads;
// - with a filter (few queries): the gather kernel over the allowed slots only.
#pragma once

#include <atomic>

#include "annx/common/shared_array.h"
#include "annx/common/topk.h"
#include "annx/index/index.h"
#include "annx/index/vector_codec.h"

namespace annx {

class FlatIndex final : public Index {
 public:
  FlatIndex(int d, Metric metric, CodecKind codec);

  std::string spec() const override;
  bool is_trained() const override { return codec_.is_trained(); }
  const VectorCodec& codec() const { return codec_; }

 protected:
  void train_impl(const float* x, size_t n, ProgressCounter& progress) override;
  void add_impl(const float* x, size_t n) override;
  size_t memory_bytes_impl() const override;
  double bytes_per_vector_impl() const override;
  void search_impl(const float* q, size_t nq, size_t k, const SearchParams& params,
                   const std::vector<slot_t>* allowed, float* D, idx_t* I) const override;
  void range_impl(const float* q, size_t nq, float score_radius, const SearchParams& params,
                  const std::vector<slot_t>* allowed, RangeResult& out) const override;
  void remove_slot_impl(slot_t s) override;
  void reconstruct_impl(const slot_t* slots, size_t n, float* out) const override;
  void write_impl(io::Manifest& manifest, std::vector<Section>& sections,
                  std::vector<std::vector<uint8_t>>& scratch) const override;
  void read_impl(const io::ContainerReader& r, const io::Manifest& m, size_t ntotal) override;

 private:
  size_t count() const { return idmap_.size(); }
  bool use_norms() const { return codec_.kind() == CodecKind::F32 && metric_ == Metric::L2; }
  /// Batched scan of float-like codes (F32, F16, BF16, SQ8): tiles of queries against
  /// blocks of rows (decoded to float32 per block for the narrow codecs), candidates
  /// re-scored by the codec's own kernel; same answers as the per-query scan.
  void search_blocked_float(const float* q, size_t nq, size_t k, int threads,
                            const std::vector<slot_t>* allowed, float* D, idx_t* I) const;
  void search_intra_query(const float* q, size_t nq, size_t k, int threads,
                          const std::vector<slot_t>* allowed, float* D, idx_t* I) const;
  /// Batched scan of binary codes (BIN / BEBR<L>, SDC or ADC): tiles of queries per pass
  /// over blocks of codes (KernelTable::bebr_sdc_tile); same results as the per-query scan.
  void search_blocked_binary(const float* q, size_t nq, size_t k, int threads, float* D,
                             idx_t* I) const;
  void search_per_query(const float* q, size_t nq, size_t k, int threads,
                        const std::vector<slot_t>* allowed, float* D, idx_t* I) const;

  VectorCodec codec_;
  SharedArray<uint8_t> codes_;  // count() x code_size
  SharedArray<float> norms_;    // squared norms, F32 + L2 only (blocked search)
  /// max |decoded row|^2 for the blocked search's error bound; -1 until a batched search
  /// computes it (after a load), then kept up to date by add (remove leaves an upper bound).
  mutable std::atomic<float> max_norm2_{-1.f};
  float max_norm2() const;
  float rows_max_norm2(size_t b, size_t e) const;
};

/// Rows of float-like codes (F32, F16, BF16, SQ8) for scan_float_blocks: rows 0..n-1 of
/// `codes` (code_size apart), or, with `rows` (a filter), the n rows rows[0..n-1];
/// `norms` the squared norms of all rows (needed for F32 l2 without `rows`, else may be
/// null); `max_norm2` at least the largest squared norm of a decoded row (the
/// rounding-error bound's scale; decoded_max_norm2 computes it).
struct FloatRows {
  const uint8_t* codes;
  size_t n;
  const float* norms;
  float max_norm2;
  const slot_t* rows = nullptr;
  /// Optional ids of the rows (ids[row], distinct) and their inverse (id_row[id]): the
  /// scan then keeps and returns ids, and breaks score ties by id, as a one-query scan
  /// that ranks by id does (a one-list IVF ranks by slot).
  const slot_t* ids = nullptr;
  const uint32_t* id_row = nullptr;
};

/// The batched exact scan of float-like codes shared by Flat and by Flat,<codec>,Refine
/// (a one-list IVF): for each of nq queries, the k best (score, row or id) of the rows, scored
/// and ordered as the one-query scan (the codec's prepared query and kernel) scores them,
/// ties to the lower row, written to D / I (k per query). Tiles of queries run against
/// blocks of rows decoded to float32; each query's k + max(k, 8) best are re-scored with
/// the codec's kernel and proven by the rounding-error bound (common/l2_bound.h). Queries
/// it cannot prove get unproven[i] = 1 (their D / I are then not final): the caller
/// answers them with its one-query scan.
void scan_float_blocks(const VectorCodec& codec, Metric metric, const float* q, size_t nq,
                       const FloatRows& base, size_t k, int threads, float* D, idx_t* I,
                       std::vector<uint8_t>& unproven);

/// The norm scale of the rounding-error bound for rows of this codec whose decoded
/// squared norms are at most max_norm2 (SQ8 adds its grid's offset).
float blocked_bound_norm2(const VectorCodec& codec, float max_norm2);

/// The largest squared norm of rows [b, e) of `codes` decoded to float32.
float decoded_max_norm2(const VectorCodec& codec, const uint8_t* codes, size_t b, size_t e);

/// The batched scan of symmetric binary codes (BIN / BEBR<L>, not _adc) shared by Flat and
/// by Flat,<binary>,Refine (a one-list IVF): the k best (score, row) of rows 0..n-1 of
/// `codes` (code_size apart) for each of nq queries, scores as the one-query scan computes
/// them (negated similarities), ties to the lower row. Tiles of queries run over blocks of
/// codes (KernelTable::bebr_sdc_tile); threads split the rows. Candidates go to a
/// ReservoirTopK (appends, compacted now and then) rather than a heap: the re-rank
/// budgets of Refine (k of 100 and more) would otherwise spend a mispredicted branch per
/// level of the heap on each of the hundreds of rows that improve a query's list.
std::vector<ReservoirTopK> scan_binary_tiles(const VectorCodec& codec, Metric metric,
                                             const float* q, size_t nq, const uint8_t* codes,
                                             size_t n, size_t k, int threads);

}  // namespace annx
