// CPU feature detection (CPUID + XGETBV on x86; AArch64 has NEON by definition) and the
// process-wide active ISA. The CPUID/XGETBV access is GCC/Clang (<cpuid.h>, inline asm)
// or MSVC (<intrin.h>) code; the MSVC branch compiles in principle but was never built
// here (no Windows toolchain at hand).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "annx/common/error.h"
#include "annx/simd/isa.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define ANNX_X86 1
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#define ANNX_X86_MSVC 1
#else
#include <cpuid.h>
#define ANNX_X86_MSVC 0
#endif
#else
#define ANNX_X86 0
#endif

#if defined(__aarch64__) || defined(_M_ARM64)
#define ANNX_ARM64 1
#else
#define ANNX_ARM64 0
#endif

namespace annx::simd {
namespace {

#if ANNX_X86
struct CpuFeatures {
  bool avx2 = false, avx512 = false, avx512_icl = false;
};

/// CPUID leaf/subleaf into r[0..3] = eax, ebx, ecx, edx; false if the leaf is beyond the
/// highest one the CPU reports (for its range, basic or extended).
bool cpuid(unsigned leaf, unsigned sub, unsigned* r) {
#if ANNX_X86_MSVC
  int x[4];
  __cpuid(x, static_cast<int>(leaf & 0x80000000u));
  if (static_cast<unsigned>(x[0]) < leaf) return false;
  __cpuidex(x, static_cast<int>(leaf), static_cast<int>(sub));
  for (int i = 0; i < 4; ++i) r[i] = static_cast<unsigned>(x[i]);
  return true;
#else
  return __get_cpuid_count(leaf, sub, &r[0], &r[1], &r[2], &r[3]) != 0;
#endif
}

uint64_t read_xcr0() {
#if ANNX_X86_MSVC
  return static_cast<uint64_t>(_xgetbv(0));
#else
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
#endif
}

CpuFeatures probe() {
  CpuFeatures f;
  unsigned r1[4] = {};
  if (!cpuid(1, 0, r1)) return f;
  const unsigned c = r1[2];
  const bool fma = c & (1u << 12), popcnt = c & (1u << 23), osxsave = c & (1u << 27),
             avx = c & (1u << 28), f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_saved = (xcr0 & 0x6) == 0x6;            // SSE + AVX state
  const bool zmm_saved = (xcr0 & 0xe6) == 0xe6;          // + opmask, ZMM_Hi256, Hi16_ZMM
  unsigned r7[4] = {};
  if (!cpuid(7, 0, r7)) return f;
  const unsigned b7 = r7[1], c7 = r7[2];
  const bool avx2 = b7 & (1u << 5);
  f.avx2 = ymm_saved && avx2 && fma && f16c && popcnt;
  const bool avx512f = b7 & (1u << 16), avx512dq = b7 & (1u << 17), avx512bw = b7 & (1u << 30),
             avx512vl = b7 & (1u << 31);
  f.avx512 = f.avx2 && zmm_saved && avx512f && avx512dq && avx512bw && avx512vl;
  const bool vbmi = c7 & (1u << 1), vnni = c7 & (1u << 11), vpopcntdq = c7 & (1u << 14);
  f.avx512_icl = f.avx512 && vbmi && vnni && vpopcntdq;
  return f;
}

const CpuFeatures& features() {
  static const CpuFeatures f = probe();
  return f;
}
#endif

constexpr Isa kAll[] = {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Icl, Isa::Neon};

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{-1};
  return slot;
}

std::string& env_warning_slot() {
  static std::string w;
  return w;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Icl: return "avx512_icl";
    case Isa::Neon: return "neon";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  for (Isa i : kAll)
    if (name == isa_name(i)) return i;
  throw InvalidArgument("unknown ISA '" + name +
                        "': expected one of 'scalar', 'avx2', 'avx512', 'avx512_icl', 'neon'");
}

bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
#if ANNX_X86
    case Isa::Avx2: return features().avx2;
    case Isa::Avx512: return features().avx512;
    case Isa::Avx512Icl: return features().avx512_icl;
#endif
#if ANNX_ARM64
    case Isa::Neon: return true;  // Advanced SIMD is mandatory in AArch64
#endif
    default: return false;
  }
}

bool compiled(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
#ifdef ANNX_HAVE_AVX2
    case Isa::Avx2: return true;
#endif
#ifdef ANNX_HAVE_AVX512
    case Isa::Avx512: return true;
#endif
#ifdef ANNX_HAVE_AVX512_ICL
    case Isa::Avx512Icl: return true;
#endif
#ifdef ANNX_HAVE_NEON
    case Isa::Neon: return true;
#endif
    default: return false;
  }
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa i : kAll)
    if (compiled(i) && cpu_supports(i)) out.push_back(i);
  return out;
}

Isa best_isa() { return available_isas().back(); }

namespace {
Isa initial_isa() {
  const Isa best = best_isa();
  const char* env = std::getenv("ANNX_ISA");
  if (!env || !*env) return best;
  try {
    const Isa want = parse_isa(env);
    if (compiled(want) && cpu_supports(want)) return want;
    env_warning_slot() = std::string("ANNX_ISA=") + env +
                         " is not available on this CPU/build; using " + isa_name(best);
  } catch (const InvalidArgument& e) {
    env_warning_slot() = std::string("ignoring ANNX_ISA: ") + e.what();
  }
  return best;
}
}  // namespace

Isa active_isa() {
  int v = active_slot().load(std::memory_order_acquire);
  if (v < 0) {
    static std::once_flag once;
    std::call_once(once, [] {
      int expected = -1;
      active_slot().compare_exchange_strong(expected, static_cast<int>(initial_isa()));
    });
    v = active_slot().load(std::memory_order_acquire);
  }
  return static_cast<Isa>(v);
}

void set_active_isa(Isa isa) {
  ANNX_CHECK(InvalidArgument, compiled(isa), "ISA '", isa_name(isa),
             "' is not compiled into this build of annx");
  ANNX_CHECK(InvalidArgument, cpu_supports(isa), "ISA '", isa_name(isa),
             "' is not supported by this CPU (best available: '", isa_name(best_isa()), "')");
  active_isa();  // make sure the env-derived initial value is not applied afterwards
  active_slot().store(static_cast<int>(isa), std::memory_order_release);
}

std::string isa_env_warning() {
  active_isa();
  return env_warning_slot();
}

std::string cpu_brand() {
#if ANNX_X86
  unsigned regs[12] = {};
  unsigned r[4] = {};
  if (cpuid(0x80000000u, 0, r) && r[0] >= 0x80000004u) {
    for (unsigned i = 0; i < 3; ++i) cpuid(0x80000002u + i, 0, &regs[4 * i]);
    char s[49] = {};
    std::memcpy(s, regs, 48);
    std::string out(s);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  }
#elif ANNX_ARM64
  return "aarch64";  // no portable brand string on ARM (MIDR needs a table of part names)
#endif
  return "unknown";
}

std::string compiler_id() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
  return "msvc " + std::to_string(_MSC_VER);
#else
  return "unknown";
#endif
}

}  // namespace annx::simd
