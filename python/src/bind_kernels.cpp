// Direct access to the active kernel table: used by annx.distances and by the tests
// that check every kernel on every ISA level against numpy.
#include <pybind11/stl.h>

#include <cstring>

#include "annx/common/thread_pool.h"
#include "annx/simd/kernels.h"
#include "glue.h"

namespace annx::py_glue {

namespace {

using simd::DistKind;

struct KindInfo {
  const char* name;
  DistKind kind;
  char dtype;  // 'f' float32, 'h' uint16 (f16 / bf16 bits), 'b' uint8
};

constexpr KindInfo kKinds[] = {
    {"l2_f32", DistKind::L2_F32, 'f'},   {"ip_f32", DistKind::IP_F32, 'f'},
    {"l2_f16", DistKind::L2_F16, 'h'},   {"ip_f16", DistKind::IP_F16, 'h'},
    {"l2_bf16", DistKind::L2_BF16, 'h'}, {"ip_bf16", DistKind::IP_BF16, 'h'},
    {"ip_u8", DistKind::IP_U8, 'b'},     {"wl2_u8", DistKind::WL2_U8, 'b'},
};

const KindInfo& kind_of(const std::string& name) {
  for (const auto& k : kKinds)
    if (name == k.name) return k;
  throw InvalidArgument("unknown kernel kind '" + name +
                        "': expected l2_f32, ip_f32, l2_f16, ip_f16, l2_bf16, ip_bf16, ip_u8, wl2_u8");
}

/// Checks that `x` is a C-contiguous 2-D array of the kind's storage dtype with d columns.
const void* rows_of(const py::array& x, const KindInfo& k, size_t d, size_t* n) {
  const bool ok_dtype = (k.dtype == 'f' && x.dtype().is(py::dtype::of<float>())) ||
                        (k.dtype == 'h' && x.dtype().is(py::dtype::of<uint16_t>())) ||
                        (k.dtype == 'b' && x.dtype().is(py::dtype::of<uint8_t>()));
  ANNX_CHECK(InvalidArgument, ok_dtype, "kernel ", k.name, ": stored rows have the wrong dtype");
  ANNX_CHECK(InvalidArgument, x.ndim() == 2 && static_cast<size_t>(x.shape(1)) == d,
             "kernel ", k.name, ": rows must have shape (n, ", d, ")");
  ANNX_CHECK(InvalidArgument, x.flags() & py::array::c_style, "rows must be C-contiguous");
  *n = static_cast<size_t>(x.shape(0));
  return x.data();
}

const float* aux_of(const std::optional<CArray<float>>& aux, size_t d, const KindInfo& k) {
  if (k.kind != DistKind::WL2_U8) return nullptr;
  ANNX_CHECK(InvalidArgument, aux && static_cast<size_t>(aux->size()) == d,
             "kernel wl2_u8 needs aux weights of length ", d);
  return aux->data();
}

}  // namespace

void bind_kernels(py::module_& m) {
  m.def("kernel_many", [](const std::string& kind, const CArray<float>& q, const py::array& x,
                          std::optional<CArray<float>> aux) {
    const KindInfo& k = kind_of(kind);
    const size_t d = static_cast<size_t>(q.size());
    size_t n = 0;
    const void* xp = rows_of(x, k, d, &n);
    const float* ap = aux_of(aux, d, k);
    CArray<float> out(static_cast<ssize_t>(n));
    simd::kernels().many[static_cast<int>(k.kind)](q.data(), xp, n, d, ap, out.mutable_data());
    return out;
  }, py::arg("kind"), py::arg("q"), py::arg("x"), py::arg("aux") = py::none());

  m.def("kernel_one", [](const std::string& kind, const CArray<float>& q, const py::array& x,
                         std::optional<CArray<float>> aux) {
    const KindInfo& k = kind_of(kind);
    const size_t d = static_cast<size_t>(q.size());
    size_t n = 0;
    const void* xp = rows_of(x, k, d, &n);
    ANNX_CHECK(InvalidArgument, n == 1, "kernel_one takes exactly one row");
    return simd::kernels().one[static_cast<int>(k.kind)](q.data(), xp, d, aux_of(aux, d, k));
  }, py::arg("kind"), py::arg("q"), py::arg("x"), py::arg("aux") = py::none());

  m.def("kernel_gather", [](const std::string& kind, const CArray<float>& q, const py::array& x,
                            const CArray<uint32_t>& rows, std::optional<CArray<float>> aux) {
    const KindInfo& k = kind_of(kind);
    const size_t d = static_cast<size_t>(q.size());
    size_t n = 0;
    const void* xp = rows_of(x, k, d, &n);
    const size_t m_rows = static_cast<size_t>(rows.size());
    for (size_t i = 0; i < m_rows; ++i)
      ANNX_CHECK(InvalidArgument, rows.data()[i] < n, "row ", rows.data()[i], " out of range");
    CArray<float> out(static_cast<ssize_t>(m_rows));
    simd::kernels().gather[static_cast<int>(k.kind)](
        q.data(), xp, rows.data(), m_rows, simd::code_size(k.kind, d), d, aux_of(aux, d, k),
        out.mutable_data());
    return out;
  }, py::arg("kind"), py::arg("q"), py::arg("x"), py::arg("rows"), py::arg("aux") = py::none());

  m.def("kernel_pairwise", [](const std::string& kind, const CArray<float>& q, const py::array& x,
                              std::optional<CArray<float>> aux, int threads) {
    const KindInfo& k = kind_of(kind);
    ANNX_CHECK(InvalidArgument, q.ndim() == 2, "queries must be 2-D");
    const size_t nq = static_cast<size_t>(q.shape(0)), d = static_cast<size_t>(q.shape(1));
    size_t n = 0;
    const void* xp = rows_of(x, k, d, &n);
    const float* ap = aux_of(aux, d, k);
    CArray<float> out({static_cast<ssize_t>(nq), static_cast<ssize_t>(n)});
    float* o = out.mutable_data();
    const float* qp = q.data();
    without_gil([&] {
      const auto& K = simd::kernels();
      parallel_for(nq, 1, [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) K.many[static_cast<int>(k.kind)](qp + i * d, xp, n, d, ap, o + i * n);
      }, threads);
    });
    return out;
  }, py::arg("kind"), py::arg("q"), py::arg("x"), py::arg("aux") = py::none(), py::arg("threads") = 0);

  m.def("kernel_dot_tile", [](const CArray<float>& q, const CArray<float>& x) {
    ANNX_CHECK(InvalidArgument, q.ndim() == 2 && x.ndim() == 2 && q.shape(1) == x.shape(1),
               "kernel_dot_tile: q and x must be 2-D with the same number of columns");
    const size_t nq = static_cast<size_t>(q.shape(0)), nx = static_cast<size_t>(x.shape(0)),
                 d = static_cast<size_t>(q.shape(1));
    CArray<float> out({static_cast<ssize_t>(nq), static_cast<ssize_t>(nx)});
    simd::kernels().dot_f32_tile(q.data(), nq, x.data(), nx, d, out.mutable_data(), nx);
    return out;
  }, py::arg("q"), py::arg("x"));

  m.def("kernel_select_le", [](const CArray<float>& v, float thr) {
    std::vector<uint32_t> idx(static_cast<size_t>(v.size()));
    const size_t hits = simd::kernels().select_le(v.data(), idx.size(), thr, idx.data());
    CArray<int64_t> out(static_cast<ssize_t>(hits));
    std::copy(idx.begin(), idx.begin() + static_cast<ptrdiff_t>(hits), out.mutable_data());
    return out;
  }, py::arg("v"), py::arg("thr"));

  m.def("kernel_i8", [](const std::string& op, const CArray<int8_t>& a, const CArray<int8_t>& b) {
    ANNX_CHECK(InvalidArgument, a.size() == b.size(), "kernel_i8: lengths differ");
    const auto& K = simd::kernels();
    const size_t d = static_cast<size_t>(a.size());
    if (op == "l2") return K.l2sq_i8(a.data(), b.data(), d);
    if (op == "ip") return K.dot_i8(a.data(), b.data(), d);
    throw InvalidArgument("kernel_i8: op must be 'l2' or 'ip'");
  }, py::arg("op"), py::arg("a"), py::arg("b"));

  m.def("kernel_hamming", [](const CArray<uint8_t>& a, const CArray<uint8_t>& b) {
    ANNX_CHECK(InvalidArgument, a.size() == b.size(), "kernel_hamming: lengths differ");
    return simd::kernels().hamming(a.data(), b.data(), static_cast<size_t>(a.size()));
  }, py::arg("a"), py::arg("b"));

  m.def("kernel_hamming_many", [](const CArray<uint8_t>& q, const CArray<uint8_t>& x) {
    const size_t nb = static_cast<size_t>(q.size());
    ANNX_CHECK(InvalidArgument, x.ndim() == 2 && static_cast<size_t>(x.shape(1)) == nb,
               "kernel_hamming_many: x must have shape (n, ", nb, ")");
    const size_t n = static_cast<size_t>(x.shape(0));
    CArray<uint32_t> out(static_cast<ssize_t>(n));
    simd::kernels().hamming_many(q.data(), x.data(), n, nb, out.mutable_data());
    return out;
  }, py::arg("q"), py::arg("x"));

  m.def("convert", [](const std::string& op, const py::array& in) -> py::array {
    const auto& K = simd::kernels();
    const size_t n = static_cast<size_t>(in.size());
    ANNX_CHECK(InvalidArgument, in.flags() & py::array::c_style, "convert: input must be C-contiguous");
    std::vector<ssize_t> shape(in.shape(), in.shape() + in.ndim());
    if (op == "f32_to_f16" || op == "f32_to_bf16") {
      ANNX_CHECK(InvalidArgument, in.dtype().is(py::dtype::of<float>()), "convert: ", op, " takes float32");
      CArray<uint16_t> out(shape);
      (op == "f32_to_f16" ? K.f32_to_f16 : K.f32_to_bf16)(static_cast<const float*>(in.data()),
                                                           out.mutable_data(), n);
      return out;
    }
    if (op == "f16_to_f32" || op == "bf16_to_f32") {
      ANNX_CHECK(InvalidArgument, in.dtype().is(py::dtype::of<uint16_t>()), "convert: ", op, " takes uint16 bits");
      CArray<float> out(shape);
      (op == "f16_to_f32" ? K.f16_to_f32 : K.bf16_to_f32)(static_cast<const uint16_t*>(in.data()),
                                                           out.mutable_data(), n);
      return out;
    }
    throw InvalidArgument("convert: unknown op '" + op + "'");
  }, py::arg("op"), py::arg("x"));
}

}  // namespace annx::py_glue
