// The one row normalisation (cosine metric, spherical k-means).
#pragma once

#include <cmath>
#include <cstddef>

namespace annx {

/// Scales r[0, d) to unit length; returns false (leaving r unchanged) for a zero row.
/// The norm and the scaling are computed in double: 1 / |r| overflows float for rows
/// with |r| below ~3e-39, and the squares of such values underflow in float.
inline bool normalize_row(float* r, size_t d) {
  double s = 0;
  for (size_t j = 0; j < d; ++j) s += double{r[j]} * r[j];
  if (!(s > 0)) return false;
  const double inv = 1.0 / std::sqrt(s);
  for (size_t j = 0; j < d; ++j) r[j] = static_cast<float>(r[j] * inv);
  return true;
}

}  // namespace annx
