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
//   h[0] = L, the codes' levels; h[1] = metric (0 ip, 1 l2, 2 cos); h[2] = the query's
//   squared norm (|q^|^2 for SDC, |q|^2 for ADC); h[3] = LQ, the query code's levels.
//   Payload: a code of LQ levels in the layout above. SDC: the query's own code (LQ = L).
//   ADC: the query quantized to B = kBebrAdcQueryBits bits per dimension, q ~ lo + step u,
//   written as LQ = B + 1 sign levels (a constant level, all bits 0, scale -(lo + step
//   (2^B - 1) / 2), then bit b of u with scale step 2^b / 2; VectorCodec::prepare), so
//   both are one sum over level pairs of popcounts. The kernels rely on that structure
//   (adc_score; the tile kernel takes level 0's counts as the codes' popcounts).
// Value: the inner product for ip, the squared distance for l2, the cosine for cos,
// computed from dot = <q^, x^> (SDC) or <q_B, x^> (ADC); the codec negates similarities
// (the tile kernel does on request: its `negate` flag).

namespace bebr {

constexpr size_t kMaxL = 8;  // levels of BEBR8 (and of an ADC query), the most a code has
constexpr size_t kAdcL = simd::kBebrAdcQueryBits + 1;  // an ADC query's levels
static_assert(kAdcL <= kMaxL, "an ADC query code must fit the level arrays");

inline size_t header_bytes(size_t L) { return ((L + 1) * 4 + 7) / 8 * 8; }
inline size_t words(size_t d) { return (d + 63) / 64; }
inline size_t code_bytes(size_t L, size_t d) { return header_bytes(L) + 8 * L * words(d); }
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline size_t query_levels(const float* q) { return static_cast<size_t>(q[3]); }

inline float finish(double dot, float qn2, float xn2, int metric) {
  if (metric == 1) return static_cast<float>(double{qn2} + double{xn2} - 2.0 * dot);
  if (metric == 2) {
    const double den = std::sqrt(double{qn2} * double{xn2});
    return den > 0 ? static_cast<float>(dot / den) : 0.f;
  }
  return static_cast<float>(dot);
}

/// popcount(query plane t XOR code plane u) over the W words of a plane.
inline int plane_pair_count(const uint8_t* qp, size_t t, const uint8_t* xp, size_t u, size_t W) {
  int pc = 0;
  for (size_t w = 0; w < W; ++w)
    pc += static_cast<int>(popcount64(load64(qp + 8 * (t * W + w)) ^ load64(xp + 8 * (u * W + w))));
  return pc;
}

/// Symmetric (LQ = L): sum over level pairs of alpha_t beta_u (d - 2 popcount(s_t xor
/// s'_u)), in double.
inline double sdc_dot(const uint8_t* qc, const uint8_t* xc, size_t L, size_t d) {
  const size_t W = words(d), H = header_bytes(L);
  float qa[kMaxL], xa[kMaxL];
  std::memcpy(qa, qc, 4 * L);
  std::memcpy(xa, xc, 4 * L);
  double dot = 0;
  for (size_t t = 0; t < L; ++t)
    for (size_t u = 0; u < L; ++u)
      dot += double{qa[t]} * xa[u] *
             (static_cast<double>(d) - 2.0 * plane_pair_count(qc + H, t, xc + H, u, W));
  return dot;
}

/// The float expression shared by the L = 2, 4 symmetric loops here and in the tile
/// kernel (finish_block), so that both give the same bits: dot = sum_u xa[u] * sum_t qa[t]
/// (d - 2 pc(t, u)); then the metric. The cosine multiplies by 1 / |x^| (the tile computes
/// it once per code for all its queries) rather than dividing per query and code.
inline float inv_norm(float xn2) { return xn2 > 0 ? 1.f / std::sqrt(xn2) : 0.f; }
inline float float_finish(float dot, float qn2, float xn2, int metric) {
  if (metric == 1) return qn2 + xn2 - 2.f * dot;
  if (metric == 2) return xn2 > 0 ? dot * inv_norm(qn2) * inv_norm(xn2) : 0.f;
  return dot;
}

inline float float_dot(const uint8_t* qc, const uint8_t* xc, size_t L, size_t d) {
  const size_t W = words(d), H = header_bytes(L);
  float qa[kMaxL], xa[kMaxL];
  std::memcpy(qa, qc, 4 * L);
  std::memcpy(xa, xc, 4 * L);
  const float fd = static_cast<float>(d);
  float dot = 0.f;
  for (size_t u = 0; u < L; ++u) {
    float row = 0.f;
    for (size_t t = 0; t < L; ++t)
      row += qa[t] * (fd - 2.f * static_cast<float>(plane_pair_count(qc + H, t, xc + H, u, W)));
    dot += row * xa[u];
  }
  return dot;
}

/// Asymmetric score from the pair counts pc(t, u) = pc[(t * L + u) * ps] of the query's
/// LQ levels (level 0 the constant, scale c0; level 1 + b bit b of u, scale half 2^b: see
/// VectorCodec::prepare) against the code's L levels (scales xa[u * xs]). Per code level,
/// half S_u + c0 K_u with the integers S_u = sum_b 2^b (d - 2 pc(1 + b, u)) and
/// K_u = d - 2 pc(0, u): both products exact in double, so one rounding whatever the
/// compiler fuses; rounded to float, its product with xa[u] is exact in double again.
/// The one-query loops and the tile kernel call this same function per code, so their
/// results agree bit for bit.
inline float adc_score(const int32_t* pc, size_t ps, const float* qa, size_t LQ, const float* xa,
                       size_t xs, size_t L, float qn2, float xn2, size_t d, int metric) {
  // |S_u| <= (2^B - 1) d fits int32 for d < 2^25.
  const int32_t id = static_cast<int32_t>(d);
  double dot = 0;
  for (size_t u = 0; u < L; ++u) {
    int32_t S = 0;
    for (size_t b = 1; b < LQ; ++b) S += (id - 2 * pc[(b * L + u) * ps]) * (int32_t{1} << (b - 1));
    const int32_t K = id - 2 * pc[u * ps];
    const float r = static_cast<float>(double{qa[1]} * static_cast<double>(S) + double{qa[0]} * K);
    dot += double{xa[u * xs]} * r;
  }
  return finish(dot, qn2, xn2, metric);
}

inline float one(const float* q, const void* x, size_t d) {
  const size_t L = static_cast<size_t>(q[0]), LQ = query_levels(q);
  const auto* xc = static_cast<const uint8_t*>(x);
  const auto* qc = reinterpret_cast<const uint8_t*>(q + 4);
  float xn2;
  std::memcpy(&xn2, xc + 4 * L, 4);
  const int metric = static_cast<int>(q[1]);
  if (LQ != L) {
    const size_t W = words(d), HQ = header_bytes(LQ), H = header_bytes(L);
    int32_t pc[kMaxL * kMaxL];
    for (size_t t = 0; t < LQ; ++t)
      for (size_t u = 0; u < L; ++u) pc[t * L + u] = plane_pair_count(qc + HQ, t, xc + H, u, W);
    float qa[kMaxL], xa[kMaxL];
    std::memcpy(qa, qc, 4 * LQ);
    std::memcpy(xa, xc, 4 * L);
    return adc_score(pc, 1, qa, LQ, xa, 1, L, q[2], xn2, d, metric);
  }
  if (L == 2 || L == 4) return float_finish(float_dot(qc, xc, L, d), q[2], xn2, metric);
  if (L == 1) {  // bin_sdc_rows' expression
    float qa, xa;
    std::memcpy(&qa, qc, 4);
    std::memcpy(&xa, xc, 4);
    const float fd = static_cast<float>(d);
    const float h = fd - 2.f * static_cast<float>(plane_pair_count(qc + 8, 0, xc + 8, 0, words(d)));
    if (metric == 2) return h * (1.f / fd);
    return finish(double{qa} * xa * h, q[2], xn2, metric);
  }
  return finish(sdc_dot(qc, xc, L, d), q[2], xn2, metric);
}

}  // namespace bebr

inline float bebr_one(const float* q, const void* x, size_t d, const float* /*aux*/) {
  return bebr::one(q, x, d);
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

/// LQ query levels against L code levels (float_dot's expression when symmetric,
/// adc_score's when not): the query's scales and planes are read once per call; the level
/// pairs and the word loop (W <= 8 words, d <= 512) unroll, and the metric is fixed per
/// call.
template <int METRIC, size_t LQ, size_t L, size_t WC>
inline void pair_rows(const float* q, const uint8_t* base, const uint32_t* rows, size_t n,
                      size_t stride, size_t d, float* out) {
  const size_t W = WC ? WC : words(d), HQ = header_bytes(LQ), H = header_bytes(L);
  const uint8_t* qc = reinterpret_cast<const uint8_t*>(q + 4);
  float qa[LQ];
  std::memcpy(qa, qc, 4 * LQ);
  const uint8_t* qp = qc + HQ;
  const float qn2 = q[2], fd = static_cast<float>(d);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* xc = base + (rows ? size_t{rows[i]} : i) * stride;
    float xa[L], xn2;
    std::memcpy(xa, xc, 4 * L);
    std::memcpy(&xn2, xc + 4 * L, 4);
    const uint8_t* xp = xc + H;
    int32_t pc[LQ * L];
    for (size_t t = 0; t < LQ; ++t)
      for (size_t u = 0; u < L; ++u) {
        int c = 0;
        for (size_t w = 0; w < W; ++w)
          c += static_cast<int>(
              popcount64(load64(qp + 8 * (t * W + w)) ^ load64(xp + 8 * (u * W + w))));
        pc[t * L + u] = c;
      }
    if constexpr (LQ != L) {
      out[i] = adc_score(pc, 1, qa, LQ, xa, 1, L, qn2, xn2, d, METRIC);
    } else {
      float dot = 0.f;
      for (size_t u = 0; u < L; ++u) {
        float row = 0.f;
        for (size_t t = 0; t < LQ; ++t)
          row += qa[t] * (fd - 2.f * static_cast<float>(pc[t * L + u]));
        dot += row * xa[u];
      }
      out[i] = float_finish(dot, qn2, xn2, METRIC);
    }
  }
}

template <int METRIC, size_t LQ, size_t L>
inline void pair_rows_w(const float* q, const uint8_t* base, const uint32_t* rows, size_t n,
                        size_t stride, size_t d, float* out) {
  switch (words(d)) {
    case 1: return pair_rows<METRIC, LQ, L, 1>(q, base, rows, n, stride, d, out);
    case 2: return pair_rows<METRIC, LQ, L, 2>(q, base, rows, n, stride, d, out);
    case 4: return pair_rows<METRIC, LQ, L, 4>(q, base, rows, n, stride, d, out);
    case 6: return pair_rows<METRIC, LQ, L, 6>(q, base, rows, n, stride, d, out);
    case 8: return pair_rows<METRIC, LQ, L, 8>(q, base, rows, n, stride, d, out);
    default: return pair_rows<METRIC, LQ, L, 0>(q, base, rows, n, stride, d, out);
  }
}

/// The unrolled loops: symmetric L = 2, 4 and asymmetric L = 1, 2, 4; false for others.
template <int METRIC>
inline bool pair_rows_l(const float* q, const uint8_t* base, const uint32_t* rows, size_t n,
                        size_t stride, size_t d, float* out) {
  const size_t L = static_cast<size_t>(q[0]), LQ = query_levels(q);
  if (LQ == L) {
    if (L == 2) return pair_rows_w<METRIC, 2, 2>(q, base, rows, n, stride, d, out), true;
    if (L == 4) return pair_rows_w<METRIC, 4, 4>(q, base, rows, n, stride, d, out), true;
  } else if (LQ == kAdcL) {
    if (L == 1) return pair_rows_w<METRIC, kAdcL, 1>(q, base, rows, n, stride, d, out), true;
    if (L == 2) return pair_rows_w<METRIC, kAdcL, 2>(q, base, rows, n, stride, d, out), true;
    if (L == 4) return pair_rows_w<METRIC, kAdcL, 4>(q, base, rows, n, stride, d, out), true;
  }
  return false;
}

/// Rows i (or rows[i]) of a code array; the 1-bit symmetric case has its own loop.
inline void score_rows(const float* q, const uint8_t* base, const uint32_t* rows, size_t n,
                       size_t stride, size_t d, float* out) {
  const int metric = static_cast<int>(q[1]);
  if (q[0] == 1.f && query_levels(q) == 1) {
    switch (metric) {
      case 1: return bin_sdc_dispatch<1>(q, base, rows, n, stride, d, out);
      case 2: return bin_sdc_dispatch<2>(q, base, rows, n, stride, d, out);
      default: return bin_sdc_dispatch<0>(q, base, rows, n, stride, d, out);
    }
  }
  if (metric == 1   ? pair_rows_l<1>(q, base, rows, n, stride, d, out)
      : metric == 2 ? pair_rows_l<2>(q, base, rows, n, stride, d, out)
                    : pair_rows_l<0>(q, base, rows, n, stride, d, out))
    return;
  for (size_t i = 0; i < n; ++i) out[i] = one(q, base + (rows ? size_t{rows[i]} : i) * stride, d);
}

}  // namespace bebr

// ---- Batched scan: several queries per pass over the codes ---------------------------
//
// Rows are taken kLanes at a time and transposed into plane-word-major order
// (xt[(u * WT + w) * kLanes + lane], WT words of TWord per plane), so one SIMD register
// holds word w of plane u of kLanes codes and each query word is broadcast against it:
// the popcounts of all LQ x L level pairs of the block come out lane-wise with no
// horizontal sums. The transposed block is reused by every query of the tile. The
// integer pair counts are then turned into scores by the same float (or double)
// expressions, in the same order, as the one-query loops above, so the results are
// bit-identical to many[] on every ISA level. (GCC on x86 contracts multiply-adds in the
// float expressions of both alike; AArch64 builds with -ffp-contract=off. The tests
// compare the two on every level.)
//
// AVX-512 VPOPCNTDQ takes 16 codes per block in 32-bit words: VPOPCNTD counts as many
// bits per instruction as VPOPCNTQ, but the counts come out as 16 int32 lanes, so the
// finish runs on full 16-lane float registers (half the instructions per code of an
// 8-lane finish, which on this path competes with the popcounts for the same two ports).
// Other levels take 8 codes in 64-bit words.

namespace bebr {

#if defined(ANNX_BEBR_SIMD) && defined(__AVX512VPOPCNTDQ__) && defined(__AVX512F__)
#define ANNX_BEBR_LANES16 1
constexpr size_t kLanes = 16;
using TWord = uint32_t;
#else
constexpr size_t kLanes = 8;
using TWord = uint64_t;
#endif
constexpr size_t kWordsPerQword = 8 / sizeof(TWord);

inline TWord load_word(const uint8_t* p) {
  TWord v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// pcs[(t * L + u) * kLanes + lane] = popcount(q plane t XOR x plane u of row `lane`),
/// for t < LQ query planes and u < L code planes, over WT words of each plane.
/// SIMD translation units (simd_body-inl.h defines ANNX_BEBR_SIMD) use their popcount
/// instructions; the scalar reference (which may be built for a baseline that has them)
/// keeps the portable loop.
template <size_t LQC, size_t LC>
inline void pair_counts(const TWord* qw, const TWord* xt, size_t LQrt, size_t Lrt, size_t WT,
                        int32_t* pcs) {
  const size_t LQ = LQC ? LQC : LQrt, L = LC ? LC : Lrt;
#if defined(ANNX_BEBR_LANES16)
  // VPOPCNTD: 16 codes' words per instruction.
  if constexpr (LQC && LC && LQC * LC <= 16) {
    // Every level pair in one pass over the words (LQ x L accumulators stay in registers):
    // each code word is loaded once and the loop overhead is shared by all pairs.
    __m512i acc[LQC * LC];
    for (size_t p = 0; p < LQC * LC; ++p) acc[p] = _mm512_setzero_si512();
    for (size_t w = 0; w < WT; ++w) {
      __m512i xv[LC];
      for (size_t u = 0; u < LC; ++u) xv[u] = _mm512_loadu_si512(xt + (u * WT + w) * kLanes);
      for (size_t t = 0; t < LQC; ++t) {
        const __m512i qb = _mm512_set1_epi32(static_cast<int>(qw[t * WT + w]));
        for (size_t u = 0; u < LC; ++u)
          acc[t * LC + u] =
              _mm512_add_epi32(_mm512_popcnt_epi32(_mm512_xor_si512(qb, xv[u])), acc[t * LC + u]);
      }
    }
    for (size_t p = 0; p < LQC * LC; ++p) _mm512_storeu_si512(pcs + p * kLanes, acc[p]);
    return;
  }
  // Otherwise L accumulators per query level.
  for (size_t t = 0; t < LQ; ++t) {
    __m512i acc[LC ? LC : kMaxL];
    for (size_t u = 0; u < L; ++u) acc[u] = _mm512_setzero_si512();
    for (size_t w = 0; w < WT; ++w) {
      const __m512i qb = _mm512_set1_epi32(static_cast<int>(qw[t * WT + w]));
      for (size_t u = 0; u < L; ++u) {
        const __m512i xv = _mm512_loadu_si512(xt + (u * WT + w) * kLanes);
        acc[u] = _mm512_add_epi32(acc[u], _mm512_popcnt_epi32(_mm512_xor_si512(qb, xv)));
      }
    }
    for (size_t u = 0; u < L; ++u) _mm512_storeu_si512(pcs + (t * L + u) * kLanes, acc[u]);
  }
#elif defined(ANNX_BEBR_SIMD) && defined(__AVX2__)
  static_assert(kLanes == 8 && sizeof(TWord) == 8, "the AVX2 loop takes 8 codes of 64-bit words");
  // Nibble-table popcount (VPSHUFB) on 4 codes per register, byte counts summed with
  // VPSADBW; bytes are flushed every 31 words (8 bits per word, 255 per byte lane).
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                       1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
  for (size_t t = 0; t < LQ; ++t)
    for (size_t u = 0; u < L; ++u) {
      __m256i s0 = zero, s1 = zero;
      for (size_t w0 = 0; w0 < WT; w0 += 31) {
        __m256i b0 = zero, b1 = zero;
        const size_t we = WT - w0 < 31 ? WT : w0 + 31;
        for (size_t w = w0; w < we; ++w) {
          const __m256i qb = _mm256_set1_epi64x(static_cast<long long>(qw[t * WT + w]));
          const TWord* xv = xt + (u * WT + w) * kLanes;
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
  static_assert(kLanes == 8 && sizeof(TWord) == 8, "the NEON loop takes 8 codes of 64-bit words");
  // CNT (vcntq_u8) on 2 codes per register; byte counts widened every 31 words.
  for (size_t t = 0; t < LQ; ++t)
    for (size_t u = 0; u < L; ++u) {
      uint64x2_t s[4] = {vdupq_n_u64(0), vdupq_n_u64(0), vdupq_n_u64(0), vdupq_n_u64(0)};
      for (size_t w0 = 0; w0 < WT; w0 += 31) {
        uint8x16_t b[4] = {vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0)};
        const size_t we = WT - w0 < 31 ? WT : w0 + 31;
        for (size_t w = w0; w < we; ++w) {
          const uint64x2_t qb = vdupq_n_u64(qw[t * WT + w]);
          const TWord* xv = xt + (u * WT + w) * kLanes;
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
  for (size_t t = 0; t < LQ; ++t)
    for (size_t u = 0; u < L; ++u) {
      int32_t acc[kLanes] = {};
      for (size_t w = 0; w < WT; ++w) {
        const TWord qv = qw[t * WT + w];
        const TWord* xv = xt + (u * WT + w) * kLanes;
        for (size_t lane = 0; lane < kLanes; ++lane)
          acc[lane] += static_cast<int32_t>(popcount64(qv ^ xv[lane]));
      }
      std::memcpy(pcs + (t * L + u) * kLanes, acc, sizeof acc);
    }
#endif
}

/// Scores of one query against a transposed block, from its pair counts: the expressions
/// of bin_sdc_rows (L = 1), pair_rows / float_finish (L = 2, 4), adc_score (asymmetric)
/// and sdc_dot + finish (other L), per lane, on kLanes-wide vectors (GCC vector
/// extensions: the same element-wise IEEE operations). isx[i] = inv_norm(xn2[i]),
/// computed once per block for the cosine.
typedef float vLf __attribute__((vector_size(4 * kLanes)));
typedef int32_t vLi __attribute__((vector_size(4 * kLanes)));
typedef double vLd __attribute__((vector_size(8 * kLanes)));

// Macros, not functions: a vector argument or return value would change the ABI where
// the baseline lacks AVX (-Wpsabi); everything here is inlined anyway.
#define ANNX_LOADLF(v, p) std::memcpy(&(v), (p), sizeof(vLf))
#define ANNX_COUNTSL(v, p)                  \
  do {                                      \
    vLi c_;                                 \
    std::memcpy(&c_, (p), sizeof c_);       \
    (v) = __builtin_convertvector(c_, vLf); \
  } while (0)

/// What the finish needs of a prepared query, read once per tile, not once per block.
struct QueryConsts {
  float qa[kMaxL];
  float qn2, inv_qn;
  int metric;
};

inline QueryConsts query_consts(const float* q, size_t LQ) {
  QueryConsts k{};
  std::memcpy(k.qa, q + 4, 4 * LQ);
  k.qn2 = q[2];
  k.inv_qn = inv_norm(q[2]);
  k.metric = static_cast<int>(q[1]);
  return k;
}

template <size_t LQC, size_t LC>
inline void finish_block(const int32_t* pcs, const QueryConsts& qk, size_t LQrt, size_t Lrt,
                         const float* xa, const float* xn2, const float* isx, size_t d, bool negate,
                         float* dst) {
  const size_t LQ = LQC ? LQC : LQrt, L = LC ? LC : Lrt;
  const int metric = qk.metric;
  const float qn2 = qk.qn2;
  const float* qa = qk.qa;
  const float fd = static_cast<float>(d);
  if (LQ == 1 && L == 1) {
    vLf h;
    ANNX_COUNTSL(h, pcs);
    h = fd - 2.f * h;
    if (metric == 2) {
      const vLf r = h * (1.f / fd);
      std::memcpy(dst, &r, sizeof r);
    } else {
      // finish(double{qa} * xa * h, ...) of bin_sdc_rows, on double vectors.
      vLf xv, xn;
      ANNX_LOADLF(xv, xa);
      ANNX_LOADLF(xn, xn2);
      const vLd dot =
          double{qa[0]} * __builtin_convertvector(xv, vLd) * __builtin_convertvector(h, vLd);
      const vLf r = metric == 1
                        ? __builtin_convertvector(
                              double{qn2} + __builtin_convertvector(xn, vLd) - 2.0 * dot, vLf)
                        : __builtin_convertvector(dot, vLf);
      std::memcpy(dst, &r, sizeof r);
    }
  } else if (LQ != L) {  // adc_score, lane-wise: the same exact products and roundings
    const int32_t id = static_cast<int32_t>(d);
    vLd dot = {};
    for (size_t u = 0; u < L; ++u) {
      vLi S = {};
      for (size_t b = 1; b < LQ; ++b) {
        vLi c;
        std::memcpy(&c, pcs + (b * L + u) * kLanes, sizeof c);
        S += (id - 2 * c) * (int32_t{1} << (b - 1));
      }
      vLi c0;
      std::memcpy(&c0, pcs + u * kLanes, sizeof c0);
      const vLd rd = double{qa[1]} * __builtin_convertvector(S, vLd) +
                     double{qa[0]} * __builtin_convertvector(id - 2 * c0, vLd);
      const vLf r = __builtin_convertvector(rd, vLf);
      vLf a;
      ANNX_LOADLF(a, xa + u * kLanes);
      dot += __builtin_convertvector(a, vLd) * __builtin_convertvector(r, vLd);
    }
    if (metric == 2) {
      for (size_t i = 0; i < kLanes; ++i) dst[i] = finish(dot[i], qn2, xn2[i], metric);
    } else {
      vLf xn;
      ANNX_LOADLF(xn, xn2);
      const vLf r = metric == 1
                        ? __builtin_convertvector(
                              double{qn2} + __builtin_convertvector(xn, vLd) - 2.0 * dot, vLf)
                        : __builtin_convertvector(dot, vLf);
      std::memcpy(dst, &r, sizeof r);
    }
  } else if (L == 2 || L == 4) {  // float_dot + float_finish, lane-wise
    vLf dot = {};
    for (size_t u = 0; u < L; ++u) {
      vLf row = {};
      for (size_t t = 0; t < LQ; ++t) {
        vLf c;
        ANNX_COUNTSL(c, pcs + (t * L + u) * kLanes);
        row += qa[t] * (fd - 2.f * c);
      }
      vLf a;
      ANNX_LOADLF(a, xa + u * kLanes);
      dot += row * a;
    }
    vLf r, xn;
    ANNX_LOADLF(xn, xn2);
    if (metric == 1) {
      r = qn2 + xn - 2.f * dot;
    } else if (metric == 2) {
      vLf iv;
      ANNX_LOADLF(iv, isx);
      const vLf v = dot * qk.inv_qn * iv;
      const vLf zero = {};
      r = xn > 0.f ? v : zero;
    } else {
      r = dot;
    }
    std::memcpy(dst, &r, sizeof r);
  } else {  // symmetric, other L: sdc_dot + finish
    for (size_t i = 0; i < kLanes; ++i) {
      double dot = 0;
      for (size_t t = 0; t < L; ++t)
        for (size_t u = 0; u < L; ++u)
          dot += double{qa[t]} * xa[u * kLanes + i] *
                 (static_cast<double>(d) - 2.0 * pcs[(t * L + u) * kLanes + i]);
      dst[i] = finish(dot, qn2, xn2[i], metric);
    }
  }
  if (negate)
    for (size_t i = 0; i < kLanes; ++i) dst[i] = -dst[i];
}

#undef ANNX_LOADLF
#undef ANNX_COUNTSL

template <size_t LQC, size_t LC>
void tile_l(const float* const* qs, size_t nq, const uint8_t* x, size_t n, size_t stride, size_t d,
            size_t LQrt, size_t Lrt, float* out, size_t out_stride, bool negate) {
  const size_t LQ = LQC ? LQC : LQrt, L = LC ? LC : Lrt, WT = words(d) * kWordsPerQword;
  const size_t H = header_bytes(L), HQ = header_bytes(LQ), LW = L * WT, QW = LQ * WT;
  struct Buf {  // no <vector> here (see the top of the file)
    TWord* p;
    ~Buf() { delete[] p; }
  } qw{new TWord[nq * QW]}, xt{new TWord[LW * kLanes]};
  struct KBuf {
    QueryConsts* p;
    ~KBuf() { delete[] p; }
  } qk{new QueryConsts[nq]};
  for (size_t a = 0; a < nq; ++a) {
    qk.p[a] = query_consts(qs[a], LQ);
    const uint8_t* qc = reinterpret_cast<const uint8_t*>(qs[a] + 4) + HQ;
    for (size_t j = 0; j < QW; ++j) qw.p[a * QW + j] = load_word(qc + sizeof(TWord) * j);
  }
  // An asymmetric query's level 0 has no bits set (VectorCodec::prepare), so its counts
  // are the codes' own popcounts: computed once per block here, not once per query.
  const bool asym = LQ != L;
  constexpr size_t LQP = LQC && LQC != LC ? LQC - 1 : LQC;  // query planes paired per query
  const size_t skip = asym ? 1 : 0;
  alignas(64) int32_t pcs[kMaxL * kMaxL * kLanes];
  alignas(64) float xa[kMaxL * kLanes], xn2[kLanes], isx[kLanes], dst[kLanes];
  for (size_t r0 = 0; r0 < n; r0 += kLanes) {
    const size_t m = n - r0 < kLanes ? n - r0 : kLanes;
    for (size_t i = 0; i < kLanes; ++i) {
      if (i < m) {
        const uint8_t* c = x + (r0 + i) * stride;
        for (size_t u = 0; u < L; ++u) std::memcpy(xa + u * kLanes + i, c + 4 * u, 4);
        std::memcpy(xn2 + i, c + 4 * L, 4);
        for (size_t j = 0; j < LW; ++j) xt.p[j * kLanes + i] = load_word(c + H + sizeof(TWord) * j);
      } else {
        for (size_t u = 0; u < L; ++u) xa[u * kLanes + i] = 0.f;
        xn2[i] = 0.f;
        for (size_t j = 0; j < LW; ++j) xt.p[j * kLanes + i] = 0;
      }
    }
    // isx = inv_norm(xn2) lane by lane (lanes with xn2 == 0 score 0); IEEE square root
    // and division round the same in a vector.
#if defined(ANNX_BEBR_LANES16)
    {
      const __m512 xn = _mm512_load_ps(xn2);
      const __mmask16 pos = _mm512_cmp_ps_mask(xn, _mm512_setzero_ps(), _CMP_GT_OQ);
      _mm512_store_ps(isx, _mm512_maskz_div_ps(pos, _mm512_set1_ps(1.f), _mm512_sqrt_ps(xn)));
    }
#else
    for (size_t i = 0; i < kLanes; ++i) isx[i] = inv_norm(xn2[i]);
#endif
    if (asym)
      for (size_t u = 0; u < L; ++u)
        for (size_t i = 0; i < kLanes; ++i) {
          int32_t c = 0;
          for (size_t w = 0; w < WT; ++w)
            c += static_cast<int32_t>(popcount64(xt.p[(u * WT + w) * kLanes + i]));
          pcs[u * kLanes + i] = c;
        }
    for (size_t a = 0; a < nq; ++a) {
      pair_counts<LQP, LC>(qw.p + a * QW + skip * WT, xt.p, LQ - skip, L, WT,
                           pcs + skip * L * kLanes);
      float* o = out + a * out_stride + r0;
      if (m == kLanes) {
        finish_block<LQC, LC>(pcs, qk.p[a], LQ, L, xa, xn2, isx, d, negate,
                              o);  // straight to the output
      } else {
        finish_block<LQC, LC>(pcs, qk.p[a], LQ, L, xa, xn2, isx, d, negate, dst);
        for (size_t i = 0; i < m; ++i) o[i] = dst[i];
      }
    }
  }
}

/// The tile kernel: symmetric queries (LQ = L) and asymmetric ones (LQ = kAdcL), the
/// common level counts unrolled.
inline void tile(const float* const* qs, size_t nq, const void* x, size_t n, size_t stride,
                 size_t d, float* out, size_t out_stride, bool negate) {
  if (nq == 0 || n == 0) return;
  const auto* xc = static_cast<const uint8_t*>(x);
  const size_t L = static_cast<size_t>(qs[0][0]), LQ = query_levels(qs[0]);
  if (LQ == L) {
    switch (L) {
      case 1: return tile_l<1, 1>(qs, nq, xc, n, stride, d, LQ, L, out, out_stride, negate);
      case 2: return tile_l<2, 2>(qs, nq, xc, n, stride, d, LQ, L, out, out_stride, negate);
      case 3: return tile_l<3, 3>(qs, nq, xc, n, stride, d, LQ, L, out, out_stride, negate);
      case 4: return tile_l<4, 4>(qs, nq, xc, n, stride, d, LQ, L, out, out_stride, negate);
      default: break;
    }
  } else if (LQ == kAdcL) {
    switch (L) {
      case 1: return tile_l<kAdcL, 1>(qs, nq, xc, n, stride, d, LQ, L, out, out_stride, negate);
      case 2: return tile_l<kAdcL, 2>(qs, nq, xc, n, stride, d, LQ, L, out, out_stride, negate);
      case 4: return tile_l<kAdcL, 4>(qs, nq, xc, n, stride, d, LQ, L, out, out_stride, negate);
      default: break;
    }
  }
  tile_l<0, 0>(qs, nq, xc, n, stride, d, LQ, L, out, out_stride, negate);
}

}  // namespace bebr

inline void bebr_many(const float* q, const void* x, size_t n, size_t d, const float* /*aux*/,
                      float* out) {
  const size_t cs = bebr::code_bytes(static_cast<size_t>(q[0]), d);
  bebr::score_rows(q, static_cast<const uint8_t*>(x), nullptr, n, cs, d, out);
}

inline void bebr_gather(const float* q, const void* x, const uint32_t* rows, size_t n,
                        size_t stride, size_t d, const float* /*aux*/, float* out) {
  bebr::score_rows(q, static_cast<const uint8_t*>(x), rows, n, stride, d, out);
}

inline void fill_bebr_kinds(simd::KernelTable& t) {
  // One set of functions for both kinds: the prepared query says how many levels it has.
  for (const simd::DistKind k : {simd::DistKind::BEBR_SDC, simd::DistKind::BEBR_ADC}) {
    t.one[static_cast<int>(k)] = &bebr_one;
    t.many[static_cast<int>(k)] = &bebr_many;
    t.gather[static_cast<int>(k)] = &bebr_gather;
  }
  t.bebr_sdc_tile = &bebr::tile;
}
