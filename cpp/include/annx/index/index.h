// The Index base class: the one vocabulary every annx index speaks
// (train / add / search / range_search / remove / reconstruct / save).
//
// The base class owns what is common to all structures: the dimension and metric,
// the external-id map, input checks (finite values, non-zero vectors for cosine),
// cosine normalisation, the reader/writer lock and persistence. Structures implement
// the *_impl hooks, which are called with inputs already validated and the lock held.
//
// Concurrency contract (enforced here, so C++ users get it too): any number of
// search / range_search / reconstruct calls may run concurrently. Mutations (add,
// remove, train) and serialisation (save, to_bytes) are serialised among themselves
// by `writer_mu_`. By default a mutation also takes the reader/writer lock exclusively,
// so it waits for running searches and blocks new ones; a structure may instead do
// the bulk of an add under the shared lock (HNSW links new nodes while searches run,
// see hnsw.h), taking the exclusive lock only to publish storage and ids. Training
// computes without the reader/writer lock (searches keep running, and a progress
// callback may search) and takes it exclusively only to commit its result.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "annx/common/rw_lock.h"
#include "annx/common/types.h"
#include "annx/index/id_map.h"
#include "annx/index/vector_codec.h"

namespace annx {

class ProgressCounter;

namespace io {
class Blob;
class ContainerWriter;
class ContainerReader;
class Manifest;
}  // namespace io

/// Per-call search options. Never stored in the index, so concurrent searches with
/// different options do not interfere.
struct SearchParams {
  int threads = 0;                   // 0: annx.get_num_threads()
  const IdFilter* filter = nullptr;  // restrict results to these ids
  int ef_search = 0;                 // graph structures: candidate list size (0: default)
  int rerank = 0;                    // Refine codecs: candidates re-scored (0: default)
  int nprobe = 0;                    // IVF: lists scanned per query (0: default)
};

/// faiss-style range-search result: results of query i are [lims[i], lims[i+1]).
struct RangeResult {
  std::vector<size_t> lims;
  std::vector<float> distances;
  std::vector<idx_t> ids;

  /// Concatenates per-query result lists (already sorted); `get(item)` returns the
  /// item's (score, id).
  template <class List, class Get>
  static RangeResult concat(const std::vector<List>& per, Get get) {
    RangeResult out;
    const size_t nq = per.size();
    out.lims.assign(nq + 1, 0);
    for (size_t i = 0; i < nq; ++i) out.lims[i + 1] = out.lims[i] + per[i].size();
    out.distances.resize(out.lims[nq]);
    out.ids.resize(out.lims[nq]);
    for (size_t i = 0; i < nq; ++i)
      for (size_t j = 0; j < per[i].size(); ++j) {
        const auto [score, id] = get(per[i][j]);
        out.distances[out.lims[i] + j] = score;
        out.ids[out.lims[i] + j] = id;
      }
    return out;
  }
};

class Index {
 public:
  Index(int d, Metric metric);
  virtual ~Index() = default;
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  int d() const { return d_; }
  Metric metric() const { return metric_; }
  /// Canonical factory string (metric not included).
  virtual std::string spec() const = 0;
  virtual bool is_trained() const = 0;
  size_t ntotal() const;
  /// Next id that add() without ids hands out (one more than the largest id ever used).
  idx_t next_id() const;

  /// Trains on n vectors, reporting train_units() units (k-means iterations) to the
  /// calling thread's progress hook, the last one being (total, total). Atomic: a
  /// failure or a cancel (annx::Cancelled, or the hook's own exception) leaves the
  /// index as it was.
  void train(const float* x, size_t n);
  /// The same, counting on `progress` (total train_units(); for wrapping indexes).
  void train(const float* x, size_t n, ProgressCounter& progress);
  /// Progress units of train(): k-means iterations (IVF: the coarse quantizer's plus
  /// every PQ sub-quantizer's), or 1 for indexes that run no k-means.
  virtual size_t train_units() const { return 1; }
  /// Adds n vectors; ids == nullptr assigns next_id(), next_id()+1, ...
  /// `threads`: 0 for annx.get_num_threads().
  void add(const float* x, size_t n, const idx_t* ids, int threads = 0);
  /// D, I: nq x k. D holds squared L2 (ascending) or similarities (descending); missing
  /// results are padded with id -1 and distance +inf (L2) / -inf (similarities).
  void search(const float* q, size_t nq, size_t k, const SearchParams& params, float* D,
              idx_t* I) const;
  /// L2: all results with distance < radius; IP/cos: similarity > radius. Sorted best first.
  RangeResult range_search(const float* q, size_t nq, float radius,
                           const SearchParams& params) const;
  /// Removes the given ids (all must exist, no repeats; nothing is removed otherwise).
  size_t remove(const idx_t* ids, size_t n);
  /// Decoded stored vectors (normalised ones for cosine) of the given ids.
  void reconstruct(const idx_t* ids, size_t n, float* out) const;
  bool contains(idx_t id) const;
  /// Live ids in storage order.
  std::vector<idx_t> ids() const;
  /// Bytes held for vectors, ids and auxiliary data (excluding mapped file pages).
  /// Takes the shared lock (safe alongside adds and removes).
  size_t memory_bytes() const;
  /// Bytes per stored vector: codes plus id plus per-vector extras. Takes the shared lock.
  double bytes_per_vector() const;

  /// Serialises to the annx file format (see io/container.h).
  std::vector<uint8_t> to_bytes() const;
  /// Atomic save (temp file + fsync + rename).
  void save(const std::string& path) const;
  /// The manifest's `kind` written by save/to_bytes ("" writes none: a plain index).
  /// Set by wrappers whose files are an index file (the Python BinaryIndex: "binary"),
  /// so that annx.load can return the wrapper. Loading does not restore it.
  std::string file_kind() const;
  void set_file_kind(std::string kind);

 protected:
  /// Called with writer_mu_ held but not mu_: trains into local state, calls
  /// progress.finish() and only then takes mu_ exclusively to commit (so a failure or
  /// a cancel changes nothing, and searches run meanwhile).
  virtual void train_impl(const float* x, size_t n, ProgressCounter& progress) = 0;
  virtual void add_impl(const float* x, size_t n) = 0;  // ids already appended to idmap_
  /// memory_bytes() / bytes_per_vector(), called with the shared lock held.
  virtual size_t memory_bytes_impl() const = 0;
  virtual double bytes_per_vector_impl() const = 0;
  /// The whole add after input preparation, called with writer_mu_ held (no lock on
  /// mu_). The default takes mu_ exclusively, checks ids, calls add_impl and appends
  /// the ids; structures that add concurrently with searches override it.
  virtual void add_prepared(const float* x, size_t n, const idx_t* ids, int threads);
  /// Removes the given slots, called with writer_mu_ and mu_ (exclusive) held. The
  /// default swap-removes (remove_slot_impl + IdMap::move_last_into).
  virtual void remove_slots(std::vector<slot_t>& slots);
  /// Scores are "lower is better" internally; I holds slots (converted by the caller).
  virtual void search_impl(const float* q, size_t nq, size_t k, const SearchParams& params,
                           const std::vector<slot_t>* allowed, float* D, idx_t* I) const = 0;
  virtual void range_impl(const float* q, size_t nq, float score_radius, const SearchParams& params,
                          const std::vector<slot_t>* allowed, RangeResult& out) const = 0;
  /// Remove one slot by moving the last slot into it (ids handled by the base).
  virtual void remove_slot_impl(slot_t s) = 0;
  virtual void reconstruct_impl(const slot_t* slots, size_t n, float* out) const = 0;
  /// A section to write: borrowed bytes, valid while the shared lock is held.
  struct Section {
    std::string tag;
    const void* data;
    size_t size;
  };
  /// Adds structure-specific manifest entries and sections (`scratch` may own bytes
  /// that sections point into).
  virtual void write_impl(io::Manifest& manifest, std::vector<Section>& sections,
                          std::vector<std::vector<uint8_t>>& scratch) const = 0;

  /// Copies x and normalises rows for cosine; validates finiteness. Returns a pointer to
  /// the data to use (x itself when no copy was needed).
  const float* prepare_input(const float* x, size_t n, const char* what,
                             std::vector<float>& buf) const;

  /// Restores structure-specific state written by write_impl (ids are restored by the
  /// caller). `nslots` counts slots, holes included. Must validate every size and
  /// throw FormatError.
  virtual void read_impl(const io::ContainerReader& r, const io::Manifest& m, size_t nslots) = 0;
  /// Called after ids are restored: cross-checks structure state against them.
  virtual void after_load() {}

  /// The codec's trained parameters (SQ8 min/step) as sections, and their loader
  /// (validated; FormatError), shared by every structure that stores codes.
  static void write_codec_sections(const VectorCodec& codec, std::vector<Section>& sections);
  static void read_codec_sections(const io::ContainerReader& r, const io::Manifest& m,
                                  VectorCodec& codec);

  /// Throws FormatError naming `tag` if any of n loaded codes (`stride` bytes apart) holds
  /// a non-finite value or decodes to a norm beyond kMaxNorm2 (finite.h).
  static void check_loaded_codes(const VectorCodec& codec, const uint8_t* codes, size_t n,
                                 size_t stride, const char* tag);

  /// Fills a container writer with the whole index; requires the shared lock.
  void fill_writer(io::ContainerWriter& w, std::vector<std::vector<uint8_t>>& scratch) const;

  /// Structures whose remove leaves holes (free slots awaiting reuse) in the slot array;
  /// files of the others must have none.
  virtual bool has_holes() const { return false; }

  friend std::unique_ptr<Index> load_index_from(const io::ContainerReader& r,
                                                const io::Manifest& m);

  int d_;
  Metric metric_;
  IdMap idmap_;
  std::string file_kind_;         // guarded by writer_mu_
  mutable std::mutex writer_mu_;  // taken before mu_, never after
  mutable RwLock mu_;             // writer-preferring (see rw_lock.h)
};

/// Reads an index from a blob (bytes or an mmap'ed file); the returned index may view
/// the blob's memory (kept alive by the index). Throws FormatError on malformed input.
std::unique_ptr<Index> load_index(std::shared_ptr<const io::Blob> blob, bool verify = true);

/// What an index stored inside another file's section must be (checked from its manifest
/// before anything of it is built).
struct NestedIndexExpect {
  std::string spec;
  Metric metric;
  int d;
  std::optional<size_t> ntotal;  // when the outer file fixes the count
};
/// Loads the index stored whole in section `tag` of `outer` (an IVF coarse graph, a LeanVec
/// or multi-vector inner index). Its spec, metric, dimension (and count) are checked before
/// it is loaded, which also bounds the nesting (no spec nests itself); a depth limit stands
/// behind that. Its bytes are used in place (their checksum was the outer file's).
std::unique_ptr<Index> load_nested_index(const io::ContainerReader& outer, std::string_view tag,
                                         const NestedIndexExpect& expect);
std::unique_ptr<Index> load_index_file(const std::string& path, bool mmap, bool verify = true);

}  // namespace annx
