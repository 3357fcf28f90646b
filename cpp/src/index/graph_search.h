// Scratch structures of graph walks (HNSW search and construction): the visited set
// and the sorted candidate pool. Internal to cpp/src/index.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace annx::graph {

/// Per-thread visited marks: one uint16 "epoch" tag per slot. Starting a walk bumps
/// the epoch instead of clearing the array; the array is cleared only on wraparound.
class VisitedSet {
 public:
  /// Starts a new walk over `n` slots.
  void start(size_t n) {
    if (tags_.size() < n) tags_.resize(n, 0);
    if (++epoch_ == 0) {
      std::fill(tags_.begin(), tags_.end(), uint16_t{0});
      epoch_ = 1;
    }
  }
  /// Marks `s`; returns whether it was marked already in this walk.
  bool test_and_set(uint32_t s) {
    if (tags_[s] == epoch_) return true;
    tags_[s] = epoch_;
    return false;
  }
  void prefetch(uint32_t s) const { __builtin_prefetch(tags_.data() + s, 0, 3); }

 private:
  std::vector<uint16_t> tags_;
  uint16_t epoch_ = 0;
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
