// AVX-512 kernels, compiled twice: once as the "avx512" level (F/BW/DQ/VL) and once
// as "avx512_icl" (adds VNNI and VPOPCNTDQ), see x86_avx512.cpp / x86_avx512_icl.cpp.
// The including TU defines ANNX_AVX512_NS and ANNX_AVX512_ICL (0 or 1) first.
#include <immintrin.h>

#include <cstring>

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
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
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
    const __mmask16 hit = _mm512_mask_cmp_ps_mask(live, _mm512_maskz_loadu_ps(live, v + i), t, _CMP_LE_OQ);
    if (hit) {
      _mm512_mask_compressstoreu_epi32(out + m, hit, idx);
      m += static_cast<size_t>(__builtin_popcount(hit));
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
  for (; i < nbytes; ++i) s0 += static_cast<uint64_t>(_mm_popcnt_u32(static_cast<unsigned>(a[i] ^ b[i])));
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

}  // namespace

void fill_table(simd::KernelTable& t) {
  t.isa = ANNX_AVX512_ICL ? simd::Isa::Avx512Icl : simd::Isa::Avx512;
  fill_float_kinds(t);
  t.select_le = &select_le;
  t.l2sq_i8 = &l2sq_i8;
  t.dot_i8 = &dot_i8;
  t.hamming = &hamming;
  t.hamming_many = &hamming_many;
  t.f32_to_f16 = &f32_to_f16;
  t.f16_to_f32 = &f16_to_f32;
}

}  // namespace annx::kernels::ANNX_AVX512_NS
