// Insertion orders for graph builds (HNSW's insert_order option). Internal to
// cpp/src/index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace annx::graph {

/// Neighbours and sample size of the LID estimates below.
inline constexpr size_t kLidNeighbours = 20;
inline constexpr size_t kLidSample = 2048;

/// Local intrinsic dimensionality of each of the n rows of x (d floats each): the
/// maximum-likelihood estimate (Levina & Bickel; Amsaleg et al.)
///   LID(x) = -1 / mean_{i<=k} ln(r_i / r_k)
/// from the Euclidean distances r_1 <= ... <= r_k to the row's k nearest rows among a
/// seeded sample of min(n, kLidSample) rows (zero distances, i.e. the row itself and
/// exact duplicates, skipped). With `mobius` the rows are first mapped to x / |x|^2
/// (the space an inner-product HNSW graph is built in). A row without k positive
/// distances, or with non-finite values, gets 0.
std::vector<float> lid_estimates(const float* x, size_t n, size_t d, bool mobius, uint64_t seed,
                                 int threads);

/// The permutation of 0..n-1 by decreasing lid_estimates (ties: lower index first).
/// Inserting the rows of a high local dimension first (the hard regions, whose nodes
/// then get links chosen among fewer, farther nodes) follows Elliott & Clark, "The
/// impacts of data, ordering, and intrinsic dimensionality on recall in hierarchical
/// navigable small worlds" (2024).
std::vector<uint32_t> lid_desc_order(const float* x, size_t n, size_t d, bool mobius, uint64_t seed,
                                     int threads);

}  // namespace annx::graph
