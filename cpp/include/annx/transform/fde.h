// MUVERA fixed-dimensional encodings (FDEs) of point clouds (Dhulipala et al., arXiv
// 2405.19504; shared design algorithms.md section 6). The inner product of a query's
// FDE and a document's FDE approximates reps x Chamfer(Q, P) = reps x sum_q max_p <q, p>.
//
// Per repetition r (output order: repetition -> bucket -> coordinate):
// - SimHash: k_sim Gaussian hyperplanes; bit i of a token is [<g_i, x> > 0], the bits
//   read most significant first, and the bucket is the bit string's Gray decoding
//   (graph-mining's AppendToGrayCode), so neighbouring buckets differ in one bit.
// - Inner projection psi_r: the AMS sketch of graph-mining / muvera-python (each input
//   coordinate added with a random sign to one random output coordinate, unscaled, so
//   E<psi(x), psi(y)> = <x, y>), or the identity when d_proj == 0.
// - Aggregation: queries sum the projected tokens of a bucket, documents average them.
// - fill_empty (documents only): an empty bucket b takes psi_r of one of the document's
//   tokens, chosen by FdeConfig::fill:
//   - Margin (the default; index files without a "fde_fill" manifest entry predate it
//     and load as Hamming): the token with the largest margin
//     m_b(t) = sum_i s_bi * <g_i, t>, s_bi = +1 where b's bit string (b ^ (b >> 1)) has
//     hyperplane i's bit set and -1 where not: the token lying deepest on b's side of the
//     k_sim hyperplanes (the first such token on ties). Summed in float, i ascending.
//   - Hamming (graph-mining's rule, and annx's before): the token whose bit string is
//     nearest in Hamming distance to b's bit string, the first such token on ties. With
//     12-token documents and 32 buckets most distances tie, and the first token wins
//     regardless of how close it is; Margin breaks those ties by geometry and raises
//     candidate recall (most for short queries: docs/muvera.md).
// - Optional final count sketch to final_dim coordinates.
//
// Differences from Google's graph-mining reference (documented in docs/muvera.md):
// - Random numbers come from annx's splitmix64 streams (common/random.h), one stream per
//   (purpose, repetition), not std::mt19937 seeded with seed + r, so the same seed gives
//   the same encodings on every platform; SimHash's Gaussians are Irwin-Hall sums of 12
//   uniforms (no libm calls, bit-identical everywhere).
// - fill_empty picks by margin by default (above). In Hamming mode it measures the
//   Hamming distance to the bucket's own bit string
//   (Gray encoding). graph-mining (and muvera-python) compare with GrayCodeToBinary(b),
//   which is a different string for k_sim >= 3, so their "nearest" token is not the
//   nearest under their own bucket map.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace annx {

namespace simd {
struct KernelTable;
}

/// How fill_empty picks a document token for an empty bucket (see the header comment).
enum class FdeFill : int { Hamming = 0, Margin = 1 };

struct FdeConfig {
  int dim = 0;             // token dimension
  int k_sim = 5;           // SimHash bits: 2^k_sim buckets per repetition, 0..20
  int d_proj = 16;         // AMS sketch output dimension; 0 = identity (d_proj = dim)
  int reps = 20;           // repetitions
  bool fill_empty = true;  // documents only
  int final_dim = 0;       // count-sketch output dimension; 0 = none
  uint64_t seed = 0;
  FdeFill fill = FdeFill::Margin;  // documents only, with fill_empty

  /// Throws InvalidArgument naming the bad field.
  void validate() const;
  /// "k_sim=5,d_proj=16,reps=20,fill_empty=1,final_dim=0,seed=0,fill=margin" (for errors and repr).
  std::string describe() const;
  /// Dimension of the encodings (final_dim, or reps * 2^k_sim * proj); valid after validate().
  size_t output_dim() const;
  /// Bytes an FdeEncoder of this configuration allocates (its random matrices and tables);
  /// lets a loader refuse a crafted configuration before building it. After validate().
  size_t encoder_bytes() const;
};

class FdeEncoder {
 public:
  explicit FdeEncoder(const FdeConfig& config);

  const FdeConfig& config() const { return c_; }
  int dim() const { return c_.dim; }
  size_t buckets() const { return size_t{1} << c_.k_sim; }
  /// Coordinates per bucket block: d_proj, or dim for the identity.
  size_t proj_dim() const { return c_.d_proj > 0 ? size_t(c_.d_proj) : size_t(c_.dim); }
  /// reps x buckets x proj_dim, the dimension before the final projection.
  size_t block_dim() const { return size_t(c_.reps) * buckets() * proj_dim(); }
  /// Dimension of the encodings: final_dim, or block_dim() without a final projection.
  size_t output_dim() const { return c_.final_dim > 0 ? size_t(c_.final_dim) : block_dim(); }

  /// Encodes n point clouds; cloud i is rows [offsets[i], offsets[i+1]) of `tokens`
  /// (dim floats per row). queries: sum aggregation and no filling; documents: average
  /// and fill_empty. out: n x output_dim(). Inputs must be validated by the caller
  /// (finite values, non-decreasing offsets, every cloud non-empty).
  void encode(const float* tokens, const int64_t* offsets, size_t n, bool queries, float* out,
              int threads = 0) const;

  /// The random matrices, for tests and documentation. simhash: reps*k_sim rows of dim
  /// (row r*k_sim + i is hyperplane i of repetition r), followed by zero rows up to a
  /// multiple of 8 (the GEMM's row block, so that no row runs in a narrow tail; the
  /// first reps*k_sim rows are the hyperplanes); ams: the output coordinate and
  /// sign of every input coordinate, reps*dim each (empty for the identity), rebuilt
  /// from the segments the encoder keeps; final_rows / final_signs: block_dim() (empty
  /// without a final projection).
  const std::vector<float>& simhash() const { return g_; }
  void ams(std::vector<uint32_t>& rows, std::vector<float>& signs) const;
  const std::vector<uint32_t>& final_rows() const { return final_rows_; }
  const std::vector<float>& final_signs() const { return final_signs_; }

 private:
  void encode_chunk(const simd::KernelTable& K, const float* tokens, const int64_t* offsets,
                    size_t s0, size_t s1, bool queries, float* out) const;
  /// Margin fill of one repetition of one document: sim points at the document's first
  /// token's k_sim scores of this repetition (tokens H floats apart), count at the
  /// repetition's bucket counts; fill(b, t) is called for every empty bucket b with its
  /// token t (0-based within the document).
  template <class Fill>
  void margin_fill(const float* sim, size_t H, size_t n, const uint32_t* count,
                   std::vector<float>& mt, std::vector<uint32_t>& who, Fill&& fill) const;

  FdeConfig c_;
  std::vector<float> g_;  // reps*k_sim x dim, then zero rows up to a multiple of 8
  std::vector<uint32_t> final_rows_;
  std::vector<float> final_signs_;
  // The AMS sketch grouped by output coordinate (see signed_segment_sum).
  std::vector<uint32_t> seg_idx_, seg_end_, seg_split_;
  std::vector<float> seg_signs_;
  std::vector<int32_t> fill_dist_;     // Hamming fill: distances bits x bucket (k_sim <= 6)
  std::vector<uint32_t> margin_perm_;  // margin fill: bucket -> sign-pattern index (k_sim <= 6)
};

}  // namespace annx
