// CRC-32C with the ARMv8 CRC32C instructions (optional in ARMv8.0, mandatory from v8.1;
// every Apple, Graviton and Ampere core has them). This is the only file compiled with
// -march=armv8-a+crc; crc32c.cpp calls it only after checking the CPU (HWCAP_CRC32 on
// Linux). Nothing here is inline or visible outside this file but the one function, for
// the reason crc32c_sse42.cpp gives.
//
// CRC32CX has a latency of 2-3 cycles and a throughput of one per cycle on big cores, so
// the main loop runs three independent CRCs over three adjacent 1 KB blocks and combines
// them by shifting a register over a block of zeros, a multiplication modulo the
// polynomial done in software (32 steps, once per 3 KB: no PMULL/crypto extension needed).
#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))

#ifndef __ARM_FEATURE_CRC32
#error "crc32c_arm.cpp must be compiled with -march=armv8-a+crc"
#endif

#include <arm_acle.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace annx::io::detail {

namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // bit-reflected Castagnoli polynomial
constexpr size_t kBlock = 1024;          // bytes per stream in the three-way loop

/// x^(8n) mod P in the bit-reflected domain, i.e. the CRC register after n zero bytes
/// starting from the register 0x80000000 ("1").
uint32_t xpow8n(size_t n) {
  uint32_t acc = 0x80000000u;  // x^0
  // Multiply by x eight times per byte (small n only: computed once per call site).
  for (size_t i = 0; i < 8 * n; ++i) acc = (acc & 1) ? (acc >> 1) ^ kPoly : acc >> 1;
  return acc;
}

/// a * b mod P in the bit-reflected domain (a, b are polynomials with x^0 at bit 31).
uint32_t gf_mul(uint32_t a, uint32_t b) {
  uint32_t p = 0;
  for (int i = 0; i < 32; ++i) {
    if (b & 0x80000000u) p ^= a;
    b <<= 1;
    a = (a & 1) ? (a >> 1) ^ kPoly : a >> 1;
  }
  return p;
}

inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace

uint32_t crc32c_armv8(const void* data, size_t n, uint32_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t crc = ~seed;
  if (n >= 3 * kBlock) {
    // Shifting a register over kBlock zero bytes is a multiplication by x^(8 kBlock).
    static const uint32_t kShift1 = xpow8n(kBlock), kShift2 = xpow8n(2 * kBlock);
    while (n >= 3 * kBlock) {
      uint32_t c0 = crc, c1 = 0, c2 = 0;
      for (size_t i = 0; i < kBlock; i += 8) {
        c0 = __crc32cd(c0, load64(p + i));
        c1 = __crc32cd(c1, load64(p + kBlock + i));
        c2 = __crc32cd(c2, load64(p + 2 * kBlock + i));
      }
      crc = gf_mul(c0, kShift2) ^ gf_mul(c1, kShift1) ^ c2;
      p += 3 * kBlock;
      n -= 3 * kBlock;
    }
  }
  for (; n >= 8; n -= 8, p += 8) crc = __crc32cd(crc, load64(p));
  for (; n > 0; --n) crc = __crc32cb(crc, *p++);
  return ~crc;
}

}  // namespace annx::io::detail

#endif
