#include "annx/index/leanvec_index.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>

#include "annx/common/error.h"
#include "annx/common/finite.h"
#include "annx/common/thread_pool.h"
#include "annx/index/section_array.h"
#include "annx/io/container.h"
#include "annx/simd/kernels.h"

namespace annx {
namespace {

struct Scored {
  float score;
  slot_t slot;
};

bool better(const Scored& a, const Scored& b) {
  return a.score < b.score || (a.score == b.score && a.slot < b.slot);
}

}  // namespace

LeanVecIndex::LeanVecIndex(int d, Metric metric, int target_dim, bool ood,
                           std::unique_ptr<Index> inner, CodecKind secondary, uint64_t seed)
    : Index(d, metric),
      transform_(d, target_dim),
      ood_(ood),
      seed_(seed),
      inner_(std::move(inner)),
      secondary_(secondary, d) {
  ANNX_CHECK(InvalidArgument, inner_ && inner_->d() == target_dim + (residual_column() ? 1 : 0),
             "LeanVec inner index must have the target dimension (+1 for OOD with L2 / cosine)");
  ANNX_CHECK(InvalidArgument, secondary == CodecKind::F32 || secondary == CodecKind::F16,
             "LeanVec re-ranks with Refine(F32) or Refine(F16)");
}

std::string LeanVecIndex::spec() const {
  return "LeanVec" + std::to_string(transform_.d_out()) + (ood_ ? "_ood," : ",") + inner_->spec() +
         ",Refine(" + codec_name(secondary_.kind()) + ")";
}

bool LeanVecIndex::is_trained() const { return transform_.is_set() && inner_->is_trained(); }

double LeanVecIndex::primary_bytes_per_vector() const { return inner_->bytes_per_vector(); }

double LeanVecIndex::secondary_bytes_per_vector() const {
  return static_cast<double>(secondary_.code_size()) + sizeof(idx_t);
}

double LeanVecIndex::bytes_per_vector_impl() const {
  return primary_bytes_per_vector() + secondary_bytes_per_vector();
}

size_t LeanVecIndex::memory_bytes_impl() const {
  const size_t matrices = (size_t{1} + 2 * static_cast<size_t>(transform_.d_out())) *
                          static_cast<size_t>(d_) * sizeof(float);
  return inner_->memory_bytes() + secondary_codes_.size() + idmap_.size() * sizeof(idx_t) +
         free_slots_.capacity() * sizeof(slot_t) + (transform_.is_set() ? matrices : 0);
}

std::vector<float> LeanVecIndex::mean() const {
  std::shared_lock lk(mu_);
  return transform_.mean();
}

std::vector<float> LeanVecIndex::data_matrix() const {
  std::shared_lock lk(mu_);
  return transform_.data_matrix();
}

std::vector<float> LeanVecIndex::query_matrix() const {
  std::shared_lock lk(mu_);
  return transform_.query_matrix();
}

// -------------------------------------------------------------------------- training

void LeanVecIndex::train_with_matrices(const float* mean, const float* data, const float* query,
                                       const float* x, size_t n) {
  ProgressCounter progress(train_units(), "training '" + spec() + "'");
  std::vector<float> buf;
  const float* p = prepare_input(x, n, "training data", buf);
  // Like train(): writer_mu_ only while the inner index trains (it locks itself), mu_
  // for the commit.
  std::lock_guard wl(writer_mu_);
  ANNX_CHECK(InvalidArgument, idmap_.size() == 0, "index '", spec(),
             "' already holds vectors; a LeanVec index is trained once, before add");
  LeanVecTransform t(d_, transform_.d_out());
  t.set(mean, data, query);
  std::vector<float> xp(n * static_cast<size_t>(inner_->d()));
  t.apply_data(p, n, residual_column(), xp.data(), 0);
  inner_->train(xp.data(), n, progress);
  std::unique_lock lk(mu_);
  transform_ = std::move(t);  // only once everything succeeded
}

void LeanVecIndex::train_impl(const float* x, size_t n, ProgressCounter& progress) {
  ANNX_CHECK(NotTrained, transform_.is_set(), "index '", spec(),
             "' has no LeanVec matrices: train it from Python (Index.train fits them) or "
             "call train_with_matrices");
  ANNX_CHECK(InvalidArgument, idmap_.size() == 0, "index '", spec(),
             "' already holds vectors; a LeanVec index is trained once, before add");
  // transform_ changes only under writer_mu_, which the caller holds.
  std::vector<float> xp(n * static_cast<size_t>(inner_->d()));
  transform_.apply_data(x, n, residual_column(), xp.data(), 0);
  inner_->train(xp.data(), n, progress);  // commits the inner index: nothing of ours changes
}

// ---------------------------------------------------------------------------- adding

void LeanVecIndex::add_impl(const float*, size_t) {
  throw Error("LeanVecIndex::add_impl is not used (add_prepared overrides it)");
}

void LeanVecIndex::add_prepared(const float* x, size_t n, const idx_t* ids, int threads) {
  ANNX_CHECK(NotTrained, is_trained(), "index '", spec(),
             "' must be trained before add: call train(x) first");
  if (n == 0) {
    std::shared_lock lk(mu_);
    idmap_.check_new(ids, n);
    return;
  }
  // writer_mu_ is held: the transform is stable. Project and encode before locking
  // out searches.
  const size_t dd = static_cast<size_t>(inner_->d()), cs = secondary_.code_size();
  std::vector<float> xp(n * dd);
  transform_.apply_data(x, n, residual_column(), xp.data(), threads);
  std::vector<uint8_t> codes(n * cs);
  secondary_.encode(x, n, codes.data());
  std::vector<slot_t> slots(n);
  {
    std::unique_lock lk(mu_);
    idmap_.check_new(ids, n);
    ANNX_CHECK(InvalidArgument, idmap_.size() + n <= size_t{0xfffffffe},
               "a LeanVec index holds at most ", size_t{0xfffffffe}, " vectors");
    std::vector<idx_t> id_vec(n);
    for (size_t i = 0; i < n; ++i)
      id_vec[i] = ids ? ids[i] : idmap_.next_id() + static_cast<idx_t>(i);
    const size_t n_reused = std::min(n, free_slots_.size());
    const size_t nslots = idmap_.size() + (n - n_reused);
    auto& sec = secondary_codes_.mut();
    sec.reserve(nslots * cs);  // may throw: nothing changed yet
    sec.resize(nslots * cs);
    for (size_t i = 0; i < n_reused; ++i) {
      slots[i] = free_slots_.back();
      free_slots_.pop_back();
    }
    for (size_t i = n_reused; i < n; ++i)
      slots[i] = static_cast<slot_t>(idmap_.size() + (i - n_reused));
    for (size_t i = 0; i < n; ++i)
      std::memcpy(sec.data() + size_t{slots[i]} * cs, codes.data() + i * cs, cs);
    for (size_t i = 0; i < n_reused; ++i) idmap_.assign_slot(slots[i], id_vec[i]);
    idmap_.append(id_vec.data() + n_reused, n - n_reused);
  }
  // The ids are published; the inner index makes the vectors findable.
  std::vector<idx_t> inner_ids(slots.begin(), slots.end());
  try {
    inner_->add(xp.data(), n, inner_ids.data(), threads);
  } catch (...) {
    std::unique_lock lk(mu_);
    for (slot_t s : slots) {
      idmap_.erase_slot(s);
      free_slots_.push_back(s);
    }
    std::sort(free_slots_.begin(), free_slots_.end(), std::greater<slot_t>());
    throw;
  }
}

// -------------------------------------------------------------------------- removing

void LeanVecIndex::remove_slot_impl(slot_t) {
  throw Error("LeanVecIndex::remove_slot_impl is not used (remove_slots overrides it)");
}

void LeanVecIndex::remove_slots(std::vector<slot_t>& slots) {
  const std::vector<idx_t> inner_ids(slots.begin(), slots.end());
  inner_->remove(inner_ids.data(), inner_ids.size());
  for (slot_t s : slots) {
    idmap_.erase_slot(s);
    free_slots_.push_back(s);
  }
  // Descending, so pop_back() reuses the lowest hole: a loaded copy evolves exactly
  // like the original.
  std::sort(free_slots_.begin(), free_slots_.end(), std::greater<slot_t>());
}

// ------------------------------------------------------------------------- searching

void LeanVecIndex::project_queries(const float* q, size_t nq, float* out, int threads) const {
  transform_.apply_queries(q, nq, /*center=*/metric_ != Metric::IP, residual_column(), out,
                           threads);
}

void LeanVecIndex::search_impl(const float* q, size_t nq, size_t k, const SearchParams& params,
                               const std::vector<slot_t>* allowed, float* D, idx_t* I) const {
  std::fill(D, D + nq * k, std::numeric_limits<float>::infinity());
  std::fill(I, I + nq * k, idx_t{-1});
  if (nq == 0 || idmap_.live() == 0 || (allowed && allowed->empty())) return;
  const size_t dd = static_cast<size_t>(inner_->d()), d = static_cast<size_t>(d_);
  std::vector<float> qp(nq * dd);
  project_queries(q, nq, qp.data(), params.threads);
  // Candidates re-scored in full dimension: `rerank`, default max(4k, ef_search), and
  // never more than the index holds (a huge rerank must not allocate nq x rerank).
  const size_t want = params.rerank > 0 ? static_cast<size_t>(params.rerank)
                                        : std::max(4 * k, static_cast<size_t>(params.ef_search));
  const size_t R = std::max(k, std::min(want, idmap_.live()));
  SearchParams ip;
  ip.threads = params.threads;
  ip.ef_search = params.ef_search;
  ip.nprobe = params.nprobe;
  std::vector<idx_t> allowed_ids;
  IdFilter filter;
  if (allowed) {
    allowed_ids.assign(allowed->begin(), allowed->end());
    filter.ids = allowed_ids.data();
    filter.n_ids = allowed_ids.size();
    ip.filter = &filter;
  }
  std::vector<float> Dp(nq * R);
  std::vector<idx_t> Ip(nq * R);
  inner_->search(qp.data(), nq, R, ip, Dp.data(), Ip.data());

  const auto& K = simd::kernels();
  const size_t cs = secondary_.code_size();
  const uint8_t* sec = secondary_codes_.data();
  parallel_for(
      nq, 16,
      [&](size_t b, size_t e) {
        std::vector<uint32_t> rows(R);
        std::vector<float> dist(R);
        std::vector<Scored> cand(R);
        for (size_t i = b; i < e; ++i) {
          size_t m = 0;
          for (size_t j = 0; j < R; ++j)
            if (Ip[i * R + j] >= 0) rows[m++] = static_cast<uint32_t>(Ip[i * R + j]);
          if (m == 0) continue;
          const PreparedQuery rq = secondary_.prepare(q + i * d, metric_);
          K.gather[static_cast<int>(rq.kind)](rq.q.data(), sec, rows.data(), m, cs, d, rq.aux,
                                              dist.data());
          rq.finish_all(dist.data(), m);
          for (size_t j = 0; j < m; ++j) cand[j] = {dist[j], rows[j]};
          const size_t kk = std::min(k, m);
          std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(kk),
                            cand.begin() + static_cast<std::ptrdiff_t>(m), better);
          for (size_t j = 0; j < kk; ++j) {
            D[i * k + j] = cand[j].score;
            I[i * k + j] = cand[j].slot;
          }
        }
      },
      params.threads);
}

void LeanVecIndex::range_impl(const float* q, size_t nq, float score_radius,
                              const SearchParams& params, const std::vector<slot_t>* allowed,
                              RangeResult& out) const {
  // Exact: every admissible vector is scored in full dimension.
  std::vector<slot_t> live;
  if (!allowed) {
    live.reserve(idmap_.live());
    for (size_t s = 0; s < idmap_.size(); ++s)
      if (idmap_.id(static_cast<slot_t>(s)) != IdMap::kNoId) live.push_back(static_cast<slot_t>(s));
  }
  const std::vector<slot_t>& slots = allowed ? *allowed : live;
  const auto& K = simd::kernels();
  const size_t d = static_cast<size_t>(d_), cs = secondary_.code_size();
  std::vector<std::vector<Scored>> per(nq);
  parallel_for(
      nq, 1,
      [&](size_t b, size_t e) {
        constexpr size_t kBlock = 1024;
        std::vector<float> dist(kBlock);
        for (size_t i = b; i < e; ++i) {
          const PreparedQuery rq = secondary_.prepare(q + i * d, metric_);
          for (size_t j0 = 0; j0 < slots.size(); j0 += kBlock) {
            const size_t m = std::min(kBlock, slots.size() - j0);
            K.gather[static_cast<int>(rq.kind)](rq.q.data(), secondary_codes_.data(),
                                                slots.data() + j0, m, cs, d, rq.aux, dist.data());
            rq.finish_all(dist.data(), m);
            for (size_t j = 0; j < m; ++j)
              if (dist[j] < score_radius) per[i].push_back({dist[j], slots[j0 + j]});
          }
          std::sort(per[i].begin(), per[i].end(), better);
        }
      },
      params.threads);
  out = RangeResult::concat(per, [](const Scored& s) {
    return std::pair<float, idx_t>{s.score, static_cast<idx_t>(s.slot)};
  });
}

void LeanVecIndex::reconstruct_impl(const slot_t* slots, size_t n, float* out) const {
  const size_t d = static_cast<size_t>(d_), cs = secondary_.code_size();
  for (size_t i = 0; i < n; ++i)
    secondary_.decode(secondary_codes_.data() + size_t{slots[i]} * cs, 1, out + i * d);
}

// ----------------------------------------------------------------------- persistence

void LeanVecIndex::write_impl(io::Manifest& m, std::vector<Section>& sections,
                              std::vector<std::vector<uint8_t>>& scratch) const {
  m.set("structure", "leanvec");
  m.set("target_dim", transform_.d_out());
  m.set("seed", seed_);
  m.set("trained", transform_.is_set());
  if (transform_.is_set()) {
    const auto bytes_of = [](const std::vector<float>& v) {
      std::vector<uint8_t> b(v.size() * sizeof(float));
      std::memcpy(b.data(), v.data(), b.size());
      return b;
    };
    scratch.push_back(bytes_of(transform_.mean()));
    sections.push_back({"LVMEAN", scratch.back().data(), scratch.back().size()});
    scratch.push_back(bytes_of(transform_.data_matrix()));
    sections.push_back({"LVDATA", scratch.back().data(), scratch.back().size()});
    scratch.push_back(bytes_of(transform_.query_matrix()));
    sections.push_back({"LVQUERY", scratch.back().data(), scratch.back().size()});
  }
  scratch.push_back(inner_->to_bytes());
  sections.push_back({"LVINNER", scratch.back().data(), scratch.back().size()});
  sections.push_back({"LVSECOND", secondary_codes_.data(), secondary_codes_.size()});
}

void LeanVecIndex::read_impl(const io::ContainerReader& r, const io::Manifest& m, size_t nslots) {
  ANNX_CHECK(FormatError, m.str("structure") == "leanvec", "corrupt index file: structure '",
             m.str("structure"), "' does not match spec '", spec(), "'");
  ANNX_CHECK(FormatError, m.i64("target_dim", 1, d_ - 1) == transform_.d_out(),
             "corrupt index file: target_dim ", m.str("target_dim"), " does not match spec '",
             spec(), "'");
  seed_ = m.u64("seed");
  const size_t D = static_cast<size_t>(d_), dd = static_cast<size_t>(transform_.d_out());
  if (m.boolean("trained")) {
    SharedArray<float> mean, data, query;
    load_section_array(r, "LVMEAN", D, mean);
    load_section_array(r, "LVDATA", D * dd, data);
    load_section_array(r, "LVQUERY", D * dd, query);
    // What fit() produces: a mean within annx's range and matrices of spectral norm <= 1
    // (orthonormal columns for ID, the OOD solver's constraint); Frobenius^2 <= D bounds
    // that loosely, and keeps projections of in-range vectors finite.
    ANNX_CHECK(FormatError, first_oversized_row(mean.data(), 1, D) == 1,
               "corrupt index file: LVMEAN is beyond annx's range (2^62)");
    for (const auto* mat : {&data, &query})
      ANNX_CHECK(FormatError, norm2_f64(mat->data(), D * dd) <= 1.01 * static_cast<double>(dd),
                 "corrupt index file: LVDATA/LVQUERY are not projections (Frobenius norm^2 ",
                 norm2_f64(mat->data(), D * dd), " > target_dim ", dd, ")");
    try {
      transform_.set(mean.data(), data.data(), query.data());
    } catch (const InvalidArgument& e) {
      throw FormatError(std::string("corrupt index file: ") + e.what());
    }
  }
  std::unique_ptr<Index> inner =
      load_nested_index(r, "LVINNER", {inner_->spec(), inner_->metric(), inner_->d(), {}});
  ANNX_CHECK(FormatError, transform_.is_set() || inner->ntotal() == 0,
             "corrupt index file: an untrained LeanVec index holds vectors");
  inner_ = std::move(inner);
  SharedArray<uint8_t> sec;
  load_section_array(r, "LVSECOND", nslots * secondary_.code_size(), sec);
  check_loaded_codes(secondary_, sec.data(), nslots, secondary_.code_size(), "LVSECOND");
  secondary_codes_ = std::move(sec);
}

void LeanVecIndex::after_load() {
  ANNX_CHECK(FormatError, inner_->ntotal() == idmap_.live(),
             "corrupt index file: the inner index holds ", inner_->ntotal(), " vectors but ",
             idmap_.live(), " ids are live");
  free_slots_.clear();
  for (size_t s = 0; s < idmap_.size(); ++s) {
    const bool live = idmap_.id(static_cast<slot_t>(s)) != IdMap::kNoId;
    // Equal counts and every live slot present: the inner ids are exactly the live slots.
    ANNX_CHECK(FormatError, !live || inner_->contains(static_cast<idx_t>(s)),
               "corrupt index file: live slot ", s, " is missing from the inner index");
    if (!live) free_slots_.push_back(static_cast<slot_t>(s));
  }
  std::sort(free_slots_.begin(), free_slots_.end(), std::greater<slot_t>());
}

}  // namespace annx
