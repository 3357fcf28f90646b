// AVX-512 kernels, compiled twice: once as the "avx512" level (F/BW/DQ/VL) and once
// as "avx512_icl" (adds VNNI, VPOPCNTDQ and VBMI), see x86_avx512.cpp / x86_avx512_icl.cpp.
// The including TU defines ANNX_AVX512_NS and ANNX_AVX512_ICL (0 or 1) first.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "annx/simd/kernels.h"
#include "kernel_tables.h"

namespace annx::kernels::ANNX_AVX512_NS {
namespace {

struct Ops {
  using F = __m512;
  static constexpr size_t W = 16;
  static constexpr int kMQ = 8, kNR = 3;  // 24 accumulators + 3 rows + 1 broadcast of 32
  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static F broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F load_partial(const float* p, size_t n) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p);
  }
  static F load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static F load_bf16(const uint16_t* p) {
    const __m512i w =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  static F load_u8(const uint8_t* p) {
    return _mm512_cvtepi32_ps(
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static float reduce(F v) {
    __m256 s = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
  }
};

#include "simd_body-inl.h"

size_t select_le(const float* v, size_t n, float thr, uint32_t* out) {
  const __m512 t = _mm512_set1_ps(thr);
  __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_set1_epi32(16);
  size_t m = 0;
  for (size_t i = 0; i < n; i += 16) {
    const size_t r = n - i;
    const __mmask16 live = r >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << r) - 1u);
    const __mmask16 hit =
        _mm512_mask_cmp_ps_mask(live, _mm512_maskz_loadu_ps(live, v + i), t, _CMP_LE_OQ);
    // Few hits (a top-k threshold, the usual case): walk the bits. Many: compress in a
    // register and store with a mask (compressstoreu to memory is microcoded on Zen 4;
    // a masked store writes only the kept lanes, so `out` needs no slack).
    if (hit) {
      const int cnt = __builtin_popcount(hit);
      if (cnt <= 4) {
        uint32_t h = hit;
        do {
          out[m++] = static_cast<uint32_t>(i + static_cast<size_t>(__builtin_ctz(h)));
          h &= h - 1;
        } while (h);
      } else {
        _mm512_mask_storeu_epi32(out + m, static_cast<__mmask16>((1u << cnt) - 1u),
                                 _mm512_maskz_compress_epi32(hit, idx));
        m += static_cast<size_t>(cnt);
      }
    }
    idx = _mm512_add_epi32(idx, step);
  }
  return m;
}

inline __mmask32 tail_mask32(size_t n) {
  return n >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << n) - 1u);
}

// int8: sign-extend 32 values to i16, then multiply-add pairs into i32 lanes
// (VNNI's vpdpwssd fuses the add on the icl level).
inline __m512i madd_acc(__m512i acc, __m512i x, __m512i y) {
#if ANNX_AVX512_ICL
  return _mm512_dpwssd_epi32(acc, x, y);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(x, y));
#endif
}

int32_t l2sq_i8(const int8_t* a, const int8_t* b, size_t d) {
  __m512i acc = _mm512_setzero_si512();
  for (size_t i = 0; i < d; i += 32) {
    const __mmask32 m = tail_mask32(d - i);
    const __m512i x = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, a + i));
    const __m512i y = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, b + i));
    const __m512i t = _mm512_sub_epi16(x, y);
    acc = madd_acc(acc, t, t);
  }
  return _mm512_reduce_add_epi32(acc);
}

int32_t dot_i8(const int8_t* a, const int8_t* b, size_t d) {
  __m512i acc = _mm512_setzero_si512();
  for (size_t i = 0; i < d; i += 32) {
    const __mmask32 m = tail_mask32(d - i);
    const __m512i x = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, a + i));
    const __m512i y = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, b + i));
    acc = madd_acc(acc, x, y);
  }
  return _mm512_reduce_add_epi32(acc);
}

// dot_i8_gather: QA queries x XB gathered rows, exact int32 sums.

/// The XB lane sums of acc[0..XB) into out[0..XB) (four at a time share the shuffles).
template <int XB>
inline void i8_store_sums(const __m512i* acc, int32_t corr, int32_t* out) {
  int b = 0;
  for (; b + 4 <= XB; b += 4) {
    __m256i h[4];
    for (int u = 0; u < 4; ++u)
      h[u] = _mm256_add_epi32(_mm512_castsi512_si256(acc[b + u]),
                              _mm512_extracti64x4_epi64(acc[b + u], 1));
    const __m256i h01 = _mm256_hadd_epi32(h[0], h[1]);
    const __m256i h23 = _mm256_hadd_epi32(h[2], h[3]);
    const __m256i h4 = _mm256_hadd_epi32(h01, h23);
    const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h4), _mm256_extracti128_si256(h4, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + b), _mm_sub_epi32(s, _mm_set1_epi32(corr)));
  }
  for (; b < XB; ++b) out[b] = _mm512_reduce_add_epi32(acc[b]) - corr;
}
#if ANNX_AVX512_ICL
// vpdpbusd multiplies unsigned by signed bytes: the rows are made unsigned by flipping
// their sign bit (r + 128), so each sum is <q, r> + 128 * sum(q); the caller subtracts
// the query's 128 * sum(q) (qcorr). Masked-off tail bytes are 0 in q, so they add 0.
inline __mmask64 tail_mask64(size_t n) {
  return n >= 64 ? ~__mmask64{0} : static_cast<__mmask64>((uint64_t{1} << n) - 1u);
}

template <int QA, int XB>
inline void i8_micro(const int8_t* q, size_t d, const int8_t* const* xr, const int32_t* qcorr,
                     int32_t* out, size_t out_stride) {
  __m512i acc[QA][XB];
  for (int a = 0; a < QA; ++a)
    for (int b = 0; b < XB; ++b) acc[a][b] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (size_t t = 0; t < d; t += 64) {
    const __mmask64 m = tail_mask64(d - t);
    __m512i xv[XB];
    for (int b = 0; b < XB; ++b)
      xv[b] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, xr[b] + t), flip);
    for (int a = 0; a < QA; ++a) {
      const __m512i qv = _mm512_maskz_loadu_epi8(m, q + a * d + t);
      for (int b = 0; b < XB; ++b) acc[a][b] = _mm512_dpbusd_epi32(acc[a][b], xv[b], qv);
    }
  }
  for (int a = 0; a < QA; ++a) i8_store_sums<XB>(acc[a], qcorr[a], out + a * out_stride);
}
#else
// Sign-extended to i16 and multiply-added in pairs (vpmaddwd), 32 bytes at a time.
template <int QA, int XB>
inline void i8_micro(const int8_t* q, size_t d, const int8_t* const* xr, const int32_t*,
                     int32_t* out, size_t out_stride) {
  __m512i acc[QA][XB];
  for (int a = 0; a < QA; ++a)
    for (int b = 0; b < XB; ++b) acc[a][b] = _mm512_setzero_si512();
  for (size_t t = 0; t < d; t += 32) {
    const __mmask32 m = tail_mask32(d - t);
    __m512i xv[XB];
    for (int b = 0; b < XB; ++b)
      xv[b] = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, xr[b] + t));
    for (int a = 0; a < QA; ++a) {
      const __m512i qv = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, q + a * d + t));
      for (int b = 0; b < XB; ++b)
        acc[a][b] = _mm512_add_epi32(acc[a][b], _mm512_madd_epi16(qv, xv[b]));
    }
  }
  for (int a = 0; a < QA; ++a) i8_store_sums<XB>(acc[a], 0, out + a * out_stride);
}
#endif

template <int QA>
void i8_gather_q(const int8_t* q, const int8_t* x, const uint32_t* rows, size_t n, size_t stride,
                 size_t d, int32_t* out, size_t out_stride) {
  int32_t qcorr[QA];
  for (int a = 0; a < QA; ++a) {
    int32_t s = 0;
    for (size_t t = 0; t < d; ++t) s += q[a * d + t];
    qcorr[a] = 128 * s;
  }
  constexpr int XB = 4;
  size_t i = 0;
  for (; i + XB <= n; i += XB) {
    const int8_t* xr[XB];
    for (int b = 0; b < XB; ++b) xr[b] = x + size_t{rows[i + b]} * stride;
    i8_micro<QA, XB>(q, d, xr, qcorr, out + i, out_stride);
  }
  for (; i < n; ++i) {
    const int8_t* xr[1] = {x + size_t{rows[i]} * stride};
    i8_micro<QA, 1>(q, d, xr, qcorr, out + i, out_stride);
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
#if ANNX_AVX512_ICL
  __m512i acc = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 64 <= nbytes; i += 64) {
    const __m512i x = _mm512_xor_si512(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
  }
  if (i < nbytes) {
    const size_t r = nbytes - i;
    const __mmask64 m = r >= 64 ? ~__mmask64{0} : ((__mmask64{1} << r) - 1);
    const __m512i x =
        _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, a + i), _mm512_maskz_loadu_epi8(m, b + i));
    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
  }
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(acc));
#else
  uint64_t s0 = 0, s1 = 0;
  size_t i = 0;
  for (; i + 16 <= nbytes; i += 16) {
    uint64_t u[2], v[2];
    memcpy(u, a + i, 16);
    memcpy(v, b + i, 16);
    s0 += static_cast<uint64_t>(_mm_popcnt_u64(u[0] ^ v[0]));
    s1 += static_cast<uint64_t>(_mm_popcnt_u64(u[1] ^ v[1]));
  }
  for (; i < nbytes; ++i)
    s0 += static_cast<uint64_t>(_mm_popcnt_u32(static_cast<unsigned>(a[i] ^ b[i])));
  return s0 + s1;
#endif
}

void hamming_many(const uint8_t* q, const uint8_t* x, size_t n, size_t nbytes, uint32_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint32_t>(hamming(q, x + i * nbytes, nbytes));
}

void f32_to_f16(const float* in, uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    const size_t r = n - i;
    const __mmask16 m = r >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << r) - 1u);
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_mask_storeu_epi16(out + i, m, h);
  }
}

void f16_to_f32(const uint16_t* in, float* out, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    const size_t r = n - i;
    const __mmask16 m = r >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << r) - 1u);
    _mm512_mask_storeu_ps(out + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, in + i)));
  }
}

// ---- 4-bit PQ fast-scan (pq4 layout, see annx/quant/pq4_layout.h) ----------------------
// As the 256-bit kernel (simd_body-inl.h explains the a0 - (a1 << 8) trick), but one 512-bit
// register holds two sub-quantizer pairs: lane l of an accumulator sums the sub-quantizers
// m = l mod 4, and the four lanes are added at the end. An odd last pair is loaded
// zero-extended: a zero LUT lane looks up zeros.

struct Pq4Acc {
  __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
  __m512i a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();

  inline void add(__m512i lut, __m512i codes, __m512i nib) {
    add_nibbles(lut, _mm512_and_si512(codes, nib),
                _mm512_and_si512(_mm512_srli_epi16(codes, 4), nib));
  }

  /// The same with the codes already unpacked: lo/hi = low/high nibbles (one per byte).
  inline void add_nibbles(__m512i lut, __m512i lo, __m512i hi) {
    const __m512i r0 = _mm512_shuffle_epi8(lut, lo);
    const __m512i r1 = _mm512_shuffle_epi8(lut, hi);
    a0 = _mm512_add_epi16(a0, r0);
    a1 = _mm512_add_epi16(a1, _mm512_srli_epi16(r0, 8));
    a2 = _mm512_add_epi16(a2, r1);
    a3 = _mm512_add_epi16(a3, _mm512_srli_epi16(r1, 8));
  }

  inline void keep() { asm("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3)); }  // Pq4Acc256::keep

  inline void store(uint16_t* out) const {
    const __m512i v0 = _mm512_sub_epi16(a0, _mm512_slli_epi16(a1, 8));  // vectors 0-7
    const __m512i v2 = _mm512_sub_epi16(a2, _mm512_slli_epi16(a3, 8));  // 16-23
    // Lane sums of v0, a1 (8-15), v2, a3 (24-31), in that order, in two shuffle rounds.
    const __m512i t01 =
        _mm512_add_epi16(_mm512_shuffle_i64x2(v0, a1, 0x44), _mm512_shuffle_i64x2(v0, a1, 0xEE));
    const __m512i t23 =
        _mm512_add_epi16(_mm512_shuffle_i64x2(v2, a3, 0x44), _mm512_shuffle_i64x2(v2, a3, 0xEE));
    _mm512_storeu_si512(out, _mm512_add_epi16(_mm512_shuffle_i64x2(t01, t23, 0x88),
                                              _mm512_shuffle_i64x2(t01, t23, 0xDD)));
  }
};

inline __m512i load512(const uint8_t* p) { return _mm512_loadu_si512(p); }
inline __m512i load256z(const uint8_t* p) {
  return _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

/// NB blocks (bb bytes apart) in one pass over the LUT: each LUT load serves NB blocks.
template <int NB>
inline void pq4_blocks(const uint8_t* c, size_t bb, size_t npairs, const uint8_t* lut,
                       uint16_t* out) {
  const __m512i nib = _mm512_set1_epi8(0x0F);
  Pq4Acc acc[NB];
  size_t j = 0;
  for (; j + 2 <= npairs; j += 2) {
    const __m512i l = load512(lut + j * 32);
    for (int k = 0; k < NB; ++k) acc[k].add(l, load512(c + k * bb + j * 32), nib);
  }
  if (j < npairs) {
    const __m512i l = load256z(lut + j * 32);
    for (int k = 0; k < NB; ++k) acc[k].add(l, load256z(c + k * bb + j * 32), nib);
  }
  for (int k = 0; k < NB; ++k) acc[k].store(out + 32 * k);
}

void pq4_accumulate(const uint8_t* blocks, size_t nblocks, size_t npairs, const uint8_t* lut,
                    uint16_t* out) {
  // Short codes: the 256-bit kernel (two blocks per LUT load, no spills with 32 registers)
  // avoids the 4-lane reduction per block; on Zen 4 it measured 1.2-3x faster for
  // npairs <= 8 and within 10% either way above. The 512-bit loop halves the vector op
  // count per pair on cores with full-width AVX-512 units, so it takes the long codes.
  if (npairs <= 8) return pq4_accumulate_256<2>(blocks, nblocks, npairs, lut, out);
  const size_t bb = npairs * 32;
  size_t b = 0;
  for (; b + 2 <= nblocks; b += 2) pq4_blocks<2>(blocks + b * bb, bb, npairs, lut, out + b * 32);
  if (b < nblocks) pq4_blocks<1>(blocks + b * bb, bb, npairs, lut, out + b * 32);
}

/// pq4_accumulate for NQ queries per pass: each code load and unpack serves NQ queries.
template <int NQ>
[[gnu::noinline]] void pq4_accumulate_nq_512(const uint8_t* blocks, size_t nblocks, size_t npairs,
                                             const uint8_t* const* luts, uint16_t* const* out) {
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const size_t bb = npairs * 32, np2 = npairs & ~size_t{1};
  const uint8_t* lut[NQ];  // local copies (stores through out[] might alias luts[])
  for (int q = 0; q < NQ; ++q) lut[q] = luts[q];
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* c = blocks + b * bb;
    Pq4Acc acc[NQ];
    // An odd last pair first, so that the accumulators go straight from the main loop to
    // the stores (see Pq4Acc256::keep; a tail after the loop brings the copies back).
    if (np2 < npairs) {
      const __m512i codes = load256z(c + np2 * 32);
      const __m512i lo = _mm512_and_si512(codes, nib);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(codes, 4), nib);
      for (int q = 0; q < NQ; ++q) acc[q].add_nibbles(load256z(lut[q] + np2 * 32), lo, hi);
    }
    for (size_t j = 0; j < np2; j += 2) {
      const __m512i codes = load512(c + j * 32);
      const __m512i lo = _mm512_and_si512(codes, nib);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(codes, 4), nib);
      for (int q = 0; q < NQ; ++q) acc[q].add_nibbles(load512(lut[q] + j * 32), lo, hi);
    }
    for (int q = 0; q < NQ; ++q) acc[q].keep();
    for (int q = 0; q < NQ; ++q) acc[q].store(out[q] + b * 32);
  }
}

template <int NQ>
void pq4_accumulate_nq_t(const uint8_t* blocks, size_t nblocks, size_t npairs,
                         const uint8_t* const* luts, uint16_t* const* out) {
  // As pq4_accumulate: the 256-bit kernel (4 * NQ accumulators fit 32 registers) for short
  // codes, the 512-bit one for long codes.
  if (npairs <= 8) return pq4_accumulate_nq_256<NQ>(blocks, nblocks, npairs, luts, out);
  pq4_accumulate_nq_512<NQ>(blocks, nblocks, npairs, luts, out);
}

void pq4_accumulate_nq_passes(const uint8_t* blocks, size_t nblocks, size_t npairs,
                              const uint8_t* const* luts, size_t nq, uint16_t* const* out);

void pq4_accumulate_nq(const uint8_t* blocks, size_t nblocks, size_t npairs,
                       const uint8_t* const* luts, size_t nq, uint16_t* const* out) {
  switch (nq) {  // tail calls for nq <= 4
    case 0: return;
    case 1: return pq4_accumulate(blocks, nblocks, npairs, luts[0], out[0]);
    case 2: return pq4_accumulate_nq_t<2>(blocks, nblocks, npairs, luts, out);
    case 3: return pq4_accumulate_nq_t<3>(blocks, nblocks, npairs, luts, out);
    case 4: return pq4_accumulate_nq_t<4>(blocks, nblocks, npairs, luts, out);
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
  const __m512i t = _mm512_set1_epi16(static_cast<short>(thr));
  const __m512i idx0 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i idx1 = _mm512_add_epi32(idx0, _mm512_set1_epi32(16));
  size_t m = 0, i = 0;
  // Few hits per 32 values (the usual case, a top-k threshold): walk the bits. Many: compress
  // the positions in registers and store whole vectors (faster than both the bit walk and
  // compressstoreu, which is microcoded on Zen 4). The full 16-lane stores stay in bounds:
  // out has room for n entries, m <= i (+ 16 for the second half) and i + 32 <= n.
  for (; i + 32 <= n; i += 32) {
    uint32_t hit = _mm512_cmple_epu16_mask(_mm512_loadu_si512(v + i), t);
    if (!hit) continue;
    if (__builtin_popcount(hit) <= 4) {
      do {
        out[m++] = static_cast<uint32_t>(i + static_cast<size_t>(__builtin_ctz(hit)));
        hit &= hit - 1;
      } while (hit);
      continue;
    }
    const __m512i base = _mm512_set1_epi32(static_cast<int>(i));
    const __mmask16 h0 = static_cast<__mmask16>(hit), h1 = static_cast<__mmask16>(hit >> 16);
    _mm512_storeu_si512(out + m, _mm512_maskz_compress_epi32(h0, _mm512_add_epi32(base, idx0)));
    m += static_cast<size_t>(__builtin_popcount(h0));
    _mm512_storeu_si512(out + m, _mm512_maskz_compress_epi32(h1, _mm512_add_epi32(base, idx1)));
    m += static_cast<size_t>(__builtin_popcount(h1));
  }
  if (i < n) {
    const __mmask32 live = tail_mask32(n - i);
    uint32_t hit = _mm512_mask_cmple_epu16_mask(live, _mm512_maskz_loadu_epi16(live, v + i), t);
    while (hit) {
      out[m++] = static_cast<uint32_t>(i + static_cast<size_t>(__builtin_ctz(hit)));
      hit &= hit - 1;
    }
  }
  return m;
}

}  // namespace

void nearest_l2_small(const float* x, size_t n, size_t d, const float* ct, size_t k, size_t kstride,
                      uint32_t* I, float* D) {
  const __m512i step = _mm512_set1_epi32(16);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * d;
    __m512 best = _mm512_set1_ps(INFINITY);
    __m512i bidx = _mm512_setzero_si512(), idx = lane;
    for (size_t j0 = 0; j0 < k; j0 += 16) {
      __m512 acc = _mm512_setzero_ps();
      for (size_t t = 0; t < d; ++t) {
        const __m512 diff =
            _mm512_sub_ps(_mm512_set1_ps(xi[t]), _mm512_loadu_ps(ct + t * kstride + j0));
        acc = _mm512_add_ps(acc, _mm512_mul_ps(diff, diff));
      }
      const __mmask16 live =
          k - j0 >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (k - j0)) - 1u);
      const __mmask16 lt = _mm512_mask_cmp_ps_mask(live, acc, best, _CMP_LT_OQ);
      best = _mm512_mask_mov_ps(best, lt, acc);
      bidx = _mm512_mask_mov_epi32(bidx, lt, idx);
      idx = _mm512_add_epi32(idx, step);
    }
    const float m = _mm512_reduce_min_ps(best);
    const __mmask16 at = _mm512_cmp_ps_mask(best, _mm512_set1_ps(m), _CMP_EQ_OQ);
    I[i] = _mm512_mask_reduce_min_epu32(at, bidx);
    D[i] = m;
  }
}

/// In-register transpose of a 16 x 16 float block (r[i] = row i -> r[j] = column j).
inline void transpose16(__m512 (&r)[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
      t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
  }
}

/// pack_f32_panel (same layout and result as the generic one) by 16 x 16 register
/// transposes: the scalar copy was 15-17 % of FDE encoding (72 KB per panel).
void pack_f32_panel_t16(const float* x, size_t nrows, size_t d, float* panel) {
  for (size_t r0 = 0; r0 < kPanel; r0 += 16) {
    const size_t m = r0 < nrows ? std::min<size_t>(16, nrows - r0) : 0;
    for (size_t k0 = 0; k0 < d; k0 += 16) {
      const size_t w = std::min<size_t>(16, d - k0);
      const __mmask16 cols = w == 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << w) - 1u);
      __m512 v[16];
      for (size_t i = 0; i < 16; ++i)
        v[i] = i < m ? _mm512_maskz_loadu_ps(cols, x + (r0 + i) * d + k0) : _mm512_setzero_ps();
      transpose16(v);
      for (size_t j = 0; j < w; ++j) _mm512_storeu_ps(panel + (k0 + j) * kPanel + r0, v[j]);
    }
  }
}

#if ANNX_AVX512_ICL
/// P pairs of pq8 blocks (64 P vectors) from `b0` (block stride bb; the last pair's second
/// block is `last1`, which may repeat its first when the count is odd). Per sub-quantizer
/// its 256-byte table sits in four registers; vpermi2b looks up 64 codes in each half and
/// the codes' bit 7 picks the half. Sums are kept in 16-bit lanes, even and odd bytes
/// (vectors) apart, and interleaved back at the end.
template <int P>
inline void pq8_u8_pass(const uint8_t* b0, size_t bb, const uint8_t* last1, size_t M,
                        const uint8_t* lut8, __m512i* even, __m512i* odd) {
  const __m512i low_byte = _mm512_set1_epi16(0x00ff);
  for (int p = 0; p < P; ++p) even[p] = odd[p] = _mm512_setzero_si512();
  for (size_t m = 0; m < M; ++m) {
    const uint8_t* t = lut8 + m * 256;
    const __m512i t0 = _mm512_loadu_si512(t), t1 = _mm512_loadu_si512(t + 64),
                  t2 = _mm512_loadu_si512(t + 128), t3 = _mm512_loadu_si512(t + 192);
    for (int p = 0; p < P; ++p) {
      const uint8_t* lo = b0 + 2 * p * bb + m * 32;
      const uint8_t* hi = p + 1 == P ? last1 + m * 32 : lo + bb;
      const __m512i c = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi)), 1);
      const __m512i v =
          _mm512_mask_blend_epi8(_mm512_movepi8_mask(c), _mm512_permutex2var_epi8(t0, c, t1),
                                 _mm512_permutex2var_epi8(t2, c, t3));
      even[p] = _mm512_add_epi16(even[p], _mm512_and_si512(v, low_byte));
      odd[p] = _mm512_add_epi16(odd[p], _mm512_srli_epi16(v, 8));
    }
  }
}

/// Vectors 0..63 of a pass's pair, in order: 16-bit lane i of `even` is vector 2i, of
/// `odd` 2i + 1; the unpacks interleave them per 128-bit lane, the qword permutes put
/// the lanes back in order.
inline void pq8_u8_store(__m512i even, __m512i odd, uint16_t* out, bool both) {
  const __m512i a = _mm512_unpacklo_epi16(even, odd), c = _mm512_unpackhi_epi16(even, odd);
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  _mm512_storeu_si512(out, _mm512_permutex2var_epi64(a, first, c));
  if (both) _mm512_storeu_si512(out + 32, _mm512_permutex2var_epi64(a, second, c));
}

bool pq8_byte_lut(const float* a, const float* b, size_t M, float* sum, uint8_t* q, double* stats) {
  float lo[257];
  float max_span = 0.f;
  double bias = 0.0, abs_sum = 0.0;
  __mmask16 bad = 0;
  for (size_t m = 0; m < M; ++m) {  // the table (a + b written out), its rows' ranges
    __m512 mn = _mm512_set1_ps(std::numeric_limits<float>::infinity());
    __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (size_t j = m * 256; j < m * 256 + 256; j += 16) {
      __m512 v = _mm512_loadu_ps(a + j);
      if (b) {
        v = _mm512_add_ps(v, _mm512_loadu_ps(b + j));
        _mm512_storeu_ps(sum + j, v);
      }
      bad = static_cast<__mmask16>(bad | _mm512_fpclass_ps_mask(v, 0x99));  // NaN, +-inf
      mn = _mm512_min_ps(mn, v);
      mx = _mm512_max_ps(mx, v);
    }
    const float l = _mm512_reduce_min_ps(mn), h = _mm512_reduce_max_ps(mx);
    lo[m] = l;
    max_span = std::max(max_span, h - l);
    bias += l;
    abs_sum += std::max(std::fabs(l), std::fabs(h));
  }
  if (bad || !std::isfinite(max_span)) return false;
  const float scale = max_span > 0.f ? 255.f / max_span : 1.f;
  const float* t = b ? sum : a;
  const __m512 sc = _mm512_set1_ps(scale), half = _mm512_set1_ps(0.5f);
  for (size_t m = 0; m < M; ++m) {
    const __m512 l = _mm512_set1_ps(lo[m]);
    for (size_t j = m * 256; j < m * 256 + 256; j += 16) {
      const __m512 x = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(t + j), l), sc, half);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + j),
                       _mm512_cvtusepi32_epi8(_mm512_cvttps_epi32(x)));
    }
  }
  stats[0] = scale;
  stats[1] = bias;
  stats[2] = abs_sum;
  return true;
}

void pq8_accumulate_u8(const uint8_t* blocks, size_t nblocks, size_t M, const uint8_t* lut8,
                       uint16_t* out) {
  const size_t bb = 32 * M;
  __m512i even[2], odd[2];
  size_t b = 0;
  for (; b + 4 <= nblocks; b += 4) {  // two pairs per pass: each table load serves 128 codes
    const uint8_t* b0 = blocks + b * bb;
    pq8_u8_pass<2>(b0, bb, b0 + 3 * bb, M, lut8, even, odd);
    for (int p = 0; p < 2; ++p) pq8_u8_store(even[p], odd[p], out + 32 * (b + 2 * p), true);
  }
  for (; b < nblocks; b += 2) {
    const uint8_t* b0 = blocks + b * bb;
    const bool both = b + 1 < nblocks;
    pq8_u8_pass<1>(b0, bb, both ? b0 + bb : b0, M, lut8, even, odd);
    pq8_u8_store(even[0], odd[0], out + 32 * b, both);
  }
}
#endif  // ANNX_AVX512_ICL

/// pq4 table rows, one 16-entry row per register.
bool pq4_lut_stats(const float* a, const float* b, size_t M, float* sum, float* mins, float* maxs) {
  __mmask16 bad = 0;
  for (size_t m = 0; m < M; ++m) {
    __m512 v = _mm512_loadu_ps(a + 16 * m);
    if (b) {
      v = _mm512_add_ps(v, _mm512_loadu_ps(b + 16 * m));
      _mm512_storeu_ps(sum + 16 * m, v);
    }
    bad = static_cast<__mmask16>(bad | _mm512_fpclass_ps_mask(v, 0x99));  // NaN, +-inf
    mins[m] = _mm512_reduce_min_ps(v);
    maxs[m] = _mm512_reduce_max_ps(v);
  }
  return bad == 0;
}

void pq4_quantize_rows(const float* rows, const float* mins, float scale, size_t M, uint8_t* q) {
  const __m512 s = _mm512_set1_ps(scale), half = _mm512_set1_ps(0.5f);
  const __m512 top = _mm512_set1_ps(255.f);
  for (size_t m = 0; m < M; ++m) {
    __m512 p =
        _mm512_mul_ps(s, _mm512_sub_ps(_mm512_loadu_ps(rows + 16 * m), _mm512_set1_ps(mins[m])));
    asm("" : "+v"(p));  // the product rounded on its own: no fused multiply-add
    const __m512i w = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_add_ps(p, half), top));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * m),
                     _mm512_cvtusepi32_epi8(_mm512_max_epi32(w, _mm512_setzero_si512())));
  }
}

void fill_table(simd::KernelTable& t) {
  t.isa = ANNX_AVX512_ICL ? simd::Isa::Avx512Icl : simd::Isa::Avx512;
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
#if ANNX_AVX512_ICL
  t.pq8_accumulate_u8 = &pq8_accumulate_u8;
  t.pq8_byte_lut = &pq8_byte_lut;
#endif
  t.pq4_accumulate_nq = &pq4_accumulate_nq;
  t.pq4_lut_stats = &pq4_lut_stats;
  t.pq4_quantize_rows = &pq4_quantize_rows;
  static_assert(kPanel % 16 == 0, "pack_f32_panel_t16 packs 16-row blocks");
  t.pack_f32_panel = &pack_f32_panel_t16;
}

}  // namespace annx::kernels::ANNX_AVX512_NS
