// MultiTenantIndex: see annx/index/multitenant_index.h. Persistence is in
// multitenant_io.cpp.
#include "annx/index/multitenant_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <shared_mutex>

#include "annx/cluster/kmeans.h"
#include "annx/common/error.h"
#include "annx/common/finite.h"
#include "annx/common/input_rows.h"
#include "annx/common/l2_bound.h"
#include "annx/common/thread_pool.h"
#include "annx/common/topk.h"
#include "annx/simd/kernels.h"

namespace annx {
namespace {

constexpr size_t kChunk = 256;             // rows scored per kernel call
constexpr size_t kMaxSlots = 0xfffffff0u;  // slots are uint32
constexpr float kIpRadiusWeight = 0.25f;
constexpr float kCosRadiusWeight = 0.2f;  // |q| = 1 (minilm: 0.861 -> 0.875 at ef 512)
constexpr size_t kRouteBeam = 4;
constexpr size_t kExactFactor = 1;
constexpr size_t kBlock = 32;  // queries of one tenant scanned exactly together
// A block scan pays per row once for all its queries (gather, pack) and, for L2, per
// query for its candidates (k + max(k, 8) re-scored, the bound checked). With at least 8
// queries it beats per-query gather scans from 256 KiB of rows for L2 (1,311 rows at
// d = 50; below that it was behind on GloVe's small tenants) and from 16 KiB for inner
// products and cosine, which have no candidate step (82 rows at d = 50, 11 at d = 384).
// It stays cheaper than a walk per query up to kBlockFactor times the size scanned
// exactly for one query. Measured with bench/annxbench/multitenant on GloVe-100k l2 and
// dot, GloVe-50k and MiniLM-50k.
constexpr size_t kMinBlockQueries = 8;
constexpr size_t kMinBlockFloats = size_t{64} << 10;  // L2
constexpr size_t kMinBlockFloatsIp = 4096;            // ip, cos
constexpr size_t kBlockFactor = 4;

simd::DistKind kind_of(Metric m) {
  return m == Metric::L2 ? simd::DistKind::L2_F32 : simd::DistKind::IP_F32;
}

// Vectors are placed in the tree by L2 (for "ip" too: assigning by largest inner
// product sends everything to the longest centroids on offset data), except for cosine
// (unit vectors, where the two agree) which uses spherical k-means.
simd::DistKind route_kind(Metric m) {
  return m == Metric::Cosine ? simd::DistKind::IP_F32 : simd::DistKind::L2_F32;
}

}  // namespace

std::vector<float> MultiTenantIndex::squared_norms(const float* x, size_t n, size_t d) {
  const auto one = simd::kernels().one[int(simd::DistKind::IP_F32)];
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = one(x + i * d, x + i * d, d, nullptr);
  return out;
}

namespace {

// Pushes the scores v[0..n) that pass top's threshold, as (v[i], id_of(i)). Selected in
// slices so that the threshold tightens early: a scan's first rows would otherwise all
// pass the initial infinite threshold, and a reservoir that takes them all keeps
// shrinking (most of the time of a scan of a few hundred rows).
template <class Top, class IdOf>
void push_selected(const simd::KernelTable& K, const float* v, size_t n, Top& top, uint32_t* sel,
                   IdOf id_of) {
  constexpr size_t kSlice = 64;
  for (size_t r0 = 0; r0 < n; r0 += kSlice) {
    const size_t ns = K.select_le(v + r0, std::min(kSlice, n - r0), top.threshold(), sel);
    for (size_t r = 0; r < ns; ++r) top.push(v[r0 + sel[r]], id_of(r0 + sel[r]));
  }
}

}  // namespace

struct MultiTenantIndex::Scratch {
  struct Item {
    float score;
    uint32_t node, lo, hi;
    bool operator>(const Item& o) const { return score > o.score; }
  };
  std::vector<float> buf = std::vector<float>(kChunk), cs;
  std::vector<uint32_t> sel = std::vector<uint32_t>(kChunk), rows, bounds, pending;
  std::vector<Item> heap;
  std::vector<idx_t> cand_ids;
  std::vector<float> strip, panel, qblock, tile;  // scan_block
  // Exact scans push few rows once the threshold is set: a heap (TopK). The walk's SQ8
  // candidate list takes many: a reservoir.
  TopK top{1};
  ReservoirTopK cand{1};
  std::vector<TopK> block_cands;  // scan_block's L2 candidates per query
};

// Per thread and reused across calls: a fresh panel and tile (hundreds of KiB) per call
// would be mmap'ed, faulted in and unmapped every time. Every user sizes what it needs.
MultiTenantIndex::Scratch& MultiTenantIndex::thread_scratch() {
  thread_local Scratch s;
  return s;
}

MultiTenantIndex::MultiTenantIndex(int d, Metric metric, const MultiTenantConfig& c)
    : d_(d), metric_(metric), cfg_(c), sq_(CodecKind::SQ8, d) {
  // 0: by dimension. A tree node's scores cost ~d each and a run's vectors ~d/4 (SQ8),
  // so in few dimensions longer runs (fewer nodes) pay: split 8 at d = 384 (MiniLM),
  // ~61 at d = 50 (GloVe), where split 8 was 2x slower at the same recall.
  if (cfg_.split == 0) cfg_.split = int(std::clamp(3072 / std::max(d, 1), 8, 128));
  if (cfg_.leaf_size == 0) cfg_.leaf_size = 32;
  // -1: by dimension, 1024 at d >= 384 and more below (an exact scan of d = 50 rows is
  // cheap next to a walk's fixed costs: on GloVe-100k the walk lost to it up to ~5,000).
  if (cfg_.exact_threshold == -1)
    cfg_.exact_threshold = std::max(1024, int((size_t{1024} * 384) / size_t(std::max(d, 1))));
  ANNX_CHECK(InvalidArgument, d >= 1 && d <= (1 << 24), "d must be in [1, 16777216], got ", d);
  ANNX_CHECK(InvalidArgument, c.branching >= 2 && c.branching <= 256,
             "branching must be in [2, 256], got ", c.branching);
  ANNX_CHECK(InvalidArgument, c.leaf_size >= 0 && c.leaf_size <= (1 << 20),
             "leaf_size must be in [1, 1048576] (0: by dimension), got ", c.leaf_size);
  ANNX_CHECK(InvalidArgument, c.split >= 0 && c.split <= (1 << 24),
             "split must be in [1, 16777216] (0: by dimension), got ", c.split);
  ANNX_CHECK(InvalidArgument, c.exact_threshold >= -1 && c.exact_threshold <= (1 << 30),
             "exact_threshold must be in [0, 2**30] (-1: by dimension), got ", c.exact_threshold);
  ANNX_CHECK(InvalidArgument, c.ef_search >= 1 && c.ef_search <= (1 << 30),
             "ef_search must be in [1, 2**30], got ", c.ef_search);
  ANNX_CHECK(InvalidArgument, c.max_depth >= 1 && c.max_depth <= 32,
             "max_depth must be in [1, 32], got ", c.max_depth);
  ANNX_CHECK(InvalidArgument, c.niter >= 1 && c.niter <= 1000, "niter must be in [1, 1000], got ",
             c.niter);
}

bool MultiTenantIndex::is_trained() const {
  std::shared_lock lk(mu_);
  return trained_;
}

size_t MultiTenantIndex::ntotal() const {
  std::shared_lock lk(mu_);
  return idmap_.size();
}

idx_t MultiTenantIndex::next_id() const {
  std::shared_lock lk(mu_);
  return idmap_.next_id();
}

bool MultiTenantIndex::contains(idx_t id) const {
  std::shared_lock lk(mu_);
  return idmap_.contains(id);
}

std::vector<idx_t> MultiTenantIndex::ids() const {
  std::shared_lock lk(mu_);
  return std::vector<idx_t>(idmap_.ids(), idmap_.ids() + idmap_.size());
}

size_t MultiTenantIndex::num_nodes() const {
  std::shared_lock lk(mu_);
  return tree_.nodes.size();
}

size_t MultiTenantIndex::num_leaves() const {
  std::shared_lock lk(mu_);
  return tree_.nleaves;
}

int MultiTenantIndex::depth() const {
  std::shared_lock lk(mu_);
  return tree_.depth;
}

size_t MultiTenantIndex::num_grants() const {
  std::shared_lock lk(mu_);
  return pairs_;
}

void MultiTenantIndex::check_tenant(int64_t tenant) const {
  ANNX_CHECK(InvalidArgument, tenant >= 0, "tenant ids must be >= 0, got ", tenant);
}

const float* MultiTenantIndex::prepare(const float* x, size_t n, const char* what,
                                       std::vector<float>& buf) const {
  return checked_input_rows(x, n, size_t(d_), metric_, what, buf);
}

// ---- the tree -----------------------------------------------------------------------

void MultiTenantIndex::Tree::number_leaves() {
  // Children are numbered after their parent, so a reverse sweep sees children first.
  // Leaves are numbered depth-first with an explicit stack (the depth is bounded anyway).
  nleaves = 0;
  if (nodes.empty()) return;
  std::vector<uint32_t> stack{0};
  while (!stack.empty()) {
    const uint32_t v = stack.back();
    stack.pop_back();
    Node& nd = nodes[v];
    if (nd.nchild == 0) {
      nd.leaf_lo = uint32_t(nleaves);
      nd.leaf_hi = uint32_t(++nleaves);
    } else {
      for (uint32_t j = nd.nchild; j-- > 0;) stack.push_back(nd.first_child + j);
    }
  }
  for (size_t v = nodes.size(); v-- > 0;) {
    Node& nd = nodes[v];
    if (nd.nchild == 0) continue;
    nd.leaf_lo = nodes[nd.first_child].leaf_lo;
    nd.leaf_hi = nodes[nd.first_child + nd.nchild - 1].leaf_hi;
  }
}

uint32_t MultiTenantIndex::route(const Tree& t, const float* v) const {
  // A beam search down the tree (kRouteBeam best nodes per level): closer to the
  // nearest leaf centroid than greedy descent, so leaves are tighter.
  const auto& K = simd::kernels();
  const auto many = K.many[int(route_kind(metric_))];
  const bool larger = metric_ == Metric::Cosine;
  const size_t d = size_t(d_);
  float s[256];
  std::pair<float, uint32_t> beam[kRouteBeam], cand[kRouteBeam];
  size_t nb = 1;
  beam[0] = {0.f, 0};
  for (;;) {
    size_t nc = 0;
    bool expanded = false;
    auto offer = [&](float score, uint32_t node) {
      if (nc < kRouteBeam) {
        cand[nc++] = {score, node};
      } else {
        size_t w = 0;
        for (size_t i = 1; i < nc; ++i)
          if (cand[i].first > cand[w].first) w = i;
        if (score < cand[w].first) cand[w] = {score, node};
      }
    };
    for (size_t b = 0; b < nb; ++b) {
      const Node& nd = t.nodes[beam[b].second];
      if (nd.nchild == 0) {
        offer(beam[b].first, beam[b].second);
        continue;
      }
      expanded = true;
      many(v, t.centroids.data() + size_t(nd.first_child) * d, nd.nchild, d, nullptr, s);
      for (uint32_t j = 0; j < nd.nchild; ++j) offer(larger ? -s[j] : s[j], nd.first_child + j);
    }
    std::copy(cand, cand + nc, beam);
    nb = nc;
    if (!expanded) break;
  }
  size_t best = 0;
  for (size_t i = 1; i < nb; ++i)
    if (beam[i] < beam[best]) best = i;
  return t.nodes[beam[best].second].leaf_lo;
}

void MultiTenantIndex::train(const float* x, size_t n, int threads) {
  ANNX_CHECK(InvalidArgument, n > 0, "train needs at least one vector, got 0");
  ANNX_CHECK(InvalidArgument, n <= kMaxSlots, "train takes at most ", kMaxSlots, " vectors");
  std::vector<float> buf;
  const float* xs = prepare(x, n, "training data", buf);
  std::lock_guard wl(writer_mu_);
  {
    std::shared_lock lk(mu_);
    ANNX_CHECK(InvalidArgument, idmap_.size() == 0, "train refused: the index holds ",
               idmap_.size(), " vectors (train before add, or reset() first)");
  }
  ProgressCounter progress(n, "training 'MultiTenant'");
  const size_t d = size_t(d_), leaf = size_t(cfg_.leaf_size);
  Tree t;
  t.nodes.emplace_back();
  t.centroids.assign(d, 0.f);
  t.radius.assign(1, 0.f);
  struct Work {
    uint32_t node;
    std::vector<uint32_t> pts;
  };
  std::vector<Work> level(1);
  level[0].pts.resize(n);
  for (size_t i = 0; i < n; ++i) level[0].pts[i] = uint32_t(i);
  int depth = 0;
  while (!level.empty()) {
    const size_t L = level.size();
    std::vector<std::vector<float>> cents(L);
    auto cluster = [&](size_t i, int inner_threads) {
      const auto& P = level[i].pts;
      if (depth >= cfg_.max_depth || P.size() < 2 * leaf) return;
      const size_t c = std::min<size_t>(size_t(cfg_.branching), P.size() / leaf);
      if (c < 2) return;
      std::vector<float> xp(P.size() * d);
      for (size_t j = 0; j < P.size(); ++j)
        std::memcpy(xp.data() + j * d, xs + size_t(P[j]) * d, d * sizeof(float));
      KMeansOptions opt;
      opt.niter = cfg_.niter;
      opt.seed = cfg_.seed + 0x9E3779B97F4A7C15ULL * (uint64_t(level[i].node) + 1);
      opt.ip = metric_ == Metric::Cosine;
      opt.spherical = metric_ == Metric::Cosine;
      opt.threads = inner_threads;
      cents[i] = kmeans(xp.data(), P.size(), d, c, opt).centroids;
    };
    {
      ProgressScope quiet(nullptr, nullptr);  // k-means' own counts are not ours
      if (L == 1)
        cluster(0, threads);
      else
        parallel_for(
            L, 1,
            [&](size_t b, size_t e) {
              for (size_t i = b; i < e; ++i) cluster(i, 1);
            },
            threads);
    }
    // Allocate the children (consecutive, after every node allocated so far).
    for (size_t i = 0; i < L; ++i) {
      const size_t c = cents[i].size() / d;
      Node& nd = t.nodes[level[i].node];
      if (c == 0) {
        progress.advance(level[i].pts.size());
        continue;
      }
      nd.first_child = uint32_t(t.nodes.size());
      nd.nchild = uint32_t(c);
      t.nodes.resize(t.nodes.size() + c);
      t.radius.resize(t.nodes.size(), 0.f);
      t.centroids.insert(t.centroids.end(), cents[i].begin(), cents[i].end());
    }
    // Route every point of a split node to its nearest child.
    std::vector<std::pair<uint32_t, uint32_t>> flat;  // (level item, point)
    for (size_t i = 0; i < L; ++i)
      if (!cents[i].empty())
        for (uint32_t p : level[i].pts) flat.emplace_back(uint32_t(i), p);
    std::vector<uint32_t> child(flat.size());
    {
      ProgressScope quiet(nullptr, nullptr);
      parallel_for(
          flat.size(), 512,
          [&](size_t b, size_t e) {
            const auto& K = simd::kernels();
            const auto many = K.many[int(route_kind(metric_))];
            const bool larger = metric_ == Metric::Cosine;
            float s[256];
            for (size_t j = b; j < e; ++j) {
              const Node& nd = t.nodes[level[flat[j].first].node];
              many(xs + size_t(flat[j].second) * d, t.centroids.data() + size_t(nd.first_child) * d,
                   nd.nchild, d, nullptr, s);
              uint32_t best = 0;
              for (uint32_t c = 1; c < nd.nchild; ++c)
                if (larger ? s[c] > s[best] : s[c] < s[best]) best = c;
              child[j] = nd.first_child + best;
            }
          },
          threads);
    }
    std::vector<Work> next;
    std::vector<int64_t> where(t.nodes.size(), -1);
    for (size_t i = 0; i < L; ++i) {
      const Node& nd = t.nodes[level[i].node];
      for (uint32_t c = 0; c < nd.nchild; ++c) {
        where[nd.first_child + c] = int64_t(next.size());
        next.push_back(Work{nd.first_child + c, {}});
      }
    }
    for (size_t j = 0; j < flat.size(); ++j) {
      next[size_t(where[child[j]])].pts.push_back(flat[j].second);
      const float* v = xs + size_t(flat[j].second) * d;
      const float* c = t.centroids.data() + size_t(child[j]) * d;
      double r = 0;
      for (size_t k = 0; k < d; ++k) r += double(v[k] - c[k]) * double(v[k] - c[k]);
      t.radius[child[j]] = std::max(t.radius[child[j]], float(std::sqrt(r)));
    }
    level.swap(next);
    ++depth;
    progress.poll();
  }
  t.depth = depth - 1;
  t.number_leaves();
  VectorCodec sq(CodecKind::SQ8, d_);
  sq.train(xs, n);
  progress.finish();
  std::unique_lock lk(mu_);
  tree_ = std::move(t);
  sq_ = std::move(sq);
  trained_ = true;
}

// ---- tenants ------------------------------------------------------------------------

uint32_t MultiTenantIndex::tenant_slot(int64_t tenant) {
  const auto [it, fresh] = tenant_index_.emplace(tenant, uint32_t(tenants_.size()));
  if (fresh) {
    tenants_.emplace_back();
    tenants_.back().ext = tenant;
  }
  return it->second;
}

const MultiTenantIndex::Tenant* MultiTenantIndex::find_tenant(int64_t tenant) const {
  const auto it = tenant_index_.find(tenant);
  return it == tenant_index_.end() ? nullptr : &tenants_[it->second];
}

void MultiTenantIndex::insert_pairs(std::vector<std::pair<uint32_t, uint32_t>>& pairs) {
  // Group by tenant, sort each group by leaf, merge into the tenant's list.
  std::sort(pairs.begin(), pairs.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return leaf_of_[a.second] < leaf_of_[b.second];
  });
  std::vector<uint32_t> nl, ns;
  for (size_t b = 0; b < pairs.size();) {
    size_t e = b;
    while (e < pairs.size() && pairs[e].first == pairs[b].first) ++e;
    Tenant& t = tenants_[pairs[b].first];
    const size_t m = t.size(), add = e - b;
    nl.resize(m + add);
    ns.resize(m + add);
    size_t i = 0, j = b, o = 0;
    while (i < m || j < e) {
      const bool take_old = j == e || (i < m && t.leaf[i] <= leaf_of_[pairs[j].second]);
      if (take_old) {
        nl[o] = t.leaf[i];
        ns[o++] = t.slot[i++];
      } else {
        nl[o] = leaf_of_[pairs[j].second];
        ns[o++] = pairs[j++].second;
      }
    }
    t.leaf.swap(nl);
    t.slot.swap(ns);
    pairs_ += add;
    b = e;
  }
}

std::vector<idx_t> MultiTenantIndex::add(const float* x, size_t n, const idx_t* ids,
                                         const int64_t* tenants, const int64_t* toffsets,
                                         int threads) {
  if (n == 0) return {};
  if (toffsets) {
    ANNX_CHECK(InvalidArgument, toffsets[0] == 0, "tenant offsets must start at 0, got ",
               toffsets[0]);
    for (size_t i = 0; i < n; ++i)
      ANNX_CHECK(InvalidArgument, toffsets[i + 1] >= toffsets[i],
                 "tenant offsets must be non-decreasing (vector ", i, ")");
    for (int64_t j = 0; j < toffsets[n]; ++j)
      ANNX_CHECK(InvalidArgument, tenants[j] >= 0, "tenant ids must be >= 0, got ", tenants[j],
                 " for vector ", std::upper_bound(toffsets, toffsets + n + 1, j) - toffsets - 1);
  }
  std::vector<float> buf;
  const float* xs = prepare(x, n, "x", buf);
  const size_t d = size_t(d_);
  std::lock_guard wl(writer_mu_);
  // trained_, tree_ and idmap_ change only under writer_mu_: read them without mu_.
  ANNX_CHECK(NotTrained, trained_,
             "MultiTenantIndex must be trained before add: call train(x) first");
  ANNX_CHECK(InvalidArgument, idmap_.size() + n <= kMaxSlots, "too many vectors (at most ",
             kMaxSlots, ")");
  std::vector<idx_t> assigned;
  if (ids) {
    idmap_.check_new(ids, n);
    assigned.assign(ids, ids + n);
  } else {
    const idx_t first = idmap_.next_id();
    ANNX_CHECK(InvalidArgument, first <= std::numeric_limits<idx_t>::max() - idx_t(n),
               "the id space is used up; pass explicit ids");
    assigned.resize(n);
    for (size_t i = 0; i < n; ++i) assigned[i] = first + idx_t(i);
  }
  std::vector<uint32_t> leaves(n);
  std::vector<uint8_t> codes(n * d);
  parallel_for(
      n, 256,
      [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) leaves[i] = route(tree_, xs + i * d);
        sq_.encode(xs + b * d, e - b, codes.data() + b * d);
      },
      threads);
  // Per vector: its tenants, sorted and unique.
  std::vector<int64_t> tl;
  std::vector<size_t> toff(n + 1, 0);
  if (toffsets) {
    tl.assign(tenants, tenants + toffsets[n]);
    size_t w = 0;
    for (size_t i = 0; i < n; ++i) {
      auto b = tl.begin() + toffsets[i], e = tl.begin() + toffsets[i + 1];
      std::sort(b, e);
      e = std::unique(b, e);
      for (auto it = b; it != e; ++it) tl[w++] = *it;
      toff[i + 1] = w;
    }
    tl.resize(w);
  }
  std::vector<float> norms2;
  if (metric_ == Metric::L2) norms2 = squared_norms(xs, n, d);
  std::unique_lock lk(mu_);
  const uint32_t base = uint32_t(idmap_.size());
  vectors_.insert(vectors_.end(), xs, xs + n * d);
  norms2_.insert(norms2_.end(), norms2.begin(), norms2.end());
  codes_.insert(codes_.end(), codes.begin(), codes.end());
  leaf_of_.insert(leaf_of_.end(), leaves.begin(), leaves.end());
  idmap_.append(assigned.data(), n);
  slot_tenants_.resize(size_t(base) + n);
  std::vector<std::pair<uint32_t, uint32_t>> pairs;
  pairs.reserve(tl.size());
  for (size_t i = 0; i < n; ++i) {
    auto& st = slot_tenants_[base + i];
    for (size_t j = toff[i]; j < toff[i + 1]; ++j) {
      const uint32_t ti = tenant_slot(tl[j]);
      st.push_back(ti);
      pairs.emplace_back(ti, base + uint32_t(i));
    }
    std::sort(st.begin(), st.end());
  }
  insert_pairs(pairs);
  return assigned;
}

void MultiTenantIndex::grant(const idx_t* ids, size_t n, int64_t tenant) {
  check_tenant(tenant);
  if (n == 0) return;
  std::lock_guard wl(writer_mu_);
  const std::vector<slot_t> slots = idmap_.slots_of(ids, n, /*allow_repeats=*/true);
  std::unique_lock lk(mu_);
  const uint32_t ti = tenant_slot(tenant);
  std::vector<std::pair<uint32_t, uint32_t>> pairs;
  for (slot_t s : slots) {
    auto& st = slot_tenants_[s];
    const auto it = std::lower_bound(st.begin(), st.end(), ti);
    if (it != st.end() && *it == ti) continue;
    st.insert(it, ti);
    pairs.emplace_back(ti, uint32_t(s));
  }
  insert_pairs(pairs);
}

void MultiTenantIndex::revoke(const idx_t* ids, size_t n, int64_t tenant) {
  check_tenant(tenant);
  if (n == 0) return;
  std::lock_guard wl(writer_mu_);
  const std::vector<slot_t> slots = idmap_.slots_of(ids, n, /*allow_repeats=*/true);
  const auto found = tenant_index_.find(tenant);
  if (found == tenant_index_.end()) return;
  const uint32_t ti = found->second;
  std::unique_lock lk(mu_);
  std::vector<uint32_t> gone;
  for (slot_t s : slots) {
    auto& st = slot_tenants_[s];
    const auto it = std::lower_bound(st.begin(), st.end(), ti);
    if (it == st.end() || *it != ti) continue;
    st.erase(it);
    gone.push_back(uint32_t(s));
  }
  if (gone.empty()) return;
  std::sort(gone.begin(), gone.end());
  Tenant& t = tenants_[ti];
  size_t w = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    if (std::binary_search(gone.begin(), gone.end(), t.slot[i])) continue;
    t.leaf[w] = t.leaf[i];
    t.slot[w++] = t.slot[i];
  }
  pairs_ -= t.size() - w;
  t.leaf.resize(w);
  t.slot.resize(w);
}

size_t MultiTenantIndex::remove(const idx_t* ids, size_t n) {
  if (n == 0) return 0;
  std::lock_guard wl(writer_mu_);
  std::vector<slot_t> slots = idmap_.slots_of(ids, n);  // all exist, no repeats
  const size_t d = size_t(d_);
  std::unique_lock lk(mu_);
  // 1. Drop the removed slots from their tenants' lists.
  std::vector<char> dead(idmap_.size(), 0);
  std::vector<uint32_t> touched;
  for (slot_t s : slots) {
    dead[s] = 1;
    touched.insert(touched.end(), slot_tenants_[s].begin(), slot_tenants_[s].end());
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (uint32_t ti : touched) {
    Tenant& t = tenants_[ti];
    size_t w = 0;
    for (size_t i = 0; i < t.size(); ++i) {
      if (dead[t.slot[i]]) continue;
      t.leaf[w] = t.leaf[i];
      t.slot[w++] = t.slot[i];
    }
    pairs_ -= t.size() - w;
    t.leaf.resize(w);
    t.slot.resize(w);
  }
  // 2. Swap-remove, largest slot first, so the last slot is never a removed one.
  std::sort(slots.begin(), slots.end(), std::greater<>());
  for (slot_t s : slots) {
    const uint32_t last = uint32_t(idmap_.size() - 1);
    if (s != last) {
      std::memcpy(vectors_.data() + size_t(s) * d, vectors_.data() + size_t(last) * d,
                  d * sizeof(float));
      std::memcpy(codes_.data() + size_t(s) * d, codes_.data() + size_t(last) * d, d);
      leaf_of_[s] = leaf_of_[last];
      if (!norms2_.empty()) norms2_[s] = norms2_[last];
      slot_tenants_[s] = std::move(slot_tenants_[last]);
      for (uint32_t ti : slot_tenants_[s]) {
        Tenant& t = tenants_[ti];
        auto lo = std::lower_bound(t.leaf.begin(), t.leaf.end(), leaf_of_[s]) - t.leaf.begin();
        while (t.slot[size_t(lo)] != last) ++lo;
        t.slot[size_t(lo)] = uint32_t(s);
      }
    }
    idmap_.move_last_into(s);
    vectors_.resize(size_t(last) * d);
    codes_.resize(size_t(last) * d);
    leaf_of_.pop_back();
    if (!norms2_.empty()) norms2_.pop_back();
    slot_tenants_.pop_back();
  }
  return n;
}

void MultiTenantIndex::reset() {
  std::lock_guard wl(writer_mu_);
  std::unique_lock lk(mu_);
  vectors_ = {};
  codes_ = {};
  norms2_ = {};
  idmap_ = IdMap();
  leaf_of_ = {};
  slot_tenants_ = {};
  tenants_ = {};
  tenant_index_ = {};
  pairs_ = 0;
}

std::vector<int64_t> MultiTenantIndex::tenants_of(idx_t id) const {
  std::shared_lock lk(mu_);
  const auto s = idmap_.find(id);
  ANNX_CHECK(InvalidArgument, s.has_value(), "id ", id, " is not in the index");
  std::vector<int64_t> out;
  for (uint32_t ti : slot_tenants_[*s]) out.push_back(tenants_[ti].ext);
  std::sort(out.begin(), out.end());
  return out;
}

size_t MultiTenantIndex::tenant_size(int64_t tenant) const {
  std::shared_lock lk(mu_);
  const Tenant* t = find_tenant(tenant);
  return t ? t->size() : 0;
}

std::vector<int64_t> MultiTenantIndex::tenants() const {
  std::shared_lock lk(mu_);
  std::vector<int64_t> out;
  for (const Tenant& t : tenants_)
    if (t.size()) out.push_back(t.ext);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<idx_t> MultiTenantIndex::tenant_ids(int64_t tenant) const {
  std::shared_lock lk(mu_);
  std::vector<idx_t> out;
  if (const Tenant* t = find_tenant(tenant))
    for (uint32_t s : t->slot) out.push_back(idmap_.id(s));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<float> MultiTenantIndex::reconstruct(const idx_t* ids, size_t n) const {
  std::shared_lock lk(mu_);
  const std::vector<slot_t> slots = idmap_.slots_of(ids, n, /*allow_repeats=*/true);
  const size_t d = size_t(d_);
  std::vector<float> out(n * d);
  for (size_t i = 0; i < n; ++i)
    std::memcpy(out.data() + i * d, vectors_.data() + size_t(slots[i]) * d, d * sizeof(float));
  return out;
}

// ---- search -------------------------------------------------------------------------

void MultiTenantIndex::scan(const float* q, const uint32_t* slots, size_t n, Scratch& s) const {
  const auto& K = simd::kernels();
  const auto gather = K.gather[int(kind_of(metric_))];
  const size_t d = size_t(d_);
  const bool neg = ip_scores();
  for (size_t off = 0; off < n; off += kChunk) {
    const size_t cnt = std::min(kChunk, n - off);
    gather(q, vectors_.data(), slots + off, cnt, d * sizeof(float), d, nullptr, s.buf.data());
    if (neg)
      for (size_t i = 0; i < cnt; ++i) s.buf[i] = -s.buf[i];
    push_selected(K, s.buf.data(), cnt, s.top, s.sel.data(),
                  [&](size_t j) { return idmap_.id(slots[off + j]); });
  }
}

void MultiTenantIndex::scan_codes(const PreparedQuery& pq, const uint32_t* slots, size_t n,
                                  Scratch& s) const {
  const auto& K = simd::kernels();
  const auto gather = K.gather[int(pq.kind)];
  const size_t d = size_t(d_);
  for (size_t off = 0; off < n; off += kChunk) {
    const size_t cnt = std::min(kChunk, n - off);
    gather(pq.q.data(), codes_.data(), slots + off, cnt, d, d, pq.aux, s.buf.data());
    pq.finish_all(s.buf.data(), cnt);
    push_selected(K, s.buf.data(), cnt, s.cand, s.sel.data(),
                  [&](size_t j) { return idx_t(slots[off + j]); });  // slots: re-ranked below
  }
}

void MultiTenantIndex::search_one(const float* q, size_t k, const Tenant& t, size_t budget,
                                  Scratch& s) const {
  const size_t m = t.size();
  // A tenant the budget covers anyway is scanned exactly (float32).
  if (m <= std::max(kExactFactor * budget, size_t(cfg_.exact_threshold)) ||
      tree_.nodes.size() <= 1) {
    scan(q, t.slot.data(), m, s);
    return;
  }
  const auto& K = simd::kernels();
  const auto many = K.many[int(kind_of(metric_))];
  const auto gather = K.gather[int(kind_of(metric_))];
  // Runs of at most `split` are scanned whole, but at least ~16 runs per walk, so that
  // a small budget is not spent on a few coarse nodes.
  const size_t d = size_t(d_),
               split = std::max<size_t>(1, std::min<size_t>(cfg_.split, budget / 16));
  const bool neg = ip_scores();
  // Inner product and cosine: order nodes by <q, c> + w |q| r, r the node's radius.
  // w = 1 is the ball bound, loose since r is the largest radius; w = 1/4 ranked best on
  // offset, clustered data (tests/test_multitenant.py) where w = 0 (faiss's IVF order)
  // was worst, and w = 0.2 helped a little on MiniLM (cosine).
  float qnorm = 0;
  if (metric_ == Metric::Cosine) qnorm = kCosRadiusWeight;
  if (metric_ == Metric::IP)
    qnorm =
        kIpRadiusWeight * std::sqrt(std::max(0.f, K.one[int(kind_of(metric_))](q, q, d, nullptr)));
  const uint32_t* L = t.leaf.data();
  const PreparedQuery pq = sq_.prepare(q, metric_);
  s.cand = ReservoirTopK(std::max<size_t>(4 * k, 32));
  auto& heap = s.heap;
  heap.clear();
  heap.push_back({0.f, 0, 0, uint32_t(m)});
  // Runs to scan are collected and scored in batches: one kernel call over many rows
  // prefetches ahead, where a call per (small) run would not.
  auto& pending = s.pending;
  pending.clear();
  size_t scanned = 0;
  while (!heap.empty()) {
    if (scanned >= budget) {
      scan_codes(pq, pending.data(), pending.size(), s);
      pending.clear();
      if (s.cand.size() >= k) break;
    }
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const Scratch::Item it = heap.back();
    heap.pop_back();
    const Node& nd = tree_.nodes[it.node];
    const size_t len = it.hi - it.lo;
    if (nd.nchild == 0 || len <= split) {
      pending.insert(pending.end(), t.slot.data() + it.lo, t.slot.data() + it.hi);
      scanned += len;
      if (pending.size() >= kChunk) {
        scan_codes(pq, pending.data(), pending.size(), s);
        pending.clear();
      }
      continue;
    }
    // The tenant's run under each child (children cover consecutive leaf ranges), then
    // the centroid scores of the non-empty children only.
    // (Each buffer sized on its own: the scratch is reused by other scans and indexes.)
    if (s.cs.size() < nd.nchild) s.cs.resize(nd.nchild);
    if (s.rows.size() < nd.nchild) s.rows.resize(nd.nchild);
    if (s.bounds.size() < nd.nchild + 1) s.bounds.resize(nd.nchild + 1);
    uint32_t pos = it.lo, nonempty = 0;
    for (uint32_t j = 0; j < nd.nchild; ++j) {
      uint32_t end = it.hi;
      if (j + 1 < nd.nchild)
        end = uint32_t(
            std::lower_bound(L + pos, L + it.hi, tree_.nodes[nd.first_child + j + 1].leaf_lo) - L);
      if (end > pos) {
        s.rows[nonempty] = nd.first_child + j;
        s.bounds[nonempty++] = pos;
      }
      pos = end;
    }
    s.bounds[nonempty] = it.hi;
    if (nonempty == nd.nchild)
      many(q, tree_.centroids.data() + size_t(nd.first_child) * d, nd.nchild, d, nullptr,
           s.cs.data());
    else
      gather(q, tree_.centroids.data(), s.rows.data(), nonempty, d * sizeof(float), d, nullptr,
             s.cs.data());
    for (uint32_t j = 0; j < nonempty; ++j) {
      const uint32_t c = s.rows[j];
      heap.push_back(
          {neg ? -(s.cs[j] + qnorm * tree_.radius[c]) : s.cs[j], c, s.bounds[j], s.bounds[j + 1]});
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
  }
  scan_codes(pq, pending.data(), pending.size(), s);
  // Re-rank the candidates with the float32 vectors.
  const size_t nc = s.cand.size(), cap = s.cand.k();
  s.cs.resize(std::max(s.cs.size(), cap));
  std::vector<idx_t>& ci = s.cand_ids;
  ci.resize(cap);
  s.cand.drain_sorted(s.cs.data(), ci.data());  // pads to cap
  s.rows.resize(std::max(s.rows.size(), nc));
  for (size_t i = 0; i < nc; ++i) s.rows[i] = uint32_t(ci[i]);
  scan(q, s.rows.data(), nc, s);
}

void MultiTenantIndex::scan_block(const float* qs, const uint32_t* qidx, size_t nb, const Tenant& t,
                                  Scratch& s, std::vector<TopK>& tops) const {
  // Several queries of one tenant scanned exactly: the tenant's rows are gathered once per
  // chunk and packed into cache-resident panels, and the panel kernel scores every query of
  // the block against them.
  //
  // L2 ranks by |x|^2 - 2<q,x>, which cancels for data far from the origin (as in Flat's
  // batched search): each query keeps k + slack candidates, re-scores them in direct
  // form, and is answered from them only when the rounding-error bound
  // (common/l2_bound.h) proves no other row can beat the k-th; otherwise that query is
  // re-scanned in direct form.
  const auto& K = simd::kernels();
  const size_t d = size_t(d_), m = t.size(), k = tops[0].k();
  const bool l2 = metric_ == Metric::L2;
  const size_t kc = l2 ? k + std::max<size_t>(k, 8) : k;
  const int ip_kind = int(simd::DistKind::IP_F32);
  // Chunks of ~256 KiB of rows, whole panels. The rows are gathered into panels
  // (column-major), so the kernel needs no horizontal sums: those dominate a row-major
  // tile at small d, and packing measured faster than row-major tiles at d = 384 too.
  const size_t P = K.panel_rows;
  const size_t rows = P * std::min((m + P - 1) / P,
                                   std::clamp<size_t>((size_t{256} << 10) / (d * sizeof(float) * P),
                                                      1, 1024 / P + 1));
  s.panel.resize(rows * d);
  s.strip.resize(P * d);
  s.qblock.resize(nb * d);
  if (s.tile.size() < nb * rows) s.tile.resize(nb * rows);
  if (s.sel.size() < rows) s.sel.resize(rows);
  if (s.buf.size() < rows) s.buf.resize(rows);
  for (size_t j = 0; j < nb; ++j)
    std::memcpy(s.qblock.data() + j * d, qs + size_t(qidx[j]) * d, d * sizeof(float));
  // L2 candidates hold positions in the tenant's list (re-scored below); others hold ids.
  std::vector<TopK>& cand = l2 ? s.block_cands : tops;
  if (l2) cand.assign(nb, TopK(kc));
  float max_norm2 = 0.f;
  if (l2)
    for (size_t i = 0; i < m; ++i) max_norm2 = std::max(max_norm2, norms2_[t.slot[i]]);
  for (size_t off = 0; off < m; off += rows) {
    const size_t cnt = std::min(rows, m - off);
    if (l2)
      for (size_t r = 0; r < cnt; ++r) s.buf[r] = norms2_[t.slot[off + r]];
    for (size_t r0 = 0; r0 < cnt; r0 += P) {
      // Gather a strip (L1-resident), then the kernel's pack (register transposes).
      const size_t nr = std::min(P, cnt - r0);
      for (size_t r = 0; r < nr; ++r)
        std::memcpy(s.strip.data() + r * d, vectors_.data() + size_t(t.slot[off + r0 + r]) * d,
                    d * sizeof(float));
      K.pack_f32_panel(s.strip.data(), nr, d, s.panel.data() + r0 * d);
      K.dot_f32_panel(s.qblock.data(), nb, d, s.panel.data() + r0 * d, s.tile.data() + r0, rows);
    }
    for (size_t j = 0; j < nb; ++j) {
      TopK& top = cand[j];
      float* v = s.tile.data() + j * rows;
      if (l2) {
        const float* nr = s.buf.data();
        for (size_t r = 0; r < cnt; ++r) v[r] = nr[r] - 2.f * v[r];
      } else {
        for (size_t r = 0; r < cnt; ++r) v[r] = -v[r];
      }
      push_selected(K, v, cnt, top, s.sel.data(),
                    [&](size_t x) { return l2 ? idx_t(off + x) : idmap_.id(t.slot[off + x]); });
    }
  }
  if (!l2) return;
  const int l2_kind = int(simd::DistKind::L2_F32);
  s.cs.resize(std::max(s.cs.size(), kc));
  s.cand_ids.resize(std::max(s.cand_ids.size(), kc));
  for (size_t j = 0; j < nb; ++j) {
    const float* q = s.qblock.data() + j * d;
    const bool complete = cand[j].size() < kc;  // every row is a candidate
    cand[j].drain_sorted(s.cs.data(), s.cand_ids.data());
    const float worst_kept = s.cs[kc - 1];
    for (size_t c = 0; c < kc && s.cand_ids[c] >= 0; ++c) {
      const uint32_t slot = t.slot[size_t(s.cand_ids[c])];
      tops[j].push(K.one[l2_kind](q, vectors_.data() + size_t(slot) * d, d, nullptr),
                   idmap_.id(slot));
    }
    if (complete) continue;
    const float qn = K.one[ip_kind](q, q, d, nullptr);
    if (!blocked_l2_proven(tops[j].threshold(), worst_kept, qn,
                           blocked_l2_error_bound(d, max_norm2, qn))) {
      s.top = TopK(k);
      scan(q, t.slot.data(), m, s);
      tops[j] = std::move(s.top);
    }
  }
}

void MultiTenantIndex::search(const float* q, size_t nq, size_t k, const int64_t* tenants,
                              int ef_search, int threads, float* D, idx_t* I) const {
  ANNX_CHECK(InvalidArgument, k >= 1, "k must be >= 1, got ", k);
  ANNX_CHECK(InvalidArgument, ef_search >= 0, "ef_search must be >= 1, got ", ef_search);
  if (nq == 0) return;
  for (size_t i = 0; i < nq; ++i) check_tenant(tenants[i]);
  std::vector<float> buf;
  const float* qs = prepare(q, nq, "queries", buf);
  const size_t budget = std::max(k, size_t(ef_search > 0 ? ef_search : cfg_.ef_search));
  const float pad = ip_scores() ? -std::numeric_limits<float>::infinity()
                                : std::numeric_limits<float>::infinity();
  std::shared_lock lk(mu_);
  // Work items: queries of one tenant that is scanned exactly go in blocks of up to
  // kBlock (its rows are fetched once per block); every other query on its own.
  std::vector<uint32_t> order(nq);
  for (size_t i = 0; i < nq; ++i) order[i] = uint32_t(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return tenants[a] < tenants[b]; });
  std::vector<std::pair<size_t, size_t>> items;  // [begin, end) of `order`
  for (size_t b = 0; b < nq;) {
    size_t e = b + 1;
    while (e < nq && tenants[order[e]] == tenants[order[b]]) ++e;
    const Tenant* t = find_tenant(tenants[order[b]]);
    const size_t m = t ? t->size() : 0;
    const bool block =
        e - b >= kMinBlockQueries &&
        m * size_t(d_) >= (metric_ == Metric::L2 ? kMinBlockFloats : kMinBlockFloatsIp) &&
        m <= kBlockFactor * std::max(kExactFactor * budget, size_t(cfg_.exact_threshold));
    for (size_t i = b; i < e; i += block ? kBlock : 1)
      items.emplace_back(i, std::min(e, i + (block ? kBlock : 1)));
    b = e;
  }
  auto finish = [&](size_t i, TopK& top) {
    float* Di = D + i * k;
    idx_t* Ii = I + i * k;
    const size_t got = top.size();
    top.drain_sorted(Di, Ii);
    if (ip_scores())
      for (size_t j = 0; j < got; ++j) Di[j] = -Di[j];
    for (size_t j = got; j < k; ++j) {
      Di[j] = pad;
      Ii[j] = -1;
    }
  };
  parallel_for(
      items.size(), 1,
      [&](size_t b, size_t e) {
        Scratch& s = thread_scratch();
        std::vector<TopK> tops;
        for (size_t w = b; w < e; ++w) {
          const auto [ib, ie] = items[w];
          const Tenant* t = find_tenant(tenants[order[ib]]);
          const size_t kk = t ? std::min(k, t->size()) : 0;
          if (ie - ib > 1 && kk > 0) {
            tops.assign(ie - ib, TopK(kk));
            scan_block(qs, order.data() + ib, ie - ib, *t, s, tops);
            for (size_t j = ib; j < ie; ++j) finish(order[j], tops[j - ib]);
            continue;
          }
          for (size_t j = ib; j < ie; ++j) {
            s.top = TopK(std::max<size_t>(kk, 1));
            if (kk > 0) search_one(qs + size_t(order[j]) * size_t(d_), kk, *t, budget, s);
            finish(order[j], s.top);
          }
        }
      },
      threads);
}

// ---- memory -------------------------------------------------------------------------

size_t MultiTenantIndex::memory_bytes() const {
  std::shared_lock lk(mu_);
  size_t b = (vectors_.capacity() + norms2_.capacity()) * sizeof(float) + codes_.capacity() +
             idmap_.size() * sizeof(idx_t) + leaf_of_.capacity() * sizeof(uint32_t) +
             slot_tenants_.capacity() * sizeof(std::vector<uint32_t>);
  bool identity = true;
  for (size_t i = 0; i < idmap_.size() && identity; ++i)
    identity = idmap_.id(slot_t(i)) == idx_t(i);
  if (!identity) b += idmap_.size() * (sizeof(idx_t) + sizeof(slot_t) + 2 * sizeof(void*));
  for (const auto& st : slot_tenants_)
    if (st.capacity()) b += st.capacity() * sizeof(uint32_t) + 16;  // + allocator header
  b += tenants_.capacity() * sizeof(Tenant) +
       tenant_index_.size() * (sizeof(int64_t) + sizeof(uint32_t) + 2 * sizeof(void*));
  for (const Tenant& t : tenants_) b += (t.leaf.capacity() + t.slot.capacity()) * sizeof(uint32_t);
  b += tree_.nodes.capacity() * sizeof(Node) +
       (tree_.centroids.capacity() + tree_.radius.capacity()) * sizeof(float);
  return b;
}

double MultiTenantIndex::bytes_per_vector() const {
  const size_t n = ntotal();
  if (n == 0) return 0.0;
  std::shared_lock lk(mu_);
  const size_t tree = tree_.nodes.capacity() * sizeof(Node) +
                      (tree_.centroids.capacity() + tree_.radius.capacity()) * sizeof(float);
  lk.unlock();
  return double(memory_bytes() - tree) / double(n);
}

}  // namespace annx
