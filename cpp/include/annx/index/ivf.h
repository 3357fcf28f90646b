// IvfIndex: inverted-file index (algorithms.md §3-4). A coarse quantizer of nlist
// k-means centroids (searched exhaustively, or through an HNSW graph over the
// centroids for large nlist) splits the vectors into lists; a query scans the
// `nprobe` lists whose centroids are nearest. Flat PQ ("PQ<M>", "PQ<M>x4fs") is the
// same structure with a single list and no coarse quantizer.
//
// List codecs:
// - F32 / F16 / BF16 / SQ8: the vector codecs of vector_codec.h, scanned with the
//   shared float kernels (not residual);
// - PQ<M>: 8-bit product quantization, ADC with a per-query float table, codes stored
//   in blocks of 32 vectors sub-quantizer by sub-quantizer (pq8_layout.h);
// - PQ<M>x4fs: 4-bit PQ in fast-scan blocks of 32 vectors, scanned with uint8 tables
//   and in-register shuffles (pq4_layout.h), candidates converted back to float.
//   Batches of 16+ queries scan each list once per group of up to 4 queries probing
//   it (search_grouped); results equal the one-query path exactly.
// PQ codes encode the residual x - c of the vector's centroid by default (`by_residual`),
// as faiss's IVFPQ does. With L2 each probed list then gets its own table for q - c;
// with inner products one table serves every list and <q, c> is a per-list bias.
// L2 residual tables come from a precomputed nlist x M x ksub float table (faiss's
// IVFPQ `use_precomputed_table`): ||y||^2 + 2<c, y> per list, sub-quantizer and
// centroid y, so a list's table is that row plus the query's -2<q, y> (built once per
// query) and ||q - c||^2 is its bias. It costs nlist * M * ksub * 4 bytes (GloVe-50
// IVF4096,PQ25x4fs: 6.6 MB; IVF1024,PQ96x4fs: 6.3 MB) and is kept only when that is
// at most kPrecomputedMaxBytes (ivf.cpp, 64 MiB) and the centroids are not so far
// from the origin (norm > 256x the codebooks' RMS norm) that the terms would cancel in
// float; otherwise each probed list's table is computed from q - c as before. It is
// derived from the centroids and codebooks: rebuilt after training and on load,
// never stored in a file.
//
// Refine(F32|F16) keeps a second, finer copy of every vector (slot-indexed); a search
// collects `rerank` candidates with the list codec and re-scores them with it.
//
// Slots: a vector's slot indexes the id map and the Refine store; each list holds
// the slots of its vectors beside their codes. remove() takes vectors out of their
// lists (the list's last entry moves into the gap) and leaves a hole in the id map,
// reused by the next add (lowest slot first).
//
// Concurrency: train, add and remove take the index lock exclusively (an add assigns
// and encodes its vectors before taking it, so searches wait only for the append;
// train takes it only to commit what it trained).
#pragma once

#include <atomic>
#include <limits>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "annx/cluster/kmeans.h"
#include "annx/common/big_alloc.h"
#include "annx/common/topk.h"
#include "annx/index/index.h"
#include "annx/index/vector_codec.h"
#include "annx/quant/pq4_layout.h"
#include "annx/quant/pq8_layout.h"
#include "annx/quant/product_quantizer.h"

namespace annx {

class HnswIndex;

enum class IvfCodec : int { Vector = 0, PQ8 = 1, PQ4FastScan = 2 };

struct IvfOptions {
  size_t nlist = 0;  // 0: flat PQ (one list, no coarse quantizer)
  int hnsw_m = 0;    // > 0: HNSW<M> graph over the centroids (IVF<nlist>_HNSW<M>)
  IvfCodec codec = IvfCodec::Vector;
  CodecKind vector_codec = CodecKind::F32;  // when codec == Vector
  size_t pq_m = 0;                          // sub-quantizers (PQ codecs)
  std::optional<CodecKind> refine;          // F32 or F16
  bool by_residual = true;                  // PQ codecs: encode x - centroid
  // IVF fast-scan without an explicit by_residual: train() trains both encodings and
  // keeps residuals only when they cut the reconstruction error of held-out training
  // rows by at least kAutoResidualGain (ivf.cpp), then sets by_residual.
  bool auto_residual = false;
  // Set by that choice: 1 - residual error / vector error on the held-out rows (NaN
  // when not measured; not saved).
  double auto_residual_gain = std::numeric_limits<double>::quiet_NaN();
  uint64_t seed = 1234;   // k-means seeds (coarse and PQ)
  int coarse_iters = 10;  // faiss's IVF default
  int pq_iters = 25;      // faiss's PQ default
};

class IvfIndex final : public Index {
 public:
  static constexpr int kDefaultNprobe = 16;
  /// A filter admitting at most this many vectors is answered by scoring exactly
  /// those vectors' codes (no list scan).
  static constexpr size_t kDirectFilterMax = 4096;

  IvfIndex(int d, Metric metric, IvfOptions options);
  ~IvfIndex() override;

  std::string spec() const override;
  bool is_trained() const override;
  /// The coarse quantizer's k-means iterations plus M * pq_iters for PQ codecs.
  size_t train_units() const override;

  const IvfOptions& options() const { return opt_; }
  size_t nlist() const { return lists_.size(); }
  /// Sizes of the inverted lists.
  std::vector<size_t> list_sizes() const;
  /// Centroids (nlist x d; empty before training or for flat PQ).
  std::vector<float> centroids() const;
  /// List number of each stored id (for tests).
  std::vector<int64_t> list_of(const idx_t* ids, size_t n) const;
  /// The min(p, nlist) lists nearest to each of the n rows of x (n x that many, best
  /// first), chosen exactly as add (p = 1) and search (p = nprobe, ef_search for an
  /// HNSW coarse quantizer) choose them; x is validated and normalised like a query.
  /// Lets a router outside the index (annx.distributed) agree with it bit for bit.
  std::vector<int64_t> nearest_lists(const float* x, size_t n, size_t p, int ef_search,
                                     int threads) const;
  /// PQ codebooks (M x ksub x dsub; empty for vector codecs or before training).
  std::vector<float> pq_codebooks() const {
    std::shared_lock lk(mu_);
    return pq_.codebooks();
  }
  size_t pq_dsub() const { return pq_.dsub(); }
  /// Bytes of the precomputed L2 residual table (0 when it is not used).
  size_t precomputed_bytes() const {
    std::shared_lock lk(mu_);
    return precomp_.size() * sizeof(float);
  }

 protected:
  void train_impl(const float* x, size_t n, ProgressCounter& progress) override;
  void add_impl(const float* x, size_t n) override;
  size_t memory_bytes_impl() const override;
  bool has_holes() const override { return true; }
  double bytes_per_vector_impl() const override;
  void add_prepared(const float* x, size_t n, const idx_t* ids, int threads) override;
  void remove_slots(std::vector<slot_t>& slots) override;
  void search_impl(const float* q, size_t nq, size_t k, const SearchParams& params,
                   const std::vector<slot_t>* allowed, float* D, idx_t* I) const override;
  void range_impl(const float* q, size_t nq, float score_radius, const SearchParams& params,
                  const std::vector<slot_t>* allowed, RangeResult& out) const override;
  void remove_slot_impl(slot_t s) override;
  void reconstruct_impl(const slot_t* slots, size_t n, float* out) const override;
  void write_impl(io::Manifest& manifest, std::vector<Section>& sections,
                  std::vector<std::vector<uint8_t>>& scratch) const override;
  void read_impl(const io::ContainerReader& r, const io::Manifest& m, size_t nslots) override;
  void after_load() override;

 public:
  struct List {
    std::vector<uint8_t> codes;  // n x code_size, or fast-scan blocks
    std::vector<slot_t> slots;
    size_t size() const { return slots.size(); }
  };
  struct QueryCtx;  // per-query scan state (ivf.cpp)

 private:
  bool flat_pq() const { return opt_.nlist == 0; }
  bool is_pq() const { return opt_.codec != IvfCodec::Vector; }
  bool residual() const { return is_pq() && opt_.by_residual && !flat_pq(); }
  /// Bytes per vector inside a list (fast-scan: M/2 rounded up, blocks padded).
  size_t code_size() const;
  /// Bytes of a list of n vectors (PQ lists are stored in blocks of 32 vectors).
  size_t list_code_bytes(size_t n) const;
  /// One vector's unpacked code (M bytes for PQ, the codec's bytes otherwise).
  void get_code(const List& L, size_t pos, uint8_t* code) const;
  void set_code(List& L, size_t pos, const uint8_t* code) const;
  /// Nearest `p` lists of each query (scores lower-is-better), via the coarse quantizer.
  void coarse_search(const float* q, size_t nq, size_t p, int ef, int threads, float* D,
                     uint32_t* I) const;
  /// The same through a given table and graph (training searches its new ones).
  void coarse_search(const CentroidTable& table, const HnswIndex* graph, const float* q, size_t nq,
                     size_t p, int ef, int threads, float* D, uint32_t* I) const;
  void encode_for_lists(const float* x, size_t n, const uint32_t* lists, uint8_t* codes,
                        int threads) const;
  /// Scans the listed lists of one query into `sink` (TopK or range collector, by
  /// slot); `coarse`: the lists' coarse scores (or null); `bitset`: allowed slots.
  template <class Sink>
  void scan_lists(QueryCtx& ctx, const uint32_t* lists, const float* coarse, size_t np,
                  const std::vector<uint64_t>* bitset, Sink& sink) const;
  /// Batch fast-scan search: each list scanned once per group of queries probing it.
  void search_grouped(const float* q, size_t nq, size_t k, size_t kc, size_t nprobe,
                      const float* cd, const uint32_t* ci, const std::vector<uint64_t>* bits,
                      int threads, float* D, idx_t* I) const;
  /// Lists scanned per query for these parameters.
  size_t probe_count(const SearchParams& params) const;
  /// Bitset over slots of a filter's admitted slots (empty without a filter).
  std::vector<uint64_t> slot_bitset(const std::vector<slot_t>* allowed) const;
  /// Relative cost of scanning one vector of a list (decides intra-query splitting).
  double scan_cost_per_vector() const;
  /// One query with its probed lists split over `nparts` threads (nq < threads).
  void search_split(const float* qi, size_t k, size_t kc, size_t nprobe, const float* cd,
                    const uint32_t* ci, const std::vector<uint64_t>* bits, int threads,
                    size_t nparts, float* D, idx_t* I) const;
  /// Filter fallback (scan the unprobed lists when fewer than k passed) and re-rank.
  void finish_query(QueryCtx& ctx, ReservoirTopK& top, size_t k, const uint32_t* probes,
                    size_t nprobe, const std::vector<uint64_t>* bits, float* D, idx_t* I) const;
  /// Prepares a query's PQ tables (shared ones now, per-list ones during the scan).
  void prepare_pq(QueryCtx& ctx, bool ip) const;
  /// L2 residual codes: the float table of query q for list l in ctx.lut; returns the
  /// list's additive bias (||q - c||^2 with the precomputed table, else 0). `qterm`:
  /// the query's -2<q, y> from prepare_pq (used with the precomputed table only).
  /// `qout` (fast-scan) / `bout` (8-bit PQ byte sums): also quantised into it.
  float list_lut(QueryCtx& ctx, const float* q, const float* qterm, uint32_t l,
                 pq4::QuantizedLut* qout, pq8::ByteLut* bout = nullptr) const;
  /// Prefetches list l's precomputed table row and first code blocks.
  void prefetch_list(uint32_t l) const;
  /// (Re)builds precomp_ from the centroids and codebooks, or clears it (see above).
  void build_precomputed();
  /// Approximate (list codec) scores of given slots, computed from their decoded codes.
  void score_slots(const float* q, const slot_t* slots, size_t n, float* out) const;
  /// Best k of the candidates (re-scored with the Refine codec if there is one).
  void rerank(const float* q, ReservoirTopK& cand, size_t k, float* D, idx_t* I) const;
  void reconstruct_slot(slot_t s, float* out) const;
  /// Flat,<F16|BF16|SQ8>,Refine (one list of float-like codes): whether a batch of nq
  /// queries takes the batched scan (scan_float_blocks).
  bool float_blocked(size_t nq, const std::vector<slot_t>* allowed) const;
  /// IVF<n>,<Flat|F16|BF16|SQ8> (ivf_float_groups.cpp): whether a batch takes the grouped
  /// scan: enough queries per probed list in a thread's chunk of queries.
  static constexpr size_t kFloatGroupMinQueries = 16;
  static constexpr double kFloatGroupMinShare = 4.0;  // queries per list, on average
  bool float_grouped(size_t nq, size_t kc, size_t nprobe, int threads,
                     const std::vector<slot_t>* allowed) const;
  /// Vectors per list, on average.
  double rows_per_list() const;
  /// The grouped scan: for each query its kc best (score, slot) over its probed lists
  /// (ci: nprobe lists per query), as the one-query scan scores and ranks them (kc per
  /// query in cand_scores / cand_slots, slot -1 past the end); unproven[i] = 1 where the
  /// rounding-error bound could not prove it (the caller answers those one at a time).
  void search_float_grouped(const float* q, size_t nq, size_t kc, size_t nprobe, const uint32_t* ci,
                            int threads, float* cand_scores, idx_t* cand_slots,
                            std::vector<uint8_t>& unproven) const;
  /// The batched float scans' norm bound over every list's decoded rows (cached).
  float lists_max_norm2() const;

  IvfOptions opt_;
  // Coarse quantizer.
  CentroidTable coarse_;
  std::unique_ptr<HnswIndex> coarse_hnsw_;
  // List codec.
  VectorCodec vcodec_;
  ProductQuantizer pq_;
  std::vector<float> precomp_;  // nlist x M x ksub, L2 residual codes only (see above)
  // Lists and slot bookkeeping.
  std::vector<List> lists_;
  std::vector<uint32_t> slot_list_, slot_pos_;  // per slot (holes: kNoList)
  std::vector<slot_t> free_slots_;              // descending; pop_back reuses the lowest
  // Refine store.
  std::optional<VectorCodec> refine_;
  // nslots x refine code size; huge pages where the OS allows (re-ranking reads rows
  // at random, so TLB misses would add to every row).
  std::vector<uint8_t, BigAllocator<uint8_t>> refine_codes_;
  /// Float-like list codes: the largest squared norm of a decoded row, -1 until
  /// a batched search computes it (after a load or train); add keeps it current (it is
  /// written under the exclusive lock), remove leaves an upper bound.
  mutable std::atomic<float> max_norm2_{-1.f};
};

}  // namespace annx
