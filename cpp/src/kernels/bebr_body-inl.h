// Kernels of the binary codecs BIN / BEBR<L> (shared design algorithms.md section 7),
// written once and included by every ISA translation unit inside its anonymous
// namespace, after it defines `popcount64(uint64_t)` (the POPCNT instruction
// where the level has it, a bit-twiddling count in the portable baseline). No includes
// here: the TU includes <cstring> and kernels.h first.
//
// Code layout (annx/index/vector_codec.h): L float scales alpha_t, then |x^|^2, padded to
// 8 bytes; then L bit-planes of ceil(d / 64) little-endian words, bit i of plane t set
// when the level-t sign of dimension i is +1; pad bits are 0.
//
// Prepared query (4 header floats, then the payload):
//   h[0] = L, h[1] = metric (0 ip, 1 l2, 2 cos), h[2] = the query's squared norm
//   (|q^|^2 for SDC, |q|^2 for ADC), h[3] = sum of the query's values (ADC only);
//   SDC payload: the query's own code; ADC payload: ceil(d / 8) tables of 256 floats
//   (the sums of q over every bit pattern of each byte of dimensions).
// Value: the inner product for ip, the squared distance for l2, the cosine for cos,
// computed from dot = <q^, x^> (SDC) or <q, x^> (ADC); the codec negates similarities.

namespace bebr {

constexpr size_t kMaxL = 8;  // levels of BEBR8, the most a code has

inline size_t header_bytes(size_t L) { return ((L + 1) * 4 + 7) / 8 * 8; }
inline size_t words(size_t d) { return (d + 63) / 64; }
inline size_t code_bytes(size_t L, size_t d) { return header_bytes(L) + 8 * L * words(d); }
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline float finish(double dot, float qn2, float xn2, int metric) {
  if (metric == 1) return static_cast<float>(double{qn2} + double{xn2} - 2.0 * dot);
  if (metric == 2) {
    const double den = std::sqrt(double{qn2} * double{xn2});
    return den > 0 ? static_cast<float>(dot / den) : 0.f;
  }
  return static_cast<float>(dot);
}

/// Symmetric: sum over level pairs of alpha_t beta_u (d - 2 popcount(s_t xor s'_u)).
inline double sdc_dot(const uint8_t* qc, const uint8_t* xc, size_t L, size_t d) {
  const size_t W = words(d), H = header_bytes(L);
  float qa[8], xa[8];
  std::memcpy(qa, qc, 4 * L);
  std::memcpy(xa, xc, 4 * L);
  const uint8_t* qp = qc + H;
  const uint8_t* xp = xc + H;
  double dot = 0;
  for (size_t t = 0; t < L; ++t)
    for (size_t u = 0; u < L; ++u) {
      int pc = 0;
      for (size_t w = 0; w < W; ++w)
        pc += static_cast<int>(
            popcount64(load64(qp + 8 * (t * W + w)) ^ load64(xp + 8 * (u * W + w))));
      dot += double{qa[t]} * xa[u] * (static_cast<double>(d) - 2.0 * pc);
    }
  return dot;
}

/// Asymmetric: sum over levels of alpha_u (2 * sum of q over set bits - sum of q). The
/// sums over set bits come from the query's byte tables: lut[256 * j + v] is the sum of
/// q over the bits of v at dimensions 8j..8j+7 (built once per query by the codec).
inline double adc_dot(const float* lut, float qsum, const uint8_t* xc, size_t L, size_t d) {
  const size_t W = words(d), H = header_bytes(L), nb = (d + 7) / 8;
  float xa[8];
  std::memcpy(xa, xc, 4 * L);
  double dot = 0;
  for (size_t u = 0; u < L; ++u) {
    const uint8_t* plane = xc + H + 8 * u * W;
    float s0 = 0.f, s1 = 0.f;
    size_t j = 0;
    for (; j + 2 <= nb; j += 2) {
      s0 += lut[256 * j + plane[j]];
      s1 += lut[256 * (j + 1) + plane[j + 1]];
    }
    if (j < nb) s0 += lut[256 * j + plane[j]];
    dot += double{xa[u]} * (2.0 * double{s0 + s1} - qsum);
  }
  return dot;
}

template <bool ADC>
inline float one(const float* q, const void* x, size_t d) {
  const size_t L = static_cast<size_t>(q[0]);
  const auto* xc = static_cast<const uint8_t*>(x);
  float xn2;
  std::memcpy(&xn2, xc + 4 * L, 4);
  const double dot = ADC ? adc_dot(q + 4, q[3], xc, L, d)
                         : sdc_dot(reinterpret_cast<const uint8_t*>(q + 4), xc, L, d);
  return finish(dot, q[2], xn2, static_cast<int>(q[1]));
}

}  // namespace bebr

template <bool ADC>
float bebr_one(const float* q, const void* x, size_t d, const float* /*aux*/) {
  return bebr::one<ADC>(q, x, d);
}

namespace bebr {

/// One bit per dimension, symmetric: dot = alpha_q alpha_x (d - 2 Hamming). The common
/// 1-bit scan gets this tight loop: no level loops, metric fixed per call, and the word
/// count a compile-time constant up to 8 (d <= 512) so the XOR/POPCNT chain unrolls.
template <int METRIC, size_t WC>
inline void bin_sdc_rows(const float* q, const uint8_t* base, const uint32_t* rows, size_t n,
                         size_t stride, size_t d, size_t Wrt, float* out) {
  const size_t W = WC ? WC : Wrt;
  const uint8_t* qc = reinterpret_cast<const uint8_t*>(q + 4);
  float qa;
  std::memcpy(&qa, qc, 4);
  uint64_t qw[8];
  for (size_t w = 0; w < (WC ? WC : 0); ++w) qw[w] = load64(qc + 8 + 8 * w);
  const float qn2 = q[2], fd = static_cast<float>(d), inv_d = 1.f / fd;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* xc = base + (rows ? size_t{rows[i]} : i) * stride;
    float xa, xn2;
    std::memcpy(&xa, xc, 4);
    std::memcpy(&xn2, xc + 4, 4);
    int pc = 0;
    for (size_t w = 0; w < W; ++w)
      pc += static_cast<int>(
          popcount64((WC ? qw[w] : load64(qc + 8 + 8 * w)) ^ load64(xc + 8 + 8 * w)));
    // d - 2 pc is an exact integer in float for d < 2^24. With one level every
    // coordinate of x^ is +-alpha, so |x^| = alpha sqrt(d) and the cosine is (d - 2H) / d:
    // no square root per code.
    const float h = fd - 2.f * static_cast<float>(pc);
    if constexpr (METRIC == 2)
      out[i] = h * inv_d;
    else
      out[i] = finish(double{qa} * xa * h, qn2, xn2, METRIC);
  }
}

template <int METRIC>
inline void bin_sdc_dispatch(const float* q, const uint8_t* base, const uint32_t* rows, size_t n,
                             size_t stride, size_t d, float* out) {
  const size_t W = words(d);
  switch (W) {
    case 1: return bin_sdc_rows<METRIC, 1>(q, base, rows, n, stride, d, W, out);
    case 2: return bin_sdc_rows<METRIC, 2>(q, base, rows, n, stride, d, W, out);
    case 3: return bin_sdc_rows<METRIC, 3>(q, base, rows, n, stride, d, W, out);
    case 4: return bin_sdc_rows<METRIC, 4>(q, base, rows, n, stride, d, W, out);
    case 5: return bin_sdc_rows<METRIC, 5>(q, base, rows, n, stride, d, W, out);
    case 6: return bin_sdc_rows<METRIC, 6>(q, base, rows, n, stride, d, W, out);
    case 7: return bin_sdc_rows<METRIC, 7>(q, base, rows, n, stride, d, W, out);
    case 8: return bin_sdc_rows<METRIC, 8>(q, base, rows, n, stride, d, W, out);
    default: return bin_sdc_rows<METRIC, 0>(q, base, rows, n, stride, d, W, out);
  }
}

/// L levels, symmetric: the query's scales and planes are read once per call; the
/// L x L level pairs and the word loop (W <= 8 words, d <= 512) unroll, and the metric
/// is fixed per call. Float accumulation: each term is an integer times two scales.
template <int METRIC, size_t L, size_t WC>
inline void sdc_rows(const float* q, const uint8_t* base, const uint32_t* rows, size_t n,
                     size_t stride, size_t d, float* out) {
  const size_t W = WC ? WC : words(d), H = header_bytes(L);
  const uint8_t* qc = reinterpret_cast<const uint8_t*>(q + 4);
  float qa[L];
  std::memcpy(qa, qc, 4 * L);
  const uint8_t* qp = qc + H;
  const float qn2 = q[2], fd = static_cast<float>(d);
  const float inv_qn = qn2 > 0 ? 1.f / std::sqrt(qn2) : 0.f;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* xc = base + (rows ? size_t{rows[i]} : i) * stride;
    float xa[L], xn2;
    std::memcpy(xa, xc, 4 * L);
    std::memcpy(&xn2, xc + 4 * L, 4);
    const uint8_t* xp = xc + H;
    float dot = 0.f;
    for (size_t u = 0; u < L; ++u) {
      float row = 0.f;
      for (size_t t = 0; t < L; ++t) {
        int pc = 0;
        for (size_t w = 0; w < W; ++w)
          pc += static_cast<int>(
              popcount64(load64(qp + 8 * (t * W + w)) ^ load64(xp + 8 * (u * W + w))));
        row += qa[t] * (fd - 2.f * static_cast<float>(pc));
      }
      dot += row * xa[u];
    }
    if constexpr (METRIC == 1)
      out[i] = qn2 + xn2 - 2.f * dot;
    else if constexpr (METRIC == 2)
      out[i] = xn2 > 0 ? dot * inv_qn / std::sqrt(xn2) : 0.f;
    else
      out[i] = dot;
  }
}

template <int METRIC, size_t L>
inline void sdc_rows_w(const float* q, const uint8_t* base, const uint32_t* rows, size_t n,
                       size_t stride, size_t d, float* out) {
  switch (words(d)) {
    case 2: return sdc_rows<METRIC, L, 2>(q, base, rows, n, stride, d, out);
    case 4: return sdc_rows<METRIC, L, 4>(q, base, rows, n, stride, d, out);
    case 6: return sdc_rows<METRIC, L, 6>(q, base, rows, n, stride, d, out);
    case 8: return sdc_rows<METRIC, L, 8>(q, base, rows, n, stride, d, out);
    default: return sdc_rows<METRIC, L, 0>(q, base, rows, n, stride, d, out);
  }
}

template <int METRIC>
inline bool sdc_rows_l(const float* q, const uint8_t* base, const uint32_t* rows, size_t n,
                       size_t stride, size_t d, float* out) {
  switch (static_cast<int>(q[0])) {
    case 2: sdc_rows_w<METRIC, 2>(q, base, rows, n, stride, d, out); return true;
    case 4: sdc_rows_w<METRIC, 4>(q, base, rows, n, stride, d, out); return true;
    default: return false;
  }
}

/// Rows i (or rows[i]) of a code array; the 1-bit symmetric case has its own loop.
template <bool ADC>
inline void score_rows(const float* q, const uint8_t* base, const uint32_t* rows, size_t n,
                       size_t stride, size_t d, float* out) {
  if (!ADC && q[0] == 1.f) {
    switch (static_cast<int>(q[1])) {
      case 1: return bin_sdc_dispatch<1>(q, base, rows, n, stride, d, out);
      case 2: return bin_sdc_dispatch<2>(q, base, rows, n, stride, d, out);
      default: return bin_sdc_dispatch<0>(q, base, rows, n, stride, d, out);
    }
  }
  if (!ADC) {
    const int metric = static_cast<int>(q[1]);
    if (metric == 1   ? sdc_rows_l<1>(q, base, rows, n, stride, d, out)
        : metric == 2 ? sdc_rows_l<2>(q, base, rows, n, stride, d, out)
                      : sdc_rows_l<0>(q, base, rows, n, stride, d, out))
      return;
  }
  for (size_t i = 0; i < n; ++i)
    out[i] = one<ADC>(q, base + (rows ? size_t{rows[i]} : i) * stride, d);
}

}  // namespace bebr

// ---- Batched symmetric scan: several queries per pass over the codes ----------------
//
// Rows are taken 8 at a time and transposed into plane-word-major order
// (xt[(u * W + w) * 8 + lane]), so one SIMD register holds word w of plane u of 8 codes
// and each query word is broadcast against it: the popcounts of all L x L level pairs of
// 8 codes come out lane-wise with no horizontal sums. The transposed block is reused by
// every query of the tile. The integer pair counts are then turned into scores by the
// same float (or double) expressions, in the same order, as the one-query loops above,
// so the results are bit-identical to many[BEBR_SDC] on every ISA level (-ffp-contract=off).

namespace bebr {

constexpr size_t kLanes = 8;

/// pcs[(t * L + u) * 8 + lane] = popcount(q plane t XOR x plane u of row `lane`).
/// SIMD translation units (simd_body-inl.h defines ANNX_BEBR_SIMD) use their popcount
/// instructions; the scalar reference (which may be built for a baseline that has them)
/// keeps the portable loop.
template <size_t LC>
inline void pair_counts8(const uint64_t* qw, const uint64_t* xt, size_t Lrt, size_t W,
                         int32_t* pcs) {
  const size_t L = LC ? LC : Lrt;
#if defined(ANNX_BEBR_SIMD) && defined(__AVX512VPOPCNTDQ__) && defined(__AVX512F__)
  // VPOPCNTQ: 8 codes' words per instruction; L accumulators per query level.
  for (size_t t = 0; t < L; ++t) {
    __m512i acc[LC ? LC : kMaxL];
    for (size_t u = 0; u < L; ++u) acc[u] = _mm512_setzero_si512();
    for (size_t w = 0; w < W; ++w) {
      const __m512i qb = _mm512_set1_epi64(static_cast<long long>(qw[t * W + w]));
      for (size_t u = 0; u < L; ++u) {
        const __m512i xv = _mm512_loadu_si512(xt + (u * W + w) * kLanes);
        acc[u] = _mm512_add_epi64(acc[u], _mm512_popcnt_epi64(_mm512_xor_si512(qb, xv)));
      }
    }
    for (size_t u = 0; u < L; ++u)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(pcs + (t * L + u) * kLanes),
                          _mm512_cvtepi64_epi32(acc[u]));
  }
#elif defined(ANNX_BEBR_SIMD) && defined(__AVX2__)
  // Nibble-table popcount (VPSHUFB) on 4 codes per register, byte counts summed with
  // VPSADBW; bytes are flushed every 31 words (8 bits per word, 255 per byte lane).
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                       1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
  for (size_t t = 0; t < L; ++t)
    for (size_t u = 0; u < L; ++u) {
      __m256i s0 = zero, s1 = zero;
      for (size_t w0 = 0; w0 < W; w0 += 31) {
        __m256i b0 = zero, b1 = zero;
        const size_t we = W - w0 < 31 ? W : w0 + 31;
        for (size_t w = w0; w < we; ++w) {
          const __m256i qb = _mm256_set1_epi64x(static_cast<long long>(qw[t * W + w]));
          const uint64_t* xv = xt + (u * W + w) * kLanes;
          const __m256i v0 =
              _mm256_xor_si256(qb, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xv)));
          const __m256i v1 =
              _mm256_xor_si256(qb, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xv + 4)));
          b0 = _mm256_add_epi8(
              b0, _mm256_add_epi8(
                      _mm256_shuffle_epi8(lut, _mm256_and_si256(v0, low)),
                      _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v0, 4), low))));
          b1 = _mm256_add_epi8(
              b1, _mm256_add_epi8(
                      _mm256_shuffle_epi8(lut, _mm256_and_si256(v1, low)),
                      _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v1, 4), low))));
        }
        s0 = _mm256_add_epi64(s0, _mm256_sad_epu8(b0, zero));
        s1 = _mm256_add_epi64(s1, _mm256_sad_epu8(b1, zero));
      }
      // The low 32 bits of each 64-bit sum, lanes 0..7.
      const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
      const __m128i lo = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(s0, idx));
      const __m128i hi = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(s1, idx));
      int32_t* p = pcs + (t * L + u) * kLanes;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), lo);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + 4), hi);
    }
#elif defined(ANNX_BEBR_SIMD) && defined(__aarch64__)
  // CNT (vcntq_u8) on 2 codes per register; byte counts widened every 31 words.
  for (size_t t = 0; t < L; ++t)
    for (size_t u = 0; u < L; ++u) {
      uint64x2_t s[4] = {vdupq_n_u64(0), vdupq_n_u64(0), vdupq_n_u64(0), vdupq_n_u64(0)};
      for (size_t w0 = 0; w0 < W; w0 += 31) {
        uint8x16_t b[4] = {vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0)};
        const size_t we = W - w0 < 31 ? W : w0 + 31;
        for (size_t w = w0; w < we; ++w) {
          const uint64x2_t qb = vdupq_n_u64(qw[t * W + w]);
          const uint64_t* xv = xt + (u * W + w) * kLanes;
          for (int g = 0; g < 4; ++g)
            b[g] = vaddq_u8(b[g],
                            vcntq_u8(vreinterpretq_u8_u64(veorq_u64(qb, vld1q_u64(xv + 2 * g)))));
        }
        for (int g = 0; g < 4; ++g)
          s[g] = vaddq_u64(s[g], vpaddlq_u32(vpaddlq_u16(vpaddlq_u8(b[g]))));
      }
      int32_t* p = pcs + (t * L + u) * kLanes;
      for (int g = 0; g < 4; ++g) {
        p[2 * g] = static_cast<int32_t>(vgetq_lane_u64(s[g], 0));
        p[2 * g + 1] = static_cast<int32_t>(vgetq_lane_u64(s[g], 1));
      }
    }
#else
  for (size_t t = 0; t < L; ++t)
    for (size_t u = 0; u < L; ++u) {
      int32_t acc[kLanes] = {};
      for (size_t w = 0; w < W; ++w) {
        const uint64_t qv = qw[t * W + w];
        const uint64_t* xv = xt + (u * W + w) * kLanes;
        for (size_t lane = 0; lane < kLanes; ++lane)
          acc[lane] += static_cast<int32_t>(popcount64(qv ^ xv[lane]));
      }
      std::memcpy(pcs + (t * L + u) * kLanes, acc, sizeof acc);
    }
#endif
}

/// Scores of one query against a transposed block, from its pair counts: the expressions
/// of bin_sdc_rows (L = 1), sdc_rows (L = 2, 4) and sdc_dot + finish (other L), per lane,
/// on 8-lane vectors (GCC vector extensions: the same element-wise IEEE operations).
/// sx[i] = sqrt(xn2[i]) (precomputed per block for the cosine).
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));

// Macros, not functions: a vector argument or return value would change the ABI where
// the baseline lacks AVX (-Wpsabi); everything here is inlined anyway.
#define ANNX_LOAD8F(v, p) std::memcpy(&(v), (p), sizeof(v8f))
#define ANNX_COUNTS8(v, p)                  \
  do {                                      \
    v8i c_;                                 \
    std::memcpy(&c_, (p), sizeof c_);       \
    (v) = __builtin_convertvector(c_, v8f); \
  } while (0)

template <size_t LC>
inline void finish8(const int32_t* pcs, const float* q, size_t Lrt, const float* xa,
                    const float* xn2, const float* sx, size_t d, float* dst) {
  const size_t L = LC ? LC : Lrt;
  const int metric = static_cast<int>(q[1]);
  const float qn2 = q[2];
  float qa[kMaxL];
  std::memcpy(qa, q + 4, 4 * L);
  const float fd = static_cast<float>(d);
  if (L == 1) {
    v8f h;
    ANNX_COUNTS8(h, pcs);
    h = fd - 2.f * h;
    if (metric == 2) {
      const v8f r = h * (1.f / fd);
      std::memcpy(dst, &r, sizeof r);
    } else {
      // finish(double{qa} * xa * h, ...) of bin_sdc_rows, on double vectors.
      v8f xv, xn;
      ANNX_LOAD8F(xv, xa);
      ANNX_LOAD8F(xn, xn2);
      const v8d dot =
          double{qa[0]} * __builtin_convertvector(xv, v8d) * __builtin_convertvector(h, v8d);
      const v8f r = metric == 1
                        ? __builtin_convertvector(
                              double{qn2} + __builtin_convertvector(xn, v8d) - 2.0 * dot, v8f)
                        : __builtin_convertvector(dot, v8f);
      std::memcpy(dst, &r, sizeof r);
    }
  } else if (L == 2 || L == 4) {
    v8f dot = {};
    for (size_t u = 0; u < L; ++u) {
      v8f row = {};
      for (size_t t = 0; t < L; ++t) {
        v8f c;
        ANNX_COUNTS8(c, pcs + (t * L + u) * kLanes);
        row += qa[t] * (fd - 2.f * c);
      }
      v8f a;
      ANNX_LOAD8F(a, xa + u * kLanes);
      dot += row * a;
    }
    v8f r, xn;
    ANNX_LOAD8F(xn, xn2);
    if (metric == 1) {
      r = qn2 + xn - 2.f * dot;
    } else if (metric == 2) {
      const float inv_qn = qn2 > 0 ? 1.f / std::sqrt(qn2) : 0.f;
      v8f sv;
      ANNX_LOAD8F(sv, sx);
      const v8f v = dot * inv_qn / sv;
      const v8f zero = {};
      r = xn > 0.f ? v : zero;
    } else {
      r = dot;
    }
    std::memcpy(dst, &r, sizeof r);
  } else {
    for (size_t i = 0; i < kLanes; ++i) {
      double dot = 0;
      for (size_t t = 0; t < L; ++t)
        for (size_t u = 0; u < L; ++u)
          dot += double{qa[t]} * xa[u * kLanes + i] *
                 (static_cast<double>(d) - 2.0 * pcs[(t * L + u) * kLanes + i]);
      dst[i] = finish(dot, qn2, xn2[i], metric);
    }
  }
}

#undef ANNX_LOAD8F
#undef ANNX_COUNTS8

template <size_t LC>
void sdc_tile_l(const float* const* qs, size_t nq, const uint8_t* x, size_t n, size_t stride,
                size_t d, size_t Lrt, float* out, size_t out_stride) {
  const size_t L = LC ? LC : Lrt, W = words(d), H = header_bytes(L), LW = L * W;
  struct Buf {  // no <vector> here (see the top of the file)
    uint64_t* p;
    ~Buf() { delete[] p; }
  } qw{new uint64_t[nq * LW]}, xt{new uint64_t[LW * kLanes]};
  for (size_t a = 0; a < nq; ++a) {
    const uint8_t* qc = reinterpret_cast<const uint8_t*>(qs[a] + 4) + H;
    for (size_t j = 0; j < LW; ++j) qw.p[a * LW + j] = load64(qc + 8 * j);
  }
  int32_t pcs[kMaxL * kMaxL * kLanes];
  float xa[kMaxL * kLanes], xn2[kLanes], sx[kLanes], dst[kLanes];
  for (size_t r0 = 0; r0 < n; r0 += kLanes) {
    const size_t m = n - r0 < kLanes ? n - r0 : kLanes;
    for (size_t i = 0; i < kLanes; ++i) {
      if (i < m) {
        const uint8_t* c = x + (r0 + i) * stride;
        for (size_t u = 0; u < L; ++u) std::memcpy(xa + u * kLanes + i, c + 4 * u, 4);
        std::memcpy(xn2 + i, c + 4 * L, 4);
        for (size_t j = 0; j < LW; ++j) xt.p[j * kLanes + i] = load64(c + H + 8 * j);
      } else {
        for (size_t u = 0; u < L; ++u) xa[u * kLanes + i] = 0.f;
        xn2[i] = 0.f;
        for (size_t j = 0; j < LW; ++j) xt.p[j * kLanes + i] = 0;
      }
      sx[i] = xn2[i] > 0 ? std::sqrt(xn2[i]) : 1.f;  // lanes with xn2 == 0 score 0
    }
    for (size_t a = 0; a < nq; ++a) {
      pair_counts8<LC>(qw.p + a * LW, xt.p, L, W, pcs);
      float* o = out + a * out_stride + r0;
      if (m == kLanes) {
        finish8<LC>(pcs, qs[a], L, xa, xn2, sx, d, o);  // straight to the output (no reload)
      } else {
        finish8<LC>(pcs, qs[a], L, xa, xn2, sx, d, dst);
        for (size_t i = 0; i < m; ++i) o[i] = dst[i];
      }
    }
  }
}

inline void sdc_tile(const float* const* qs, size_t nq, const void* x, size_t n, size_t stride,
                     size_t d, float* out, size_t out_stride) {
  if (nq == 0 || n == 0) return;
  const auto* xc = static_cast<const uint8_t*>(x);
  switch (const size_t L = static_cast<size_t>(qs[0][0])) {
    case 1: return sdc_tile_l<1>(qs, nq, xc, n, stride, d, L, out, out_stride);
    case 2: return sdc_tile_l<2>(qs, nq, xc, n, stride, d, L, out, out_stride);
    case 3: return sdc_tile_l<3>(qs, nq, xc, n, stride, d, L, out, out_stride);
    case 4: return sdc_tile_l<4>(qs, nq, xc, n, stride, d, L, out, out_stride);
    default: return sdc_tile_l<0>(qs, nq, xc, n, stride, d, L, out, out_stride);
  }
}

}  // namespace bebr

template <bool ADC>
void bebr_many(const float* q, const void* x, size_t n, size_t d, const float* /*aux*/,
               float* out) {
  const size_t cs = bebr::code_bytes(static_cast<size_t>(q[0]), d);
  bebr::score_rows<ADC>(q, static_cast<const uint8_t*>(x), nullptr, n, cs, d, out);
}

template <bool ADC>
void bebr_gather(const float* q, const void* x, const uint32_t* rows, size_t n, size_t stride,
                 size_t d, const float* /*aux*/, float* out) {
  bebr::score_rows<ADC>(q, static_cast<const uint8_t*>(x), rows, n, stride, d, out);
}

inline void fill_bebr_kinds(simd::KernelTable& t) {
  const int sdc = static_cast<int>(simd::DistKind::BEBR_SDC);
  const int adc = static_cast<int>(simd::DistKind::BEBR_ADC);
  t.one[sdc] = &bebr_one<false>;
  t.many[sdc] = &bebr_many<false>;
  t.gather[sdc] = &bebr_gather<false>;
  t.one[adc] = &bebr_one<true>;
  t.many[adc] = &bebr_many<true>;
  t.gather[adc] = &bebr_gather<true>;
  t.bebr_sdc_tile = &bebr::sdc_tile;
}
