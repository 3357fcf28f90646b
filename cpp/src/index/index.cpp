#include "annx/index/index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <mutex>

#include "annx/common/error.h"
#include "annx/common/finite.h"
#include "annx/common/input_rows.h"
#include "annx/common/normalize.h"
#include "annx/common/thread_pool.h"
#include "annx/factory.h"
#include "annx/index/section_array.h"
#include "annx/io/container.h"
#include "annx/simd/isa.h"
#include "annx/simd/kernels.h"

#ifndef ANNX_VERSION
#define ANNX_VERSION "0.0.0"
#endif

namespace annx {

const char* metric_name(Metric m) {
  switch (m) {
    case Metric::L2: return "l2";
    case Metric::IP: return "ip";
    case Metric::Cosine: return "cos";
  }
  return "?";
}

Metric parse_metric(const std::string& s) {
  if (s == "l2" || s == "L2" || s == "euclidean") return Metric::L2;
  if (s == "ip" || s == "IP" || s == "inner_product" || s == "dot") return Metric::IP;
  if (s == "cos" || s == "cosine" || s == "angular") return Metric::Cosine;
  throw InvalidArgument("unknown metric '" + s + "': expected 'l2', 'ip' or 'cos'");
}

Index::Index(int d, Metric metric) : d_(d), metric_(metric) {
  ANNX_CHECK(InvalidArgument, d >= 1, "dimension must be >= 1, got ", d);
}

size_t Index::ntotal() const {
  std::shared_lock lk(mu_);
  return idmap_.live();
}

idx_t Index::next_id() const {
  std::shared_lock lk(mu_);
  return idmap_.next_id();
}

const float* Index::prepare_input(const float* x, size_t n, const char* what,
                                  std::vector<float>& buf) const {
  return checked_input_rows(x, n, static_cast<size_t>(d_), metric_, what, buf);
}

void Index::train(const float* x, size_t n) {
  ProgressCounter progress(train_units(), "training '" + spec() + "'");
  train(x, n, progress);
}

void Index::train(const float* x, size_t n, ProgressCounter& progress) {
  std::vector<float> buf;
  const float* p = prepare_input(x, n, "training data", buf);
  std::lock_guard wl(writer_mu_);
  train_impl(p, n, progress);
}

void Index::add(const float* x, size_t n, const idx_t* ids, int threads) {
  std::vector<float> buf;
  const float* p = prepare_input(x, n, "x", buf);
  std::lock_guard wl(writer_mu_);
  add_prepared(p, n, ids, threads);
}

void Index::add_prepared(const float* x, size_t n, const idx_t* ids, int threads) {
  (void)threads;
  std::unique_lock lk(mu_);
  ANNX_CHECK(NotTrained, is_trained(), "index '", spec(),
             "' must be trained before add: call train(x) first");
  idmap_.check_new(ids, n);
  add_impl(x, n);  // may throw (e.g. bad_alloc) before ids are committed
  idmap_.append(ids, n);
}

namespace {

void slots_to_ids(const IdMap& m, idx_t* I, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (I[i] >= 0) I[i] = m.id(static_cast<slot_t>(I[i]));
}

}  // namespace

void Index::search(const float* q, size_t nq, size_t k, const SearchParams& params, float* D,
                   idx_t* I) const {
  ANNX_CHECK(InvalidArgument, k >= 1, "k must be >= 1, got ", k);
  std::vector<float> buf;
  const float* p = prepare_input(q, nq, "queries", buf);
  std::shared_lock lk(mu_);
  ANNX_CHECK(NotTrained, is_trained(), "index '", spec(),
             "' must be trained before search: call train(x) first");
  std::vector<slot_t> allowed;
  if (params.filter) allowed = idmap_.allowed_slots(*params.filter);
  search_impl(p, nq, k, params, params.filter ? &allowed : nullptr, D, I);
  slots_to_ids(idmap_, I, nq * k);
  if (is_similarity(metric_))
    for (size_t i = 0; i < nq * k; ++i) D[i] = -D[i];  // +inf padding becomes -inf
}

RangeResult Index::range_search(const float* q, size_t nq, float radius,
                                const SearchParams& params) const {
  ANNX_CHECK(InvalidArgument, std::isfinite(radius), "radius must be finite, got ", radius);
  std::vector<float> buf;
  const float* p = prepare_input(q, nq, "queries", buf);
  std::shared_lock lk(mu_);
  ANNX_CHECK(NotTrained, is_trained(), "index '", spec(),
             "' must be trained before search: call train(x) first");
  std::vector<slot_t> allowed;
  if (params.filter) allowed = idmap_.allowed_slots(*params.filter);
  RangeResult r;
  range_impl(p, nq, is_similarity(metric_) ? -radius : radius, params,
             params.filter ? &allowed : nullptr, r);
  slots_to_ids(idmap_, r.ids.data(), r.ids.size());
  if (is_similarity(metric_))
    for (float& v : r.distances) v = -v;
  return r;
}

size_t Index::remove(const idx_t* ids, size_t n) {
  std::lock_guard wl(writer_mu_);
  std::unique_lock lk(mu_);
  std::vector<slot_t> slots = idmap_.slots_of(ids, n);  // throws before any change
  remove_slots(slots);
  return n;
}

void Index::remove_slots(std::vector<slot_t>& slots) {
  // Remove from the highest slot down so that swap-remove never moves a slot that is
  // still to be removed into a position we already processed.
  std::sort(slots.begin(), slots.end(), std::greater<slot_t>());
  for (slot_t s : slots) {
    remove_slot_impl(s);
    idmap_.move_last_into(s);
  }
}

void Index::reconstruct(const idx_t* ids, size_t n, float* out) const {
  std::shared_lock lk(mu_);
  const std::vector<slot_t> slots = idmap_.slots_of(ids, n, /*allow_repeats=*/true);
  reconstruct_impl(slots.data(), n, out);
}

size_t Index::memory_bytes() const {
  std::shared_lock lk(mu_);
  return memory_bytes_impl();
}

double Index::bytes_per_vector() const {
  std::shared_lock lk(mu_);
  return bytes_per_vector_impl();
}

bool Index::contains(idx_t id) const {
  std::shared_lock lk(mu_);
  return idmap_.contains(id);
}

std::vector<idx_t> Index::ids() const {
  std::shared_lock lk(mu_);
  std::vector<idx_t> out;
  out.reserve(idmap_.live());
  for (size_t s = 0; s < idmap_.size(); ++s)
    if (idmap_.ids()[s] != IdMap::kNoId) out.push_back(idmap_.ids()[s]);
  return out;
}

void Index::write_codec_sections(const VectorCodec& codec, std::vector<Section>& sections) {
  if (codec.kind() != CodecKind::SQ8 || !codec.is_trained()) return;
  sections.push_back({"SQMIN", codec.sq_min().data(), codec.sq_min().size() * sizeof(float)});
  sections.push_back({"SQSCALE", codec.sq_scale().data(), codec.sq_scale().size() * sizeof(float)});
}

void Index::read_codec_sections(const io::ContainerReader& r, const io::Manifest& m,
                                VectorCodec& codec) {
  if (codec.kind() != CodecKind::SQ8 || !m.boolean("trained")) return;
  const size_t d = static_cast<size_t>(codec.d());
  SharedArray<float> lo, sc;
  load_section_array(r, "SQMIN", d, lo);
  load_section_array(r, "SQSCALE", d, sc);
  std::vector<float> vlo(lo.data(), lo.data() + d), vsc(sc.data(), sc.data() + d);
  double range2 = 0;  // squared norm of the largest decodable vector
  for (size_t j = 0; j < d; ++j) {
    ANNX_CHECK(FormatError, std::isfinite(vlo[j]) && std::isfinite(vsc[j]) && vsc[j] > 0,
               "corrupt index file: invalid SQ8 parameters at dimension ", j);
    const double hi = std::max(std::fabs(double{vlo[j]}), std::fabs(vlo[j] + 255.0 * vsc[j]));
    range2 += hi * hi;
  }
  ANNX_CHECK(FormatError, range2 <= kMaxNorm2,
             "corrupt index file: SQ8 parameters decode to norms beyond annx's range (2^62)");
  codec.set_sq_params(std::move(vlo), std::move(vsc));
}

void Index::check_loaded_codes(const VectorCodec& codec, const uint8_t* codes, size_t n,
                               size_t stride, const char* tag) {
  const size_t bad = codec.first_invalid_code(codes, n, stride);
  ANNX_CHECK(FormatError, bad == n, "corrupt index file: section ", tag, " row ", bad,
             " holds a non-finite ", codec_name(codec.kind()),
             " value or a norm beyond annx's range (2^62)");
}

void Index::fill_writer(io::ContainerWriter& w, std::vector<std::vector<uint8_t>>& scratch) const {
  io::Manifest m;
  m.set("annx_version", ANNX_VERSION);
  if (!file_kind_.empty()) m.set("kind", file_kind_);
  m.set("spec", spec());
  m.set("metric", metric_name(metric_));
  m.set("d", d_);
  m.set("ntotal", static_cast<uint64_t>(idmap_.live()));
  m.set("nslots", static_cast<uint64_t>(idmap_.size()));
  m.set("max_id", static_cast<int64_t>(idmap_.max_id()));
  m.set("isa_at_save", simd::isa_name(simd::active_isa()));
  std::vector<Section> sections;
  sections.push_back({"IDS", idmap_.ids(), idmap_.size() * sizeof(idx_t)});
  write_impl(m, sections, scratch);
  // The manifest goes first so that tools can read it without touching the rest.
  w.add_section_copy("MANIFEST", m.to_bytes());
  for (const Section& s : sections) w.add_section(s.tag, s.data, s.size);
}

std::string Index::file_kind() const {
  std::lock_guard wl(writer_mu_);
  return file_kind_;
}

void Index::set_file_kind(std::string kind) {
  ANNX_CHECK(InvalidArgument, kind.empty() || io::is_valid_manifest_key(kind),
             "file kind must be empty or match [a-z0-9_.]+, got '", kind, "'");
  ANNX_CHECK(InvalidArgument, kind != "multivector", "file kind 'multivector' is reserved");
  std::lock_guard wl(writer_mu_);
  file_kind_ = std::move(kind);
}

std::vector<uint8_t> Index::to_bytes() const {
  std::lock_guard wl(writer_mu_);  // no add may be linking nodes while we copy
  std::shared_lock lk(mu_);
  io::ContainerWriter w;
  std::vector<std::vector<uint8_t>> scratch;
  fill_writer(w, scratch);
  return w.to_bytes();
}

void Index::save(const std::string& path) const {
  // Writers wait while the file is written; searches go on.
  std::lock_guard wl(writer_mu_);
  std::shared_lock lk(mu_);
  io::ContainerWriter w;
  std::vector<std::vector<uint8_t>> scratch;
  fill_writer(w, scratch);
  w.write_file(path);
}

namespace {

// Nested indexes (MV -> LeanVec -> IVF_HNSW -> HNSW) are at most 3 deep.
constexpr int kMaxNesting = 3;
thread_local int tls_nesting = 0;

// The IVF list count a spec asks for ("IVF<nlist>..."), 0 for other specs.
uint64_t spec_nlist(const std::string& spec) {
  if (spec.rfind("IVF", 0) != 0) return 0;
  uint64_t v = 0;
  for (size_t i = 3; i < spec.size() && spec[i] >= '0' && spec[i] <= '9'; ++i) {
    v = v * 10 + static_cast<uint64_t>(spec[i] - '0');
    if (v > (uint64_t{1} << 40)) break;
  }
  return v;
}

}  // namespace

std::unique_ptr<Index> load_index_from(const io::ContainerReader& r, const io::Manifest& m) {
  const auto kind = m.get("kind");
  ANNX_CHECK(FormatError, !kind || *kind != "multivector",
             "this is a multi-vector index file: load it with annx.MultiVectorIndex.load");
  ANNX_CHECK(FormatError, !kind || *kind != "multitenant",
             "this is a multi-tenant index file: load it with annx.MultiTenantIndex.load");
  // Other kinds are Python wrappers of one index (e.g. "binary" for annx.BinaryIndex); the
  // kind is kept so that a save writes it again.
  const std::string spec = m.str("spec");
  const Metric metric = [&] {
    try {
      return parse_metric(m.str("metric"));
    } catch (const InvalidArgument& e) {
      throw FormatError(std::string("corrupt manifest: ") + e.what());
    }
  }();
  const int d = static_cast<int>(m.i64("d", 1, 1 << 24));
  const int64_t ntotal = m.i64("ntotal", 0, 0xfffffffeLL);
  // Slots include holes (removed vectors awaiting reuse); files without the key have none.
  const int64_t nslots = m.has("nslots") ? m.i64("nslots", ntotal, 0xfffffffeLL) : ntotal;
  const int64_t max_id = m.i64("max_id", -1, INT64_MAX);
  // Every IVF file stores 8 bytes per list (IVFSIZES): a list count the file cannot hold is
  // refused before the lists are allocated.
  const uint64_t nlist = spec_nlist(spec);
  ANNX_CHECK(FormatError, nlist <= r.blob()->size() / 8, "corrupt index file: spec '", spec,
             "' needs ", nlist, " lists, more than a file of ", r.blob()->size(),
             " bytes can hold");
  std::unique_ptr<Index> index;
  try {
    index = make_index(d, spec, metric);
  } catch (const InvalidArgument& e) {
    throw FormatError(std::string("index file has an unsupported spec: ") + e.what());
  }
  if (kind) {
    try {
      index->set_file_kind(std::string(*kind));
    } catch (const InvalidArgument& e) {
      throw FormatError(std::string("corrupt manifest: ") + e.what());
    }
  }
  ANNX_CHECK(FormatError, nslots == ntotal || index->has_holes(),
             "corrupt index file: ", nslots - ntotal, " free slots in a '", spec,
             "' index, which has none");
  // IDS first: its size (8 bytes a slot) bounds nslots by the file before read_impl sizes
  // anything from it.
  SharedArray<idx_t> ids;
  load_section_array(r, "IDS", static_cast<size_t>(nslots), ids);
  index->read_impl(r, m, static_cast<size_t>(nslots));
  index->idmap_.load(std::move(ids), max_id, /*allow_holes=*/index->has_holes());
  ANNX_CHECK(FormatError, index->idmap_.live() == static_cast<size_t>(ntotal),
             "corrupt index file: ", index->idmap_.live(), " live ids but ntotal = ", ntotal);
  index->after_load();
  return index;
}

std::unique_ptr<Index> load_index(std::shared_ptr<const io::Blob> blob, bool verify) {
  io::ContainerReader r(std::move(blob), verify);
  const io::Manifest m = io::Manifest::from_section(r);
  return load_index_from(r, m);
}

std::unique_ptr<Index> load_nested_index(const io::ContainerReader& outer, std::string_view tag,
                                         const NestedIndexExpect& expect) {
  struct DepthGuard {
    DepthGuard() { ++tls_nesting; }
    ~DepthGuard() { --tls_nesting; }
  } guard;
  const std::string where = "corrupt index file: section " + std::string(tag);
  ANNX_CHECK(FormatError, tls_nesting <= kMaxNesting, where, " nests indexes more than ",
             kMaxNesting, " deep");
  const auto b = outer.section(tag);
  // In place: the outer reader checked these bytes (or was told not to).
  io::ContainerReader r(io::Blob::borrow(b.data(), b.size(), outer.blob()),
                        /*verify_checksums=*/false);
  const io::Manifest m = io::Manifest::from_section(r);
  ANNX_CHECK(FormatError,
             !m.get("kind") && m.str("spec") == expect.spec &&
                 m.str("metric") == metric_name(expect.metric) &&
                 m.i64("d", 1, 1 << 24) == expect.d,
             where, " holds a '", m.str("spec"), "' index (metric ", m.str("metric"), ", d ",
             m.str("d"), "), expected '", expect.spec, "' (metric ", metric_name(expect.metric),
             ", d ", expect.d, ")");
  if (expect.ntotal)
    ANNX_CHECK(FormatError, m.u64("ntotal") == *expect.ntotal, where, " holds ", m.str("ntotal"),
               " vectors, expected ", *expect.ntotal);
  return load_index_from(r, m);
}

std::unique_ptr<Index> load_index_file(const std::string& path, bool mmap, bool verify) {
  return load_index(mmap ? io::Blob::map_file(path) : io::Blob::read_file(path), verify);
}

}  // namespace annx
