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

template <bool ADC>
void bebr_many(const float* q, const void* x, size_t n, size_t d, const float* /*aux*/,
               float* out) {
  const size_t cs = bebr::code_bytes(static_cast<size_t>(q[0]), d);
  const auto* base = static_cast<const uint8_t*>(x);
  for (size_t i = 0; i < n; ++i) out[i] = bebr::one<ADC>(q, base + i * cs, d);
}

template <bool ADC>
void bebr_gather(const float* q, const void* x, const uint32_t* rows, size_t n, size_t stride,
                 size_t d, const float* /*aux*/, float* out) {
  const auto* base = static_cast<const uint8_t*>(x);
  for (size_t i = 0; i < n; ++i) out[i] = bebr::one<ADC>(q, base + size_t{rows[i]} * stride, d);
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
