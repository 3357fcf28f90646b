#pragma once
// Rounding-error bounds for float32 L2 scores ranked as |x|^2 - 2<q,x> (and for negated
// inner products), the forms the register-blocked dot tiles compute. Shared by every exact scan
// that uses that form and then proves its answer (Flat's batched search, MultiTenantIndex's tenant
// scans).

#include <cmath>
#include <cstddef>

namespace annx {

/// Each dot product of length d is off by at most about d * 2^-24 times the sum of
/// |terms| (any summation order), so with max_norm2 = max |x|^2 over the scanned rows and
/// q_norm2 = |q|^2, every row's score is within the returned E of its exact value
/// |x|^2 - 2<q,x>. A factor 4 covers the norms' own rounding and the subtraction.
inline float blocked_l2_error_bound(size_t d, float max_norm2, float q_norm2) {
  const double gamma = 4.0 * static_cast<double>(d + 4) * 0x1p-24;
  const double n = max_norm2, qn = q_norm2;
  return static_cast<float>(gamma * (n + 2.0 * std::sqrt(n * qn) + qn));
}

/// True when candidates re-scored exactly prove the k-th answer: rows outside the
/// candidates scored >= worst_kept (approximate), hence their true distance is at least
/// worst_kept + |q|^2 - E, which must not be below the k-th exact distance + E.
inline bool blocked_l2_proven(double kth, float worst_kept, float q_norm2, float err) {
  return kth + err <= static_cast<double>(worst_kept) + q_norm2 - err;
}

/// The same for negated inner products -<q,x> (IP / cosine scores): within
/// gamma |x| |q| of the exact value, so E = gamma sqrt(max_norm2 q_norm2).
inline float blocked_ip_error_bound(size_t d, float max_norm2, float q_norm2) {
  const double gamma = 4.0 * static_cast<double>(d + 4) * 0x1p-24;
  return static_cast<float>(gamma * std::sqrt(double{max_norm2} * double{q_norm2}));
}

/// True when re-scored candidates prove the k-th answer for negated inner products:
/// rows outside the candidates scored >= worst_kept (approximate), so their exact scores
/// are >= worst_kept - E, which must not be below the k-th exact score + E.
inline bool blocked_ip_proven(double kth, float worst_kept, float err) {
  return kth + err <= static_cast<double>(worst_kept) - err;
}

/// Either of the above for a blocked scan's query: `l2` (scores |x|^2 - 2<q,x>, exact
/// k-th a squared distance) or negated inner products; max_norm2 bounds the scanned rows'
/// squared norms, q_norm2 is |q|^2.
inline bool blocked_scan_proven(bool l2, size_t d, float max_norm2, float q_norm2, double kth,
                                float worst_kept) {
  return l2 ? blocked_l2_proven(kth, worst_kept, q_norm2,
                                blocked_l2_error_bound(d, max_norm2, q_norm2))
            : blocked_ip_proven(kth, worst_kept, blocked_ip_error_bound(d, max_norm2, q_norm2));
}

}  // namespace annx
