// MultiTenantIndex persistence (annx container, kind "multitenant").
//
// Sections: MANIFEST (kind, d, metric, configuration, counts), MTCHILD (u32 per tree
// node: its number of children; children are numbered consecutively in breadth-first
// order, so this alone gives the tree), MTCENT (f32 nodes x d centroids), MTIDS (i64
// ids, slot order), MTVECS (f32 ntotal x d), MTLEAF (u32 leaf of each vector), MTTOFF
// (i64 ntotal + 1 offsets into MTTEN), MTTEN (i64 tenant ids, ascending per vector),
// MTRAD (f32 per node: the largest distance of a training vector to its centroid),
// MTSQ (f32 2 x d: the SQ8 codec's per-dimension minimum and step, empty before train;
// the codes are re-encoded from MTVECS on load).
// The per-tenant lists are rebuilt on load.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <shared_mutex>

#include "annx/common/error.h"
#include "annx/common/finite.h"
#include "annx/index/multitenant_index.h"
#include "annx/io/container.h"

namespace annx {
namespace {

const char* kKind = "multitenant";

}  // namespace

struct MultiTenantIndex::Snapshot {
  std::vector<uint8_t> manifest;
  std::vector<uint32_t> child, leaf;
  std::vector<float> cent, vecs, rad, sq;
  std::vector<idx_t> ids;
  std::vector<int64_t> toff, ten;

  void fill(io::ContainerWriter& w) const {
    w.add_section("MANIFEST", manifest.data(), manifest.size());
    w.add_section("MTCHILD", child.data(), child.size() * 4);
    w.add_section("MTCENT", cent.data(), cent.size() * 4);
    w.add_section("MTIDS", ids.data(), ids.size() * 8);
    w.add_section("MTVECS", vecs.data(), vecs.size() * 4);
    w.add_section("MTLEAF", leaf.data(), leaf.size() * 4);
    w.add_section("MTTOFF", toff.data(), toff.size() * 8);
    w.add_section("MTTEN", ten.data(), ten.size() * 8);
    w.add_section("MTRAD", rad.data(), rad.size() * 4);
    w.add_section("MTSQ", sq.data(), sq.size() * 4);
  }
};

MultiTenantIndex::Snapshot MultiTenantIndex::snapshot() const {
  std::lock_guard wl(writer_mu_);
  std::shared_lock lk(mu_);
  Snapshot s;
  const size_t n = idmap_.size();
  io::Manifest m;
  m.set("annx_version", ANNX_VERSION);
  m.set("kind", kKind);
  m.set("spec", spec());
  m.set("metric", metric_name(metric_));
  m.set("d", d_);
  m.set("branching", cfg_.branching);
  m.set("leaf_size", cfg_.leaf_size);
  m.set("split", cfg_.split);
  m.set("exact_threshold", cfg_.exact_threshold);
  m.set("ef_search", cfg_.ef_search);
  m.set("max_depth", cfg_.max_depth);
  m.set("niter", cfg_.niter);
  m.set("seed", cfg_.seed);
  m.set("trained", trained_);
  m.set("nnodes", uint64_t(tree_.nodes.size()));
  m.set("ntotal", uint64_t(n));
  m.set("npairs", uint64_t(pairs_));
  m.set("max_id", int64_t(idmap_.max_id()));
  s.manifest = m.to_bytes();
  for (const Node& nd : tree_.nodes) s.child.push_back(nd.nchild);
  s.cent = tree_.centroids;
  s.rad = tree_.radius;
  if (trained_) {
    s.sq = sq_.sq_min();
    s.sq.insert(s.sq.end(), sq_.sq_scale().begin(), sq_.sq_scale().end());
  }
  s.ids.assign(idmap_.ids(), idmap_.ids() + n);
  s.vecs = vectors_;
  s.leaf = leaf_of_;
  s.toff.reserve(n + 1);
  s.toff.push_back(0);
  s.ten.reserve(pairs_);
  std::vector<int64_t> tmp;
  for (size_t i = 0; i < n; ++i) {
    tmp.clear();
    for (uint32_t ti : slot_tenants_[i]) tmp.push_back(tenants_[ti].ext);
    std::sort(tmp.begin(), tmp.end());
    s.ten.insert(s.ten.end(), tmp.begin(), tmp.end());
    s.toff.push_back(int64_t(s.ten.size()));
  }
  return s;
}

std::vector<uint8_t> MultiTenantIndex::to_bytes() const {
  const Snapshot s = snapshot();
  io::ContainerWriter w;
  s.fill(w);
  return w.to_bytes();
}

void MultiTenantIndex::save(const std::string& path) const {
  const Snapshot s = snapshot();
  io::ContainerWriter w;
  s.fill(w);
  w.write_file(path);
}

std::unique_ptr<MultiTenantIndex> MultiTenantIndex::load(std::shared_ptr<const io::Blob> blob,
                                                         bool verify) {
  io::ContainerReader r(blob, verify);
  const io::Manifest m = io::Manifest::from_section(r);
  const auto kind = m.get("kind");
  ANNX_CHECK(FormatError, kind && *kind == kKind, "not a multi-tenant index file (kind '",
             kind ? std::string(*kind) : "", "'); load it with annx.load");
  const int d = int(m.i64("d", 1, 1 << 24));
  MultiTenantConfig c;
  c.branching = int(m.i64("branching", 2, 256));
  c.leaf_size = int(m.i64("leaf_size", 1, 1 << 20));
  c.split = int(m.i64("split", 1, 1 << 24));
  c.exact_threshold = int(m.i64("exact_threshold", 0, 1 << 30));
  c.ef_search = int(m.i64("ef_search", 1, 1 << 30));
  c.max_depth = int(m.i64("max_depth", 1, 32));
  c.niter = int(m.i64("niter", 1, 1000));
  c.seed = m.u64("seed");
  Metric metric;
  try {
    metric = parse_metric(m.str("metric"));
  } catch (const InvalidArgument& e) {
    throw FormatError(std::string("corrupt multi-tenant manifest: ") + e.what());
  }
  auto mt = std::make_unique<MultiTenantIndex>(d, metric, c);
  const bool trained = m.boolean("trained");
  const uint64_t nnodes = m.u64("nnodes", 0, 0xffffffffULL);
  const uint64_t n = m.u64("ntotal", 0, 0xfffffff0ULL);
  const uint64_t npairs = m.u64("npairs", 0, uint64_t{1} << 48);
  const int64_t max_id = m.i64("max_id", -1, std::numeric_limits<int64_t>::max());
  ANNX_CHECK(FormatError, trained ? nnodes >= 1 : (nnodes == 0 && n == 0),
             "corrupt multi-tenant manifest: trained = ", trained, " with ", nnodes,
             " tree nodes and ", n, " vectors");
  const size_t D = size_t(d);
  // Every size is checked against its section before anything is allocated from it.
  const auto child = io::section_as<uint32_t>(r, "MTCHILD", nnodes);
  const auto cent = io::section_as<float>(r, "MTCENT", nnodes * D);
  const auto ids = io::section_as<idx_t>(r, "MTIDS", n);
  const auto vecs = io::section_as<float>(r, "MTVECS", n * D);
  const auto leaf = io::section_as<uint32_t>(r, "MTLEAF", n);
  const auto toff = io::section_as<int64_t>(r, "MTTOFF", n + 1);
  const auto ten = io::section_as<int64_t>(r, "MTTEN", npairs);
  const auto rad = io::section_as<float>(r, "MTRAD", nnodes);
  const auto sq = io::section_as<float>(r, "MTSQ", trained ? 2 * D : 0);

  // Tree: node i's children are the next unallocated nodes (breadth-first numbering).
  Tree t;
  t.nodes.resize(nnodes);
  std::vector<int> depth(nnodes, 0);
  uint64_t next = 1;
  for (uint64_t i = 0; i < nnodes; ++i) {
    const uint32_t nc = child[i];
    ANNX_CHECK(FormatError, i == 0 || i < next, "corrupt section MTCHILD: node ", i,
               " has no parent");
    ANNX_CHECK(FormatError, nc == 0 || (nc >= 2 && nc <= uint32_t(c.branching)),
               "corrupt section MTCHILD: node ", i, " has ", nc, " children (branching ",
               c.branching, ")");
    ANNX_CHECK(FormatError, next + nc <= nnodes, "corrupt section MTCHILD: node ", i,
               " has children past the ", nnodes, " nodes");
    t.nodes[i].first_child = uint32_t(nc ? next : 0);
    t.nodes[i].nchild = nc;
    for (uint32_t j = 0; j < nc; ++j) {
      depth[next + j] = depth[i] + 1;
      ANNX_CHECK(FormatError, depth[next + j] <= c.max_depth,
                 "corrupt section MTCHILD: the tree is deeper than max_depth ", c.max_depth);
      t.depth = std::max(t.depth, depth[next + j]);
    }
    next += nc;
  }
  ANNX_CHECK(FormatError, next == nnodes || nnodes == 0, "corrupt section MTCHILD: ", nnodes,
             " nodes but ", next, " are reachable");
  ANNX_CHECK(FormatError, first_non_finite(cent.data(), cent.size()) == cent.size(),
             "corrupt section MTCENT: non-finite centroid");
  t.centroids.assign(cent.begin(), cent.end());
  for (float v : rad)
    ANNX_CHECK(FormatError, std::isfinite(v) && v >= 0, "corrupt section MTRAD: radius ", v);
  t.radius.assign(rad.begin(), rad.end());
  t.number_leaves();

  ANNX_CHECK(FormatError, first_non_finite(vecs.data(), vecs.size()) == vecs.size(),
             "corrupt section MTVECS: non-finite value");
  if (metric == Metric::Cosine)
    for (uint64_t i = 0; i < n; ++i) {
      double s = 0;
      for (size_t j = 0; j < D; ++j) s += double(vecs[i * D + j]) * vecs[i * D + j];
      ANNX_CHECK(FormatError, std::fabs(s - 1.0) < 1e-3, "corrupt section MTVECS: vector ", i,
                 " is not normalised (a cosine index stores unit vectors)");
    }
  for (uint64_t i = 0; i < n; ++i)
    ANNX_CHECK(FormatError, leaf[i] < t.nleaves, "corrupt section MTLEAF: leaf ", leaf[i],
               " of vector ", i, " is out of range (", t.nleaves, " leaves)");
  ANNX_CHECK(FormatError, toff[0] == 0 && uint64_t(toff[n]) == npairs,
             "corrupt section MTTOFF: offsets must run from 0 to ", npairs);
  for (uint64_t i = 0; i < n; ++i)
    ANNX_CHECK(FormatError, toff[i + 1] >= toff[i], "corrupt section MTTOFF: offsets decrease at ",
               i);
  for (uint64_t i = 0; i < n; ++i) {
    for (int64_t j = toff[i]; j < toff[i + 1]; ++j)
      ANNX_CHECK(FormatError, ten[j] >= 0 && (j == toff[i] || ten[j] > ten[j - 1]),
                 "corrupt section MTTEN: the tenants of vector ", i,
                 " must be distinct, ascending and >= 0");
  }
  SharedArray<idx_t> id_arr;
  id_arr.mut().assign(ids.begin(), ids.end());
  try {
    mt->idmap_.load(std::move(id_arr), max_id);
  } catch (const FormatError& e) {
    throw FormatError(std::string("corrupt section MTIDS: ") + e.what());
  }

  for (size_t j = 0; j < sq.size(); ++j)
    ANNX_CHECK(FormatError, std::isfinite(sq[j]) && (j < D || sq[j] > 0),
               "corrupt section MTSQ: bad SQ8 parameter ", sq[j]);
  if (trained) {
    mt->sq_.set_sq_params(std::vector<float>(sq.begin(), sq.begin() + D),
                          std::vector<float>(sq.begin() + D, sq.end()));
    mt->codes_.resize(n * D);
    mt->sq_.encode(vecs.data(), n, mt->codes_.data());
  }
  mt->tree_ = std::move(t);
  mt->trained_ = trained;
  mt->vectors_.assign(vecs.begin(), vecs.end());
  if (mt->metric_ == Metric::L2) mt->norms2_ = squared_norms(vecs.data(), n, D);
  mt->leaf_of_.assign(leaf.begin(), leaf.end());
  mt->slot_tenants_.resize(n);
  std::vector<std::pair<uint32_t, uint32_t>> pairs;
  pairs.reserve(npairs);
  for (uint64_t i = 0; i < n; ++i) {
    auto& st = mt->slot_tenants_[i];
    for (int64_t j = toff[i]; j < toff[i + 1]; ++j) {
      const uint32_t ti = mt->tenant_slot(ten[j]);
      st.push_back(ti);
      pairs.emplace_back(ti, uint32_t(i));
    }
    std::sort(st.begin(), st.end());
  }
  mt->insert_pairs(pairs);
  return mt;
}

}  // namespace annx
