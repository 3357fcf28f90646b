#include "annx/index/ivf.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>

#include "annx/common/error.h"
#include "annx/common/finite.h"
#include "annx/common/random.h"
#include "annx/common/thread_pool.h"
#include "annx/common/topk.h"
#include "annx/index/flat.h"
#include "annx/index/hnsw.h"
#include "annx/index/section_array.h"
#include "annx/io/container.h"
#include "annx/quant/pq4_layout.h"
#include "annx/quant/pq8_layout.h"
#include "annx/simd/kernels.h"

namespace annx {

namespace {

constexpr uint32_t kNoList = 0xffffffffu;
constexpr float kInf = std::numeric_limits<float>::infinity();
// Refine re-scores this many candidates per result unless `rerank` says otherwise
// (faiss's IndexRefine uses 1; 4 costs little and recovers most of the recall).
constexpr size_t kDefaultRerankFactor = 4;
// Batches of at least this many fast-scan queries scan each list once per group of
// queries probing it (search_grouped), in chunks of at most kGroupChunk queries.
constexpr size_t kGroupMinQueries = 16;
constexpr size_t kGroupChunk = 256;
// Flat,<F16|BF16|SQ8>,Refine batches of at least this many queries over at least this
// many rows take the batched float scan (Flat's thresholds).
constexpr size_t kFloatBlockedMinQueries = 8;
constexpr size_t kFloatBlockedMinRows = 256;
// 8-bit PQ takes the byte-sum scan when quantising a table (M x 256 entries) is repaid:
// a shared table when the probed lists hold this many table lookups (rows x M; each list
// also pays fixed costs that do not shrink with M), a list's own table (L2 residuals)
// from this many rows in the list. Measured (annxbench.pq8_bytes_ab): MiniLM-100k
// IVF1024,PQ48 0.9-1.0x the float scan at 390 rows x 48, 1.2x at 780 x 48; GloVe dot /
// angular IVF256,PQ10 0.81x / 0.83x at 1,560 / 780 rows x 10, 1.3-1.4x at 4x that;
// GloVe-200k IVF256/IVF1024,PQ25 (per-list tables) 1.3-2.0x at 780 rows, 0.9-1.2x at 195.
constexpr size_t kPq8ByteMinLookupsShared = 32768;
constexpr size_t kPq8ByteMinRows = 256;
// A query is split across threads (when there are fewer queries than threads) once its
// probed lists hold at least this much scan work (see scan_cost_per_vector).
constexpr double kSplitWork = 2e6;
// auto_residual: residual codes are kept when their reconstruction error is at most
// (1 - this) times that of codes of the vectors themselves, both measured on training
// rows held out of the comparison (held_out_residuals). Residual codes of two near
// vectors in different lists err independently, codes of the vectors alike, so residuals
// must buy clearly lower error to rank better across lists. The error is not measured
// in-sample: k-means overfits its training rows (at ~20 per list their residuals are far
// smaller than those of the vectors added later), which made residuals look 0.25 better
// where they ranked worse (MiniLM-100k IVF1024,PQ48x4fs trained on 20,000 rows). The
// held-out rows' residuals are to centroids refit without them: each list's mean of its
// other members with the trained assignment. What remains biased: that assignment was
// trained with the held-out rows (second order), the refit lists have 1/8 fewer members
// (slightly larger residuals, favouring vectors by well under 1 %), and the held-out rows
// are picked outside the residual PQ's training sample where there are enough rows
// (n > 4,096 * 8 / 7; below, the PQ saw them, favouring residuals a little); the vector
// PQ trains on all n rows as with by_residual=False (k-means samples 4,096 per
// sub-quantizer, about 1/8 of them held-out rows: a tiny in-sample edge for vectors),
// so an automatic index is the explicit index of its encoding, bit for bit. Calibrated
// on every 4-bit cell of the IVF-PQ matrix (bench/results/ivfpq-auto-residual.md:
// held-out gain, recall@10 of both encodings): residuals rank better at gains >= 0.154
// (GloVe-50 dot IVF256 PQ5: +5.5 points of recall), vectors at <= 0.145 (MiniLM-100k
// IVF1024 PQ48: -2.5 points; IVF256 PQ48 0.083: -5 points); MiniLM's PQ96 / PQ192
// cells (0.07-0.14) are ties. The gap is narrow: an unseen set with a gain near 0.15 may
// get the worse encoding, by a few points at most in this table.
constexpr double kAutoResidualGain = 0.15;
// Held-out rows for that comparison (n / 8 at most), and the refit's rows per list.
constexpr size_t kAutoHeldOut = 4096;
constexpr size_t kAutoRefitPerList = 256;
// The precomputed L2 residual table (ivf.h) is kept up to this size, and only while
// every centroid's norm is within kPrecomputedMaxRatio of the codebooks' RMS norm:
// its entries add 2<c, y> and -2<q, y>, whose float rounding grows with |c| |y|.
constexpr size_t kPrecomputedMaxBytes = size_t{64} << 20;
constexpr double kPrecomputedMaxRatio = 256.0;

/// Mean squared reconstruction error of n rows of x (d floats) under pq.
double pq_mse(const ProductQuantizer& pq, const float* x, size_t n, size_t d) {
  std::vector<uint8_t> codes(n * pq.M());
  pq.encode(x, n, codes.data(), 0);
  std::vector<float> y(n * d);
  pq.decode(codes.data(), n, y.data());
  double s = 0;
  for (size_t i = 0; i < n * d; ++i) s += double{x[i] - y[i]} * (x[i] - y[i]);
  return n ? s / static_cast<double>(n) : 0.0;
}

/// Held-out rows for auto_residual (see kAutoResidualGain): up to kAutoHeldOut seeded
/// rows of x (n / 8 at most), taken outside the strided residual-PQ sample (`ns` rows
/// every `step`) while there are enough such rows, with their residuals to centroids
/// refit without them: every list's mean over its other members (at most
/// kAutoRefitPerList per list on average, seeded, as k-means subsamples too),
/// unit-normalised for spherical k-means, assigned by the same metric. A list with no
/// other members keeps its trained centroid.
struct HeldOut {
  size_t n = 0;
  std::vector<float> x, r;  // n x d: the rows, and their residuals
};

HeldOut held_out_residuals(const float* x, size_t n, size_t d, const CentroidTable& table,
                           size_t ns, size_t step, uint64_t seed) {
  const size_t k = table.k();
  std::vector<uint64_t> perm(n);
  std::iota(perm.begin(), perm.end(), uint64_t{0});
  Rng rng(seed);
  for (size_t i = 0; i + 1 < n; ++i) std::swap(perm[i], perm[i + rng.below(n - i)]);
  const auto in_pq_sample = [&](uint64_t row) { return row % step == 0 && row / step < ns; };
  HeldOut ho;
  const size_t h = std::min(kAutoHeldOut, n / 8);
  std::vector<uint8_t> held(n, 0);
  for (int pass = 0; pass < 2 && ho.n < h; ++pass) {
    for (size_t i = 0; i < n && ho.n < h; ++i) {
      if (held[perm[i]] || (pass == 0 && in_pq_sample(perm[i]))) continue;
      held[perm[i]] = 1;
      ++ho.n;
    }
  }
  // The refit rows: every other row, or a seeded kAutoRefitPerList * k of them.
  std::vector<uint64_t> rows;
  const size_t cap = kAutoRefitPerList * k;
  for (size_t i = 0; i < n && rows.size() < cap; ++i)
    if (!held[perm[i]]) rows.push_back(perm[i]);
  std::sort(rows.begin(), rows.end());
  std::vector<double> sum(k * d, 0.0);
  std::vector<size_t> count(k, 0);
  const size_t chunk = 8192;  // rows assigned at a time (bounded memory)
  std::vector<float> xr(std::min(chunk, rows.size()) * d);
  std::vector<float> dist(std::max(std::min(chunk, rows.size()), h));
  std::vector<uint32_t> list(dist.size());
  for (size_t b = 0; b < rows.size(); b += chunk) {
    const size_t m = std::min(chunk, rows.size() - b);
    for (size_t i = 0; i < m; ++i) std::memcpy(&xr[i * d], x + rows[b + i] * d, d * sizeof(float));
    table.search(xr.data(), m, 1, dist.data(), list.data(), 0);
    for (size_t i = 0; i < m; ++i) {
      ++count[list[i]];
      for (size_t t = 0; t < d; ++t) sum[list[i] * d + t] += xr[i * d + t];
    }
  }
  std::vector<float> c(table.centroids());
  for (size_t j = 0; j < k; ++j) {
    if (count[j] == 0) continue;
    double norm = 0;
    for (size_t t = 0; t < d; ++t) {
      const double v = sum[j * d + t] / static_cast<double>(count[j]);
      norm += v * v;
      c[j * d + t] = static_cast<float>(v);
    }
    if (table.ip() && norm > 0)
      for (size_t t = 0; t < d; ++t)
        c[j * d + t] = static_cast<float>(c[j * d + t] / std::sqrt(norm));
  }
  const CentroidTable refit(c.data(), k, d, table.ip());
  ho.x.resize(ho.n * d);
  for (size_t i = 0, j = 0; i < n; ++i)
    if (held[i]) std::memcpy(&ho.x[j++ * d], x + i * d, d * sizeof(float));
  refit.search(ho.x.data(), ho.n, 1, dist.data(), list.data(), 0);
  ho.r = ho.x;
  for (size_t i = 0; i < ho.n; ++i)
    for (size_t t = 0; t < d; ++t) ho.r[i * d + t] -= c[list[i] * d + t];
  return ho;
}

/// Grouped batch search scans probe ranks phase by phase: 0 | 1 | 2-3 | 4-7 | ...
size_t rank_phase(size_t rank) { return static_cast<size_t>(std::bit_width(rank)); }

bool test_bit(const std::vector<uint64_t>& bits, slot_t s) {
  return (bits[s >> 6] >> (s & 63)) & 1;
}

/// The fast-scan sum at or below which a code may beat score `thr` (approximate score
/// = base + sum / a); false when no code of the list can. One unit of slack keeps
/// float rounding from dropping a tie, so the kept set never depends on scan order.
bool u16_threshold(float thr, float base, float a, uint16_t& t16) {
  t16 = 65535;
  if (thr == kInf) return true;
  const float t = (thr - base) * a;
  if (t < -1.f) return false;
  if (t < 65534.f) t16 = static_cast<uint16_t>(std::max(0.f, t) + 1.f);
  return true;
}

/// A fast-scan sum's approximate score. Every push and every bound below computes it with
/// this one expression, so equal sums give equal scores wherever they are computed.
inline float pq4_score(float base, uint16_t sum, float inv_a) {
  return base + static_cast<float>(sum) * inv_a;
}

/// The k-th smallest (1-based, 1 <= k <= n) of n sums, by radix selection: a histogram of
/// the high bytes finds its bin, one of the low bytes within that bin finds it (two
/// branch-free passes; std::nth_element on a copy measured slower in the fast-scan scan
/// than pushing every row).
uint16_t kth_smallest_u16(const uint16_t* sums, size_t n, size_t k) {
  uint32_t hist[256] = {};
  for (size_t i = 0; i < n; ++i) ++hist[sums[i] >> 8];
  uint32_t hi = 0;
  size_t below = 0;
  while (below + hist[hi] < k) below += hist[hi++];
  std::fill(std::begin(hist), std::end(hist), 0u);
  for (size_t i = 0; i < n; ++i) hist[sums[i] & 255] += (sums[i] >> 8) == hi;
  uint32_t lo = 0;
  while (below + hist[lo] < k) below += hist[lo++];
  return static_cast<uint16_t>(hi << 8 | lo);
}

/// The largest sum whose score equals that of sum t (see pq4_score).
uint16_t same_score_bound(uint16_t t, float base, float inv_a) {
  const float s = pq4_score(base, t, inv_a);
  uint32_t u = t;
  while (u < 65535 && pq4_score(base, static_cast<uint16_t>(u + 1), inv_a) == s) ++u;
  return static_cast<uint16_t>(u);
}

/// A collector's first lists (its threshold still infinite) would push every row. An
/// unfiltered list of more than 2 kc rows bounds itself instead (bounds_itself), as the
/// 8-bit byte path does, by any sum t with at least kc rows at or below it, extended to
/// the largest sum of the same score: a row above that scores strictly more than those kc
/// rows (the map from sums to scores never decreases), so it cannot be among the kc
/// results, and no tie at the k-th score is lost. The results are those of pushing every
/// row. t is first estimated from a strided sample (about 1.5 kc rows expected at or
/// below it; the selection proves it has kc), else it is the exact kc-th smallest.
/// Selects the rows at or below the bound into sel; returns how many.
size_t select_bounded_first_list(const simd::KernelTable& K, const uint16_t* sums, size_t n,
                                 size_t kc, float base, float inv_a, uint32_t* sel) {
  constexpr size_t kMaxSample = 512;
  const size_t stride = std::max<size_t>(8, (n + kMaxSample - 1) / kMaxSample);
  uint16_t sample[kMaxSample];
  size_t ns = 0;
  for (size_t i = 0; i < n && ns < kMaxSample; i += stride) sample[ns++] = sums[i];
  const size_t r = std::min(ns - 1, 3 * kc * ns / (2 * n) + 1);
  std::nth_element(sample, sample + r, sample + ns);
  size_t hits = K.select_le_u16(sums, n, same_score_bound(sample[r], base, inv_a), sel);
  if (hits < kc)
    hits =
        K.select_le_u16(sums, n, same_score_bound(kth_smallest_u16(sums, n, kc), base, inv_a), sel);
  return hits;
}

/// Whether a list of n rows bounds itself (select_bounded_first_list).
bool bounds_itself(float thr, size_t kc, size_t n, bool filtered) {
  return !(thr < kInf) && !filtered && kc > 0 && n / 2 > kc;
}

/// Collects every candidate under a fixed radius (range search).
struct RangeSink {
  float radius;
  std::vector<std::pair<float, slot_t>> hits;
  float threshold() const { return radius; }
  size_t capacity() const { return std::numeric_limits<size_t>::max(); }  // keeps every hit
  void push(float s, slot_t slot) {
    if (s < radius) hits.emplace_back(s, slot);
  }
};

/// Adapts the candidate collector (which stores idx_t) to the sink interface.
struct TopSink {
  ReservoirTopK& top;
  float threshold() const { return top.threshold(); }
  size_t capacity() const { return top.k(); }
  void push(float s, slot_t slot) { top.push(s, static_cast<idx_t>(slot)); }
};

}  // namespace

/// Per-query scan state: the prepared query and its lookup tables. Kept per thread
/// and reused across that thread's queries.
struct IvfIndex::QueryCtx {
  const float* q = nullptr;   // the query (normalised for cosine)
  PreparedQuery vq;           // vector codecs
  std::vector<float> lut;     // PQ: M x ksub (the shared table, or this list's)
  std::vector<float> resid;   // L2 residual: q - c
  std::vector<float> qterm;   // precomputed L2 residual tables: -2 <q_m, y_mj>
  std::vector<float> qterms;  // the same for each query of a grouped chunk
  pq4::QuantizedLut qlut;     // fast-scan: quantised `lut`
  pq8::ByteLut blut;          // 8-bit PQ with a byte-sum kernel: `lut` in bytes
  bool blut_shared = false;   // blut holds the shared table
  bool shared_lut = false;    // one table for every list (inner products, or no residual)
  std::vector<float> buf;     // per-list scores
  std::vector<uint16_t> buf16;
  std::vector<uint32_t> sel;
  // Grouped batch search: (list, query, probe rank) triples sorted by list.
  struct Probe {
    uint32_t list, query, rank;
  };
  std::vector<Probe> probes;
  std::vector<uint32_t> list_start;
  std::vector<ReservoirTopK> tops;  // per query of the chunk (grouped), [0] one query
};

namespace {

size_t context_slots(int threads) {
  return static_cast<size_t>(std::max({1, threads, get_num_threads()}));
}

/// The calling thread's scan context. Kept across calls (like faiss's per-thread
/// scratch): fresh buffers per search cost page faults that showed in profiles. A
/// thread runs one query at a time, so the context is never shared.
IvfIndex::QueryCtx& thread_context() {
  thread_local IvfIndex::QueryCtx ctx;
  return ctx;
}

}  // namespace

IvfIndex::IvfIndex(int d, Metric metric, IvfOptions options)
    : Index(d, metric), opt_(options), vcodec_(options.vector_codec, d) {
  ANNX_CHECK(InvalidArgument, opt_.codec == IvfCodec::Vector || opt_.pq_m >= 1,
             "PQ needs at least one sub-quantizer");
  if (is_pq()) {
    ANNX_CHECK(InvalidArgument, opt_.pq_m <= static_cast<size_t>(d), "PQ", opt_.pq_m,
               " has more sub-quantizers than the ", d, " dimensions");
    pq_ = ProductQuantizer(static_cast<size_t>(d), opt_.pq_m, opt_.codec == IvfCodec::PQ8 ? 8 : 4);
  }
  if (opt_.refine) refine_.emplace(*opt_.refine, d);
  lists_.resize(flat_pq() ? 1 : opt_.nlist);
}

IvfIndex::~IvfIndex() = default;

std::string IvfIndex::spec() const {
  std::string s;
  std::string codec;
  switch (opt_.codec) {
    case IvfCodec::Vector:
      codec = opt_.vector_codec == CodecKind::F32 ? "Flat" : codec_name(opt_.vector_codec);
      break;
    case IvfCodec::PQ8: codec = "PQ" + std::to_string(opt_.pq_m); break;
    case IvfCodec::PQ4FastScan: codec = "PQ" + std::to_string(opt_.pq_m) + "x4fs"; break;
  }
  if (flat_pq()) {
    // One list and no coarse quantizer: flat PQ ("PQ48x4fs") or a re-ranked flat scan of
    // vector codes ("Flat,BEBR4,Refine(F32)").
    s = opt_.codec == IvfCodec::Vector ? "Flat," + codec : codec;
  } else {
    s = "IVF" + std::to_string(opt_.nlist);
    if (opt_.hnsw_m > 0) s += "_HNSW" + std::to_string(opt_.hnsw_m);
    s += "," + codec;
  }
  if (refine_) s += std::string(",Refine(") + codec_name(refine_->kind()) + ")";
  return s;
}

bool IvfIndex::is_trained() const {
  const bool coarse = flat_pq() || coarse_.k() == opt_.nlist;
  const bool codec = is_pq() ? pq_.is_trained() : vcodec_.is_trained();
  return coarse && codec;
}

size_t IvfIndex::code_size() const {
  switch (opt_.codec) {
    case IvfCodec::Vector: return vcodec_.code_size();
    case IvfCodec::PQ8: return opt_.pq_m;
    case IvfCodec::PQ4FastScan: return (opt_.pq_m + 1) / 2;
  }
  return 0;
}

size_t IvfIndex::memory_bytes_impl() const {
  size_t b =
      coarse_.centroids().size() * sizeof(float) * 2 + pq_.codebooks().size() * sizeof(float);
  for (const List& l : lists_) b += l.codes.capacity() + l.slots.capacity() * sizeof(slot_t);
  b += (slot_list_.capacity() + slot_pos_.capacity()) * sizeof(uint32_t);
  b += idmap_.size() * sizeof(idx_t) + refine_codes_.capacity();
  if (coarse_hnsw_) b += coarse_hnsw_->memory_bytes();
  b += precomp_.capacity() * sizeof(float);
  return b;
}

double IvfIndex::bytes_per_vector_impl() const {
  // Per vector: its code (fast-scan: with the block padding actually allocated), its
  // slot in the list (4), its id (8), the slot's list/position (8) and the Refine row.
  const size_t live = idmap_.live();
  const double extra =
      4.0 + 8.0 + 8.0 + (refine_ ? static_cast<double>(refine_->code_size()) : 0.0);
  if (live == 0) return static_cast<double>(code_size()) + extra;
  size_t codes = 0;
  for (const List& l : lists_) codes += l.codes.size();
  return static_cast<double>(codes) / static_cast<double>(live) + extra;
}

std::vector<size_t> IvfIndex::list_sizes() const {
  std::shared_lock lk(mu_);
  std::vector<size_t> out;
  for (const List& l : lists_) out.push_back(l.size());
  return out;
}

std::vector<float> IvfIndex::centroids() const {
  std::shared_lock lk(mu_);
  return coarse_.centroids();
}

std::vector<int64_t> IvfIndex::list_of(const idx_t* ids, size_t n) const {
  std::shared_lock lk(mu_);
  const std::vector<slot_t> slots = idmap_.slots_of(ids, n, /*allow_repeats=*/true);
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = slot_list_[slots[i]];
  return out;
}

std::vector<int64_t> IvfIndex::nearest_lists(const float* x, size_t n, size_t p, int ef_search,
                                             int threads) const {
  ANNX_CHECK(InvalidArgument, !flat_pq(), "index '", spec(), "' has no coarse quantizer");
  ANNX_CHECK(InvalidArgument, p >= 1, "the number of lists must be >= 1, got ", p);
  std::vector<float> buf;
  const float* xp = prepare_input(x, n, "x", buf);
  std::shared_lock lk(mu_);
  ANNX_CHECK(NotTrained, is_trained(), "index '", spec(), "' must be trained first");
  p = std::min(p, opt_.nlist);
  std::vector<float> D(n * p);
  std::vector<uint32_t> I(n * p);
  coarse_search(xp, n, p, ef_search, threads, D.data(), I.data());
  std::vector<int64_t> out(n * p);
  for (size_t i = 0; i < n * p; ++i) out[i] = I[i] == kNoList ? -1 : int64_t{I[i]};
  return out;
}

// ------------------------------------------------------------------------ training

size_t IvfIndex::train_units() const {
  size_t units = flat_pq() ? 0 : static_cast<size_t>(opt_.coarse_iters);
  if (is_pq()) units += pq_.train_units(opt_.pq_iters) * (opt_.auto_residual ? 2 : 1);
  return units > 0 ? units : 1;
}

void IvfIndex::train_impl(const float* x, size_t n, ProgressCounter& progress) {
  ANNX_CHECK(InvalidArgument, idmap_.size() == 0, "index '", spec(),
             "' already holds vectors; training again would invalidate their codes "
             "(create a new index)");
  const bool ip = is_similarity(metric_);
  const size_t d = static_cast<size_t>(d_);
  // Every size check comes before any work.
  ANNX_CHECK(InvalidArgument, !is_pq() || n >= pq_.ksub(), "training '", spec(),
             "' needs at least ", pq_.ksub(), " vectors (one per PQ centroid), got ", n);
  ANNX_CHECK(InvalidArgument, flat_pq() || n >= opt_.nlist, "training '", spec(),
             "' needs at least ", opt_.nlist, " vectors (one per list), got ", n);
  // Everything is trained into locals and committed at the end: a failure or a cancel
  // (between any two k-means iterations) leaves the index as it was.
  CentroidTable table;
  std::unique_ptr<HnswIndex> graph;
  if (!flat_pq()) {
    KMeansOptions o;
    o.niter = opt_.coarse_iters;
    o.seed = opt_.seed;
    o.spherical = ip;  // as faiss does for inner-product IVF
    o.ip = ip;
    o.progress = &progress;
    const KMeansResult r = kmeans(x, n, d, opt_.nlist, o);
    table = CentroidTable(r.centroids.data(), opt_.nlist, d, ip);
    if (opt_.hnsw_m > 0) {
      HnswOptions ho;
      ho.M = opt_.hnsw_m;
      ho.seed = opt_.seed;
      graph = std::make_unique<HnswIndex>(d_, ip ? Metric::IP : Metric::L2, CodecKind::F32,
                                          std::nullopt, ho);
      graph->add(r.centroids.data(), opt_.nlist, nullptr);
    }
  }
  VectorCodec vcodec(opt_.vector_codec, d_);
  ProductQuantizer pq;
  bool use_residual = opt_.by_residual;
  double gain = std::numeric_limits<double>::quiet_NaN();
  if (!is_pq()) {
    vcodec.train(x, n);
  } else if (!residual() && !opt_.auto_residual) {
    pq = ProductQuantizer(d, pq_.M(), pq_.nbits());
    pq.train(x, n, opt_.pq_iters, opt_.seed + 1, 0, &progress);
  } else {
    // Residuals of (a sample of) the training vectors to their nearest new centroids.
    const size_t ns = std::min(n, pq_.ksub() * 256);
    const size_t step = n / ns;
    std::vector<float> r(ns * d);
    for (size_t i = 0; i < ns; ++i) std::memcpy(&r[i * d], x + i * step * d, d * sizeof(float));
    std::vector<float> cd(ns);
    std::vector<uint32_t> ci(ns);
    coarse_search(table, graph.get(), r.data(), ns, 1, 0, 0, cd.data(), ci.data());
    for (size_t i = 0; i < ns; ++i) {
      const float* c = table.centroid(ci[i]);
      for (size_t t = 0; t < d; ++t) r[i * d + t] -= c[t];
    }
    pq = ProductQuantizer(d, pq_.M(), pq_.nbits());
    pq.train(r.data(), ns, opt_.pq_iters, opt_.seed + 1, 0, &progress);
    if (opt_.auto_residual) {
      ProductQuantizer pv(d, pq_.M(), pq_.nbits());
      pv.train(x, n, opt_.pq_iters, opt_.seed + 1, 0, &progress);
      const HeldOut ho = held_out_residuals(x, n, d, table, ns, step, opt_.seed + 2);
      const double mse_r = pq_mse(pq, ho.r.data(), ho.n, d);
      const double mse_v = pq_mse(pv, ho.x.data(), ho.n, d);
      use_residual = mse_r <= (1.0 - kAutoResidualGain) * mse_v;
      gain = mse_v > 0 ? 1.0 - mse_r / mse_v : 0.0;
      if (!use_residual) pq = std::move(pv);
    }
  }
  progress.finish();  // the last chance to cancel
  std::unique_lock lk(mu_);
  if (!flat_pq()) {
    coarse_ = std::move(table);
    coarse_hnsw_ = std::move(graph);
  }
  if (is_pq()) {
    pq_ = std::move(pq);
    if (opt_.auto_residual) {
      opt_.by_residual = use_residual;
      opt_.auto_residual_gain = gain;
    }
    build_precomputed();
  } else {
    vcodec_ = std::move(vcodec);
  }
  max_norm2_.store(-1.f);
}

// --------------------------------------------------------------------------- adding

void IvfIndex::coarse_search(const float* q, size_t nq, size_t p, int ef, int threads, float* D,
                             uint32_t* I) const {
  coarse_search(coarse_, coarse_hnsw_.get(), q, nq, p, ef, threads, D, I);
}

void IvfIndex::coarse_search(const CentroidTable& table, const HnswIndex* graph, const float* q,
                             size_t nq, size_t p, int ef, int threads, float* D,
                             uint32_t* I) const {
  if (!graph) {
    table.search(q, nq, p, D, I, threads);
    return;
  }
  SearchParams sp;
  sp.threads = threads;
  // The graph's candidate list: the caller's ef_search (at least nprobe), else 2 nprobe
  // (at least 64).
  sp.ef_search =
      ef > 0 ? std::max(ef, static_cast<int>(p)) : static_cast<int>(std::max<size_t>(2 * p, 64));
  std::vector<idx_t> ids(nq * p);
  graph->search(q, nq, p, sp, D, ids.data());
  const bool ip = is_similarity(metric_);
  for (size_t i = 0; i < nq * p; ++i) {
    I[i] = ids[i] < 0 ? kNoList : static_cast<uint32_t>(ids[i]);
    if (ip) D[i] = -D[i];  // similarities back to lower-is-better
  }
}

void IvfIndex::encode_for_lists(const float* x, size_t n, const uint32_t* lists, uint8_t* codes,
                                int threads) const {
  const size_t d = static_cast<size_t>(d_);
  if (!is_pq()) {
    vcodec_.encode(x, n, codes);
    return;
  }
  if (!residual()) {
    pq_.encode(x, n, codes, threads);
    return;
  }
  const size_t chunk = 8192;
  std::vector<float> r(std::min(n, chunk) * d);
  for (size_t b = 0; b < n; b += chunk) {
    const size_t m = std::min(chunk, n - b);
    for (size_t i = 0; i < m; ++i) {
      const float* c = coarse_.centroid(lists[b + i]);
      for (size_t t = 0; t < d; ++t) r[i * d + t] = x[(b + i) * d + t] - c[t];
    }
    pq_.encode(r.data(), m, codes + b * pq_.M(), threads);
  }
}

size_t IvfIndex::list_code_bytes(size_t n) const {
  switch (opt_.codec) {
    case IvfCodec::Vector: return n * vcodec_.code_size();
    case IvfCodec::PQ8: return pq8::nblocks(n) * pq8::block_bytes(pq_.M());
    case IvfCodec::PQ4FastScan: return pq4::nblocks(n) * pq4::block_bytes(pq_.M());
  }
  return 0;
}

void IvfIndex::get_code(const List& L, size_t pos, uint8_t* code) const {
  switch (opt_.codec) {
    case IvfCodec::Vector: {
      const size_t cs = vcodec_.code_size();
      std::memcpy(code, L.codes.data() + pos * cs, cs);
      return;
    }
    case IvfCodec::PQ8: pq8::get_code(L.codes.data(), pq_.M(), pos, code); return;
    case IvfCodec::PQ4FastScan: pq4::get_code(L.codes.data(), pq_.M(), pos, code); return;
  }
}

void IvfIndex::set_code(List& L, size_t pos, const uint8_t* code) const {
  switch (opt_.codec) {
    case IvfCodec::Vector: {
      const size_t cs = vcodec_.code_size();
      std::memcpy(L.codes.data() + pos * cs, code, cs);
      return;
    }
    case IvfCodec::PQ8: pq8::set_code(L.codes.data(), pq_.M(), pos, code); return;
    case IvfCodec::PQ4FastScan: pq4::set_code(L.codes.data(), pq_.M(), pos, code); return;
  }
}

void IvfIndex::add_impl(const float*, size_t) {
  throw Error("IvfIndex::add_impl is not used (add_prepared overrides it)");
}

void IvfIndex::add_prepared(const float* x, size_t n, const idx_t* ids, int threads) {
  ANNX_CHECK(NotTrained, is_trained(), "index '", spec(),
             "' must be trained before add: call train(x) first");
  if (n == 0) {
    std::unique_lock lk(mu_);
    idmap_.check_new(ids, n);
    return;
  }
  // writer_mu_ is held, so the trained state is stable: assign and encode before
  // locking out searches.
  std::vector<uint32_t> assign(n, 0);
  if (!flat_pq()) {
    std::vector<float> dist(n);
    coarse_search(x, n, 1, 0, threads, dist.data(), assign.data());
    for (uint32_t a : assign)
      ANNX_CHECK(Error, a < opt_.nlist, "coarse quantizer returned no list for a vector");
  }
  const size_t ucs = is_pq() ? pq_.M() : vcodec_.code_size();  // unpacked code size
  std::vector<uint8_t> codes(n * ucs), rcodes;
  encode_for_lists(x, n, assign.data(), codes.data(), threads);
  if (refine_) {
    rcodes.resize(n * refine_->code_size());
    refine_->encode(x, n, rcodes.data());
  }
  // The batched float scans' norm bound (lists_max_norm2) over the new rows.
  const bool float_lists = !is_pq() && vcodec_.levels() == 0;
  const float new_max_norm2 = float_lists ? decoded_max_norm2(vcodec_, codes.data(), 0, n) : 0.f;
  std::unique_lock lk(mu_);
  idmap_.check_new(ids, n);
  ANNX_CHECK(InvalidArgument, idmap_.size() + n <= size_t{0xfffffffe},
             "an IVF index holds at most ", size_t{0xfffffffe}, " vectors");
  std::vector<idx_t> id_vec(n);
  for (size_t i = 0; i < n; ++i)
    id_vec[i] = ids ? ids[i] : idmap_.next_id() + static_cast<idx_t>(i);
  // Reserve everything first so that a failed allocation changes nothing.
  const size_t n_reused = std::min(n, free_slots_.size());
  const size_t nslots = idmap_.size() + (n - n_reused);
  std::vector<size_t> grow(lists_.size(), 0);
  for (uint32_t a : assign) ++grow[a];
  for (size_t l = 0; l < lists_.size(); ++l) {
    if (!grow[l]) continue;
    List& L = lists_[l];
    const size_t sz = L.size() + grow[l];
    L.slots.reserve(sz);
    L.codes.reserve(list_code_bytes(sz));
  }
  slot_list_.reserve(nslots);
  slot_pos_.reserve(nslots);
  if (refine_) refine_codes_.reserve(nslots * refine_->code_size());
  // Commit.
  slot_list_.resize(nslots, kNoList);
  slot_pos_.resize(nslots, 0);
  if (refine_) refine_codes_.resize(nslots * refine_->code_size());
  std::vector<slot_t> slots(n);
  for (size_t i = 0; i < n_reused; ++i) {
    slots[i] = free_slots_.back();
    free_slots_.pop_back();
  }
  for (size_t i = n_reused; i < n; ++i)
    slots[i] = static_cast<slot_t>(idmap_.size() + (i - n_reused));
  for (size_t i = 0; i < n; ++i) {
    const slot_t s = slots[i];
    List& L = lists_[assign[i]];
    const size_t pos = L.size();
    L.codes.resize(list_code_bytes(pos + 1), 0);  // grows by whole blocks where blocked
    set_code(L, pos, codes.data() + i * ucs);
    L.slots.push_back(s);
    slot_list_[s] = assign[i];
    slot_pos_[s] = static_cast<uint32_t>(pos);
    if (refine_) {
      const size_t rcs = refine_->code_size();
      std::memcpy(refine_codes_.data() + size_t{s} * rcs, rcodes.data() + i * rcs, rcs);
    }
  }
  for (size_t i = 0; i < n_reused; ++i) idmap_.assign_slot(slots[i], id_vec[i]);
  idmap_.append(id_vec.data() + n_reused, n - n_reused);
  if (float_lists) {
    // Searches are locked out, so the cached bound is updated in place (or stays unknown).
    const float known = max_norm2_.load();
    if (known >= 0.f || idmap_.size() == n)  // known, or these are the only rows
      max_norm2_.store(std::max(std::max(known, 0.f), new_max_norm2));
  }
}

// ------------------------------------------------------------------------- removing

void IvfIndex::remove_slot_impl(slot_t) {
  throw Error("IvfIndex::remove_slot_impl is not used (remove_slots overrides it)");
}

void IvfIndex::remove_slots(std::vector<slot_t>& slots) {
  const size_t ucs = is_pq() ? pq_.M() : vcodec_.code_size();
  std::vector<uint8_t> code(ucs);
  for (slot_t s : slots) {
    List& L = lists_[slot_list_[s]];
    const size_t pos = slot_pos_[s], last = L.size() - 1;
    if (pos != last) {
      const slot_t moved = L.slots[last];
      get_code(L, last, code.data());
      set_code(L, pos, code.data());
      L.slots[pos] = moved;
      slot_pos_[moved] = static_cast<uint32_t>(pos);
    }
    L.slots.pop_back();
    L.codes.resize(list_code_bytes(L.size()));
    slot_list_[s] = kNoList;
    idmap_.erase_slot(s);
    free_slots_.push_back(s);
  }
  // Descending, so pop_back() reuses the lowest free slot: the order depends only on
  // which slots are free, so a loaded copy evolves exactly like the original.
  std::sort(free_slots_.begin(), free_slots_.end(), std::greater<slot_t>());
}

// ------------------------------------------------------------------------ searching

template <class Sink>
void IvfIndex::scan_lists(QueryCtx& ctx, const uint32_t* probes, const float* coarse, size_t np,
                          const std::vector<uint64_t>* bitset, Sink& sink) const {
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(d_);
  const bool ip = is_similarity(metric_);
  // 8-bit PQ byte sums: a shared table is quantised once per query when the probed lists
  // hold enough rows to repay it (per-list tables: per list, by its length, below).
  bool bytes = opt_.codec == IvfCodec::PQ8 && K.pq8_accumulate_u8;
  if (bytes && ctx.shared_lut && !ctx.blut_shared) {
    size_t rows = 0;
    for (size_t p = 0; p < np; ++p)
      if (probes[p] != kNoList) rows += lists_[probes[p]].size();
    bytes = rows * pq_.M() >= kPq8ByteMinLookupsShared &&
            pq8::quantize_lut(ctx.lut.data(), nullptr, pq_.M(), nullptr, ctx.blut);
    ctx.blut_shared = bytes;
  }
  for (size_t p = 0; p < np; ++p) {
    const uint32_t l = probes[p];
    if (l == kNoList) continue;
    if (p + 1 < np) prefetch_list(probes[p + 1]);
    const List& L = lists_[l];
    const size_t n = L.size();
    if (n == 0) continue;
    // The list's additive term: -<q, c> for inner products on residual codes.
    float bias = 0.f;
    if (residual() && ip) {
      bias = coarse ? coarse[p]
                    : -K.one[static_cast<int>(simd::DistKind::IP_F32)](ctx.q, coarse_.centroid(l),
                                                                       d, nullptr);
    }
    // 8-bit PQ byte sums for this list? While the sink's threshold is still infinite (its
    // first lists) they pay only where they bound the list by its own k-th best
    // (unfiltered lists of > 2k rows); a list's own table only from kPq8ByteMinRows rows.
    const bool first = !(sink.threshold() < kInf);
    const bool try_bytes =
        bytes && (ctx.shared_lut || n >= kPq8ByteMinRows) &&
        (!first || bounds_itself(sink.threshold(), sink.capacity(), n, bitset != nullptr));
    if (is_pq() && !ctx.shared_lut) {
      bias = list_lut(ctx, ctx.q, ctx.qterm.data(), l,
                      opt_.codec == IvfCodec::PQ4FastScan ? &ctx.qlut : nullptr,
                      try_bytes ? &ctx.blut : nullptr);
    }
    if (ctx.sel.size() < n) ctx.sel.resize(n);
    if (opt_.codec == IvfCodec::PQ4FastScan) {
      const size_t nb = pq4::nblocks(n);
      if (ctx.buf16.size() < nb * pq4::kBlock) ctx.buf16.resize(nb * pq4::kBlock);
      const float base = bias + ctx.qlut.bias, a = ctx.qlut.scale, inv_a = 1.f / a;
      uint16_t t16;
      if (!u16_threshold(sink.threshold(), base, a, t16)) continue;  // nothing can win here
      K.pq4_accumulate(L.codes.data(), nb, pq4::npairs(pq_.M()), ctx.qlut.packed.data(),
                       ctx.buf16.data());
      const size_t hits = bounds_itself(sink.threshold(), sink.capacity(), n, bitset != nullptr)
                              ? select_bounded_first_list(K, ctx.buf16.data(), n, sink.capacity(),
                                                          base, inv_a, ctx.sel.data())
                              : K.select_le_u16(ctx.buf16.data(), n, t16, ctx.sel.data());
      for (size_t h = 0; h < hits; ++h) {
        const uint32_t j = ctx.sel[h];
        const slot_t s = L.slots[j];
        if (bitset && !test_bit(*bitset, s)) continue;
        sink.push(pq4_score(base, ctx.buf16[j], inv_a), s);
      }
      continue;
    }
    if (try_bytes && ctx.blut.ok) {
      // Byte sums first (pq8_layout.h): only the codes whose sums can still reach the
      // threshold (or, in a first list, the list's k-th best) get their float sums,
      // which are the values the float scan below computes, pushed in the same order.
      // The codes skipped cannot be among the results, so the answers are the float
      // scan's, bit for bit.
      const float thr = sink.threshold();
      uint16_t bound = 65535;
      if (!first && !pq8::byte_sum_bound(ctx.blut, thr, bias, bound)) continue;  // none wins
      const size_t nb = pq8::nblocks(n);
      if (ctx.buf16.size() < nb * pq8::kBlock) ctx.buf16.resize(nb * pq8::kBlock);
      K.pq8_accumulate_u8(L.codes.data(), nb, pq_.M(), ctx.blut.q.data(), ctx.buf16.data());
      if (first) {
        const uint16_t kth = kth_smallest_u16(ctx.buf16.data(), n, sink.capacity());
        bound = pq8::byte_sum_bound_from_sum(ctx.blut, kth, bias);
      }
      const size_t hits = K.select_le_u16(ctx.buf16.data(), n, bound, ctx.sel.data());
      for (size_t h = 0; h < hits; ++h) {
        const uint32_t j = ctx.sel[h];
        float v = pq8::code_sum(L.codes.data(), pq_.M(), j, ctx.lut.data());
        if (bias != 0.f) v += bias;
        if (!(v <= thr)) continue;
        const slot_t s = L.slots[j];
        if (bitset && !test_bit(*bitset, s)) continue;
        sink.push(v, s);
      }
      continue;
    }
    if (ctx.buf.size() < pq8::nblocks(n) * pq8::kBlock)
      ctx.buf.resize(pq8::nblocks(n) * pq8::kBlock);
    float* v = ctx.buf.data();
    if (opt_.codec == IvfCodec::PQ8) {
      K.pq8_adc_blocks(L.codes.data(), pq8::nblocks(n), pq_.M(), ctx.lut.data(), v);
      if (bias != 0.f)
        for (size_t j = 0; j < n; ++j) v[j] += bias;
    } else {
      const PreparedQuery& pq = ctx.vq;
      K.many[static_cast<int>(pq.kind)](pq.q.data(), L.codes.data(), n, d, pq.aux, v);
      pq.finish_all(v, n);
    }
    const size_t hits = K.select_le(v, n, sink.threshold(), ctx.sel.data());
    for (size_t h = 0; h < hits; ++h) {
      const uint32_t j = ctx.sel[h];
      const slot_t s = L.slots[j];
      if (bitset && !test_bit(*bitset, s)) continue;
      sink.push(v[j], s);
    }
  }
}

void IvfIndex::prepare_pq(QueryCtx& ctx, bool ip) const {
  // Inner products (and non-residual codes) share one table across lists; L2 on
  // residuals builds one per probed list in scan_lists.
  ctx.shared_lut = !residual() || ip;
  ctx.blut_shared = false;
  ctx.lut.resize(pq_.M() * pq_.ksub());
  ctx.resid.resize(static_cast<size_t>(d_));
  if (!ctx.shared_lut) {
    if (!precomp_.empty()) {
      ctx.qterm.resize(pq_.M() * pq_.ksub());
      pq_.compute_lut(ctx.q, true, ctx.qterm.data());  // -<q_m, y>
      for (float& v : ctx.qterm) v *= 2.f;
    }
    return;
  }
  pq_.compute_lut(ctx.q, ip, ctx.lut.data());
  if (opt_.codec == IvfCodec::PQ4FastScan) pq4::quantize_lut(ctx.lut.data(), pq_.M(), ctx.qlut);
}

float IvfIndex::list_lut(QueryCtx& ctx, const float* q, const float* qt, uint32_t l,
                         pq4::QuantizedLut* qout, pq8::ByteLut* bout) const {
  const size_t d = static_cast<size_t>(d_);
  const float* c = coarse_.centroid(l);
  if (precomp_.empty()) {
    for (size_t t = 0; t < d; ++t) ctx.resid[t] = q[t] - c[t];
    pq_.compute_lut(ctx.resid.data(), false, ctx.lut.data());
    if (qout) pq4::quantize_lut(ctx.lut.data(), pq_.M(), *qout);
    if (bout) pq8::quantize_lut(ctx.lut.data(), nullptr, pq_.M(), nullptr, *bout);
    return 0.f;
  }
  const size_t n = pq_.M() * pq_.ksub();
  const float* __restrict pre = precomp_.data() + static_cast<size_t>(l) * n;
  if (qout) {  // fast-scan: the sum and its quantisation in one pass
    pq4::quantize_lut_sum(pre, qt, pq_.M(), ctx.lut.data(), *qout);
  } else if (bout) {  // 8-bit PQ byte sums: the same (the sum is written even on failure)
    pq8::quantize_lut(pre, qt, pq_.M(), ctx.lut.data(), *bout);
  } else {
    const float* __restrict qtr = qt;
    float* __restrict out = ctx.lut.data();
    for (size_t i = 0; i < n; ++i) out[i] = pre[i] + qtr[i];
  }
  return simd::kernels().one[static_cast<int>(simd::DistKind::L2_F32)](q, c, d, nullptr);
}

void IvfIndex::prefetch_list(uint32_t l) const {
  // Short lists (many lists over few vectors) spend more time waiting for the list's
  // precomputed table row and first code blocks than scanning them; the next list's
  // are requested while this one is scanned. At most 32 lines of each.
  if (l == kNoList) return;
  if (!precomp_.empty()) {
    const size_t bytes = std::min<size_t>(pq_.M() * pq_.ksub() * sizeof(float), 32 * 64);
    const char* row = reinterpret_cast<const char*>(precomp_.data() +
                                                    static_cast<size_t>(l) * pq_.M() * pq_.ksub());
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(row + o);
  }
  const List& L = lists_[l];
  const size_t cb = std::min<size_t>(L.codes.size(), 32 * 64);
  const char* codes = reinterpret_cast<const char*>(L.codes.data());
  for (size_t o = 0; o < cb; o += 64) __builtin_prefetch(codes + o);
}

void IvfIndex::build_precomputed() {
  precomp_.clear();
  precomp_.shrink_to_fit();
  if (!residual() || is_similarity(metric_) || !pq_.is_trained() || coarse_.k() == 0) return;
  const size_t n = coarse_.k() * pq_.M() * pq_.ksub();
  if (n * sizeof(float) > kPrecomputedMaxBytes) return;
  // RMS norm of a decoded residual: sum over sub-quantizers of the mean ||y||^2.
  double y2 = 0;
  for (float v : pq_.codebooks()) y2 += static_cast<double>(v) * v;
  y2 /= static_cast<double>(pq_.ksub());
  double c2 = 0;
  const size_t d = static_cast<size_t>(d_);
  for (size_t l = 0; l < coarse_.k(); ++l) {
    const float* c = coarse_.centroid(l);
    double s = 0;
    for (size_t t = 0; t < d; ++t) s += static_cast<double>(c[t]) * c[t];
    c2 = std::max(c2, s);
  }
  if (c2 > kPrecomputedMaxRatio * kPrecomputedMaxRatio * y2) return;
  std::vector<float> t(n);
  pq_.residual_terms(coarse_.centroids().data(), coarse_.k(), t.data());
  for (float v : t)
    if (!std::isfinite(v)) return;
  precomp_ = std::move(t);
}

void IvfIndex::reconstruct_slot(slot_t s, float* out) const {
  const size_t d = static_cast<size_t>(d_);
  const List& L = lists_[slot_list_[s]];
  const size_t pos = slot_pos_[s];
  if (!is_pq()) {
    vcodec_.decode(L.codes.data() + pos * vcodec_.code_size(), 1, out);
    return;
  }
  std::vector<uint8_t> code(pq_.M());
  get_code(L, pos, code.data());
  pq_.decode(code.data(), 1, out);
  if (residual()) {
    const float* c = coarse_.centroid(slot_list_[s]);
    for (size_t t = 0; t < d; ++t) out[t] += c[t];
  }
}

void IvfIndex::score_slots(const float* q, const slot_t* slots, size_t n, float* out) const {
  const size_t d = static_cast<size_t>(d_);
  const bool ip = is_similarity(metric_);
  std::vector<float> x(d);
  for (size_t i = 0; i < n; ++i) {
    reconstruct_slot(slots[i], x.data());
    double s = 0;
    if (ip) {
      for (size_t t = 0; t < d; ++t) s += double{q[t]} * x[t];
      s = -s;
    } else {
      for (size_t t = 0; t < d; ++t) s += double{q[t] - x[t]} * (q[t] - x[t]);
    }
    out[i] = static_cast<float>(s);
  }
}

void IvfIndex::rerank(const float* q, ReservoirTopK& cand, size_t k, float* D, idx_t* I) const {
  if (!refine_) {
    const size_t m = cand.size();
    // drain_sorted pads up to the collector's k: give it room, then use the first m.
    std::vector<float> ds(cand.k());
    std::vector<idx_t> is(cand.k());
    cand.drain_sorted(ds.data(), is.data());
    for (size_t i = 0; i < k; ++i) {
      D[i] = i < m ? ds[i] : kInf;
      I[i] = i < m ? is[i] : -1;
    }
    return;
  }
  // The candidates in row order, whatever order the scan left them in: the gather kernel
  // may round a row's score differently by its position in the call (rows go 4 at a
  // time), so a fixed order gives the same bits for the same candidates on every search
  // path (batched or not); it also reads the rows front to back. The exact scores and
  // (score, id) ties decide below.
  const auto& items = cand.items();
  const size_t m = items.size();
  thread_local std::vector<uint32_t> rows;
  thread_local std::vector<float> cs;
  rows.resize(m);
  cs.resize(m);
  for (size_t i = 0; i < m; ++i) rows[i] = static_cast<uint32_t>(items[i].second);
  std::sort(rows.begin(), rows.end());
  const PreparedQuery rq = refine_->prepare(q, metric_);
  const auto& K = simd::kernels();
  K.gather[static_cast<int>(rq.kind)](rq.q.data(), refine_codes_.data(), rows.data(), m,
                                      refine_->code_size(), static_cast<size_t>(d_), rq.aux,
                                      cs.data());
  rq.finish_all(cs.data(), m);
  TopK top(k);
  for (size_t i = 0; i < m; ++i) top.push(cs[i], static_cast<idx_t>(rows[i]));
  cand.clear();
  top.drain_sorted(D, I);
}

size_t IvfIndex::probe_count(const SearchParams& params) const {
  if (flat_pq()) return 1;
  return std::min<size_t>(lists_.size(), params.nprobe > 0 ? params.nprobe : kDefaultNprobe);
}

std::vector<uint64_t> IvfIndex::slot_bitset(const std::vector<slot_t>* allowed) const {
  std::vector<uint64_t> bits;
  if (!allowed) return bits;
  bits.assign((idmap_.size() + 63) / 64, 0);
  for (slot_t s : *allowed) bits[s >> 6] |= uint64_t{1} << (s & 63);
  return bits;
}

bool IvfIndex::float_blocked(size_t nq, const std::vector<slot_t>* allowed) const {
  return flat_pq() && !allowed && opt_.codec == IvfCodec::Vector && vcodec_.levels() == 0 &&
         nq >= kFloatBlockedMinQueries && lists_.size() == 1 &&
         lists_[0].size() >= kFloatBlockedMinRows;
}

void IvfIndex::search_impl(const float* q, size_t nq, size_t k, const SearchParams& params,
                           const std::vector<slot_t>* allowed, float* D, idx_t* I) const {
  const size_t d = static_cast<size_t>(d_);
  const size_t nprobe = probe_count(params);
  const size_t kc = refine_ ? std::max(k, params.rerank > 0 ? static_cast<size_t>(params.rerank)
                                                            : kDefaultRerankFactor * k)
                            : k;
  const int threads = params.threads;
  const bool ip = is_similarity(metric_);
  // Small filters: score exactly the admitted vectors' codes.
  if (allowed && allowed->size() <= kDirectFilterMax) {
    parallel_for(
        nq, 1,
        [&](size_t b, size_t e) {
          std::vector<float> sc(allowed->size());
          for (size_t i = b; i < e; ++i) {
            score_slots(q + i * d, allowed->data(), allowed->size(), sc.data());
            ReservoirTopK top(kc);
            for (size_t j = 0; j < allowed->size(); ++j)
              top.push(sc[j], static_cast<idx_t>((*allowed)[j]));
            rerank(q + i * d, top, k, D + i * k, I + i * k);
          }
        },
        threads);
    return;
  }
  const std::vector<uint64_t> bits = slot_bitset(allowed);
  std::vector<float> cd(nq * nprobe);
  std::vector<uint32_t> ci(nq * nprobe, 0);
  if (!flat_pq()) coarse_search(q, nq, nprobe, params.ef_search, threads, cd.data(), ci.data());
  if (opt_.codec == IvfCodec::PQ4FastScan && nq >= kGroupMinQueries) {
    search_grouped(q, nq, k, kc, nprobe, cd.data(), ci.data(), allowed ? &bits : nullptr, threads,
                   D, I);
    return;
  }
  auto one_query = [&](size_t i) {
    QueryCtx& ctx = thread_context();
    ctx.q = q + i * d;
    if (is_pq())
      prepare_pq(ctx, ip);
    else
      ctx.vq = vcodec_.prepare(ctx.q, metric_);
    if (ctx.tops.empty()) ctx.tops.emplace_back(kc);
    ReservoirTopK& top = ctx.tops[0];  // reused across queries: no allocation per query
    top.reset(kc);
    TopSink sink{top};
    scan_lists(ctx, ci.data() + i * nprobe, flat_pq() ? nullptr : cd.data() + i * nprobe, nprobe,
               allowed ? &bits : nullptr, sink);
    finish_query(ctx, top, k, ci.data() + i * nprobe, nprobe, allowed ? &bits : nullptr, D + i * k,
                 I + i * k);
  };
  const size_t pool = static_cast<size_t>(threads > 0 ? threads : get_num_threads());
  if (flat_pq() && !allowed && opt_.codec == IvfCodec::Vector && vcodec_.levels() > 0 && nq >= 2 &&
      lists_.size() == 1) {
    // Flat,<BIN|BEBR<L>>,Refine: tiles of queries per pass over the one list
    // (scan_binary_tiles, the Flat scan), then each query's candidates are re-ranked.
    const List& L = lists_[0];
    std::vector<ReservoirTopK> cand =
        scan_binary_tiles(vcodec_, metric_, q, nq, L.codes.data(), L.size(), kc, threads);
    parallel_for(
        nq, 1,
        [&](size_t b, size_t e) {
          std::vector<float> cs(kc);
          std::vector<idx_t> cj(kc);
          for (size_t i = b; i < e; ++i) {
            cand[i].drain_sorted(cs.data(), cj.data());
            ReservoirTopK top(kc);
            for (size_t j = 0; j < kc && cj[j] >= 0; ++j)
              top.push(cs[j], static_cast<idx_t>(L.slots[static_cast<size_t>(cj[j])]));
            rerank(q + i * d, top, k, D + i * k, I + i * k);
          }
        },
        threads);
    return;
  }
  const bool blocked = float_blocked(nq, allowed);
  if (blocked || float_grouped(nq, kc, nprobe, static_cast<int>(pool), allowed)) {
    // Batches of float-like codes: each query's kc best (score, slot), proven equal to the
    // one-query scan's (else that query runs the one-query scan), then re-ranked.
    // - Flat,<F16|BF16|SQ8>,Refine (one list): Flat's batched scan (tiles of queries
    //   against blocks of rows decoded once per call), candidates kept by slot.
    // - IVF<n>,<Flat|F16|BF16|SQ8>: the queries grouped by probed list, each list's rows
    //   scored against its group in dot tiles (ivf_float_groups.cpp).
    std::vector<float> cs(nq * kc);
    std::vector<idx_t> cslot(nq * kc);
    std::vector<uint8_t> unproven;
    if (blocked) {
      const List& L = lists_[0];
      // Candidates by slot (slot_pos_: slot -> row), so ties go to the lower slot.
      scan_float_blocks(vcodec_, metric_, q, nq,
                        {L.codes.data(), L.size(), nullptr, lists_max_norm2(), nullptr,
                         L.slots.data(), slot_pos_.data()},
                        kc, static_cast<int>(pool), cs.data(), cslot.data(), unproven);
    } else {
      search_float_grouped(q, nq, kc, nprobe, ci.data(), static_cast<int>(pool), cs.data(),
                           cslot.data(), unproven);
    }
    parallel_for(
        nq, 1,
        [&](size_t b, size_t e) {
          for (size_t i = b; i < e; ++i) {
            if (unproven[i]) {
              one_query(i);
              continue;
            }
            ReservoirTopK top(kc);
            for (size_t j = 0; j < kc && cslot[i * kc + j] >= 0; ++j)
              top.push(cs[i * kc + j], cslot[i * kc + j]);
            rerank(q + i * d, top, k, D + i * k, I + i * k);
          }
        },
        threads);
    return;
  }
  if (nq < pool && nprobe >= 2) {
    // Fewer queries than threads: a query with enough work to amortise waking the pool
    // has its lists split across the threads (measured on MiniLM at nprobe 64, 2
    // threads: IVF1024,PQ192 637 -> 440 us; fast-scan, 99 us of work, got slower).
    for (size_t i = 0; i < nq; ++i) {
      double work = 0;
      for (size_t p = 0; p < nprobe; ++p)
        if (ci[i * nprobe + p] != kNoList)
          work += static_cast<double>(lists_[ci[i * nprobe + p]].size());
      if (work * scan_cost_per_vector() >= kSplitWork)
        search_split(q + i * d, k, kc, nprobe, cd.data() + i * nprobe, ci.data() + i * nprobe,
                     allowed ? &bits : nullptr, threads, std::min(pool, nprobe), D + i * k,
                     I + i * k);
      else
        one_query(i);
    }
    return;
  }
  parallel_for(
      nq, 1,
      [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) one_query(i);
      },
      threads);
}

double IvfIndex::scan_cost_per_vector() const {
  // Rough relative cost of scanning one vector, in "bytes streamed" units: 8-bit PQ
  // lookups cost about 4 units each (gathers), fast-scan half a byte per sub-quantizer.
  switch (opt_.codec) {
    case IvfCodec::Vector: return static_cast<double>(vcodec_.code_size());
    case IvfCodec::PQ8: return 4.0 * static_cast<double>(pq_.M());
    case IvfCodec::PQ4FastScan: return 0.5 * static_cast<double>(pq_.M());
  }
  return 0;
}

void IvfIndex::search_split(const float* qi, size_t k, size_t kc, size_t nprobe, const float* cd,
                            const uint32_t* ci, const std::vector<uint64_t>* bits, int threads,
                            size_t nparts, float* D, idx_t* I) const {
  // The query's tables are prepared once (proto) and copied into each thread's context,
  // which may rebuild per-list tables while it scans its share of the lists (every
  // nparts-th probe, so near and far lists are spread evenly). The parts' candidates
  // are merged; the result equals the one-thread scan (see u16_threshold).
  const bool ip = is_similarity(metric_);
  QueryCtx proto;
  proto.q = qi;
  if (is_pq())
    prepare_pq(proto, ip);
  else
    proto.vq = vcodec_.prepare(qi, metric_);
  auto load = [&](QueryCtx& ctx) {
    ctx.q = qi;
    ctx.vq = proto.vq;
    ctx.shared_lut = proto.shared_lut;
    ctx.lut = proto.lut;
    ctx.qlut = proto.qlut;
    ctx.blut = proto.blut;
    ctx.blut_shared = proto.blut_shared;
    ctx.qterm = proto.qterm;
    ctx.resid.resize(static_cast<size_t>(d_));
  };
  std::vector<ReservoirTopK> parts(nparts, ReservoirTopK(kc));
  parallel_for(
      nparts, 1,
      [&](size_t b, size_t e) {
        QueryCtx& ctx = thread_context();
        load(ctx);
        std::vector<uint32_t> lists;
        std::vector<float> coarse;
        for (size_t part = b; part < e; ++part) {
          lists.clear();
          coarse.clear();
          for (size_t p = part; p < nprobe; p += nparts) {
            lists.push_back(ci[p]);
            coarse.push_back(cd[p]);
          }
          TopSink sink{parts[part]};
          scan_lists(ctx, lists.data(), flat_pq() ? nullptr : coarse.data(), lists.size(), bits,
                     sink);
        }
      },
      threads);
  ReservoirTopK top(kc);
  for (const ReservoirTopK& part : parts) top.merge(part);
  QueryCtx& ctx = thread_context();
  load(ctx);
  finish_query(ctx, top, k, ci, nprobe, bits, D, I);
}

void IvfIndex::finish_query(QueryCtx& ctx, ReservoirTopK& top, size_t k, const uint32_t* probes,
                            size_t nprobe, const std::vector<uint64_t>* bits, float* D,
                            idx_t* I) const {
  const size_t nl = lists_.size();
  if (bits && top.size() < k && nprobe < nl) {
    // The filter left too few results in the probed lists: scan the others.
    std::vector<uint8_t> seen(nl, 0);
    for (size_t p = 0; p < nprobe; ++p)
      if (probes[p] != kNoList) seen[probes[p]] = 1;
    std::vector<uint32_t> rest;
    for (size_t l = 0; l < nl; ++l)
      if (!seen[l]) rest.push_back(static_cast<uint32_t>(l));
    TopSink sink{top};
    scan_lists(ctx, rest.data(), nullptr, rest.size(), bits, sink);
  }
  rerank(ctx.q, top, k, D, I);
}

void IvfIndex::search_grouped(const float* q, size_t nq, size_t k, size_t kc, size_t nprobe,
                              const float* cd, const uint32_t* ci,
                              const std::vector<uint64_t>* bits, int threads, float* D,
                              idx_t* I) const {
  // Queries are taken in chunks; inside a chunk every probed list is scanned once for
  // all the chunk's queries that probe it, up to 4 at a time (pq4_accumulate_nq loads
  // and unpacks each block's codes once per group). Lists are visited in list order,
  // not nearest first, so thresholds tighten a little later; the kept candidates are
  // the same (see u16_threshold).
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(d_);
  const bool ip = is_similarity(metric_);
  const size_t M = pq_.M(), npairs = pq4::npairs(M);
  const size_t nthreads = context_slots(threads);
  const size_t qc = std::clamp<size_t>((nq + nthreads - 1) / nthreads, 1, kGroupChunk);
  const size_t nchunks = (nq + qc - 1) / qc;
  parallel_for(
      nchunks, 1,
      [&](size_t cb, size_t ce) {
        QueryCtx& ctx = thread_context();
        for (size_t c = cb; c < ce; ++c) {
          const size_t b = c * qc, e = std::min(nq, b + qc), m = e - b;
          // Per query: its shared table (quantised) and its candidate heap.
          std::vector<pq4::QuantizedLut> qluts(m);
          std::vector<ReservoirTopK>& tops = ctx.tops;  // reused: no fresh pages per call
          if (tops.size() < m) tops.resize(m, ReservoirTopK(kc));
          for (size_t j = 0; j < m; ++j) tops[j].reset(kc);
          std::vector<float>& qterms = ctx.qterms;  // per query: -2<q, y> (precomputed)
          if (!precomp_.empty()) qterms.resize(m * M * pq_.ksub());
          for (size_t j = 0; j < m; ++j) {
            ctx.q = q + (b + j) * d;
            prepare_pq(ctx, ip);
            if (ctx.shared_lut) qluts[j] = ctx.qlut;
            if (!ctx.shared_lut && !precomp_.empty())
              std::copy(ctx.qterm.begin(), ctx.qterm.end(), qterms.begin() + j * ctx.qterm.size());
          }
          const bool shared = ctx.shared_lut;
          // Counting sort by (rank phase, list); queries stay in order within a list.
          // Phase f holds probe ranks [2^(f-1), 2^f) (rank 0 alone in phase 0): every
          // query scans its nearest lists first, so its threshold tightens early, as
          // in the one-query scan, and lists are still shared within a phase.
          const size_t nl = lists_.size();
          const size_t nkeys = nl * rank_phase(nprobe - 1) + nl;
          std::vector<uint32_t>& start = ctx.list_start;
          start.assign(nkeys + 1, 0);
          for (size_t j = 0; j < m; ++j)
            for (size_t p = 0; p < nprobe; ++p) {
              const uint32_t l = ci[(b + j) * nprobe + p];
              if (l != kNoList) ++start[rank_phase(p) * nl + l + 1];
            }
          for (size_t key = 0; key < nkeys; ++key) start[key + 1] += start[key];
          std::vector<QueryCtx::Probe>& probes = ctx.probes;
          probes.resize(start[nkeys]);
          for (size_t j = 0; j < m; ++j)
            for (size_t p = 0; p < nprobe; ++p) {
              const uint32_t l = ci[(b + j) * nprobe + p];
              if (l != kNoList)
                probes[start[rank_phase(p) * nl + l]++] = {l, static_cast<uint32_t>(j),
                                                           static_cast<uint32_t>(p)};
            }
          pq4::QuantizedLut own[4];  // per-list tables (L2 residuals)
          for (size_t g0 = 0; g0 < probes.size();) {
            const uint32_t l = probes[g0].list;
            size_t g1 = g0;
            while (g1 < probes.size() && probes[g1].list == l) ++g1;
            if (g1 < probes.size()) prefetch_list(probes[g1].list);
            const List& L = lists_[l];
            const size_t n = L.size(), nb = pq4::nblocks(n);
            if (n == 0) {
              g0 = g1;
              continue;
            }
            if (ctx.buf16.size() < 4 * nb * pq4::kBlock) ctx.buf16.resize(4 * nb * pq4::kBlock);
            if (ctx.sel.size() < n) ctx.sel.resize(n);
            for (size_t h0 = g0; h0 < g1; h0 += 4) {
              const uint8_t* luts[4];
              uint16_t* outs[4];
              float base[4], scale[4];
              uint16_t t16[4];
              uint32_t who[4];
              size_t nq_g = 0;
              for (size_t h = h0; h < std::min(g1, h0 + 4); ++h) {
                const QueryCtx::Probe& pr = probes[h];
                const float* qi = q + (b + pr.query) * d;
                const pq4::QuantizedLut* ql = &qluts[pr.query];
                float bias = 0.f;
                if (!shared) {
                  bias =
                      list_lut(ctx, qi, qterms.data() + pr.query * M * pq_.ksub(), l, &own[nq_g]);
                  ql = &own[nq_g];
                } else if (residual() && ip) {
                  bias = cd[(b + pr.query) * nprobe + pr.rank];
                }
                uint16_t t;
                if (!u16_threshold(tops[pr.query].threshold(), bias + ql->bias, ql->scale, t))
                  continue;
                luts[nq_g] = ql->packed.data();
                outs[nq_g] = ctx.buf16.data() + nq_g * nb * pq4::kBlock;
                base[nq_g] = bias + ql->bias;
                scale[nq_g] = ql->scale;
                t16[nq_g] = t;
                who[nq_g] = pr.query;
                ++nq_g;
              }
              if (nq_g == 0) continue;
              K.pq4_accumulate_nq(L.codes.data(), nb, npairs, luts, nq_g, outs);
              // Locals: the loop below calls push, after which the compiler would
              // reload ctx's vectors (through the thread-local lookup) per hit.
              uint32_t* const sel = ctx.sel.data();
              const slot_t* const slots = L.slots.data();
              for (size_t j = 0; j < nq_g; ++j) {
                const float inv_a = 1.f / scale[j];
                ReservoirTopK& top = tops[who[j]];
                const uint16_t* const sums = outs[j];
                const size_t hits =
                    bounds_itself(top.threshold(), kc, n, bits != nullptr)
                        ? select_bounded_first_list(K, sums, n, kc, base[j], inv_a, sel)
                        : K.select_le_u16(sums, n, t16[j], sel);
                for (size_t hh = 0; hh < hits; ++hh) {
                  const uint32_t r = sel[hh];
                  const slot_t s = slots[r];
                  if (bits && !test_bit(*bits, s)) continue;
                  top.push(pq4_score(base[j], sums[r], inv_a), static_cast<idx_t>(s));
                }
              }
            }
            g0 = g1;
          }
          for (size_t j = 0; j < m; ++j) {
            const size_t i = b + j;
            ctx.q = q + i * d;
            if (bits && tops[j].size() < k) prepare_pq(ctx, ip);  // tables for the fallback
            finish_query(ctx, tops[j], k, ci + i * nprobe, nprobe, bits, D + i * k, I + i * k);
          }
        }
      },
      threads);
}

void IvfIndex::range_impl(const float* q, size_t nq, float score_radius, const SearchParams& params,
                          const std::vector<slot_t>* allowed, RangeResult& out) const {
  const size_t d = static_cast<size_t>(d_);
  const size_t nprobe = probe_count(params);
  const bool ip = is_similarity(metric_);
  const std::vector<uint64_t> bits = slot_bitset(allowed);
  std::vector<float> cd(nq * nprobe);
  std::vector<uint32_t> ci(nq * nprobe, 0);
  if (!flat_pq())
    coarse_search(q, nq, nprobe, params.ef_search, params.threads, cd.data(), ci.data());
  std::vector<std::vector<std::pair<float, slot_t>>> per(nq);
  parallel_for(
      nq, 1,
      [&](size_t b, size_t e) {
        QueryCtx& ctx = thread_context();
        const auto& K = simd::kernels();
        for (size_t i = b; i < e; ++i) {
          ctx.q = q + i * d;
          RangeSink sink{score_radius, {}};
          if (refine_) {
            // Exact within the probed lists: every vector there is scored with the
            // Refine codec (the codes' approximate distances would miss members near
            // the radius).
            const PreparedQuery rq = refine_->prepare(ctx.q, metric_);
            for (size_t p = 0; p < nprobe; ++p) {
              const uint32_t l = ci[i * nprobe + p];
              if (l == kNoList || lists_[l].size() == 0) continue;
              const List& L = lists_[l];
              ctx.buf.resize(L.size());
              K.gather[static_cast<int>(rq.kind)](rq.q.data(), refine_codes_.data(), L.slots.data(),
                                                  L.size(), refine_->code_size(), d, rq.aux,
                                                  ctx.buf.data());
              rq.finish_all(ctx.buf.data(), L.size());
              for (size_t j = 0; j < L.size(); ++j)
                if (!allowed || test_bit(bits, L.slots[j])) sink.push(ctx.buf[j], L.slots[j]);
            }
          } else {
            if (is_pq())
              prepare_pq(ctx, ip);
            else
              ctx.vq = vcodec_.prepare(ctx.q, metric_);
            scan_lists(ctx, ci.data() + i * nprobe, flat_pq() ? nullptr : cd.data() + i * nprobe,
                       nprobe, allowed ? &bits : nullptr, sink);
          }
          auto& hits = sink.hits;
          std::sort(hits.begin(), hits.end());
          per[i] = std::move(hits);
        }
      },
      params.threads);
  out = RangeResult::concat(per, [](const std::pair<float, slot_t>& h) {
    return std::make_pair(h.first, static_cast<idx_t>(h.second));
  });
}

void IvfIndex::reconstruct_impl(const slot_t* slots, size_t n, float* out) const {
  const size_t d = static_cast<size_t>(d_);
  for (size_t i = 0; i < n; ++i) reconstruct_slot(slots[i], out + i * d);
}

// ---------------------------------------------------------------------- persistence

void IvfIndex::write_impl(io::Manifest& m, std::vector<Section>& sections,
                          std::vector<std::vector<uint8_t>>& scratch) const {
  m.set("structure", "ivf");
  m.set("nlist", static_cast<uint64_t>(opt_.nlist));
  m.set("trained", is_trained());
  m.set("by_residual", opt_.by_residual);
  m.set("seed", static_cast<uint64_t>(opt_.seed));
  if (!flat_pq() && coarse_.k() == opt_.nlist)
    sections.push_back(
        {"IVFCENT", coarse_.centroids().data(), coarse_.centroids().size() * sizeof(float)});
  if (coarse_hnsw_) {
    scratch.push_back(coarse_hnsw_->to_bytes());
    sections.push_back({"IVFHNSW", scratch.back().data(), scratch.back().size()});
  }
  if (pq_.is_trained())
    sections.push_back({"PQCB", pq_.codebooks().data(), pq_.codebooks().size() * sizeof(float)});
  write_codec_sections(vcodec_, sections);
  // Lists: sizes, then all slots and all codes concatenated in list order.
  std::vector<uint8_t> sizes(lists_.size() * sizeof(uint64_t)), slots, codes;
  size_t nslot = 0, ncode = 0;
  for (const List& l : lists_) {
    nslot += l.size();
    ncode += l.codes.size();
  }
  slots.resize(nslot * sizeof(slot_t));
  codes.resize(ncode);
  size_t so = 0, co = 0;
  for (size_t i = 0; i < lists_.size(); ++i) {
    const List& l = lists_[i];
    const uint64_t sz = l.size();
    std::memcpy(sizes.data() + i * sizeof(uint64_t), &sz, sizeof sz);
    if (sz) std::memcpy(slots.data() + so, l.slots.data(), sz * sizeof(slot_t));
    if (!l.codes.empty()) std::memcpy(codes.data() + co, l.codes.data(), l.codes.size());
    so += sz * sizeof(slot_t);
    co += l.codes.size();
  }
  for (auto* v : {&sizes, &slots, &codes}) scratch.push_back(std::move(*v));
  const size_t base = scratch.size() - 3;
  sections.push_back({"IVFSIZES", scratch[base].data(), scratch[base].size()});
  sections.push_back({"IVFSLOTS", scratch[base + 1].data(), scratch[base + 1].size()});
  sections.push_back({"IVFCODES", scratch[base + 2].data(), scratch[base + 2].size()});
  if (refine_) sections.push_back({"REFINE", refine_codes_.data(), refine_codes_.size()});
}

void IvfIndex::read_impl(const io::ContainerReader& r, const io::Manifest& m, size_t nslots) {
  ANNX_CHECK(FormatError, m.str("structure") == "ivf", "corrupt index file: structure '",
             m.str("structure"), "' does not match spec '", spec(), "'");
  ANNX_CHECK(FormatError, m.u64("nlist") == opt_.nlist, "corrupt index file: nlist ",
             m.str("nlist"), " does not match spec '", spec(), "'");
  opt_.by_residual = m.boolean("by_residual");
  opt_.seed = m.u64("seed");
  const bool trained = m.boolean("trained");
  const size_t d = static_cast<size_t>(d_);
  if (trained) {
    if (!flat_pq()) {
      SharedArray<float> c;
      load_section_array(r, "IVFCENT", opt_.nlist * d, c);
      ANNX_CHECK(FormatError, first_non_finite(c.data(), opt_.nlist * d) == opt_.nlist * d,
                 "corrupt index file: IVFCENT holds a non-finite centroid");
      ANNX_CHECK(FormatError, first_oversized_row(c.data(), opt_.nlist, d) == opt_.nlist,
                 "corrupt index file: IVFCENT holds a centroid beyond annx's range (2^62)");
      coarse_ = CentroidTable(c.data(), opt_.nlist, d, is_similarity(metric_));
      if (opt_.hnsw_m > 0) {
        // The graph train() builds: HNSW<M>, F32, over the centroids with ids 0..nlist-1
        // (its ids are used as list numbers).
        const Metric gm = is_similarity(metric_) ? Metric::IP : Metric::L2;
        std::unique_ptr<Index> g = load_nested_index(
            r, "IVFHNSW", {"HNSW" + std::to_string(opt_.hnsw_m), gm, d_, opt_.nlist});
        auto* h = dynamic_cast<HnswIndex*>(g.get());
        ANNX_CHECK(FormatError, h, "corrupt index file: IVFHNSW is not an HNSW graph");
        std::vector<idx_t> ids(opt_.nlist);
        std::iota(ids.begin(), ids.end(), idx_t{0});
        std::vector<float> v(opt_.nlist * d);
        try {
          h->reconstruct(ids.data(), ids.size(), v.data());
        } catch (const InvalidArgument&) {
          throw FormatError("corrupt index file: the coarse HNSW graph's ids are not 0..nlist-1");
        }
        ANNX_CHECK(FormatError,
                   std::memcmp(v.data(), coarse_.centroids().data(), v.size() * sizeof(float)) == 0,
                   "corrupt index file: the coarse HNSW graph's vectors are not the centroids");
        g.release();
        coarse_hnsw_.reset(h);
      }
    }
    if (is_pq()) {
      SharedArray<float> cb;
      load_section_array(r, "PQCB", pq_.M() * pq_.ksub() * pq_.dsub(), cb);
      pq_.set_codebooks(
          std::vector<float>(cb.data(), cb.data() + pq_.M() * pq_.ksub() * pq_.dsub()));
      // The largest reconstruction must stay within annx's range (finite distances).
      double worst = 0;
      for (size_t mi = 0; mi < pq_.M(); ++mi) {
        double w = 0;
        for (size_t k = 0; k < pq_.ksub(); ++k)
          w = std::max(w, norm2_f64(cb.data() + (mi * pq_.ksub() + k) * pq_.dsub(), pq_.dsub()));
        worst += w;
      }
      ANNX_CHECK(FormatError, worst <= kMaxNorm2,
                 "corrupt index file: PQCB codewords decode beyond annx's range (2^62)");
    }
  }
  read_codec_sections(r, m, vcodec_);
  ANNX_CHECK(FormatError, nslots == 0 || is_trained(),
             "corrupt index file: untrained index with vectors");
  SharedArray<uint64_t> sizes;
  load_section_array(r, "IVFSIZES", lists_.size(), sizes);
  size_t total = 0;
  for (size_t i = 0; i < lists_.size(); ++i) {
    ANNX_CHECK(FormatError, sizes.data()[i] <= nslots, "corrupt index file: list ", i, " has ",
               sizes.data()[i], " entries for ", nslots, " slots");
    total += sizes.data()[i];
  }
  ANNX_CHECK(FormatError, total <= nslots, "corrupt index file: lists hold ", total,
             " entries for ", nslots, " slots");
  auto list_bytes = [&](size_t n) { return list_code_bytes(n); };
  size_t code_total = 0;
  for (size_t i = 0; i < lists_.size(); ++i) code_total += list_bytes(sizes.data()[i]);
  const auto slot_bytes = r.section("IVFSLOTS");
  const auto code_bytes = r.section("IVFCODES");
  ANNX_CHECK(FormatError,
             slot_bytes.size() == total * sizeof(slot_t) && code_bytes.size() == code_total,
             "corrupt index file: list sections have the wrong size");
  size_t so = 0, co = 0;
  for (size_t i = 0; i < lists_.size(); ++i) {
    List& L = lists_[i];
    const size_t n = sizes.data()[i], nb = list_bytes(n);
    L.slots.resize(n);
    if (n) std::memcpy(L.slots.data(), slot_bytes.data() + so, n * sizeof(slot_t));
    L.codes.assign(code_bytes.begin() + static_cast<std::ptrdiff_t>(co),
                   code_bytes.begin() + static_cast<std::ptrdiff_t>(co + nb));
    so += n * sizeof(slot_t);
    co += nb;
  }
  if (refine_) {
    const auto rb = r.section("REFINE");
    ANNX_CHECK(FormatError, rb.size() == nslots * refine_->code_size(),
               "corrupt index file: section REFINE has ", rb.size(), " bytes, expected ",
               nslots * refine_->code_size());
    refine_codes_.assign(rb.begin(), rb.end());
    check_loaded_codes(*refine_, refine_codes_.data(), nslots, refine_->code_size(), "REFINE");
  }
  if (opt_.codec == IvfCodec::Vector)
    for (const List& L : lists_)
      check_loaded_codes(vcodec_, L.codes.data(), L.size(), vcodec_.code_size(), "IVFCODES");
  slot_list_.assign(nslots, kNoList);
  slot_pos_.assign(nslots, 0);
  for (size_t l = 0; l < lists_.size(); ++l)
    for (size_t j = 0; j < lists_[l].size(); ++j) {
      const slot_t s = lists_[l].slots[j];
      ANNX_CHECK(FormatError, s < nslots && slot_list_[s] == kNoList, "corrupt index file: list ",
                 l, " holds slot ", s, " which is out of range or ", "listed twice");
      slot_list_[s] = static_cast<uint32_t>(l);
      slot_pos_[s] = static_cast<uint32_t>(j);
    }
}

void IvfIndex::after_load() {
  free_slots_.clear();
  for (size_t s = 0; s < idmap_.size(); ++s) {
    const bool live = idmap_.id(static_cast<slot_t>(s)) != IdMap::kNoId;
    ANNX_CHECK(FormatError, live == (slot_list_[s] != kNoList), "corrupt index file: slot ", s,
               live ? " has an id but is in no list" : " is a hole but is in a list");
    if (!live) free_slots_.push_back(static_cast<slot_t>(s));
  }
  std::sort(free_slots_.begin(), free_slots_.end(), std::greater<slot_t>());
  build_precomputed();  // derived from the loaded centroids and codebooks
  max_norm2_.store(-1.f);
}

}  // namespace annx
