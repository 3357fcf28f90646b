// Bindings of annx::Index (the low-level handle wrapped by annx.Index in Python).
#include <pybind11/stl.h>

#include <cmath>
#include <optional>

#include "annx/factory.h"
#include "annx/index/hnsw.h"
#include "annx/index/index.h"
#include "annx/index/ivf.h"
#include "annx/index/leanvec_index.h"
#include "annx/io/container.h"
#include "glue.h"

namespace annx::py_glue {

namespace {

using IndexPtr = std::shared_ptr<Index>;

const float* checked_rows(const CArray<float>& x, const Index& index, const char* what, size_t* n) {
  ssize_t rows = 0;
  const float* p = rows_ptr(x, index.d(), what, &rows);
  *n = static_cast<size_t>(rows);
  return p;
}

HnswIndex& as_hnsw(const IndexPtr& self) {
  auto* h = dynamic_cast<HnswIndex*>(self.get());
  ANNX_CHECK(InvalidArgument, h != nullptr, "index '", self->spec(), "' is not an HNSW index");
  return *h;
}

IvfIndex& as_ivf(const IndexPtr& self) {
  auto* h = dynamic_cast<IvfIndex*>(self.get());
  ANNX_CHECK(InvalidArgument, h != nullptr, "index '", self->spec(), "' is not an IVF or PQ index");
  return *h;
}

LeanVecIndex& as_leanvec(const IndexPtr& self) {
  auto* h = dynamic_cast<LeanVecIndex*>(self.get());
  ANNX_CHECK(InvalidArgument, h != nullptr, "index '", self->spec(), "' is not a LeanVec index");
  return *h;
}

CArray<float> to_array(const std::vector<float>& v, ssize_t rows, ssize_t cols) {
  CArray<float> out = cols ? CArray<float>({rows, cols}) : CArray<float>(rows);
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

int checked_param(int64_t v, const char* name) {
  ANNX_CHECK(InvalidArgument, v >= 0 && v <= (int64_t{1} << 30), name, " must be >= 1, got ", v);
  return static_cast<int>(v);
}

py::tuple search(const IndexPtr& self, const CArray<float>& q, int64_t k, int threads,
                 std::optional<CArray<int64_t>> filter_ids,
                 std::optional<CArray<uint8_t>> filter_mask, int64_t ef_search, int64_t rerank,
                 int64_t nprobe) {
  size_t nq = 0;
  const float* qp = checked_rows(q, *self, "queries", &nq);
  ANNX_CHECK(InvalidArgument, k >= 1, "k must be >= 1, got ", k);
  ANNX_CHECK(InvalidArgument, threads >= 0, "threads must be >= 1, got ", threads);
  CArray<float> D({static_cast<ssize_t>(nq), static_cast<ssize_t>(k)});
  CArray<int64_t> I({static_cast<ssize_t>(nq), static_cast<ssize_t>(k)});
  FilterArgs f{std::move(filter_ids), std::move(filter_mask), {}};
  SearchParams params;
  params.threads = threads;
  params.filter = f.get();
  params.ef_search = checked_param(ef_search, "ef_search");
  params.rerank = checked_param(rerank, "rerank");
  params.nprobe = checked_param(nprobe, "nprobe");
  float* Dp = D.mutable_data();
  int64_t* Ip = I.mutable_data();
  without_gil([&] { self->search(qp, nq, static_cast<size_t>(k), params, Dp, Ip); });
  return py::make_tuple(D, I);
}

py::tuple range_search(const IndexPtr& self, const CArray<float>& q, float radius, int threads,
                       std::optional<CArray<int64_t>> filter_ids,
                       std::optional<CArray<uint8_t>> filter_mask, int64_t ef_search,
                       int64_t rerank, int64_t nprobe) {
  size_t nq = 0;
  const float* qp = checked_rows(q, *self, "queries", &nq);
  FilterArgs f{std::move(filter_ids), std::move(filter_mask), {}};
  SearchParams params;
  params.threads = threads;
  params.filter = f.get();
  params.ef_search = checked_param(ef_search, "ef_search");
  params.rerank = checked_param(rerank, "rerank");
  params.nprobe = checked_param(nprobe, "nprobe");
  RangeResult r = without_gil([&] { return self->range_search(qp, nq, radius, params); });
  CArray<int64_t> lims(static_cast<ssize_t>(r.lims.size()));
  std::copy(r.lims.begin(), r.lims.end(), lims.mutable_data());
  CArray<float> D(static_cast<ssize_t>(r.distances.size()));
  std::copy(r.distances.begin(), r.distances.end(), D.mutable_data());
  CArray<int64_t> I(static_cast<ssize_t>(r.ids.size()));
  std::copy(r.ids.begin(), r.ids.end(), I.mutable_data());
  return py::make_tuple(lims, D, I);
}

}  // namespace

void bind_index(py::module_& m) {
  py::class_<Index, IndexPtr>(m, "Index", "Low-level index handle; use annx.index_factory.")
      .def_property_readonly("d", &Index::d)
      .def_property_readonly("metric",
                             [](const Index& i) { return std::string(metric_name(i.metric())); })
      .def_property_readonly("spec", &Index::spec)
      .def_property_readonly("ntotal", &Index::ntotal)
      .def_property_readonly("is_trained", &Index::is_trained)
      .def_property_readonly("next_id", &Index::next_id)
      .def("memory_bytes", &Index::memory_bytes)
      .def("bytes_per_vector", &Index::bytes_per_vector)
      .def(
          "train",
          [](const IndexPtr& self, const CArray<float>& x, const py::object& progress) {
            size_t n = 0;
            const float* p = checked_rows(x, *self, "x", &n);
            without_gil(progress, [&] { self->train(p, n); });
          },
          py::arg("x"), py::arg("progress") = py::none())
      .def("train_units", &Index::train_units)
      .def(
          "add",
          [](const IndexPtr& self, const CArray<float>& x, std::optional<CArray<int64_t>> ids,
             int threads) {
            size_t n = 0;
            const float* p = checked_rows(x, *self, "x", &n);
            const int64_t* ip = nullptr;
            if (ids) {
              ANNX_CHECK(InvalidArgument, ids->ndim() == 1 && static_cast<size_t>(ids->size()) == n,
                         "ids must be a 1-D array of length ", n,
                         " (one per vector), got shape with ", ids->size(), " elements");
              ip = ids->data();
            }
            without_gil([&] { self->add(p, n, ip, threads); });
          },
          py::arg("x"), py::arg("ids") = py::none(), py::arg("threads") = 0)
      .def("search", &search, py::arg("q"), py::arg("k"), py::arg("threads") = 0,
           py::arg("filter_ids") = py::none(), py::arg("filter_mask") = py::none(),
           py::arg("ef_search") = 0, py::arg("rerank") = 0, py::arg("nprobe") = 0)
      .def("range_search", &range_search, py::arg("q"), py::arg("radius"), py::arg("threads") = 0,
           py::arg("filter_ids") = py::none(), py::arg("filter_mask") = py::none(),
           py::arg("ef_search") = 0, py::arg("rerank") = 0, py::arg("nprobe") = 0)
      .def_property(
          "ef_construction",
          [](const IndexPtr& self) { return as_hnsw(self).options().ef_construction; },
          [](const IndexPtr& self, int ef) { as_hnsw(self).set_ef_construction(ef); })
      .def_property_readonly("hnsw_m",
                             [](const IndexPtr& self) { return as_hnsw(self).options().M; })
      .def_property_readonly("seed",
                             [](const IndexPtr& self) -> uint64_t {
                               if (auto* ivf = dynamic_cast<IvfIndex*>(self.get()))
                                 return ivf->options().seed;
                               if (auto* lv = dynamic_cast<LeanVecIndex*>(self.get()))
                                 return lv->seed();
                               return as_hnsw(self).options().seed;
                             })
      .def_property_readonly("n_deleted",
                             [](const IndexPtr& self) { return as_hnsw(self).n_deleted(); })
      .def_property_readonly("nlist", [](const IndexPtr& self) { return as_ivf(self).nlist(); })
      .def("ivf_list_sizes", [](const IndexPtr& self) { return as_ivf(self).list_sizes(); })
      .def("ivf_centroids",
           [](const IndexPtr& self) {
             const IvfIndex& ivf = as_ivf(self);
             std::vector<float> c = ivf.centroids();
             const ssize_t k = static_cast<ssize_t>(c.size() / static_cast<size_t>(ivf.d()));
             CArray<float> out({k, static_cast<ssize_t>(ivf.d())});
             std::copy(c.begin(), c.end(), out.mutable_data());
             return out;
           })
      .def(
          "ivf_list_of",
          [](const IndexPtr& self, const CArray<int64_t>& ids) {
            std::vector<int64_t> v =
                as_ivf(self).list_of(ids.data(), static_cast<size_t>(ids.size()));
            CArray<int64_t> out(static_cast<ssize_t>(v.size()));
            std::copy(v.begin(), v.end(), out.mutable_data());
            return out;
          },
          py::arg("ids"))
      .def(
          "ivf_nearest_lists",
          [](const IndexPtr& self, const CArray<float>& x, int64_t p, int ef_search, int threads) {
            const IvfIndex& ivf = as_ivf(self);
            size_t n = 0;
            const float* xp = checked_rows(x, *self, "x", &n);
            ANNX_CHECK(InvalidArgument, p >= 1 && p <= (int64_t{1} << 30),
                       "the number of lists must be >= 1, got ", p);
            std::vector<int64_t> v = without_gil([&] {
              return ivf.nearest_lists(xp, n, static_cast<size_t>(p), ef_search, threads);
            });
            const ssize_t cols = n ? static_cast<ssize_t>(v.size() / n)
                                   : static_cast<ssize_t>(std::min<int64_t>(p, ivf.nlist()));
            CArray<int64_t> out({static_cast<ssize_t>(n), cols});
            std::copy(v.begin(), v.end(), out.mutable_data());
            return out;
          },
          py::arg("x"), py::arg("p"), py::arg("ef_search") = 0, py::arg("threads") = 0)
      .def("ivf_pq_codebooks",
           [](const IndexPtr& self) {
             const IvfIndex& ivf = as_ivf(self);
             std::vector<float> c = ivf.pq_codebooks();
             const ssize_t ds = static_cast<ssize_t>(std::max<size_t>(1, ivf.pq_dsub()));
             CArray<float> out({static_cast<ssize_t>(c.size()) / ds, ds});
             std::copy(c.begin(), c.end(), out.mutable_data());
             return out;
           })
      .def_property_readonly(
          "by_residual", [](const IndexPtr& self) { return as_ivf(self).options().by_residual; })
      .def_property_readonly("auto_residual_gain",
                             [](const IndexPtr& self) -> std::optional<double> {
                               const double g = as_ivf(self).options().auto_residual_gain;
                               if (std::isnan(g)) return std::nullopt;
                               return g;
                             })
      .def_property_readonly("ivf_precomputed_bytes",
                             [](const IndexPtr& self) { return as_ivf(self).precomputed_bytes(); })
      .def(
          "leanvec_train",
          [](const IndexPtr& self, const CArray<float>& x, const CArray<float>& mean,
             const CArray<float>& data, const CArray<float>& query, const py::object& progress) {
            LeanVecIndex& lv = as_leanvec(self);
            size_t n = 0;
            const float* p = checked_rows(x, *self, "x", &n);
            const ssize_t D = lv.d(), dd = lv.target_dim();
            ANNX_CHECK(InvalidArgument, mean.ndim() == 1 && mean.shape(0) == D,
                       "LeanVec mean must have shape (", D, ",)");
            for (const CArray<float>* a : {&data, &query})
              ANNX_CHECK(InvalidArgument, a->ndim() == 2 && a->shape(0) == D && a->shape(1) == dd,
                         "LeanVec matrices must have shape (", D, ", ", dd, ")");
            without_gil(progress, [&] {
              lv.train_with_matrices(mean.data(), data.data(), query.data(), p, n);
            });
          },
          py::arg("x"), py::arg("mean"), py::arg("data"), py::arg("query"),
          py::arg("progress") = py::none())
      .def("leanvec_matrices",
           [](const IndexPtr& self) -> py::tuple {
             const LeanVecIndex& lv = as_leanvec(self);
             const ssize_t D = lv.d(), dd = lv.target_dim();
             std::vector<float> mean = lv.mean();
             if (mean.empty()) return py::make_tuple(py::none(), py::none(), py::none());
             return py::make_tuple(to_array(mean, D, 0), to_array(lv.data_matrix(), D, dd),
                                   to_array(lv.query_matrix(), D, dd));
           })
      .def_property_readonly("leanvec_target_dim",
                             [](const IndexPtr& self) { return as_leanvec(self).target_dim(); })
      .def_property_readonly("leanvec_ood",
                             [](const IndexPtr& self) { return as_leanvec(self).ood(); })
      .def_property_readonly("leanvec_inner_spec",
                             [](const IndexPtr& self) { return as_leanvec(self).inner_spec(); })
      .def("leanvec_bytes_per_vector",
           [](const IndexPtr& self) {
             const LeanVecIndex& lv = as_leanvec(self);
             return py::make_tuple(lv.primary_bytes_per_vector(), lv.secondary_bytes_per_vector());
           })
      .def("hnsw_max_level", [](const IndexPtr& self) { return as_hnsw(self).max_level(); })
      .def("hnsw_level_counts", [](const IndexPtr& self) { return as_hnsw(self).level_counts(); })
      .def("hnsw_check_graph",
           [](const IndexPtr& self) {
             return without_gil([&] { return as_hnsw(self).check_graph(); });
           })
      .def(
          "hnsw_neighbors",
          [](const IndexPtr& self, int64_t id, int level) {
            return as_hnsw(self).neighbors(id, level);
          },
          py::arg("id"), py::arg("level"))
      .def(
          "remove",
          [](const IndexPtr& self, const CArray<int64_t>& ids) {
            const int64_t* p = ids.data();
            const size_t n = static_cast<size_t>(ids.size());
            return without_gil([&] { return self->remove(p, n); });
          },
          py::arg("ids"))
      .def(
          "reconstruct",
          [](const IndexPtr& self, const CArray<int64_t>& ids) {
            const size_t n = static_cast<size_t>(ids.size());
            CArray<float> out({static_cast<ssize_t>(n), static_cast<ssize_t>(self->d())});
            const int64_t* p = ids.data();
            float* o = out.mutable_data();
            without_gil([&] { self->reconstruct(p, n, o); });
            return out;
          },
          py::arg("ids"))
      .def_property("file_kind", &Index::file_kind, &Index::set_file_kind,
                    "Manifest 'kind' written by save/to_bytes ('' for a plain index).")
      .def("contains", &Index::contains, py::arg("id"))
      .def("ids",
           [](const IndexPtr& self) {
             std::vector<idx_t> v = self->ids();
             CArray<int64_t> out(static_cast<ssize_t>(v.size()));
             std::copy(v.begin(), v.end(), out.mutable_data());
             return out;
           })
      .def("to_bytes",
           [](const IndexPtr& self) {
             std::vector<uint8_t> b = without_gil([&] { return self->to_bytes(); });
             return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
           })
      .def(
          "save",
          [](const IndexPtr& self, const std::string& path) {
            without_gil([&] { self->save(path); });
          },
          py::arg("path"));

  m.def(
      "index_factory",
      [](int d, const std::string& spec, const std::string& metric,
         std::optional<int> ef_construction, std::optional<uint64_t> seed,
         std::optional<bool> shuffle, std::optional<bool> by_residual,
         std::optional<std::string> insert_order) {
        FactoryOptions o;
        o.insert_order = insert_order;
        o.ef_construction = ef_construction;
        o.seed = seed;
        o.shuffle = shuffle;
        o.by_residual = by_residual;
        return IndexPtr(make_index(d, spec, parse_metric(metric), o));
      },
      py::arg("d"), py::arg("spec"), py::arg("metric") = "l2",
      py::arg("ef_construction") = py::none(), py::arg("seed") = py::none(),
      py::arg("shuffle") = py::none(), py::arg("by_residual") = py::none(),
      py::arg("insert_order") = py::none());

  m.def(
      "load",
      [](const std::string& path, bool mmap, bool verify) {
        return without_gil([&] { return IndexPtr(load_index_file(path, mmap, verify)); });
      },
      py::arg("path"), py::arg("mmap") = false, py::arg("verify") = true);

  m.def(
      "from_bytes",
      [](const py::buffer& data, bool verify) {
        auto blob = blob_from_buffer(data);
        return without_gil([&] { return IndexPtr(load_index(std::move(blob), verify)); });
      },
      py::arg("data"), py::arg("verify") = true);

  m.def(
      "read_manifest",
      [](const std::string& path) {
        // Reads only what the header/TOC/manifest need (via mmap: untouched pages stay on disk).
        io::ContainerReader r(io::Blob::map_file(path), /*verify_checksums=*/false);
        r.verify_section("MANIFEST");
        const io::Manifest man = io::Manifest::from_section(r);
        py::dict out;
        for (const auto& [k, v] : man.entries()) out[py::str(k)] = v;
        out["format_version"] =
            std::to_string(r.format_major()) + "." + std::to_string(r.format_minor());
        out["file_bytes"] = r.blob()->size();
        return out;
      },
      py::arg("path"));

  m.def(
      "read_manifest_bytes",
      [](const py::buffer& data) {
        // The manifest of an in-memory annx file (contiguous bytes are borrowed, not
        // copied; a strided buffer is gathered as from_bytes does).
        py::buffer_info info = data.request();
        const bool contiguous =
            info.ndim == 1 && info.itemsize == 1 && (info.strides.empty() || info.strides[0] == 1);
        auto blob = contiguous ? io::Blob::borrow(info.ptr, static_cast<size_t>(info.size), nullptr)
                               : blob_from_buffer(data);
        io::ContainerReader r(blob, /*verify_checksums=*/false);
        r.verify_section("MANIFEST");
        const io::Manifest man = io::Manifest::from_section(r);
        py::dict out;
        for (const auto& [k, v] : man.entries()) out[py::str(k)] = v;
        return out;
      },
      py::arg("data"));
}

}  // namespace annx::py_glue
