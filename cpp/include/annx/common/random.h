// annx's portable pseudo-random numbers: splitmix64 streams. Every seeded result in
// annx (HNSW levels and insertion order, k-means samples and initialisation) comes
// from here, so the same seed gives the same index on every platform and compiler
// (std:: distributions are implementation-defined and are never used).
#pragma once

#include <cstdint>

namespace annx {

/// The splitmix64 finaliser of z + golden ratio: a good 64-bit mixing function.
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A splitmix64 stream.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(splitmix64(seed ^ 0x243f6a8885a308d3ULL)) {}
  uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n) (n >= 1); the modulo bias is below 2^-40 for n < 2^24 and
  /// irrelevant for sampling.
  uint64_t below(uint64_t n) { return next() % n; }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace annx
