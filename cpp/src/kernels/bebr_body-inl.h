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
}
