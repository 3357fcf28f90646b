// Bindings of MultiTenantIndex. Tenant lists arrive ragged: (tenants int64 [P],
// offsets int64 [n + 1]); the Python layer (annx/multitenant.py) builds them.
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>

#include "annx/index/multitenant_index.h"
#include "annx/io/container.h"
#include "glue.h"

namespace annx::py_glue {

namespace {

using MtPtr = std::shared_ptr<MultiTenantIndex>;

template <class T>
CArray<T> vec1(const std::vector<T>& v) {
  CArray<T> out(static_cast<ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

const idx_t* ids_ptr(const CArray<int64_t>& ids, size_t* n) {
  ANNX_CHECK(InvalidArgument, ids.ndim() == 1, "ids must be a 1-D int64 array");
  *n = static_cast<size_t>(ids.shape(0));
  return ids.data();
}

}  // namespace

void bind_multitenant(py::module_& m) {
  py::class_<MultiTenantIndex, MtPtr>(m, "MultiTenantIndex")
      .def(
          py::init([](int d, const std::string& metric, int branching, int leaf_size, int split,
                      int exact_threshold, int ef_search, int max_depth, int niter, uint64_t seed) {
            MultiTenantConfig c;
            c.branching = branching;
            c.leaf_size = leaf_size;
            c.split = split;
            c.exact_threshold = exact_threshold;
            c.ef_search = ef_search;
            c.max_depth = max_depth;
            c.niter = niter;
            c.seed = seed;
            return std::make_shared<MultiTenantIndex>(d, parse_metric(metric), c);
          }),
          py::arg("d"), py::arg("metric"), py::arg("branching"), py::arg("leaf_size"),
          py::arg("split"), py::arg("exact_threshold"), py::arg("ef_search"), py::arg("max_depth"),
          py::arg("niter"), py::arg("seed"))
      .def_property_readonly("d", &MultiTenantIndex::d)
      .def_property_readonly("metric",
                             [](const MultiTenantIndex& s) { return metric_name(s.metric()); })
      .def_property_readonly("spec", &MultiTenantIndex::spec)
      .def_property_readonly("ntotal", &MultiTenantIndex::ntotal)
      .def_property_readonly("is_trained", &MultiTenantIndex::is_trained)
      .def_property_readonly("next_id", &MultiTenantIndex::next_id)
      .def_property_readonly("num_nodes", &MultiTenantIndex::num_nodes)
      .def_property_readonly("num_leaves", &MultiTenantIndex::num_leaves)
      .def_property_readonly("depth", &MultiTenantIndex::depth)
      .def_property_readonly("num_grants", &MultiTenantIndex::num_grants)
      .def_property_readonly("config",
                             [](const MultiTenantIndex& s) {
                               const MultiTenantConfig& c = s.config();
                               py::dict d;
                               d["branching"] = c.branching;
                               d["leaf_size"] = c.leaf_size;
                               d["split"] = c.split;
                               d["exact_threshold"] = c.exact_threshold;
                               d["ef_search"] = c.ef_search;
                               d["max_depth"] = c.max_depth;
                               d["niter"] = c.niter;
                               d["seed"] = c.seed;
                               return d;
                             })
      .def("contains", &MultiTenantIndex::contains, py::arg("id"))
      .def("ids", [](const MultiTenantIndex& s) { return vec1(s.ids()); })
      .def("memory_bytes", &MultiTenantIndex::memory_bytes)
      .def("bytes_per_vector", &MultiTenantIndex::bytes_per_vector)
      .def(
          "train",
          [](MultiTenantIndex& s, const CArray<float>& x, int threads, const py::object& progress) {
            ssize_t n = 0;
            const float* p = rows_ptr(x, s.d(), "x", &n);
            without_gil(progress, [&] { s.train(p, size_t(n), threads); });
          },
          py::arg("x"), py::arg("threads") = 0, py::arg("progress") = py::none())
      .def(
          "add",
          [](MultiTenantIndex& s, const CArray<float>& x, std::optional<CArray<int64_t>> ids,
             std::optional<CArray<int64_t>> tenants, std::optional<CArray<int64_t>> offsets,
             int threads) {
            ssize_t n = 0;
            const float* p = rows_ptr(x, s.d(), "x", &n);
            ANNX_CHECK(InvalidArgument, !ids || (ids->ndim() == 1 && ids->shape(0) == n),
                       "ids must be a 1-D int64 array of ", n, " entries (one per vector)");
            ANNX_CHECK(InvalidArgument, tenants.has_value() == offsets.has_value(),
                       "tenants and tenant offsets go together");
            if (offsets) {
              ANNX_CHECK(InvalidArgument, offsets->ndim() == 1 && offsets->shape(0) == n + 1,
                         "tenant offsets must be a 1-D int64 array of ", n + 1, " entries");
              ANNX_CHECK(InvalidArgument,
                         tenants->ndim() == 1 && offsets->data()[n] == tenants->shape(0),
                         "tenant offsets must end at the number of tenant entries");
            }
            const idx_t* ip = ids ? ids->data() : nullptr;
            const int64_t* tp = tenants ? tenants->data() : nullptr;
            const int64_t* op = offsets ? offsets->data() : nullptr;
            return vec1(without_gil([&] { return s.add(p, size_t(n), ip, tp, op, threads); }));
          },
          py::arg("x"), py::arg("ids") = py::none(), py::arg("tenants") = py::none(),
          py::arg("offsets") = py::none(), py::arg("threads") = 0)
      .def(
          "grant",
          [](MultiTenantIndex& s, const CArray<int64_t>& ids, int64_t tenant) {
            size_t n = 0;
            const idx_t* p = ids_ptr(ids, &n);
            without_gil([&] { s.grant(p, n, tenant); });
          },
          py::arg("ids"), py::arg("tenant"))
      .def(
          "revoke",
          [](MultiTenantIndex& s, const CArray<int64_t>& ids, int64_t tenant) {
            size_t n = 0;
            const idx_t* p = ids_ptr(ids, &n);
            without_gil([&] { s.revoke(p, n, tenant); });
          },
          py::arg("ids"), py::arg("tenant"))
      .def(
          "remove",
          [](MultiTenantIndex& s, const CArray<int64_t>& ids) {
            size_t n = 0;
            const idx_t* p = ids_ptr(ids, &n);
            return without_gil([&] { return s.remove(p, n); });
          },
          py::arg("ids"))
      .def("reset", [](MultiTenantIndex& s) { without_gil([&] { s.reset(); }); })
      .def(
          "search",
          [](const MultiTenantIndex& s, const CArray<float>& q, int64_t k,
             const CArray<int64_t>& tenants, int64_t ef_search, int threads) {
            ANNX_CHECK(InvalidArgument, k >= 1 && k <= (int64_t{1} << 30),
                       "k must be in [1, 2**30], got ", k);
            ANNX_CHECK(InvalidArgument, ef_search >= 0 && ef_search <= (int64_t{1} << 30),
                       "ef_search must be in [1, 2**30], got ", ef_search);
            ANNX_CHECK(InvalidArgument, threads >= 0, "threads must be >= 1");
            ssize_t nq = 0;
            const float* qp = rows_ptr(q, s.d(), "queries", &nq);
            ANNX_CHECK(InvalidArgument, tenants.ndim() == 1 && tenants.shape(0) == nq,
                       "tenant must be one int or one per query (", nq, ")");
            CArray<float> D({nq, static_cast<ssize_t>(k)});
            CArray<int64_t> I({nq, static_cast<ssize_t>(k)});
            float* Dp = D.mutable_data();
            int64_t* Ip = I.mutable_data();
            const int64_t* tp = tenants.data();
            without_gil(
                [&] { s.search(qp, size_t(nq), size_t(k), tp, int(ef_search), threads, Dp, Ip); });
            return py::make_tuple(D, I);
          },
          py::arg("q"), py::arg("k"), py::arg("tenants"), py::arg("ef_search") = 0,
          py::arg("threads") = 0)
      .def(
          "tenants_of", [](const MultiTenantIndex& s, idx_t id) { return vec1(s.tenants_of(id)); },
          py::arg("id"))
      .def("tenant_size", &MultiTenantIndex::tenant_size, py::arg("tenant"))
      .def("tenants", [](const MultiTenantIndex& s) { return vec1(s.tenants()); })
      .def(
          "tenant_ids", [](const MultiTenantIndex& s, int64_t t) { return vec1(s.tenant_ids(t)); },
          py::arg("tenant"))
      .def(
          "reconstruct",
          [](const MultiTenantIndex& s, const CArray<int64_t>& ids) {
            size_t n = 0;
            const idx_t* p = ids_ptr(ids, &n);
            std::vector<float> v = s.reconstruct(p, n);
            CArray<float> out({static_cast<ssize_t>(n), static_cast<ssize_t>(s.d())});
            std::copy(v.begin(), v.end(), out.mutable_data());
            return out;
          },
          py::arg("ids"))
      .def("to_bytes",
           [](const MultiTenantIndex& s) {
             std::vector<uint8_t> b = without_gil([&] { return s.to_bytes(); });
             return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
           })
      .def(
          "save",
          [](const MultiTenantIndex& s, const std::string& path) {
            without_gil([&] { s.save(path); });
          },
          py::arg("path"));

  m.def(
      "mt_load",
      [](const std::string& path, bool verify) {
        return without_gil(
            [&] { return MtPtr(MultiTenantIndex::load(io::Blob::read_file(path), verify)); });
      },
      py::arg("path"), py::arg("verify") = true);
  m.def(
      "mt_from_bytes",
      [](const py::buffer& data, bool verify) {
        py::buffer_info info = data.request();
        ANNX_CHECK(InvalidArgument, info.ndim == 1 && info.itemsize == 1,
                   "from_bytes expects a bytes-like object");
        auto blob = io::Blob::copy_of(info.ptr, static_cast<size_t>(info.size));
        return without_gil([&] { return MtPtr(MultiTenantIndex::load(std::move(blob), verify)); });
      },
      py::arg("data"), py::arg("verify") = true);
}

}  // namespace annx::py_glue
