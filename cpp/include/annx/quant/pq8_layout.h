// The list layout of 8-bit PQ codes: blocks of 32 vectors, stored sub-quantizer by
// sub-quantizer (byte m * 32 + t of a block is code m of the block's vector t).
//
// Scanning then walks one sub-quantizer at a time: its 256-entry table (1 KB) stays
// in L1 while the codes of 32 vectors index it (KernelTable::pq8_adc_blocks), instead of
// every code touching all M tables (M KB, beyond L1 for M > 32) as a row-major scan does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace annx::pq8 {

constexpr size_t kBlock = 32;  // vectors per block
inline size_t block_bytes(size_t M) { return kBlock * M; }
inline size_t nblocks(size_t n) { return (n + kBlock - 1) / kBlock; }

/// One vector's code (M bytes) read from / written into the blocks (vector i of the list).
inline void get_code(const uint8_t* blocks, size_t M, size_t i, uint8_t* code) {
  const uint8_t* b = blocks + (i / kBlock) * block_bytes(M) + i % kBlock;
  for (size_t m = 0; m < M; ++m) code[m] = b[m * kBlock];
}
inline void set_code(uint8_t* blocks, size_t M, size_t i, const uint8_t* code) {
  uint8_t* b = blocks + (i / kBlock) * block_bytes(M) + i % kBlock;
  for (size_t m = 0; m < M; ++m) b[m * kBlock] = code[m];
}

/// Vector i's float sum over the table (lut: M x 256 floats), m ascending from 0.f: the
/// value KernelTable::pq8_adc_blocks writes for it, bit for bit.
inline float code_sum(const uint8_t* blocks, size_t M, size_t i, const float* lut) {
  const uint8_t* b = blocks + (i / kBlock) * block_bytes(M) + i % kBlock;
  float s = 0.f;
  for (size_t m = 0; m < M; ++m) s += lut[m * 256 + b[m * kBlock]];
  return s;
}

/// A table (M x 256 floats) quantised to bytes for KernelTable::pq8_accumulate_u8
/// (KernelTable::pq8_byte_lut): q[m][j] = round(scale * (lut[m][j] - min_m)),
/// scale = 255 / (largest span max_m - min_m), so entries are in [0, 255] and a code's
/// byte sum S is exact in 16 bits for M <= 257. Its float sum D (code_sum) then satisfies
///   D >= bias + (S - M / 2 - 1) / scale - slop,
/// bias = sum_m min_m, slop covering the float rounding of D (about M ulps of sum_m
/// max_j |lut[m][j]|); byte_sum_bound turns a distance threshold into the largest S that
/// can still reach it, so the codes above it are skipped without changing any answer.
struct ByteLut {
  std::vector<uint8_t> q;  // M x 256
  double scale = 1.0;
  double bias = 0.0;
  double abs_sum = 0.0;  // sum_m max_j |lut[m][j]|
  size_t M = 0;
  bool ok = false;  // quantised (false: an entry was not finite, or M > 257)
};
/// Quantises the table a (M x 256 floats) or, with b, a + b, which is then also written
/// to `sum`; returns out.ok.
bool quantize_lut(const float* a, const float* b, size_t M, float* sum, ByteLut& out);
/// The largest byte sum whose code can have code_sum + extra <= thr (`extra`: a term the
/// caller adds to every sum, itself rounded in float), saturated at 65535; false when
/// no code can (every sum is above thr).
bool byte_sum_bound(const ByteLut& b, float thr, float extra, uint16_t& bound);
/// The largest byte sum whose code can score no worse than some code of byte sum `s`
/// (both with `extra` added): given the k-th smallest byte sum of a list, every code above
/// the returned bound is worse than k codes of that list, saturated at 65535.
uint16_t byte_sum_bound_from_sum(const ByteLut& b, uint16_t s, float extra);

}  // namespace annx::pq8
