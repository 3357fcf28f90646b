// Scalar reference kernels: the oracle every SIMD level is tested against, and the
// fallback on CPUs without AVX2. Written for clarity first; several independent
// partial sums let the compiler vectorise with the baseline SSE2/NEON it may assume.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "annx/simd/half.h"
#include "annx/simd/kernels.h"
#include "kernel_tables.h"

namespace annx::kernels::scalar {
namespace {

using simd::DistKind;

template <DistKind K>
struct Elem;
template <>
struct Elem<DistKind::L2_F32> {
  using T = float;
  static float get(const T* x, size_t i) { return x[i]; }
};
template <>
struct Elem<DistKind::IP_F32> : Elem<DistKind::L2_F32> {};
template <>
struct Elem<DistKind::L2_F16> {
  using T = uint16_t;
  static float get(const T* x, size_t i) { return simd::f16_to_f32_scalar(x[i]); }
};
template <>
struct Elem<DistKind::IP_F16> : Elem<DistKind::L2_F16> {};
template <>
struct Elem<DistKind::L2_BF16> {
  using T = uint16_t;
  static float get(const T* x, size_t i) { return simd::bf16_to_f32_scalar(x[i]); }
};
template <>
struct Elem<DistKind::IP_BF16> : Elem<DistKind::L2_BF16> {};
template <>
struct Elem<DistKind::IP_U8> {
  using T = uint8_t;
  static float get(const T* x, size_t i) { return static_cast<float>(x[i]); }
};
template <>
struct Elem<DistKind::WL2_U8> : Elem<DistKind::IP_U8> {};

constexpr bool is_l2(DistKind k) {
  return k == DistKind::L2_F32 || k == DistKind::L2_F16 || k == DistKind::L2_BF16;
}

template <DistKind K>
float one(const float* q, const void* xv, size_t d, const float* aux) {
  using E = Elem<K>;
  const auto* x = static_cast<const typename E::T*>(xv);
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  auto term = [&](size_t j) -> float {
    const float v = E::get(x, j);
    if constexpr (is_l2(K)) {
      const float t = q[j] - v;
      return t * t;
    } else if constexpr (K == DistKind::WL2_U8) {
      const float t = q[j] - v;
      return aux[j] * t * t;
    } else {
      return q[j] * v;
    }
  };
  for (; i + 8 <= d; i += 8)
    for (size_t l = 0; l < 8; ++l) s[l] += term(i + l);
  for (; i < d; ++i) s[0] += term(i);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <DistKind K>
void many(const float* q, const void* x, size_t n, size_t d, const float* aux, float* out) {
  const size_t cs = simd::code_size(K, d);
  const auto* base = static_cast<const uint8_t*>(x);
  for (size_t i = 0; i < n; ++i) out[i] = one<K>(q, base + i * cs, d, aux);
}

template <DistKind K>
void gather(const float* q, const void* x, const uint32_t* rows, size_t n, size_t stride, size_t d,
            const float* aux, float* out) {
  const auto* base = static_cast<const uint8_t*>(x);
  for (size_t i = 0; i < n; ++i) out[i] = one<K>(q, base + size_t{rows[i]} * stride, d, aux);
}

void dot_f32_tile(const float* q, size_t nq, const float* x, size_t nx, size_t d, float* out,
                  size_t out_stride) {
  for (size_t i = 0; i < nq; ++i)
    for (size_t j = 0; j < nx; ++j)
      out[i * out_stride + j] = one<DistKind::IP_F32>(q + i * d, x + j * d, d, nullptr);
}

void maxsim_f32(const float* qt, size_t qw, const float* x, size_t nx, size_t d, float* best) {
  for (size_t j = 0; j < nx; ++j)
    for (size_t a = 0; a < qw; ++a) {
      float s = 0.f;
      for (size_t k = 0; k < d; ++k) s += qt[k * qw + a] * x[j * d + k];
      if (s > best[a]) best[a] = s;
    }
}

void signed_segment_sum(const float* src, size_t ld, size_t len, const uint32_t* idx,
                        const float* signs, const uint32_t* seg_end, size_t nseg, float* dst) {
  size_t i0 = 0;
  for (size_t j = 0; j < nseg; ++j) {
    float* out = dst + j * ld;
    for (size_t c = 0; c < len; ++c) out[c] = 0.f;
    for (size_t i = i0; i < seg_end[j]; ++i)
      for (size_t c = 0; c < len; ++c) out[c] += signs[i] * src[size_t{idx[i]} * ld + c];
    i0 = seg_end[j];
  }
}

void segment_sum_pm(const float* src, size_t ld, size_t len, const uint32_t* idx,
                    const uint32_t* seg_split, const uint32_t* seg_end, size_t nseg, float* dst) {
  size_t i0 = 0;
  for (size_t j = 0; j < nseg; ++j) {
    float* out = dst + j * ld;
    for (size_t c = 0; c < len; ++c) {
      float p = 0.f, n = 0.f;
      for (size_t i = i0; i < seg_split[j]; ++i) p += src[size_t{idx[i]} * ld + c];
      for (size_t i = seg_split[j]; i < seg_end[j]; ++i) n += src[size_t{idx[i]} * ld + c];
      out[c] = p - n;
    }
    i0 = seg_end[j];
  }
}

constexpr size_t kScalarPanel = 8;

void pack_f32_panel(const float* x, size_t nrows, size_t d, float* panel) {
  for (size_t k = 0; k < d; ++k)
    for (size_t r = 0; r < kScalarPanel; ++r)
      panel[k * kScalarPanel + r] = r < nrows ? x[r * d + k] : 0.f;
}

void dot_f32_panel(const float* q, size_t nq, size_t d, const float* panel, float* out,
                   size_t out_stride) {
  for (size_t a = 0; a < nq; ++a) {
    float acc[kScalarPanel] = {};
    for (size_t k = 0; k < d; ++k)
      for (size_t r = 0; r < kScalarPanel; ++r)
        acc[r] += q[a * d + k] * panel[k * kScalarPanel + r];
    for (size_t r = 0; r < kScalarPanel; ++r) out[a * out_stride + r] = acc[r];
  }
}

size_t select_le(const float* v, size_t n, float thr, uint32_t* out) {
  size_t m = 0;
  for (size_t i = 0; i < n; ++i)
    if (v[i] <= thr) out[m++] = static_cast<uint32_t>(i);
  return m;
}

int32_t l2sq_i8(const int8_t* a, const int8_t* b, size_t d) {
  int32_t s = 0;
  for (size_t i = 0; i < d; ++i) {
    const int32_t t = int32_t{a[i]} - int32_t{b[i]};
    s += t * t;
  }
  return s;
}

int32_t dot_i8(const int8_t* a, const int8_t* b, size_t d) {
  int32_t s = 0;
  for (size_t i = 0; i < d; ++i) s += int32_t{a[i]} * int32_t{b[i]};
  return s;
}

void dot_i8_gather(const int8_t* q, size_t nq, const int8_t* x, const uint32_t* rows, size_t n,
                   size_t stride, size_t d, int32_t* out, size_t out_stride) {
  for (size_t a = 0; a < nq; ++a)
    for (size_t i = 0; i < n; ++i)
      out[a * out_stride + i] = dot_i8(q + a * d, x + size_t{rows[i]} * stride, d);
}

inline uint64_t popcount64(uint64_t v) {
  // Portable SWAR popcount (the baseline x86-64 target has no POPCNT instruction).
  v = v - ((v >> 1) & 0x5555555555555555ull);
  v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
  v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return (v * 0x0101010101010101ull) >> 56;
}

uint64_t hamming(const uint8_t* a, const uint8_t* b, size_t nbytes) {
  uint64_t s = 0;
  size_t i = 0;
  for (; i + 8 <= nbytes; i += 8) {
    uint64_t u, v;
    std::memcpy(&u, a + i, 8);
    std::memcpy(&v, b + i, 8);
    s += popcount64(u ^ v);
  }
  for (; i < nbytes; ++i) s += popcount64(static_cast<uint64_t>(a[i] ^ b[i]));
  return s;
}

void hamming_many(const uint8_t* q, const uint8_t* x, size_t n, size_t nbytes, uint32_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint32_t>(hamming(q, x + i * nbytes, nbytes));
}

void f32_to_f16(const float* in, uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = simd::f32_to_f16_scalar(in[i]);
}
void f16_to_f32(const uint16_t* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = simd::f16_to_f32_scalar(in[i]);
}
void f32_to_bf16(const float* in, uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = simd::f32_to_bf16_scalar(in[i]);
}
void bf16_to_f32(const uint16_t* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = simd::bf16_to_f32_scalar(in[i]);
}

// ---- PQ kernels ---------------------------------------------------------------------

void pq4_accumulate(const uint8_t* blocks, size_t nblocks, size_t npairs, const uint8_t* lut,
                    uint16_t* out) {
  // Byte t of a sub-quantizer's 16 holds vector t / 2 + 8 * (t % 2) (low nibble) and that
  // plus 16 (high nibble); see pq4_layout.h. Sums wrap mod 2^16 exactly like the SIMD ones.
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* blk = blocks + b * npairs * 32;
    uint32_t acc[32] = {};
    for (size_t j = 0; j < npairs; ++j) {
      const uint8_t* c = blk + j * 32;
      const uint8_t* l0 = lut + j * 32;
      const uint8_t* l1 = l0 + 16;
      for (size_t t = 0; t < 16; ++t) {
        const size_t v = t / 2 + 8 * (t % 2);
        acc[v] += uint32_t{l0[c[t] & 15]} + l1[c[16 + t] & 15];
        acc[v + 16] += uint32_t{l0[c[t] >> 4]} + l1[c[16 + t] >> 4];
      }
    }
    for (size_t i = 0; i < 32; ++i) out[b * 32 + i] = static_cast<uint16_t>(acc[i]);
  }
}

void pq4_accumulate_nq(const uint8_t* blocks, size_t nblocks, size_t npairs,
                       const uint8_t* const* luts, size_t nq, uint16_t* const* out) {
  for (size_t q = 0; q < nq; ++q) pq4_accumulate(blocks, nblocks, npairs, luts[q], out[q]);
}

bool pq4_lut_stats(const float* a, const float* b, size_t M, float* sum, float* mins, float* maxs) {
  bool finite = true;
  for (size_t m = 0; m < M; ++m) {
    const float* row = a + m * 16;
    if (b) {
      for (size_t j = 0; j < 16; ++j) sum[m * 16 + j] = row[j] + b[m * 16 + j];
      row = sum + m * 16;
    }
    float lo = row[0], hi = row[0];
    for (size_t j = 0; j < 16; ++j) {
      lo = std::min(lo, row[j]);
      hi = std::max(hi, row[j]);
      finite = finite && std::isfinite(row[j]);
    }
    mins[m] = lo;
    maxs[m] = hi;
  }
  return finite;
}

void pq4_quantize_rows(const float* rows, const float* mins, float scale, size_t M, uint8_t* q) {
  // No fused multiply-add here: x86's baseline has none, AArch64 builds with
  // -ffp-contract=off.
  for (size_t m = 0; m < M; ++m)
    for (size_t j = 0; j < 16; ++j) {
      const float v = scale * (rows[m * 16 + j] - mins[m]) + 0.5f;
      q[m * 16 + j] =
          v >= 255.f ? uint8_t{255} : (v > 0.f ? static_cast<uint8_t>(static_cast<int32_t>(v)) : 0);
    }
}

size_t select_le_u16(const uint16_t* v, size_t n, uint16_t thr, uint32_t* out) {
  size_t m = 0;
  for (size_t i = 0; i < n; ++i)
    if (v[i] <= thr) out[m++] = static_cast<uint32_t>(i);
  return m;
}

void pq_lut(const float* q, size_t d, size_t M, size_t dsub, const float* ct, size_t kstride,
            size_t ksub, bool ip, float* out) {
  for (size_t m = 0; m < M; ++m) {
    const float* c = ct + m * dsub * kstride;
    const size_t b = m * dsub, nq = b < d ? std::min(dsub, d - b) : 0;  // padded sub-space
    float* o = out + m * ksub;
    for (size_t j = 0; j < ksub; ++j) o[j] = 0.f;
    for (size_t t = 0; t < dsub; ++t) {
      const float v = t < nq ? q[b + t] : 0.f;
      const float* ctj = c + t * kstride;
      for (size_t j = 0; j < ksub; ++j) {
        if (ip) {
          o[j] -= v * ctj[j];
        } else {
          const float diff = v - ctj[j];
          o[j] += diff * diff;
        }
      }
    }
  }
}

bool pq8_byte_lut(const float* a, const float* b, size_t M, float* sum, uint8_t* q, double* stats) {
  float lo[257];
  float max_span = 0.f;
  double bias = 0.0, abs_sum = 0.0;
  bool finite = true;
  const float* t = b ? sum : a;
  for (size_t m = 0; m < M; ++m) {
    float l = std::numeric_limits<float>::infinity(), h = -l;
    for (size_t j = 0; j < 256; ++j) {
      const size_t i = m * 256 + j;
      const float v = b ? (sum[i] = a[i] + b[i]) : a[i];
      finite = finite && std::isfinite(v);  // the sum is written whole either way
      l = std::min(l, v);
      h = std::max(h, v);
    }
    lo[m] = l;
    max_span = std::max(max_span, h - l);
    bias += l;
    abs_sum += std::max(std::fabs(l), std::fabs(h));
  }
  if (!finite || !std::isfinite(max_span)) return false;
  const float scale = max_span > 0.f ? 255.f / max_span : 1.f;
  for (size_t m = 0; m < M; ++m)
    for (size_t j = 0; j < 256; ++j)
      q[m * 256 + j] =
          static_cast<uint8_t>(std::min((t[m * 256 + j] - lo[m]) * scale + 0.5f, 255.f));
  stats[0] = scale;
  stats[1] = bias;
  stats[2] = abs_sum;
  return true;
}

void pq8_adc_blocks(const uint8_t* blocks, size_t nblocks, size_t M, const float* lut, float* out) {
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* blk = blocks + b * 32 * M;
    float acc[32] = {};
    for (size_t m = 0; m < M; ++m) {
      const float* t = lut + m * 256;
      const uint8_t* c = blk + m * 32;
      for (size_t i = 0; i < 32; ++i) acc[i] += t[c[i]];
    }
    for (size_t i = 0; i < 32; ++i) out[b * 32 + i] = acc[i];
  }
}

template <DistKind K>
void fill(simd::KernelTable& t) {
  t.one[static_cast<int>(K)] = &one<K>;
  t.many[static_cast<int>(K)] = &many<K>;
  t.gather[static_cast<int>(K)] = &gather<K>;
}

}  // namespace

void nearest_l2_small(const float* x, size_t n, size_t d, const float* ct, size_t k, size_t kstride,
                      uint32_t* I, float* D) {
  constexpr size_t kChunk = 64;  // distances of a chunk of centroids, vectorisable over j
  float dist[kChunk];
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * d;
    float best = std::numeric_limits<float>::infinity();
    uint32_t bj = 0;
    for (size_t j0 = 0; j0 < k; j0 += kChunk) {
      const size_t m = std::min(kChunk, k - j0);
      for (size_t j = 0; j < m; ++j) dist[j] = 0.f;
      for (size_t t = 0; t < d; ++t) {
        const float* c = ct + t * kstride + j0;
        const float v = xi[t];
        for (size_t j = 0; j < m; ++j) {
          const float diff = v - c[j];
          dist[j] = dist[j] + diff * diff;
        }
      }
      for (size_t j = 0; j < m; ++j)
        if (dist[j] < best) {
          best = dist[j];
          bj = static_cast<uint32_t>(j0 + j);
        }
    }
    I[i] = bj;
    D[i] = best;
  }
}

#include "bebr_body-inl.h"

void fill_table(simd::KernelTable& t) {
  t.isa = simd::Isa::Scalar;
  fill_bebr_kinds(t);
  fill<DistKind::L2_F32>(t);
  fill<DistKind::IP_F32>(t);
  fill<DistKind::L2_F16>(t);
  fill<DistKind::IP_F16>(t);
  fill<DistKind::L2_BF16>(t);
  fill<DistKind::IP_BF16>(t);
  fill<DistKind::IP_U8>(t);
  fill<DistKind::WL2_U8>(t);
  t.dot_f32_tile = &dot_f32_tile;
  t.panel_rows = kScalarPanel;
  t.pack_f32_panel = &pack_f32_panel;
  t.dot_f32_panel = &dot_f32_panel;
  t.select_le = &select_le;
  t.l2sq_i8 = &l2sq_i8;
  t.dot_i8 = &dot_i8;
  t.dot_i8_gather = &dot_i8_gather;
  t.hamming = &hamming;
  t.hamming_many = &hamming_many;
  t.f32_to_f16 = &f32_to_f16;
  t.f16_to_f32 = &f16_to_f32;
  t.f32_to_bf16 = &f32_to_bf16;
  t.bf16_to_f32 = &bf16_to_f32;
  t.pq4_accumulate = &pq4_accumulate;
  t.select_le_u16 = &select_le_u16;
  t.pq4_lut_stats = &pq4_lut_stats;
  t.pq4_quantize_rows = &pq4_quantize_rows;
  t.pq8_adc_blocks = &pq8_adc_blocks;
  t.pq8_byte_lut = &pq8_byte_lut;
  t.pq_lut = &pq_lut;
  t.nearest_l2_small = &nearest_l2_small;
  t.pq4_accumulate_nq = &pq4_accumulate_nq;
  t.maxsim_f32 = &maxsim_f32;
  t.signed_segment_sum = &signed_segment_sum;
  t.segment_sum_pm = &segment_sum_pm;
}

}  // namespace annx::kernels::scalar
