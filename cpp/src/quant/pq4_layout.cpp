// pq4 layout packing and LUT quantisation (see annx/quant/pq4_layout.h). None of this is
// on a per-distance path: pack/set_code run once per added vector, quantize_lut once per
// (query, list) at M x 16 cost, so it is written plainly.
#include "annx/quant/pq4_layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "annx/common/error.h"

#if defined(__SSE2__)
#include <emmintrin.h>  // x86-64 baseline: safe in this generic translation unit
#endif

namespace annx::pq4 {
namespace {

/// Byte offset of vector r (0..31) within the 16 bytes of one sub-quantizer, and whether
/// it sits in the high nibble: byte t holds vectors pi(t) and pi(t) + 16 with
/// pi(t) = t / 2 + 8 * (t % 2), so t = 2 * (r % 8) + (r % 16) / 8.
struct Slot {
  size_t byte;
  bool high;
};
inline Slot slot_of(size_t r) {
  const size_t r16 = r & 15;
  return {2 * (r16 & 7) + (r16 >> 3), r >= 16};
}

/// Offset of sub-quantizer m's 16 bytes within a block.
inline size_t sq_offset(size_t m) { return (m / 2) * 32 + (m & 1) * 16; }

// quantize_lut runs once per (query, probed list) in IVF search, where a plain loop
// (5 ns per entry, libm round) cost as much as scanning ~200 blocks of M = 192 codes: one
// 16-entry row is handled in SSE2 registers here (~0.5 ns per entry).

struct RowStats {
  float lo, hi;
  bool finite;
};

#if defined(__SSE2__)
/// Min, max and finiteness of the 16 floats in r0..r3.
inline RowStats row_stats(__m128 r0, __m128 r1, __m128 r2, __m128 r3) {
  __m128 lo = _mm_min_ps(_mm_min_ps(r0, r1), _mm_min_ps(r2, r3));
  __m128 hi = _mm_max_ps(_mm_max_ps(r0, r1), _mm_max_ps(r2, r3));
  lo = _mm_min_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_min_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  hi = _mm_max_ps(hi, _mm_movehl_ps(hi, hi));
  hi = _mm_max_ss(hi, _mm_shuffle_ps(hi, hi, 1));
  // x - x is 0 for finite x and NaN for NaN and +-inf.
  const __m128 z = _mm_setzero_ps();
  const __m128 ok = _mm_and_ps(
      _mm_and_ps(_mm_cmpeq_ps(_mm_sub_ps(r0, r0), z), _mm_cmpeq_ps(_mm_sub_ps(r1, r1), z)),
      _mm_and_ps(_mm_cmpeq_ps(_mm_sub_ps(r2, r2), z), _mm_cmpeq_ps(_mm_sub_ps(r3, r3), z)));
  return {_mm_cvtss_f32(lo), _mm_cvtss_f32(hi), _mm_movemask_ps(ok) == 15};
}
#else
/// Min, max and finiteness of a 16-float row (no SSE2).
inline RowStats row_stats(const float* row) {
  RowStats s{row[0], row[0], true};
  for (size_t j = 0; j < 16; ++j) {
    s.lo = std::min(s.lo, row[j]);
    s.hi = std::max(s.hi, row[j]);
    s.finite &= std::isfinite(row[j]);
  }
  return s;
}
#endif

/// dst[j] = min(255, round-half-up(a * (row[j] - lo))) (row[j] >= lo, a > 0); returns the
/// largest of them.
inline uint8_t quantize_row(const float* row, float lo, float a, uint8_t* dst) {
#if defined(__SSE2__)
  const __m128 av = _mm_set1_ps(a), lv = _mm_set1_ps(lo), half = _mm_set1_ps(0.5f);
  auto q = [&](size_t k) {  // truncating v + 0.5 rounds a non-negative v half up
    return _mm_cvttps_epi32(
        _mm_add_ps(_mm_mul_ps(av, _mm_sub_ps(_mm_loadu_ps(row + k), lv)), half));
  };
  // Saturating packs: int32 -> int16 -> uint8 clamps at 255.
  const __m128i b = _mm_packus_epi16(_mm_packs_epi32(q(0), q(4)), _mm_packs_epi32(q(8), q(12)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), b);
  __m128i m = _mm_max_epu8(b, _mm_srli_si128(b, 8));
  m = _mm_max_epu8(m, _mm_srli_si128(m, 4));
  m = _mm_max_epu8(m, _mm_srli_si128(m, 2));
  m = _mm_max_epu8(m, _mm_srli_si128(m, 1));
  return static_cast<uint8_t>(_mm_cvtsi128_si32(m));
#else
  uint8_t mx = 0;
  for (size_t j = 0; j < 16; ++j) {
    const int v = static_cast<int>(a * (row[j] - lo) + 0.5f);
    dst[j] = static_cast<uint8_t>(v < 255 ? v : 255);
    mx = std::max(mx, dst[j]);
  }
  return mx;
#endif
}

}  // namespace

void pack(const uint8_t* codes, size_t n, size_t M, uint8_t* out) {
  const size_t bb = block_bytes(M), nb = nblocks(n);
  std::memset(out, 0, nb * bb);
  for (size_t b = 0; b < nb; ++b) {
    uint8_t* blk = out + b * bb;
    const size_t rows = std::min(kBlock, n - b * kBlock);
    for (size_t r = 0; r < rows; ++r) {
      const uint8_t* code = codes + (b * kBlock + r) * M;
      const Slot s = slot_of(r);
      for (size_t m = 0; m < M; ++m) {
        const uint8_t v = code[m] & 15;
        blk[sq_offset(m) + s.byte] |= static_cast<uint8_t>(s.high ? v << 4 : v);
      }
    }
  }
}

void get_code(const uint8_t* blocks, size_t M, size_t i, uint8_t* code) {
  const uint8_t* blk = blocks + (i / kBlock) * block_bytes(M);
  const Slot s = slot_of(i % kBlock);
  for (size_t m = 0; m < M; ++m) {
    const uint8_t v = blk[sq_offset(m) + s.byte];
    code[m] = s.high ? static_cast<uint8_t>(v >> 4) : static_cast<uint8_t>(v & 15);
  }
}

void set_code(uint8_t* blocks, size_t M, size_t i, const uint8_t* code) {
  uint8_t* blk = blocks + (i / kBlock) * block_bytes(M);
  const Slot s = slot_of(i % kBlock);
  for (size_t m = 0; m < M; ++m) {
    uint8_t& byte = blk[sq_offset(m) + s.byte];
    const uint8_t v = code[m] & 15;
    byte = s.high ? static_cast<uint8_t>((byte & 0x0F) | (v << 4))
                  : static_cast<uint8_t>((byte & 0xF0) | v);
  }
}

void unpack(const uint8_t* blocks, size_t n, size_t M, uint8_t* codes) {
  for (size_t i = 0; i < n; ++i) get_code(blocks, M, i, codes + i * M);
}

namespace {

/// Row m's min and max (rows of `lut`, or of a + b written to `sum` when b is given);
/// returns whether every entry is finite.
bool lut_stats(const float* lut, const float* b, size_t M, float* sum, float* mins, float* maxs) {
#if defined(__SSE2__)
  bool finite = true;
  for (size_t m = 0; m < M; ++m) {
    const float* row = lut + m * 16;
    __m128 r0 = _mm_loadu_ps(row), r1 = _mm_loadu_ps(row + 4), r2 = _mm_loadu_ps(row + 8),
           r3 = _mm_loadu_ps(row + 12);
    if (b) {
      const float* br = b + m * 16;
      float* sr = sum + m * 16;
      r0 = _mm_add_ps(r0, _mm_loadu_ps(br));
      r1 = _mm_add_ps(r1, _mm_loadu_ps(br + 4));
      r2 = _mm_add_ps(r2, _mm_loadu_ps(br + 8));
      r3 = _mm_add_ps(r3, _mm_loadu_ps(br + 12));
      _mm_storeu_ps(sr, r0);
      _mm_storeu_ps(sr + 4, r1);
      _mm_storeu_ps(sr + 8, r2);
      _mm_storeu_ps(sr + 12, r3);
    }
    const RowStats st = row_stats(r0, r1, r2, r3);
    mins[m] = st.lo;
    maxs[m] = st.hi;
    finite &= st.finite;
  }
  return finite;
#else
  bool finite = true;
  for (size_t m = 0; m < M; ++m) {
    const float* row = lut + m * 16;
    if (b) {
      for (size_t j = 0; j < 16; ++j) sum[m * 16 + j] = row[j] + b[m * 16 + j];
      row = sum + m * 16;
    }
    const RowStats st = row_stats(row);
    mins[m] = st.lo;
    maxs[m] = st.hi;
    finite &= st.finite;
  }
  return finite;
#endif
}

void quantize_rows(const float* lut, const float* b, size_t M, float* sum, QuantizedLut& out) {
  float stats_small[512];
  std::vector<float> stats_large;
  float* mins = stats_small;
  if (M > 256) {
    stats_large.resize(2 * M);
    mins = stats_large.data();
  }
  float* maxs = mins + M;
  const bool finite = lut_stats(lut, b, M, sum, mins, maxs);
  const float* rows = b ? sum : lut;
  double bias = 0, sum_span = 0;
  float max_span = 0.f;
  for (size_t m = 0; m < M; ++m) {
    const float span = maxs[m] - mins[m];
    bias += mins[m];
    sum_span += span;
    max_span = std::max(max_span, span);
  }
  ANNX_CHECK(InvalidArgument, finite && std::isfinite(max_span) && std::isfinite(sum_span),
             "pq4 quantize_lut: LUT entries must be finite (and so must their spans)");
  float a = 1.f;
  if (max_span > 0.f) a = static_cast<float>(std::min(255.0 / max_span, 65535.0 / sum_span));

  out.packed.resize(npairs(M) * 32);
  if (M & 1) std::memset(out.packed.data() + sq_offset(M), 0, 16);  // padding sub-quantizer
  for (int attempt = 0;; ++attempt) {
    // Entries are <= round(a * span_m) <= 255 by the choice of a; when the sum bound binds
    // (M > 257 or so), rounding can push the sum of the maxima past 65535 by up to M / 2,
    // and a shrinks: first in proportion, then (should that not do) to a value that no
    // rounding can push past the bound. A row's largest entry is that of its max (the
    // rounding is monotone), computed as quantize_row computes it.
    uint64_t sum_max = 0;
    for (size_t m = 0; m < M; ++m) {
      quantize_row(rows + m * 16, mins[m], a, out.packed.data() + sq_offset(m));
      const float v = a * (maxs[m] - mins[m]) + 0.5f;
      sum_max += v >= 255.f ? 255u : static_cast<uint64_t>(static_cast<int32_t>(v));
    }
    if (sum_max <= 65535) break;
    if (attempt < 3)
      a = static_cast<float>(a * (65535.0 / static_cast<double>(sum_max)));
    else  // sum <= a * sum_span + M / 2 <= 65535 - M / 2 (all zero if M is absurd)
      a = static_cast<float>(std::max((65535.0 - static_cast<double>(M)) / sum_span,
                                      0.49 / static_cast<double>(max_span)));
  }
  out.scale = a;
  out.bias = static_cast<float>(bias);
}

}  // namespace

void quantize_lut(const float* lut, size_t M, QuantizedLut& out) {
  quantize_rows(lut, nullptr, M, nullptr, out);
}

void quantize_lut_sum(const float* a, const float* b, size_t M, float* sum, QuantizedLut& out) {
  quantize_rows(a, b, M, sum, out);
}

}  // namespace annx::pq4
