// Direct access to the active kernel table: used by annx.distances and by the tests
// that check every kernel on every ISA level against numpy.
#include <pybind11/stl.h>

#include <cstring>

#include "annx/common/thread_pool.h"
#include "annx/index/vector_codec.h"
#include "annx/quant/pq4_layout.h"
#include "annx/quant/pq8_layout.h"
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
  throw InvalidArgument(
      "unknown kernel kind '" + name +
      "': expected l2_f32, ip_f32, l2_f16, ip_f16, l2_bf16, ip_bf16, ip_u8, wl2_u8");
}

/// Checks that `x` is a C-contiguous 2-D array of the kind's storage dtype with d columns.
const void* rows_of(const py::array& x, const KindInfo& k, size_t d, size_t* n) {
  const bool ok_dtype = (k.dtype == 'f' && x.dtype().is(py::dtype::of<float>())) ||
                        (k.dtype == 'h' && x.dtype().is(py::dtype::of<uint16_t>())) ||
                        (k.dtype == 'b' && x.dtype().is(py::dtype::of<uint8_t>()));
  ANNX_CHECK(InvalidArgument, ok_dtype, "kernel ", k.name, ": stored rows have the wrong dtype");
  ANNX_CHECK(InvalidArgument, x.ndim() == 2 && static_cast<size_t>(x.shape(1)) == d, "kernel ",
             k.name, ": rows must have shape (n, ", d, ")");
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

/// A C-contiguous array of exactly dtype T with `ndim` dimensions (any if ndim < 0);
/// InvalidArgument otherwise (the PQ hooks take raw arrays so that a wrong dtype is
/// reported, never silently converted, and pq4_set_code can write in place).
template <class T>
const py::array& typed(const py::array& a, const char* what, int ndim) {
  ANNX_CHECK(InvalidArgument, a.dtype().is(py::dtype::of<T>()), what, " must have dtype ",
             py::str(py::dtype::of<T>()).cast<std::string>(), ", got ",
             py::str(a.dtype()).cast<std::string>());
  ANNX_CHECK(InvalidArgument, ndim < 0 || a.ndim() == ndim, what, " must be ", ndim, "-D, got ",
             a.ndim(), "-D");
  ANNX_CHECK(InvalidArgument, a.flags() & py::array::c_style, what, " must be C-contiguous");
  return a;
}

template <class T>
const T* data_of(const py::array& a) {
  return static_cast<const T*>(a.data());
}

void check_nibbles(const uint8_t* p, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i)
    ANNX_CHECK(InvalidArgument, p[i] <= 15, what, ": 4-bit code values must be <= 15, got ",
               int{p[i]}, " at position ", i);
}

/// Checks a packed pq4 buffer for M sub-quantizers; returns how many blocks it holds.
size_t packed_blocks(const py::array& blocks, size_t M) {
  typed<uint8_t>(blocks, "blocks", 1);
  ANNX_CHECK(InvalidArgument, M >= 1, "M must be >= 1");
  const size_t bb = pq4::block_bytes(M), size = static_cast<size_t>(blocks.size());
  ANNX_CHECK(InvalidArgument, size % bb == 0, "blocks: length ", size,
             " is not a multiple of the block size ", bb, " (M = ", M, ")");
  return size / bb;
}

}  // namespace

void bind_kernels(py::module_& m) {
  m.def(
      "kernel_many",
      [](const std::string& kind, const CArray<float>& q, const py::array& x,
         std::optional<CArray<float>> aux) {
        const KindInfo& k = kind_of(kind);
        const size_t d = static_cast<size_t>(q.size());
        size_t n = 0;
        const void* xp = rows_of(x, k, d, &n);
        const float* ap = aux_of(aux, d, k);
        CArray<float> out(static_cast<ssize_t>(n));
        simd::kernels().many[static_cast<int>(k.kind)](q.data(), xp, n, d, ap, out.mutable_data());
        return out;
      },
      py::arg("kind"), py::arg("q"), py::arg("x"), py::arg("aux") = py::none());

  m.def(
      "kernel_one",
      [](const std::string& kind, const CArray<float>& q, const py::array& x,
         std::optional<CArray<float>> aux) {
        const KindInfo& k = kind_of(kind);
        const size_t d = static_cast<size_t>(q.size());
        size_t n = 0;
        const void* xp = rows_of(x, k, d, &n);
        ANNX_CHECK(InvalidArgument, n == 1, "kernel_one takes exactly one row");
        return simd::kernels().one[static_cast<int>(k.kind)](q.data(), xp, d, aux_of(aux, d, k));
      },
      py::arg("kind"), py::arg("q"), py::arg("x"), py::arg("aux") = py::none());

  m.def(
      "kernel_gather",
      [](const std::string& kind, const CArray<float>& q, const py::array& x,
         const CArray<uint32_t>& rows, std::optional<CArray<float>> aux) {
        const KindInfo& k = kind_of(kind);
        const size_t d = static_cast<size_t>(q.size());
        size_t n = 0;
        const void* xp = rows_of(x, k, d, &n);
        const size_t m_rows = static_cast<size_t>(rows.size());
        for (size_t i = 0; i < m_rows; ++i)
          ANNX_CHECK(InvalidArgument, rows.data()[i] < n, "row ", rows.data()[i], " out of range");
        CArray<float> out(static_cast<ssize_t>(m_rows));
        simd::kernels().gather[static_cast<int>(k.kind)](q.data(), xp, rows.data(), m_rows,
                                                         simd::code_size(k.kind, d), d,
                                                         aux_of(aux, d, k), out.mutable_data());
        return out;
      },
      py::arg("kind"), py::arg("q"), py::arg("x"), py::arg("rows"), py::arg("aux") = py::none());

  m.def(
      "kernel_pairwise",
      [](const std::string& kind, const CArray<float>& q, const py::array& x,
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
          parallel_for(
              nq, 1,
              [&](size_t b, size_t e) {
                for (size_t i = b; i < e; ++i)
                  K.many[static_cast<int>(k.kind)](qp + i * d, xp, n, d, ap, o + i * n);
              },
              threads);
        });
        return out;
      },
      py::arg("kind"), py::arg("q"), py::arg("x"), py::arg("aux") = py::none(),
      py::arg("threads") = 0);

  m.def(
      "kernel_dot_tile",
      [](const CArray<float>& q, const CArray<float>& x) {
        ANNX_CHECK(InvalidArgument, q.ndim() == 2 && x.ndim() == 2 && q.shape(1) == x.shape(1),
                   "kernel_dot_tile: q and x must be 2-D with the same number of columns");
        const size_t nq = static_cast<size_t>(q.shape(0)), nx = static_cast<size_t>(x.shape(0)),
                     d = static_cast<size_t>(q.shape(1));
        CArray<float> out({static_cast<ssize_t>(nq), static_cast<ssize_t>(nx)});
        simd::kernels().dot_f32_tile(q.data(), nq, x.data(), nx, d, out.mutable_data(), nx);
        return out;
      },
      py::arg("q"), py::arg("x"));

  m.def(
      "kernel_select_le",
      [](const CArray<float>& v, float thr) {
        std::vector<uint32_t> idx(static_cast<size_t>(v.size()));
        const size_t hits = simd::kernels().select_le(v.data(), idx.size(), thr, idx.data());
        CArray<int64_t> out(static_cast<ssize_t>(hits));
        std::copy(idx.begin(), idx.begin() + static_cast<ptrdiff_t>(hits), out.mutable_data());
        return out;
      },
      py::arg("v"), py::arg("thr"));

  m.def(
      "kernel_i8",
      [](const std::string& op, const CArray<int8_t>& a, const CArray<int8_t>& b) {
        ANNX_CHECK(InvalidArgument, a.size() == b.size(), "kernel_i8: lengths differ");
        const auto& K = simd::kernels();
        const size_t d = static_cast<size_t>(a.size());
        if (op == "l2") return K.l2sq_i8(a.data(), b.data(), d);
        if (op == "ip") return K.dot_i8(a.data(), b.data(), d);
        throw InvalidArgument("kernel_i8: op must be 'l2' or 'ip'");
      },
      py::arg("op"), py::arg("a"), py::arg("b"));

  m.def(
      "kernel_dot_i8_gather",
      [](const CArray<int8_t>& q, const CArray<int8_t>& x, const CArray<uint32_t>& rows) {
        ANNX_CHECK(InvalidArgument, q.ndim() == 2 && x.ndim() == 2 && q.shape(1) == x.shape(1),
                   "kernel_dot_i8_gather: q and x must be 2-D with the same number of columns");
        const size_t nq = static_cast<size_t>(q.shape(0)), n = static_cast<size_t>(rows.size()),
                     d = static_cast<size_t>(q.shape(1));
        for (ssize_t i = 0; i < rows.size(); ++i)
          ANNX_CHECK(InvalidArgument, rows.data()[i] < static_cast<uint32_t>(x.shape(0)),
                     "kernel_dot_i8_gather: row out of range");
        CArray<int32_t> out({static_cast<ssize_t>(nq), static_cast<ssize_t>(n)});
        simd::kernels().dot_i8_gather(q.data(), nq, x.data(), rows.data(), n, d, d,
                                      out.mutable_data(), n);
        return out;
      },
      py::arg("q"), py::arg("x"), py::arg("rows"));

  m.def(
      "kernel_hamming",
      [](const CArray<uint8_t>& a, const CArray<uint8_t>& b) {
        ANNX_CHECK(InvalidArgument, a.size() == b.size(), "kernel_hamming: lengths differ");
        return simd::kernels().hamming(a.data(), b.data(), static_cast<size_t>(a.size()));
      },
      py::arg("a"), py::arg("b"));

  m.def(
      "kernel_hamming_many",
      [](const CArray<uint8_t>& q, const CArray<uint8_t>& x) {
        const size_t nb = static_cast<size_t>(q.size());
        ANNX_CHECK(InvalidArgument, x.ndim() == 2 && static_cast<size_t>(x.shape(1)) == nb,
                   "kernel_hamming_many: x must have shape (n, ", nb, ")");
        const size_t n = static_cast<size_t>(x.shape(0));
        CArray<uint32_t> out(static_cast<ssize_t>(n));
        simd::kernels().hamming_many(q.data(), x.data(), n, nb, out.mutable_data());
        return out;
      },
      py::arg("q"), py::arg("x"));

  // ---- PQ kernels and the pq4 layout (test hooks) -----------------------------------
  m.def(
      "kernel_pq4_accumulate",
      [](const py::array& blocks, int64_t nblocks, int64_t npairs, const py::array& lut) {
        typed<uint8_t>(blocks, "blocks", 1);
        typed<uint8_t>(lut, "lut", 1);
        ANNX_CHECK(InvalidArgument, nblocks >= 0 && npairs >= 1,
                   "kernel_pq4_accumulate: need nblocks >= 0 and npairs >= 1");
        const size_t nb = static_cast<size_t>(nblocks), np = static_cast<size_t>(npairs);
        ANNX_CHECK(InvalidArgument, static_cast<size_t>(blocks.size()) == nb * np * 32,
                   "kernel_pq4_accumulate: blocks must hold nblocks * npairs * 32 = ", nb * np * 32,
                   " bytes, got ", blocks.size());
        ANNX_CHECK(InvalidArgument, static_cast<size_t>(lut.size()) == np * 32,
                   "kernel_pq4_accumulate: lut must hold npairs * 32 = ", np * 32, " bytes, got ",
                   lut.size());
        CArray<uint16_t> out(static_cast<ssize_t>(nb * 32));
        simd::kernels().pq4_accumulate(data_of<uint8_t>(blocks), nb, np, data_of<uint8_t>(lut),
                                       out.mutable_data());
        return out;
      },
      py::arg("blocks"), py::arg("nblocks"), py::arg("npairs"), py::arg("lut"));

  m.def(
      "kernel_pq4_accumulate_nq",
      [](const py::array& blocks, int64_t nblocks, int64_t npairs, const py::array& luts) {
        typed<uint8_t>(blocks, "blocks", 1);
        typed<uint8_t>(luts, "luts", 2);
        ANNX_CHECK(InvalidArgument, nblocks >= 0 && npairs >= 1,
                   "kernel_pq4_accumulate_nq: need nblocks >= 0 and npairs >= 1");
        const size_t nb = static_cast<size_t>(nblocks), np = static_cast<size_t>(npairs);
        const size_t nq = static_cast<size_t>(luts.shape(0));
        ANNX_CHECK(InvalidArgument, static_cast<size_t>(blocks.size()) == nb * np * 32,
                   "kernel_pq4_accumulate_nq: blocks must hold nblocks * npairs * 32 = ",
                   nb * np * 32, " bytes, got ", blocks.size());
        ANNX_CHECK(InvalidArgument, static_cast<size_t>(luts.shape(1)) == np * 32,
                   "kernel_pq4_accumulate_nq: luts must have shape (nq, npairs * 32 = ", np * 32,
                   "), got (", nq, ", ", luts.shape(1), ")");
        CArray<uint16_t> out({static_cast<ssize_t>(nq), static_cast<ssize_t>(nb * 32)});
        std::vector<const uint8_t*> lp(nq);
        std::vector<uint16_t*> op(nq);
        for (size_t q = 0; q < nq; ++q) {
          lp[q] = data_of<uint8_t>(luts) + q * np * 32;
          op[q] = out.mutable_data() + q * nb * 32;
        }
        simd::kernels().pq4_accumulate_nq(data_of<uint8_t>(blocks), nb, np, lp.data(), nq,
                                          op.data());
        return out;
      },
      py::arg("blocks"), py::arg("nblocks"), py::arg("npairs"), py::arg("luts"));

  m.def(
      "kernel_select_le_u16",
      [](const py::array& v, int64_t thr) {
        typed<uint16_t>(v, "v", 1);
        ANNX_CHECK(InvalidArgument, thr >= 0 && thr <= 65535,
                   "kernel_select_le_u16: thr must be in [0, 65535], got ", thr);
        std::vector<uint32_t> idx(static_cast<size_t>(v.size()));
        const size_t hits = simd::kernels().select_le_u16(data_of<uint16_t>(v), idx.size(),
                                                          static_cast<uint16_t>(thr), idx.data());
        CArray<uint32_t> out(static_cast<ssize_t>(hits));
        std::copy(idx.begin(), idx.begin() + static_cast<ptrdiff_t>(hits), out.mutable_data());
        return out;
      },
      py::arg("v"), py::arg("thr"));

  // codes: (n, M) uint8, lut: (M, 256) float32.
  auto pq8_args = [](const py::array& codes, const py::array& lut, size_t* n, size_t* M) {
    typed<uint8_t>(codes, "codes", 2);
    typed<float>(lut, "lut", 2);
    *n = static_cast<size_t>(codes.shape(0));
    *M = static_cast<size_t>(codes.shape(1));
    ANNX_CHECK(InvalidArgument, static_cast<size_t>(lut.shape(0)) == *M && lut.shape(1) == 256,
               "lut must have shape (", *M, ", 256), got (", lut.shape(0), ", ", lut.shape(1), ")");
  };
  // Takes row-major codes (n x M) and lays them out in pq8 blocks itself.
  m.def(
      "kernel_pq8_adc_blocks",
      [pq8_args](const py::array& codes, const py::array& lut) {
        size_t n = 0, M = 0;
        pq8_args(codes, lut, &n, &M);
        std::vector<uint8_t> blocks(pq8::nblocks(n) * pq8::block_bytes(M), 0);
        for (size_t i = 0; i < n; ++i)
          pq8::set_code(blocks.data(), M, i, data_of<uint8_t>(codes) + i * M);
        CArray<float> out(static_cast<ssize_t>(pq8::nblocks(n) * pq8::kBlock));
        simd::kernels().pq8_adc_blocks(blocks.data(), pq8::nblocks(n), M, data_of<float>(lut),
                                       out.mutable_data());
        return out;
      },
      py::arg("codes"), py::arg("lut"));

  m.def(
      "pq4_pack",
      [](const py::array& codes) {
        typed<uint8_t>(codes, "codes", 2);
        const size_t n = static_cast<size_t>(codes.shape(0)),
                     M = static_cast<size_t>(codes.shape(1));
        ANNX_CHECK(InvalidArgument, M >= 1, "pq4_pack: codes need at least one column");
        check_nibbles(data_of<uint8_t>(codes), n * M, "pq4_pack");
        CArray<uint8_t> out(static_cast<ssize_t>(pq4::nblocks(n) * pq4::block_bytes(M)));
        pq4::pack(data_of<uint8_t>(codes), n, M, out.mutable_data());
        return out;
      },
      py::arg("codes"));

  m.def(
      "pq4_unpack",
      [](const py::array& blocks, int64_t n, int64_t M) {
        ANNX_CHECK(InvalidArgument, n >= 0 && M >= 1, "pq4_unpack: need n >= 0 and M >= 1");
        const size_t nb = packed_blocks(blocks, static_cast<size_t>(M));
        ANNX_CHECK(InvalidArgument, static_cast<size_t>(n) <= nb * pq4::kBlock, "pq4_unpack: ", nb,
                   " blocks hold at most ", nb * pq4::kBlock, " vectors, asked for ", n);
        CArray<uint8_t> out({static_cast<ssize_t>(n), static_cast<ssize_t>(M)});
        pq4::unpack(data_of<uint8_t>(blocks), static_cast<size_t>(n), static_cast<size_t>(M),
                    out.mutable_data());
        return out;
      },
      py::arg("blocks"), py::arg("n"), py::arg("M"));

  m.def(
      "pq4_get_code",
      [](const py::array& blocks, int64_t M, int64_t i) {
        ANNX_CHECK(InvalidArgument, M >= 1, "pq4_get_code: M must be >= 1");
        const size_t nb = packed_blocks(blocks, static_cast<size_t>(M));
        ANNX_CHECK(InvalidArgument, i >= 0 && static_cast<size_t>(i) < nb * pq4::kBlock,
                   "pq4_get_code: vector ", i, " out of range (", nb * pq4::kBlock, " slots)");
        CArray<uint8_t> out(static_cast<ssize_t>(M));
        pq4::get_code(data_of<uint8_t>(blocks), static_cast<size_t>(M), static_cast<size_t>(i),
                      out.mutable_data());
        return out;
      },
      py::arg("blocks"), py::arg("M"), py::arg("i"));

  m.def(
      "pq4_set_code",
      [](py::array& blocks, int64_t M, int64_t i, const py::array& code) {
        ANNX_CHECK(InvalidArgument, M >= 1, "pq4_set_code: M must be >= 1");
        const size_t nb = packed_blocks(blocks, static_cast<size_t>(M));
        ANNX_CHECK(InvalidArgument, blocks.writeable(), "pq4_set_code: blocks must be writable");
        ANNX_CHECK(InvalidArgument, i >= 0 && static_cast<size_t>(i) < nb * pq4::kBlock,
                   "pq4_set_code: vector ", i, " out of range (", nb * pq4::kBlock, " slots)");
        typed<uint8_t>(code, "code", 1);
        ANNX_CHECK(InvalidArgument, code.size() == M, "pq4_set_code: code must have ", M,
                   " values, got ", code.size());
        check_nibbles(data_of<uint8_t>(code), static_cast<size_t>(M), "pq4_set_code");
        pq4::set_code(static_cast<uint8_t*>(blocks.mutable_data()), static_cast<size_t>(M),
                      static_cast<size_t>(i), data_of<uint8_t>(code));
      },
      py::arg("blocks"), py::arg("M"), py::arg("i"), py::arg("code"));

  m.def(
      "pq4_quantize_lut",
      [](const py::array& lut) {
        typed<float>(lut, "lut", 2);
        ANNX_CHECK(InvalidArgument, lut.shape(1) == 16 && lut.shape(0) >= 1,
                   "pq4_quantize_lut: lut must have shape (M, 16) with M >= 1");
        pq4::QuantizedLut q;
        pq4::quantize_lut(data_of<float>(lut), static_cast<size_t>(lut.shape(0)), q);
        CArray<uint8_t> packed(static_cast<ssize_t>(q.packed.size()));
        std::copy(q.packed.begin(), q.packed.end(), packed.mutable_data());
        return py::make_tuple(packed, q.scale, q.bias);
      },
      py::arg("lut"));

  m.def(
      "convert",
      [](const std::string& op, const py::array& in) -> py::array {
        const auto& K = simd::kernels();
        const size_t n = static_cast<size_t>(in.size());
        ANNX_CHECK(InvalidArgument, in.flags() & py::array::c_style,
                   "convert: input must be C-contiguous");
        std::vector<ssize_t> shape(in.shape(), in.shape() + in.ndim());
        if (op == "f32_to_f16" || op == "f32_to_bf16") {
          ANNX_CHECK(InvalidArgument, in.dtype().is(py::dtype::of<float>()), "convert: ", op,
                     " takes float32");
          CArray<uint16_t> out(shape);
          (op == "f32_to_f16" ? K.f32_to_f16 : K.f32_to_bf16)(static_cast<const float*>(in.data()),
                                                              out.mutable_data(), n);
          return out;
        }
        if (op == "f16_to_f32" || op == "bf16_to_f32") {
          ANNX_CHECK(InvalidArgument, in.dtype().is(py::dtype::of<uint16_t>()), "convert: ", op,
                     " takes uint16 bits");
          CArray<float> out(shape);
          (op == "f16_to_f32" ? K.f16_to_f32 : K.bf16_to_f32)(
              static_cast<const uint16_t*>(in.data()), out.mutable_data(), n);
          return out;
        }
        throw InvalidArgument("convert: unknown op '" + op + "'");
      },
      py::arg("op"), py::arg("x"));

  // Binary codecs' scores (symmetric, or asymmetric for the *_adc codecs) through the
  // batched tile kernel or the one-query kernel (tests compare both with each other and
  // with a float64 reference).
  m.def(
      "kernel_bebr_sdc",
      [](const std::string& codec, const std::string& metric, const CArray<float>& q,
         const CArray<float>& x, bool tiled, size_t tile, size_t repeat, bool negate) {
        CodecKind kind = CodecKind::F32;
        for (CodecKind c : all_codec_kinds())
          if (codec == codec_name(c)) kind = c;
        ANNX_CHECK(InvalidArgument, binary_levels(kind) > 0, "kernel_bebr_sdc: '", codec,
                   "' is not a binary codec");
        ANNX_CHECK(InvalidArgument, q.ndim() == 2 && x.ndim() == 2 && q.shape(1) == x.shape(1),
                   "kernel_bebr_sdc: q and x must be 2-D with the same number of columns");
        const size_t nq = static_cast<size_t>(q.shape(0)), n = static_cast<size_t>(x.shape(0));
        const int d = static_cast<int>(q.shape(1));
        const VectorCodec vc(kind, d);
        const size_t cs = vc.code_size();
        std::vector<uint8_t> codes(n * cs);
        vc.encode(x.data(), n, codes.data());
        std::vector<PreparedQuery> pq;
        std::vector<const float*> qp;
        pq.reserve(nq);
        for (size_t i = 0; i < nq; ++i) {
          pq.push_back(vc.prepare(q.data() + i * static_cast<size_t>(d), parse_metric(metric)));
          qp.push_back(pq.back().q.data());
        }
        CArray<float> out(std::vector<ssize_t>{static_cast<ssize_t>(nq), static_cast<ssize_t>(n)});
        float* o = out.mutable_data();
        const auto& K = simd::kernels();
        const size_t D = static_cast<size_t>(d);
        tile = std::max<size_t>(1, tile);
        // repeat > 1: timing loops (bench/micro) scan the same codes again.
        for (size_t r = 0; r < std::max<size_t>(1, repeat); ++r) {
          if (tiled) {
            for (size_t a = 0; a < nq; a += tile)
              K.bebr_sdc_tile(qp.data() + a, std::min(tile, nq - a), codes.data(), n, cs, D,
                              o + a * n, n, negate);
          } else {
            for (size_t i = 0; i < nq; ++i)
              K.many[static_cast<int>(pq[i].kind)](qp[i], codes.data(), n, D, nullptr, o + i * n);
          }
        }
        return out;
      },
      py::arg("codec"), py::arg("metric"), py::arg("q"), py::arg("x"), py::arg("tiled"),
      py::arg("tile") = 32, py::arg("repeat") = 1, py::arg("negate") = false);
}

}  // namespace annx::py_glue
