// CRC-32C (Castagnoli): a portable slice-by-8 implementation, and run-time dispatch to the
// SSE4.2 one (crc32c_sse42.cpp, the only file built with -msse4.2) or the ARMv8 one
// (crc32c_arm.cpp, the only file built with -march=armv8-a+crc) when the CPU has it.
#include <array>
#include <cstddef>
#include <cstdint>

#include "annx/io/container.h"

// Whether crc32c_sse42.cpp is part of the build (x86 with GCC/Clang). Can be forced to 0
// with -DANNX_CRC32C_X86=0 to build and test the portable-only configuration.
#ifndef ANNX_CRC32C_X86
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define ANNX_CRC32C_X86 1
#else
#define ANNX_CRC32C_X86 0
#endif
#endif

// The same for crc32c_arm.cpp on AArch64 (CMake passes -DANNX_CRC32C_ARM=0 when the
// compiler cannot build it).
#ifndef ANNX_CRC32C_ARM
#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define ANNX_CRC32C_ARM 1
#else
#define ANNX_CRC32C_ARM 0
#endif
#endif
#if ANNX_CRC32C_ARM && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

namespace annx::io {

#if ANNX_CRC32C_X86
namespace detail {
// Defined in crc32c_sse42.cpp; call only when the CPU supports SSE4.2.
uint32_t crc32c_sse42(const void* data, size_t n, uint32_t seed);
}  // namespace detail
#endif
#if ANNX_CRC32C_ARM
namespace detail {
// Defined in crc32c_arm.cpp; call only when the CPU has the CRC32 instructions.
uint32_t crc32c_armv8(const void* data, size_t n, uint32_t seed);
}  // namespace detail
#endif

namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // Castagnoli polynomial, bit-reflected

using Tables = std::array<std::array<uint32_t, 256>, 8>;

// tables[0] is the classic byte-at-a-time table; tables[k][b] is the CRC of byte b
// followed by k zero bytes, so eight bytes can be folded with eight independent lookups.
constexpr Tables make_tables() {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][b] = c;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
  }
  return t;
}

constexpr Tables kTables = make_tables();

using CrcFn = uint32_t (*)(const void*, size_t, uint32_t);

CrcFn pick_impl() {
#if ANNX_CRC32C_X86
  if (__builtin_cpu_supports("sse4.2")) return &detail::crc32c_sse42;
#endif
#if ANNX_CRC32C_ARM
#if defined(__linux__)
  if (getauxval(AT_HWCAP) & HWCAP_CRC32) return &detail::crc32c_armv8;
#elif defined(__APPLE__)
  return &detail::crc32c_armv8;  // every Apple arm64 core has CRC32
#endif
#endif
  return &detail::crc32c_portable;
}

// Chosen once, on first use (thread-safe static initialisation).
CrcFn impl() {
  static const CrcFn fn = pick_impl();
  return fn;
}

}  // namespace

namespace detail {

uint32_t crc32c_portable(const void* data, size_t n, uint32_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t crc = ~seed;
  // Byte-wise until 8-byte aligned, so the main loop's loads are aligned.
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    crc = (crc >> 8) ^ kTables[0][(crc ^ *p++) & 0xFF];
    --n;
  }
  while (n >= 8) {
    // Explicit little-endian assembly; compilers turn it into one load on LE hosts.
    uint32_t lo = static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                  static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
    uint32_t hi = static_cast<uint32_t>(p[4]) | static_cast<uint32_t>(p[5]) << 8 |
                  static_cast<uint32_t>(p[6]) << 16 | static_cast<uint32_t>(p[7]) << 24;
    lo ^= crc;
    crc = kTables[7][lo & 0xFF] ^ kTables[6][(lo >> 8) & 0xFF] ^ kTables[5][(lo >> 16) & 0xFF] ^
          kTables[4][lo >> 24] ^ kTables[3][hi & 0xFF] ^ kTables[2][(hi >> 8) & 0xFF] ^
          kTables[1][(hi >> 16) & 0xFF] ^ kTables[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    crc = (crc >> 8) ^ kTables[0][(crc ^ *p++) & 0xFF];
    --n;
  }
  return ~crc;
}

}  // namespace detail

uint32_t crc32c(const void* data, size_t n, uint32_t seed) {
  if (n == 0) return seed;  // also makes a null `data` with n == 0 safe
  return impl()(data, n, seed);
}

const char* crc32c_backend() {
#if ANNX_CRC32C_X86
  if (impl() == &detail::crc32c_sse42) return "sse4.2";
#endif
#if ANNX_CRC32C_ARM
  if (impl() == &detail::crc32c_armv8) return "armv8-crc";
#endif
  return "portable";
}

}  // namespace annx::io
