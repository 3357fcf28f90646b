// index_factory: builds an index from a faiss-style spec string.
//
// Grammar (this release):
//   spec    := "Flat" [ "," codec ]
//            | "HNSW" M [ "," codec ] [ "," "Refine(" rcodec ")" ]
//            | "IVF" nlist [ "_HNSW" M ] [ "," codec | "," pq ] [ "," "Refine(" rcodec ")" ]
//            | pq [ "," "Refine(" rcodec ")" ]                 (flat PQ: one list)
//            | "LeanVec" D [ "_ood" ] [ "," inner ] "," "Refine(" rcodec ")"
//              (inner: any spec above without Refine, default Flat, built at D
//               dimensions; Refine is the full-dimension re-rank store)
//   codec   := "F32" | "F16" | "BF16" | "SQ8"     ("Flat" after HNSW/IVF means F32)
//   pq      := "PQ" M [ "x8" | "x4fs" ]            (8-bit ADC, or 4-bit fast-scan)
//   rcodec  := "F32" | "F16"                       (finer than the codec)
// Tokens are comma separated; surrounding spaces are ignored; matching is
// case-sensitive. The metric is never part of the spec; build options that do not
// change the file layout (ef_construction, seed) are FactoryOptions, not spec tokens.
// A bad spec throws InvalidArgument naming the offending token and the alternatives.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "annx/index/index.h"

namespace annx {

struct FactoryOptions {
  std::optional<int> ef_construction;  // HNSW (default 200)
  std::optional<uint64_t> seed;        // HNSW level draws and insertion order (default 0);
                                       // IVF/PQ k-means (default 1234)
  std::optional<bool> by_residual;     // IVF with PQ: encode x - centroid (default true)
  std::optional<bool> shuffle;         // HNSW: insert batches in a seeded random order
  // HNSW: "random" (default) or "lid_desc" (decreasing local intrinsic dimensionality)
  std::optional<std::string> insert_order;
};

std::unique_ptr<Index> make_index(int d, const std::string& spec, Metric metric,
                                  const FactoryOptions& options = {});

}  // namespace annx
