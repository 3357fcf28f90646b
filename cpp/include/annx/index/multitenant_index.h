// MultiTenantIndex: one shared index, per-tenant access (after Curator, Jin et al.,
// "Efficient Indexing for Multi-Tenant Vector Databases"). See docs/multitenant.md.
//
// - One clustering tree shared by every tenant: hierarchical k-means (branching
//   `branching`, leaves of about `leaf_size` training vectors), built by train().
//   Every vector is stored once (float32) and routed to one leaf by greedy descent.
// - Leaves are numbered in depth-first order, so every tree node covers a contiguous
//   range of leaf numbers. Per tenant, its (leaf, slot) pairs are kept sorted by leaf:
//   the tenant's vectors under any node are then one contiguous run of that list, found
//   by binary search. This run is the tenant's exact per-node membership (Curator keeps
//   a Bloom filter per node for it, which can only err towards extra work) and, when it
//   holds at most `split` vectors, the tenant's shortlist for that node (Curator's
//   per-tenant leaf lists, with the split threshold). A tenant's part of the tree is
//   thus implicit: 8 bytes per (vector, tenant) pair and nothing per node.
// - search(tenant=t): a tenant with at most max(exact_threshold, ef_search) vectors is
//   scanned exactly; otherwise a best-first walk over t's part of the tree (children
//   ordered by their centroid's distance) scans shortlists until `ef_search` vectors
//   were scored and k were found. The walk scores 8-bit codes (SQ8, trained with the
//   tree; a quarter of the float32 bytes to fetch) and re-ranks the best max(4k, 32) with
//   the float32 vectors, so its distances are exact.
//
// Concurrency: any number of searches run concurrently. add routes its vectors without
// blocking searches, then takes the exclusive lock to append them; grant, revoke,
// remove and reset take it for their (short) bookkeeping; train computes the tree
// without the lock and commits it under it. Mutations are serialised among themselves.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "annx/common/rw_lock.h"
#include "annx/common/topk.h"
#include "annx/common/types.h"
#include "annx/index/id_map.h"
#include "annx/index/vector_codec.h"

namespace annx {

namespace io {
class Blob;
}  // namespace io

struct MultiTenantConfig {
  int branching = 8;  // children per inner node (2..256)
  int leaf_size = 0;  // training vectors per leaf; 0: 32
  int split = 0;  // a tenant's run of at most this many is scanned whole; 0: 3072 / d in [8, 128]
  int exact_threshold =
      -1;               // tenants up to this size are scanned exactly; -1: max(1024, 393216 / d)
  int ef_search = 256;  // default candidate budget (vectors scored per query)
  int max_depth = 12;   // deepest level of the tree
  int niter = 12;       // k-means iterations per node
  uint64_t seed = 1234;
};

class MultiTenantIndex {
 public:
  MultiTenantIndex(int d, Metric metric, const MultiTenantConfig& config = {});
  MultiTenantIndex(const MultiTenantIndex&) = delete;
  MultiTenantIndex& operator=(const MultiTenantIndex&) = delete;

  int d() const { return d_; }
  Metric metric() const { return metric_; }
  const MultiTenantConfig& config() const { return cfg_; }
  std::string spec() const { return "MultiTenant"; }
  bool is_trained() const;
  size_t ntotal() const;
  idx_t next_id() const;
  bool contains(idx_t id) const;
  /// Live ids in storage order.
  std::vector<idx_t> ids() const;
  /// Tree shape: nodes, leaves, depth (0 before train).
  size_t num_nodes() const;
  size_t num_leaves() const;
  int depth() const;
  /// Number of (vector, tenant) pairs.
  size_t num_grants() const;

  /// Builds the tree from n training vectors (seeded). Refused once vectors are held.
  /// Reports "training vectors placed in leaves" to the progress hook (n units).
  void train(const float* x, size_t n, int threads = 0);
  /// Adds n vectors; ids == nullptr assigns next_id(), ... Vector i may be seen by the
  /// tenants tenants[toffsets[i] .. toffsets[i+1]) (ints >= 0, repeats ignored);
  /// toffsets == nullptr: no tenant. Nothing is added on error. Returns the ids.
  std::vector<idx_t> add(const float* x, size_t n, const idx_t* ids, const int64_t* tenants,
                         const int64_t* toffsets, int threads = 0);
  /// Lets `tenant` see the given vectors (all ids must exist; already granted: no-op).
  void grant(const idx_t* ids, size_t n, int64_t tenant);
  /// Takes them away again (all ids must exist; not granted: no-op).
  void revoke(const idx_t* ids, size_t n, int64_t tenant);
  /// Removes the given ids (all must exist, no repeats; nothing is removed otherwise).
  size_t remove(const idx_t* ids, size_t n);
  /// Drops every vector and tenant; keeps the tree.
  void reset();

  /// D, I: nq x k, query i searching for tenant tenants[i]. L2: squared distances
  /// ascending; ip/cos: similarities descending; padding id -1 with +inf / -inf.
  /// ef_search: candidate budget (0: the configured default).
  void search(const float* q, size_t nq, size_t k, const int64_t* tenants, int ef_search,
              int threads, float* D, idx_t* I) const;

  /// Tenants that may see `id`, ascending (InvalidArgument if id is not held).
  std::vector<int64_t> tenants_of(idx_t id) const;
  /// Vectors `tenant` may see (0 for an unknown tenant).
  size_t tenant_size(int64_t tenant) const;
  /// Known tenants with at least one vector, ascending.
  std::vector<int64_t> tenants() const;
  /// Ids `tenant` may see, ascending.
  std::vector<idx_t> tenant_ids(int64_t tenant) const;
  /// Stored vectors of the given ids (normalised for cos).
  std::vector<float> reconstruct(const idx_t* ids, size_t n) const;

  size_t memory_bytes() const;
  /// Per-vector bytes (vector, id, leaf, tenant lists, postings); the tree excluded.
  double bytes_per_vector() const;

  std::vector<uint8_t> to_bytes() const;
  void save(const std::string& path) const;
  /// Validates everything; FormatError naming the section otherwise.
  static std::unique_ptr<MultiTenantIndex> load(std::shared_ptr<const io::Blob> blob,
                                                bool verify = true);

 private:
  struct Node {
    uint32_t first_child = 0, nchild = 0;  // children are consecutive nodes
    uint32_t leaf_lo = 0, leaf_hi = 0;     // depth-first leaf numbers covered
  };
  /// A tenant's pairs sorted by leaf (slot order within a leaf is arbitrary).
  struct Tenant {
    int64_t ext = 0;
    std::vector<uint32_t> leaf, slot;
    size_t size() const { return slot.size(); }
  };
  struct Tree {
    std::vector<Node> nodes;
    std::vector<float> centroids;  // nodes x d (the root's unused)
    std::vector<float> radius;     // per node: largest L2 distance of a training vector
    size_t nleaves = 0;
    int depth = 0;
    void number_leaves();
  };
  struct Scratch;
  [[gnu::noinline]] static Scratch& thread_scratch();
  struct Snapshot;
  Snapshot snapshot() const;

  bool ip_scores() const { return metric_ != Metric::L2; }
  /// Copies / normalises input for cos and checks finiteness.
  const float* prepare(const float* x, size_t n, const char* what, std::vector<float>& buf) const;
  uint32_t route(const Tree& t, const float* v) const;
  uint32_t tenant_slot(int64_t tenant);  // creates
  const Tenant* find_tenant(int64_t tenant) const;
  void insert_pairs(std::vector<std::pair<uint32_t, uint32_t>>& pairs);  // (tenant, slot)
  void search_one(const float* q, size_t k, const Tenant& t, size_t budget, Scratch& s) const;
  void scan(const float* q, const uint32_t* slots, size_t n, Scratch& s) const;
  void scan_block(const float* qs, const uint32_t* qidx, size_t nb, const Tenant& t, Scratch& s,
                  std::vector<TopK>& tops) const;
  void scan_codes(const PreparedQuery& pq, const uint32_t* slots, size_t n, Scratch& s) const;
  void check_tenant(int64_t tenant) const;
  static std::vector<float> squared_norms(const float* x, size_t n, size_t d);

  int d_;
  Metric metric_;
  MultiTenantConfig cfg_;
  Tree tree_;
  bool trained_ = false;
  std::vector<float> vectors_;  // slot-major
  VectorCodec sq_;              // SQ8, trained with the tree
  std::vector<uint8_t> codes_;  // slot-major SQ8 codes of vectors_
  std::vector<float> norms2_;   // L2 only: |x|^2 per slot (exact tenant scans)
  IdMap idmap_;
  std::vector<uint32_t> leaf_of_;                    // per slot
  std::vector<std::vector<uint32_t>> slot_tenants_;  // per slot: tenant indexes, ascending
  std::vector<Tenant> tenants_;
  std::unordered_map<int64_t, uint32_t> tenant_index_;
  size_t pairs_ = 0;
  mutable std::mutex writer_mu_;  // taken before mu_
  mutable RwLock mu_;
};

}  // namespace annx
