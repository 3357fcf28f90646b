// The packed code layout and LUT quantisation of 4-bit PQ "fast-scan" (faiss's pq4
// layout, Quick ADC by André et al.). ISA-neutral: the kernel that consumes both is
// KernelTable::pq4_accumulate (annx/simd/kernels.h).
//
// Codes: vectors are grouped in blocks of kBlock = 32; M sub-quantizers are padded to an
// even count and taken in pairs (2j, 2j+1). One block holds npairs(M) * 32 bytes; pair j
// of a block occupies bytes [32j, 32j + 32):
//   bytes 0-15 hold sub-quantizer 2j, bytes 16-31 sub-quantizer 2j+1;
//   byte t (of each 16) packs vector pi(t) in its low nibble and vector pi(t) + 16 in its
//   high nibble, pi = (0, 8, 1, 9, 2, 10, ..., 7, 15).
// The interleave makes the 16-bit accumulation of the kernel come out in vector order.
// Identical to faiss's pq4_pack_codes with bbs = 32 (for cross-checking).
//
// LUT: per sub-quantizer 16 uint8 entries, pair j at bytes [32j, 32j + 32) (16 entries of
// 2j, then 16 of 2j+1); one 128-bit lane per sub-quantizer, as a byte shuffle wants it.
//
// Quantisation error: entries are rounded to the nearest integer after scaling by a, so
// each of the M terms is off by at most 1/(2a) and
//   |bias + acc / a - float ADC| <= M / (2a)   (plus float rounding slack).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace annx::pq4 {

constexpr size_t kBlock = 32;                           // vectors per block
inline size_t npairs(size_t M) { return (M + 1) / 2; }  // M padded to even
inline size_t block_bytes(size_t M) { return npairs(M) * 32; }
inline size_t nblocks(size_t n) { return (n + kBlock - 1) / kBlock; }

/// Packs n codes (row i: M bytes, each value 0..15; higher bits are ignored) into
/// nblocks(n) blocks at `out` (nblocks(n) * block_bytes(M) bytes, fully written; padding
/// vectors and the padding sub-quantizer get code 0).
void pack(const uint8_t* codes, size_t n, size_t M, uint8_t* out);
/// Inverse for vectors [0, n): codes n x M.
void unpack(const uint8_t* blocks, size_t n, size_t M, uint8_t* codes);
/// One vector's code (M values) read from / written into packed blocks (vector i of the
/// list; set_code ignores bits above the low nibble of each value).
void get_code(const uint8_t* blocks, size_t M, size_t i, uint8_t* code);
void set_code(uint8_t* blocks, size_t M, size_t i, const uint8_t* code);

/// Quantised LUT. `lut`: M x 16 floats, "lower is better" partial distances (finite;
/// throws InvalidArgument otherwise).
/// Per sub-quantizer min is subtracted; one global scale a = min(255 / max span,
/// 65535 / sum of spans) (if every span is 0, a = 1); q[m][j] = round(a * (lut[m][j] - min_m))
/// in [0, 255]; packed in kernel layout (npairs(M) * 32 bytes; padding sub-quantizer all
/// zero). In the rare case where rounding pushes the sum of the per-m maxima past 65535,
/// a is lowered until it fits, so the kernel's uint16 sums are always exact.
/// The approximate distance of a code is bias + acc / a, with bias = sum_m min_m
/// (error bound above).
struct QuantizedLut {
  std::vector<uint8_t> packed;
  float scale = 1.f;  // a
  float bias = 0.f;
};
void quantize_lut(const float* lut, size_t M, QuantizedLut& out);
/// The same for the table a + b (M x 16 floats each), which is also written to `sum`
/// (one pass: IVF's L2 residual tables are a precomputed row plus the query's term).
void quantize_lut_sum(const float* a, const float* b, size_t M, float* sum, QuantizedLut& out);

}  // namespace annx::pq4
