// IvfIndex's grouped batch scan of float-like list codes (IVF<n>,Flat / F16 / BF16 / SQ8).
//
// A batch's queries are grouped by the lists they probe; each list is read once per
// group, its rows decoded to float32 in blocks, and the group's queries are scored
// against a block at once by the register-blocked dot tile (rows reused across queries),
// instead of one kernel pass per (query, list). As in Flat's batched scan
// (scan_float_blocks), the tile's scores round differently from the one-query kernel's,
// so each query keeps kc + max(kc, 8) candidates, re-scores them with the one-query
// scan's kernel and is answered from them only where the rounding-error bound proves it
// (common/l2_bound.h); the caller re-runs the others one query at a time. The answers
// are those of the one-query scan.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "annx/common/l2_bound.h"
#include "annx/common/thread_pool.h"
#include "annx/index/flat.h"
#include "annx/index/ivf.h"
#include "annx/simd/kernels.h"

namespace annx {
namespace {

constexpr size_t kRowBlock = 256;   // rows decoded and scored at once
constexpr size_t kQueryTile = 64;   // queries per dot tile
constexpr size_t kMaxChunk = 4096;  // queries grouped together at most
// Multiply-adds of one chunk at most (~0.1-0.5 s here), so that Ctrl-C, seen between
// chunks, stays prompt.
constexpr double kChunkTerms = 2147483648.0;
// Narrow codecs take the grouped scan only on lists this long on average (rows, or rows
// x dimensions); see float_grouped.
constexpr double kNarrowMinListRows = 128;
constexpr double kNarrowMinListTerms = 32768;

/// Queries per chunk (one thread's group of queries): at most kMaxChunk, about 32 MiB of
/// collectors (2 x keep entries each) and kChunkTerms multiply-adds of scanning.
size_t chunk_queries(size_t nq, int threads, size_t keep, double terms_per_query) {
  const size_t nthreads = static_cast<size_t>(std::max(1, threads));
  const size_t mem_cap = std::max<size_t>(64, (size_t{32} << 20) / (keep * 2 * 12));
  const size_t work_cap =
      static_cast<size_t>(std::max(16.0, kChunkTerms / std::max(1.0, terms_per_query)));
  return std::max<size_t>(1,
                          std::min({kMaxChunk, mem_cap, work_cap, (nq + nthreads - 1) / nthreads}));
}

}  // namespace

double IvfIndex::rows_per_list() const {
  size_t rows = 0;
  for (const List& L : lists_) rows += L.size();
  return static_cast<double>(rows) / static_cast<double>(std::max<size_t>(1, lists_.size()));
}

bool IvfIndex::float_grouped(size_t nq, size_t kc, size_t nprobe, int threads,
                             const std::vector<slot_t>* allowed) const {
  if (flat_pq() || allowed || opt_.codec != IvfCodec::Vector || vcodec_.levels() > 0) return false;
  if (nq < kFloatGroupMinQueries || lists_.empty()) return false;
  if (vcodec_.kind() != CodecKind::F32) {
    // Narrow codes are decoded per list and group of queries, which short lists do not
    // repay: measured (1,000 queries, nprobe 16, 1 thread, CPU time) SQ8 / F16 ran
    // 0.76-0.95x the one-query scan with 39-98 rows of d = 50 or 39 rows of d = 384 per
    // list, and 1.2-2.4x with 195 rows of d = 50 or 98 rows of d = 384.
    const double per_list = rows_per_list();
    if (per_list < kNarrowMinListRows && per_list * d_ < kNarrowMinListTerms) return false;
  }
  // Queries per probed list in a thread's chunk: below a few, the tile (and for l2 the
  // rows' norms) costs more than it saves over the one-query kernel.
  const size_t keep = kc + std::max<size_t>(kc, 8);
  const size_t chunk =
      chunk_queries(nq, threads, keep, static_cast<double>(nprobe) * rows_per_list() * d_);
  return static_cast<double>(chunk) * static_cast<double>(nprobe) >=
         kFloatGroupMinShare * static_cast<double>(lists_.size());
}

float IvfIndex::lists_max_norm2() const {
  float v = max_norm2_.load();
  if (v < 0.f) {  // concurrent searches may both compute it: same value
    v = 0.f;
    for (const List& L : lists_)
      v = std::max(v, decoded_max_norm2(vcodec_, L.codes.data(), 0, L.size()));
    max_norm2_.store(v);
  }
  return v;
}

void IvfIndex::search_float_grouped(const float* q, size_t nq, size_t kc, size_t nprobe,
                                    const uint32_t* ci, int threads, float* cand_scores,
                                    idx_t* cand_slots, std::vector<uint8_t>& unproven) const {
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(d_);
  const size_t cs = vcodec_.code_size();
  const bool l2 = metric_ == Metric::L2;
  const bool decoded = vcodec_.kind() != CodecKind::F32;
  const size_t keep = kc + std::max<size_t>(kc, 8);  // candidates kept per query
  const int ip_kind = static_cast<int>(simd::DistKind::IP_F32);
  // The bound's scale: the largest decoded row norm (SQ8: plus |min|, as in Flat).
  const float max_norm2 = blocked_bound_norm2(vcodec_, lists_max_norm2());
  unproven.assign(nq, 0);
  // The same chunks as float_grouped decided on.
  const size_t qc = chunk_queries(
      nq, threads, keep, static_cast<double>(nprobe) * rows_per_list() * static_cast<double>(d));
  const size_t nchunks = (nq + qc - 1) / qc;
  const size_t nl = lists_.size();
  parallel_for(
      nchunks, 1,
      [&](size_t cb, size_t ce) {
        std::vector<ReservoirTopK> tops;
        std::vector<uint32_t> start, order;
        std::vector<float> rows(decoded ? kRowBlock * d : 0), norms(l2 ? kRowBlock : 0);
        std::vector<float> qt(kQueryTile * d), tile(kQueryTile * kRowBlock);
        std::vector<uint32_t> sel(kRowBlock);
        for (size_t c = cb; c < ce; ++c) {
          const size_t b = c * qc, e = std::min(nq, b + qc), m = e - b;
          if (tops.size() < m) tops.resize(m, ReservoirTopK(keep));
          for (size_t j = 0; j < m; ++j) tops[j].reset(keep);
          // Counting sort of the chunk's (list, query) probes by list.
          start.assign(nl + 1, 0);
          for (size_t j = 0; j < m; ++j)
            for (size_t p = 0; p < nprobe; ++p)
              if (const uint32_t l = ci[(b + j) * nprobe + p]; l < nl) ++start[l + 1];
          for (size_t l = 0; l < nl; ++l) start[l + 1] += start[l];
          order.resize(start[nl]);
          for (size_t j = 0; j < m; ++j)
            for (size_t p = 0; p < nprobe; ++p)
              if (const uint32_t l = ci[(b + j) * nprobe + p]; l < nl)
                order[start[l]++] = static_cast<uint32_t>(j);
          size_t g0 = 0;
          for (size_t l = 0; l < nl; ++l) {
            const size_t g1 = start[l];             // after the fill, start[l] is the group's end
            if ((l & 63) == 63) check_interrupt();  // the calling thread's Ctrl-C
            const List& L = lists_[l];
            const size_t n = L.size();
            for (size_t xb = 0; xb < n && g0 < g1; xb += kRowBlock) {
              const size_t nx = std::min(kRowBlock, n - xb);
              const float* xr = reinterpret_cast<const float*>(L.codes.data() + xb * cs);
              if (decoded) {
                vcodec_.decode(L.codes.data() + xb * cs, nx, rows.data());
                xr = rows.data();
              }
              if (l2)
                for (size_t j = 0; j < nx; ++j)
                  norms[j] = K.one[ip_kind](xr + j * d, xr + j * d, d, nullptr);
              for (size_t a0 = g0; a0 < g1; a0 += kQueryTile) {
                const size_t mq = std::min(kQueryTile, g1 - a0);
                for (size_t a = 0; a < mq; ++a)
                  std::memcpy(qt.data() + a * d, q + (b + order[a0 + a]) * d, d * sizeof(float));
                K.dot_f32_tile(qt.data(), mq, xr, nx, d, tile.data(), kRowBlock);
                for (size_t a = 0; a < mq; ++a) {
                  float* row = tile.data() + a * kRowBlock;
                  // L2 up to the query's own norm: |x|^2 - 2<q,x>; else -<q,x>.
                  if (l2) {
                    for (size_t j = 0; j < nx; ++j) row[j] = norms[j] - 2.f * row[j];
                  } else {
                    for (size_t j = 0; j < nx; ++j) row[j] = -row[j];
                  }
                  ReservoirTopK& top = tops[order[a0 + a]];
                  const size_t hits = K.select_le(row, nx, top.threshold(), sel.data());
                  for (size_t h = 0; h < hits; ++h) {
                    const uint32_t j = sel[h];
                    if (row[j] <= top.threshold())
                      top.push(row[j], static_cast<idx_t>(L.slots[xb + j]));
                  }
                }
              }
            }
            g0 = g1;
          }
          // Re-score each query's candidates with the one-query kernel; prove the kc-th.
          std::vector<float> s(keep);
          std::vector<idx_t> id(keep);
          for (size_t j = 0; j < m; ++j) {
            const size_t i = b + j;
            const float* qi = q + i * d;
            const bool complete = tops[j].size() < keep;  // every probed row is a candidate
            tops[j].drain_sorted(s.data(), id.data());
            // Every row left out scored at least the keep-th candidate's score (the
            // collector's threshold only ever fell).
            const float worst_kept = s[keep - 1];
            const PreparedQuery pq = vcodec_.prepare(qi, metric_);
            const auto one = K.one[static_cast<int>(pq.kind)];
            TopK exact(kc);
            for (size_t r = 0; r < keep && id[r] >= 0; ++r) {
              const slot_t sl = static_cast<slot_t>(id[r]);
              const uint8_t* code =
                  lists_[slot_list_[sl]].codes.data() + size_t{slot_pos_[sl]} * cs;
              exact.push(pq.finish(one(pq.q.data(), code, d, pq.aux)), id[r]);
            }
            float* Di = cand_scores + i * kc;
            idx_t* Ii = cand_slots + i * kc;
            exact.drain_sorted(Di, Ii);
            if (complete || Ii[kc - 1] < 0) continue;
            const float qn = K.one[ip_kind](qi, qi, d, nullptr);
            const bool proven = blocked_scan_proven(l2, d, max_norm2, qn, Di[kc - 1], worst_kept);
            if (!proven) unproven[i] = 1;
          }
        }
      },
      threads);
}

}  // namespace annx
