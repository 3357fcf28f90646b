// Instruction-set levels and run-time selection.
//
// annx compiles one kernel set per ISA level into its own translation unit and picks
// one at run time from CPUID/XGETBV (x86) or the AArch64 baseline (NEON, always present
// there) so that a single portable build runs fast
// everywhere. The active level can be forced lower (never higher than the CPU
// supports) with the ANNX_ISA environment variable or annx::simd::set_active_isa().
#pragma once

#include <string>
#include <vector>

namespace annx::simd {

enum class Isa : int {
  Scalar = 0,     // portable C++; the reference every other level is tested against
  Avx2 = 1,       // AVX2 + FMA + F16C + POPCNT (Haswell, Zen 1 and later)
  Avx512 = 2,     // AVX-512 F/BW/DQ/VL (Skylake-SP, Zen 4 and later)
  Avx512Icl = 3,  // Avx512 + VNNI + VPOPCNTDQ + VBMI (Ice Lake, Sapphire Rapids, Zen 4)
  Neon = 4,       // AArch64 Advanced SIMD (every 64-bit ARM: Apple M*, Graviton, Ampere)
};

/// Lower-case name used by ANNX_ISA / annx.set_isa ("scalar", "avx2", "avx512", "avx512_icl",
/// "neon").
const char* isa_name(Isa isa);
/// Parses a name; throws InvalidArgument listing the valid names.
Isa parse_isa(const std::string& name);

/// Whether this CPU and OS (saved register state) can run the level.
bool cpu_supports(Isa isa);
/// Whether this build contains the kernels of the level.
bool compiled(Isa isa);
/// Levels that are both compiled and supported, lowest first.
std::vector<Isa> available_isas();
/// Best available level.
Isa best_isa();

/// The level in use. Initialised from ANNX_ISA (if set and valid) else best_isa().
Isa active_isa();
/// Forces a level; throws InvalidArgument if the CPU or the build lacks it.
void set_active_isa(Isa isa);

/// CPU brand string, for show_config and benchmark records.
std::string cpu_brand();
/// Compiler and version that built annx.
std::string compiler_id();

/// Non-empty when ANNX_ISA was set to an unknown or unsupported level (then ignored).
std::string isa_env_warning();

}  // namespace annx::simd
