// Byte tables of 8-bit PQ (see annx/quant/pq8_layout.h): the quantisation is a kernel
// (KernelTable::pq8_byte_lut), the bounds are here.
#include "annx/quant/pq8_layout.h"

#include <cmath>
#include <limits>

#include "annx/simd/kernels.h"

namespace annx::pq8 {

bool quantize_lut(const float* a, const float* b, size_t M, float* sum, ByteLut& out) {
  out.ok = false;
  if (M == 0 || M > 257) return false;
  out.q.resize(M * 256);
  double stats[3];
  if (!simd::kernels().pq8_byte_lut(a, b, M, sum, out.q.data(), stats)) return false;
  out.scale = stats[0];
  out.bias = stats[1];
  out.abs_sum = stats[2];
  out.M = M;
  out.ok = true;
  return true;
}

namespace {
/// Allowance for float rounding: the float sum of M terms errs by at most (M - 1) ulps of
/// sum |terms| <= abs_sum, adding `extra` by one ulp more; twice that is allowed for (the
/// entries' own quantisation error, float products, is < 1e-4 each: the bounds' "+ 1").
double slop(const ByteLut& b, float extra) {
  return (static_cast<double>(b.M) + 2.0) * 0x1p-23 *
         (b.abs_sum + std::fabs(static_cast<double>(extra)));
}
}  // namespace

bool byte_sum_bound(const ByteLut& b, float thr, float extra, uint16_t& bound) {
  bound = 65535;
  if (!(thr < std::numeric_limits<float>::infinity())) return !std::isnan(thr);
  const double M = static_cast<double>(b.M);
  const double s =
      (static_cast<double>(thr) - b.bias - static_cast<double>(extra) + slop(b, extra)) * b.scale +
      M / 2.0 + 1.0;
  if (s < 0.0) return false;
  if (s < 65535.0) bound = static_cast<uint16_t>(s);
  return true;
}

uint16_t byte_sum_bound_from_sum(const ByteLut& b, uint16_t s, float extra) {
  // A code of byte sum s scores at most bias + extra + (s + M / 2 + 1) / scale + slop; one
  // of byte sum S at least bias + extra + (S - M / 2 - 1) / scale - slop.
  const double t = static_cast<double>(s) + static_cast<double>(b.M) + 2.0 +
                   2.0 * slop(b, extra) * b.scale + 1.0;
  return t < 65535.0 ? static_cast<uint16_t>(t) : uint16_t{65535};
}

}  // namespace annx::pq8
