// Every kernel-table entry of every ISA level this build contains and this CPU runs,
// against the scalar reference level: d from 1 to 1,000, rows that start off any vector
// alignment, few rows (the test also runs under qemu). Tolerances are those of the Python
// kernel tests (|got - ref| <= 1e-5 * sum|terms| + 1e-6); integer, selection, conversion,
// PQ and nearest-centroid kernels must agree exactly. Prints the ISA levels it ran.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "annx/simd/half.h"
#include "annx/simd/isa.h"
#include "annx/simd/kernels.h"

namespace {

using annx::simd::DistKind;
using annx::simd::Isa;
using annx::simd::KernelTable;

int g_failures = 0;
int g_checks = 0;
std::string g_ctx;

void check(bool ok, const char* what, int line) {
  ++g_checks;
  if (ok) return;
  if (++g_failures <= 40) std::printf("  FAIL line %d: %s [%s]\n", line, what, g_ctx.c_str());
}
#define CHECK(c) check((c), #c, __LINE__)

std::mt19937_64 g_rng(20);

float normal() {
  static std::normal_distribution<float> n(0.f, 1.f);
  return n(g_rng);
}
uint32_t urand(uint32_t n) { return static_cast<uint32_t>(g_rng() % n); }

/// A buffer whose data start `off` bytes past a 64-byte boundary (rows then start at
/// every other alignment too, as their size is rarely a multiple of 64).
struct Buf {
  std::vector<uint8_t> mem;
  uint8_t* p;
  Buf(size_t bytes, size_t off) : mem(bytes + 128) {
    const auto a = reinterpret_cast<uintptr_t>(mem.data());
    p = mem.data() + ((64 - a % 64) % 64) + off;
  }
  template <class T>
  T* as() {
    return reinterpret_cast<T*>(p);
  }
};

bool close(float got, float ref, double scale) {
  return std::fabs(double{got} - double{ref}) <= 1e-5 * scale + 1e-6;
}

const DistKind kFloatKinds[] = {DistKind::L2_F32, DistKind::IP_F32,  DistKind::L2_F16,
                                DistKind::IP_F16, DistKind::L2_BF16, DistKind::IP_BF16,
                                DistKind::IP_U8,  DistKind::WL2_U8};
const char* kind_name(DistKind k) {
  static const char* names[] = {"l2_f32",  "ip_f32", "l2_f16", "ip_f16",   "l2_bf16",
                                "ip_bf16", "ip_u8",  "wl2_u8", "bebr_sdc", "bebr_adc"};
  return names[static_cast<int>(k)];
}

const size_t kDims[] = {1,   2,   3,   4,   5,   7,   8,   9,   12,  15,  16,  17,  23,
                        24,  31,  32,  33,  47,  48,  63,  64,  65,  96,  100, 127, 128,
                        129, 191, 255, 256, 257, 384, 511, 512, 513, 767, 768, 769, 1000};

/// Element i of a stored row as float (the reference decoding).
float elem(DistKind k, const uint8_t* row, size_t i) {
  switch (k) {
    case DistKind::L2_F32:
    case DistKind::IP_F32: {
      float f;
      std::memcpy(&f, row + 4 * i, 4);
      return f;
    }
    case DistKind::L2_F16:
    case DistKind::IP_F16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * i, 2);
      return annx::simd::f16_to_f32_scalar(h);
    }
    case DistKind::L2_BF16:
    case DistKind::IP_BF16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * i, 2);
      return annx::simd::bf16_to_f32_scalar(h);
    }
    default: return static_cast<float>(row[i]);
  }
}

/// sum |term| of one row, in double: the scale of the rounding error allowed.
double term_scale(DistKind k, const float* q, const uint8_t* row, size_t d, const float* aux) {
  double s = 0;
  for (size_t i = 0; i < d; ++i) {
    const double x = elem(k, row, i), qi = q[i];
    if (k == DistKind::L2_F32 || k == DistKind::L2_F16 || k == DistKind::L2_BF16)
      s += (qi - x) * (qi - x);
    else if (k == DistKind::WL2_U8)
      s += aux[i] * (qi - x) * (qi - x);
    else
      s += std::fabs(qi * x);
  }
  return s;
}

void test_float_kinds(const KernelTable& ref, const KernelTable& t) {
  constexpr size_t n = 9;
  for (DistKind k : kFloatKinds) {
    const int ki = static_cast<int>(k);
    const bool u8 = k == DistKind::IP_U8 || k == DistKind::WL2_U8;
    for (size_t d : kDims) {
      g_ctx =
          std::string(annx::simd::isa_name(t.isa)) + " " + kind_name(k) + " d=" + std::to_string(d);
      const size_t cs = annx::simd::code_size(k, d);
      const size_t esize = cs / d;
      Buf qb(4 * d, 4), xb(cs * n, esize), wb(4 * d, 4);
      float* q = qb.as<float>();
      float* w = wb.as<float>();
      for (size_t i = 0; i < d; ++i) {
        q[i] = u8 ? 128.f + 60.f * normal() : normal() + 0.5f;
        w[i] = 0.1f + static_cast<float>(urand(1000)) / 1000.f;
      }
      uint8_t* x = xb.p;
      for (size_t r = 0; r < n; ++r)
        for (size_t i = 0; i < d; ++i) {
          uint8_t* e = x + r * cs + i * esize;
          const float v = normal() * 2.f + 0.25f;
          if (u8) {
            *e = static_cast<uint8_t>(urand(256));
          } else if (esize == 4) {
            std::memcpy(e, &v, 4);
          } else {
            const uint16_t h = (k == DistKind::L2_F16 || k == DistKind::IP_F16)
                                   ? annx::simd::f32_to_f16_scalar(v)
                                   : annx::simd::f32_to_bf16_scalar(v);
            std::memcpy(e, &h, 2);
          }
        }
      const float* aux = k == DistKind::WL2_U8 ? w : nullptr;
      float want[n], got[n];
      ref.many[ki](q, x, n, d, aux, want);
      t.many[ki](q, x, n, d, aux, got);
      bool ok = true;
      double scale[n];
      for (size_t r = 0; r < n; ++r) {
        scale[r] = term_scale(k, q, x + r * cs, d, aux);
        ok = ok && close(got[r], want[r], scale[r]);
      }
      CHECK(ok);  // many
      for (size_t r = 0; r < n; ++r)
        CHECK(close(t.one[ki](q, x + r * cs, d, aux), want[r], scale[r]));
      // Gather with repeats, out of order, over a stride larger than a row.
      const size_t stride = cs + esize * 3;
      Buf gb(stride * n, esize);
      for (size_t r = 0; r < n; ++r) std::memcpy(gb.p + r * stride, x + r * cs, cs);
      const uint32_t rows[] = {8, 0, 3, 3, 7, 1, 2, 5, 6, 4, 8};
      constexpr size_t nr = sizeof(rows) / sizeof(rows[0]);
      float g[nr];
      t.gather[ki](q, gb.p, rows, nr, stride, d, aux, g);
      ok = true;
      for (size_t i = 0; i < nr; ++i) ok = ok && close(g[i], want[rows[i]], scale[rows[i]]);
      CHECK(ok);  // gather
    }
  }
}

/// BIN / BEBR<L> codes (layout in bebr_body-inl.h): random scales, norms and bits; the
/// symmetric query is a code of L levels, the asymmetric one a code of
/// kBebrAdcQueryBits + 1 levels (signed scales, as VectorCodec::prepare writes them).
void test_bebr(const KernelTable& ref, const KernelTable& t) {
  const size_t dims[] = {1, 7, 63, 64, 65, 128, 200, 256, 384, 511, 512, 513, 1000};
  const size_t LQa = static_cast<size_t>(annx::simd::kBebrAdcQueryBits) + 1;
  for (size_t L : {size_t{1}, size_t{2}, size_t{3}, size_t{4}})
    for (size_t d : dims)
      for (int metric = 0; metric < 3; ++metric) {
        g_ctx = std::string(annx::simd::isa_name(t.isa)) + " bebr L=" + std::to_string(L) +
                " d=" + std::to_string(d) + " metric=" + std::to_string(metric);
        const size_t W = (d + 63) / 64;
        auto header = [](size_t levels) { return ((levels + 1) * 4 + 7) / 8 * 8; };
        auto bytes = [&](size_t levels) { return header(levels) + 8 * levels * W; };
        const size_t cs = bytes(L);
        constexpr size_t n = 7;
        auto fill_code = [&](uint8_t* c, size_t levels, bool signed_scales) {
          std::memset(c, 0, bytes(levels));
          float a[8];
          for (size_t l = 0; l < levels; ++l) {
            a[l] = 0.1f + static_cast<float>(urand(100)) / 100.f;
            if (signed_scales && (g_rng() & 1)) a[l] = -a[l];
          }
          const float n2 = 1.f + static_cast<float>(urand(1000));
          std::memcpy(c, a, 4 * levels);
          std::memcpy(c + 4 * levels, &n2, 4);
          for (size_t l = 0; l < levels; ++l)
            for (size_t i = 0; i < d; ++i)
              if (g_rng() & 1)
                c[header(levels) + 8 * l * W + i / 8] |= static_cast<uint8_t>(1u << (i % 8));
        };
        std::vector<uint8_t> codes(cs * n);
        for (size_t r = 0; r < n; ++r) fill_code(codes.data() + r * cs, L, false);
        // Header (levels, metric, squared norm, query levels), then the query's code.
        std::vector<float> qs(4 + (bytes(L) + 3) / 4), qa(4 + (bytes(LQa) + 3) / 4);
        qs[0] = qa[0] = static_cast<float>(L);
        qs[1] = qa[1] = static_cast<float>(metric);
        qs[2] = qa[2] = 2.f + static_cast<float>(urand(100));
        qs[3] = static_cast<float>(L);
        qa[3] = static_cast<float>(LQa);
        fill_code(reinterpret_cast<uint8_t*>(qs.data() + 4), L, false);
        fill_code(reinterpret_cast<uint8_t*>(qa.data() + 4), LQa, true);
        // ADC level 0 is the constant: no bits set; level 1 + b has scale half 2^b.
        {
          auto* c = reinterpret_cast<uint8_t*>(qa.data() + 4);
          std::memset(c + header(LQa), 0, 8 * W);
          float half;
          std::memcpy(&half, c + 4, 4);
          for (size_t b = 1; b < LQa; ++b) {
            const float sc = half * static_cast<float>(1u << (b - 1));
            std::memcpy(c + 4 * b, &sc, 4);
          }
        }
        for (const auto* q : {&qs, &qa}) {
          const int ki = static_cast<int>(q == &qs ? DistKind::BEBR_SDC : DistKind::BEBR_ADC);
          float want[n], got[n];
          ref.many[ki](q->data(), codes.data(), n, d, nullptr, want);
          t.many[ki](q->data(), codes.data(), n, d, nullptr, got);
          bool ok = true;
          for (size_t r = 0; r < n; ++r)
            ok = ok && close(got[r], want[r], std::fabs(double{want[r]}) + 1.0);
          CHECK(ok);
          const uint32_t rows[] = {6, 0, 2, 2, 5};
          float g[5];
          t.gather[ki](q->data(), codes.data(), rows, 5, cs, d, nullptr, g);
          ok = true;
          for (size_t i = 0; i < 5; ++i)
            ok = ok && close(g[i], want[rows[i]], std::fabs(double{want[rows[i]]}) + 1.0);
          CHECK(ok);
          const float w1 = ref.one[ki](q->data(), codes.data() + cs, d, nullptr);
          CHECK(close(t.one[ki](q->data(), codes.data() + cs, d, nullptr), w1,
                      std::fabs(double{w1}) + 1.0));
          // The tile kernel: the same bits as the one-query kernel of the same level.
          const float* qp[2] = {q->data(), q->data()};
          float tiled[2 * n];
          t.bebr_sdc_tile(qp, 2, codes.data(), n, cs, d, tiled, n, false);
          ok = true;
          for (size_t r = 0; r < n; ++r) ok = ok && tiled[r] == got[r] && tiled[n + r] == got[r];
          CHECK(ok);
          t.bebr_sdc_tile(qp, 2, codes.data(), n, cs, d, tiled, n, true);  // negated
          ok = true;
          for (size_t r = 0; r < n; ++r) ok = ok && tiled[r] == -got[r] && tiled[n + r] == -got[r];
          CHECK(ok);
        }
      }
}

void test_gemm(const KernelTable& t) {
  const size_t dims[] = {1, 3, 4, 5, 16, 17, 33, 100, 129, 300, 1000};
  for (size_t d : dims)
    for (size_t nq : {size_t{1}, size_t{5}, size_t{13}}) {
      g_ctx = std::string(annx::simd::isa_name(t.isa)) + " gemm d=" + std::to_string(d) +
              " nq=" + std::to_string(nq);
      const size_t nx = 2 * t.panel_rows + 3, P = t.panel_rows;
      Buf qb(4 * d * nq, 4), xb(4 * d * nx, 4);
      float* q = qb.as<float>();
      float* x = xb.as<float>();
      for (size_t i = 0; i < d * nq; ++i) q[i] = normal();
      for (size_t i = 0; i < d * nx; ++i) x[i] = normal();
      auto ref = [&](size_t a, size_t r, double& scale) {
        double s = 0;
        scale = 0;
        for (size_t k = 0; k < d; ++k) {
          s += double{q[a * d + k]} * x[r * d + k];
          scale += std::fabs(double{q[a * d + k]} * x[r * d + k]);
        }
        return s;
      };
      std::vector<float> out(nq * nx, -1.f);
      t.dot_f32_tile(q, nq, x, nx, d, out.data(), nx);
      bool ok = true;
      for (size_t a = 0; a < nq; ++a)
        for (size_t r = 0; r < nx; ++r) {
          double sc;
          const double want = ref(a, r, sc);
          ok = ok && std::fabs(out[a * nx + r] - want) <= 1e-5 * sc + 1e-6;
        }
      CHECK(ok);  // dot_f32_tile
      // Panels: full ones and a partial last one (zero-padded rows must give 0).
      std::vector<float> panel(P * d), pout(nq * P);
      ok = true;
      for (size_t r0 = 0; r0 < nx; r0 += P) {
        const size_t nr = std::min(P, nx - r0);
        t.pack_f32_panel(x + r0 * d, nr, d, panel.data());
        t.dot_f32_panel(q, nq, d, panel.data(), pout.data(), P);
        for (size_t a = 0; a < nq; ++a)
          for (size_t r = 0; r < P; ++r) {
            if (r >= nr) {
              ok = ok && pout[a * P + r] == 0.f;
              continue;
            }
            double sc;
            const double want = ref(a, r0 + r, sc);
            ok = ok && std::fabs(pout[a * P + r] - want) <= 1e-5 * sc + 1e-6;
          }
      }
      CHECK(ok);  // panels
    }
}

void test_multivector(const KernelTable& ref, const KernelTable& t) {
  for (size_t d : {size_t{1}, size_t{8}, size_t{33}, size_t{128}})
    for (size_t nx : {size_t{1}, size_t{3}, size_t{13}, size_t{40}}) {
      g_ctx = std::string(annx::simd::isa_name(t.isa)) + " maxsim d=" + std::to_string(d) +
              " nx=" + std::to_string(nx);
      const size_t qw = 32;
      std::vector<float> qt(d * qw), x(nx * d), b0(qw), b1(qw);
      for (auto& v : qt) v = normal();
      for (auto& v : x) v = normal();
      for (size_t a = 0; a < qw; ++a) b0[a] = b1[a] = (a % 3 == 0) ? 1e30f : -1e30f;
      ref.maxsim_f32(qt.data(), qw, x.data(), nx, d, b0.data());
      t.maxsim_f32(qt.data(), qw, x.data(), nx, d, b1.data());
      bool ok = true;
      for (size_t a = 0; a < qw; ++a) ok = ok && close(b1[a], b0[a], 1e-1 * d);
      CHECK(ok);
    }
  // signed_segment_sum: len a multiple of panel_rows; segments of 0..9 source rows.
  g_ctx = std::string(annx::simd::isa_name(t.isa)) + " signed_segment_sum";
  const size_t P = t.panel_rows, ld = 5 * P, len = 4 * P, nsrc = 20, nseg = 6;
  std::vector<float> src(nsrc * ld), signs(60), d0(nseg * ld, 7.f), d1(nseg * ld, 7.f);
  for (auto& v : src) v = normal();
  std::vector<uint32_t> idx(60), seg_end(nseg);
  uint32_t e = 0;
  for (size_t j = 0; j < nseg; ++j) {
    e += static_cast<uint32_t>(j == 2 ? 0 : urand(10));
    seg_end[j] = e;
  }
  for (size_t i = 0; i < e; ++i) {
    idx[i] = urand(static_cast<uint32_t>(nsrc));
    signs[i] = (g_rng() & 1) ? 1.f : -1.f;
  }
  ref.signed_segment_sum(src.data(), ld, len, idx.data(), signs.data(), seg_end.data(), nseg,
                         d0.data());
  t.signed_segment_sum(src.data(), ld, len, idx.data(), signs.data(), seg_end.data(), nseg,
                       d1.data());
  bool ok = true;
  for (size_t i = 0; i < d0.size(); ++i) ok = ok && close(d1[i], d0[i], 20.0);
  CHECK(ok);
}

void test_select(const KernelTable& ref, const KernelTable& t) {
  g_ctx = std::string(annx::simd::isa_name(t.isa)) + " select";
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{33},
                   size_t{100}, size_t{1000}}) {
    Buf vb(4 * n, 4), ub(2 * n, 2);
    float* v = vb.as<float>();
    uint16_t* u = ub.as<uint16_t>();
    for (size_t i = 0; i < n; ++i) {
      v[i] = normal();
      if (i % 13 == 5) v[i] = NAN;
      if (i % 17 == 3) v[i] = 0.25f;  // equal to the threshold
      u[i] = static_cast<uint16_t>(urand(65536));
      if (i % 11 == 2) u[i] = 30000;
    }
    for (float thr : {-10.f, -0.5f, 0.25f, 1.f, 10.f}) {
      std::vector<uint32_t> a(n + 1), b(n + 1);
      const size_t ma = ref.select_le(v, n, thr, a.data());
      const size_t mb = t.select_le(v, n, thr, b.data());
      CHECK(ma == mb && std::equal(a.begin(), a.begin() + static_cast<long>(ma), b.begin()));
    }
    for (uint16_t thr : {uint16_t{0}, uint16_t{100}, uint16_t{30000}, uint16_t{65535}}) {
      std::vector<uint32_t> a(n + 1), b(n + 1);
      const size_t ma = ref.select_le_u16(u, n, thr, a.data());
      const size_t mb = t.select_le_u16(u, n, thr, b.data());
      CHECK(ma == mb && std::equal(a.begin(), a.begin() + static_cast<long>(ma), b.begin()));
    }
  }
}

void test_int_and_bits(const KernelTable& ref, const KernelTable& t) {
  for (size_t d = 0; d <= 1000; d += (d < 70 ? 1 : 37)) {
    g_ctx = std::string(annx::simd::isa_name(t.isa)) + " int8/hamming d=" + std::to_string(d);
    Buf ab(d, 1), bb(d, 3);
    for (size_t i = 0; i < d; ++i) {
      ab.p[i] = static_cast<uint8_t>(urand(256));
      bb.p[i] = static_cast<uint8_t>(urand(256));
    }
    if (d > 2) ab.p[0] = 0x80, bb.p[0] = 0x7f, ab.p[1] = 0x80, bb.p[1] = 0x80;  // extremes
    const auto* a = ab.as<int8_t>();
    const auto* b = bb.as<int8_t>();
    CHECK(t.l2sq_i8(a, b, d) == ref.l2sq_i8(a, b, d));
    CHECK(t.dot_i8(a, b, d) == ref.dot_i8(a, b, d));
    CHECK(t.hamming(ab.p, bb.p, d) == ref.hamming(ab.p, bb.p, d));
  }
  // Long bit strings (past the NEON kernel's u16 chunking) and hamming_many.
  for (size_t nbytes : {size_t{32} * 1024 + 48, size_t{70000}}) {
    g_ctx = std::string(annx::simd::isa_name(t.isa)) + " hamming nbytes=" + std::to_string(nbytes);
    std::vector<uint8_t> a(nbytes, 0xFF), b(nbytes, 0x00);
    CHECK(t.hamming(a.data(), b.data(), nbytes) == 8 * nbytes);
    for (auto& v : a) v = static_cast<uint8_t>(urand(256));
    CHECK(t.hamming(a.data(), b.data(), nbytes) == ref.hamming(a.data(), b.data(), nbytes));
  }
  for (size_t nbytes : {size_t{1}, size_t{8}, size_t{13}, size_t{32}, size_t{48}, size_t{100}}) {
    g_ctx =
        std::string(annx::simd::isa_name(t.isa)) + " hamming_many nbytes=" + std::to_string(nbytes);
    const size_t n = 11;
    Buf qb(nbytes, 1), xb(nbytes * n, 5);
    for (size_t i = 0; i < nbytes; ++i) qb.p[i] = static_cast<uint8_t>(urand(256));
    for (size_t i = 0; i < nbytes * n; ++i) xb.p[i] = static_cast<uint8_t>(urand(256));
    uint32_t w[n], g[n];
    ref.hamming_many(qb.p, xb.p, n, nbytes, w);
    t.hamming_many(qb.p, xb.p, n, nbytes, g);
    CHECK(std::equal(w, w + n, g));
  }
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

void test_conversions(const KernelTable& ref, const KernelTable& t) {
  g_ctx = std::string(annx::simd::isa_name(t.isa)) + " conversions";
  // Every half / bfloat16 bit pattern, decoded; NaNs need only stay NaN (hardware quiets
  // signalling NaNs).
  std::vector<uint16_t> all(65536 + 3);
  for (size_t i = 0; i < 65536; ++i) all[i + 1] = static_cast<uint16_t>(i);
  std::vector<float> f0(65536), f1(65536);
  for (int bf = 0; bf < 2; ++bf) {
    (bf ? ref.bf16_to_f32 : ref.f16_to_f32)(all.data() + 1, f0.data(), 65536);
    (bf ? t.bf16_to_f32 : t.f16_to_f32)(all.data() + 1, f1.data(), 65536);
    bool ok = true;
    for (size_t i = 0; i < 65536; ++i)
      ok = ok && (std::isnan(f0[i]) ? std::isnan(f1[i]) : bits_of(f0[i]) == bits_of(f1[i]));
    CHECK(ok);
  }
  // f32 -> f16 / bf16: specials, rounding ties, subnormals, overflow, random; odd lengths.
  std::vector<float> in = {0.f,       -0.f,    1.f,    -1.f,           65504.f,
                           65519.f,   65520.f, 1e9f,   -1e9f,          INFINITY,
                           -INFINITY, NAN,     -NAN,   5.96e-8f,       2.98e-8f,
                           2.99e-8f,  6.1e-5f, 1e-45f, 1.00048828125f, 1.00146484375f,
                           3.4e38f};
  for (int i = 0; i < 3000; ++i) {
    const uint32_t u = static_cast<uint32_t>(g_rng());
    float f;
    std::memcpy(&f, &u, 4);
    in.push_back(i % 2 ? f : normal() * std::ldexp(1.f, static_cast<int>(urand(60)) - 30));
  }
  for (size_t n : {in.size(), size_t{1}, size_t{3}, size_t{5}, size_t{7}, size_t{9}}) {
    std::vector<uint16_t> h0(n + 1, 0xABCD), h1(n + 1, 0xABCD);
    for (int bf = 0; bf < 2; ++bf) {
      (bf ? ref.f32_to_bf16 : ref.f32_to_f16)(in.data(), h0.data(), n);
      (bf ? t.f32_to_bf16 : t.f32_to_f16)(in.data(), h1.data(), n);
      CHECK(h0 == h1);  // includes the untouched sentinel past n
    }
  }
}

void test_pq(const KernelTable& ref, const KernelTable& t) {
  for (size_t npairs : {size_t{1}, size_t{2}, size_t{3}, size_t{8}, size_t{9}, size_t{48}})
    for (size_t nblocks : {size_t{1}, size_t{3}}) {
      g_ctx = std::string(annx::simd::isa_name(t.isa)) + " pq4 npairs=" + std::to_string(npairs) +
              " nblocks=" + std::to_string(nblocks);
      Buf cb(nblocks * npairs * 32, 3);
      for (size_t i = 0; i < nblocks * npairs * 32; ++i) cb.p[i] = static_cast<uint8_t>(urand(256));
      constexpr size_t kq = 6;
      std::vector<std::vector<uint8_t>> luts(kq, std::vector<uint8_t>(npairs * 32));
      for (auto& l : luts)
        for (auto& v : l) v = static_cast<uint8_t>(npairs >= 48 ? 255 - urand(4) : urand(256));
      std::vector<std::vector<uint16_t>> o0(kq, std::vector<uint16_t>(32 * nblocks)),
          o1(kq, std::vector<uint16_t>(32 * nblocks));
      for (size_t q = 0; q < kq; ++q) {
        ref.pq4_accumulate(cb.p, nblocks, npairs, luts[q].data(), o0[q].data());
        t.pq4_accumulate(cb.p, nblocks, npairs, luts[q].data(), o1[q].data());
        CHECK(o0[q] == o1[q]);
      }
      for (size_t nq = 0; nq <= kq; ++nq) {
        const uint8_t* lp[kq];
        uint16_t* op[kq];
        std::vector<std::vector<uint16_t>> o2(kq, std::vector<uint16_t>(32 * nblocks, 7));
        for (size_t q = 0; q < kq; ++q) {
          lp[q] = luts[q].data();
          op[q] = o2[q].data();
        }
        t.pq4_accumulate_nq(cb.p, nblocks, npairs, lp, nq, op);
        bool ok = true;
        for (size_t q = 0; q < kq; ++q)
          ok = ok && (q < nq ? o2[q] == o0[q] : o2[q] == std::vector<uint16_t>(32 * nblocks, 7));
        CHECK(ok);
      }
    }
  for (size_t M : {size_t{1}, size_t{2}, size_t{7}, size_t{16}, size_t{64}}) {
    g_ctx = std::string(annx::simd::isa_name(t.isa)) + " pq8 M=" + std::to_string(M);
    const size_t nblocks = 3;
    Buf cb(nblocks * 32 * M, 1);
    for (size_t i = 0; i < nblocks * 32 * M; ++i) cb.p[i] = static_cast<uint8_t>(urand(256));
    std::vector<float> lut(256 * M);
    for (auto& v : lut) v = normal();
    std::vector<float> o0(32 * nblocks), o1(32 * nblocks);
    ref.pq8_adc_blocks(cb.p, nblocks, M, lut.data(), o0.data());
    t.pq8_adc_blocks(cb.p, nblocks, M, lut.data(), o1.data());
    bool ok = true;
    for (size_t i = 0; i < o0.size(); ++i) ok = ok && bits_of(o0[i]) == bits_of(o1[i]);
    CHECK(ok);  // bit-identical by contract
  }
  for (size_t ksub : {size_t{16}, size_t{256}, size_t{4}, size_t{40}})
    for (size_t dsub : {size_t{1}, size_t{2}, size_t{5}, size_t{8}})
      for (bool ip : {false, true}) {
        g_ctx = std::string(annx::simd::isa_name(t.isa)) + " pq_lut ksub=" + std::to_string(ksub) +
                " dsub=" + std::to_string(dsub) + (ip ? " ip" : " l2");
        const size_t M = 5, kstride = (ksub + 15) / 16 * 16, d = M * dsub - 1;  // padded
        std::vector<float> q(d), ct(M * dsub * kstride), o0(M * ksub), o1(M * ksub, 7.f);
        for (auto& v : q) v = normal() * 3.f;
        for (auto& v : ct) v = normal();
        ref.pq_lut(q.data(), d, M, dsub, ct.data(), kstride, ksub, ip, o0.data());
        t.pq_lut(q.data(), d, M, dsub, ct.data(), kstride, ksub, ip, o1.data());
        // Exact where no FMA contraction happens (scalar, NEON); x86 within rounding.
        const bool exact = t.isa == Isa::Neon || t.isa == Isa::Scalar;
        bool ok = true;
        for (size_t i = 0; i < o0.size(); ++i) {
          double mag = 0;  // sum of the entry's |terms|
          const size_t m = i / ksub, j = i % ksub;
          for (size_t u = 0; u < dsub; ++u) {
            const double v = m * dsub + u < d ? q[m * dsub + u] : 0.0;
            const double c = ct[(m * dsub + u) * kstride + j];
            mag += ip ? std::abs(v * c) : (v - c) * (v - c);
          }
          ok = ok && (exact ? bits_of(o0[i]) == bits_of(o1[i])
                            : std::abs(double{o0[i]} - o1[i]) <= 1e-6 * mag + 1e-30);
        }
        CHECK(ok);
      }
  for (bool with_b : {false, true}) {  // pq8_byte_lut: range, rounding, statistics
    g_ctx = std::string(annx::simd::isa_name(t.isa)) + " pq8_byte_lut";
    const size_t M = 9;
    std::vector<float> a(256 * M), b(256 * M), sum(256 * M), s0(256 * M);
    for (auto& v : a) v = normal() * 50.f;
    for (auto& v : b) v = normal();
    for (size_t j = 0; j < 256; ++j) a[3 * 256 + j] = 2.5f;  // a zero-span row
    std::vector<uint8_t> q(256 * M);
    double st[3];
    CHECK(t.pq8_byte_lut(a.data(), with_b ? b.data() : nullptr, M, sum.data(), q.data(), st));
    double span = 0, bias = 0;
    bool ok = true;
    for (size_t m = 0; m < M; ++m) {
      float lo = 1e30f, hi = -1e30f;
      for (size_t j = 0; j < 256; ++j) {
        const size_t i = m * 256 + j;
        s0[i] = with_b ? a[i] + b[i] : a[i];
        if (with_b) ok = ok && bits_of(sum[i]) == bits_of(s0[i]);
        lo = std::min(lo, s0[i]);
        hi = std::max(hi, s0[i]);
      }
      span = std::max(span, static_cast<double>(hi - lo));
      bias += lo;
      for (size_t j = 0; j < 256; ++j) {
        const double x = st[0] * (s0[m * 256 + j] - static_cast<double>(lo));
        ok = ok && std::abs(q[m * 256 + j] - x) <= 0.5 + 1e-3;
      }
    }
    CHECK(ok);
    CHECK(std::abs(st[0] - 255.0 / span) <= 1e-6 * st[0] && std::abs(st[1] - bias) <= 1e-3);
    a[5 * 256 + 7] = std::numeric_limits<float>::quiet_NaN();
    CHECK(!t.pq8_byte_lut(a.data(), with_b ? b.data() : nullptr, M, sum.data(), q.data(), st));
  }
  for (size_t M : {size_t{1}, size_t{7}, size_t{25}, size_t{193}})  // pq4 tables: bit-identical
    for (bool with_b : {false, true}) {
      g_ctx = std::string(annx::simd::isa_name(t.isa)) + " pq4 tables M=" + std::to_string(M) +
              (with_b ? " a+b" : " a");
      std::vector<float> a(16 * M), b(16 * M), s0(16 * M), s1(16 * M, 7.f);
      for (auto& v : a) v = normal() * 40.f + 3.f;
      for (auto& v : b) v = normal();
      for (size_t j = 0; M > 1 && j < 16; ++j) a[j] = -1.25f;  // a zero-span row
      std::vector<float> lo0(M), hi0(M), lo1(M), hi1(M);
      const float* bp = with_b ? b.data() : nullptr;
      CHECK(ref.pq4_lut_stats(a.data(), bp, M, s0.data(), lo0.data(), hi0.data()));
      CHECK(t.pq4_lut_stats(a.data(), bp, M, s1.data(), lo1.data(), hi1.data()));
      bool ok = true;
      for (size_t m = 0; m < M; ++m) ok = ok && lo0[m] == lo1[m] && hi0[m] == hi1[m];
      for (size_t i = 0; with_b && i < 16 * M; ++i) ok = ok && bits_of(s0[i]) == bits_of(s1[i]);
      CHECK(ok);
      const float* rows = with_b ? s0.data() : a.data();
      float span = 0.f;
      for (size_t m = 0; m < M; ++m) span = std::max(span, hi0[m] - lo0[m]);
      for (float scale : {255.f / span, 254.9f / span, 0.37f, 1e-7f}) {
        std::vector<uint8_t> q0(16 * M), q1(16 * M, 1);
        ref.pq4_quantize_rows(rows, lo0.data(), scale, M, q0.data());
        t.pq4_quantize_rows(rows, lo0.data(), scale, M, q1.data());
        ok = q0 == q1;
        for (size_t i = 0; i < 16 * M; ++i) {  // round half up of scale * (x - lo), clamped
          const double x =
              static_cast<double>(scale) * (rows[i] - static_cast<double>(lo0[i / 16]));
          ok = ok && std::abs(q0[i] - std::min(x, 255.0)) <= 0.5 + 1e-3;
        }
        CHECK(ok);
      }
      a[16 * (M / 2) + 5] = std::numeric_limits<float>::infinity();
      CHECK(!t.pq4_lut_stats(a.data(), bp, M, s1.data(), lo1.data(), hi1.data()));
      a[16 * (M / 2) + 5] = std::numeric_limits<float>::quiet_NaN();
      CHECK(!t.pq4_lut_stats(a.data(), bp, M, s1.data(), lo1.data(), hi1.data()));
    }
  if (t.pq8_accumulate_u8) {  // byte tables: exact uint16 sums, every block count's tail
    for (size_t M : {size_t{1}, size_t{3}, size_t{16}, size_t{97}, size_t{257}})
      for (size_t nblocks : {size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{5}, size_t{7}}) {
        g_ctx = std::string(annx::simd::isa_name(t.isa)) + " pq8_u8 M=" + std::to_string(M) +
                " blocks=" + std::to_string(nblocks);
        Buf cb(nblocks * 32 * M, 1);
        for (size_t i = 0; i < nblocks * 32 * M; ++i) cb.p[i] = static_cast<uint8_t>(urand(256));
        std::vector<uint8_t> lut(256 * M);
        for (size_t i = 0; i < lut.size(); ++i)  // extremes included: 0 and 255 in every row
          lut[i] = static_cast<uint8_t>(i % 256 == 0 ? 255 : i % 256 == 1 ? 0 : urand(256));
        std::vector<uint16_t> want(32 * nblocks, 0), got(32 * nblocks + 32, 7);
        for (size_t b = 0; b < nblocks; ++b)
          for (size_t m = 0; m < M; ++m)
            for (size_t i = 0; i < 32; ++i)
              want[32 * b + i] = static_cast<uint16_t>(
                  want[32 * b + i] + lut[m * 256 + cb.p[b * 32 * M + m * 32 + i]]);
        t.pq8_accumulate_u8(cb.p, nblocks, M, lut.data(), got.data());
        bool ok = true;
        for (size_t i = 0; i < want.size(); ++i) ok = ok && got[i] == want[i];
        for (size_t i = want.size(); i < got.size(); ++i) ok = ok && got[i] == 7;  // no overrun
        CHECK(ok);
      }
  }
  for (size_t d : {size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{8}})
    for (size_t k : {size_t{1}, size_t{5}, size_t{16}, size_t{17}, size_t{256}}) {
      g_ctx = std::string(annx::simd::isa_name(t.isa)) +
              " nearest_l2_small d=" + std::to_string(d) + " k=" + std::to_string(k);
      const size_t ks = (k + 15) / 16 * 16, n = 13;
      std::vector<float> ct(d * ks), x(n * d);
      for (size_t j = 0; j < ks; ++j)
        for (size_t c = 0; c < d; ++c)
          ct[c * ks + j] = j >= k ? -1e-3f : (j % 4 == 3 ? ct[c * ks + j - 2] : normal());  // ties
      for (size_t i = 0; i < n; ++i)
        for (size_t c = 0; c < d; ++c)
          x[i * d + c] = i % 5 == 0 && k > 1 ? ct[c * ks + 1] : normal();  // exact hits
      std::vector<uint32_t> i0(n), i1(n);
      std::vector<float> d0(n), d1(n);
      ref.nearest_l2_small(x.data(), n, d, ct.data(), k, ks, i0.data(), d0.data());
      t.nearest_l2_small(x.data(), n, d, ct.data(), k, ks, i1.data(), d1.data());
      // Bit-identical by contract (kernels.h). The x86 levels are held to a tolerance: GCC
      // contracts their separate multiply and add into FMA (its C++ default is
      // -ffp-contract=fast), so their distances differ from scalar in the last bits; AArch64
      // builds use -ffp-contract=off (cmake/AnnxIsaProbes.cmake), so NEON must match exactly.
      const bool exact = t.isa == Isa::Neon || t.isa == Isa::Scalar;
      bool ok = true;
      for (size_t i = 0; i < n; ++i) {
        if (exact) {
          ok = ok && i0[i] == i1[i] && bits_of(d0[i]) == bits_of(d1[i]);
        } else {  // same distance within rounding; a different index only on a near-tie
          double dj = 0;
          for (size_t c = 0; c < d; ++c) {
            const double diff = double{x[i * d + c]} - ct[c * ks + i1[i]];
            dj += diff * diff;
          }
          ok = ok && i1[i] < k && close(d1[i], d0[i], d0[i]) && close(d0[i], float(dj), dj);
        }
      }
      CHECK(ok);
      if (!ok && getenv("ANNX_TEST_VERBOSE"))
        for (size_t i = 0; i < n; ++i)
          std::printf("    %zu: %u %.9g | %u %.9g\n", i, i0[i], double{d0[i]}, i1[i],
                      double{d1[i]});
    }
}

}  // namespace

int main() {
  const auto isas = annx::simd::available_isas();
  const KernelTable& ref = annx::simd::kernels(Isa::Scalar);
  std::string names;
  for (Isa i : isas) names += std::string(" ") + annx::simd::isa_name(i);
  std::printf("ISA levels compiled and supported here:%s (best: %s, active: %s)\n", names.c_str(),
              annx::simd::isa_name(annx::simd::best_isa()),
              annx::simd::isa_name(annx::simd::active_isa()));
#if defined(__aarch64__)
  g_ctx = "aarch64 selects neon";
  CHECK(annx::simd::best_isa() == Isa::Neon);
#endif
  for (Isa isa : isas) {
    const KernelTable& t = annx::simd::kernels(isa);
    g_ctx = annx::simd::isa_name(isa);
    CHECK(t.isa == isa);
    const int before = g_failures, checks = g_checks;
    test_float_kinds(ref, t);
    test_bebr(ref, t);
    test_gemm(t);
    test_multivector(ref, t);
    test_select(ref, t);
    test_int_and_bits(ref, t);
    test_conversions(ref, t);
    test_pq(ref, t);
    std::printf("  %-10s %5d checks, %s\n", annx::simd::isa_name(isa), g_checks - checks,
                g_failures == before ? "all agree with scalar" : "FAILURES");
  }
  std::printf("%s: %d checks, %d failures\n", g_failures ? "FAILED" : "OK", g_checks, g_failures);
  return g_failures ? 1 : 0;
}
