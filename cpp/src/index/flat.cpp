#include "annx/index/flat.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "annx/common/error.h"
#include "annx/common/finite.h"
#include "annx/common/l2_bound.h"
#include "annx/common/thread_pool.h"
#include "annx/common/topk.h"
#include "annx/index/section_array.h"
#include "annx/io/container.h"
#include "annx/simd/kernels.h"

namespace annx {
namespace {

constexpr size_t kScanBlock = 1024;         // distances computed per kernel call
constexpr size_t kIntraQueryBlock = 16384;  // rows per thread chunk for one query
constexpr size_t kQueryBlock = 64;          // queries per tile in the blocked path
constexpr size_t kBaseBlock = 256;          // rows packed at once in the blocked path
constexpr size_t kBlockedMinQueries = 8;
constexpr size_t kPackedMinQueries = 48;    // below: unpacked tiles (packing does not pay)
constexpr size_t kBlockedChunkRows = 4096;  // base rows per thread chunk
constexpr size_t kBinaryMinQueries = 2;     // binary codes: a tile pays from 2 queries
constexpr size_t kBinaryQueryBlock = 32;    // queries per binary tile

/// Scans rows [b, e) (or allowed[b..e) when `allowed`) for one prepared query.
void scan_range(const simd::KernelTable& K, const PreparedQuery& pq, const uint8_t* codes, size_t d,
                size_t code_size, const std::vector<slot_t>* allowed, size_t b, size_t e,
                TopK& top) {
  float buf[kScanBlock];
  uint32_t sel[kScanBlock];
  const int kind = static_cast<int>(pq.kind);
  for (size_t s = b; s < e; s += kScanBlock) {
    const size_t m = std::min(kScanBlock, e - s);
    if (allowed) {
      K.gather[kind](pq.q.data(), codes, allowed->data() + s, m, code_size, d, pq.aux, buf);
    } else {
      K.many[kind](pq.q.data(), codes + s * code_size, m, d, pq.aux, buf);
    }
    pq.finish_all(buf, m);
    const size_t hits = K.select_le(buf, m, top.threshold(), sel);
    for (size_t h = 0; h < hits; ++h) {
      const size_t i = sel[h];
      if (buf[i] <= top.threshold())
        top.push(buf[i],
                 allowed ? static_cast<idx_t>((*allowed)[s + i]) : static_cast<idx_t>(s + i));
    }
  }
}

}  // namespace

FlatIndex::FlatIndex(int d, Metric metric, CodecKind codec) : Index(d, metric), codec_(codec, d) {}

std::string FlatIndex::spec() const {
  return codec_.kind() == CodecKind::F32 ? "Flat"
                                         : std::string("Flat,") + codec_name(codec_.kind());
}

size_t FlatIndex::memory_bytes_impl() const {
  return codes_.size() + norms_.size() * sizeof(float) + count() * sizeof(idx_t) +
         (codec_.sq_min().size() + codec_.sq_scale().size()) * sizeof(float);
}

double FlatIndex::bytes_per_vector_impl() const {
  return static_cast<double>(codec_.code_size() + sizeof(idx_t) + (use_norms() ? 4 : 0));
}

void FlatIndex::train_impl(const float* x, size_t n, ProgressCounter& progress) {
  // New SQ8 ranges would silently change the meaning of the codes already stored.
  ANNX_CHECK(InvalidArgument, !codec_.needs_training() || idmap_.size() == 0, "index '", spec(),
             "' already holds vectors; training again would invalidate their codes "
             "(create a new index)");
  VectorCodec codec(codec_.kind(), d_);
  codec.train(x, n);
  progress.finish();
  std::unique_lock lk(mu_);
  codec_ = std::move(codec);
}

void FlatIndex::add_impl(const float* x, size_t n) {
  const size_t cs = codec_.code_size();
  auto& codes = codes_.mut();
  const size_t old = codes.size();
  codes.resize(old + n * cs);
  try {
    codec_.encode(x, n, codes.data() + old);
    // Adds run alone (no search alongside), so the cached bound is updated in place.
    if (const float known = max_norm2_.load(); known >= 0.f || old == 0)
      max_norm2_.store(std::max(std::max(known, 0.f), rows_max_norm2(old / cs, old / cs + n)));
    if (use_norms()) {
      auto& norms = norms_.mut();
      const auto& K = simd::kernels();
      const int kind = static_cast<int>(simd::DistKind::IP_F32);
      const size_t d = static_cast<size_t>(d_);
      norms.reserve(norms.size() + n);
      for (size_t i = 0; i < n; ++i) norms.push_back(K.one[kind](x + i * d, x + i * d, d, nullptr));
    }
  } catch (...) {
    codes.resize(old);
    throw;
  }
}

void FlatIndex::remove_slot_impl(slot_t s) {
  const size_t cs = codec_.code_size();
  const size_t last = count() - 1;
  auto& codes = codes_.mut();
  if (s != last) std::memcpy(codes.data() + s * cs, codes.data() + last * cs, cs);
  codes.resize(last * cs);
  if (use_norms()) {
    auto& norms = norms_.mut();
    norms[s] = norms[last];
    norms.pop_back();
  }
}

void FlatIndex::reconstruct_impl(const slot_t* slots, size_t n, float* out) const {
  const size_t cs = codec_.code_size();
  const size_t d = static_cast<size_t>(d_);
  for (size_t i = 0; i < n; ++i)
    codec_.decode(codes_.data() + size_t{slots[i]} * cs, 1, out + i * d);
}

float FlatIndex::rows_max_norm2(size_t b, size_t e) const {
  return decoded_max_norm2(codec_, codes_.data(), b, e);
}

float FlatIndex::max_norm2() const {
  float v = max_norm2_.load();
  if (v < 0.f) {  // concurrent searches may both compute it: same value
    v = rows_max_norm2(0, count());
    max_norm2_.store(v);
  }
  return v;
}

void FlatIndex::search_impl(const float* q, size_t nq, size_t k, const SearchParams& params,
                            const std::vector<slot_t>* allowed, float* D, idx_t* I) const {
  const int threads = params.threads > 0 ? params.threads : get_num_threads();
  const size_t n = allowed ? allowed->size() : count();
  if (codec_.levels() == 0 && nq >= kBlockedMinQueries && n >= kBaseBlock) {
    search_blocked_float(q, nq, k, threads, allowed, D, I);
  } else if (!allowed && codec_.levels() > 0 && nq >= kBinaryMinQueries && n >= kBaseBlock) {
    search_blocked_binary(q, nq, k, threads, D, I);
  } else if (nq < static_cast<size_t>(threads) && n >= 2 * kIntraQueryBlock) {
    search_intra_query(q, nq, k, threads, allowed, D, I);
  } else {
    search_per_query(q, nq, k, threads, allowed, D, I);
  }
}

void FlatIndex::search_per_query(const float* q, size_t nq, size_t k, int threads,
                                 const std::vector<slot_t>* allowed, float* D, idx_t* I) const {
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(d_), cs = codec_.code_size();
  const size_t n = allowed ? allowed->size() : count();
  const uint8_t* codes = codes_.data();
  // Grain: about 2M distance terms per chunk keeps chunks short (Ctrl-C) but not tiny.
  const size_t grain = std::max<size_t>(1, (size_t{1} << 21) / std::max<size_t>(1, n * d));
  parallel_for(
      nq, grain,
      [&](size_t b, size_t e) {
        TopK top(k);
        for (size_t i = b; i < e; ++i) {
          const PreparedQuery pq = codec_.prepare(q + i * d, metric_);
          scan_range(K, pq, codes, d, cs, allowed, 0, n, top);
          top.drain_sorted(D + i * k, I + i * k);
        }
      },
      threads);
}

void FlatIndex::search_intra_query(const float* q, size_t nq, size_t k, int threads,
                                   const std::vector<slot_t>* allowed, float* D, idx_t* I) const {
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(d_), cs = codec_.code_size();
  const size_t n = allowed ? allowed->size() : count();
  const uint8_t* codes = codes_.data();
  const size_t nchunks = (n + kIntraQueryBlock - 1) / kIntraQueryBlock;
  for (size_t i = 0; i < nq; ++i) {
    const PreparedQuery pq = codec_.prepare(q + i * d, metric_);
    std::vector<TopK> tops(nchunks, TopK(k));
    parallel_for(
        n, kIntraQueryBlock,
        [&](size_t b, size_t e) {
          scan_range(K, pq, codes, d, cs, allowed, b, e, tops[b / kIntraQueryBlock]);
        },
        threads);
    for (size_t c = 1; c < nchunks; ++c) tops[0].merge(tops[c]);
    tops[0].drain_sorted(D + i * k, I + i * k);
  }
}

float decoded_max_norm2(const VectorCodec& codec, const uint8_t* codes, size_t b, size_t e) {
  // Norms of the stored (decoded) rows, as the blocked scan's tiles see them.
  const auto& K = simd::kernels();
  const auto ip = K.one[static_cast<int>(simd::DistKind::IP_F32)];
  const size_t d = static_cast<size_t>(codec.d()), cs = codec.code_size();
  std::vector<float> rows(codec.kind() == CodecKind::F32 ? 0 : kBaseBlock * d);
  float mx = 0.f;
  for (size_t s = b; s < e; s += kBaseBlock) {
    const size_t m = std::min(kBaseBlock, e - s);
    const float* xr = reinterpret_cast<const float*>(codes + s * cs);
    if (!rows.empty()) {
      codec.decode(codes + s * cs, m, rows.data());
      xr = rows.data();
    }
    for (size_t j = 0; j < m; ++j) mx = std::max(mx, ip(xr + j * d, xr + j * d, d, nullptr));
  }
  return mx;
}

float blocked_bound_norm2(const VectorCodec& codec, float max_norm2) {
  if (codec.kind() != CodecKind::SQ8) return max_norm2;
  // SQ8's kernels work with q - min (l2: (q - min) / scale; ip: <q, min> + <q * scale,
  // code>), so their rounding also scales with |min|: the bound takes (max |x| + |min|)^2.
  double min2 = 0;
  for (const float m : codec.sq_min()) min2 += double{m} * m;
  const double r = std::sqrt(double{max_norm2}) + std::sqrt(min2);
  return static_cast<float>(r * r);
}

void scan_float_blocks(const VectorCodec& codec, Metric metric, const float* q, size_t nq,
                       const FloatRows& base, size_t k, int threads, float* D, idx_t* I,
                       std::vector<uint8_t>& unproven) {
  // Threads split the base (each packs its rows once and runs every query against
  // them), then per-chunk top-k lists are merged per query. F16 / BF16 / SQ8 rows are
  // decoded to float32 one block at a time (the cost is shared by every query of the call).
  //
  // L2 candidates are ranked by |x|^2 - 2<q,x>, which cancels catastrophically for data
  // far from the origin, and every tile rounds differently from the per-query kernel. So
  // each query keeps k + slack candidates, re-scores them with the per-query scan's
  // kernel, and is answered from them only if the rounding-error bound proves that no row
  // outside the candidates can beat the k-th; otherwise (rare on ordinary data, always on
  // data far from the origin, where scores tie to rounding) it is left to the caller's
  // per-query scan. Either way the answers are the per-query scan's.
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(codec.d());
  const size_t n = base.n;
  const size_t cs = codec.code_size();
  const bool decoded = codec.kind() != CodecKind::F32;
  const slot_t* picked = base.rows;       // scan these rows (a filter), else rows 0..n-1
  const bool copied = decoded || picked;  // blocks are decoded / gathered into a buffer
  // Candidates are kept by id (ties to the lower id, as the caller's one-query scan).
  const auto id_of = [&](size_t r) { return static_cast<idx_t>(base.ids ? base.ids[r] : r); };
  const auto row_of = [&](idx_t id) {
    return base.ids ? size_t{base.id_row[static_cast<size_t>(id)]} : static_cast<size_t>(id);
  };
  const uint8_t* codes = base.codes;
  const float* x = reinterpret_cast<const float*>(codes);  // F32 rows
  const bool l2 = metric == Metric::L2;
  ANNX_CHECK(Error, copied || !l2 || base.norms, "scan_float_blocks: F32 l2 rows need norms");
  const bool packed = nq >= kPackedMinQueries;
  const size_t kc = k + std::max<size_t>(k, 8);  // candidates kept per query
  const size_t P = K.panel_rows;
  const size_t XB = P * std::max<size_t>(1, kBaseBlock / P);
  // Chunks of about 2^28 multiply-adds (~10 ms) keep Ctrl-C prompt for any nq.
  const size_t rows = std::clamp<size_t>((size_t{1} << 28) / (nq * d + 1), XB, kBlockedChunkRows);
  const size_t grain = XB * std::max<size_t>(1, rows / XB);
  const int nthreads = std::max(1, threads);
  const int ip_kind = static_cast<int>(simd::DistKind::IP_F32);
  std::vector<std::vector<TopK>> thread_tops(static_cast<size_t>(nthreads));
  parallel_for(
      n, grain,
      [&](size_t b, size_t e) {
        std::vector<TopK>& tops = thread_tops[static_cast<size_t>(worker_index())];
        if (tops.empty()) tops.assign(nq, TopK(kc));
        std::vector<float> panel(packed ? XB * d : 0);
        std::vector<float> rows_f32(copied ? XB * d : 0), row_norms(copied && l2 ? XB : 0);
        std::vector<uint8_t> gathered(picked && decoded ? XB * cs : 0);
        std::vector<float> tile(kQueryBlock * XB);
        std::vector<uint32_t> sel(XB);
        for (size_t xb = b; xb < e; xb += XB) {
          const size_t nx = std::min(XB, e - xb);
          const size_t nstrips = (nx + P - 1) / P;
          const float* xr = x + xb * d;
          const float* xn = l2 && !copied ? base.norms + xb : nullptr;
          if (picked) {  // gather the rows' codes, then decode them as one block
            uint8_t* dst = decoded ? gathered.data() : reinterpret_cast<uint8_t*>(rows_f32.data());
            for (size_t j = 0; j < nx; ++j)
              std::memcpy(dst + j * cs, codes + size_t{picked[xb + j]} * cs, cs);
            if (decoded) codec.decode(gathered.data(), nx, rows_f32.data());
            xr = rows_f32.data();
          } else if (decoded) {
            codec.decode(codes + xb * cs, nx, rows_f32.data());
            xr = rows_f32.data();
          }
          if (copied && l2) {  // F32: the stored norms' values (K.one of the same row)
            for (size_t j = 0; j < nx; ++j)
              row_norms[j] = K.one[ip_kind](xr + j * d, xr + j * d, d, nullptr);
            xn = row_norms.data();
          }
          if (packed)
            for (size_t s = 0; s < nstrips; ++s)
              K.pack_f32_panel(xr + s * P * d, std::min(P, nx - s * P), d,
                               panel.data() + s * P * d);
          for (size_t a0 = 0; a0 < nq; a0 += kQueryBlock) {
            const size_t mq = std::min(kQueryBlock, nq - a0);
            if (packed) {
              for (size_t s = 0; s < nstrips; ++s)
                K.dot_f32_panel(q + a0 * d, mq, d, panel.data() + s * P * d, tile.data() + s * P,
                                XB);
            } else {
              K.dot_f32_tile(q + a0 * d, mq, xr, nx, d, tile.data(), XB);
            }
            for (size_t a = 0; a < mq; ++a) {
              float* row = tile.data() + a * XB;
              // Scores: L2 up to the query's own norm (constant per query) |x|^2 - 2<q,x>;
              // negated inner products for similarities.
              if (l2) {
                for (size_t j = 0; j < nx; ++j) row[j] = xn[j] - 2.f * row[j];
              } else {
                for (size_t j = 0; j < nx; ++j) row[j] = -row[j];
              }
              TopK& top = tops[a0 + a];
              const size_t hits = K.select_le(row, nx, top.threshold(), sel.data());
              for (size_t h = 0; h < hits; ++h) {
                const uint32_t j = sel[h];
                if (row[j] <= top.threshold())
                  top.push(row[j], id_of(picked ? size_t{picked[xb + j]} : xb + j));
              }
            }
          }
        }
      },
      threads);
  const float max_norm2 = blocked_bound_norm2(codec, base.max_norm2);
  // Merge, then recompute the candidates' scores in direct form with the per-query
  // scan's kernel (the float kernel for F32, else the codec's prepared query).
  const int exact_kind = static_cast<int>(l2 ? simd::DistKind::L2_F32 : simd::DistKind::IP_F32);
  unproven.assign(nq, 0);
  parallel_for(
      nq, 16,
      [&](size_t qb, size_t qe) {
        std::vector<float> cand_scores(kc);
        std::vector<idx_t> ci(kc);
        for (size_t i = qb; i < qe; ++i) {
          const float* qi = q + i * d;
          TopK top(kc);
          for (const auto& tops : thread_tops)
            if (!tops.empty()) top.merge(tops[i]);
          const bool complete = top.size() < kc;  // every row is a candidate
          const float worst_kept = top.threshold();
          top.drain_sorted(cand_scores.data(), ci.data());
          size_t m = 0;
          while (m < kc && ci[m] >= 0) ++m;
          TopK exact(k);
          if (picked) {
            // Under a filter the one-query scan scores rows with the gather kernel: the
            // candidates are re-scored by the same kernel.
            const PreparedQuery pq = codec.prepare(qi, metric);
            std::vector<uint32_t> rows_m(m);
            std::vector<float> v(m);
            for (size_t j = 0; j < m; ++j) rows_m[j] = static_cast<uint32_t>(row_of(ci[j]));
            K.gather[static_cast<int>(pq.kind)](pq.q.data(), codes, rows_m.data(), m, cs, d, pq.aux,
                                                v.data());
            pq.finish_all(v.data(), m);
            for (size_t j = 0; j < m; ++j) exact.push(v[j], ci[j]);
          } else if (decoded) {
            const PreparedQuery pq = codec.prepare(qi, metric);
            const auto one = K.one[static_cast<int>(pq.kind)];
            for (size_t j = 0; j < m; ++j) {
              const uint8_t* row = codes + row_of(ci[j]) * cs;
              exact.push(pq.finish(one(pq.q.data(), row, d, pq.aux)), ci[j]);
            }
          } else {
            for (size_t j = 0; j < m; ++j) {
              const float v = K.one[exact_kind](qi, x + row_of(ci[j]) * d, d, nullptr);
              exact.push(l2 ? v : -v, ci[j]);
            }
          }
          float* Di = D + i * k;
          idx_t* Ii = I + i * k;
          exact.drain_sorted(Di, Ii);
          if (!complete) {
            // Rows outside the candidates have approximate scores >= worst_kept, hence
            // true scores >= worst_kept (+ |q|^2 for L2) - E; the k-th must not exceed it.
            const float qn = K.one[ip_kind](qi, qi, d, nullptr);
            const bool proven = blocked_scan_proven(l2, d, max_norm2, qn, Di[k - 1], worst_kept);
            if (!proven) unproven[i] = 1;
          }
        }
      },
      threads);
}

void FlatIndex::search_blocked_float(const float* q, size_t nq, size_t k, int threads,
                                     const std::vector<slot_t>* allowed, float* D, idx_t* I) const {
  std::vector<uint8_t> unproven;
  const FloatRows base{codes_.data(), allowed ? allowed->size() : count(), norms_.data(),
                       max_norm2(), allowed ? allowed->data() : nullptr};
  scan_float_blocks(codec_, metric_, q, nq, base, k, threads, D, I, unproven);
  // Queries the bound could not settle: exact per-query scans, batched.
  const size_t d = static_cast<size_t>(d_);
  std::vector<size_t> redo;
  for (size_t i = 0; i < nq; ++i)
    if (unproven[i]) redo.push_back(i);
  if (redo.empty()) return;
  std::vector<float> rq(redo.size() * d), rD(redo.size() * k);
  std::vector<idx_t> rI(redo.size() * k);
  for (size_t r = 0; r < redo.size(); ++r)
    std::memcpy(rq.data() + r * d, q + redo[r] * d, d * sizeof(float));
  search_per_query(rq.data(), redo.size(), k, threads, allowed, rD.data(), rI.data());
  for (size_t r = 0; r < redo.size(); ++r) {
    std::memcpy(D + redo[r] * k, rD.data() + r * k, k * sizeof(float));
    std::memcpy(I + redo[r] * k, rI.data() + r * k, k * sizeof(idx_t));
  }
}

std::vector<ReservoirTopK> scan_binary_tiles(const VectorCodec& codec, Metric metric,
                                             const float* q, size_t nq, const uint8_t* codes,
                                             size_t n, size_t k, int threads) {
  // Each thread runs tiles of queries over blocks of kBaseBlock codes (the block is read,
  // and transposed, once per tile); the per-thread top-k lists are merged per query.
  // Scores are those of the one-query scan, bit for bit (the kernel's contract), and
  // TopK breaks ties by row, so the answers are the same.
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(codec.d()), cs = codec.code_size();
  std::vector<PreparedQuery> pqs(nq);
  std::vector<const float*> qp(nq);
  for (size_t i = 0; i < nq; ++i) {
    pqs[i] = codec.prepare(q + i * d, metric);
    qp[i] = pqs[i].q.data();
  }
  const size_t XB = kBaseBlock;
  // Binary codecs have no score offset: the tile negates similarities itself, so the
  // rows need no finish pass.
  const bool negate = nq > 0 && pqs[0].negate && pqs[0].offset == 0.f;
  // Chunks of about 2^22 code-query pairs keep Ctrl-C prompt for any nq.
  const size_t rows = std::clamp<size_t>((size_t{1} << 22) / (nq + 1), XB, 4 * kBlockedChunkRows);
  const size_t grain = XB * std::max<size_t>(1, rows / XB);
  const int nthreads = std::max(1, threads > 0 ? threads : get_num_threads());
  std::vector<std::vector<ReservoirTopK>> thread_tops(static_cast<size_t>(nthreads));
  parallel_for(
      n, grain,
      [&](size_t b, size_t e) {
        std::vector<ReservoirTopK>& tops = thread_tops[static_cast<size_t>(worker_index())];
        if (tops.empty()) tops.assign(nq, ReservoirTopK(k));
        std::vector<float> tile(kBinaryQueryBlock * XB);
        std::vector<uint32_t> sel(XB);
        for (size_t xb = b; xb < e; xb += XB) {
          const size_t nx = std::min(XB, e - xb);
          for (size_t a0 = 0; a0 < nq; a0 += kBinaryQueryBlock) {
            const size_t mq = std::min(kBinaryQueryBlock, nq - a0);
            K.bebr_sdc_tile(qp.data() + a0, mq, codes + xb * cs, nx, cs, d, tile.data(), XB,
                            negate);
            for (size_t a = 0; a < mq; ++a) {
              float* row = tile.data() + a * XB;
              if (!negate) pqs[a0 + a].finish_all(row, nx);
              ReservoirTopK& top = tops[a0 + a];
              const size_t hits = K.select_le(row, nx, top.threshold(), sel.data());
              for (size_t h = 0; h < hits; ++h) {
                const uint32_t j = sel[h];
                top.push(row[j], static_cast<idx_t>(xb + j));
              }
            }
          }
        }
      },
      threads);
  std::vector<ReservoirTopK> out(nq, ReservoirTopK(k));
  for (auto& tops : thread_tops)
    if (!tops.empty())
      for (size_t i = 0; i < nq; ++i) out[i].merge(tops[i]);
  return out;
}

void FlatIndex::search_blocked_binary(const float* q, size_t nq, size_t k, int threads, float* D,
                                      idx_t* I) const {
  std::vector<ReservoirTopK> tops =
      scan_binary_tiles(codec_, metric_, q, nq, codes_.data(), count(), k, threads);
  for (size_t i = 0; i < nq; ++i) tops[i].drain_sorted(D + i * k, I + i * k);
}

void FlatIndex::range_impl(const float* q, size_t nq, float score_radius,
                           const SearchParams& params, const std::vector<slot_t>* allowed,
                           RangeResult& out) const {
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(d_), cs = codec_.code_size();
  const size_t n = allowed ? allowed->size() : count();
  const uint8_t* codes = codes_.data();
  std::vector<std::vector<std::pair<float, idx_t>>> per(nq);
  parallel_for(
      nq, 1,
      [&](size_t b, size_t e) {
        std::vector<float> buf(kScanBlock);
        for (size_t i = b; i < e; ++i) {
          const PreparedQuery pq = codec_.prepare(q + i * d, metric_);
          const int kind = static_cast<int>(pq.kind);
          auto& res = per[i];
          for (size_t s = 0; s < n; s += kScanBlock) {
            const size_t m = std::min(kScanBlock, n - s);
            if (allowed) {
              K.gather[kind](pq.q.data(), codes, allowed->data() + s, m, cs, d, pq.aux, buf.data());
            } else {
              K.many[kind](pq.q.data(), codes + s * cs, m, d, pq.aux, buf.data());
            }
            pq.finish_all(buf.data(), m);
            for (size_t j = 0; j < m; ++j)
              if (buf[j] < score_radius)
                res.emplace_back(buf[j], allowed ? static_cast<idx_t>((*allowed)[s + j])
                                                 : static_cast<idx_t>(s + j));
          }
          std::sort(res.begin(), res.end());
        }
      },
      params.threads);
  out = RangeResult::concat(per, [](const std::pair<float, idx_t>& r) { return r; });
}

void FlatIndex::write_impl(io::Manifest& manifest, std::vector<Section>& sections,
                           std::vector<std::vector<uint8_t>>& scratch) const {
  manifest.set("structure", "flat");
  manifest.set("codec", codec_name(codec_.kind()));
  manifest.set("trained", is_trained());
  sections.push_back({"CODES", codes_.data(), codes_.size()});
  if (use_norms()) sections.push_back({"NORMS", norms_.data(), norms_.size() * sizeof(float)});
  write_codec_sections(codec_, sections);
  (void)scratch;
}

void FlatIndex::read_impl(const io::ContainerReader& r, const io::Manifest& m, size_t ntotal) {
  ANNX_CHECK(FormatError, m.str("structure") == "flat", "corrupt index file: structure '",
             m.str("structure"), "' does not match spec '", spec(), "'");
  read_codec_sections(r, m, codec_);
  ANNX_CHECK(FormatError, ntotal == 0 || is_trained(),
             "corrupt index file: untrained index with vectors");
  // Guard the multiplication against absurd counts before computing sizes.
  ANNX_CHECK(FormatError, ntotal <= r.blob()->size() / codec_.code_size() + 1,
             "corrupt index file: ntotal = ", ntotal, " does not fit in the file");
  load_section_array(r, "CODES", ntotal * codec_.code_size(), codes_);
  max_norm2_.store(-1.f);
  if (!use_norms()) {
    check_loaded_codes(codec_, codes_.data(), ntotal, codec_.code_size(), "CODES");
    return;
  }
  // The norms are derived data: recomputed (as add does) rather than trusted, since the
  // blocked search's exactness proof depends on them; the same pass checks the rows.
  load_section_array(r, "NORMS", ntotal, norms_);
  const auto ip = simd::kernels().one[static_cast<int>(simd::DistKind::IP_F32)];
  const float* x = reinterpret_cast<const float*>(codes_.data());
  const size_t d = static_cast<size_t>(d_);
  auto& norms = norms_.mut();
  for (size_t i = 0; i < ntotal; ++i) {
    norms[i] = ip(x + i * d, x + i * d, d, nullptr);
    ANNX_CHECK(FormatError, row_in_range(x + i * d, d, norms[i]), "corrupt index file: CODES row ",
               i, " holds a non-finite value or a norm beyond annx's range (2^62)");
  }
}

}  // namespace annx
