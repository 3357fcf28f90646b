// Internal: each ISA translation unit exports exactly one function that fills a
// KernelTable with its kernels (everything else in those TUs has internal linkage,
// so no inline function compiled with wider ISA flags can leak into generic code).
#pragma once

#include "annx/simd/kernels.h"

namespace annx::kernels {
namespace scalar {
void fill_table(simd::KernelTable& t);
}
namespace avx2 {
void fill_table(simd::KernelTable& t);
}
namespace avx512 {
void fill_table(simd::KernelTable& t);
}
namespace avx512_icl {
void fill_table(simd::KernelTable& t);
}
namespace neon {
void fill_table(simd::KernelTable& t);
}
}  // namespace annx::kernels
