// The one check of vectors and queries handed to an index (Index and MultiTenantIndex).
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "annx/common/error.h"
#include "annx/common/finite.h"
#include "annx/common/normalize.h"
#include "annx/common/types.h"
#include "annx/simd/kernels.h"

namespace annx {

/// Validates n rows of d floats and returns the rows to use: x itself for l2 / ip (every
/// value finite, every norm within kMaxNorm2, finite.h), or a copy in `buf` normalised to
/// unit length for cosine (no zero rows). Throws InvalidArgument naming `what`, the row and
/// the column; nothing is changed on error.
inline const float* checked_input_rows(const float* x, size_t n, size_t d, Metric metric,
                                       const char* what, std::vector<float>& buf) {
  const size_t bad = first_non_finite(x, n * d);
  ANNX_CHECK(InvalidArgument, bad == n * d, what, " contains a non-finite value (",
             bad < n * d ? x[bad] : 0.f, ") at row ", bad / d, ", column ", bad % d);
  if (metric != Metric::Cosine) {
    const auto ip = simd::kernels().one[static_cast<int>(simd::DistKind::IP_F32)];
    for (size_t i = 0; i < n; ++i) {
      const float* r = x + i * d;
      ANNX_CHECK(InvalidArgument, row_in_range(r, d, ip(r, r, d, nullptr)), what, " row ", i,
                 " has norm ", std::sqrt(norm2_f64(r, d)),
                 ", beyond annx's range (norms up to 2^62 ~ 4.6e18, so that squared distances "
                 "fit in float32)");
    }
    return x;
  }
  buf.assign(x, x + n * d);
  for (size_t i = 0; i < n; ++i) {
    ANNX_CHECK(InvalidArgument, normalize_row(buf.data() + i * d, d), what, " row ", i,
               " is a zero vector, which has no cosine similarity");
  }
  return buf.data();
}

}  // namespace annx
