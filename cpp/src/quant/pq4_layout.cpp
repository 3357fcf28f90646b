// pq4 layout packing and LUT quantisation (see annx/quant/pq4_layout.h). None of this is
// on a per-distance path: pack/set_code run once per added vector, quantize_lut once per
// (query, list) at M x 16 cost, its row loops in kernels (pq4_lut_stats,
// pq4_quantize_rows), so it is written plainly.
#include "annx/quant/pq4_layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "annx/common/error.h"
#include "annx/simd/kernels.h"

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

void quantize_rows(const float* lut, const float* b, size_t M, float* sum, QuantizedLut& out) {
  // Once per (query, probed list) in IVF search: the row statistics and the rounding are
  // kernels (one 16-entry row per AVX-512 register).
  const auto& K = simd::kernels();
  float stats_small[512];
  std::vector<float> stats_large;
  float* mins = stats_small;
  if (M > 256) {
    stats_large.resize(2 * M);
    mins = stats_large.data();
  }
  float* maxs = mins + M;
  const bool finite = K.pq4_lut_stats(lut, b, M, sum, mins, maxs);
  double bias = 0, sum_span = 0;
  float max_span = 0.f;
  if (finite) {
    for (size_t m = 0; m < M; ++m) {
      const float span = maxs[m] - mins[m];
      bias += mins[m];
      sum_span += span;
      max_span = std::max(max_span, span);
    }
  }
  ANNX_CHECK(InvalidArgument, finite && std::isfinite(max_span) && std::isfinite(sum_span),
             "pq4 quantize_lut: LUT entries must be finite (and so must their spans)");
  float a = 1.f;
  if (max_span > 0.f) a = static_cast<float>(std::min(255.0 / max_span, 65535.0 / sum_span));
  // Each row's largest entry is at most a * span_m + 1 (rounding), so the sum of the
  // maxima can only pass 65535 when a * sum_span + M does (M > 257 or so).
  const bool sum_may_overflow =
      static_cast<double>(a) * sum_span + static_cast<double>(M) > 65535.0;
  for (int attempt = 0; sum_may_overflow; ++attempt) {
    // Entries are <= round(a * span_m) <= 255 by the choice of a; when the sum bound binds
    // (M > 257 or so), rounding can push the sum of the maxima past 65535 by up to M / 2,
    // and a shrinks: first in proportion, then (should that not do) to a value that no
    // rounding can push past the bound. A row's largest entry is that of its max (the
    // rounding is monotone), computed as pq4_quantize_rows computes it.
    uint64_t sum_max = 0;
    for (size_t m = 0; m < M; ++m) {
      float p = a * (maxs[m] - mins[m]);
      asm("" : "+m"(p));  // the product rounded to float, as the kernel rounds it
      const float v = p + 0.5f;
      sum_max += v >= 255.f ? 255u : static_cast<uint64_t>(static_cast<int32_t>(v));
    }
    if (sum_max <= 65535) break;
    if (attempt < 3)
      a = static_cast<float>(a * (65535.0 / static_cast<double>(sum_max)));
    else  // sum <= a * sum_span + M / 2 <= 65535 - M / 2 (all zero if M is absurd)
      a = static_cast<float>(std::max((65535.0 - static_cast<double>(M)) / sum_span,
                                      0.49 / static_cast<double>(max_span)));
  }
  out.packed.resize(npairs(M) * 32);
  K.pq4_quantize_rows(b ? sum : lut, mins, a, M, out.packed.data());
  if (M & 1) std::memset(out.packed.data() + sq_offset(M), 0, 16);  // padding sub-quantizer
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
