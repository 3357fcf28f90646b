// Bindings of the multi-vector pieces: FDE encoder, exact Chamfer and MultiVectorIndex.
// Ragged sets arrive as (tokens float32 [T, dim], offsets int64 [n + 1]); the Python
// layer (annx/multivector.py) builds them from lists of arrays.
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>

#include "annx/index/chamfer.h"
#include "annx/index/multivector_index.h"
#include "annx/io/container.h"
#include "annx/transform/fde.h"
#include "glue.h"

namespace annx::py_glue {

namespace {

using MvPtr = std::shared_ptr<MultiVectorIndex>;

/// Checked view of a ragged batch: returns the number of sets.
size_t ragged(const CArray<float>& tokens, const CArray<int64_t>& offsets, size_t dim,
              const char* what, const float** tp, const int64_t** op) {
  ssize_t rows = 0;
  *tp = rows_ptr(tokens, static_cast<ssize_t>(dim), what, &rows);
  ANNX_CHECK(InvalidArgument, offsets.ndim() == 1 && offsets.shape(0) >= 1, what,
             " offsets must be a 1-D int64 array of n + 1 entries");
  *op = offsets.data();
  const size_t n = static_cast<size_t>(offsets.shape(0) - 1);
  validate_sets(*tp, static_cast<size_t>(rows), dim, *op, n, what);
  return n;
}

CArray<float> matrix(size_t rows, size_t cols) {
  return CArray<float>({static_cast<ssize_t>(rows), static_cast<ssize_t>(cols)});
}

FdeFill fill_mode(const std::string& fill) {
  ANNX_CHECK(InvalidArgument, fill == "margin" || fill == "hamming",
             "fill must be 'margin' or 'hamming', got '", fill, "'");
  return fill == "margin" ? FdeFill::Margin : FdeFill::Hamming;
}

FdeConfig make_config(int dim, int k_sim, int d_proj, int reps, bool fill_empty, int final_dim,
                      uint64_t seed, const std::string& fill) {
  FdeConfig c;
  c.fill = fill_mode(fill);
  c.dim = dim;
  c.k_sim = k_sim;
  c.d_proj = d_proj;
  c.reps = reps;
  c.fill_empty = fill_empty;
  c.final_dim = final_dim;
  c.seed = seed;
  return c;
}

}  // namespace

void bind_multivector(py::module_& m) {
  py::class_<FdeEncoder, std::shared_ptr<FdeEncoder>>(m, "FdeEncoder")
      .def(py::init([](int dim, int k_sim, int d_proj, int reps, bool fill_empty, int final_dim,
                       uint64_t seed, const std::string& fill) {
             return std::make_shared<FdeEncoder>(
                 make_config(dim, k_sim, d_proj, reps, fill_empty, final_dim, seed, fill));
           }),
           py::arg("dim"), py::arg("k_sim"), py::arg("d_proj"), py::arg("reps"),
           py::arg("fill_empty"), py::arg("final_dim"), py::arg("seed"), py::arg("fill") = "margin")
      .def_property_readonly("dim", &FdeEncoder::dim)
      .def_property_readonly("output_dim", &FdeEncoder::output_dim)
      .def_property_readonly("block_dim", &FdeEncoder::block_dim)
      .def(
          "encode",
          [](const FdeEncoder& self, const CArray<float>& tokens, const CArray<int64_t>& offsets,
             bool queries, int threads) {
            const float* tp = nullptr;
            const int64_t* op = nullptr;
            const size_t n =
                ragged(tokens, offsets, size_t(self.dim()), queries ? "queries" : "docs", &tp, &op);
            CArray<float> out = matrix(n, self.output_dim());
            float* o = out.mutable_data();
            without_gil([&] { self.encode(tp, op, n, queries, o, threads); });
            return out;
          },
          py::arg("tokens"), py::arg("offsets"), py::arg("queries"), py::arg("threads") = 0)
      .def(
          "encode_into",
          [](const FdeEncoder& self, const CArray<float>& tokens, const CArray<int64_t>& offsets,
             bool queries, int threads, py::array out) {
            // Writes into a caller's array (reused across calls, it saves the kernel's
            // zero-filling of fresh pages): exactly float32, C-contiguous, writeable,
            // [n, output_dim], not overlapping the tokens; nothing is written otherwise.
            const float* tp = nullptr;
            const int64_t* op = nullptr;
            const size_t n =
                ragged(tokens, offsets, size_t(self.dim()), queries ? "queries" : "docs", &tp, &op);
            const size_t odim = self.output_dim();
            ANNX_CHECK(InvalidArgument,
                       out.dtype().is(py::dtype::of<float>()) && out.ndim() == 2 &&
                           size_t(out.shape(0)) == n && size_t(out.shape(1)) == odim &&
                           (out.flags() & py::array::c_style) != 0 && out.writeable(),
                       "out must be a writeable C-contiguous float32 array of shape (", n, ", ",
                       odim, ")");
            if (n == 0) return out;
            float* o = static_cast<float*>(out.mutable_data());
            const auto ob = reinterpret_cast<uintptr_t>(o);
            const auto oe = ob + n * odim * sizeof(float);
            const auto tb = reinterpret_cast<uintptr_t>(tp);
            const auto te = tb + size_t(op[n]) * size_t(self.dim()) * sizeof(float);
            ANNX_CHECK(InvalidArgument, oe <= tb || te <= ob,
                       "out must not overlap the token vectors");
            without_gil([&] { self.encode(tp, op, n, queries, o, threads); });
            return out;
          },
          py::arg("tokens"), py::arg("offsets"), py::arg("queries"), py::arg("threads"),
          py::arg("out"))
      .def("simhash",
           [](const FdeEncoder& self) {
             const auto& g = self.simhash();
             const size_t rows = size_t(self.config().reps) * size_t(self.config().k_sim);
             CArray<float> out = matrix(rows, size_t(self.dim()));
             std::copy(g.begin(), g.begin() + std::ptrdiff_t(rows * size_t(self.dim())),
                       out.mutable_data());
             return out;
           })
      .def("ams",
           [](const FdeEncoder& self) {
             const size_t reps = size_t(self.config().reps), d = size_t(self.dim());
             std::vector<uint32_t> r;
             std::vector<float> s;
             self.ams(r, s);
             const size_t rows = r.empty() ? 0 : reps;
             CArray<uint32_t> ro({static_cast<ssize_t>(rows), static_cast<ssize_t>(d)});
             CArray<float> so = matrix(rows, d);
             std::copy(r.begin(), r.end(), ro.mutable_data());
             std::copy(s.begin(), s.end(), so.mutable_data());
             return py::make_tuple(ro, so);
           })
      .def("final_sketch", [](const FdeEncoder& self) {
        const auto& r = self.final_rows();
        const auto& s = self.final_signs();
        CArray<uint32_t> ro(static_cast<ssize_t>(r.size()));
        CArray<float> so(static_cast<ssize_t>(s.size()));
        std::copy(r.begin(), r.end(), ro.mutable_data());
        std::copy(s.begin(), s.end(), so.mutable_data());
        return py::make_tuple(ro, so);
      });

  m.def(
      "chamfer",
      [](const CArray<float>& q, const CArray<float>& tokens, const CArray<int64_t>& offsets,
         int threads) {
        ANNX_CHECK(InvalidArgument, q.ndim() == 2 && q.shape(0) >= 1,
                   "query_set must be a non-empty 2-D array");
        const size_t dim = static_cast<size_t>(q.shape(1));
        ssize_t nq = 0;
        const float* qp = rows_ptr(q, static_cast<ssize_t>(dim), "query_set", &nq);
        validate_sets(qp, size_t(nq), dim, std::vector<int64_t>{0, nq}.data(), 1, "query_set");
        const float* tp = nullptr;
        const int64_t* op = nullptr;
        const size_t n = ragged(tokens, offsets, dim, "doc_sets", &tp, &op);
        CArray<float> out(static_cast<ssize_t>(n));
        float* o = out.mutable_data();
        without_gil([&] { chamfer_scores(qp, size_t(nq), tp, op, n, dim, o, threads); });
        return out;
      },
      py::arg("query_set"), py::arg("tokens"), py::arg("offsets"), py::arg("threads") = 0);
  m.def(
      "chamfer_matrix",
      [](const CArray<float>& qtokens, const CArray<int64_t>& qoffsets, const CArray<float>& tokens,
         const CArray<int64_t>& offsets, int threads) {
        ANNX_CHECK(InvalidArgument, tokens.ndim() == 2, "doc_sets tokens must be a 2-D array");
        const size_t dim = static_cast<size_t>(tokens.shape(1));
        const float* qp = nullptr;
        const int64_t* qo = nullptr;
        const size_t nsets = ragged(qtokens, qoffsets, dim, "query_sets", &qp, &qo);
        const float* tp = nullptr;
        const int64_t* op = nullptr;
        const size_t n = ragged(tokens, offsets, dim, "doc_sets", &tp, &op);
        CArray<float> out = matrix(nsets, n);
        float* o = out.mutable_data();
        without_gil([&] { chamfer_matrix(qp, qo, nsets, tp, op, n, dim, o, threads); });
        return out;
      },
      py::arg("query_tokens"), py::arg("query_offsets"), py::arg("tokens"), py::arg("offsets"),
      py::arg("threads") = 0);

  py::class_<MultiVectorIndex, MvPtr>(m, "MultiVectorIndex")
      .def(py::init([](int dim, const std::string& spec, int k_sim, int d_proj, int reps,
                       bool fill_empty, int final_dim, uint64_t seed, const std::string& fill,
                       const std::string& tokens) {
             ANNX_CHECK(InvalidArgument, tokens == "F32" || tokens == "F16",
                        "tokens must be 'F32' or 'F16', got '", tokens, "'");
             return std::make_shared<MultiVectorIndex>(
                 dim, spec,
                 make_config(dim, k_sim, d_proj, reps, fill_empty, final_dim, seed, fill),
                 tokens == "F16" ? CodecKind::F16 : CodecKind::F32);
           }),
           py::arg("dim"), py::arg("spec"), py::arg("k_sim"), py::arg("d_proj"), py::arg("reps"),
           py::arg("fill_empty"), py::arg("final_dim"), py::arg("seed"), py::arg("fill"),
           py::arg("tokens"))
      .def_property_readonly("dim", &MultiVectorIndex::dim)
      .def_property_readonly("ntotal", &MultiVectorIndex::ntotal)
      .def_property_readonly("ntokens", &MultiVectorIndex::ntokens)
      .def_property_readonly("is_trained", &MultiVectorIndex::is_trained)
      .def_property_readonly("next_id", &MultiVectorIndex::next_id)
      .def_property_readonly("inner_spec",
                             [](const MultiVectorIndex& s) { return s.inner().spec(); })
      .def_property_readonly(
          "tokens",
          [](const MultiVectorIndex& s) { return std::string(codec_name(s.token_codec())); })
      .def_property_readonly("fde_config",
                             [](const MultiVectorIndex& s) {
                               const FdeConfig& c = s.fde().config();
                               py::dict d;
                               d["k_sim"] = c.k_sim;
                               d["d_proj"] = c.d_proj;
                               d["reps"] = c.reps;
                               d["fill_empty"] = c.fill_empty;
                               d["final_dim"] = c.final_dim;
                               d["seed"] = c.seed;
                               d["fill"] = c.fill == FdeFill::Margin ? "margin" : "hamming";
                               return d;
                             })
      .def_property_readonly("output_dim",
                             [](const MultiVectorIndex& s) { return s.fde().output_dim(); })
      .def("contains", &MultiVectorIndex::contains, py::arg("id"))
      .def("memory_bytes", &MultiVectorIndex::memory_bytes)
      .def("inner_bytes_per_doc", &MultiVectorIndex::inner_bytes_per_doc)
      .def("token_bytes_per_doc", &MultiVectorIndex::token_bytes_per_doc)
      .def("ids",
           [](const MultiVectorIndex& s) {
             std::vector<idx_t> v = s.ids();
             CArray<int64_t> out(static_cast<ssize_t>(v.size()));
             std::copy(v.begin(), v.end(), out.mutable_data());
             return out;
           })
      .def(
          "train",
          [](MultiVectorIndex& s, const CArray<float>& tokens, const CArray<int64_t>& offsets,
             int threads) {
            const float* tp = nullptr;
            const int64_t* op = nullptr;
            const size_t n = ragged(tokens, offsets, size_t(s.dim()), "docs", &tp, &op);
            without_gil([&] { s.train(tp, op, n, threads); });
          },
          py::arg("tokens"), py::arg("offsets"), py::arg("threads") = 0)
      .def(
          "add",
          [](MultiVectorIndex& s, const CArray<float>& tokens, const CArray<int64_t>& offsets,
             std::optional<CArray<int64_t>> ids, int threads) {
            const float* tp = nullptr;
            const int64_t* op = nullptr;
            const size_t n = ragged(tokens, offsets, size_t(s.dim()), "docs", &tp, &op);
            ANNX_CHECK(InvalidArgument, !ids || (ids->ndim() == 1 && size_t(ids->shape(0)) == n),
                       "ids must be a 1-D int64 array of ", n, " entries (one per document)");
            const idx_t* ip = ids ? ids->data() : nullptr;
            without_gil([&] { s.add(tp, op, n, ip, threads); });
          },
          py::arg("tokens"), py::arg("offsets"), py::arg("ids") = py::none(),
          py::arg("threads") = 0)
      .def(
          "remove",
          [](MultiVectorIndex& s, const CArray<int64_t>& ids) {
            ANNX_CHECK(InvalidArgument, ids.ndim() == 1, "ids must be a 1-D int64 array");
            return without_gil([&] { return s.remove(ids.data(), size_t(ids.shape(0))); });
          },
          py::arg("ids"))
      .def(
          "search",
          [](const MultiVectorIndex& s, const CArray<float>& tokens, const CArray<int64_t>& offsets,
             int64_t k, int64_t candidates, int threads, std::optional<CArray<int64_t>> filter_ids,
             std::optional<CArray<uint8_t>> filter_mask, int64_t ef_search, int64_t nprobe) {
            ANNX_CHECK(InvalidArgument, k >= 1 && k <= (int64_t{1} << 30), "k must be >= 1, got ",
                       k);
            ANNX_CHECK(InvalidArgument, candidates >= 0 && candidates <= (int64_t{1} << 30),
                       "candidates must be >= 1, got ", candidates);
            ANNX_CHECK(InvalidArgument, ef_search >= 0 && nprobe >= 0 && threads >= 0,
                       "ef_search, nprobe and threads must be >= 1");
            const float* tp = nullptr;
            const int64_t* op = nullptr;
            const size_t nq = ragged(tokens, offsets, size_t(s.dim()), "queries", &tp, &op);
            FilterArgs f{std::move(filter_ids), std::move(filter_mask), {}};
            SearchParams params;
            params.threads = threads;
            params.filter = f.get();
            params.ef_search = static_cast<int>(ef_search);
            params.nprobe = static_cast<int>(nprobe);
            CArray<float> S = matrix(nq, size_t(k));
            CArray<int64_t> I({static_cast<ssize_t>(nq), static_cast<ssize_t>(k)});
            float* Sp = S.mutable_data();
            int64_t* Ip = I.mutable_data();
            without_gil(
                [&] { s.search(tp, op, nq, size_t(k), size_t(candidates), params, Sp, Ip); });
            return py::make_tuple(S, I);
          },
          py::arg("tokens"), py::arg("offsets"), py::arg("k"), py::arg("candidates") = 0,
          py::arg("threads") = 0, py::arg("filter_ids") = py::none(),
          py::arg("filter_mask") = py::none(), py::arg("ef_search") = 0, py::arg("nprobe") = 0)
      .def(
          "doc_tokens",
          [](const MultiVectorIndex& s, idx_t id) {
            std::vector<float> v = s.doc_tokens(id);
            const size_t d = size_t(s.dim());
            CArray<float> out = matrix(v.size() / d, d);
            std::copy(v.begin(), v.end(), out.mutable_data());
            return out;
          },
          py::arg("id"))
      .def("to_bytes",
           [](const MultiVectorIndex& s) {
             std::vector<uint8_t> b = without_gil([&] { return s.to_bytes(); });
             return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
           })
      .def(
          "save",
          [](const MultiVectorIndex& s, const std::string& path) {
            without_gil([&] { s.save(path); });
          },
          py::arg("path"));

  m.def(
      "mv_load",
      [](const std::string& path, bool verify) {
        return without_gil(
            [&] { return MvPtr(MultiVectorIndex::load(io::Blob::read_file(path), verify)); });
      },
      py::arg("path"), py::arg("verify") = true);
  m.def(
      "mv_from_bytes",
      [](const py::buffer& data, bool verify) {
        auto blob = blob_from_buffer(data);
        return without_gil([&] { return MvPtr(MultiVectorIndex::load(std::move(blob), verify)); });
      },
      py::arg("data"), py::arg("verify") = true);
}

}  // namespace annx::py_glue
