// MultiVectorIndex: MUVERA retrieval for multi-vector (ColBERT-style) documents
// (shared design algorithms.md section 6).
//
// - Each document is a set of token vectors. Its FDE (annx/transform/fde.h) goes into an
//   inner single-vector index built by the factory from any spec ("HNSW32", "Flat",
//   "IVF256,PQ...", ...) with the inner-product metric; the inner ids are the
//   documents' ids, so id filters pass straight through.
// - The token vectors are kept (F32 or F16) in one arena; a search encodes the query
//   set, asks the inner index for `candidates` documents by FDE inner product, and
//   re-ranks them by exact Chamfer similarity sum_q max_p <q, p> (scores descending,
//   ties by lower id).
// - Removal removes the id from the inner index and forgets its tokens; the arena is
//   compacted when more than half of it is dead.
//
// Concurrency: searches run concurrently with each other. add encodes FDEs without any
// lock, adds them to the inner index (under the inner index's own contract), and then
// publishes the tokens under the exclusive lock; until then a search may retrieve the
// new id from the inner index and skips it. remove and train block searches only while
// they change the token store. Mutations are serialised among themselves.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "annx/common/rw_lock.h"
#include "annx/index/chamfer.h"
#include "annx/index/index.h"
#include "annx/transform/fde.h"

namespace annx {

namespace io {
class Blob;
class ContainerWriter;
}  // namespace io

/// Validates ragged sets: offsets[0] == 0, non-decreasing, offsets[n] == ntokens, every
/// set non-empty (unless allow_empty), all token values finite, every token's norm at
/// most 2^40 (kMaxTokenNorm2, finite.h). `what` names the argument in errors ("docs",
/// "queries", ...).
void validate_sets(const float* tokens, size_t ntokens, size_t dim, const int64_t* offsets,
                   size_t n, const char* what, bool allow_empty = false);

class MultiVectorIndex {
 public:
  /// token_codec: CodecKind::F32 or CodecKind::F16 (the stored token vectors).
  MultiVectorIndex(int dim, const std::string& inner_spec, const FdeConfig& fde,
                   CodecKind token_codec);

  int dim() const { return fde_.dim(); }
  const FdeEncoder& fde() const { return fde_; }
  const Index& inner() const { return *inner_; }
  CodecKind token_codec() const { return token_codec_; }
  bool is_trained() const { return inner_->is_trained(); }
  size_t ntotal() const;
  /// Token vectors held by live documents.
  size_t ntokens() const;
  idx_t next_id() const { return inner_->next_id(); }
  std::vector<idx_t> ids() const { return inner_->ids(); }
  bool contains(idx_t id) const;

  /// Trains the inner index (IVF / PQ specs) on the FDEs of n documents.
  void train(const float* tokens, const int64_t* offsets, size_t n, int threads = 0);
  /// Adds n documents (ragged sets, see validate_sets); ids == nullptr assigns
  /// next_id(), next_id()+1, ... Nothing is added on error.
  void add(const float* tokens, const int64_t* offsets, size_t n, const idx_t* ids,
           int threads = 0);
  /// Removes the given ids (all must exist, no repeats; nothing is removed otherwise).
  size_t remove(const idx_t* ids, size_t n);
  /// S, I: nq x k, Chamfer scores descending; missing results are id -1, score -inf.
  /// candidates: documents retrieved by FDE inner product and re-ranked (at least k;
  /// 0 = max(200, k)). params go to the inner search (filter, ef_search, nprobe, threads).
  void search(const float* qtokens, const int64_t* qoffsets, size_t nq, size_t k, size_t candidates,
              const SearchParams& params, float* S, idx_t* I) const;
  /// The stored token vectors of one document (decoded to float).
  std::vector<float> doc_tokens(idx_t id) const;

  size_t memory_bytes() const;
  /// Inner index bytes per document and token-store bytes per document (tokens + refs).
  double inner_bytes_per_doc() const { return inner_->bytes_per_vector(); }
  double token_bytes_per_doc() const;

  std::vector<uint8_t> to_bytes() const;
  /// Atomic save (temp file + rename).
  void save(const std::string& path) const;
  /// Throws FormatError on anything malformed (and on single-vector index files).
  static std::unique_ptr<MultiVectorIndex> load(std::shared_ptr<const io::Blob> blob,
                                                bool verify = true);

 private:
  struct DocRef {
    uint64_t first;  // first token in the arena
    uint32_t count;
  };
  struct Snapshot;
  Snapshot snapshot() const;
  size_t token_bytes() const;
  void append_tokens(const float* tokens, const int64_t* offsets, size_t n, const idx_t* ids);
  void compact_locked();
  /// Chamfer score of document `ref` against q; scratch for maxima and F16 decoding.
  float score(const PackedQuerySet& q, const DocRef& ref, std::vector<float>& scratch) const;

  FdeEncoder fde_;
  std::unique_ptr<Index> inner_;
  CodecKind token_codec_;
  std::vector<uint8_t> arena_;  // tokens, token_bytes() each
  uint64_t arena_tokens_ = 0;   // tokens in the arena, dead ones included
  uint64_t live_tokens_ = 0;
  std::unordered_map<idx_t, DocRef> docs_;
  mutable std::mutex writer_mu_;  // taken before mu_
  mutable RwLock mu_;
};

}  // namespace annx
