// MultiVectorIndex: see annx/index/multivector_index.h.
#include "annx/index/multivector_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <shared_mutex>

#include "annx/common/error.h"
#include "annx/common/finite.h"
#include "annx/common/thread_pool.h"
#include "annx/factory.h"
#include "annx/index/chamfer.h"
#include "annx/io/container.h"
#include "annx/simd/kernels.h"

namespace annx {
namespace {

constexpr size_t kDefaultCandidates = 200;

const char* kKind = "multivector";

}  // namespace

void validate_sets(const float* tokens, size_t ntokens, size_t dim, const int64_t* offsets,
                   size_t n, const char* what, bool allow_empty) {
  ANNX_CHECK(InvalidArgument, offsets[0] == 0, what, ": offsets must start at 0, got ", offsets[0]);
  for (size_t i = 0; i < n; ++i) {
    ANNX_CHECK(InvalidArgument, offsets[i + 1] >= offsets[i], what,
               ": offsets must be non-decreasing, but offsets[", i + 1, "] = ", offsets[i + 1],
               " < offsets[", i, "] = ", offsets[i]);
    ANNX_CHECK(InvalidArgument, allow_empty || offsets[i + 1] > offsets[i], what, ": set ", i,
               " is empty (every set needs at least one vector)");
  }
  ANNX_CHECK(InvalidArgument, static_cast<uint64_t>(offsets[n]) == ntokens, what,
             ": offsets end at ", offsets[n], " but there are ", ntokens, " token vectors");
  // Fast path: one pass of float32 squared norms (the SIMD inner-product kernel). A
  // non-finite value makes its row's norm NaN or inf; a finite row whose float norm is
  // at most 2^79 is within kMaxTokenNorm2 (2^80) whatever the summation order (relative
  // error far under 1 %). Only when some row fails that screen do the exact scans below
  // run, so every error (and its order: non-finite values first) is unchanged.
  {
    const auto ip = simd::kernels().one[static_cast<int>(simd::DistKind::IP_F32)];
    bool screened = true;
    for (size_t i = 0; i < ntokens && screened; ++i) {
      const float* row = tokens + i * dim;
      screened = ip(row, row, dim, nullptr) <= 0x1p79f;  // false for NaN
    }
    if (screened) return;
  }
  const size_t total = ntokens * dim, bad = first_non_finite(tokens, total);
  ANNX_CHECK(InvalidArgument, bad == total, what, " contains a non-finite value (",
             bad < total ? tokens[bad] : 0.f, ") in token vector ", bad / dim);
  const size_t big = first_oversized_row(tokens, ntokens, dim, kMaxTokenNorm2);
  ANNX_CHECK(InvalidArgument, big == ntokens, what, ": token vector ", big, " has norm ",
             big < ntokens ? std::sqrt(norm2_f64(tokens + big * dim, dim)) : 0.0,
             ", beyond annx's range for tokens (norms up to 2^40 ~ 1.1e12, so that Chamfer "
             "sums stay finite in float32)");
}

MultiVectorIndex::MultiVectorIndex(int dim, const std::string& inner_spec, const FdeConfig& fde,
                                   CodecKind token_codec)
    : fde_([&] {
        FdeConfig c = fde;
        c.dim = dim;
        return c;
      }()),
      token_codec_(token_codec) {
  ANNX_CHECK(InvalidArgument, token_codec == CodecKind::F32 || token_codec == CodecKind::F16,
             "multi-vector token storage must be F32 or F16, got ", codec_name(token_codec));
  ANNX_CHECK(InvalidArgument, fde_.output_dim() <= (size_t{1} << 24), "the FDE dimension ",
             fde_.output_dim(), " is too large for an index (at most 16777216); set final_dim");
  inner_ = make_index(static_cast<int>(fde_.output_dim()), inner_spec, Metric::IP);
}

size_t MultiVectorIndex::token_bytes() const {
  return size_t(dim()) * (token_codec_ == CodecKind::F16 ? 2 : 4);
}

size_t MultiVectorIndex::ntotal() const {
  std::shared_lock lk(mu_);
  return docs_.size();
}

size_t MultiVectorIndex::ntokens() const {
  std::shared_lock lk(mu_);
  return live_tokens_;
}

bool MultiVectorIndex::contains(idx_t id) const {
  std::shared_lock lk(mu_);
  return docs_.count(id) != 0;
}

void MultiVectorIndex::train(const float* tokens, const int64_t* offsets, size_t n, int threads) {
  ANNX_CHECK(InvalidArgument, n > 0, "train needs at least one document, got 0");
  validate_sets(tokens, size_t(offsets[n]), size_t(dim()), offsets, n, "train docs");
  // The encoder writes every value: no zero-fill (it showed as page zeroing in profiles).
  const std::unique_ptr<float[]> f(new float[n * fde_.output_dim()]);
  fde_.encode(tokens, offsets, n, /*queries=*/false, f.get(), threads);
  std::lock_guard wl(writer_mu_);
  inner_->train(f.get(), n);
}

void MultiVectorIndex::add(const float* tokens, const int64_t* offsets, size_t n, const idx_t* ids,
                           int threads) {
  if (n == 0) return;
  validate_sets(tokens, size_t(offsets[n]), size_t(dim()), offsets, n, "docs");
  // The encoder writes every value: no zero-fill (it showed as page zeroing in profiles).
  const std::unique_ptr<float[]> f(new float[n * fde_.output_dim()]);
  fde_.encode(tokens, offsets, n, /*queries=*/false, f.get(), threads);
  std::lock_guard wl(writer_mu_);
  std::vector<idx_t> assigned;
  if (!ids) {
    const idx_t first = inner_->next_id();
    ANNX_CHECK(InvalidArgument, first <= std::numeric_limits<idx_t>::max() - idx_t(n),
               "the id space is used up; pass explicit ids");
    assigned.resize(n);
    for (size_t i = 0; i < n; ++i) assigned[i] = first + idx_t(i);
    ids = assigned.data();
  }
  // The inner add checks the ids (new, distinct, non-negative) before changing anything.
  inner_->add(f.get(), n, ids, threads);
  try {
    append_tokens(tokens, offsets, n, ids);
  } catch (...) {
    inner_->remove(ids, n);
    throw;
  }
}

void MultiVectorIndex::append_tokens(const float* tokens, const int64_t* offsets, size_t n,
                                     const idx_t* ids) {
  const size_t T = size_t(offsets[n]), tb = token_bytes(), D = size_t(dim());
  std::vector<uint8_t> enc;
  const uint8_t* src = reinterpret_cast<const uint8_t*>(tokens);
  if (token_codec_ == CodecKind::F16) {
    enc.resize(T * tb);
    simd::kernels().f32_to_f16(tokens, reinterpret_cast<uint16_t*>(enc.data()), T * D);
    src = enc.data();
  }
  std::unique_lock lk(mu_);
  const uint64_t base = arena_tokens_;
  arena_.insert(arena_.end(), src, src + T * tb);
  docs_.reserve(docs_.size() + n);
  for (size_t i = 0; i < n; ++i)
    docs_[ids[i]] = DocRef{base + uint64_t(offsets[i]), uint32_t(offsets[i + 1] - offsets[i])};
  arena_tokens_ += T;
  live_tokens_ += T;
}

size_t MultiVectorIndex::remove(const idx_t* ids, size_t n) {
  if (n == 0) return 0;
  std::lock_guard wl(writer_mu_);
  inner_->remove(ids, n);  // checks: all exist, no repeats; nothing removed otherwise
  std::unique_lock lk(mu_);
  for (size_t i = 0; i < n; ++i) {
    const auto it = docs_.find(ids[i]);
    if (it == docs_.end()) continue;
    live_tokens_ -= it->second.count;
    docs_.erase(it);
  }
  if (arena_tokens_ - live_tokens_ > std::max<uint64_t>(live_tokens_, 4096)) compact_locked();
  return n;
}

void MultiVectorIndex::compact_locked() {
  const size_t tb = token_bytes();
  std::vector<uint8_t> fresh;
  fresh.reserve(live_tokens_ * tb);
  // Keep the documents in arena order so compaction is a forward copy.
  std::vector<std::pair<uint64_t, idx_t>> order;
  order.reserve(docs_.size());
  for (const auto& [id, ref] : docs_) order.emplace_back(ref.first, id);
  std::sort(order.begin(), order.end());
  uint64_t next = 0;
  for (const auto& [first, id] : order) {
    DocRef& ref = docs_[id];
    const uint8_t* p = arena_.data() + first * tb;
    fresh.insert(fresh.end(), p, p + size_t(ref.count) * tb);
    ref.first = next;
    next += ref.count;
  }
  arena_.swap(fresh);
  arena_tokens_ = next;
}

float MultiVectorIndex::score(const PackedQuerySet& q, const DocRef& ref,
                              std::vector<float>& scratch) const {
  const auto& K = simd::kernels();
  const uint8_t* p = arena_.data() + ref.first * token_bytes();
  const float* x = reinterpret_cast<const float*>(p);
  const size_t need = q.width() + (token_codec_ == CodecKind::F16 ? size_t(ref.count) * dim() : 0);
  if (scratch.size() < need) scratch.resize(need);
  if (token_codec_ == CodecKind::F16) {
    K.f16_to_f32(reinterpret_cast<const uint16_t*>(p), scratch.data() + q.width(),
                 size_t(ref.count) * size_t(dim()));
    x = scratch.data() + q.width();
  }
  return q.score(K, x, ref.count, scratch.data());
}

void MultiVectorIndex::search(const float* qtokens, const int64_t* qoffsets, size_t nq, size_t k,
                              size_t candidates, const SearchParams& params, float* S,
                              idx_t* I) const {
  ANNX_CHECK(InvalidArgument, k >= 1, "k must be >= 1, got ", k);
  if (nq == 0) return;
  validate_sets(qtokens, size_t(qoffsets[nq]), size_t(dim()), qoffsets, nq, "queries");
  const size_t C = std::max(k, candidates == 0 ? kDefaultCandidates : candidates);
  const size_t odim = fde_.output_dim(), D = size_t(dim());
  std::unique_ptr<float[]> f(new float[nq * odim]);  // every value written below
  fde_.encode(qtokens, qoffsets, nq, /*queries=*/true, f.get(), params.threads);
  std::vector<float> cd(nq * C);
  std::vector<idx_t> ci(nq * C);
  inner_->search(f.get(), nq, C, params, cd.data(), ci.data());
  f.reset();  // the FDEs are not needed for the re-rank
  std::shared_lock lk(mu_);
  parallel_for(
      nq, 1,
      [&](size_t b, size_t e) {
        std::vector<float> scratch;
        std::vector<std::pair<float, idx_t>> scored;
        for (size_t i = b; i < e; ++i) {
          const PackedQuerySet q(qtokens + size_t(qoffsets[i]) * D,
                                 size_t(qoffsets[i + 1] - qoffsets[i]), D);
          scored.clear();
          for (size_t j = 0; j < C; ++j) {
            const idx_t id = ci[i * C + j];
            if (id < 0) continue;
            const auto it = docs_.find(id);
            if (it == docs_.end()) continue;  // added to the inner index, tokens not yet published
            scored.emplace_back(score(q, it->second, scratch), id);
          }
          const size_t kk = std::min(k, scored.size());
          std::partial_sort(
              scored.begin(), scored.begin() + kk, scored.end(), [](const auto& x, const auto& y) {
                return x.first > y.first || (x.first == y.first && x.second < y.second);
              });
          for (size_t j = 0; j < k; ++j) {
            S[i * k + j] = j < kk ? scored[j].first : -std::numeric_limits<float>::infinity();
            I[i * k + j] = j < kk ? scored[j].second : -1;
          }
        }
      },
      params.threads);
}

std::vector<float> MultiVectorIndex::doc_tokens(idx_t id) const {
  std::shared_lock lk(mu_);
  const auto it = docs_.find(id);
  ANNX_CHECK(InvalidArgument, it != docs_.end(), "id ", id, " is not in the index");
  const DocRef& ref = it->second;
  const size_t D = size_t(dim());
  std::vector<float> out(size_t(ref.count) * D);
  const uint8_t* p = arena_.data() + ref.first * token_bytes();
  if (token_codec_ == CodecKind::F16)
    simd::kernels().f16_to_f32(reinterpret_cast<const uint16_t*>(p), out.data(), out.size());
  else
    std::memcpy(out.data(), p, out.size() * sizeof(float));
  return out;
}

size_t MultiVectorIndex::memory_bytes() const {
  std::shared_lock lk(mu_);
  return inner_->memory_bytes() + arena_.capacity() +
         docs_.size() * (sizeof(DocRef) + sizeof(idx_t) + 2 * sizeof(void*));
}

double MultiVectorIndex::token_bytes_per_doc() const {
  std::shared_lock lk(mu_);
  if (docs_.empty()) return 0.0;
  return double(live_tokens_ * token_bytes()) / double(docs_.size()) + sizeof(DocRef) +
         sizeof(idx_t);
}

// ---- Persistence --------------------------------------------------------------------
// Sections: MANIFEST (kind = multivector, FDE parameters, token codec, counts), MVINNER
// (the inner index as a nested annx file), MVIDS (int64 ids), MVOFFS (int64 offsets,
// n + 1), MVTOKENS (the live tokens, compacted, in MVIDS order).

/// Copies of everything a file holds, taken under the locks, so the (slow) writing
/// runs without them.
struct MultiVectorIndex::Snapshot {
  std::vector<uint8_t> manifest, inner, tokens;
  std::vector<idx_t> ids;
  std::vector<int64_t> offsets;

  void fill(io::ContainerWriter& w) const {
    w.add_section("MANIFEST", manifest.data(), manifest.size());
    w.add_section("MVINNER", inner.data(), inner.size());
    w.add_section("MVIDS", ids.data(), ids.size() * sizeof(idx_t));
    w.add_section("MVOFFS", offsets.data(), offsets.size() * sizeof(int64_t));
    w.add_section("MVTOKENS", tokens.data(), tokens.size());
  }
};

MultiVectorIndex::Snapshot MultiVectorIndex::snapshot() const {
  std::lock_guard wl(writer_mu_);
  std::shared_lock lk(mu_);
  Snapshot s;
  io::Manifest m;
  m.set("annx_version", ANNX_VERSION);
  m.set("kind", kKind);
  m.set("spec", "MultiVector");
  m.set("d", dim());
  const FdeConfig& c = fde_.config();
  m.set("fde_k_sim", c.k_sim);
  m.set("fde_d_proj", c.d_proj);
  m.set("fde_reps", c.reps);
  m.set("fde_fill_empty", c.fill_empty);
  m.set("fde_final_dim", c.final_dim);
  m.set("fde_seed", c.seed);
  m.set("fde_fill", c.fill == FdeFill::Margin ? "margin" : "hamming");
  m.set("tokens", codec_name(token_codec_));
  m.set("inner_spec", inner_->spec());
  m.set("ntotal", static_cast<uint64_t>(docs_.size()));
  m.set("ntokens", static_cast<uint64_t>(live_tokens_));
  s.manifest = m.to_bytes();
  s.ids = inner_->ids();
  ANNX_CHECK(Error, s.ids.size() == docs_.size(), "internal: ", s.ids.size(), " inner ids but ",
             docs_.size(), " documents");
  s.offsets.reserve(s.ids.size() + 1);
  s.offsets.push_back(0);
  s.tokens.reserve(live_tokens_ * token_bytes());
  for (idx_t id : s.ids) {
    const DocRef& ref = docs_.at(id);
    const uint8_t* p = arena_.data() + ref.first * token_bytes();
    s.tokens.insert(s.tokens.end(), p, p + size_t(ref.count) * token_bytes());
    s.offsets.push_back(s.offsets.back() + ref.count);
  }
  s.inner = inner_->to_bytes();
  return s;
}

std::vector<uint8_t> MultiVectorIndex::to_bytes() const {
  const Snapshot s = snapshot();
  io::ContainerWriter w;
  s.fill(w);
  return w.to_bytes();
}

void MultiVectorIndex::save(const std::string& path) const {
  const Snapshot s = snapshot();
  io::ContainerWriter w;
  s.fill(w);
  w.write_file(path);
}

std::unique_ptr<MultiVectorIndex> MultiVectorIndex::load(std::shared_ptr<const io::Blob> blob,
                                                         bool verify) {
  io::ContainerReader r(blob, verify);
  const io::Manifest m = io::Manifest::from_section(r);
  const auto kind = m.get("kind");
  ANNX_CHECK(FormatError, kind && *kind == kKind,
             "not a multi-vector index file (it holds a single-vector index; load it with "
             "annx.load)");
  FdeConfig c;
  const int d = static_cast<int>(m.i64("d", 1, 1 << 16));
  c.k_sim = static_cast<int>(m.i64("fde_k_sim", 0, 20));
  c.d_proj = static_cast<int>(m.i64("fde_d_proj", 0, 1 << 16));
  c.reps = static_cast<int>(m.i64("fde_reps", 1, 4096));
  c.fill_empty = m.boolean("fde_fill_empty");
  c.final_dim = static_cast<int>(m.i64("fde_final_dim", 0, 1 << 24));
  c.seed = m.u64("fde_seed");
  // Files written before the margin fill have no fde_fill: their FDEs were made with the
  // Hamming fill, which new documents added to them keep using.
  const auto fill = m.get("fde_fill");
  ANNX_CHECK(FormatError, !fill || *fill == "margin" || *fill == "hamming",
             "corrupt multi-vector manifest: fde_fill = '", fill ? *fill : "",
             "' (this annx knows 'margin' and 'hamming'; a newer annx may have written it)");
  c.fill = fill && *fill == "margin" ? FdeFill::Margin : FdeFill::Hamming;
  const std::string tok = m.str("tokens");
  ANNX_CHECK(FormatError, tok == "F32" || tok == "F16", "corrupt manifest: tokens = '", tok, "'");
  const CodecKind codec = tok == "F16" ? CodecKind::F16 : CodecKind::F32;
  const uint64_t n = m.u64("ntotal", 0, 0xfffffffeULL);
  const uint64_t ntok = m.u64("ntokens", 0, uint64_t{1} << 40);
  // Bounds first: the FDE's matrices are generated, not stored, so a few manifest bytes
  // could otherwise ask for gigabytes; and the inner index (whose spec is checked before
  // it is built) must have the FDE's dimension.
  FdeConfig bounded = c;
  bounded.dim = d;
  try {
    bounded.validate();
  } catch (const InvalidArgument& e) {
    throw FormatError(std::string("corrupt multi-vector manifest: ") + e.what());
  }
  constexpr size_t kFdeBytesFloor = size_t{64} << 20;
  ANNX_CHECK(FormatError,
             bounded.encoder_bytes() <= std::max(kFdeBytesFloor, r.blob()->size()) &&
                 bounded.output_dim() <= (size_t{1} << 24),
             "corrupt multi-vector manifest: FDE settings ", bounded.describe(), " (", d,
             "-d tokens) need ", bounded.encoder_bytes(), " bytes of tables and ",
             bounded.output_dim(), " dimensions, out of proportion to a file of ", r.blob()->size(),
             " bytes");
  std::unique_ptr<Index> inner = load_nested_index(
      r, "MVINNER", {m.str("inner_spec"), Metric::IP, int(bounded.output_dim()), size_t(n)});
  std::unique_ptr<MultiVectorIndex> mv;
  try {
    mv = std::make_unique<MultiVectorIndex>(d, m.str("inner_spec"), c, codec);
  } catch (const InvalidArgument& e) {
    throw FormatError(std::string("corrupt multi-vector manifest: ") + e.what());
  }
  ANNX_CHECK(FormatError, inner->spec() == mv->inner_->spec(),
             "corrupt multi-vector file: the inner index '", inner->spec(),
             "' is not the manifest's '", mv->inner_->spec(), "'");
  const auto ids_b = r.section("MVIDS");
  const auto offs_b = r.section("MVOFFS");
  const auto toks_b = r.section("MVTOKENS");
  const size_t tb = mv->token_bytes();
  ANNX_CHECK(FormatError,
             ids_b.size() == n * sizeof(idx_t) && offs_b.size() == (n + 1) * sizeof(int64_t) &&
                 toks_b.size() / tb == ntok && toks_b.size() % tb == 0,
             "corrupt multi-vector file: section sizes do not match ", n, " documents and ", ntok,
             " tokens");
  std::vector<idx_t> ids(n);
  std::vector<int64_t> offs(n + 1);
  if (n) std::memcpy(ids.data(), ids_b.data(), ids_b.size());
  std::memcpy(offs.data(), offs_b.data(), offs_b.size());
  ANNX_CHECK(FormatError, offs[0] == 0 && uint64_t(offs[n]) == ntok,
             "corrupt multi-vector file: bad token offsets");
  for (size_t i = 0; i < n; ++i) {
    ANNX_CHECK(FormatError, offs[i + 1] > offs[i] && offs[i + 1] - offs[i] <= 0xffffffffLL,
               "corrupt multi-vector file: document ", i, " has a bad token range");
    ANNX_CHECK(FormatError, inner->contains(ids[i]), "corrupt multi-vector file: id ", ids[i],
               " is not in the inner index");
  }
  mv->inner_ = std::move(inner);
  mv->arena_.assign(toks_b.begin(), toks_b.end());
  mv->arena_tokens_ = mv->live_tokens_ = ntok;
  mv->docs_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const bool fresh =
        mv->docs_.emplace(ids[i], DocRef{uint64_t(offs[i]), uint32_t(offs[i + 1] - offs[i])})
            .second;
    ANNX_CHECK(FormatError, fresh, "corrupt multi-vector file: id ", ids[i], " repeats");
  }
  // Stored floats must be finite (they were checked on add).
  const size_t nval = ntok * size_t(d);
  const bool finite =
      codec == CodecKind::F32
          ? first_non_finite(reinterpret_cast<const float*>(mv->arena_.data()), nval) == nval
          : first_non_finite_half(reinterpret_cast<const uint16_t*>(mv->arena_.data()), nval,
                                  kF16ExpMask) == nval;
  ANNX_CHECK(FormatError, finite, "corrupt multi-vector file: non-finite token in MVTOKENS");
  ANNX_CHECK(FormatError,
             codec != CodecKind::F32 ||
                 first_oversized_row(reinterpret_cast<const float*>(mv->arena_.data()), ntok,
                                     size_t(d), kMaxTokenNorm2) == ntok,
             "corrupt multi-vector file: a token in MVTOKENS is beyond annx's range (2^40)");
  return mv;
}

}  // namespace annx
