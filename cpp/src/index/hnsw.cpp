#include "annx/index/hnsw.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "annx/common/error.h"
#include "annx/common/prefetch.h"
#include "annx/common/random.h"
#include "annx/common/thread_pool.h"
#include "annx/common/topk.h"
#include "annx/index/section_array.h"
#include "annx/io/container.h"
#include "annx/simd/kernels.h"
#include "graph_search.h"
#include "insert_order.h"

namespace annx {
namespace {

constexpr int kMaxLevel = 30;              // level draws are capped (P(level >= 30) ~ M^-30)
constexpr size_t kMaxSlots = 0x7fffffff;   // the pool keeps a flag in the top bit
constexpr size_t kFilterEfFactorCap = 16;  // pool grows at most 16x under filters/tombstones
// Neighbour selection keeps a candidate unless it is closer to an already kept
// neighbour than to the base by a factor alpha (Vamana's relaxed pruning; alpha = 1 is
// HNSW's heuristic). alpha = 1.1 keeps more, longer links: on GloVe-50 with M = 32,
// recall@10 at ef_search = 24 rose from 0.914 to 0.945, on MiniLM-384 at 16 from
// 0.933 to 0.960. Full lists would then be re-pruned on almost every back-link, so a
// full list is pruned down to 3/4 of its capacity (slack for later appends); build
// time rose by about a fifth on GloVe.
constexpr float kPruneAlpha = 1.1f;
constexpr float kPruneTarget = 0.75f;

uint32_t load_acquire(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
uint32_t load_relaxed(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
void store_release(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
void store_relaxed(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

/// Replaces a link list: ids first, then the count (readers load the count with
/// acquire and then only read ids below it; ids of an old, longer list stay valid
/// slots, so a reader racing with a rewrite sees a mix of valid links at worst).
void write_links(uint32_t* l, const uint32_t* ids, size_t n) {
  for (size_t i = 0; i < n; ++i) store_relaxed(l + 1 + i, ids[i]);
  store_release(l, static_cast<uint32_t>(n));
}

bool by_score(const HnswIndex::Candidate& a, const HnswIndex::Candidate& b) {
  return a.score < b.score || (a.score == b.score && a.slot < b.slot);
}

}  // namespace

// The int8 copy of an add's linking phase. Each slot's vector x (F32 codec: the stored
// floats) is centred on the mean c of all slots, x' = x - c, and quantised per row with a
// symmetric scale: x' ~ scale * code, code in [-127, 127]. Inner products of codes are
// exact int32 sums (kernels' dot_i8_gather, VNNI on the avx512_icl level), so
//   <x', y'> ~ scale_x scale_y <code_x, code_y>  within  E = err_x |y'| + |x^| err_y
// (Cauchy-Schwarz on x' = x^ + e_x, err = |e_x|, x^ = scale * code), and
//   l2:     |x - y|^2 = n2_x + n2_y - 2 <x', y'>        (n2 = |x'|^2, exact)
//   ip/cos: <x, y>    = <x', y'> + off_x + off_y         (off = <x', c> + |c|^2 / 2)
// The walks score candidates from the copy (a quarter of the bytes, int8 arithmetic)
// and re-score the final candidate list exactly; the neighbour selection decides a pair
// from the copy when its interval [score - bound, score + bound] lies on one side of the
// rule's threshold, and re-scores it in float otherwise, so it takes the decisions the
// float rule takes (up to float rounding).
// One row per slot: the d codes, padded to 4 bytes, then the row's floats (so a walk
// touches one place per candidate).
struct HnswIndex::Compact {
  enum { kScale, kN2, kNrm, kErr, kOff, kFloats };
  size_t d = 0, dpad = 0, stride = 0;
  std::vector<int8_t> rows;  // nslots x stride
  const int8_t* row(uint32_t s) const { return rows.data() + size_t{s} * stride; }
  const float* f(uint32_t s) const { return reinterpret_cast<const float*>(row(s) + dpad); }
};

struct HnswIndex::Query {
  const float* x = nullptr;     // the float query (normalised for cosine)
  const Compact* c8 = nullptr;  // construction walks: score from the int8 copy
  uint32_t self = 0;            // ... with the inserted slot's own row as the query
  PreparedQuery pq;             // against the traversal codes
  PreparedQuery rq;             // against the refine store
  const simd::KernelTable* K = nullptr;
  // Inserting into a Mobius graph: the kernels give squared L2 and scores are divided
  // by the two squared norms (inv_norm2 non-null: 1 / |y|^2 per slot).
  const float* inv_norm2 = nullptr;
  float q_inv = 0.f;
  void transform(float* dist, const uint32_t* ids, size_t n) const {
    if (inv_norm2)
      for (size_t i = 0; i < n; ++i) dist[i] = mobius_score(dist[i], q_inv, inv_norm2[ids[i]]);
  }
};

struct HnswIndex::Scratch {
  graph::VisitedSet vis;
  graph::Pool pool;
  std::vector<uint32_t> batch;
  std::vector<float> dist;
  std::vector<Candidate> cand, cand2;
  std::vector<uint32_t> nbrs, nbrs2, old, ids;
  const simd::KernelTable* K = nullptr;               // kernels of the running add (pair_score)
  std::vector<float> vbuf, base_buf;                  // decoded vectors (non-F32 codecs)
  std::vector<float> sel, sel_n2, cvec, tile, bdist;  // select_neighbors, reselect
  std::vector<uint32_t> sel_slot, core_ids;
  std::vector<uint8_t> core_flag;
  std::vector<int32_t> idot;    // int8 inner products (c8_ paths)
  std::vector<int8_t> c8rows;   // select_neighbors_c8: a block of candidate rows
  std::vector<uint32_t> kslot;  // select_neighbors_c8: kept slots (two arrays of m)
  const int8_t* pf8 = nullptr;  // walks on the int8 copy: prefetch its rows, not the codes
  uint32_t m = 0;               // neighbours collected into batch
  // Admission of walk results (tombstones, filters); results == nullptr: every node
  // is admissible and the pool holds the results.
  const uint8_t* deleted = nullptr;
  const uint8_t* allow = nullptr;  // bitset over slots
  TopK* results = nullptr;
  TopK res{0};
  std::vector<float> res_s;
  std::vector<idx_t> res_id;
};

namespace {
HnswIndex::Scratch* tls_scratch_ptr();
}

HnswIndex::HnswIndex(int d, Metric metric, CodecKind codec, std::optional<CodecKind> refine,
                     HnswOptions options)
    : Index(d, metric), codec_(codec, d), opt_(options), node_locks_(new std::mutex[kNodeLocks]) {
  ANNX_CHECK(InvalidArgument, opt_.M >= 2 && opt_.M <= 512, "HNSW M must be in [2, 512], got ",
             opt_.M);
  set_ef_construction(opt_.ef_construction);
  if (refine) refine_.emplace(*refine, d);
  code_off_ = sizeof(uint32_t) * (1 + 2 * static_cast<size_t>(opt_.M));
  block_ = (code_off_ + codec_.code_size() + 63) / 64 * 64;
  if (metric == Metric::IP) ip_graph_ = IpGraph::Mobius;
  if (opt_.insert_order == HnswOptions::InsertOrder::LidDesc) opt_.shuffle = false;
}

HnswIndex::~HnswIndex() = default;

void HnswIndex::set_ef_construction(int ef) {
  std::lock_guard wl(writer_mu_);  // never changes under a running add
  ANNX_CHECK(InvalidArgument, ef >= 1 && ef <= (1 << 20),
             "ef_construction must be in [1, 2^20], got ", ef);
  opt_.ef_construction = ef;
}

std::string HnswIndex::spec() const {
  std::string s = "HNSW" + std::to_string(opt_.M);
  if (codec_.kind() != CodecKind::F32) s += std::string(",") + codec_name(codec_.kind());
  if (refine_) s += std::string(",Refine(") + codec_name(refine_->kind()) + ")";
  return s;
}

size_t HnswIndex::memory_bytes_impl() const {
  return level0_.size() + levels_.size() + upper_off_.size() * 4 + upper_.size() * 4 +
         deleted_.size() + refine_codes_.size() + idmap_.size() * sizeof(idx_t) +
         free_slots_.capacity() * 4 + (codec_.sq_min().size() + codec_.sq_scale().size()) * 4 +
         inv_norm2_.capacity() * 4;
}

double HnswIndex::bytes_per_vector_impl() const {
  // Level-0 block, refine row, id, level, upper offset, tombstone flag, and the upper
  // lists' share (measured; the expected (M+1)*4/(M-1) bytes when empty).
  const double upper = nslots() ? 4.0 * static_cast<double>(upper_.size()) / nslots()
                                : 4.0 * (opt_.M + 1) / (opt_.M - 1);
  // Mobius (ip) graphs also keep |x|^2 per slot for adds (after a load: from the first add).
  return static_cast<double>(block_ + (refine_ ? refine_->code_size() : 0) + sizeof(idx_t) + 1 + 4 +
                             1 + (mobius() ? 4 : 0)) +
         upper;
}

size_t HnswIndex::n_deleted() const {
  std::shared_lock lk(mu_);
  return nslots() - idmap_.live();
}

int HnswIndex::max_level() const { return max_level_.load(); }

std::vector<size_t> HnswIndex::level_counts() const {
  std::shared_lock lk(mu_);
  std::vector<size_t> c(static_cast<size_t>(std::max(0, max_level_.load()) + 1), 0);
  for (size_t s = 0; s < nslots(); ++s) {
    const size_t l = level_of(static_cast<uint32_t>(s));
    if (l >= c.size()) c.resize(l + 1, 0);
    ++c[l];
  }
  return c;
}

uint32_t* HnswIndex::links(uint32_t s, int level) const {
  if (level == 0) return reinterpret_cast<uint32_t*>(const_cast<uint8_t*>(block(s)));
  const size_t off = size_t{upper_off_.data()[s]} + size_t(level - 1) * (opt_.M + 1);
  return const_cast<uint32_t*>(upper_.data()) + off;
}

std::vector<idx_t> HnswIndex::neighbors(idx_t id, int level) const {
  std::shared_lock lk(mu_);
  const std::vector<slot_t> s = idmap_.slots_of(&id, 1);
  ANNX_CHECK(InvalidArgument, level >= 0 && level <= level_of(s[0]), "node ", id, " has no level ",
             level, " (its top level is ", level_of(s[0]), ")");
  const uint32_t* l = links(s[0], level);
  std::vector<idx_t> out(load_acquire(l));
  for (size_t i = 0; i < out.size(); ++i) out[i] = idmap_.id(l[1 + i]);
  return out;
}

std::string HnswIndex::check_graph() const {
  std::lock_guard wl(writer_mu_);  // no add half-way through linking
  std::shared_lock lk(mu_);
  return check_graph_locked();
}

std::string HnswIndex::check_graph_locked() const {
  const size_t n = nslots();
  const size_t M = static_cast<size_t>(opt_.M);
  const int64_t entry = entry_.load();
  const int top = max_level_.load();
  if (entry >= static_cast<int64_t>(n)) return "entry point out of range";
  if (entry < 0) {
    // Only tombstones (e.g. the first add was interrupted) or nothing at all.
    if (top != -1) return "no entry point but a top level";
    for (size_t s = 0; s < n; ++s)
      if (!is_deleted(static_cast<uint32_t>(s))) return "live nodes but no entry point";
  } else if (level_of(static_cast<uint32_t>(entry)) != top) {
    return "entry point is not on the top level";
  }
  // Upper-level lists of different nodes must not share words.
  std::vector<std::pair<size_t, size_t>> ranges;
  for (size_t s = 0; s < n; ++s) {
    const int L = level_of(static_cast<uint32_t>(s));
    if (L > 0) ranges.emplace_back(upper_off_.data()[s], size_t(L) * (M + 1));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i - 1].first + ranges[i - 1].second > ranges[i].first)
      return "upper-level lists of two nodes overlap";
  std::vector<uint32_t> tmp;
  for (size_t s = 0; s < n; ++s) {
    const int L = level_of(static_cast<uint32_t>(s));
    // A tombstone never linked (interrupted add) may sit above the top level.
    if (L > kMaxLevel || (L > top && !is_deleted(static_cast<uint32_t>(s))))
      return "node " + std::to_string(s) + " level out of range";
    if (L > 0 && size_t{upper_off_.data()[s]} + size_t(L) * (M + 1) > upper_.size())
      return "node " + std::to_string(s) + " upper lists out of range";
    for (int lev = 0; lev <= L; ++lev) {
      const uint32_t* l = links(static_cast<uint32_t>(s), lev);
      const uint32_t cnt = l[0];
      if (cnt > static_cast<uint32_t>(max_links(lev)))
        return "node " + std::to_string(s) + " has " + std::to_string(cnt) + " links at level " +
               std::to_string(lev);
      tmp.assign(l + 1, l + 1 + cnt);
      for (uint32_t v : tmp) {
        if (v >= n) return "node " + std::to_string(s) + " links to a slot out of range";
        if (v == s) return "node " + std::to_string(s) + " links to itself";
        if (level_of(v) < lev)
          return "node " + std::to_string(s) + " links at level " + std::to_string(lev) +
                 " to a node of level " + std::to_string(level_of(v));
      }
      std::sort(tmp.begin(), tmp.end());
      if (std::adjacent_find(tmp.begin(), tmp.end()) != tmp.end())
        return "node " + std::to_string(s) + " has duplicate links";
    }
  }
  return "";
}

// ------------------------------------------------------------------------- walks

float HnswIndex::score_to(const Query& q, uint32_t s) const {
  if (q.c8) {
    const Compact& c = *q.c8;
    const float* fa = c.f(q.self);
    const float* fs = c.f(s);
    const float ip = fa[Compact::kScale] * fs[Compact::kScale] *
                     static_cast<float>(q.K->dot_i8(c.row(q.self), c.row(s), c.d));
    float v = metric_ == Metric::L2 || mobius()
                  ? std::max(fa[Compact::kN2] + fs[Compact::kN2] - 2.f * ip, 0.f)
                  : -(ip + fa[Compact::kOff] + fs[Compact::kOff]);
    q.transform(&v, &s, 1);
    return v;
  }
  const int kind = static_cast<int>(q.pq.kind);
  float v = q.pq.finish(q.K->one[kind](q.pq.q.data(), code(s), static_cast<size_t>(d_), q.pq.aux));
  q.transform(&v, &s, 1);
  return v;
}

uint32_t HnswIndex::greedy_descent(const Query& q, uint32_t cur, float& cur_score, int from_level,
                                   int to_level, Scratch& sc) const {
  const int kind = static_cast<int>(q.pq.kind);
  const size_t d = static_cast<size_t>(d_);
  const uint8_t* codes = level0_.data() + code_off_;
  for (int lev = from_level; lev >= to_level; --lev) {
    for (bool changed = true; changed;) {
      changed = false;
      const uint32_t* l = links(cur, lev);
      const uint32_t cnt = std::min<uint32_t>(load_acquire(l), max_links(lev));
      if (sc.batch.size() < cnt) sc.batch.resize(cnt), sc.dist.resize(cnt);
      for (uint32_t j = 0; j < cnt; ++j) sc.batch[j] = load_relaxed(l + 1 + j);
      if (q.c8) {
        score_ids(q, sc.batch.data(), cnt, sc.dist.data(), sc);
      } else {
        q.K->gather[kind](q.pq.q.data(), codes, sc.batch.data(), cnt, block_, d, q.pq.aux,
                          sc.dist.data());
        q.pq.finish_all(sc.dist.data(), cnt);
        q.transform(sc.dist.data(), sc.batch.data(), cnt);
      }
      for (uint32_t j = 0; j < cnt; ++j)
        if (sc.dist[j] < cur_score) {
          cur_score = sc.dist[j];
          cur = sc.batch[j];
          changed = true;
        }
    }
  }
  return cur;
}

bool HnswIndex::collect(int level, Scratch& sc) const {
  // Pops the best unexpanded candidate and gathers its unvisited neighbours into
  // sc.batch, prefetching the first lines of each one's code as soon as it is known
  // to be needed: the walk is bound by memory latency, so overlapping the misses of a
  // whole batch is what pays. (Walking several queries in lockstep to overlap their
  // misses was measured: no gain on GloVe-50 or MiniLM-384 with 2 to 4 queries.)
  graph::Pool& pool = sc.pool;
  sc.m = 0;
  if (!pool.has_next()) return false;
  const uint32_t c = pool.next();
  if (pool.has_next()) {
    const auto* nb =
        reinterpret_cast<const uint8_t*>(links(pool.peek() & ~graph::Pool::kExpanded, level));
    prefetch_read(nb);
    prefetch_read(nb + 64);
  }
  const uint32_t maxl = static_cast<uint32_t>(max_links(level));
  if (sc.batch.size() < maxl) sc.batch.resize(maxl), sc.dist.resize(maxl);
  const uint8_t* codes = level0_.data() + code_off_;
  size_t pf_lines = std::min<size_t>((codec_.code_size() + 63) / 64, 8);
  size_t pf_stride = block_;
  if (sc.pf8) {
    codes = reinterpret_cast<const uint8_t*>(sc.pf8);
    pf_stride = c8_->stride;
    pf_lines = std::min<size_t>((pf_stride + 63) / 64, 8);
  }
  const uint32_t* l = links(c, level);
  const uint32_t cnt = std::min(load_acquire(l), maxl);
  uint32_t* batch = sc.batch.data();
  uint32_t m = 0;
  for (uint32_t j = 0; j < cnt; ++j) {
    const uint32_t v = load_relaxed(l + 1 + j);
    if (!sc.vis.test_and_set(v)) {
      batch[m++] = v;
      const uint8_t* p = codes + size_t{v} * pf_stride;
      for (size_t t = 0; t < pf_lines; ++t) prefetch_read(p + 64 * t);
    }
  }
  sc.m = m;
  return true;
}

void HnswIndex::score_batch(const Query& q, Scratch& sc) const {
  const uint32_t m = sc.m;
  if (m == 0) return;
  const int kind = static_cast<int>(q.pq.kind);
  const uint8_t* codes = level0_.data() + code_off_;
  uint32_t* batch = sc.batch.data();
  float* dist = sc.dist.data();
  if (q.c8) {
    score_ids(q, batch, m, dist, sc);
  } else {
    q.K->gather[kind](q.pq.q.data(), codes, batch, m, block_, static_cast<size_t>(d_), q.pq.aux,
                      dist);
    q.pq.finish_all(dist, m);
    q.transform(dist, batch, m);
  }
  graph::Pool& pool = sc.pool;
  if (sc.results) {
    for (uint32_t j = 0; j < m; ++j) {
      const uint32_t v = batch[j];
      if (!sc.deleted[v] && (!sc.allow || (sc.allow[v >> 3] >> (v & 7)) & 1) &&
          dist[j] <= sc.results->threshold())
        sc.results->push(dist[j], v);
      pool.insert(dist[j], v);
    }
  } else {
    for (uint32_t j = 0; j < m; ++j) pool.insert(dist[j], batch[j]);
  }
}

void HnswIndex::score_ids(const Query& q, const uint32_t* ids, size_t n, float* dist,
                          Scratch& sc) const {
  if (n == 0) return;
  const size_t d = static_cast<size_t>(d_);
  if (!q.c8) {
    const int kind = static_cast<int>(q.pq.kind);
    q.K->gather[kind](q.pq.q.data(), level0_.data() + code_off_, ids, n, block_, d, q.pq.aux, dist);
    q.pq.finish_all(dist, n);
    q.transform(dist, ids, n);
    return;
  }
  const Compact& c = *q.c8;
  if (sc.idot.size() < n) sc.idot.resize(n);
  const uint32_t a = q.self;
  q.K->dot_i8_gather(c.row(a), 1, c.rows.data(), ids, n, c.stride, d, sc.idot.data(), n);
  const float* fa = c.f(a);
  if (metric_ == Metric::L2 || mobius()) {
    for (size_t i = 0; i < n; ++i) {
      const float* fv = c.f(ids[i]);
      const float ip = fa[Compact::kScale] * fv[Compact::kScale] * static_cast<float>(sc.idot[i]);
      dist[i] = std::max(fa[Compact::kN2] + fv[Compact::kN2] - 2.f * ip, 0.f);
    }
    q.transform(dist, ids, n);
  } else {
    for (size_t i = 0; i < n; ++i) {
      const float* fv = c.f(ids[i]);
      dist[i] = -(fa[Compact::kScale] * fv[Compact::kScale] * static_cast<float>(sc.idot[i]) +
                  fa[Compact::kOff] + fv[Compact::kOff]);
    }
  }
}

void HnswIndex::walk(const Query& q, int level, Scratch& sc) const {
  while (collect(level, sc)) score_batch(q, sc);
}

bool HnswIndex::begin_walk(const Query& q, size_t ef, size_t want, const uint8_t* allow_bits,
                           size_t n_admissible, Scratch& sc) const {
  sc.results = nullptr;
  const int64_t entry = entry_.load(std::memory_order_acquire);
  if (entry < 0 || n_admissible == 0) return false;
  const size_t n = nslots();
  const bool checking = allow_bits != nullptr || n_admissible < n;
  uint32_t cur = static_cast<uint32_t>(entry);
  float cur_score = score_to(q, cur);
  cur = greedy_descent(q, cur, cur_score, level_of(cur), 1, sc);
  // Under tombstones or a filter, only a fraction s of the walked nodes can be
  // returned: widen the candidate list to about ef / s (capped).
  size_t cap = ef;
  if (checking) {
    const double s = static_cast<double>(n_admissible) / static_cast<double>(n);
    cap = std::min<size_t>(static_cast<size_t>(std::ceil(static_cast<double>(ef) / s)),
                           ef * kFilterEfFactorCap);
  }
  cap = std::max<size_t>(1, std::min(cap, n));
  sc.pool.reset(cap);
  sc.vis.start(n);
  sc.vis.test_and_set(cur);
  sc.pool.insert(cur_score, cur);
  sc.deleted = deleted_.data();
  sc.allow = allow_bits;
  if (checking) {
    sc.res = TopK(std::min(std::max(ef, want), n));
    sc.results = &sc.res;
    if (!sc.deleted[cur] && (!allow_bits || (allow_bits[cur >> 3] >> (cur & 7)) & 1))
      sc.res.push(cur_score, cur);
  }
  return true;
}

void HnswIndex::end_walk(const Query& q, size_t k, size_t want, Scratch& sc,
                         std::vector<Candidate>& out) const {
  out.clear();
  if (sc.results) {
    sc.results = nullptr;
    const size_t m = sc.res.k();
    sc.res_s.resize(m);
    sc.res_id.resize(m);
    sc.res.drain_sorted(sc.res_s.data(), sc.res_id.data());
    for (size_t i = 0; i < m && out.size() < want && sc.res_id[i] >= 0; ++i)
      out.push_back({sc.res_s[i], static_cast<uint32_t>(sc.res_id[i])});
  } else {
    for (size_t i = 0; i < sc.pool.size() && out.size() < want; ++i)
      out.push_back({sc.pool.score(i), sc.pool.slot(i)});
  }
  if (refine_) refine(q, out, k, sc);
}

void HnswIndex::search_one(const Query& q, size_t k, size_t ef, size_t rerank,
                           const uint8_t* allow_bits, size_t n_admissible, Scratch& sc,
                           std::vector<Candidate>& out) const {
  const size_t want = refine_ ? std::max(rerank, k) : k;
  out.clear();
  if (!begin_walk(q, ef, want, allow_bits, n_admissible, sc)) return;
  walk(q, 0, sc);
  end_walk(q, k, want, sc, out);
}

void HnswIndex::refine(const Query& q, std::vector<Candidate>& cand, size_t k, Scratch& sc) const {
  const size_t m = cand.size();
  if (sc.batch.size() < m) sc.batch.resize(m), sc.dist.resize(m);
  for (size_t i = 0; i < m; ++i) sc.batch[i] = cand[i].slot;
  const int kind = static_cast<int>(q.rq.kind);
  q.K->gather[kind](q.rq.q.data(), refine_codes_.data(), sc.batch.data(), m, refine_->code_size(),
                    static_cast<size_t>(d_), q.rq.aux, sc.dist.data());
  q.rq.finish_all(sc.dist.data(), m);
  for (size_t i = 0; i < m; ++i) cand[i].score = sc.dist[i];
  std::sort(cand.begin(), cand.end(), by_score);
  if (cand.size() > k) cand.resize(k);
}

void HnswIndex::exact_over(const Query& q, const std::vector<slot_t>& slots, size_t k,
                           std::vector<Candidate>& out) const {
  constexpr size_t kBlock = 1024;
  float buf[kBlock];
  k = std::min(k, slots.size());
  TopK top(k);
  const PreparedQuery& pq = refine_ ? q.rq : q.pq;
  const int kind = static_cast<int>(pq.kind);
  const uint8_t* base = refine_ ? refine_codes_.data() : level0_.data() + code_off_;
  const size_t stride = refine_ ? refine_->code_size() : block_;
  for (size_t b = 0; b < slots.size(); b += kBlock) {
    const size_t m = std::min(kBlock, slots.size() - b);
    q.K->gather[kind](pq.q.data(), base, slots.data() + b, m, stride, static_cast<size_t>(d_),
                      pq.aux, buf);
    pq.finish_all(buf, m);
    for (size_t i = 0; i < m; ++i)
      if (buf[i] <= top.threshold()) top.push(buf[i], slots[b + i]);
  }
  std::vector<float> s(k);
  std::vector<idx_t> id(k);
  top.drain_sorted(s.data(), id.data());
  out.clear();
  for (size_t i = 0; i < k && id[i] >= 0; ++i) out.push_back({s[i], static_cast<uint32_t>(id[i])});
}

void HnswIndex::search_impl(const float* q, size_t nq, size_t k, const SearchParams& params,
                            const std::vector<slot_t>* allowed, float* D, idx_t* I) const {
  const size_t n = nslots();
  const size_t live = idmap_.live();
  const size_t ef = std::max<size_t>(params.ef_search > 0 ? params.ef_search : kDefaultEf, k);
  const size_t rerank = std::max<size_t>(params.rerank > 0 ? params.rerank : ef, k);
  // Filter: a bitset over slots (allowed holds live slots only).
  std::vector<uint8_t> bits;
  size_t n_adm = live;
  bool exact = false;
  if (allowed) {
    bits.assign((n + 7) / 8, 0);
    for (slot_t s : *allowed) bits[s >> 3] |= static_cast<uint8_t>(1u << (s & 7));
    n_adm = allowed->size();
    // Exact when few pass, or when the walk (about ef / s expansions of 2M links
    // each) would evaluate more vectors than the filter admits.
    const double walk_cost = static_cast<double>(ef) * 2 * opt_.M * static_cast<double>(n) /
                             std::max<double>(1.0, static_cast<double>(n_adm));
    exact = n_adm <= kExactFilterMax || walk_cost >= static_cast<double>(n_adm);
  }
  // A candidate list as large as the index: scan instead (exact, and cheaper).
  if (ef >= n_adm) exact = true;
  std::vector<slot_t> live_slots;  // built on demand for exact scans without a filter
  std::once_flag live_once;
  auto live_list = [&]() -> const std::vector<slot_t>& {
    std::call_once(live_once, [&] {
      for (size_t s = 0; s < n; ++s)
        if (!deleted_.data()[s]) live_slots.push_back(static_cast<slot_t>(s));
    });
    return live_slots;
  };
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(d_);
  parallel_for(
      nq, 4,
      [&](size_t b, size_t e) {
        Scratch& sc = *tls_scratch_ptr();
        std::vector<Candidate> res;
        for (size_t i = b; i < e; ++i) {
          Query qq;
          qq.x = q + i * d;
          qq.K = &K;
          qq.pq = codec_.prepare(qq.x, metric_);
          if (refine_) qq.rq = refine_->prepare(qq.x, metric_);
          if (exact) {
            exact_over(qq, allowed ? *allowed : live_list(), k, res);
          } else {
            search_one(qq, k, ef, rerank, allowed ? bits.data() : nullptr, n_adm, sc, res);
            if (res.size() < std::min(k, n_adm)) {
              // The walk found fewer than k admissible vectors: answer exactly.
              exact_over(qq, allowed ? *allowed : live_list(), k, res);
            }
          }
          for (size_t j = 0; j < k; ++j) {
            D[i * k + j] = j < res.size() ? res[j].score : std::numeric_limits<float>::infinity();
            I[i * k + j] = j < res.size() ? static_cast<idx_t>(res[j].slot) : -1;
          }
        }
      },
      params.threads);
}

void HnswIndex::range_impl(const float* q, size_t nq, float score_radius,
                           const SearchParams& params, const std::vector<slot_t>* allowed,
                           RangeResult& out) const {
  // Search with a growing candidate list until some candidate falls outside the radius
  // (the walk's frontier has left the ball), then keep those inside. Approximate like
  // every graph search; exact once the list would cover the admissible set.
  const size_t n = nslots();
  const size_t ef0 = static_cast<size_t>(params.ef_search > 0 ? params.ef_search : kDefaultEf);
  std::vector<uint8_t> bits;
  size_t n_adm = idmap_.live();
  std::vector<slot_t> live;  // admissible slots when there is no filter
  if (allowed) {
    bits.assign((n + 7) / 8, 0);
    for (slot_t s : *allowed) bits[s >> 3] |= static_cast<uint8_t>(1u << (s & 7));
    n_adm = allowed->size();
  } else {
    for (size_t s = 0; s < n; ++s)
      if (!deleted_.data()[s]) live.push_back(static_cast<slot_t>(s));
  }
  const std::vector<slot_t>& adm = allowed ? *allowed : live;
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(d_);
  std::vector<std::vector<Candidate>> per(nq);
  parallel_for(
      nq, 1,
      [&](size_t b, size_t e) {
        Scratch& sc = *tls_scratch_ptr();
        for (size_t i = b; i < e; ++i) {
          Query qq;
          qq.x = q + i * d;
          qq.K = &K;
          qq.pq = codec_.prepare(qq.x, metric_);
          if (refine_) qq.rq = refine_->prepare(qq.x, metric_);
          std::vector<Candidate>& res = per[i];
          for (size_t L = std::max<size_t>(ef0, 16);; L *= 4) {
            const bool exact = L >= n_adm || (allowed && n_adm <= kExactFilterMax);
            if (exact) {
              exact_over(qq, adm, n_adm, res);
            } else {
              search_one(qq, L, L, L, allowed ? bits.data() : nullptr, n_adm, sc, res);
            }
            const size_t inside =
                static_cast<size_t>(std::count_if(res.begin(), res.end(), [&](const Candidate& c) {
                  return c.score < score_radius;
                }));
            if (exact || inside < res.size() || res.size() < L) {
              res.erase(
                  std::remove_if(res.begin(), res.end(),
                                 [&](const Candidate& c) { return !(c.score < score_radius); }),
                  res.end());
              break;
            }
          }
        }
      },
      params.threads);
  out = RangeResult::concat(per, [](const Candidate& c) {
    return std::pair<float, idx_t>(c.score, static_cast<idx_t>(c.slot));
  });
}

void HnswIndex::reconstruct_impl(const slot_t* slots, size_t n, float* out) const {
  const size_t d = static_cast<size_t>(d_);
  for (size_t i = 0; i < n; ++i) {
    if (refine_) {
      refine_->decode(refine_codes_.data() + size_t{slots[i]} * refine_->code_size(), 1,
                      out + i * d);
    } else {
      codec_.decode(code(slots[i]), 1, out + i * d);
    }
  }
}

// ------------------------------------------------------------------ construction

int HnswIndex::draw_level(uint64_t counter) const {
  const uint64_t z = splitmix64(splitmix64(opt_.seed) ^ counter);
  const double u = static_cast<double>((z >> 11) + 1) * 0x1.0p-53;  // (0, 1]
  const double l = -std::log(u) / std::log(static_cast<double>(opt_.M));
  return std::min(kMaxLevel, static_cast<int>(l));
}

const float* HnswIndex::vector_of(uint32_t s, float* buf) const {
  if (codec_.kind() == CodecKind::F32) return reinterpret_cast<const float*>(code(s));
  codec_.decode(code(s), 1, buf);
  return buf;
}

float HnswIndex::pair_score(const float* a, uint32_t sa, const float* b, uint32_t sb,
                            const Scratch& sc) const {
  const auto& K = *sc.K;
  const size_t d = static_cast<size_t>(d_);
  if (metric_ == Metric::L2 || mobius()) {
    const float l2 = K.one[static_cast<int>(simd::DistKind::L2_F32)](a, b, d, nullptr);
    return mobius() ? mobius_score(l2, inv_norm2_[sa], inv_norm2_[sb]) : l2;
  }
  return -K.one[static_cast<int>(simd::DistKind::IP_F32)](a, b, d, nullptr);
}

float HnswIndex::mobius_score(float l2, float inv_a, float inv_b) {
  // Multiplications only (a double division per candidate cost 3-4 % of a d = 50 build);
  // the inverses are finite (see inv_norm_of), so a product overflows to +inf at worst
  // (never 0 * inf), clamped to the largest float.
  return std::min(std::max(l2, 0.f) * inv_a * inv_b, std::numeric_limits<float>::max());
}

float HnswIndex::inv_norm_of(float n2) {
  // A zero vector (mapped to infinity) is scored as if |x|^2 were FLT_MIN: far from all.
  return static_cast<float>(1.0 / std::max<double>(n2, std::numeric_limits<float>::min()));
}

void HnswIndex::update_norms(const uint32_t* slots, size_t n, size_t old) {
  // |x|^2 of stored vectors (decoded, as the construction scores them). The array is
  // not saved: after a load (or any gap) it is recomputed for every slot. The caller
  // holds the exclusive lock.
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(d_);
  std::vector<float> buf(d);
  const auto one = [&](uint32_t s) {
    const float* v = vector_of(s, buf.data());
    inv_norm2_[s] = inv_norm_of(K.one[static_cast<int>(simd::DistKind::IP_F32)](v, v, d, nullptr));
  };
  const bool complete = inv_norm2_.size() == old;
  inv_norm2_.resize(nslots());
  if (complete) {
    for (size_t i = 0; i < n; ++i) one(slots[i]);
  } else {
    for (size_t s = 0; s < nslots(); ++s) one(static_cast<uint32_t>(s));
  }
}

void HnswIndex::select_neighbors(const std::vector<Candidate>& cand, size_t m, Scratch& sc,
                                 std::vector<uint32_t>& out, float alpha, const float* center,
                                 const uint8_t* core) const {
  // The paper's heuristic (Algorithm 4, no extension, no kept-pruned), relaxed by
  // `alpha`: scan candidates by increasing score to the base and keep one unless
  // alpha times its distance to an already kept neighbour is below its distance to
  // the base. `cand` must be sorted by score to the base.
  //
  // The pair distances are computed in tiles (kernels' dot_f32_tile) rather than one
  // pair at a time: candidates are copied (decoded) in blocks of kB rows and the kept
  // neighbours into contiguous arrays, and each block is scored against kC kept
  // neighbours at a time, dropping rejected candidates between chunks (most of the
  // early exit of the pairwise scan survives). Squared L2 comes from
  // |a|^2 + |b|^2 - 2 <a, b> on rows translated by `center` (a vector near the base,
  // so the expansion does not cancel on offset data); the decision is the same rule.
  //
  // core[i] (optional) flags candidates that were kept by an earlier run of this rule
  // for the same base (the pruned prefix of its list): whether one rejects another
  // depends only on the two vectors and the base, so a flagged candidate was already
  // checked against every flagged one closer to the base, and is now checked only
  // against the kept neighbours that are not flagged. Re-pruning a full list (a link
  // to a new node) mostly rescans its old prefix, so this skips most of its pairs.
  if (c8_) {
    select_neighbors_c8(cand, m, sc, out, alpha, core);
    return;
  }
  const size_t d = static_cast<size_t>(d_);
  const auto& K = *sc.K;
  const bool l2 = metric_ == Metric::L2 || mobius();
  const bool plain = alpha == 1.f || (metric_ == Metric::IP && !mobius());
  const float a2 = alpha * alpha;
  constexpr size_t kB = 4, kC = 12;
  out.clear();
  if (m == 0 || cand.empty()) return;
  // Kept rows: [0] flagged ("core"), [1] not; each with squared norms and slots.
  float* rows[2];
  float* rn2[2];
  uint32_t* rslot[2];
  size_t nk[2] = {0, 0};
  sc.sel.resize(2 * m * d);
  sc.sel_n2.resize(2 * m);
  sc.sel_slot.resize(2 * m);
  for (int a = 0; a < 2; ++a) {
    rows[a] = sc.sel.data() + a * m * d;
    rn2[a] = sc.sel_n2.data() + a * m;
    rslot[a] = sc.sel_slot.data() + a * m;
  }
  sc.cvec.resize(kB * d);
  sc.tile.resize(kB * kC);
  const auto ipf = K.one[static_cast<int>(simd::DistKind::IP_F32)];
  float cn2[kB];  // squared norms of the block's (translated) rows, for l2
  bool is_core[kB], alive[kB];
  for (size_t b = 0; b < cand.size() && out.size() < m; b += kB) {
    const size_t nb = std::min(kB, cand.size() - b);
    for (size_t i = 0; i < nb; ++i) {
      float* row = sc.cvec.data() + i * d;
      const uint32_t slot = cand[b + i].slot;
      if (codec_.kind() == CodecKind::F32) {
        std::memcpy(row, code(slot), d * sizeof(float));
      } else {
        codec_.decode(code(slot), 1, row);
      }
      if (l2) {
        if (center)
          for (size_t t = 0; t < d; ++t) row[t] -= center[t];
        cn2[i] = ipf(row, row, d, nullptr);
      }
      is_core[i] = core != nullptr && core[b + i] != 0;
      alive[i] = true;
    }
    const auto score_of = [&](size_t i, int a, size_t j, float dot) {
      // Pair score of candidate i of the block and kept row j of array a, as pair_score.
      if (!l2) return -dot;
      const float l2d = std::max(cn2[i] + rn2[a][j] - 2.f * dot, 0.f);
      return mobius() ? mobius_score(l2d, inv_norm2_[cand[b + i].slot], inv_norm2_[rslot[a][j]])
                      : l2d;
    };
    // alpha applies to Euclidean distances: squared L2 for "l2" (and the Mobius graph),
    // and 2 - 2 cos for unit vectors ("cos"); inner products over arbitrary norms keep
    // alpha = 1.
    const auto reject = [&](float ps, float cscore) {
      if (plain) return ps < cscore;
      if (l2) return a2 * ps < cscore;
      return a2 * (2.f + 2.f * ps) < 2.f + 2.f * cscore;
    };
    // The block against the rows kept before it: unflagged ones for every candidate,
    // flagged ones for unflagged candidates only.
    const size_t nk0[2] = {nk[0], nk[1]};
    for (int a : {1, 0}) {
      const auto todo = [&](size_t i) { return alive[i] && !(a == 0 && is_core[i]); };
      for (size_t k0 = 0; k0 < nk0[a]; k0 += kC) {
        size_t n_todo = 0;
        for (size_t i = 0; i < nb; ++i) n_todo += todo(i);
        if (n_todo == 0) break;
        const size_t nc = std::min(kC, nk0[a] - k0);
        const float* kept = rows[a] + k0 * d;
        if (n_todo == nb) {
          K.dot_f32_tile(sc.cvec.data(), nb, kept, nc, d, sc.tile.data(), kC);
        } else {  // rows of rejected (or exempt) candidates are not scored
          for (size_t i = 0; i < nb; ++i)
            if (todo(i))
              K.dot_f32_tile(sc.cvec.data() + i * d, 1, kept, nc, d, sc.tile.data() + i * kC, kC);
        }
        for (size_t i = 0; i < nb; ++i) {
          if (!todo(i)) continue;
          for (size_t j = 0; j < nc; ++j)
            if (reject(score_of(i, a, k0 + j, sc.tile[i * kC + j]), cand[b + i].score)) {
              alive[i] = false;
              break;
            }
        }
      }
    }
    // In order: against the neighbours kept from this block, then keep.
    for (size_t i = 0; i < nb && out.size() < m; ++i) {
      if (!alive[i]) continue;
      const float* row = sc.cvec.data() + i * d;
      bool keep = true;
      for (int a = 0; a < 2 && keep; ++a) {
        if (a == 0 && is_core[i]) continue;
        for (size_t j = nk0[a]; j < nk[a] && keep; ++j)
          if (reject(score_of(i, a, j, ipf(row, rows[a] + j * d, d, nullptr)), cand[b + i].score))
            keep = false;
      }
      if (!keep) continue;
      const int a = is_core[i] ? 0 : 1;
      const size_t j = nk[a]++;
      std::memcpy(rows[a] + j * d, row, d * sizeof(float));
      rn2[a][j] = l2 ? cn2[i] : 0.f;
      rslot[a][j] = cand[b + i].slot;
      out.push_back(cand[b + i].slot);
    }
  }
}

void HnswIndex::select_neighbors_c8(const std::vector<Candidate>& cand, size_t m, Scratch& sc,
                                    std::vector<uint32_t>& out, float alpha,
                                    const uint8_t* core) const {
  // The rule and the order of select_neighbors (blocks of kB candidates against chunks
  // of kC kept neighbours, core pairs skipped), with pair scores from the int8 copy.
  // Every rule there is "reject when the pair score is below a threshold t of the
  // candidate": a pair is decided from its interval [s - h, s + h] when t lies outside
  // it, and re-scored in float (the rule itself) otherwise.
  const Compact& c = *c8_;
  const size_t d = static_cast<size_t>(d_);
  const auto& K = *sc.K;
  const bool l2 = metric_ == Metric::L2 || mobius();
  const bool plain = alpha == 1.f || (metric_ == Metric::IP && !mobius());
  const float a2 = alpha * alpha;
  constexpr size_t kB = 4, kC = 16;
  out.clear();
  if (m == 0 || cand.empty()) return;
  // Kept neighbours, two arrays ([0] flagged "core", [1] not) of slots and their floats:
  // scale, |x'|^2 (l2) or off (ip), |x'|, quantisation error, Mobius 1 / |x|^2 (else 1).
  enum { kS, kV, kNrm, kErr, kInv, kMeta };
  sc.kslot.resize(2 * m);
  sc.sel.resize(2 * m * kMeta);
  uint32_t* kslot[2] = {sc.kslot.data(), sc.kslot.data() + m};
  float* kmeta[2] = {sc.sel.data(), sc.sel.data() + m * kMeta};
  size_t nk[2] = {0, 0};
  sc.c8rows.resize(kB * d);
  sc.idot.resize(std::max<size_t>(sc.idot.size(), kB * kC));
  const auto reject = [&](float ps, float cscore) {
    if (plain) return ps < cscore;
    if (l2) return a2 * ps < cscore;
    return a2 * (2.f + 2.f * ps) < 2.f + 2.f * cscore;
  };
  const auto meta = [&](uint32_t v, float* out_meta) {
    const float* f = c.f(v);
    out_meta[kS] = f[Compact::kScale];
    out_meta[kV] = l2 ? f[Compact::kN2] : f[Compact::kOff];
    out_meta[kNrm] = f[Compact::kNrm];
    out_meta[kErr] = f[Compact::kErr];
    out_meta[kInv] = mobius() ? inv_norm2_[v] : 1.f;
  };
  float um[kB][kMeta], thr[kB];
  bool is_core[kB], alive[kB];
  size_t b = 0;
  // Whether kept neighbour j of array a rejects candidate i of the block, given the int8
  // inner product of their rows.
  const auto rejects = [&](size_t i, int a, size_t j, int32_t idot) {
    const float* u = um[i];
    const float* k = kmeta[a] + j * kMeta;
    const float ip = u[kS] * k[kS] * static_cast<float>(idot);
    // Cauchy-Schwarz bound of the quantisation error, plus float rounding.
    const float e = u[kErr] * k[kNrm] + (u[kNrm] + u[kErr]) * k[kErr] +
                    1e-5f * (std::abs(u[kV]) + std::abs(k[kV]));
    float sv, h;
    if (l2) {
      const float w = u[kInv] * k[kInv];
      sv = (u[kV] + k[kV] - 2.f * ip) * w;
      h = 2.f * e * w;
    } else {
      sv = -(ip + u[kV] + k[kV]);
      h = e;
    }
    if (sv + h < thr[i]) return true;
    if (sv - h >= thr[i]) return false;
    // Undecided (or NaN): the float rule.
    const uint32_t us = cand[b + i].slot, ks = kslot[a][j];
    return reject(pair_score(reinterpret_cast<const float*>(code(us)), us,
                             reinterpret_cast<const float*>(code(ks)), ks, sc),
                  cand[b + i].score);
  };
  for (; b < cand.size() && out.size() < m; b += kB) {
    const size_t nb = std::min(kB, cand.size() - b);
    for (size_t i = 0; i < nb; ++i) {
      const uint32_t u = cand[b + i].slot;
      std::memcpy(sc.c8rows.data() + i * d, c.row(u), d);
      meta(u, um[i]);
      const float cs = cand[b + i].score;
      // reject(score, cs) <=> score < thr (up to rounding, which the slack covers).
      thr[i] = plain ? cs : l2 ? cs / a2 : (1.f + cs) / a2 - 1.f;
      is_core[i] = core != nullptr && core[b + i] != 0;
      alive[i] = true;
    }
    // The block against the rows kept before it: unflagged ones for every candidate,
    // flagged ones for unflagged candidates only.
    const size_t nk0[2] = {nk[0], nk[1]};
    for (int a : {1, 0}) {
      const auto todo = [&](size_t i) { return alive[i] && !(a == 0 && is_core[i]); };
      for (size_t k0 = 0; k0 < nk0[a]; k0 += kC) {
        size_t n_todo = 0;
        for (size_t i = 0; i < nb; ++i) n_todo += todo(i);
        if (n_todo == 0) break;
        const size_t nc = std::min(kC, nk0[a] - k0);
        const uint32_t* kept = kslot[a] + k0;
        if (n_todo == nb) {
          K.dot_i8_gather(sc.c8rows.data(), nb, c.rows.data(), kept, nc, c.stride, d,
                          sc.idot.data(), kC);
        } else {  // rows of rejected (or exempt) candidates are not scored
          for (size_t i = 0; i < nb; ++i)
            if (todo(i))
              K.dot_i8_gather(sc.c8rows.data() + i * d, 1, c.rows.data(), kept, nc, c.stride, d,
                              sc.idot.data() + i * kC, kC);
        }
        for (size_t i = 0; i < nb; ++i) {
          if (!todo(i)) continue;
          for (size_t j = 0; j < nc; ++j)
            if (rejects(i, a, k0 + j, sc.idot[i * kC + j])) {
              alive[i] = false;
              break;
            }
        }
      }
    }
    // In order: against the neighbours kept from this block, then keep.
    for (size_t i = 0; i < nb && out.size() < m; ++i) {
      if (!alive[i]) continue;
      bool keep = true;
      for (int a = 0; a < 2 && keep; ++a) {
        if (a == 0 && is_core[i]) continue;
        const size_t nn = nk[a] - nk0[a];
        if (nn == 0) continue;
        int32_t dots[kB];
        K.dot_i8_gather(sc.c8rows.data() + i * d, 1, c.rows.data(), kslot[a] + nk0[a], nn, c.stride,
                        d, dots, nn);
        for (size_t j = 0; j < nn && keep; ++j)
          if (rejects(i, a, nk0[a] + j, dots[j])) keep = false;
      }
      if (!keep) continue;
      const int a = is_core[i] ? 0 : 1;
      const size_t j = nk[a]++;
      kslot[a][j] = cand[b + i].slot;
      std::memcpy(kmeta[a] + j * kMeta, um[i], sizeof(um[i]));
      out.push_back(cand[b + i].slot);
    }
  }
}

void HnswIndex::build_compact(int threads) {
  // See Compact. Built under the shared lock before the linking starts; read-only after.
  const size_t n = nslots(), d = static_cast<size_t>(d_);
  auto c = std::make_unique<Compact>();
  c->d = d;
  c->dpad = (d + 3) / 4 * 4;
  c->stride = (c->dpad + Compact::kFloats * sizeof(float) + 15) / 16 * 16;
  c->rows.assign(n * c->stride, 0);
  std::vector<double> mean(d, 0.0);
  for (size_t s = 0; s < n; ++s) {
    const float* x = reinterpret_cast<const float*>(code(static_cast<uint32_t>(s)));
    for (size_t t = 0; t < d; ++t) mean[t] += x[t];
  }
  std::vector<float> center(d);
  double cc = 0;
  for (size_t t = 0; t < d; ++t) {
    center[t] = static_cast<float>(mean[t] / static_cast<double>(std::max<size_t>(n, 1)));
    cc += double{center[t]} * center[t];
  }
  parallel_for(
      n, 256,
      [&](size_t b, size_t e) {
        std::vector<float> xc(d);
        for (size_t s = b; s < e; ++s) {
          const float* x = reinterpret_cast<const float*>(code(static_cast<uint32_t>(s)));
          float amax = 0.f;
          double n2 = 0, off = 0;
          for (size_t t = 0; t < d; ++t) {
            xc[t] = x[t] - center[t];
            amax = std::max(amax, std::abs(xc[t]));
            n2 += double{xc[t]} * xc[t];
            off += double{xc[t]} * center[t];
          }
          const float scale = amax > 0.f && std::isfinite(amax) ? amax / 127.f : 1.f;
          const float inv = 1.f / scale;
          int8_t* q = c->rows.data() + s * c->stride;
          float* fs = reinterpret_cast<float*>(q + c->dpad);
          double e2 = 0;
          for (size_t t = 0; t < d; ++t) {
            const float v = std::min(std::max(std::nearbyint(xc[t] * inv), -127.f), 127.f);
            q[t] = static_cast<int8_t>(v);
            const double r = double{xc[t]} - double{scale} * v;
            e2 += r * r;
          }
          fs[Compact::kScale] = scale;
          fs[Compact::kN2] = static_cast<float>(n2);
          fs[Compact::kNrm] = static_cast<float>(std::sqrt(n2));
          // Slightly inflated: the bound must hold through the float products.
          fs[Compact::kErr] = static_cast<float>(std::sqrt(e2) * (1 + 1e-6) + 1e-30);
          fs[Compact::kOff] = static_cast<float>(off + cc / 2);
        }
      },
      threads);
  c8_ = std::move(c);
}

void HnswIndex::link_back(uint32_t e, uint32_t s, int level, Scratch& sc) {
  std::lock_guard lk(node_lock(e));
  uint32_t* l = links(e, level);
  const uint32_t cnt = l[0];
  const uint32_t maxl = static_cast<uint32_t>(max_links(level));
  for (uint32_t j = 0; j < cnt; ++j)
    if (l[1 + j] == s) return;
  if (cnt < maxl) {
    store_relaxed(l + 1 + cnt, s);
    store_release(l, cnt + 1);
    return;
  }
  // Full: re-select among the current links and the new node (tombstones dropped),
  // down to kPruneTarget of the capacity.
  sc.base_buf.resize(static_cast<size_t>(d_));
  const float* base = vector_of(e, sc.base_buf.data());
  sc.ids.clear();
  for (uint32_t j = 0; j < cnt; ++j)
    if (!is_deleted(l[1 + j])) sc.ids.push_back(l[1 + j]);
  sc.ids.push_back(s);
  sc.core_ids.clear();
  if (level == 0 && e < core0_.size())
    sc.core_ids.assign(l + 1, l + 1 + std::min<uint32_t>(core0_[e], cnt));
  std::sort(sc.core_ids.begin(), sc.core_ids.end());
  const size_t target =
      std::max<size_t>(1, static_cast<size_t>(static_cast<float>(maxl) * kPruneTarget));
  reselect(base, e, target, sc, l, level);
}

void HnswIndex::reselect(const float* base, uint32_t bs, size_t m, Scratch& sc, uint32_t* l,
                         int level) {
  const size_t d = static_cast<size_t>(d_);
  sc.cand2.clear();
  if (codec_.kind() == CodecKind::F32) {
    // One gather over the level-0 blocks (prefetched, SIMD) instead of a call per pair.
    const size_t n = sc.ids.size();
    sc.bdist.resize(n);
    const bool l2 = metric_ == Metric::L2 || mobius();
    const auto kind = static_cast<int>(l2 ? simd::DistKind::L2_F32 : simd::DistKind::IP_F32);
    sc.K->gather[kind](base, level0_.data() + code_off_, sc.ids.data(), n, block_, d, nullptr,
                       sc.bdist.data());
    for (size_t i = 0; i < n; ++i) {
      const uint32_t v = sc.ids[i];
      const float x = sc.bdist[i];
      sc.cand2.push_back(
          {l2 ? (mobius() ? mobius_score(x, inv_norm2_[bs], inv_norm2_[v]) : x) : -x, v});
    }
  } else {
    sc.vbuf.resize(d);
    for (uint32_t v : sc.ids)
      sc.cand2.push_back({pair_score(base, bs, vector_of(v, sc.vbuf.data()), v, sc), v});
  }
  std::sort(sc.cand2.begin(), sc.cand2.end(), by_score);
  const uint8_t* core = nullptr;
  if (!sc.core_ids.empty()) {
    sc.core_flag.resize(sc.cand2.size());
    for (size_t i = 0; i < sc.cand2.size(); ++i)
      sc.core_flag[i] =
          std::binary_search(sc.core_ids.begin(), sc.core_ids.end(), sc.cand2[i].slot) ? 1 : 0;
    core = sc.core_flag.data();
  }
  select_neighbors(sc.cand2, m, sc, sc.nbrs2, kPruneAlpha, base, core);
  write_links(l, sc.nbrs2.data(), sc.nbrs2.size());
  if (level == 0 && bs < core0_.size()) core0_[bs] = static_cast<uint16_t>(sc.nbrs2.size());
}

void HnswIndex::repair_around(uint32_t s, Scratch& sc) {
  // Slot s held a removed vector and is about to hold a new one. Each neighbour that
  // linked to the old vector re-selects its links among its other links and the old
  // vector's links, so the region stays connected without it.
  const size_t d = static_cast<size_t>(d_);
  for (int lev = level_of(s); lev >= 0; --lev) {
    {
      // s is a tombstone, but a neighbour's concurrent link_back may still be re-selecting
      // its list: copy it under s's node lock.
      std::lock_guard lk(node_lock(s));
      const uint32_t* ls = links(s, lev);
      sc.old.assign(ls + 1, ls + 1 + load_acquire(ls));
    }
    for (uint32_t nb : sc.old) {
      if (nb == s || is_deleted(nb)) continue;
      std::lock_guard lk(node_lock(nb));
      uint32_t* l = links(nb, lev);
      const uint32_t cnt = l[0];
      if (std::find(l + 1, l + 1 + cnt, s) == l + 1 + cnt) continue;
      sc.base_buf.resize(d);
      const float* base = vector_of(nb, sc.base_buf.data());
      sc.nbrs.assign(l + 1, l + 1 + cnt);
      sc.nbrs.insert(sc.nbrs.end(), sc.old.begin(), sc.old.end());
      std::sort(sc.nbrs.begin(), sc.nbrs.end());
      sc.nbrs.erase(std::unique(sc.nbrs.begin(), sc.nbrs.end()), sc.nbrs.end());
      sc.ids.clear();
      for (uint32_t v : sc.nbrs)
        if (v != s && v != nb && !is_deleted(v) && level_of(v) >= lev) sc.ids.push_back(v);
      sc.core_ids.clear();
      reselect(base, nb, static_cast<size_t>(max_links(lev)), sc, l, lev);
    }
  }
}

void HnswIndex::insert(uint32_t s, const float* x, Scratch& sc, bool reused) {
  Query q;
  q.x = x;
  q.K = &simd::kernels();
  q.pq = codec_.prepare(x, mobius() ? Metric::L2 : metric_);
  if (mobius()) {
    q.inv_norm2 = inv_norm2_.data();
    q.q_inv = inv_norm2_[s];
  }
  if (c8_) {
    q.c8 = c8_.get();
    q.self = s;
  }
  sc.pf8 = q.c8 ? c8_->rows.data() : nullptr;
  struct PfReset {
    Scratch& sc;
    ~PfReset() { sc.pf8 = nullptr; }
  } pf_reset{sc};
  const int L = level_of(s);
  std::unique_lock glk(entry_mu_);
  const int64_t ep = entry_.load();
  const int top = max_level_.load();
  if (ep < 0) {
    max_level_.store(L);
    entry_.store(s, std::memory_order_release);
    return;
  }
  if (L <= top) glk.unlock();  // a new top level keeps the lock for the whole insert
  uint32_t cur = static_cast<uint32_t>(ep);
  float cur_score = score_to(q, cur);
  const int ep_level = level_of(cur);
  if (ep_level > L) cur = greedy_descent(q, cur, cur_score, ep_level, L + 1, sc);
  const size_t n = nslots();
  for (int lev = std::min(L, ep_level); lev >= 0; --lev) {
    sc.pool.reset(static_cast<size_t>(opt_.ef_construction));
    sc.vis.start(n);
    sc.vis.test_and_set(s);
    sc.pool.insert(cur_score, cur);
    sc.vis.test_and_set(cur);
    sc.results = nullptr;
    walk(q, lev, sc);
    sc.cand.clear();
    for (size_t i = 0; i < sc.pool.size(); ++i) {
      const uint32_t v = sc.pool.slot(i);
      if (v != s && !is_deleted(v)) sc.cand.push_back({sc.pool.score(i), v});
    }
    if (sc.cand.empty())  // only tombstones around: link to them rather than to nothing
      for (size_t i = 0; i < sc.pool.size(); ++i)
        if (sc.pool.slot(i) != s) sc.cand.push_back({sc.pool.score(i), sc.pool.slot(i)});
    if (q.c8 && !sc.cand.empty()) {
      // The walk scored the int8 copy: the selection gets exact scores, in exact order.
      const size_t nc = sc.cand.size();
      if (sc.batch.size() < nc) sc.batch.resize(nc), sc.dist.resize(nc);
      for (size_t i = 0; i < nc; ++i) sc.batch[i] = sc.cand[i].slot;
      q.c8 = nullptr;
      score_ids(q, sc.batch.data(), nc, sc.dist.data(), sc);
      q.c8 = c8_.get();
      for (size_t i = 0; i < nc; ++i) sc.cand[i].score = sc.dist[i];
      std::sort(sc.cand.begin(), sc.cand.end(), by_score);
    }
    // Level 0 selects up to 2M links for the new node (as faiss does; hnswlib selects
    // M): measured +1.2 to +2 points of recall at equal ef_search on GloVe-50.
    select_neighbors(sc.cand, static_cast<size_t>(max_links(lev)), sc, sc.nbrs, kPruneAlpha, x);
    {
      // Other threads may have linked to a new s already (they reached it from a
      // level above): keep those links, re-selecting only when the union does not
      // fit. A reused slot's old links are stale and are replaced.
      std::lock_guard lk(node_lock(s));
      uint32_t* l = links(s, lev);
      const uint32_t cnt = reused ? 0 : l[0];
      size_t extra = 0;
      for (uint32_t j = 0; j < cnt; ++j)
        if (std::find(sc.nbrs.begin(), sc.nbrs.end(), l[1 + j]) == sc.nbrs.end()) ++extra;
      if (lev == 0 && s < core0_.size()) core0_[s] = static_cast<uint16_t>(sc.nbrs.size());
      if (extra == 0) {
        write_links(l, sc.nbrs.data(), sc.nbrs.size());
      } else if (sc.nbrs.size() + extra <= static_cast<size_t>(max_links(lev))) {
        for (uint32_t j = 0; j < cnt; ++j)
          if (std::find(sc.nbrs.begin(), sc.nbrs.end(), l[1 + j]) == sc.nbrs.end())
            sc.nbrs.push_back(l[1 + j]);
        write_links(l, sc.nbrs.data(), sc.nbrs.size());
      } else {
        sc.ids = sc.nbrs;
        for (uint32_t j = 0; j < cnt; ++j) {
          const uint32_t v = l[1 + j];
          if (std::find(sc.nbrs.begin(), sc.nbrs.end(), v) == sc.nbrs.end() && !is_deleted(v))
            sc.ids.push_back(v);
        }
        sc.core_ids.clear();
        reselect(x, s, static_cast<size_t>(max_links(lev)), sc, l, lev);
        sc.nbrs = sc.nbrs2;
      }
    }
    const std::vector<uint32_t> mine = sc.nbrs;
    for (uint32_t e : mine) link_back(e, s, lev, sc);
    for (size_t i = 0; i < sc.pool.size(); ++i)
      if (sc.pool.slot(i) != s) {
        cur = sc.pool.slot(i);
        cur_score = sc.pool.score(i);
        break;
      }
  }
  if (L > top) {
    max_level_.store(L);
    entry_.store(s, std::memory_order_release);
  }
}

void HnswIndex::ensure_owned() {
  level0_.mut();
  levels_.mut();
  upper_off_.mut();
  upper_.mut();
  deleted_.mut();
  refine_codes_.mut();
}

void HnswIndex::train_impl(const float* x, size_t n, ProgressCounter& progress) {
  // New SQ8 ranges would silently change the meaning of the codes already stored.
  ANNX_CHECK(InvalidArgument, !codec_.needs_training() || idmap_.size() == 0, "index '", spec(),
             "' already holds vectors; training again would invalidate their codes "
             "(create a new index)");
  VectorCodec codec(codec_.kind(), d_);
  codec.train(x, n);
  std::optional<VectorCodec> refine;
  if (refine_) {
    refine.emplace(refine_->kind(), d_);
    refine->train(x, n);
  }
  progress.finish();
  std::unique_lock lk(mu_);
  codec_ = std::move(codec);
  if (refine) refine_ = std::move(refine);
}

void HnswIndex::add_impl(const float*, size_t) {
  throw Error("HnswIndex::add_impl is not used (add_prepared overrides it)");
}

void HnswIndex::remove_slot_impl(slot_t) {
  throw Error("HnswIndex::remove_slot_impl is not used (remove_slots overrides it)");
}

void HnswIndex::remove_slots(std::vector<slot_t>& slots) {
  auto& del = deleted_.mut();
  for (slot_t s : slots) {
    del[s] = 1;
    idmap_.erase_slot(s);
    free_slots_.push_back(s);
  }
  sort_free_slots();
}

void HnswIndex::sort_free_slots() {
  // Descending, so pop_back() reuses the lowest free slot: the order depends only on
  // which slots are free, so a loaded copy evolves exactly like the original.
  std::sort(free_slots_.begin(), free_slots_.end(), std::greater<uint32_t>());
}

void HnswIndex::add_prepared(const float* x, size_t n, const idx_t* ids, int threads) {
  const size_t d = static_cast<size_t>(d_);
  // insert_order="lid_desc": permute the batch (rows and their ids) by decreasing local
  // intrinsic dimensionality; slots and insertion then follow that order (no shuffle).
  std::vector<float> x_ordered;
  std::vector<idx_t> ids_ordered;
  if (opt_.insert_order == HnswOptions::InsertOrder::LidDesc && n > 1 && is_trained()) {
    const std::vector<uint32_t> perm =
        graph::lid_desc_order(x, n, d, mobius(), opt_.seed ^ n_batches_, threads);
    x_ordered.resize(n * d);
    ids_ordered.resize(n);
    const idx_t first = idmap_.next_id();
    for (size_t i = 0; i < n; ++i) {
      std::memcpy(x_ordered.data() + i * d, x + size_t{perm[i]} * d, d * sizeof(float));
      ids_ordered[i] = ids ? ids[perm[i]] : first + static_cast<idx_t>(perm[i]);
    }
    x = x_ordered.data();
    ids = ids_ordered.data();
  }
  std::vector<uint32_t> slots(n);
  size_t n_reused = 0;
  // writer_mu_ is held, so no train() can change the codecs: encode before locking
  // out searches. A value the codec cannot store raises before anything changes.
  ANNX_CHECK(NotTrained, is_trained(), "index '", spec(),
             "' must be trained before add: call train(x) first");
  if (n == 0) return;
  const size_t cs = codec_.code_size();
  std::vector<uint8_t> codes(n * cs), rcodes;
  codec_.encode(x, n, codes.data());
  if (refine_) {
    rcodes.resize(n * refine_->code_size());
    refine_->encode(x, n, rcodes.data());
  }
  {
    std::unique_lock lk(mu_);
    idmap_.check_new(ids, n);
    n_reused = std::min(n, free_slots_.size());
    const size_t old = nslots();
    const size_t grow = n - n_reused;
    ANNX_CHECK(InvalidArgument, old + grow <= kMaxSlots, "an HNSW index holds at most ", kMaxSlots,
               " vectors (removed ones included until reused)");
    std::vector<idx_t> id_vec(n);
    for (size_t i = 0; i < n; ++i)
      id_vec[i] = ids ? ids[i] : idmap_.next_id() + static_cast<idx_t>(i);
    ensure_owned();
    auto& l0 = level0_.mut();
    auto& lv = levels_.mut();
    auto& uo = upper_off_.mut();
    auto& up = upper_.mut();
    auto& del = deleted_.mut();
    auto& rc = refine_codes_.mut();
    l0.resize((old + grow) * block_, 0);
    lv.resize(old + grow, 0);
    uo.resize(old + grow, 0);
    del.resize(old + grow, 0);
    if (refine_) rc.resize((old + grow) * refine_->code_size());
    for (size_t i = 0; i < n_reused; ++i) {
      slots[i] = free_slots_.back();
      free_slots_.pop_back();
    }
    for (size_t i = n_reused; i < n; ++i) {
      const uint32_t s = static_cast<uint32_t>(old + (i - n_reused));
      slots[i] = s;
      const int L = draw_level(n_inserted_++);
      lv[s] = static_cast<uint8_t>(L);
      if (L > 0) {
        uo[s] = static_cast<uint32_t>(up.size());
        up.resize(up.size() + static_cast<size_t>(L) * (opt_.M + 1), 0);
      }
    }
    for (size_t i = 0; i < n; ++i) {
      const uint32_t s = slots[i];
      std::memcpy(l0.data() + size_t{s} * block_ + code_off_, codes.data() + i * cs, cs);
      if (refine_)
        std::memcpy(rc.data() + size_t{s} * refine_->code_size(),
                    rcodes.data() + i * refine_->code_size(), refine_->code_size());
      del[s] = 0;
    }
    for (size_t i = 0; i < n_reused; ++i) idmap_.assign_slot(slots[i], id_vec[i]);
    idmap_.append(id_vec.data() + n_reused, n - n_reused);
    if (mobius()) update_norms(slots.data(), n, old);
    core0_.assign(nslots(), 0);  // lists of earlier adds: unknown
  }
  // The int8 copy pays when the add links a fair share of the index (building it
  // costs one pass over every stored vector); F32 codec and l2 / cos / Mobius graphs.
  // The copy's int32 inner products are exact below d = 2^17 (|code| <= 127).
  bool compact = codec_.kind() == CodecKind::F32 && ip_graph_ != IpGraph::Ip && n * 8 >= nslots() &&
                 d_ < (1 << 17);
  // Mobius scores of (near-)zero rows reach the end of the float range, where the float
  // rule clamps them (tests/test_hnsw_ip.py): such adds score in float throughout.
  if (compact && mobius())
    for (float v : inv_norm2_) compact = compact && v < 1e30f;
  // Link the new nodes while searches go on (see the concurrency notes in hnsw.h).
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  if (opt_.shuffle) {
    uint64_t st = splitmix64(opt_.seed ^ 0x5bd1e995ULL) ^ n_batches_;
    for (size_t i = n; i > 1; --i) {
      st = splitmix64(st);
      std::swap(order[i - 1], order[st % i]);
    }
  }
  ++n_batches_;
  std::shared_lock lk(mu_);
  try {
    if (compact) build_compact(threads);
    parallel_for(
        n, 1,
        [&](size_t b, size_t e) {
          Scratch& sc = *tls_scratch_ptr();
          sc.K = &simd::kernels();
          for (size_t i = b; i < e; ++i) {
            const uint32_t j = order[i];
            if (j < n_reused) repair_around(slots[j], sc);
            insert(slots[j], x + size_t{j} * d, sc, /*reused=*/j < n_reused);
          }
        },
        threads);
  } catch (...) {
    // Interrupted or failed: nothing of this add stays visible. Nodes already linked
    // become tombstones (their slots are reused later).
    core0_ = {};
    c8_.reset();
    lk.unlock();
    std::unique_lock ex(mu_);
    remove_slots(slots);
    throw;
  }
  core0_ = {};
  c8_.reset();
}

// ------------------------------------------------------------------- persistence

void HnswIndex::write_impl(io::Manifest& m, std::vector<Section>& sections,
                           std::vector<std::vector<uint8_t>>& scratch) const {
  (void)scratch;
  m.set("structure", "hnsw");
  m.set("codec", codec_name(codec_.kind()));
  m.set("refine", refine_ ? codec_name(refine_->kind()) : "none");
  m.set("trained", is_trained());
  m.set("hnsw_m", opt_.M);
  m.set("hnsw_ef_construction", opt_.ef_construction);
  m.set("hnsw_seed", static_cast<uint64_t>(opt_.seed));
  m.set("hnsw_shuffle", opt_.shuffle);
  if (opt_.insert_order == HnswOptions::InsertOrder::LidDesc)
    m.set("hnsw_insert_order", "lid_desc");
  m.set("hnsw_entry", static_cast<int64_t>(entry_.load()));
  m.set("hnsw_max_level", static_cast<int64_t>(max_level_.load()));
  m.set("hnsw_inserted", static_cast<uint64_t>(n_inserted_));
  m.set("hnsw_batches", static_cast<uint64_t>(n_batches_));
  m.set("hnsw_block", static_cast<uint64_t>(block_));
  if (metric_ == Metric::IP) m.set("hnsw_ip_graph", mobius() ? "mobius" : "ip");
  sections.push_back({"HNSWL0", level0_.data(), level0_.size()});
  sections.push_back({"HNSWLVL", levels_.data(), levels_.size()});
  sections.push_back({"HNSWUOFF", upper_off_.data(), upper_off_.size() * 4});
  sections.push_back({"HNSWUP", upper_.data(), upper_.size() * 4});
  sections.push_back({"HNSWDEL", deleted_.data(), deleted_.size()});
  if (refine_) sections.push_back({"REFINE", refine_codes_.data(), refine_codes_.size()});
  write_codec_sections(codec_, sections);
}

void HnswIndex::read_impl(const io::ContainerReader& r, const io::Manifest& m, size_t n) {
  const auto bad = [](const std::string& what) {
    throw FormatError("corrupt index file: " + what);
  };
  if (m.str("structure") != "hnsw") bad("structure '" + m.str("structure") + "' is not hnsw");
  if (m.str("codec") != codec_name(codec_.kind())) bad("codec does not match the spec");
  if (m.str("refine") != (refine_ ? codec_name(refine_->kind()) : "none"))
    bad("refine codec does not match the spec");
  if (m.i64("hnsw_m", 2, 512) != opt_.M) bad("M does not match the spec");
  opt_.ef_construction = static_cast<int>(m.i64("hnsw_ef_construction", 1, 1 << 20));
  opt_.seed = m.u64("hnsw_seed");
  opt_.shuffle = m.boolean("hnsw_shuffle");
  // Files from before insert_order have no key (the default order).
  if (const auto o = m.get("hnsw_insert_order")) {
    if (*o != "lid_desc") bad("unknown hnsw_insert_order '" + std::string(*o) + "'");
    if (opt_.shuffle) bad("hnsw_insert_order 'lid_desc' with hnsw_shuffle");
    opt_.insert_order = HnswOptions::InsertOrder::LidDesc;
  }
  if (m.u64("hnsw_block") != block_) bad("block size does not match");
  // Inner-product graphs: files from before the Mobius graph have no key and keep
  // the inner-product rule for later adds; a value this build does not know is refused.
  if (const auto g = m.get("hnsw_ip_graph")) {
    if (metric_ != Metric::IP) bad("hnsw_ip_graph on an index whose metric is not ip");
    if (*g == "ip") {
      ip_graph_ = IpGraph::Ip;
    } else if (*g == "mobius") {
      ip_graph_ = IpGraph::Mobius;
    } else {
      bad("hnsw_ip_graph '" + std::string(*g) +
          "' is not known to this version of annx (written by a newer one?)");
    }
  } else if (metric_ == Metric::IP) {
    ip_graph_ = IpGraph::Ip;
  }
  inv_norm2_.clear();
  n_inserted_ = m.u64("hnsw_inserted");
  n_batches_ = m.u64("hnsw_batches");
  const int64_t entry = m.i64("hnsw_entry", -1, static_cast<int64_t>(n) - 1);
  const int64_t maxl = m.i64("hnsw_max_level", -1, kMaxLevel);
  if (n > kMaxSlots) bad("too many slots");
  read_codec_sections(r, m, codec_);
  if (n > 0 && !is_trained()) bad("untrained index with vectors");
  if (n > r.blob()->size() / block_ + 1) bad("slot count does not fit in the file");
  load_section_array(r, "HNSWL0", n * block_, level0_);
  load_section_array(r, "HNSWLVL", n, levels_);
  load_section_array(r, "HNSWUOFF", n, upper_off_);
  const size_t up_bytes = r.section("HNSWUP").size();
  if (up_bytes % 4) bad("HNSWUP size is not a multiple of 4");
  load_section_array(r, "HNSWUP", up_bytes / 4, upper_);
  load_section_array(r, "HNSWDEL", n, deleted_);
  if (refine_) load_section_array(r, "REFINE", n * refine_->code_size(), refine_codes_);
  check_loaded_codes(codec_, level0_.data() + code_off_, n, block_, "HNSWL0");
  if (refine_)
    check_loaded_codes(*refine_, refine_codes_.data(), n, refine_->code_size(), "REFINE");
  entry_.store(entry);
  max_level_.store(static_cast<int>(maxl));
  for (size_t s = 0; s < n; ++s)
    if (deleted_.data()[s] > 1) bad("tombstone flag out of range");
  const std::string err = check_graph_locked();
  if (!err.empty()) bad("HNSW graph: " + err);
}

void HnswIndex::after_load() {
  free_slots_.clear();
  for (size_t s = 0; s < nslots(); ++s) {
    const bool hole = idmap_.id(static_cast<slot_t>(s)) == IdMap::kNoId;
    if (hole != is_deleted(static_cast<uint32_t>(s)))
      throw FormatError("corrupt index file: tombstones and ids disagree at slot " +
                        std::to_string(s));
    if (hole) free_slots_.push_back(static_cast<uint32_t>(s));
  }
  sort_free_slots();
}

namespace {
HnswIndex::Scratch* tls_scratch_ptr() {
  thread_local HnswIndex::Scratch sc;
  return &sc;
}
}  // namespace

}  // namespace annx
