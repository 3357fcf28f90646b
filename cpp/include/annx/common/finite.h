// The one finiteness scan for float input (index rows, token sets, loaded tokens).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace annx {

/// Index of the first NaN or infinity in x[0, n), or n when every value is finite.
/// Blocks are screened with an integer test on the exponent bits (all ones only for
/// non-finite values), which vectorises; only a flagged block is searched element-wise.
inline size_t first_non_finite(const float* x, size_t n) {
  constexpr size_t kBlock = 4096;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t e = n - b < kBlock ? n : b + kBlock;
    uint32_t bad = 0;
    for (size_t j = b; j < e; ++j) {
      uint32_t u;
      std::memcpy(&u, x + j, 4);
      bad |= static_cast<uint32_t>((u & 0x7f800000u) == 0x7f800000u);
    }
    if (bad)
      for (size_t j = b; j < e; ++j) {
        uint32_t u;
        std::memcpy(&u, x + j, 4);
        if ((u & 0x7f800000u) == 0x7f800000u) return j;
      }
  }
  return n;
}

/// Exponent masks of the 16-bit formats (all ones only for non-finite values).
inline constexpr uint16_t kF16ExpMask = 0x7c00;
inline constexpr uint16_t kBF16ExpMask = 0x7f80;

/// Index of the first non-finite value of n half-precision (F16 or BF16, by `exp_mask`)
/// values, or n when every value is finite.
inline size_t first_non_finite_half(const uint16_t* x, size_t n, uint16_t exp_mask) {
  for (size_t j = 0; j < n; ++j)
    if ((x[j] & exp_mask) == exp_mask) return j;
  return n;
}

/// Largest squared norm of a vector annx stores or searches with (|x| <= 2^62, about
/// 4.6e18): squared distances and inner products of two such vectors, at most
/// (|q| + |x|)^2 <= 2^126, stay finite in float32. Larger finite input is refused.
inline constexpr double kMaxNorm2 = 0x1p124;

/// Largest squared norm of a multi-vector token (|t| <= 2^40, about 1.1e12): a token
/// pair's inner product is at most 2^80, so Chamfer sums and FDE inner products over sets
/// of up to 2^20 tokens each (2^40 pairs) stay finite in float32.
inline constexpr double kMaxTokenNorm2 = 0x1p80;

/// Squared norm of x[0, d) in double (no overflow or underflow for float input).
inline double norm2_f64(const float* x, size_t d) {
  double s = 0;
  for (size_t j = 0; j < d; ++j) s += double{x[j]} * x[j];
  return s;
}

/// Whether row x[0, d) is finite with squared norm <= kMaxNorm2, given `fast_norm2`, its
/// squared norm in float by any summation order (NaN or inf for a non-finite row). Far
/// below the limit the float value decides (its error is far under 1 %); near it, or for
/// NaN / inf, the row is checked exactly in double, so every caller agrees on every row.
inline bool row_in_range(const float* x, size_t d, float fast_norm2) {
  if (fast_norm2 <= 0x1p123f) return true;  // false for NaN
  return first_non_finite(x, d) == d && norm2_f64(x, d) <= kMaxNorm2;
}

/// Index of the first of n rows of d floats whose squared norm exceeds kMaxNorm2 (or that
/// is not finite), or n. Exact, in double; for small inputs (the kernels' version is in
/// VectorCodec::first_invalid_code and Index::prepare_input).
inline size_t first_oversized_row(const float* x, size_t n, size_t d,
                                  double max_norm2 = kMaxNorm2) {
  for (size_t i = 0; i < n; ++i)
    if (!(norm2_f64(x + i * d, d) <= max_norm2)) return i;
  return n;
}

}  // namespace annx
