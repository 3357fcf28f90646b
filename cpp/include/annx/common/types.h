// Basic types shared across annx.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace annx {

/// External ids (user-facing), int64 as in faiss. -1 marks "no result".
using idx_t = int64_t;
/// Internal row numbers inside one index.
using slot_t = uint32_t;

enum class Metric : int {
  L2 = 0,      // squared Euclidean distance, ascending
  IP = 1,      // inner product similarity, descending
  Cosine = 2,  // cosine similarity (IP over vectors normalised at insert), descending
};

/// "l2" | "ip" | "cos"
const char* metric_name(Metric m);
/// Accepts "l2", "ip", "cos" (and the aliases "euclidean", "inner_product", "cosine",
/// "angular"); throws InvalidArgument naming the valid values.
Metric parse_metric(const std::string& s);
/// Whether larger scores are better (IP, Cosine).
inline bool is_similarity(Metric m) { return m != Metric::L2; }

}  // namespace annx
