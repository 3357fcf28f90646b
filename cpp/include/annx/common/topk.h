// Top-k selection shared by every index.
//
// Scores are "lower is better" everywhere inside annx (similarities are negated by
// the caller) and ties are broken by the lower id, so results are deterministic no
// matter how the work was split across threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "annx/common/types.h"

namespace annx {

/// A bounded max-heap keeping the k best (score, id) pairs seen so far.
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) {
    score_.reserve(k);
    id_.reserve(k);
  }

  size_t k() const { return k_; }
  size_t size() const { return score_.size(); }
  /// Worst kept score, or +inf while fewer than k are kept: a score above it can be
  /// skipped without calling push (an equal score may still win on a lower id).
  float threshold() const {
    return score_.size() < k_ ? std::numeric_limits<float>::infinity() : score_[0];
  }

  void push(float s, idx_t id) {
    if (score_.size() < k_) {
      score_.push_back(s);
      id_.push_back(id);
      sift_up(score_.size() - 1);
    } else if (k_ > 0 && better(s, id, score_[0], id_[0])) {
      score_[0] = s;
      id_[0] = id;
      sift_down(0);
    }
  }

  /// Merges another heap's contents into this one.
  void merge(const TopK& other) {
    for (size_t i = 0; i < other.score_.size(); ++i) push(other.score_[i], other.id_[i]);
  }

  /// Writes the kept pairs best-first into (scores, ids) and pads to k with
  /// (+inf, -1). Empties the heap.
  void drain_sorted(float* scores, idx_t* ids) {
    const size_t m = score_.size();
    std::vector<std::pair<float, idx_t>> v(m);
    for (size_t i = 0; i < m; ++i) v[i] = {score_[i], id_[i]};
    std::sort(v.begin(), v.end());
    for (size_t i = 0; i < m; ++i) {
      scores[i] = v[i].first;
      ids[i] = v[i].second;
    }
    for (size_t i = m; i < k_; ++i) {
      scores[i] = std::numeric_limits<float>::infinity();
      ids[i] = -1;
    }
    score_.clear();
    id_.clear();
  }

  void clear() {
    score_.clear();
    id_.clear();
  }

 private:
  static bool better(float s, idx_t id, float s2, idx_t id2) {
    return s < s2 || (s == s2 && id < id2);
  }
  void sift_up(size_t i) {
    while (i > 0) {
      const size_t p = (i - 1) / 2;
      if (!better(score_[p], id_[p], score_[i], id_[i])) break;
      std::swap(score_[p], score_[i]);
      std::swap(id_[p], id_[i]);
      i = p;
    }
  }
  void sift_down(size_t i) {
    const size_t n = score_.size();
    for (;;) {
      size_t w = i;
      const size_t l = 2 * i + 1, r = l + 1;
      if (l < n && better(score_[w], id_[w], score_[l], id_[l])) w = l;
      if (r < n && better(score_[w], id_[w], score_[r], id_[r])) w = r;
      if (w == i) return;
      std::swap(score_[w], score_[i]);
      std::swap(id_[w], id_[i]);
      i = w;
    }
  }

  size_t k_;
  std::vector<float> score_;  // max-heap on (score, id)
  std::vector<idx_t> id_;
};

/// Same contract as TopK (the k best by (score, id)), for scans that push many
/// candidates whose order is unrelated to their score: a push is an append, and when
/// the buffer reaches 2k the k best are kept and the threshold drops to the k-th score.
/// No heap sift per push, so no branch mispredictions per candidate. The k-th score is
/// selected over the scores alone (4-byte floats, plain `<`), then the buffer is
/// compacted in one pass; ties at the k-th score keep the lowest ids.
class ReservoirTopK {
 public:
  explicit ReservoirTopK(size_t k) { reset(k); }

  /// Empties the collector and sets its k; keeps the buffers' memory (for collectors
  /// reused across queries).
  void reset(size_t k) {
    k_ = k;
    cap_ = std::max<size_t>(2 * k, k + 16);
    buf_.reserve(cap_);
    clear();
  }

  size_t k() const { return k_; }
  /// Candidates kept so far (at most k count as results).
  size_t size() const { return std::min(buf_.size(), k_); }
  /// A score above it cannot enter the result (an equal one may, on a lower id).
  float threshold() const { return thr_; }

  void push(float s, idx_t id) {
    if (!(s <= thr_) || k_ == 0) return;  // also drops NaN
    buf_.emplace_back(s, id);
    if (buf_.size() == cap_) shrink();
  }

  /// Adds another collector's candidates (same k: the result is the k best of both).
  void merge(const ReservoirTopK& other) {
    for (const auto& [score, id] : other.buf_) push(score, id);
  }

  /// The kept candidates (the k best, or all when fewer), in no particular order.
  /// Valid until the next push/clear.
  const std::vector<std::pair<float, idx_t>>& items() {
    if (buf_.size() > k_) shrink();
    return buf_;
  }

  /// Best-first into (scores, ids), padded to k with (+inf, -1). Empties the buffer.
  void drain_sorted(float* scores, idx_t* ids) {
    if (buf_.size() > k_) shrink();
    std::sort(buf_.begin(), buf_.end());
    const size_t m = buf_.size();
    for (size_t i = 0; i < m; ++i) {
      scores[i] = buf_[i].first;
      ids[i] = buf_[i].second;
    }
    for (size_t i = m; i < k_; ++i) {
      scores[i] = std::numeric_limits<float>::infinity();
      ids[i] = -1;
    }
    clear();
  }

  void clear() {
    buf_.clear();
    thr_ = std::numeric_limits<float>::infinity();
  }

 private:
  /// The kth smallest (0-based) of a[0, n), using b[0, n) as scratch: quickselect
  /// with branch-free partitions (each pass copies the values below / above the pivot
  /// to the two ends of the other buffer and continues in the part holding kth). A
  /// little more work than std::nth_element but no mispredicted branch per element,
  /// which is where nth_element spent its time in fast-scan profiles.
  static float select_kth(float* a, float* b, size_t n, size_t kth) {
    for (int pass = 0; n > 16 && pass < 64; ++pass) {
      const float x0 = a[0], x1 = a[n / 2], x2 = a[n - 1];
      const float p = std::max(std::min(x0, x1), std::min(std::max(x0, x1), x2));
      size_t nl = 0, ng = 0;
      for (size_t i = 0; i < n; ++i) {
        const float x = a[i];
        b[nl] = x;
        nl += x < p;
        b[n - 1 - ng] = x;
        ng += x > p;
      }
      if (kth >= nl && kth < n - ng) return p;  // kth is one of the values equal to p
      float* rest = a;  // the old values are no longer needed: next pass's scratch
      if (kth < nl) {
        a = b;
        n = nl;
      } else {
        a = b + (n - ng);
        kth -= n - ng;
        n = ng;
      }
      b = rest;
    }
    std::nth_element(a, a + kth, a + n);
    return a[kth];
  }

  void shrink() {
    const size_t n = buf_.size();
    keys_.resize(2 * n);
    for (size_t i = 0; i < n; ++i) keys_[i] = buf_[i].first;
    const float t = select_kth(keys_.data(), keys_.data() + n, n, k_ - 1);
    // Scores below t all stay (fewer than k of them); of those equal to t, the lowest
    // ids fill the remaining places. Branch-free: every element is written, the
    // cursors advance by the comparisons.
    ties_.resize(n);
    size_t w = 0, nt = 0;
    for (size_t i = 0; i < n; ++i) {
      const auto e = buf_[i];
      buf_[w] = e;
      w += e.first < t;
      ties_[nt] = e.second;
      nt += e.first == t;
    }
    const size_t need = k_ - w;  // 1 <= need <= nt
    if (nt > need)
      std::nth_element(ties_.begin(), ties_.begin() + static_cast<std::ptrdiff_t>(need - 1),
                       ties_.begin() + static_cast<std::ptrdiff_t>(nt));
    buf_.resize(k_);
    for (size_t i = 0; i < need; ++i) buf_[w + i] = {t, ties_[i]};
    thr_ = t;
  }

  size_t k_ = 0, cap_ = 0;
  std::vector<std::pair<float, idx_t>> buf_;
  std::vector<float> keys_;  // shrink's scratch
  std::vector<idx_t> ties_;
  float thr_ = std::numeric_limits<float>::infinity();
};

}  // namespace annx
