// The kernel table: every distance computation in annx goes through it.
//
// One implementation of each kernel exists per ISA level (cpp/src/kernels/); indexes
// fetch `const KernelTable&` once per call and then call bulk entry points, so the
// dispatch cost is paid per batch, never per pair.
//
// Conventions shared by all kernels:
// - `d` is the number of dimensions; rows of `x` are contiguous, `code_size(kind, d)`
//   bytes apart (no padding, no alignment requirement: kernels use unaligned loads and
//   handle tails without reading past the row).
// - The query is float32 for every float-query kind; stored rows may be f32, f16, bf16
//   or SQ8 codes (uint8). Accumulation is always in f32 (or i32 for integer kinds).
// - L2 kinds return squared Euclidean distance; IP kinds return the inner product
//   (a similarity: larger is closer). Cosine is IP over normalised vectors.
#pragma once

#include <cstddef>
#include <cstdint>

#include "annx/simd/isa.h"

namespace annx::simd {

/// Float-query distance kinds (query f32 against a stored row).
enum class DistKind : int {
  L2_F32 = 0,
  IP_F32,
  L2_F16,  // row: IEEE binary16
  IP_F16,
  L2_BF16,  // row: bfloat16 (upper half of an f32)
  IP_BF16,
  // SQ8 codes (uint8). The query is pre-transformed by the codec (see codec_sq8):
  //  IP_U8:  sum_i q[i] * c[i]                       (aux unused)
  //  WL2_U8: sum_i aux[i] * (q[i] - c[i])^2          (aux = per-dimension weights)
  IP_U8,
  WL2_U8,
  BEBR_SDC,  // row: a BIN / BEBR<L> code; query: its own code (symmetric)
  BEBR_ADC,  // row: a BIN / BEBR<L> code; query: quantized to kBebrAdcQueryBits (asymmetric)
  kCount
};

/// Bits per dimension of an asymmetric (ADC) binary query: the query is quantized
/// uniformly over its own range, so ADC scores are level-pair popcounts like SDC ones.
/// Six bits matched float-query recall@10 within 0.2 points on every shared set (BIN,
/// BEBR2, BEBR4; four bits lost up to 2.4 points on raw GloVe).
constexpr int kBebrAdcQueryBits = 6;

/// Bytes one row of `d` dimensions takes for a kind.
size_t code_size(DistKind kind, size_t d);

using OneFn = float (*)(const float* q, const void* x, size_t d, const float* aux);
/// out[i] = dist(q, row i) for rows 0..n-1 of x.
using ManyFn = void (*)(const float* q, const void* x, size_t n, size_t d, const float* aux,
                        float* out);
/// out[i] = dist(q, row rows[i]) for a list of row numbers (graph walks, re-ranking,
/// filters); row r starts at x + r * stride bytes (stride = code_size for dense arrays,
/// larger for interleaved layouts such as HNSW's level-0 blocks).
using GatherFn = void (*)(const float* q, const void* x, const uint32_t* rows, size_t n,
                          size_t stride, size_t d, const float* aux, float* out);

struct KernelTable {
  Isa isa;
  OneFn one[static_cast<int>(DistKind::kCount)];
  ManyFn many[static_cast<int>(DistKind::kCount)];
  GatherFn gather[static_cast<int>(DistKind::kCount)];

  /// Many-to-many inner products for f32 without packing (best for a few queries):
  /// out[i * out_stride + j] = <q_i, x_j>, q: nq rows, x: nx rows, both with `d` floats
  /// per row (contiguous). Register-blocked over queries and rows.
  void (*dot_f32_tile)(const float* q, size_t nq, const float* x, size_t nx, size_t d, float* out,
                       size_t out_stride);
  /// The building blocks of dot_f32_tile, for callers that reuse packed rows across
  /// many queries (batch exact search): pack up to `panel_rows` rows (zero-padded) into
  /// a panel of panel_rows * d floats, then compute nq x panel_rows inner products.
  size_t panel_rows;
  void (*pack_f32_panel)(const float* x, size_t nrows, size_t d, float* panel);
  void (*dot_f32_panel)(const float* q, size_t nq, size_t d, const float* panel, float* out,
                        size_t out_stride);

  /// Writes the positions i < n with v[i] <= thr into out (ascending); returns how many.
  /// The top-k filter of every scan: most scores fail it, so it runs at SIMD speed.
  size_t (*select_le)(const float* v, size_t n, float thr, uint32_t* out);

  /// Integer vectors (int8 x int8), exact int32 results.
  int32_t (*l2sq_i8)(const int8_t* a, const int8_t* b, size_t d);
  int32_t (*dot_i8)(const int8_t* a, const int8_t* b, size_t d);

  /// Hamming distance between packed bit strings of `nbytes` bytes.
  uint64_t (*hamming)(const uint8_t* a, const uint8_t* b, size_t nbytes);
  /// out[i] = hamming(q, row i), rows `nbytes` apart.
  void (*hamming_many)(const uint8_t* q, const uint8_t* x, size_t n, size_t nbytes, uint32_t* out);

  /// Storage conversions (round to nearest even; NaN stays NaN).
  void (*f32_to_f16)(const float* in, uint16_t* out, size_t n);
  void (*f16_to_f32)(const uint16_t* in, float* out, size_t n);
  void (*f32_to_bf16)(const float* in, uint16_t* out, size_t n);
  void (*bf16_to_f32)(const uint16_t* in, float* out, size_t n);

  /// 4-bit PQ fast-scan. `blocks`: `nblocks` consecutive packed blocks of 32 vectors
  /// (pq4 layout, see annx/quant/pq4_layout.h), each npairs * 32 bytes. `lut`: npairs * 32
  /// bytes (pair j: 16 uint8 entries of sub-quantizer 2j, then 16 of 2j+1).
  /// out[32 * b + i] = sum over sub-quantizers of lut entries for vector i of block b (uint16,
  /// exact when the quantised LUT's sum bound <= 65535 holds; otherwise the sum mod 2^16,
  /// identical on every ISA).
  void (*pq4_accumulate)(const uint8_t* blocks, size_t nblocks, size_t npairs, const uint8_t* lut,
                         uint16_t* out);
  /// 4-bit fast-scan table statistics, once per (query, probed list) in IVF search: for
  /// each of the M rows of 16 floats (of `a`, or of a + b, then written to `sum`, when b is
  /// non-null) its min and max into mins[m] / maxs[m]. Returns whether every entry is
  /// finite (the statistics are unspecified where not).
  bool (*pq4_lut_stats)(const float* a, const float* b, size_t M, float* sum, float* mins,
                        float* maxs);
  /// The quantised fast-scan table: q[16 m + j] = the nearest integer to
  /// scale * (rows[16 m + j] - mins[m]), halves up, clamped to [0, 255], computed as
  /// trunc(product + 0.5f) with the product rounded to float first (never a fused
  /// multiply-add), so bit-identical on every level. Needs scale > 0 and finite rows.
  void (*pq4_quantize_rows)(const float* rows, const float* mins, float scale, size_t M,
                            uint8_t* q);
  /// Writes the positions i < n with v[i] <= thr into out (ascending); returns how many.
  /// `out` must have room for n entries: SIMD levels may clobber entries past the count.
  size_t (*select_le_u16)(const uint16_t* v, size_t n, uint16_t thr, uint32_t* out);

  /// Nearest of k centroids in few dimensions (PQ sub-quantizers, their k-means):
  /// ct holds the centroids transposed, d rows of `kstride` floats (kstride >= k rounded
  /// up to 16; columns past k are read but never chosen). For each of the n rows of x
  /// (d floats each): I[i] = argmin_j sum_t (x[i][t] - ct[t][j])^2, ties to the lower j,
  /// D[i] = that distance. Computed as (x - c)^2 summed over t ascending without FMA, so
  /// results are bit-identical across ISAs.
  void (*nearest_l2_small)(const float* x, size_t n, size_t d, const float* ct, size_t k,
                           size_t kstride, uint32_t* I, float* D);
  /// Product-quantizer lookup tables of query q (d floats) over transposed codebooks
  /// (sub-quantizer m: dsub rows of kstride floats, row t holding coordinate t of its
  /// ksub centroids): out[m * ksub + j] = sum_t (q_m[t] - c[t][j])^2 (l2) or
  /// -sum_t q_m[t] * c[t][j] (ip), q_m[t] = q[m * dsub + t] (0 past d), summed over t
  /// ascending from 0: bit-identical to the scalar kernel on NEON (built without FMA
  /// contraction); on x86 levels within rounding (GCC contracts the multiply and add).
  void (*pq_lut)(const float* q, size_t d, size_t M, size_t dsub, const float* ct, size_t kstride,
                 size_t ksub, bool ip, float* out);
  /// 8-bit PQ ADC over blocked codes (annx/quant/pq8_layout.h: blocks of 32 vectors,
  /// sub-quantizer-major): out[32 * b + t] = sum_{m < M} lut[m * 256 + code m of vector t
  /// of block b], summed with m ascending (bit-identical across ISAs).
  void (*pq8_adc_blocks)(const uint8_t* blocks, size_t nblocks, size_t M, const float* lut,
                         float* out);
  /// The same sums over a byte table (lut8: M x 256 entries, M <= 257 so that they stay
  /// exact): out[32 * b + t] = sum_{m < M} lut8[m * 256 + code m of vector t of block b]
  /// (uint16). Null on levels without a fast 256-entry byte lookup (set on avx512_icl,
  /// whose VBMI permutes look up 64 codes per instruction); IVF uses it to skip the
  /// codes that cannot win before scoring them with pq8_adc's float sums.
  void (*pq8_accumulate_u8)(const uint8_t* blocks, size_t nblocks, size_t M, const uint8_t* lut8,
                            uint16_t* out);
  /// The byte table for pq8_accumulate_u8 of the 8-bit PQ table t = a (M x 256 floats) or,
  /// with b non-null, t = a + b, which is then also written to `sum`:
  /// q[m][j] = round(scale * (t[m][j] - min_m)) in [0, 255] (within +-0.5 + 1e-4 of the
  /// real product), scale = 255 / (largest span max_m - min_m), 1 if every span is 0.
  /// stats = {scale, sum_m min_m, sum_m max_j |t[m][j]|}. Returns false (q and stats
  /// unspecified) when an entry of t is not finite. 1 <= M <= 257.
  bool (*pq8_byte_lut)(const float* a, const float* b, size_t M, float* sum, uint8_t* q,
                       double* stats);
  /// pq4_accumulate for nq <= 4 queries at once over the same blocks: out[j][32 * b + i]
  /// is what pq4_accumulate(blocks, nblocks, npairs, luts[j], out[j]) writes, for j < nq.
  /// Codes are loaded and unpacked once per pass and shuffled with each query's LUT.
  /// nq > 4 runs in passes of up to 4 queries; nq == 0 does nothing.
  void (*pq4_accumulate_nq)(const uint8_t* blocks, size_t nblocks, size_t npairs,
                            const uint8_t* const* luts, size_t nq, uint16_t* const* out);

  // ---- Multi-vector (MUVERA, shared design algorithms.md section 6) ----
  /// MaxSim step of Chamfer similarity against query tokens packed by columns: qt is
  /// d x qw (qt[k * qw + a] = coordinate k of query token a; qw a multiple of 16, unused
  /// lanes zero). best[a] = max(best[a], max_b <q_a, x_b>) for a < qw over the nx rows
  /// of x (row-major, d floats each). Document tokens are broadcast, so no horizontal
  /// reductions and no packing of documents.
  void (*maxsim_f32)(const float* qt, size_t qw, const float* x, size_t nx, size_t d, float* best);
  /// Sparse signed projection of column blocks (the FDE's AMS sketch on transposed
  /// tokens), as segment sums: for each output row j < nseg,
  /// dst[j * ld + c] = sum over i in [seg_end[j-1], seg_end[j]) of
  ///                   signs[i] * src[idx[i] * ld + c]   for c < len
  /// (seg_end[-1] = 0). len must be a multiple of the table's panel_rows. Each output
  /// row is accumulated in registers and stored once.
  void (*signed_segment_sum)(const float* src, size_t ld, size_t len, const uint32_t* idx,
                             const float* signs, const uint32_t* seg_end, size_t nseg, float* dst);

  // ---- Binary codes (BIN / BEBR<L>, kernels/bebr_body-inl.h) ----
  /// Scores of a tile of queries against rows 0..n-1 of x (`stride` bytes apart):
  /// out[a * out_stride + i] = many[kind](qs[a], row i) for a < nq, bit for bit, or its
  /// negation when `negate` (a similarity turned into the distance the caller selects on,
  /// PreparedQuery::finish_all with no offset). qs[a] are BEBR_SDC or BEBR_ADC prepared
  /// queries (VectorCodec::prepare) of one codec, kind and metric. Rows are read once per
  /// call for all nq queries (level-pair popcounts of 8 or 16 rows at a time; scales
  /// applied once per level pair).
  void (*bebr_sdc_tile)(const float* const* qs, size_t nq, const void* x, size_t n, size_t stride,
                        size_t d, float* out, size_t out_stride, bool negate);
  /// signed_segment_sum with the signs given by order instead of values: segment j adds
  /// the rows idx[seg_end[j-1] .. seg_split[j]) and subtracts idx[seg_split[j] ..
  /// seg_end[j]) (sum of the added rows minus sum of the subtracted ones). No sign loads
  /// or multiplies: two loads per vector add. len a multiple of 16.
  void (*segment_sum_pm)(const float* src, size_t ld, size_t len, const uint32_t* idx,
                         const uint32_t* seg_split, const uint32_t* seg_end, size_t nseg,
                         float* dst);

  // ---- int8 rows (HNSW construction's compact copy, index/hnsw.cpp) ----
  /// Exact inner products of int8 rows, gathered: out[a * out_stride + i] =
  /// sum_t q[a * d + t] * r[t] with r the row at x + rows[i] * stride bytes, for a < nq,
  /// i < n (any int8 values; int32 sums, exact for d < 2^17). Rows are read once per
  /// call for up to four queries at a time (VNNI vpdpbusd on the avx512_icl level).
  void (*dot_i8_gather)(const int8_t* q, size_t nq, const int8_t* x, const uint32_t* rows, size_t n,
                        size_t stride, size_t d, int32_t* out, size_t out_stride);
};

/// The table of the active ISA (see isa.h). The reference is stable for the life of
/// the process; switching ISA returns another static table.
const KernelTable& kernels();
/// The table of a specific level; throws InvalidArgument if not compiled/supported.
const KernelTable& kernels(Isa isa);

}  // namespace annx::simd
