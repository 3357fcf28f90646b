// The annx file container (annx file format v1.0): one file per index, made of named,
// checksummed, 64-byte-aligned sections, so that large arrays can be used in place from a
// read-only memory mapping.
//
// Byte layout (all integers little-endian; annx supports little-endian hosts only):
//
//   Header, 64 bytes at offset 0:
//     0  char[8]  magic          "ANNXIDX\0"
//     8  u32      format_major   1
//    12  u32      format_minor   0
//    16  u64      flags          0 (reserved; readers of v1.x ignore it)
//    24  u64      file_size      size of the whole file in bytes
//    32  u64      toc_offset     offset of the table of contents (TOC)
//    40  u32      section_count  number of TOC entries
//    44  u32      toc_crc        CRC-32C of the section_count * 32 TOC bytes
//    48  u8[12]   reserved       0 (readers of v1.x ignore them; covered by header_crc)
//    60  u32      header_crc     CRC-32C of header bytes 0..59
//
//   Sections: each starts at a multiple of 64 (>= 64); the bytes between the header,
//   the sections and the TOC are zero padding. Sections never overlap.
//
//   TOC at toc_offset (a multiple of 64, after the last section), ending the file
//   (file_size == toc_offset + 32 * section_count). One 32-byte entry per section:
//     0  char[8]  tag       1..8 characters of [A-Z0-9_], NUL-padded (e.g. "MANIFEST")
//     8  u64      offset
//    16  u64      length     in bytes (may be 0)
//    24  u32      crc        CRC-32C of the section bytes
//    28  u32      reserved   0 (readers of v1.x ignore it; covered by toc_crc)
//
// Versioning: readers accept format_major == 1 with any minor; minor versions may only add
// sections (readers ignore unknown tags), manifest keys, and meanings for the reserved
// fields, never change this layout. A larger major is rejected with a FormatError naming
// both versions.
//
// Every byte of a file is covered by a check: header and TOC by their CRCs, sections by
// theirs (when verify_checksums), padding by a zero check. Any truncated, extended,
// bit-flipped or random input therefore yields FormatError; no count read from a file is
// trusted before it has been compared (overflow-safely) with the bytes actually present.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "annx/common/error.h"

namespace annx::io {

// Sections are used in place (reinterpret_cast to T) and the header is defined as
// little-endian, so big-endian hosts are not supported.
static_assert(std::endian::native == std::endian::little,
              "annx files are little-endian; big-endian hosts are not supported");

/// Version of the file format this build writes (and the major version it reads).
inline constexpr uint32_t kFormatMajor = 1;
inline constexpr uint32_t kFormatMinor = 0;
/// File magic, including the trailing NUL.
inline constexpr char kMagic[8] = {'A', 'N', 'N', 'X', 'I', 'D', 'X', '\0'};
/// Header size, section alignment and TOC entry size in bytes.
inline constexpr size_t kHeaderSize = 64;
inline constexpr size_t kSectionAlign = 64;
inline constexpr size_t kTocEntrySize = 32;
/// Longest section tag (tags are 1..kMaxTagLength characters of [A-Z0-9_]).
inline constexpr size_t kMaxTagLength = 8;
/// Most sections one file may hold (a sanity bound for readers and writers).
inline constexpr uint32_t kMaxSections = 1u << 16;
/// Largest manifest accepted by parse_manifest.
inline constexpr size_t kMaxManifestBytes = size_t{1} << 20;

// ---------------------------------------------------------------------------------------
// CRC-32C
// ---------------------------------------------------------------------------------------

/// Standard CRC-32C (Castagnoli, reflected, init and xorout 0xFFFFFFFF), e.g.
/// crc32c("123456789", 9) == 0xE3069283. `seed` is the result of a previous call, so
/// crc32c(b, nb, crc32c(a, na)) is the CRC of the concatenation a + b. Uses the SSE4.2
/// CRC32 instruction (x86) or the ARMv8 CRC32C instructions when the CPU has them, else a
/// portable slice-by-8 table.
uint32_t crc32c(const void* data, size_t n, uint32_t seed = 0);

/// Name of the implementation crc32c() uses on this CPU: "sse4.2", "armv8-crc" or "portable".
const char* crc32c_backend();

namespace detail {
/// The portable slice-by-8 implementation (same contract as crc32c); for tests.
uint32_t crc32c_portable(const void* data, size_t n, uint32_t seed = 0);
}  // namespace detail

// ---------------------------------------------------------------------------------------
// Blob: immutable bytes
// ---------------------------------------------------------------------------------------

/// Immutable bytes: an owned buffer, a read-only memory mapping of a file, or memory
/// borrowed from an owner (e.g. a Python buffer). Always held through shared_ptr so that
/// objects holding views into the bytes (spans of a mapped index) can keep them alive.
class Blob {
 public:
  /// Takes ownership of `bytes` without copying (data() has the vector's alignment).
  static std::shared_ptr<const Blob> from_vector(std::vector<uint8_t> bytes);
  /// Copies `size` bytes into a new 64-byte-aligned buffer.
  static std::shared_ptr<const Blob> copy_of(const void* data, size_t size);
  /// Uses `size` bytes at `data` in place; `owner` is kept alive as long as the blob and
  /// must keep the bytes alive and unchanged. Throws InvalidArgument if data is null and
  /// size > 0.
  static std::shared_ptr<const Blob> borrow(const void* data, size_t size,
                                            std::shared_ptr<const void> owner);
  /// Reads a whole file into a 64-byte-aligned buffer. Throws IoError (with the path and
  /// the system error) if it cannot be opened or read, or is a directory.
  static std::shared_ptr<const Blob> read_file(const std::string& path);
  /// Maps a file read-only (PROT_READ, MAP_PRIVATE); the mapping is page-aligned and lives
  /// as long as the blob. A zero-byte file gives an empty, unmapped blob; a file that is not
  /// a regular file (e.g. a pipe) is read instead. On Windows this reads the file. Throws
  /// IoError like read_file. The file must not be truncated while mapped (SIGBUS).
  static std::shared_ptr<const Blob> map_file(const std::string& path);

  Blob(const Blob&) = delete;
  Blob& operator=(const Blob&) = delete;

  /// First byte; may be null when size() == 0.
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  /// Whether the bytes are a memory mapping of a file.
  bool is_mapped() const { return mapped_; }
  /// The path the bytes came from (read_file/map_file), else empty. Used in messages.
  const std::string& source() const { return source_; }

 private:
  Blob(const uint8_t* data, size_t size, bool mapped, std::shared_ptr<const void> owner,
       std::string source);

  const uint8_t* data_;
  size_t size_;
  bool mapped_;
  std::shared_ptr<const void> owner_;  // frees / unmaps the bytes
  std::string source_;
};

using BlobPtr = std::shared_ptr<const Blob>;

// ---------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------

/// Whether `tag` is a valid section tag (1..8 characters of [A-Z0-9_]).
bool is_valid_tag(std::string_view tag);

/// Collects sections and writes them as one annx file. Sections are written in the order
/// they were added.
class ContainerWriter {
 public:
  /// Adds a section without copying: the caller keeps `data` alive and unchanged until the
  /// last to_bytes()/write_file() call. Throws InvalidArgument on an invalid or duplicate
  /// tag, a null `data` with size > 0, or too many / too large sections.
  void add_section(std::string_view tag, const void* data, size_t size);
  /// Adds a section that the writer owns.
  void add_section_copy(std::string_view tag, std::vector<uint8_t> bytes);
  /// Adds a borrowed array section (same lifetime rule as add_section).
  template <class T>
  void add_array(std::string_view tag, std::span<const T> items) {
    static_assert(std::is_trivially_copyable_v<T>);
    add_section(tag, items.data(), items.size_bytes());
  }

  bool has(std::string_view tag) const;
  size_t section_count() const { return sections_.size(); }
  /// Size in bytes of the file that to_bytes()/write_file() produce.
  uint64_t file_size() const;

  /// The whole file in memory.
  std::vector<uint8_t> to_bytes() const;
  /// Atomic save: writes a temporary file in the same directory (path + ".tmp." + pid +
  /// random suffix), fsyncs and closes it, renames it over `path`, then fsyncs the
  /// directory. On any error the temporary file is removed, an existing `path` is left
  /// untouched, and IoError (with the path and the system error) is thrown. (If only the
  /// final directory fsync fails, the new file is already in place; IoError is still thrown.)
  void write_file(const std::string& path) const;

 private:
  struct Section {
    std::string tag;
    const uint8_t* data = nullptr;  // borrowed bytes, unless `owned` is used
    size_t size = 0;
    bool is_owned = false;
    std::vector<uint8_t> owned;
    const uint8_t* bytes() const { return is_owned ? owned.data() : data; }
  };
  void add(std::string_view tag, const void* data, size_t size, std::vector<uint8_t>* owned);

  std::vector<Section> sections_;
  uint64_t data_end_ = kHeaderSize;  // end of the last section's bytes
};

// ---------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------

/// One TOC entry as read from a file.
struct SectionInfo {
  std::string tag;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t crc = 0;
};

/// Validates an annx file held in a Blob and gives access to its sections. The constructor
/// checks everything up front (sizes, magic, version, CRCs, bounds, alignment, overlaps,
/// tags, padding) and throws FormatError with a message saying what is wrong (prefixed
/// with the file path when the blob has a source). Afterwards the reader is immutable and
/// safe to share between threads.
class ContainerReader {
 public:
  /// `verify_checksums = false` skips the section CRCs (the header, TOC and padding are
  /// always verified), so that opening a large mapped file touches only a few pages.
  /// Throws InvalidArgument if `blob` is null.
  explicit ContainerReader(BlobPtr blob, bool verify_checksums = true);

  uint32_t format_major() const { return major_; }
  uint32_t format_minor() const { return minor_; }

  bool has(std::string_view tag) const;
  /// The bytes of a section, valid while the blob lives. Throws FormatError
  /// ("missing section X") if absent.
  std::span<const uint8_t> section(std::string_view tag) const;
  /// The section's bytes if present, else std::nullopt.
  std::optional<std::span<const uint8_t>> find(std::string_view tag) const;
  /// Tags in file (TOC) order.
  std::vector<std::string> tags() const;
  /// TOC entries in file order.
  const std::vector<SectionInfo>& sections() const { return entries_; }
  /// Recomputes the CRC of one section; throws FormatError on a mismatch (for readers
  /// opened with verify_checksums = false that want to check what they use).
  void verify_section(std::string_view tag) const;

  const BlobPtr& blob() const { return blob_; }
  /// "<path>: " when the blob has a source, else ""; prefixed to error messages.
  const std::string& context() const { return context_; }

 private:
  const SectionInfo* lookup(std::string_view tag) const;
  [[noreturn]] void fail(const std::string& msg) const;

  BlobPtr blob_;
  std::string context_;
  uint32_t major_ = 0;
  uint32_t minor_ = 0;
  std::vector<SectionInfo> entries_;  // file (TOC) order
  std::vector<uint32_t> by_tag_;      // indexes into entries_, sorted by tag
};

// ---------------------------------------------------------------------------------------
// Manifest: "key=value\n" lines
// ---------------------------------------------------------------------------------------

/// Whether `key` is a valid manifest key ([a-z0-9_.]+).
bool is_valid_manifest_key(std::string_view key);

/// Formats ordered key/value pairs as UTF-8 "key=value\n" lines. Throws InvalidArgument on
/// an invalid or duplicate key, or a value containing '\n' or NUL or invalid UTF-8.
std::string format_manifest(const std::vector<std::pair<std::string, std::string>>& kv);
/// Strict inverse of format_manifest. Throws FormatError on a size over 1 MiB, NUL bytes,
/// invalid UTF-8, a line without '=' or without its final '\n', an empty or invalid key,
/// or a duplicate key.
std::vector<std::pair<std::string, std::string>> parse_manifest(std::span<const uint8_t> bytes);

/// An ordered key/value manifest with strict typed lookups. Lookup failures throw
/// FormatError (the manifest came from a file); building failures throw InvalidArgument.
class Manifest {
 public:
  Manifest() = default;
  /// Validates like format_manifest (InvalidArgument).
  explicit Manifest(std::vector<std::pair<std::string, std::string>> kv);
  /// Parses bytes (FormatError); `context` prefixes error messages (e.g. "x.annx: ").
  static Manifest parse(std::span<const uint8_t> bytes, std::string context = "");
  /// Parses section `tag` of a reader (FormatError if missing or malformed).
  static Manifest from_section(const ContainerReader& reader, std::string_view tag = "MANIFEST");

  // Building (for writers). Throws InvalidArgument on a bad or duplicate key or bad value.
  void set(std::string key, std::string value);
  void set(std::string key, const char* value) { set(std::move(key), std::string(value)); }
  void set(std::string key, int64_t value);
  void set(std::string key, int value) { set(std::move(key), static_cast<int64_t>(value)); }
  void set(std::string key, uint64_t value);
  /// Shortest representation that parses back to the same double; must be finite.
  void set(std::string key, double value);
  void set(std::string key, bool value);
  std::string to_string() const;
  std::vector<uint8_t> to_bytes() const;

  // Lookups.
  bool has(std::string_view key) const;
  /// The value, or std::nullopt if the key is absent.
  std::optional<std::string_view> get(std::string_view key) const;
  /// FormatError "manifest key 'k' missing" when absent.
  const std::string& str(std::string_view key) const;
  /// Whole value must be a base-10 integer (optional '-') within [lo, hi], e.g. FormatError
  /// "manifest key 'd' = 'abc' is not an integer" or "... = '0' is out of range [1, 65536]".
  int64_t i64(std::string_view key, int64_t lo = std::numeric_limits<int64_t>::min(),
              int64_t hi = std::numeric_limits<int64_t>::max()) const;
  /// Like i64 for unsigned values within [lo, hi].
  uint64_t u64(std::string_view key, uint64_t lo = 0,
               uint64_t hi = std::numeric_limits<uint64_t>::max()) const;
  /// Whole value must be a finite decimal number within [lo, hi] (NaN never is).
  double f64(std::string_view key, double lo = std::numeric_limits<double>::lowest(),
             double hi = std::numeric_limits<double>::max()) const;
  /// "1"/"true" or "0"/"false".
  bool boolean(std::string_view key) const;

  const std::vector<std::pair<std::string, std::string>>& entries() const { return kv_; }
  size_t size() const { return kv_.size(); }

 private:
  [[noreturn]] void fail(const std::string& msg) const;
  void set_checked(std::string key, std::string value);

  std::vector<std::pair<std::string, std::string>> kv_;
  std::string context_;
};

// ---------------------------------------------------------------------------------------
// Typed section views
// ---------------------------------------------------------------------------------------

namespace detail {
/// Checks that `bytes` (section `tag`) holds exactly `count` items of `item_size` bytes and
/// is aligned to `item_align`; throws FormatError naming the section otherwise.
void check_section_array(const ContainerReader& reader, std::string_view tag,
                         std::span<const uint8_t> bytes, size_t count, size_t item_size,
                         size_t item_align);
/// Checks that the section size is a multiple of `item_size` and aligned; returns the count.
size_t check_section_multiple(const ContainerReader& reader, std::string_view tag,
                              std::span<const uint8_t> bytes, size_t item_size, size_t item_align);
}  // namespace detail

/// Views section `tag` as exactly `count` items of T (stored little-endian, in place).
/// Throws FormatError if it is missing, its size is not count * sizeof(T) (message names
/// the section, the expected and the actual bytes; the product is overflow-checked), or its
/// address is not aligned for T.
template <class T>
std::span<const T> section_as(const ContainerReader& reader, std::string_view tag, size_t count) {
  static_assert(std::is_trivially_copyable_v<T>, "sections hold trivially copyable items");
  std::span<const uint8_t> bytes = reader.section(tag);
  detail::check_section_array(reader, tag, bytes, count, sizeof(T), alignof(T));
  if (count == 0) return {};
  return {reinterpret_cast<const T*>(bytes.data()), count};
}

/// Views a whole section as items of T; its size must be a multiple of sizeof(T).
template <class T>
std::span<const T> section_array(const ContainerReader& reader, std::string_view tag) {
  static_assert(std::is_trivially_copyable_v<T>, "sections hold trivially copyable items");
  std::span<const uint8_t> bytes = reader.section(tag);
  size_t count = detail::check_section_multiple(reader, tag, bytes, sizeof(T), alignof(T));
  if (count == 0) return {};
  return {reinterpret_cast<const T*>(bytes.data()), count};
}

}  // namespace annx::io
