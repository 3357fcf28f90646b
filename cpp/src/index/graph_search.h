// Scratch structures of graph walks (HNSW search and construction): the visited set
// and the sorted candidate pool. Internal to cpp/src/index.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace annx::graph {

/// Per-thread visited marks: one bit per slot (1/16 of the memory of hnswlib's uint16
/// epoch tags, at the same measured speed). Starting a walk clears only the words the
/// previous walk touched, so the cost is proportional to the walk, not to the index.
class VisitedSet {
 public:
  /// Starts a new walk over `n` slots.
  void start(size_t n) {
    for (uint32_t w : touched_) bits_[w] = 0;
    touched_.clear();
    if (bits_.size() < (n + 63) / 64) bits_.resize((n + 63) / 64, 0);
  }
  /// Marks `s`; returns whether it was marked already in this walk.
  bool test_and_set(uint32_t s) {
    uint64_t& w = bits_[s >> 6];
    const uint64_t bit = uint64_t{1} << (s & 63);
    if (w & bit) return true;
    if (w == 0) touched_.push_back(s >> 6);
    w |= bit;
    return false;
  }

 private:
  std::vector<uint64_t> bits_;
  std::vector<uint32_t> touched_;
};

/// The candidate list of a best-first walk: the `cap` best (score, slot) pairs seen so
/// far, kept sorted (lower score first), each flagged once expanded. This merges the
/// paper's candidate heap C and result heap W into one array: an entry evicted from
/// W could never be expanded anyway, and a sorted array beats two heaps for the
/// small sizes used (tens to hundreds). Ties keep the earlier entry first.
class Pool {
 public:
  static constexpr uint32_t kExpanded = 0x80000000u;

  void reset(size_t cap) {
    cap_ = cap;
    if (score_.size() < cap + 1) {
      score_.resize(cap + 1);
      slot_.resize(cap + 1);
    }
    size_ = 0;
    cur_ = 0;
  }
  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }
  float score(size_t i) const { return score_[i]; }
  uint32_t slot(size_t i) const { return slot_[i] & ~kExpanded; }
  /// Whether a candidate with this score would be rejected.
  bool rejects(float s) const { return size_ == cap_ && s >= score_[size_ - 1]; }

  void insert(float s, uint32_t slot) {
    if (rejects(s)) return;
    size_t lo = 0, hi = size_;
    while (lo < hi) {
      const size_t mid = (lo + hi) / 2;
      if (score_[mid] <= s) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    const size_t moved = (size_ == cap_ ? size_ - 1 : size_) - lo;
    std::memmove(&score_[lo + 1], &score_[lo], moved * sizeof(float));
    std::memmove(&slot_[lo + 1], &slot_[lo], moved * sizeof(uint32_t));
    score_[lo] = s;
    slot_[lo] = slot;
    if (size_ < cap_) ++size_;
    if (lo < cur_) cur_ = lo;
  }
  bool has_next() const { return cur_ < size_; }
  /// The entry next() would return (valid while has_next()).
  uint32_t peek() const { return slot_[cur_]; }
  /// The best entry not yet expanded; marks it expanded.
  uint32_t next() {
    const uint32_t s = slot_[cur_];
    slot_[cur_] |= kExpanded;
    while (cur_ < size_ && (slot_[cur_] & kExpanded)) ++cur_;
    return s;
  }

 private:
  std::vector<float> score_;
  std::vector<uint32_t> slot_;
  size_t size_ = 0, cap_ = 0, cur_ = 0;
};

}  // namespace annx::graph
