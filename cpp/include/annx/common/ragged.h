// Ragged batches of sets (multi-vector documents and queries): set i is rows
// [offsets[i], offsets[i+1]) of one row-major array.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace annx {

/// Splits sets [0, n) into consecutive groups of whole sets holding about `rows` rows each
/// (a group closes once it reaches `rows`; a larger set forms a group of its own).
/// Returns the first set of every group followed by n, so group g is [out[g], out[g+1]).
inline std::vector<size_t> group_sets(const int64_t* offsets, size_t n, size_t rows) {
  std::vector<size_t> starts{0};
  for (size_t i = 0, acc = 0; i < n; ++i) {
    acc += static_cast<size_t>(offsets[i + 1] - offsets[i]);
    if (acc >= rows && i + 1 < n) {
      starts.push_back(i + 1);
      acc = 0;
    }
  }
  starts.push_back(n);
  return starts;
}

}  // namespace annx
