// AArch64 Advanced SIMD (NEON) kernels. NEON is part of the AArch64 baseline, so this
// translation unit needs no extra flags; it is compiled only for aarch64 targets and
// chosen at run time like the x86 levels (cpp/src/simd/detect.cpp).
//
// The float kernels are the shared bodies (simd_body-inl.h, bebr_body-inl.h) over 4-lane
// vectors, with the blocking of the AVX2 level: 4 rows at a time in gathers, a
// register-blocked panel GEMM (6 queries x 16 rows: 24 of the 32 vector registers hold
// accumulators), 32-vector PQ fast-scan blocks. The rest (select, int8, Hamming, PQ,
// conversions, nearest centroid) is written here with NEON intrinsics.
//
// Speed: not measured. No ARM machine was at hand; the kernels were tested for agreement
// with the scalar reference under qemu-user emulation only (cpp/tests/test_kernels.cpp).
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "annx/simd/kernels.h"
#include "kernel_tables.h"

namespace annx::kernels::neon {
namespace {

struct Ops {
  using F = float32x4_t;
  static constexpr size_t W = 4;
  // 6 x 4 accumulators + 4 rows + 1 broadcast of the 32 registers; a 16-row panel, as AVX2.
  static constexpr int kMQ = 6, kNR = 4;
  static F zero() { return vdupq_n_f32(0.f); }
  static F load(const float* p) { return vld1q_f32(p); }
  static F broadcast(const float* p) { return vld1q_dup_f32(p); }
  static void store(float* p, F v) { vst1q_f32(p, v); }
  static F load_partial(const float* p, size_t n) {
    float buf[4] = {0.f, 0.f, 0.f, 0.f};
    memcpy(buf, p, n * sizeof(float));
    return vld1q_f32(buf);
  }
  static F load_f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static F load_bf16(const uint16_t* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
  }
  static F load_u8(const uint8_t* p) {
    uint32_t w;
    memcpy(&w, p, 4);
    const uint8x8_t b = vreinterpret_u8_u32(vdup_n_u32(w));
    return vcvtq_f32_u32(vmovl_u16(vget_low_u16(vmovl_u8(b))));
  }
  static F add(F a, F b) { return vaddq_f32(a, b); }
  static F sub(F a, F b) { return vsubq_f32(a, b); }
  static F mul(F a, F b) { return vmulq_f32(a, b); }
  static F fmadd(F a, F b, F c) { return vfmaq_f32(c, a, b); }
  static F max(F a, F b) { return vmaxq_f32(a, b); }
  static float reduce(F v) { return vaddvq_f32(v); }
};

#include "simd_body-inl.h"

/// One bit per lane of a 0x00/0xFF byte mask: bit 4 * i is set when byte i is 0xFF
/// (NEON has no movemask; the shift-narrow keeps 4 bits per byte).
inline uint64_t byte_mask_bits(uint8x16_t m) {
  const uint8x8_t n = vshrn_n_u16(vreinterpretq_u16_u8(m), 4);
  return vget_lane_u64(vreinterpret_u64_u8(n), 0) & 0x1111111111111111ull;
}

inline size_t emit_positions(uint64_t bits, size_t base, uint32_t* out, size_t m) {
  while (bits) {
    out[m++] = static_cast<uint32_t>(base + static_cast<size_t>(__builtin_ctzll(bits)) / 4);
    bits &= bits - 1;
  }
  return m;
}

size_t select_le(const float* v, size_t n, float thr, uint32_t* out) {
  const float32x4_t t = vdupq_n_f32(thr);
  size_t m = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const uint32x4_t c0 = vcleq_f32(vld1q_f32(v + i), t);
    const uint32x4_t c1 = vcleq_f32(vld1q_f32(v + i + 4), t);
    const uint32x4_t c2 = vcleq_f32(vld1q_f32(v + i + 8), t);
    const uint32x4_t c3 = vcleq_f32(vld1q_f32(v + i + 12), t);
    const uint16x8_t h0 = vcombine_u16(vmovn_u32(c0), vmovn_u32(c1));
    const uint16x8_t h1 = vcombine_u16(vmovn_u32(c2), vmovn_u32(c3));
    const uint8x16_t b = vcombine_u8(vmovn_u16(h0), vmovn_u16(h1));
    if (vmaxvq_u8(b) == 0) continue;  // the common case in a top-k scan
    m = emit_positions(byte_mask_bits(b), i, out, m);
  }
  for (; i < n; ++i)
    if (v[i] <= thr) out[m++] = static_cast<uint32_t>(i);
  return m;
}

size_t select_le_u16(const uint16_t* v, size_t n, uint16_t thr, uint32_t* out) {
  const uint16x8_t t = vdupq_n_u16(thr);
  size_t m = 0, i = 0;
  for (; i + 32 <= n; i += 32) {
    const uint16x8_t c0 = vcleq_u16(vld1q_u16(v + i), t);
    const uint16x8_t c1 = vcleq_u16(vld1q_u16(v + i + 8), t);
    const uint16x8_t c2 = vcleq_u16(vld1q_u16(v + i + 16), t);
    const uint16x8_t c3 = vcleq_u16(vld1q_u16(v + i + 24), t);
    const uint8x16_t b0 = vcombine_u8(vmovn_u16(c0), vmovn_u16(c1));
    const uint8x16_t b1 = vcombine_u8(vmovn_u16(c2), vmovn_u16(c3));
    if (vmaxvq_u8(vorrq_u8(b0, b1)) == 0) continue;
    m = emit_positions(byte_mask_bits(b0), i, out, m);
    m = emit_positions(byte_mask_bits(b1), i + 16, out, m);
  }
  for (; i < n; ++i)
    if (v[i] <= thr) out[m++] = static_cast<uint32_t>(i);
  return m;
}

int32_t l2sq_i8(const int8_t* a, const int8_t* b, size_t d) {
  int32x4_t acc0 = vdupq_n_s32(0), acc1 = vdupq_n_s32(0);
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    const int8x16_t x = vld1q_s8(a + i), y = vld1q_s8(b + i);
    const int16x8_t lo = vsubl_s8(vget_low_s8(x), vget_low_s8(y));  // |t| <= 255 fits in i16
    const int16x8_t hi = vsubl_high_s8(x, y);
    acc0 = vmlal_s16(acc0, vget_low_s16(lo), vget_low_s16(lo));
    acc1 = vmlal_high_s16(acc1, lo, lo);
    acc0 = vmlal_s16(acc0, vget_low_s16(hi), vget_low_s16(hi));
    acc1 = vmlal_high_s16(acc1, hi, hi);
  }
  int32_t s = vaddvq_s32(vaddq_s32(acc0, acc1));
  for (; i < d; ++i) {
    const int32_t t = int32_t{a[i]} - int32_t{b[i]};
    s += t * t;
  }
  return s;
}

int32_t dot_i8(const int8_t* a, const int8_t* b, size_t d) {
  int32x4_t acc0 = vdupq_n_s32(0), acc1 = vdupq_n_s32(0);
  size_t i = 0;
  for (; i + 16 <= d; i += 16) {
    const int8x16_t x = vld1q_s8(a + i), y = vld1q_s8(b + i);
    // Products of two int8 fit in i16 (|p| <= 16384); pairs are added into i32 lanes.
    acc0 = vpadalq_s16(acc0, vmull_s8(vget_low_s8(x), vget_low_s8(y)));
    acc1 = vpadalq_s16(acc1, vmull_high_s8(x, y));
  }
  int32_t s = vaddvq_s32(vaddq_s32(acc0, acc1));
  for (; i < d; ++i) s += int32_t{a[i]} * int32_t{b[i]};
  return s;
}

uint64_t hamming(const uint8_t* a, const uint8_t* b, size_t nbytes) {
  // vcntq_u8 counts bits per byte; byte counts are pairwise added into u16 lanes (at most
  // 16 per lane and accumulator per 32-byte step, so a chunk of 1024 steps cannot
  // overflow) and the lanes summed once per chunk.
  uint64_t s = 0;
  size_t i = 0;
  while (i + 32 <= nbytes) {
    const size_t end = std::min(nbytes - (nbytes - i) % 32, i + size_t{32} * 1024);
    uint16x8_t acc0 = vdupq_n_u16(0), acc1 = vdupq_n_u16(0);
    for (; i < end; i += 32) {
      acc0 = vpadalq_u8(acc0, vcntq_u8(veorq_u8(vld1q_u8(a + i), vld1q_u8(b + i))));
      acc1 = vpadalq_u8(acc1, vcntq_u8(veorq_u8(vld1q_u8(a + i + 16), vld1q_u8(b + i + 16))));
    }
    s += vaddlvq_u16(acc0) + vaddlvq_u16(acc1);
  }
  if (i + 16 <= nbytes) {
    s += vaddlvq_u8(vcntq_u8(veorq_u8(vld1q_u8(a + i), vld1q_u8(b + i))));
    i += 16;
  }
  if (i + 8 <= nbytes) {
    s += vaddlv_u8(vcnt_u8(veor_u8(vld1_u8(a + i), vld1_u8(b + i))));
    i += 8;
  }
  for (; i < nbytes; ++i) s += static_cast<uint64_t>(__builtin_popcount(unsigned{a[i]} ^ b[i]));
  return s;
}

void hamming_many(const uint8_t* q, const uint8_t* x, size_t n, size_t nbytes, uint32_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint32_t>(hamming(q, x + i * nbytes, nbytes));
}

// ---- Storage conversions -------------------------------------------------------------
// FCVTN / FCVTL (baseline AArch64) round to nearest even under the default FPCR, keep
// subnormals (FZ is off in Linux/macOS user space) and quiet NaNs, like the scalar ones.
// Tails go through a zero-padded buffer so nothing is read or written past n.

void f32_to_f16(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    vst1_u16(out + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(in + i))));
  if (i < n) {
    float buf[4] = {0.f, 0.f, 0.f, 0.f};
    uint16_t h[4];
    memcpy(buf, in + i, (n - i) * sizeof(float));
    vst1_u16(h, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(buf))));
    memcpy(out + i, h, (n - i) * sizeof(uint16_t));
  }
}

void f16_to_f32(const uint16_t* in, float* out, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(out + i, Ops::load_f16(in + i));
  if (i < n) {
    uint16_t buf[4] = {0, 0, 0, 0};
    float f[4];
    memcpy(buf, in + i, (n - i) * sizeof(uint16_t));
    vst1q_f32(f, Ops::load_f16(buf));
    memcpy(out + i, f, (n - i) * sizeof(float));
  }
}

/// Four f32 -> bf16, round to nearest even; a NaN is quietened (bit 6 of the result set).
inline uint16x4_t bf16_round(uint32x4_t u) {
  const uint32x4_t is_nan =
      vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)), vdupq_n_u32(0x7f800000u));
  const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1u));
  const uint32x4_t rounded = vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fffu)));
  const uint32x4_t quiet = vorrq_u32(u, vdupq_n_u32(0x00400000u));
  return vshrn_n_u32(vbslq_u32(is_nan, quiet, rounded), 16);
}

void f32_to_bf16(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    vst1_u16(out + i, bf16_round(vreinterpretq_u32_f32(vld1q_f32(in + i))));
  if (i < n) {
    float buf[4] = {0.f, 0.f, 0.f, 0.f};
    uint16_t h[4];
    memcpy(buf, in + i, (n - i) * sizeof(float));
    vst1_u16(h, bf16_round(vreinterpretq_u32_f32(vld1q_f32(buf))));
    memcpy(out + i, h, (n - i) * sizeof(uint16_t));
  }
}

void bf16_to_f32(const uint16_t* in, float* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint16x8_t h = vld1q_u16(in + i);
    vst1q_f32(out + i, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)));
    vst1q_f32(out + i + 4, vreinterpretq_f32_u32(vshll_high_n_u16(h, 16)));
  }
  for (; i < n; ++i) {
    const uint32_t u = uint32_t{in[i]} << 16;
    memcpy(out + i, &u, 4);
  }
}

// ---- 4-bit PQ fast-scan (pq4 layout, see annx/quant/pq4_layout.h) ----------------------
// As the AVX2 kernel (simd_body-inl.h explains the a0 - (a1 << 8) trick), with one
// 128-bit TBL (vqtbl1q_u8, as faiss does on ARM) per sub-quantizer and nibble half: byte t
// of a lookup holds vector pi(t) = t / 2 + 8 * (t % 2), so u16 lane k holds vector k (low
// byte) and k + 8 (high byte). Per block, a0/a1 sum the low nibbles (vectors 0-7 via the
// trick, 8-15), a2/a3 the high nibbles (16-23, 24-31); USRA adds the high bytes in one op.

struct Pq4Acc {
  uint16x8_t a0 = vdupq_n_u16(0), a1 = vdupq_n_u16(0), a2 = vdupq_n_u16(0), a3 = vdupq_n_u16(0);

  inline void add(uint8x16_t lut, uint8x16_t lo, uint8x16_t hi) {
    const uint16x8_t r0 = vreinterpretq_u16_u8(vqtbl1q_u8(lut, lo));
    const uint16x8_t r1 = vreinterpretq_u16_u8(vqtbl1q_u8(lut, hi));
    a0 = vaddq_u16(a0, r0);
    a1 = vsraq_n_u16(a1, r0, 8);
    a2 = vaddq_u16(a2, r1);
    a3 = vsraq_n_u16(a3, r1, 8);
  }

  inline void store(uint16_t* out) const {
    vst1q_u16(out, vsubq_u16(a0, vshlq_n_u16(a1, 8)));
    vst1q_u16(out + 8, a1);
    vst1q_u16(out + 16, vsubq_u16(a2, vshlq_n_u16(a3, 8)));
    vst1q_u16(out + 24, a3);
  }
};

/// One 32-byte code chunk of a pair, split into nibbles: lo[s] / hi[s] for sub-quantizer s.
struct Pq4Nibbles {
  uint8x16_t lo0, hi0, lo1, hi1;
  explicit Pq4Nibbles(const uint8_t* c) {
    const uint8x16_t nib = vdupq_n_u8(0x0F);
    const uint8x16_t c0 = vld1q_u8(c), c1 = vld1q_u8(c + 16);
    lo0 = vandq_u8(c0, nib);
    hi0 = vshrq_n_u8(c0, 4);
    lo1 = vandq_u8(c1, nib);
    hi1 = vshrq_n_u8(c1, 4);
  }
};

/// NQ queries per pass over each block (NQ <= 4: 4 * NQ accumulators, the four nibble
/// vectors and the two LUT halves fit the 32 registers): the codes are loaded and split
/// once and looked up in every query's LUT.
template <int NQ>
void pq4_accumulate_q(const uint8_t* blocks, size_t nblocks, size_t npairs,
                      const uint8_t* const* luts, uint16_t* const* out) {
  const size_t bb = npairs * 32;
  const uint8_t* lut[NQ];  // local copies (stores through out[] might alias luts[])
  for (int q = 0; q < NQ; ++q) lut[q] = luts[q];
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* c = blocks + b * bb;
    Pq4Acc acc[NQ];
    for (size_t j = 0; j < npairs; ++j) {
      const Pq4Nibbles x(c + j * 32);
      for (int q = 0; q < NQ; ++q) {
        acc[q].add(vld1q_u8(lut[q] + j * 32), x.lo0, x.hi0);
        acc[q].add(vld1q_u8(lut[q] + j * 32 + 16), x.lo1, x.hi1);
      }
    }
    for (int q = 0; q < NQ; ++q) acc[q].store(out[q] + b * 32);
  }
}

void pq4_accumulate(const uint8_t* blocks, size_t nblocks, size_t npairs, const uint8_t* lut,
                    uint16_t* out) {
  pq4_accumulate_q<1>(blocks, nblocks, npairs, &lut, &out);
}

void pq4_accumulate_nq(const uint8_t* blocks, size_t nblocks, size_t npairs,
                       const uint8_t* const* luts, size_t nq, uint16_t* const* out) {
  for (size_t q = 0; q < nq; q += 4) {
    switch (std::min<size_t>(4, nq - q)) {
      case 1: pq4_accumulate_q<1>(blocks, nblocks, npairs, luts + q, out + q); break;
      case 2: pq4_accumulate_q<2>(blocks, nblocks, npairs, luts + q, out + q); break;
      case 3: pq4_accumulate_q<3>(blocks, nblocks, npairs, luts + q, out + q); break;
      default: pq4_accumulate_q<4>(blocks, nblocks, npairs, luts + q, out + q); break;
    }
  }
}

/// 8-bit PQ over blocked codes (pq8_layout.h). NEON has no gather: each group of four
/// table entries is loaded lane by lane (LD1 {v.s}[i]) and added as one vector; the sums
/// run over m ascending from zero, so results are bit-identical to the scalar kernel.
void pq8_adc_blocks(const uint8_t* blocks, size_t nblocks, size_t M, const float* lut, float* out) {
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* blk = blocks + b * 32 * M;
    float32x4_t a[8];
    for (int g = 0; g < 8; ++g) a[g] = vdupq_n_f32(0.f);
    for (size_t m = 0; m < M; ++m) {
      const float* t = lut + m * 256;
      const uint8_t* c = blk + m * 32;
      for (int g = 0; g < 8; ++g) {
        float32x4_t v = vld1q_dup_f32(t + c[4 * g]);
        v = vld1q_lane_f32(t + c[4 * g + 1], v, 1);
        v = vld1q_lane_f32(t + c[4 * g + 2], v, 2);
        v = vld1q_lane_f32(t + c[4 * g + 3], v, 3);
        a[g] = vaddq_f32(a[g], v);
      }
    }
    for (int g = 0; g < 8; ++g) vst1q_f32(out + b * 32 + 4 * g, a[g]);
  }
}

/// Nearest of k centroids in few dimensions, 8 centroids (two vectors) per pass as the
/// AVX2 kernel: (x - c)^2 summed over t ascending with separate multiply and add (this
/// library is built with -ffp-contract=off on AArch64 so neither this nor the scalar
/// reference is fused), hence bit-identical to scalar; ties go to the lower index.
void nearest_l2_small(const float* x, size_t n, size_t d, const float* ct, size_t k, size_t kstride,
                      uint32_t* I, float* D) {
  const uint32x4_t lane0 = {0, 1, 2, 3}, lane1 = {4, 5, 6, 7};
  const uint32x4_t step = vdupq_n_u32(8), kk = vdupq_n_u32(static_cast<uint32_t>(k));
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * d;
    float32x4_t best0 = vdupq_n_f32(INFINITY), best1 = best0;
    uint32x4_t bidx0 = vdupq_n_u32(0), bidx1 = bidx0, idx0 = lane0, idx1 = lane1;
    for (size_t j0 = 0; j0 < k; j0 += 8) {
      float32x4_t acc0 = vdupq_n_f32(0.f), acc1 = acc0;
      for (size_t t = 0; t < d; ++t) {
        const float32x4_t v = vdupq_n_f32(xi[t]);
        const float* c = ct + t * kstride + j0;
        const float32x4_t d0 = vsubq_f32(v, vld1q_f32(c));
        const float32x4_t d1 = vsubq_f32(v, vld1q_f32(c + 4));
        acc0 = vaddq_f32(acc0, vmulq_f32(d0, d0));
        acc1 = vaddq_f32(acc1, vmulq_f32(d1, d1));
      }
      // Strictly less (earlier centroids win ties) and only columns < k (the rest never win).
      const uint32x4_t lt0 = vandq_u32(vcltq_f32(acc0, best0), vcltq_u32(idx0, kk));
      const uint32x4_t lt1 = vandq_u32(vcltq_f32(acc1, best1), vcltq_u32(idx1, kk));
      best0 = vbslq_f32(lt0, acc0, best0);
      best1 = vbslq_f32(lt1, acc1, best1);
      bidx0 = vbslq_u32(lt0, idx0, bidx0);
      bidx1 = vbslq_u32(lt1, idx1, bidx1);
      idx0 = vaddq_u32(idx0, step);
      idx1 = vaddq_u32(idx1, step);
    }
    float bv[8];
    uint32_t bi[8];
    vst1q_f32(bv, best0);
    vst1q_f32(bv + 4, best1);
    vst1q_u32(bi, bidx0);
    vst1q_u32(bi + 4, bidx1);
    float m = bv[0];
    uint32_t mi = bi[0];
    for (int l = 1; l < 8; ++l)
      if (bv[l] < m || (bv[l] == m && bi[l] < mi)) {
        m = bv[l];
        mi = bi[l];
      }
    I[i] = mi;
    D[i] = m;
  }
}

}  // namespace

void fill_table(simd::KernelTable& t) {
  t.isa = simd::Isa::Neon;
  fill_float_kinds(t);
  t.select_le = &select_le;
  t.l2sq_i8 = &l2sq_i8;
  t.dot_i8 = &dot_i8;
  t.hamming = &hamming;
  t.hamming_many = &hamming_many;
  t.f32_to_f16 = &f32_to_f16;
  t.f16_to_f32 = &f16_to_f32;
  t.f32_to_bf16 = &f32_to_bf16;
  t.bf16_to_f32 = &bf16_to_f32;
  t.pq4_accumulate = &pq4_accumulate;
  t.select_le_u16 = &select_le_u16;
  t.nearest_l2_small = &nearest_l2_small;
  t.pq8_adc_blocks = &pq8_adc_blocks;
  t.pq4_accumulate_nq = &pq4_accumulate_nq;
}

}  // namespace annx::kernels::neon
