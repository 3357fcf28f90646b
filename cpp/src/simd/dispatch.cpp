// Builds one KernelTable per compiled ISA level. Each table starts as a copy of the
// scalar one, so a level only needs to provide the kernels it speeds up.
#include <array>

#include "annx/common/error.h"
#include "annx/simd/kernels.h"
#include "../kernels/kernel_tables.h"

namespace annx::simd {
namespace {

struct Tables {
  std::array<KernelTable, 5> t{};
  Tables() {
    // A level's fill_table is compiled for that level and may itself use its
    // instructions (the compiler vectorises the stores): call it only where the CPU has
    // them, or an AVX2-only CPU dies of SIGILL at the first kernel lookup. Levels the CPU
    // lacks keep the scalar table (never selected: kernels(isa) refuses them).
    kernels::scalar::fill_table(t[0]);
    for (auto& x : t) x = t[0];
#ifdef ANNX_HAVE_AVX2
    if (cpu_supports(Isa::Avx2)) kernels::avx2::fill_table(t[1]);
#endif
#ifdef ANNX_HAVE_AVX512
    if (cpu_supports(Isa::Avx512)) kernels::avx512::fill_table(t[2]);
#endif
#ifdef ANNX_HAVE_AVX512_ICL
    if (cpu_supports(Isa::Avx512Icl)) kernels::avx512_icl::fill_table(t[3]);
#endif
#ifdef ANNX_HAVE_NEON
    if (cpu_supports(Isa::Neon)) kernels::neon::fill_table(t[4]);
#endif
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

size_t code_size(DistKind kind, size_t d) {
  switch (kind) {
    case DistKind::L2_F32:
    case DistKind::IP_F32: return d * 4;
    case DistKind::L2_F16:
    case DistKind::IP_F16:
    case DistKind::L2_BF16:
    case DistKind::IP_BF16: return d * 2;
    case DistKind::IP_U8:
    case DistKind::WL2_U8: return d;
    default: break;
  }
  throw InvalidArgument("unknown distance kind");
}

const KernelTable& kernels(Isa isa) {
  ANNX_CHECK(InvalidArgument, compiled(isa) && cpu_supports(isa), "ISA '", isa_name(isa),
             "' is not available here");
  return tables().t[static_cast<int>(isa)];
}

const KernelTable& kernels() { return tables().t[static_cast<int>(active_isa())]; }

}  // namespace annx::simd
