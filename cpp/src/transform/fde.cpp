// MUVERA fixed-dimensional encodings: see annx/transform/fde.h.
//
// Encoding works on chunks of whole clouds (about kChunkTokens tokens) so that every
// step is a batched kernel call:
// 1. SimHash scores of all tokens against all reps*k_sim hyperplanes: one blocked GEMM
//    (dot_f32_panel), then bits and buckets per (token, repetition).
// 2. The AMS sketch on the transposed chunk: output row j of repetition r is the sum of
//    the rows of the input coordinates hashed to j with sign +1 minus those with sign -1
//    (segment_sum_pm, full SIMD width over tokens, accumulated in registers, no sign
//    loads). This costs reps*dim/W vector adds per W tokens, against reps*d_proj*dim for a
//    dense projection. It runs on column blocks of 16 tokens (dim * 64 bytes, L1-resident)
//    through every repetition: the rows are read in random order, and a whole AVX-512
//    panel (48 tokens, 72 KB at dim 384) streamed from L2 once per repetition was slower.
// 3. Per cloud: bucket sums (or means), empty-bucket filling, final count sketch.
#include "annx/transform/fde.h"

#include <algorithm>
#include <cstring>
#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "annx/common/error.h"
#include "annx/common/ragged.h"
#include "annx/common/random.h"
#include "annx/common/thread_pool.h"
#include "annx/simd/kernels.h"

namespace annx {
namespace {

constexpr size_t kChunkTokens = 256;
constexpr int kMaxTableBits = 6;                  // fill_empty distance table up to 64 x 64 int32
constexpr size_t kMaxBlockDim = size_t{1} << 28;  // 1 GiB of floats per encoding
/// The SimHash GEMM runs on reps*k_sim hyperplanes padded with zero rows to a multiple
/// of this: dot_f32_panel handles rows in blocks of its kMQ (8 on AVX-512) and the rest
/// one by one at a third of the speed (3 accumulator chains); a zero row costs a full
/// block's share and changes no other row's scores.
constexpr size_t kGemmRowBlock = 8;

size_t gemm_rows(size_t h) { return (h + kGemmRowBlock - 1) / kGemmRowBlock * kGemmRowBlock; }

// Independent splitmix64 streams per (purpose, repetition).
enum class Stream : uint64_t { SimHash = 1, Ams = 2, Final = 3 };

Rng stream(uint64_t seed, Stream s, uint64_t rep) {
  return Rng(splitmix64(seed ^ splitmix64((static_cast<uint64_t>(s) << 32) + rep)));
}

/// Standard normal approximation without libm: Irwin-Hall sum of 12 uniforms minus 6
/// (mean 0, variance 1); exact in double and therefore identical on every platform.
float portable_normal(Rng& rng) {
  double s = 0;
  for (int i = 0; i < 12; ++i) s += rng.uniform();
  return static_cast<float>(s - 6.0);
}

/// Population count without a libgcc call (the portable baseline has no POPCNT).
inline int popcount32(uint32_t v) {
  v = v - ((v >> 1) & 0x55555555u);
  v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
  return static_cast<int>((((v + (v >> 4)) & 0x0f0f0f0fu) * 0x01010101u) >> 24);
}

/// dst[0, n) = src[0, n) with non-temporal stores where the target allows (x86-64:
/// SSE2 is baseline): the encodings are written once and not read back by the encoder,
/// so skipping the read-for-ownership halves their memory traffic.
inline void stream_out(float* dst, const float* src, size_t n) {
#if defined(__SSE2__)
  size_t i = 0;
  while (i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15) != 0) {
    dst[i] = src[i];
    ++i;
  }
  for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
#else
  std::memcpy(dst, src, n * sizeof(float));
#endif
}

/// dst[c * rows + o] = src[o * ld + c] for o < rows, c < cols: 4 x 4 register
/// transposes where SSE2 is baseline (x86-64), tiles of 16 rows so that both sides stay
/// in L1. A pure data move: the values are unchanged.
inline void transpose_block(const float* src, size_t ld, size_t rows, size_t cols, float* dst) {
  for (size_t o0 = 0; o0 < rows; o0 += 16) {
    const size_t o1 = std::min(rows, o0 + 16);
    size_t c = 0;
#if defined(__SSE2__)
    const size_t o4 = o0 + (o1 - o0) / 4 * 4;
    for (; c + 4 <= cols; c += 4) {
      for (size_t o = o0; o < o4; o += 4) {
        __m128 a = _mm_loadu_ps(src + o * ld + c), b = _mm_loadu_ps(src + (o + 1) * ld + c);
        __m128 e = _mm_loadu_ps(src + (o + 2) * ld + c), f = _mm_loadu_ps(src + (o + 3) * ld + c);
        _MM_TRANSPOSE4_PS(a, b, e, f);
        _mm_storeu_ps(dst + c * rows + o, a);
        _mm_storeu_ps(dst + (c + 1) * rows + o, b);
        _mm_storeu_ps(dst + (c + 2) * rows + o, e);
        _mm_storeu_ps(dst + (c + 3) * rows + o, f);
      }
      for (size_t cc = c; cc < c + 4; ++cc)
        for (size_t o = o4; o < o1; ++o) dst[cc * rows + o] = src[o * ld + cc];
    }
#endif
    for (; c < cols; ++c)
      for (size_t o = o0; o < o1; ++o) dst[c * rows + o] = src[o * ld + c];
  }
}

/// who[u] = the first of tokens [0, n) with the largest margin for sign pattern u < 2^KS
/// (see FdeEncoder::margin_fill); sim + t * H holds token t's KS SimHash scores. KS is a
/// compile-time constant so that every loop is unrolled and vectorised.
template <int KS>
void margin_argmax(const float* sim, size_t H, size_t n, int32_t* who) {
  constexpr int B = 1 << KS;
#if defined(__SSE2__)
  if constexpr (KS >= 2) {
    // Whole-vector steps only (4 patterns per __m128, all in registers): scalar stores
    // read back as vectors stall on store forwarding. Element u of vector q is pattern
    // 4q + u; the first two hyperplanes fill a vector at once (x + (-y) is x - y).
    constexpr int NV = B / 4;
    const __m128 sign01 = _mm_castsi128_ps(_mm_set_epi32(0, INT32_MIN, 0, INT32_MIN));
    const __m128 sign1 = _mm_castsi128_ps(_mm_set_epi32(0, 0, INT32_MIN, INT32_MIN));
    const __m128i low31 = _mm_set1_epi32(0x7fffffff);
    __m128i best[NV], bw[NV];
    auto keys = [&](const float* S, __m128i* key) {
      __m128 m[NV];
      m[0] =
          _mm_add_ps(_mm_xor_ps(_mm_set1_ps(S[0]), sign01), _mm_xor_ps(_mm_set1_ps(S[1]), sign1));
#pragma GCC unroll 8
      for (int i = 2; i < KS; ++i) {
        const int h = 1 << (i - 2);
        const __m128 v = _mm_set1_ps(S[i]);
#pragma GCC unroll 8
        for (int j = 0; j < h; ++j) {
          m[j + h] = _mm_add_ps(m[j], v);
          m[j] = _mm_sub_ps(m[j], v);
        }
      }
#pragma GCC unroll 16
      for (int q = 0; q < NV; ++q) {
        const __m128i w = _mm_castps_si128(_mm_add_ps(m[q], _mm_setzero_ps()));
        key[q] = _mm_xor_si128(w, _mm_and_si128(_mm_srai_epi32(w, 31), low31));
      }
    };
    keys(sim, best);
#pragma GCC unroll 16
    for (int q = 0; q < NV; ++q) bw[q] = _mm_setzero_si128();
    for (size_t t = 1; t < n; ++t) {
      __m128i key[NV];
      keys(sim + t * H, key);
      const __m128i tt = _mm_set1_epi32(int32_t(t));
#pragma GCC unroll 16
      for (int q = 0; q < NV; ++q) {
        const __m128i better = _mm_cmpgt_epi32(key[q], best[q]);
        best[q] = _mm_or_si128(_mm_and_si128(better, key[q]), _mm_andnot_si128(better, best[q]));
        bw[q] = _mm_or_si128(_mm_and_si128(better, tt), _mm_andnot_si128(better, bw[q]));
      }
    }
#pragma GCC unroll 16
    for (int q = 0; q < NV; ++q) _mm_storeu_si128(reinterpret_cast<__m128i*>(who + 4 * q), bw[q]);
    return;
  }
#endif
  int32_t key[B], best[B];
  auto keys = [&](const float* S) {
    float m[B];
    m[0] = -S[0];
    if constexpr (B > 1) m[1] = S[0];
    for (int i = 1; i < KS; ++i) {
      const int h = 1 << i;
      const float v = S[i];
      for (int j = 0; j < h; ++j) {
        m[j + h] = m[j] + v;
        m[j] = m[j] - v;
      }
    }
    for (int u = 0; u < B; ++u) {
      int32_t w;
      const float z = m[u] + 0.f;
      std::memcpy(&w, &z, sizeof w);
      key[u] = w ^ ((w >> 31) & 0x7fffffff);
    }
  };
  keys(sim);
  for (int u = 0; u < B; ++u) {
    best[u] = key[u];
    who[u] = 0;
  }
  for (size_t t = 1; t < n; ++t) {
    keys(sim + t * H);
    const int32_t tt = int32_t(t);
    for (int u = 0; u < B; ++u) {  // branch-free: vectorises
      const bool better = key[u] > best[u];
      best[u] = better ? key[u] : best[u];
      who[u] = better ? tt : who[u];
    }
  }
}

/// dst[0, n) = src[0, n) inline: the fill copies are short (d_proj floats), where a
/// memcpy call costs more than the copy.
inline void copy_floats(float* dst, const float* src, size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(dst + i, _mm_loadu_ps(src + i));
#endif
  for (; i < n; ++i) dst[i] = src[i];
}

/// Chunk starts (set indices, first 0, last n) for encoding: whole sets of about `rows`
/// tokens each, as group_sets, but each cut is placed where the chunk's token count
/// wastes the fewest lanes of its last panel of P tokens (P - T % P, looking at the cuts
/// up to 2P tokens past the first one that reaches `rows`; the earliest cut on ties).
/// With AVX-512 panels of 48 tokens and cuts every ~12 tokens the plain grouping padded
/// about 9 % of the GEMM and AMS work with zero tokens. The grouping changes no result:
/// every token's scores and projections are computed independently of its panel slot.
std::vector<size_t> chunk_sets(const int64_t* offsets, size_t n, size_t rows, size_t P) {
  std::vector<size_t> starts{0};
  auto waste = [P](size_t t) { return (P - t % P) % P; };
  size_t i = 0;
  while (i < n) {
    size_t acc = 0, j = i;
    while (j < n && acc < rows) {
      acc += static_cast<size_t>(offsets[j + 1] - offsets[j]);
      ++j;
    }
    size_t best = j, best_w = waste(acc);
    for (size_t k = j, a = acc; k < n && best_w != 0;) {
      a += static_cast<size_t>(offsets[k + 1] - offsets[k]);
      ++k;
      if (a > acc + 2 * P) break;
      if (waste(a) < best_w) {
        best = k;
        best_w = waste(a);
      }
    }
    starts.push_back(best);
    i = best;
  }
  if (starts.size() == 1) starts.push_back(n);
  return starts;
}

/// dst[0, n) += src[0, n) inline (the bucket sums: d_proj floats per token and
/// repetition; the plain loop stayed scalar, as dst and src may overlap for gcc).
inline void add_floats(float* dst, const float* src, size_t n) {
  size_t i = 0;
#if defined(__SSE2__)
  for (; i + 4 <= n; i += 4)
    _mm_storeu_ps(dst + i, _mm_add_ps(_mm_loadu_ps(dst + i), _mm_loadu_ps(src + i)));
#endif
  for (; i < n; ++i) dst[i] += src[i];
}

inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace

void FdeConfig::validate() const {
  ANNX_CHECK(InvalidArgument, dim >= 1 && dim <= (1 << 16), "FDE dim must be in [1, 65536], got ",
             dim);
  ANNX_CHECK(InvalidArgument, k_sim >= 0 && k_sim <= 20, "FDE k_sim must be in [0, 20], got ",
             k_sim);
  ANNX_CHECK(InvalidArgument, d_proj >= 0 && d_proj <= (1 << 16),
             "FDE d_proj must be in [1, 65536] (or 0/None for the identity), got ", d_proj);
  ANNX_CHECK(InvalidArgument, reps >= 1 && reps <= 4096, "FDE reps must be in [1, 4096], got ",
             reps);
  ANNX_CHECK(InvalidArgument, final_dim >= 0 && final_dim <= (1 << 24),
             "FDE final_dim must be in [1, 16777216] (or 0/None for no final projection), got ",
             final_dim);
  ANNX_CHECK(InvalidArgument, fill == FdeFill::Margin || fill == FdeFill::Hamming,
             "FDE fill must be 'margin' or 'hamming', got ", static_cast<int>(fill));
  const size_t proj = d_proj > 0 ? size_t(d_proj) : size_t(dim);
  const size_t block = size_t(reps) * (size_t{1} << k_sim) * proj;
  ANNX_CHECK(InvalidArgument, block <= kMaxBlockDim,
             "FDE dimension reps * 2^k_sim * d_proj = ", block, " exceeds ", kMaxBlockDim,
             "; lower k_sim, reps or d_proj");
}

size_t FdeConfig::output_dim() const {
  const size_t proj = d_proj > 0 ? size_t(d_proj) : size_t(dim);
  return final_dim > 0 ? size_t(final_dim) : size_t(reps) * (size_t{1} << k_sim) * proj;
}

size_t FdeConfig::encoder_bytes() const {
  // As the FdeEncoder constructor allocates: SimHash planes, AMS segments, the fill_empty
  // distance table and the final count sketch.
  const size_t D = size_t(dim), R = size_t(reps), K = size_t(k_sim), B = size_t{1} << k_sim;
  const size_t proj = d_proj > 0 ? size_t(d_proj) : D;
  size_t bytes = 4 * gemm_rows(R * K) * D;
  if (d_proj > 0) bytes += 4 * (2 * R * D + 2 * R * size_t(d_proj));
  if (fill == FdeFill::Hamming && k_sim > 0 && k_sim <= kMaxTableBits) bytes += 4 * B * B;
  if (fill == FdeFill::Margin && k_sim > 0 && k_sim <= kMaxTableBits) bytes += 4 * B;
  if (final_dim > 0) bytes += 8 * R * B * proj;
  return bytes;
}

std::string FdeConfig::describe() const {
  return "k_sim=" + std::to_string(k_sim) + ",d_proj=" + std::to_string(d_proj) +
         ",reps=" + std::to_string(reps) + ",fill_empty=" + (fill_empty ? "1" : "0") +
         ",final_dim=" + std::to_string(final_dim) + ",seed=" + std::to_string(seed) +
         ",fill=" + (fill == FdeFill::Margin ? "margin" : "hamming");
}

FdeEncoder::FdeEncoder(const FdeConfig& config) : c_(config) {
  c_.validate();
  const size_t D = size_t(c_.dim), R = size_t(c_.reps), K = size_t(c_.k_sim);
  g_.assign(gemm_rows(R * K) * D, 0.f);
  for (size_t r = 0; r < R; ++r) {
    Rng rng = stream(c_.seed, Stream::SimHash, r);
    for (size_t i = 0; i < K * D; ++i) g_[r * K * D + i] = portable_normal(rng);
  }
  if (c_.d_proj > 0) {
    // The AMS sketch, stored as segments: per repetition, the input coordinates grouped
    // by their output coordinate (a stable counting sort), for signed_segment_sum.
    const size_t dp = size_t(c_.d_proj);
    seg_idx_.resize(R * D);
    seg_signs_.resize(R * D);
    seg_end_.resize(R * dp);
    seg_split_.resize(R * dp);
    std::vector<uint32_t> row(D), next(dp);
    std::vector<float> sign(D);
    for (size_t r = 0; r < R; ++r) {
      Rng rng = stream(c_.seed, Stream::Ams, r);
      std::fill(next.begin(), next.end(), 0u);
      for (size_t i = 0; i < D; ++i) {
        const uint64_t v = rng.next();
        row[i] = static_cast<uint32_t>((v >> 1) % uint64_t(dp));
        sign[i] = (v & 1) ? 1.f : -1.f;
        ++next[row[i]];
      }
      uint32_t* end = seg_end_.data() + r * dp;
      for (size_t j = 0, acc = 0; j < dp; ++j) {
        const uint32_t c = next[j];
        next[j] = uint32_t(acc);  // first position of segment j
        acc += c;
        end[j] = uint32_t(acc);
      }
      for (size_t i = 0; i < D; ++i) {
        const uint32_t pos = next[row[i]]++;
        seg_idx_[r * D + pos] = uint32_t(i);
        seg_signs_[r * D + pos] = sign[i];
      }
      // Within a segment the added coordinates first, then the subtracted ones (each in
      // ascending order), for segment_sum_pm; seg_split_ marks the boundary.
      for (size_t j = 0, b0 = 0; j < dp; ++j) {
        const size_t b1 = end[j];
        uint32_t* ix = seg_idx_.data() + r * D;
        float* sg = seg_signs_.data() + r * D;
        std::vector<uint32_t> neg;
        size_t w = b0;
        for (size_t q = b0; q < b1; ++q) {
          if (sg[q] > 0.f)
            ix[w++] = ix[q];
          else
            neg.push_back(ix[q]);
        }
        seg_split_[r * dp + j] = uint32_t(w);
        for (uint32_t v : neg) ix[w++] = v;
        for (size_t q = b0; q < b1; ++q) sg[q] = q < seg_split_[r * dp + j] ? 1.f : -1.f;
        b0 = b1;
      }
    }
  }
  if (c_.fill == FdeFill::Hamming && c_.k_sim > 0 && c_.k_sim <= kMaxTableBits) {
    // fill_dist_[bits * B + b] = Hamming distance between a token's bit string and the
    // bit string of bucket b (its Gray encoding b ^ (b >> 1)).
    const size_t B = buckets();
    fill_dist_.resize(B * B);
    for (size_t v = 0; v < B; ++v)
      for (size_t b = 0; b < B; ++b)
        fill_dist_[v * B + b] = int32_t(popcount32(uint32_t(v) ^ uint32_t(b ^ (b >> 1))));
  }
  if (c_.fill == FdeFill::Margin && c_.k_sim > 0 && c_.k_sim <= kMaxTableBits) {
    // margin_perm_[b] = the sign pattern u of bucket b as margin_fill builds them: bit i
    // of u is hyperplane i's bit in b's bit string (its Gray encoding b ^ (b >> 1), where
    // hyperplane i is bit k_sim - 1 - i), i.e. the bit reversal of the Gray code.
    const size_t B = buckets();
    margin_perm_.resize(B);
    for (size_t b = 0; b < B; ++b) {
      const size_t g = b ^ (b >> 1);
      uint32_t u = 0;
      for (size_t i = 0; i < K; ++i) u |= uint32_t((g >> (K - 1 - i)) & 1) << i;
      margin_perm_[b] = u;
    }
  }
  if (c_.final_dim > 0) {
    const size_t B = block_dim();
    final_rows_.resize(B);
    final_signs_.resize(B);
    Rng rng = stream(c_.seed, Stream::Final, 0);
    for (size_t i = 0; i < B; ++i) {
      const uint64_t v = rng.next();
      final_rows_[i] = static_cast<uint32_t>((v >> 1) % uint64_t(c_.final_dim));
      final_signs_[i] = (v & 1) ? 1.f : -1.f;
    }
  }
}

void FdeEncoder::ams(std::vector<uint32_t>& rows, std::vector<float>& signs) const {
  rows.clear();
  signs.clear();
  if (c_.d_proj == 0) return;
  const size_t D = size_t(c_.dim), R = size_t(c_.reps), dp = size_t(c_.d_proj);
  rows.resize(R * D);
  signs.resize(R * D);
  for (size_t r = 0; r < R; ++r)
    for (size_t j = 0, pos = 0; j < dp; ++j)
      for (; pos < seg_end_[r * dp + j]; ++pos) {
        rows[r * D + seg_idx_[r * D + pos]] = uint32_t(j);
        signs[r * D + seg_idx_[r * D + pos]] = seg_signs_[r * D + pos];
      }
}

void FdeEncoder::encode(const float* tokens, const int64_t* offsets, size_t n, bool queries,
                        float* out, int threads) const {
  if (n == 0) return;
  const auto& K = simd::kernels();
  // Chunks of whole clouds of about kChunkTokens tokens each.
  const std::vector<size_t> starts = chunk_sets(offsets, n, kChunkTokens, K.panel_rows);
  parallel_for(
      starts.size() - 1, 1,
      [&](size_t b, size_t e) {
        for (size_t c = b; c < e; ++c)
          encode_chunk(K, tokens, offsets, starts[c], starts[c + 1], queries, out);
      },
      threads);
}

template <class Fill>
void FdeEncoder::margin_fill(const float* sim, size_t H, size_t n, const uint32_t* count,
                             std::vector<float>& mt, std::vector<uint32_t>& whov,
                             Fill&& fill) const {
  // m_b(t) = s_b0 * S_t0 + s_b1 * S_t1 + ... (float, added in this order; the products
  // by +-1 are exact, so the numpy reference in tests/test_multivector.py gets the same
  // bits), kept per bucket as the running maximum over the tokens in order, strictly
  // greater replacing (the first token wins ties). Token-outer and bucket-inner, so the
  // inner loops run over contiguous buckets and vectorise (local arrays up to 64
  // buckets, the sign table's range).
  const size_t ks = size_t(c_.k_sim), B = buckets();
  if (!margin_perm_.empty()) {
    // All 2^k_sim sign patterns at once by doubling: after hyperplane i, m[u] for u <
    // 2^(i+1) is the margin of the pattern u (bit i of u set: +S_i, clear: -S_i), each
    // built in the order above (m - v is exactly m + (-1) * v), so the values are the
    // same bits as bucket-by-bucket sums at 2^k_sim - 2 additions instead of k_sim * 2^k_sim
    // multiply-adds. Buckets map to patterns through margin_perm_ (a bijection), so the
    // running maximum is kept per pattern (margin_argmax). It compares int32 keys
    // (order-preserving images of the floats, -0 folded into +0 so that they tie as
    // floats do): integer selects vectorise where the float compare-and-select of two
    // arrays did not (gcc 12, SSE2 baseline).
    int32_t who[64];
    switch (ks) {
      case 1: margin_argmax<1>(sim, H, n, who); break;
      case 2: margin_argmax<2>(sim, H, n, who); break;
      case 3: margin_argmax<3>(sim, H, n, who); break;
      case 4: margin_argmax<4>(sim, H, n, who); break;
      case 5: margin_argmax<5>(sim, H, n, who); break;
      default: margin_argmax<6>(sim, H, n, who); break;
    }
    for (size_t b = 0; b < B; ++b)
      if (count[b] == 0) fill(b, size_t(who[margin_perm_[b]]));
    return;
  }
  // More than 64 buckets: signs on the fly, same order and tie rule.
  mt.resize(2 * B);
  float* m = mt.data();
  float* best = m + B;
  whov.resize(B);
  uint32_t* who = whov.data();
  for (size_t t = 0; t < n; ++t) {
    const float* S = sim + t * H;
    for (size_t b = 0; b < B; ++b) {
      const size_t gb = b ^ (b >> 1);
      float v = ((gb >> (ks - 1)) & 1) != 0 ? S[0] : -S[0];
      for (size_t i = 1; i < ks; ++i) v = v + (((gb >> (ks - 1 - i)) & 1) != 0 ? S[i] : -S[i]);
      m[b] = v;
    }
    for (size_t b = 0; b < B; ++b)
      if (t == 0 || m[b] > best[b]) {
        best[b] = m[b];
        who[b] = uint32_t(t);
      }
  }
  for (size_t b = 0; b < B; ++b)
    if (count[b] == 0) fill(b, who[b]);
}

void FdeEncoder::encode_chunk(const simd::KernelTable& K, const float* tokens,
                              const int64_t* offsets, size_t s0, size_t s1, bool queries,
                              float* out) const {
  const size_t D = size_t(c_.dim), R = size_t(c_.reps), ks = size_t(c_.k_sim);
  const size_t B = buckets(), dp = proj_dim(), H = R * ks, RD = R * dp;
  const size_t t0 = size_t(offsets[s0]), T = size_t(offsets[s1]) - t0;
  const float* x = tokens + t0 * D;
  const bool identity = c_.d_proj == 0;
  const bool filling = !queries && c_.fill_empty && ks > 0;
  const bool margin = filling && c_.fill == FdeFill::Margin;

  // Per-thread scratch, reused across chunks (pool threads are persistent); one TLS
  // lookup per chunk.
  struct Scratch {
    std::vector<float> panels, score, psi_panel, psi, sim, fde, mt;
    std::vector<uint32_t> bits, bucket, count, rep_bits, who;
    std::vector<int32_t> best_d, best_t;
  };
  thread_local Scratch tls;
  Scratch& sc = tls;
  auto& panels = sc.panels;
  auto& score = sc.score;
  auto& psi_panel = sc.psi_panel;
  auto& psi = sc.psi;
  auto& sim = sc.sim;
  auto& bits = sc.bits;
  auto& bucket = sc.bucket;
  auto& rep_bits = sc.rep_bits;
  auto& count = sc.count;
  auto& best_d = sc.best_d;
  auto& best_t = sc.best_t;

  // The chunk's tokens packed into the kernel's panels (transposed blocks of P tokens).
  const size_t P = K.panel_rows, np = (T + P - 1) / P;
  panels.resize(np * P * D);
  for (size_t s = 0; s < np; ++s)
    K.pack_f32_panel(x + s * P * D, std::min(P, T - s * P), D, panels.data() + s * P * D);

  // 1. SimHash bits and buckets, [token][rep]: H hyperplanes x P tokens per panel. The
  // bits of a repetition are built token-parallel (contiguous, vectorisable), then
  // Gray-decoded with the prefix-xor identity. Margin filling keeps the raw scores,
  // token-major (sim[t * H + h]).
  bits.resize(T * R);
  bucket.resize(T * R);
  if (H == 0) {
    std::fill(bits.begin(), bits.end(), 0u);
    std::fill(bucket.begin(), bucket.end(), 0u);
  } else {
    const size_t Hg = gemm_rows(H);
    score.resize(Hg * P);
    rep_bits.resize(P);
    if (margin) sim.resize(T * H);
    for (size_t s = 0; s < np; ++s) {
      K.dot_f32_panel(g_.data(), Hg, D, panels.data() + s * P * D, score.data(), P);
      const size_t m = std::min(P, T - s * P);
      if (margin) transpose_block(score.data(), P, H, m, sim.data() + s * P * H);
      for (size_t r = 0; r < R; ++r) {
        uint32_t* v = rep_bits.data();
        std::fill(v, v + m, 0u);
        for (size_t i = 0; i < ks; ++i) {
          const float* row = score.data() + (r * ks + i) * P;
          size_t c = 0;
#if defined(__SSE2__)
          // (v << 1) | (score > 0): the compare mask's sign bit (NaN compares false, as
          // the scalar `>` does).
          const __m128 zero = _mm_setzero_ps();
          for (; c + 4 <= m; c += 4) {
            __m128i* vp = reinterpret_cast<__m128i*>(v + c);
            const __m128i gt = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(row + c), zero));
            _mm_storeu_si128(
                vp, _mm_or_si128(_mm_slli_epi32(_mm_loadu_si128(vp), 1), _mm_srli_epi32(gt, 31)));
          }
#endif
          for (; c < m; ++c) v[c] = (v[c] << 1) | uint32_t(row[c] > 0.f);
        }
        for (size_t c = 0; c < m; ++c) {
          uint32_t g = v[c];
          g ^= g >> 16;
          g ^= g >> 8;
          g ^= g >> 4;
          g ^= g >> 2;
          g ^= g >> 1;
          bits[(s * P + c) * R + r] = v[c];
          bucket[(s * P + c) * R + r] = g;
        }
      }
    }
  }

  // 2. AMS sketch per panel (output-coordinate major), then token-major psi[t][r][j].
  // Column blocks of 16 tokens go through every repetition while they sit in L1 (every
  // level's SIMD width divides 16); a panel that is not a multiple of 16 goes whole.
  if (!identity) {
    psi_panel.resize(RD * P);
    psi.resize(T * RD);
    const size_t cw = P % 16 == 0 ? 16 : P;
    for (size_t s = 0; s < np; ++s) {
      const size_t m = std::min(P, T - s * P);
      const float* panel = panels.data() + s * P * D;
      for (size_t c0 = 0; c0 < m; c0 += cw)
        for (size_t r = 0; r < R; ++r)
          K.segment_sum_pm(panel + c0, P, cw, seg_idx_.data() + r * D, seg_split_.data() + r * dp,
                           seg_end_.data() + r * dp, dp, psi_panel.data() + r * dp * P + c0);
      transpose_block(psi_panel.data(), P, RD, m, psi.data() + s * P * RD);
    }
  }
  auto projected = [&](size_t t, size_t r) {
    return identity ? x + t * D : psi.data() + t * RD + r * dp;
  };

  // 3. Per cloud: bucket sums (queries) or means (documents), filling, final sketch.
  const size_t block = block_dim(), odim = output_dim();
  const bool final_proj = c_.final_dim > 0;
  // Every encoding is built in an L2-resident scratch row and then written out once
  // (stream_out): a plain fill-then-add on `out` read each output line from memory
  // before writing it, which was 10-15 % of the encoding time.
  auto& fde = sc.fde;
  fde.resize(block);
  count.resize(R * B);
  if (filling && !margin && !fill_dist_.empty()) {
    best_t.resize(B);
    best_d.resize(B);
  }
  for (size_t s = s0; s < s1; ++s) {
    const size_t a = size_t(offsets[s]) - t0, e = size_t(offsets[s + 1]) - t0;
    float* row = fde.data();
    std::fill(row, row + block, 0.f);
    std::fill(count.begin(), count.end(), 0u);
    for (size_t t = a; t < e; ++t)
      for (size_t r = 0; r < R; ++r) {
        const size_t b = bucket[t * R + r];
        ++count[r * B + b];
        add_floats(row + (r * B + b) * dp, projected(t, r), dp);
      }
    if (!queries) {
      for (size_t r = 0; r < R; ++r) {
        bool any_empty = false;
        for (size_t b = 0; b < B; ++b) {
          float* blk = row + (r * B + b) * dp;
          const uint32_t c = count[r * B + b];
          any_empty |= c == 0;
          if (c > 1) {
            const float inv = 1.f / float(c);
            for (size_t j = 0; j < dp; ++j) blk[j] *= inv;
          }
        }
        if (!any_empty || !filling) continue;
        if (margin) {
          margin_fill(sim.data() + a * H + r * ks, H, e - a, count.data() + r * B, sc.mt, sc.who,
                      [&](size_t b, size_t t) {
                        copy_floats(row + (r * B + b) * dp, projected(a + t, r), dp);
                      });
          continue;
        }
        // Hamming: nearest token (first on ties) to every bucket's bit string.
        if (!fill_dist_.empty()) {
          std::fill(best_d.begin(), best_d.begin() + B, 255);
          int32_t* bd = best_d.data();
          int32_t* bt = best_t.data();
          for (size_t t = a; t < e; ++t) {
            const int32_t* drow = fill_dist_.data() + size_t(bits[t * R + r]) * B;
            const int32_t ti = int32_t(t);
            for (size_t b = 0; b < B; ++b) {  // branch-free: vectorises
              const bool closer = drow[b] < bd[b];
              bd[b] = closer ? drow[b] : bd[b];
              bt[b] = closer ? ti : bt[b];
            }
          }
        }
        for (size_t b = 0; b < B; ++b) {
          if (count[r * B + b] != 0) continue;
          size_t best = a;
          if (!fill_dist_.empty()) {
            best = best_t[b];
          } else {
            const uint32_t target = uint32_t(b) ^ (uint32_t(b) >> 1);
            int best_dist = std::numeric_limits<int>::max();
            for (size_t t = a; t < e; ++t) {
              const int dist = popcount32(bits[t * R + r] ^ target);
              if (dist < best_dist) {
                best_dist = dist;
                best = t;
              }
            }
          }
          copy_floats(row + (r * B + b) * dp, projected(best, r), dp);
        }
      }
    }
    if (final_proj) {
      float* o = out + s * odim;
      std::fill(o, o + odim, 0.f);
      for (size_t i = 0; i < block; ++i) o[final_rows_[i]] += final_signs_[i] * row[i];
    } else {
      stream_out(out + s * odim, row, block);
    }
  }
  stream_fence();
}

}  // namespace annx
