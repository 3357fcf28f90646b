// Internal: each ISA translation unit exports exactly one function that fills a
// KernelTable with its kernels (everything else in those TUs has internal linkage,
// so no inline function compiled with wider ISA flags can leak into generic code).
#pragma once

#include <cstddef>
#include <type_traits>

#include "annx/simd/kernels.h"

namespace annx::kernels {

/// The query-count dispatch of the multi-query kernels: calls
/// `block(a, std::integral_constant<int, QA>{})` for the queries [a, a + QA) of [0, nq),
/// in blocks of QA = 4 and one last block of 1 to 3. (Instantiated with an ISA TU's own
/// lambda, so the instance stays inside that TU.)
template <class Block>
inline void in_query_blocks_of_4(size_t nq, Block&& block) {
  size_t a = 0;
  for (; a + 4 <= nq; a += 4) block(a, std::integral_constant<int, 4>{});
  switch (nq - a) {
    case 3: block(a, std::integral_constant<int, 3>{}); break;
    case 2: block(a, std::integral_constant<int, 2>{}); break;
    case 1: block(a, std::integral_constant<int, 1>{}); break;
    default: break;
  }
}

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
