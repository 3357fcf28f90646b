// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c -mpopcnt only here).
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "annx/simd/kernels.h"
#include "kernel_tables.h"

namespace annx::kernels::avx2 {
namespace {

struct Ops {
  using F = __m256;
  static constexpr size_t W = 8;
  static constexpr int kMQ = 6, kNR = 2;  // 12 accumulators + 2 rows + 1 broadcast of 16
  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F load_partial(const float* p, size_t n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
    return _mm256_maskload_ps(p, mask);
  }
  static F load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static F load_bf16(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static F load_u8(const uint8_t* p) {
    return _mm256_cvtepi32_ps(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static float reduce(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

#include "simd_body-inl.h"

size_t select_le(const float* v, size_t n, float thr, uint32_t* out) {
  const __m256 t = _mm256_set1_ps(thr);
  size_t m = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    unsigned bits = static_cast<unsigned>(
        _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v + i), t, _CMP_LE_OQ)));
    while (bits) {
      out[m++] = static_cast<uint32_t>(i + static_cast<size_t>(__builtin_ctz(bits)));
      bits &= bits - 1;
    }
  }
  for (; i < n; ++i)
    if (v[i] <= thr) out[m++] = static_cast<uint32_t>(i);
  return m;
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

int32_t l2sq_i8(const int8_t* a, const int8_t* b, size_t d) {
  __m256i acc = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    const __m256i x =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256i y =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    const __m256i t = _mm256_sub_epi16(x, y);  // |t| <= 255 fits in i16
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(t, t));
  }
  int32_t s = hsum_epi32(acc);
  for (; i < d; ++i) {
    const int32_t t = int32_t{a[i]} - int32_t{b[i]};
    s += t * t;
  }
  return s;
}

int32_t dot_i8(const int8_t* a, const int8_t* b, size_t d) {
  __m256i acc = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    const __m256i x =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256i y =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
  }
  int32_t s = hsum_epi32(acc);
  for (; i < d; ++i) s += int32_t{a[i]} * int32_t{b[i]};
  return s;
}

// dot_i8_gather: QA queries x XB gathered rows, sign-extended to i16 and multiply-added
// in pairs (vpmaddwd), 16 bytes at a time; the tail of d in scalar code.
template <int QA, int XB>
inline void i8_micro(const int8_t* q, size_t d, const int8_t* const* xr, int32_t* out,
                     size_t out_stride) {
  __m256i acc[QA][XB];
  for (int a = 0; a < QA; ++a)
    for (int b = 0; b < XB; ++b) acc[a][b] = _mm256_setzero_si256();
  size_t t = 0;
  for (; t + 16 <= d; t += 16) {
    __m256i xv[XB];
    for (int b = 0; b < XB; ++b)
      xv[b] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xr[b] + t)));
    for (int a = 0; a < QA; ++a) {
      const __m256i qv =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + a * d + t)));
      for (int b = 0; b < XB; ++b)
        acc[a][b] = _mm256_add_epi32(acc[a][b], _mm256_madd_epi16(qv, xv[b]));
    }
  }
  for (int a = 0; a < QA; ++a)
    for (int b = 0; b < XB; ++b) {
      int32_t s = hsum_epi32(acc[a][b]);
      for (size_t u = t; u < d; ++u) s += int32_t{q[a * d + u]} * int32_t{xr[b][u]};
      out[a * out_stride + b] = s;
    }
}

template <int QA>
void i8_gather_q(const int8_t* q, const int8_t* x, const uint32_t* rows, size_t n, size_t stride,
                 size_t d, int32_t* out, size_t out_stride) {
  constexpr int XB = 3;  // 12 accumulators + 3 rows + 1 query of 16 registers
  size_t i = 0;
  for (; i + XB <= n; i += XB) {
    const int8_t* xr[XB];
    for (int b = 0; b < XB; ++b) xr[b] = x + size_t{rows[i + b]} * stride;
    i8_micro<QA, XB>(q, d, xr, out + i, out_stride);
  }
  for (; i < n; ++i) {
    const int8_t* xr[1] = {x + size_t{rows[i]} * stride};
    i8_micro<QA, 1>(q, d, xr, out + i, out_stride);
  }
}

void dot_i8_gather(const int8_t* q, size_t nq, const int8_t* x, const uint32_t* rows, size_t n,
                   size_t stride, size_t d, int32_t* out, size_t out_stride) {
  in_query_blocks_of_4(nq, [&](size_t a, auto qa) {
    i8_gather_q<decltype(qa)::value>(q + a * d, x, rows, n, stride, d, out + a * out_stride,
                                     out_stride);
  });
}

uint64_t hamming(const uint8_t* a, const uint8_t* b, size_t nbytes) {
  // Scalar POPCNT on 64-bit words with four chains beats the vpshufb nibble-LUT
  // method for the code lengths ANN uses (<= a few hundred bytes).
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 32 <= nbytes; i += 32) {
    uint64_t u[4], v[4];
    memcpy(u, a + i, 32);
    memcpy(v, b + i, 32);
    s0 += static_cast<uint64_t>(_mm_popcnt_u64(u[0] ^ v[0]));
    s1 += static_cast<uint64_t>(_mm_popcnt_u64(u[1] ^ v[1]));
    s2 += static_cast<uint64_t>(_mm_popcnt_u64(u[2] ^ v[2]));
    s3 += static_cast<uint64_t>(_mm_popcnt_u64(u[3] ^ v[3]));
  }
  for (; i + 8 <= nbytes; i += 8) {
    uint64_t u, v;
    memcpy(&u, a + i, 8);
    memcpy(&v, b + i, 8);
    s0 += static_cast<uint64_t>(_mm_popcnt_u64(u ^ v));
  }
  for (; i < nbytes; ++i)
    s1 += static_cast<uint64_t>(_mm_popcnt_u32(static_cast<unsigned>(a[i] ^ b[i])));
  return s0 + s1 + s2 + s3;
}

void hamming_many(const uint8_t* q, const uint8_t* x, size_t n, size_t nbytes, uint32_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint32_t>(hamming(q, x + i * nbytes, nbytes));
}

void f32_to_f16(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) {
    const __m128i h = _mm_cvtps_ph(_mm_set_ss(in[i]), _MM_FROUND_TO_NEAREST_INT);
    out[i] = static_cast<uint16_t>(_mm_extract_epi16(h, 0));
  }
}

void f16_to_f32(const uint16_t* in, float* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, Ops::load_f16(in + i));
  for (; i < n; ++i) out[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(in[i])));
}

void pq4_accumulate(const uint8_t* blocks, size_t nblocks, size_t npairs, const uint8_t* lut,
                    uint16_t* out) {
  // One block per pass: two blocks sharing each LUT load need 8 accumulators and spill
  // with 16 ymm registers (measured 1.6x slower); the loads are not the bottleneck, the
  // 11 vector ops per pair are.
  pq4_accumulate_256<1>(blocks, nblocks, npairs, lut, out);
}

void pq4_accumulate_nq_passes(const uint8_t* blocks, size_t nblocks, size_t npairs,
                              const uint8_t* const* luts, size_t nq, uint16_t* const* out);

void pq4_accumulate_nq(const uint8_t* blocks, size_t nblocks, size_t npairs,
                       const uint8_t* const* luts, size_t nq, uint16_t* const* out) {
  // 4 accumulators per query: 2 and 3 queries fit the 16 ymm registers (3 just, with the
  // nibble mask reloaded from the stack); 4 would spill (measured 12% slower), so they take
  // each block in two halves of 2 accumulators per query. Zen 4, M = 192, ns per block and
  // query: 83 for one query, 73.5 / 70.5 / 71 for 2 / 3 / 4 at once.
  switch (nq) {  // tail calls for nq <= 4
    case 0: return;
    case 1: return pq4_accumulate_256<1>(blocks, nblocks, npairs, luts[0], out[0]);
    case 2: return pq4_accumulate_nq_256<2>(blocks, nblocks, npairs, luts, out);
    case 3: return pq4_accumulate_nq_256<3>(blocks, nblocks, npairs, luts, out);
    case 4: return pq4_accumulate_nq_halves_256<4>(blocks, nblocks, npairs, luts, out);
    default: return pq4_accumulate_nq_passes(blocks, nblocks, npairs, luts, nq, out);
  }
}

/// nq > 4: passes of up to 4 queries (out of line, so that the dispatch above needs no frame).
[[gnu::noinline]] void pq4_accumulate_nq_passes(const uint8_t* blocks, size_t nblocks,
                                                size_t npairs, const uint8_t* const* luts,
                                                size_t nq, uint16_t* const* out) {
  for (size_t q = 0; q < nq; q += 4)
    pq4_accumulate_nq(blocks, nblocks, npairs, luts + q, nq - q < 4 ? nq - q : 4, out + q);
}

size_t select_le_u16(const uint16_t* v, size_t n, uint16_t thr, uint32_t* out) {
  const __m256i t = _mm256_set1_epi16(static_cast<short>(thr));
  size_t m = 0, i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i + 16));
    // x <= t (unsigned) <=> min(x, t) == x.
    const __m256i k0 = _mm256_cmpeq_epi16(_mm256_min_epu16(x0, t), x0);
    const __m256i k1 = _mm256_cmpeq_epi16(_mm256_min_epu16(x1, t), x1);
    // Pack the 16-bit masks to bytes (in-lane, hence the 64-bit permute) for one bit each.
    const __m256i k = _mm256_permute4x64_epi64(_mm256_packs_epi16(k0, k1), 0xD8);
    unsigned bits = static_cast<unsigned>(_mm256_movemask_epi8(k));
    while (bits) {
      out[m++] = static_cast<uint32_t>(i + static_cast<size_t>(__builtin_ctz(bits)));
      bits &= bits - 1;
    }
  }
  for (; i < n; ++i)
    if (v[i] <= thr) out[m++] = static_cast<uint32_t>(i);
  return m;
}

}  // namespace

void nearest_l2_small(const float* x, size_t n, size_t d, const float* ct, size_t k, size_t kstride,
                      uint32_t* I, float* D) {
  const __m256i step = _mm256_set1_epi32(8);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * d;
    __m256 best = _mm256_set1_ps(INFINITY);
    __m256i bidx = _mm256_setzero_si256(), idx = lane;
    for (size_t j0 = 0; j0 < k; j0 += 8) {
      __m256 acc = _mm256_setzero_ps();
      for (size_t t = 0; t < d; ++t) {
        const __m256 diff =
            _mm256_sub_ps(_mm256_set1_ps(xi[t]), _mm256_loadu_ps(ct + t * kstride + j0));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(diff, diff));
      }
      __m256 lt = _mm256_cmp_ps(acc, best, _CMP_LT_OQ);
      if (k - j0 < 8) {  // columns past k never win
        const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(k - j0)), lane);
        lt = _mm256_and_ps(lt, _mm256_castsi256_ps(live));
      }
      best = _mm256_blendv_ps(best, acc, lt);
      bidx = _mm256_castps_si256(
          _mm256_blendv_ps(_mm256_castsi256_ps(bidx), _mm256_castsi256_ps(idx), lt));
      idx = _mm256_add_epi32(idx, step);
    }
    alignas(32) float bv[8];
    alignas(32) uint32_t bi[8];
    _mm256_store_ps(bv, best);
    _mm256_store_si256(reinterpret_cast<__m256i*>(bi), bidx);
    float m = bv[0];
    uint32_t mi = bi[0];
    for (int l = 1; l < 8; ++l)
      if (bv[l] < m || (bv[l] == m && bi[l] < mi)) {
        m = bv[l];
        mi = bi[l];
      }
    I[i] = mi;
    D[i] = m;
  }
}

/// pq4 table rows, one 16-entry row in four SSE registers (the code that ran in
/// pq4_layout.cpp before these were kernels).
bool pq4_lut_stats(const float* a, const float* b, size_t M, float* sum, float* mins, float* maxs) {
  const __m128 z = _mm_setzero_ps();
  __m128 ok = _mm_castsi128_ps(_mm_set1_epi32(-1));
  for (size_t m = 0; m < M; ++m) {
    __m128 r[4];
    for (int c = 0; c < 4; ++c) {
      r[c] = _mm_loadu_ps(a + m * 16 + 4 * c);
      if (b) {
        r[c] = _mm_add_ps(r[c], _mm_loadu_ps(b + m * 16 + 4 * c));
        _mm_storeu_ps(sum + m * 16 + 4 * c, r[c]);
      }
      ok = _mm_and_ps(ok, _mm_cmpeq_ps(_mm_sub_ps(r[c], r[c]), z));  // x - x: NaN if not finite
    }
    __m128 lo = _mm_min_ps(_mm_min_ps(r[0], r[1]), _mm_min_ps(r[2], r[3]));
    __m128 hi = _mm_max_ps(_mm_max_ps(r[0], r[1]), _mm_max_ps(r[2], r[3]));
    lo = _mm_min_ps(lo, _mm_movehl_ps(lo, lo));
    hi = _mm_max_ps(hi, _mm_movehl_ps(hi, hi));
    mins[m] = _mm_cvtss_f32(_mm_min_ss(lo, _mm_shuffle_ps(lo, lo, 1)));
    maxs[m] = _mm_cvtss_f32(_mm_max_ss(hi, _mm_shuffle_ps(hi, hi, 1)));
  }
  return _mm_movemask_ps(ok) == 15;
}

void pq4_quantize_rows(const float* rows, const float* mins, float scale, size_t M, uint8_t* q) {
  const __m128 s = _mm_set1_ps(scale), half = _mm_set1_ps(0.5f), top = _mm_set1_ps(255.f);
  for (size_t m = 0; m < M; ++m) {
    const __m128 lo = _mm_set1_ps(mins[m]);
    __m128i w[4];
    for (int c = 0; c < 4; ++c) {
      __m128 p = _mm_mul_ps(s, _mm_sub_ps(_mm_loadu_ps(rows + m * 16 + 4 * c), lo));
      asm("" : "+x"(p));  // the product rounded on its own: no fused multiply-add
      w[c] = _mm_cvttps_epi32(_mm_min_ps(_mm_add_ps(p, half), top));
    }
    // Saturating packs: int32 -> int16 -> uint8 (negatives to 0).
    const __m128i bytes =
        _mm_packus_epi16(_mm_packs_epi32(w[0], w[1]), _mm_packs_epi32(w[2], w[3]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + m * 16), bytes);
  }
}

void fill_table(simd::KernelTable& t) {
  // bf16 conversions stay scalar (filled by the dispatcher): they run once per add.
  t.isa = simd::Isa::Avx2;
  fill_float_kinds(t);
  t.select_le = &select_le;
  t.l2sq_i8 = &l2sq_i8;
  t.dot_i8 = &dot_i8;
  t.dot_i8_gather = &dot_i8_gather;
  t.hamming = &hamming;
  t.hamming_many = &hamming_many;
  t.f32_to_f16 = &f32_to_f16;
  t.f16_to_f32 = &f16_to_f32;
  t.pq4_accumulate = &pq4_accumulate;
  t.select_le_u16 = &select_le_u16;
  t.nearest_l2_small = &nearest_l2_small;
  t.pq8_adc_blocks = &pq8_adc_blocks;
  t.pq4_accumulate_nq = &pq4_accumulate_nq;
  t.pq4_lut_stats = &pq4_lut_stats;
  t.pq4_quantize_rows = &pq4_quantize_rows;
}

}  // namespace annx::kernels::avx2
