// HnswIndex: hierarchical navigable small-world graph (Malkov & Yashunin), see
// shared design algorithms.md section 2.
//
// Layout. Level 0 is one array of fixed-size blocks, one per slot, 64-byte aligned:
//   [uint32 count | uint32 links[2M] | code (codec bytes) | padding]
// so a node's links and its vector share cache lines and pages. Upper levels live in
// a separate uint32 arena: a node of level L > 0 owns L lists of [count | links[M]].
// An optional Refine store (F32 or F16, one dense row per slot) re-scores the best
// candidates of a walk done on compressed codes.
//
// Inner product. A graph built with the inner product itself links every node to the
// few large-norm vectors (hubs) and walks poorly. For metric "ip" the graph is built
// instead as an l2 graph over the Mobius transform x -> x / |x|^2 (Zhou et al.,
// NeurIPS 2019): insertion walks and neighbour selection (alpha included) score pairs
// by |x/|x|^2 - y/|y|^2|^2 = |x - y|^2 / (|x|^2 |y|^2). Searches walk that graph with
// the inner product, so the scores returned are the true inner products. Nothing
// depends on a maximum norm (unlike the augmentation x -> [x, sqrt(M^2 - |x|^2)]),
// so later adds of any norm are linked the same way. On raw GloVe-100k (d = 50)
// recall@10 at ef_search 32 rose from 0.904 to 0.952. The squared norms are kept in
// memory for adds only (recomputed from the codes after a load, at the first add).
//
// Construction scoring. An add that links at least 1/8 of the index (F32 codec, l2 / cos
// / Mobius graphs) first makes a temporary int8 copy of every slot's vector (centred on
// the mean, one scale per row, d + ~20 bytes per slot, freed when the add ends). The
// insertion walks score that copy (exact int8 inner products, kernels' dot_i8_gather)
// and re-score their final candidate list in float; the neighbour selection decides a
// pair from the copy when the quantisation error bound cannot change the decision and
// re-scores it in float otherwise (1-3 % of pairs on the shared sets). Recall per
// candidate stayed within 0.1 point of the float build on all five shared sets.
//
// Deletion. remove() tombstones slots: they are still walked through but never
// returned. A later add reuses tombstoned slots first; before the new vector is
// linked, every neighbour that pointed to the old one gets its links recomputed by
// the pruning heuristic over its own links and the old node's links (bypassing the
// removed vector), so recall holds up under churn.
//
// Concurrency. An add publishes storage and ids under the exclusive lock (short),
// then links the new nodes under the shared lock while searches run: link counts
// are atomics written with release after the link ids, node codes are written
// before any link to the node exists, and each node's link list is changed under
// its (striped) mutex. A search overlapping an add may or may not see the add's
// vectors; it never sees a vector half-written, a removed id, or a duplicate.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "annx/common/shared_array.h"
#include "annx/index/index.h"
#include "annx/index/vector_codec.h"

namespace annx {

struct HnswOptions {
  int M = 32;                 // links per node on upper levels; 2M on level 0
  int ef_construction = 200;  // candidate list size while inserting
  uint64_t seed = 0;          // level draws and insertion order
  bool shuffle = true;        // insert each batch in a seeded random permutation
  // Order in which each batch is inserted: Default (the shuffle above, or the given
  // order) or LidDesc (decreasing local intrinsic dimensionality, see insert_order.h;
  // the shuffle is off then).
  enum class InsertOrder { Default, LidDesc } insert_order = InsertOrder::Default;
};

class HnswIndex final : public Index {
 public:
  /// Default ef_search when a search does not give one: max(kDefaultEf, k).
  static constexpr int kDefaultEf = 64;
  /// A filter admitting at most this many vectors is answered by exact search; so is
  /// one where the exact scan is estimated cheaper than the walk (see search_impl).
  static constexpr size_t kExactFilterMax = 20000;

  HnswIndex(int d, Metric metric, CodecKind codec, std::optional<CodecKind> refine,
            HnswOptions options);
  ~HnswIndex() override;

  std::string spec() const override;
  bool is_trained() const override { return codec_.is_trained(); }

  const HnswOptions& options() const { return opt_; }
  void set_ef_construction(int ef);
  /// Slots holding removed vectors (reused by later adds).
  size_t n_deleted() const;
  /// Highest level in the graph (-1 when empty).
  int max_level() const;
  /// Number of nodes whose top level is l, for l = 0..max_level (tombstones included).
  std::vector<size_t> level_counts() const;
  /// Checks the structure invariants; returns "" or a description of the first
  /// violation (used by tests and by load()).
  std::string check_graph() const;
  /// Out-links of `id` at `level` as external ids (tombstones as -1). For tests.
  std::vector<idx_t> neighbors(idx_t id, int level) const;

  struct Scratch;  // per-thread walk buffers (defined in hnsw.cpp)
  struct Query;
  struct Compact;  // int8 copy of the vectors used while linking an add (hnsw.cpp)

 protected:
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

 public:
  struct Candidate {  // a slot and its score ("lower is better")
    float score;
    uint32_t slot;
  };

 private:
  size_t nslots() const { return levels_.size(); }
  // Raw access (storage never moves while the shared lock is held).
  const uint8_t* block(uint32_t s) const { return level0_.data() + size_t{s} * block_; }
  const uint8_t* code(uint32_t s) const { return block(s) + code_off_; }
  uint32_t* links(uint32_t s, int level) const;
  int level_of(uint32_t s) const { return levels_.data()[s]; }
  bool is_deleted(uint32_t s) const { return deleted_.data()[s] != 0; }
  int max_links(int level) const { return level == 0 ? 2 * opt_.M : opt_.M; }

  // Walks.
  float score_to(const Query& q, uint32_t s) const;
  uint32_t greedy_descent(const Query& q, uint32_t entry, float& entry_score, int from_level,
                          int to_level, Scratch& sc) const;
  bool collect(int level, Scratch& sc) const;
  void score_batch(const Query& q, Scratch& sc) const;
  /// dist[i] = score of ids[i] against q: exact (the codec's gather), or, for a
  /// construction query with q.c8 set, from the int8 copy (approximate).
  void score_ids(const Query& q, const uint32_t* ids, size_t n, float* dist, Scratch& sc) const;
  void walk(const Query& q, int level, Scratch& sc) const;
  bool begin_walk(const Query& q, size_t ef, size_t want, const uint8_t* allow_bits,
                  size_t n_admissible, Scratch& sc) const;
  void end_walk(const Query& q, size_t k, size_t want, Scratch& sc,
                std::vector<Candidate>& out) const;
  void search_one(const Query& q, size_t k, size_t ef, size_t rerank, const uint8_t* allow_bits,
                  size_t n_admissible, Scratch& sc, std::vector<Candidate>& out) const;
  void exact_over(const Query& q, const std::vector<slot_t>& slots, size_t k,
                  std::vector<Candidate>& out) const;
  void refine(const Query& q, std::vector<Candidate>& cand, size_t k, Scratch& sc) const;

  // Construction.
  const float* vector_of(uint32_t s, float* buf) const;
  float pair_score(const float* a, uint32_t sa, const float* b, uint32_t sb,
                   const Scratch& sc) const;
  /// Construction score of the Mobius graph: squared L2 between x / |x|^2 and
  /// y / |y|^2, from |x - y|^2 and the inverse squared norms (inv_norm_of).
  static float mobius_score(float l2, float inv_a, float inv_b);
  static float inv_norm_of(float n2);
  bool mobius() const { return ip_graph_ == IpGraph::Mobius; }
  void update_norms(const uint32_t* slots, size_t n, size_t old);
  /// `center`: any vector near the base (translates rows for the l2 pair scores);
  /// `core`: optional flags of candidates kept by an earlier selection for this base.
  void select_neighbors(const std::vector<Candidate>& cand, size_t m, Scratch& sc,
                        std::vector<uint32_t>& out, float alpha, const float* center,
                        const uint8_t* core = nullptr) const;
  /// select_neighbors on the int8 copy (c8_): pair scores from exact int8 inner
  /// products, re-scored in float only where the quantisation bound leaves the decision open.
  void select_neighbors_c8(const std::vector<Candidate>& cand, size_t m, Scratch& sc,
                           std::vector<uint32_t>& out, float alpha, const uint8_t* core) const;
  void build_compact(int threads);
  void insert(uint32_t s, const float* x, Scratch& sc, bool reused);
  void link_back(uint32_t e, uint32_t s, int level, Scratch& sc);
  /// Scores sc.ids against `base`, selects at most m and writes them into list `l` of
  /// `level` (result also left in sc.nbrs2). sc.core_ids (sorted) names the ids kept by
  /// the list's previous selection (see core0_). The caller holds the list's node lock.
  void reselect(const float* base, uint32_t bs, size_t m, Scratch& sc, uint32_t* l, int level);
  void repair_around(uint32_t s, Scratch& sc);
  int draw_level(uint64_t counter) const;
  std::mutex& node_lock(uint32_t s) const { return node_locks_[s & (kNodeLocks - 1)]; }
  void ensure_owned();
  void sort_free_slots();
  std::string check_graph_locked() const;

  static constexpr size_t kNodeLocks = 1 << 16;

  VectorCodec codec_;
  std::optional<VectorCodec> refine_;
  HnswOptions opt_;
  size_t code_off_ = 0, block_ = 0;
  SharedArray<uint8_t> level0_;      // nslots x block_
  SharedArray<uint8_t> levels_;      // top level of each slot
  SharedArray<uint32_t> upper_off_;  // first uint32 of the slot's upper lists in upper_
  SharedArray<uint32_t> upper_;      // upper-level lists, (1 + M) uint32 each
  SharedArray<uint8_t> deleted_;     // 1 for tombstones
  SharedArray<uint8_t> refine_codes_;
  std::vector<uint32_t> free_slots_;  // tombstones to reuse, descending (lowest reused first)
  std::atomic<int64_t> entry_{-1};
  std::atomic<int> max_level_{-1};
  uint64_t n_inserted_ = 0;  // nodes ever given a level (level RNG counter)
  uint64_t n_batches_ = 0;   // add() calls (insertion-order RNG counter)
  mutable std::mutex entry_mu_;
  std::unique_ptr<std::mutex[]> node_locks_;
  // Inner product: how the graph is built (see "Inner product" above). Files written
  // before the Mobius graph have no "hnsw_ip_graph" key and keep the Ip rule.
  enum class IpGraph : uint8_t { None, Ip, Mobius };
  IpGraph ip_graph_ = IpGraph::None;
  std::vector<float> inv_norm2_;  // Mobius: 1 / |x|^2 of each slot's stored (decoded) vector
  // During an add: how many leading links of each slot's level-0 list are the output
  // of one neighbour selection for that slot (0: unknown), so that re-pruning the list
  // skips the pairs that selection already checked (see select_neighbors). Guarded by
  // the node locks; allocated for the linking phase of an add only.
  std::vector<uint16_t> core0_;
  // During the linking phase of an add (F32 codec): a per-row int8 copy of every slot's
  // vector, centred on the mean, that the insertion walks and the neighbour selection
  // score first (see Compact in hnsw.cpp). Null otherwise.
  std::unique_ptr<Compact> c8_;
};

}  // namespace annx
