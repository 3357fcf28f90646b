// index_factory: builds an index from a faiss-style spec string.
//
// Grammar (this release):   spec := "Flat" [ "," codec ]
//                           codec := "F32" | "F16" | "BF16" | "SQ8"
// Tokens are comma separated; surrounding spaces are ignored; matching is
// case-sensitive. The metric is never part of the spec. A bad spec throws
// InvalidArgument naming the offending token and the valid alternatives.
#pragma once

#include <memory>
#include <string>

#include "annx/index/index.h"

namespace annx {

std::unique_ptr<Index> make_index(int d, const std::string& spec, Metric metric);

}  // namespace annx
