// The list layout of 8-bit PQ codes: blocks of 32 vectors, stored sub-quantizer by
// sub-quantizer (byte m * 32 + t of a block is code m of the block's vector t).
//
// Scanning then walks one sub-quantizer at a time: its 256-entry table (1 KB) stays
// in L1 while the codes of 32 vectors index it (KernelTable::pq8_adc_blocks), instead of
// every code touching all M tables (M KB, beyond L1 for M > 32) as a row-major scan does.
#pragma once

#include <cstddef>
#include <cstdint>

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

}  // namespace annx::pq8
