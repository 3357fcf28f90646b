// CPU feature detection (CPUID + XGETBV on x86) and the process-wide active ISA.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "annx/common/error.h"
#include "annx/simd/isa.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define ANNX_X86 1
#include <cpuid.h>
#else
#define ANNX_X86 0
#endif

namespace annx::simd {
namespace {

#if ANNX_X86
struct CpuFeatures {
  bool avx2 = false, avx512 = false, avx512_icl = false;
};

uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures probe() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = c & (1u << 12), popcnt = c & (1u << 23), osxsave = c & (1u << 27),
             avx = c & (1u << 28), f16c = c & (1u << 29);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_saved = (xcr0 & 0x6) == 0x6;            // SSE + AVX state
  const bool zmm_saved = (xcr0 & 0xe6) == 0xe6;          // + opmask, ZMM_Hi256, Hi16_ZMM
  unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0;
  if (!__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7)) return f;
  const bool avx2 = b7 & (1u << 5);
  f.avx2 = ymm_saved && avx2 && fma && f16c && popcnt;
  const bool avx512f = b7 & (1u << 16), avx512dq = b7 & (1u << 17), avx512bw = b7 & (1u << 30),
             avx512vl = b7 & (1u << 31);
  f.avx512 = f.avx2 && zmm_saved && avx512f && avx512dq && avx512bw && avx512vl;
  const bool vnni = c7 & (1u << 11), vpopcntdq = c7 & (1u << 14);
  f.avx512_icl = f.avx512 && vnni && vpopcntdq;
  return f;
}

const CpuFeatures& features() {
  static const CpuFeatures f = probe();
  return f;
}
#endif

constexpr Isa kAll[] = {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Icl};

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
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  for (Isa i : kAll)
    if (name == isa_name(i)) return i;
  throw InvalidArgument("unknown ISA '" + name +
                        "': expected one of 'scalar', 'avx2', 'avx512', 'avx512_icl'");
}

bool cpu_supports(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
#if ANNX_X86
    case Isa::Avx2: return features().avx2;
    case Isa::Avx512: return features().avx512;
    case Isa::Avx512Icl: return features().avx512_icl;
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
  unsigned a, b, c, d;
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000004u) {
    for (unsigned i = 0; i < 3; ++i)
      __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    char s[49] = {};
    std::memcpy(s, regs, 48);
    std::string out(s);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  }
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
