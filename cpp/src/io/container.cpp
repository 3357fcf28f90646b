// The annx file container: Blob (owned / mapped bytes), ContainerWriter (atomic save),
// ContainerReader (up-front validation), the manifest, and typed section views.
// The byte layout is documented in annx/io/container.h.
#include "annx/io/container.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <new>
#include <random>
#include <system_error>
#include <unordered_set>

#ifdef _WIN32
#ifndef NOMINMAX
#define NOMINMAX  // keep <windows.h> from defining min/max macros
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <fcntl.h>
#include <io.h>
#include <process.h>
#include <sys/stat.h>
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace annx::io {

namespace {

using ::annx::detail::concat;

// ---------------------------------------------------------------------------------------
// Little-endian encoding (explicit bytes, so the header code does not depend on the host)
// ---------------------------------------------------------------------------------------

uint32_t load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
uint64_t load_u64(const uint8_t* p) {
  return static_cast<uint64_t>(load_u32(p)) | static_cast<uint64_t>(load_u32(p + 4)) << 32;
}
void store_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void store_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Header field offsets (see the layout table in container.h).
constexpr size_t kOffMagic = 0;
constexpr size_t kOffMajor = 8;
constexpr size_t kOffMinor = 12;
constexpr size_t kOffFlags = 16;
constexpr size_t kOffFileSize = 24;
constexpr size_t kOffTocOffset = 32;
constexpr size_t kOffSectionCount = 40;
constexpr size_t kOffTocCrc = 44;
constexpr size_t kOffReserved = 48;
constexpr size_t kOffHeaderCrc = 60;
static_assert(kOffReserved + 12 == kOffHeaderCrc && kOffHeaderCrc + 4 == kHeaderSize);
// TOC entry field offsets.
constexpr size_t kEntTag = 0;
constexpr size_t kEntOffset = 8;
constexpr size_t kEntLength = 16;
constexpr size_t kEntCrc = 24;
constexpr size_t kEntReserved = 28;
static_assert(kEntReserved + 4 == kTocEntrySize);

constexpr uint64_t align_up(uint64_t x) {
  return (x + (kSectionAlign - 1)) & ~uint64_t{kSectionAlign - 1};
}

// Shows (possibly binary) bytes inside an error message: printable ASCII as is (plus, when
// `utf8`, bytes >= 0x80 of already-validated UTF-8), the rest as \xHH, cut at `max`.
std::string printable(std::string_view s, bool utf8 = false, size_t max = 64) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == max) {
      out += "...";
      break;
    }
    auto c = static_cast<unsigned char>(s[i]);
    if ((c >= 0x20 && c < 0x7F) || (utf8 && c >= 0x80)) {
      out += static_cast<char>(c);
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;  // continuation byte, overlong lead (C0/C1) or > U+10FFFF lead
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;  // overlong, out of range, or a UTF-16 surrogate
    }
    i += len;
  }
  return true;
}

bool all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Small OS layer: POSIX, with a plain-I/O Windows variant (no mmap there).
// ---------------------------------------------------------------------------------------

std::string errno_text(int err) { return std::generic_category().message(err); }

[[noreturn]] void throw_io(const std::string& what, const std::string& path, int err) {
  throw IoError(concat(what, " '", path, "': ", errno_text(err)));
}

struct FileInfo {
  bool is_dir = false;
  bool is_regular = false;
  uint64_t size = 0;
};

#ifdef _WIN32
using ssize_type = int;
constexpr size_t kMaxIo = size_t{1} << 30;
int sys_open_read(const std::string& p) { return ::_open(p.c_str(), _O_RDONLY | _O_BINARY); }
int sys_open_excl(const std::string& p) {
  return ::_open(p.c_str(), _O_WRONLY | _O_CREAT | _O_EXCL | _O_BINARY, _S_IREAD | _S_IWRITE);
}
ssize_type sys_read(int fd, void* b, size_t n) {
  return ::_read(fd, b, static_cast<unsigned>(std::min(n, kMaxIo)));
}
ssize_type sys_write(int fd, const void* b, size_t n) {
  return ::_write(fd, b, static_cast<unsigned>(std::min(n, kMaxIo)));
}
int sys_close(int fd) { return ::_close(fd); }
int sys_fsync(int fd) { return ::_commit(fd); }
bool sys_seek(int fd, uint64_t off) {
  return ::_lseeki64(fd, static_cast<__int64>(off), SEEK_SET) >= 0;
}
int sys_unlink(const std::string& p) { return ::_unlink(p.c_str()); }
long sys_pid() { return static_cast<long>(::_getpid()); }
bool sys_fstat(int fd, FileInfo* info) {
  struct _stat64 st;
  if (::_fstat64(fd, &st) != 0) return false;
  info->is_dir = (st.st_mode & _S_IFMT) == _S_IFDIR;
  info->is_regular = (st.st_mode & _S_IFMT) == _S_IFREG;
  info->size = static_cast<uint64_t>(st.st_size);
  return true;
}
// Returns an error text, empty on success.
std::string sys_rename_replace(const std::string& from, const std::string& to) {
  if (::MoveFileExA(from.c_str(), to.c_str(), MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
    return {};
  }
  return std::system_category().message(static_cast<int>(::GetLastError()));
}
std::string sys_fsync_dir(const std::string&) { return {}; }  // not possible / not needed
#else
using ssize_type = ssize_t;
constexpr size_t kMaxIo = size_t{1} << 30;  // Linux transfers at most ~2 GiB per call anyway
int sys_open_read(const std::string& p) {
  // O_NONBLOCK: opening a FIFO that has no writer would otherwise block forever (it then
  // reads as empty). Reads themselves block again as usual.
  int fd;
  do {
    fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd >= 0) {
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl >= 0) ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  }
  return fd;
}
int sys_open_excl(const std::string& p) {
  int fd;
  do {
    fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  } while (fd < 0 && errno == EINTR);
  return fd;
}
ssize_type sys_read(int fd, void* b, size_t n) { return ::read(fd, b, std::min(n, kMaxIo)); }
ssize_type sys_write(int fd, const void* b, size_t n) {
  return ::write(fd, b, std::min(n, kMaxIo));
}
int sys_close(int fd) { return ::close(fd); }  // never retried on EINTR (Linux closes anyway)
int sys_fsync(int fd) {
  int rc;
  do {
    rc = ::fsync(fd);
  } while (rc != 0 && errno == EINTR);
  return rc;
}
bool sys_seek(int fd, uint64_t off) {
  return ::lseek(fd, static_cast<off_t>(off), SEEK_SET) == static_cast<off_t>(off);
}
int sys_unlink(const std::string& p) { return ::unlink(p.c_str()); }
long sys_pid() { return static_cast<long>(::getpid()); }
bool sys_fstat(int fd, FileInfo* info) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return false;
  info->is_dir = S_ISDIR(st.st_mode);
  info->is_regular = S_ISREG(st.st_mode);
  info->size = static_cast<uint64_t>(st.st_size);
  return true;
}
std::string sys_rename_replace(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) == 0) return {};
  return errno_text(errno);
}
// Makes a rename durable. Returns an error text, empty on success or where the file system
// cannot sync directories (EINVAL etc.) or the directory cannot be opened for reading.
std::string sys_fsync_dir(const std::string& dir) {
  int fd;
  do {
    fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return {};
  std::string err;
  if (sys_fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP && errno != EROFS &&
      errno != EBADF) {
    err = errno_text(errno);
  }
  sys_close(fd);
  return err;
}
#endif

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) sys_close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports the result (close can report delayed write errors).
  int close() {
    int fd = fd_;
    fd_ = -1;
    return fd >= 0 ? sys_close(fd) : 0;
  }

 private:
  int fd_;
};

// Reads up to n bytes; returns the count read (< n only at end of file), or -1 (errno).
int64_t read_full(int fd, uint8_t* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_type r = sys_read(fd, buf + done, n - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<int64_t>(done);
}

bool write_full(int fd, const uint8_t* buf, size_t n) {
  while (n > 0) {
    ssize_type r = sys_write(fd, buf, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (r == 0) {
      errno = EIO;
      return false;
    }
    buf += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

constexpr std::align_val_t kBlobAlign{64};

// A 64-byte-aligned buffer owned by a shared_ptr (null for n == 0).
std::shared_ptr<uint8_t> alloc_aligned(size_t n) {
  if (n == 0) return nullptr;
  auto* p = static_cast<uint8_t*>(::operator new(n, kBlobAlign));
  return std::shared_ptr<uint8_t>(p, [](uint8_t* q) { ::operator delete(q, kBlobAlign); });
}

std::string parent_dir(const std::string& path) {
#ifdef _WIN32
  size_t slash = path.find_last_of("/\\");
#else
  size_t slash = path.find_last_of('/');
#endif
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// A random suffix for temporary files; unpredictable enough to avoid collisions between
// processes and threads (uniqueness is still enforced by O_EXCL).
std::string random_suffix() {
  static std::atomic<uint64_t> counter{0};
  uint64_t x = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
               (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull);
  try {
    std::random_device rd;
    x ^= (static_cast<uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    // No entropy source: the clock and counter are enough together with O_EXCL.
  }
  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  static const char kHex[] = "0123456789abcdef";
  std::string s(12, '0');
  for (char& c : s) {
    c = kHex[x & 15];
    x >>= 4;
  }
  return s;
}

// The temporary file of an atomic save: removed on destruction unless committed.
class TempFile {
 public:
  explicit TempFile(const std::string& target) {
    for (int attempt = 0;; ++attempt) {
      path_ = concat(target, ".tmp.", sys_pid(), ".", random_suffix());
      int fd = sys_open_excl(path_);
      if (fd >= 0) {
        fd_ = std::make_unique<Fd>(fd);
        return;
      }
      int err = errno;
      if (err != EEXIST || attempt >= 16) {
        throw IoError(concat("cannot write annx file '", target,
                             "': cannot create temporary file '", path_, "': ", errno_text(err)));
      }
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    fd_.reset();
    if (!committed_) sys_unlink(path_);
  }
  int fd() const { return fd_->get(); }
  int close() { return fd_->close(); }
  const std::string& path() const { return path_; }
  void commit() { committed_ = true; }

 private:
  std::string path_;
  std::unique_ptr<Fd> fd_;
  bool committed_ = false;
};

}  // namespace

// =======================================================================================
// Blob
// =======================================================================================

Blob::Blob(const uint8_t* data, size_t size, bool mapped, std::shared_ptr<const void> owner,
           std::string source)
    : data_(data),
      size_(size),
      mapped_(mapped),
      owner_(std::move(owner)),
      source_(std::move(source)) {}

std::shared_ptr<const Blob> Blob::from_vector(std::vector<uint8_t> bytes) {
  auto holder = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  const uint8_t* d = holder->data();
  size_t n = holder->size();
  return std::shared_ptr<const Blob>(new Blob(d, n, false, std::move(holder), {}));
}

std::shared_ptr<const Blob> Blob::copy_of(const void* data, size_t size) {
  ANNX_CHECK(InvalidArgument, data != nullptr || size == 0, "Blob::copy_of: null data");
  std::shared_ptr<uint8_t> buf = alloc_aligned(size);
  if (size > 0) std::memcpy(buf.get(), data, size);
  const uint8_t* d = buf.get();
  return std::shared_ptr<const Blob>(new Blob(d, size, false, std::move(buf), {}));
}

std::shared_ptr<const Blob> Blob::borrow(const void* data, size_t size,
                                         std::shared_ptr<const void> owner) {
  ANNX_CHECK(InvalidArgument, data != nullptr || size == 0, "Blob::borrow: null data");
  return std::shared_ptr<const Blob>(
      new Blob(static_cast<const uint8_t*>(data), size, false, std::move(owner), {}));
}

namespace {

// Reads everything from an open descriptor (a regular file by its size, anything else until
// end of file) into an aligned buffer.
std::shared_ptr<const Blob> read_open_file(
    int fd, const FileInfo& info, const std::string& path,
    std::shared_ptr<const Blob> (*make)(std::shared_ptr<uint8_t>, size_t, std::string)) {
  if (info.is_regular) {
    if (info.size > SIZE_MAX) throw_io("cannot read", path, EFBIG);
    auto n = static_cast<size_t>(info.size);
    std::shared_ptr<uint8_t> buf = alloc_aligned(n);
    int64_t got = read_full(fd, buf.get(), n);
    if (got < 0) throw_io("cannot read", path, errno);
    // A file that shrank meanwhile gives fewer bytes; the reader reports it as truncated.
    return make(std::move(buf), static_cast<size_t>(got), path);
  }
  // A stream (pipe, device) has no size: read the header, and then only as many bytes as
  // a header with the right magic and CRC declares (plus one, so that a longer stream is
  // reported as such). An endless stream (/dev/zero, /dev/urandom) stops after 64 bytes.
  std::vector<uint8_t> bytes(kHeaderSize);
  int64_t got = read_full(fd, bytes.data(), kHeaderSize);
  if (got < 0) throw_io("cannot read", path, errno);
  size_t used = static_cast<size_t>(got);
  uint64_t want = used;
  if (used == kHeaderSize && std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) == 0 &&
      crc32c(bytes.data(), kOffHeaderCrc) == load_u32(bytes.data() + kOffHeaderCrc)) {
    const uint64_t declared = load_u64(bytes.data() + kOffFileSize);
    want = declared < SIZE_MAX - 1 ? declared + 1 : SIZE_MAX;
  }
  while (used < want) {
    // Grow geometrically, never past what the header declares: memory follows the data
    // actually delivered, not the declared size.
    if (bytes.size() == used)
      bytes.resize(
          static_cast<size_t>(std::min<uint64_t>(want, std::max<size_t>(used * 2, 65536))));
    got = read_full(fd, bytes.data() + used, bytes.size() - used);
    if (got < 0) throw_io("cannot read", path, errno);
    if (got == 0) break;
    used += static_cast<size_t>(got);
  }
  std::shared_ptr<uint8_t> buf = alloc_aligned(used);
  if (used > 0) std::memcpy(buf.get(), bytes.data(), used);
  return make(std::move(buf), used, path);
}

}  // namespace

std::shared_ptr<const Blob> Blob::read_file(const std::string& path) {
  Fd fd(sys_open_read(path));
  if (fd.get() < 0) throw_io("cannot open", path, errno);
  FileInfo info;
  if (!sys_fstat(fd.get(), &info)) throw_io("cannot stat", path, errno);
  if (info.is_dir) throw_io("cannot read", path, EISDIR);
  return read_open_file(
      fd.get(), info, path, [](std::shared_ptr<uint8_t> buf, size_t n, std::string src) {
        const uint8_t* d = buf.get();
        return std::shared_ptr<const Blob>(new Blob(d, n, false, std::move(buf), std::move(src)));
      });
}

std::shared_ptr<const Blob> Blob::map_file(const std::string& path) {
#ifdef _WIN32
  return read_file(path);
#else
  Fd fd(sys_open_read(path));
  if (fd.get() < 0) throw_io("cannot open", path, errno);
  FileInfo info;
  if (!sys_fstat(fd.get(), &info)) throw_io("cannot stat", path, errno);
  if (info.is_dir) throw_io("cannot read", path, EISDIR);
  auto make = [](std::shared_ptr<uint8_t> buf, size_t n, std::string src) {
    const uint8_t* d = buf.get();
    return std::shared_ptr<const Blob>(new Blob(d, n, false, std::move(buf), std::move(src)));
  };
  // Pipes and devices cannot (or should not) be mapped; a zero-byte file must not be.
  if (!info.is_regular || info.size == 0) return read_open_file(fd.get(), info, path, make);
  if (info.size > SIZE_MAX) throw_io("cannot map", path, EFBIG);
  auto n = static_cast<size_t>(info.size);
  void* addr = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (addr == MAP_FAILED) throw_io("cannot map", path, errno);
  // The mapping stays valid after the descriptor is closed.
  std::shared_ptr<const void> owner(addr,
                                    [n](const void* a) { ::munmap(const_cast<void*>(a), n); });
  return std::shared_ptr<const Blob>(
      new Blob(static_cast<const uint8_t*>(addr), n, true, std::move(owner), path));
#endif
}

// =======================================================================================
// Writer
// =======================================================================================

bool is_valid_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > kMaxTagLength) return false;
  return std::all_of(tag.begin(), tag.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

void ContainerWriter::add(std::string_view tag, const void* data, size_t size,
                          std::vector<uint8_t>* owned) {
  ANNX_CHECK(InvalidArgument, is_valid_tag(tag), "invalid section tag '", printable(tag),
             "' (1..8 characters of A-Z, 0-9, _)");
  ANNX_CHECK(InvalidArgument, !has(tag), "duplicate section tag ", tag);
  ANNX_CHECK(InvalidArgument, data != nullptr || size == 0, "section ", tag, ": null data");
  ANNX_CHECK(InvalidArgument, sections_.size() < kMaxSections, "too many sections (limit ",
             kMaxSections, ")");
  // Keep the file size representable in memory (to_bytes) and in the header: a section
  // adds at most 63 bytes of padding, its bytes and a TOC entry.
  constexpr uint64_t kLimit = std::min<uint64_t>(SIZE_MAX, UINT64_MAX) / 2;
  const uint64_t total = file_size();
  ANNX_CHECK(InvalidArgument, size <= kLimit - total, "section ", tag, " is too large (", size,
             " bytes)");
  Section s;
  s.tag = std::string(tag);
  s.size = size;
  if (owned != nullptr) {
    s.is_owned = true;
    s.owned = std::move(*owned);
  } else {
    s.data = static_cast<const uint8_t*>(data);
  }
  sections_.push_back(std::move(s));
  data_end_ = align_up(data_end_) + size;
}

void ContainerWriter::add_section(std::string_view tag, const void* data, size_t size) {
  add(tag, data, size, nullptr);
}

void ContainerWriter::add_section_copy(std::string_view tag, std::vector<uint8_t> bytes) {
  size_t n = bytes.size();
  add(tag, bytes.data(), n, &bytes);
}

bool ContainerWriter::has(std::string_view tag) const {
  return std::any_of(sections_.begin(), sections_.end(),
                     [&](const Section& s) { return s.tag == tag; });
}

uint64_t ContainerWriter::file_size() const {
  return align_up(data_end_) + kTocEntrySize * sections_.size();
}

namespace {

struct Layout {
  std::vector<uint64_t> offsets;
  uint64_t toc_offset = 0;
  uint64_t file_size = 0;
};

template <class Sections>
Layout plan_layout(const Sections& sections) {
  Layout l;
  uint64_t off = kHeaderSize;
  for (const auto& s : sections) {
    off = align_up(off);
    l.offsets.push_back(off);
    off += s.size;
  }
  l.toc_offset = align_up(off);
  l.file_size = l.toc_offset + kTocEntrySize * sections.size();
  return l;
}

void encode_toc_entry(uint8_t* e, const std::string& tag, uint64_t offset, uint64_t length,
                      uint32_t crc) {
  std::memset(e, 0, kTocEntrySize);
  std::memcpy(e + kEntTag, tag.data(), tag.size());
  store_u64(e + kEntOffset, offset);
  store_u64(e + kEntLength, length);
  store_u32(e + kEntCrc, crc);
}

void encode_header(uint8_t* h, const Layout& l, uint32_t count, uint32_t toc_crc) {
  std::memset(h, 0, kHeaderSize);
  std::memcpy(h + kOffMagic, kMagic, sizeof(kMagic));
  store_u32(h + kOffMajor, kFormatMajor);
  store_u32(h + kOffMinor, kFormatMinor);
  store_u64(h + kOffFlags, 0);
  store_u64(h + kOffFileSize, l.file_size);
  store_u64(h + kOffTocOffset, l.toc_offset);
  store_u32(h + kOffSectionCount, count);
  store_u32(h + kOffTocCrc, toc_crc);
  store_u32(h + kOffHeaderCrc, crc32c(h, kOffHeaderCrc));
}

}  // namespace

std::vector<uint8_t> ContainerWriter::to_bytes() const {
  const Layout l = plan_layout(sections_);
  std::vector<uint8_t> out(static_cast<size_t>(l.file_size), 0);
  uint8_t* toc = out.data() + l.toc_offset;
  for (size_t i = 0; i < sections_.size(); ++i) {
    const Section& s = sections_[i];
    uint8_t* dst = out.data() + l.offsets[i];
    if (s.size > 0) std::memcpy(dst, s.bytes(), s.size);
    encode_toc_entry(toc + i * kTocEntrySize, s.tag, l.offsets[i], s.size, crc32c(dst, s.size));
  }
  const uint32_t toc_crc = crc32c(toc, kTocEntrySize * sections_.size());
  encode_header(out.data(), l, static_cast<uint32_t>(sections_.size()), toc_crc);
  return out;
}

void ContainerWriter::write_file(const std::string& path) const {
  const Layout l = plan_layout(sections_);
  auto fail = [&](const std::string& what, const std::string& err) {
    throw IoError(concat("cannot write annx file '", path, "': ", what, ": ", err));
  };
  TempFile tmp(path);  // removed again by its destructor unless committed
  static constexpr uint8_t kZeros[kSectionAlign] = {};
  uint64_t pos = 0;
  auto put = [&](const uint8_t* p, size_t n) {
    if (!write_full(tmp.fd(), p, n)) fail("write failed", errno_text(errno));
    pos += n;
  };
  auto pad_to = [&](uint64_t target) {
    while (pos < target)
      put(kZeros, static_cast<size_t>(std::min<uint64_t>(target - pos, sizeof(kZeros))));
  };

  // Header placeholder first; the real header (which needs the TOC CRC) is written last.
  pad_to(kHeaderSize);
  std::vector<uint8_t> toc(kTocEntrySize * sections_.size());
  for (size_t i = 0; i < sections_.size(); ++i) {
    const Section& s = sections_[i];
    pad_to(l.offsets[i]);
    // CRC and write chunk by chunk so that each chunk is read from memory once.
    constexpr size_t kChunk = size_t{4} << 20;
    const uint8_t* p = s.bytes();
    uint32_t crc = 0;
    for (size_t done = 0; done < s.size;) {
      size_t n = std::min(kChunk, s.size - done);
      crc = crc32c(p + done, n, crc);
      put(p + done, n);
      done += n;
    }
    encode_toc_entry(toc.data() + i * kTocEntrySize, s.tag, l.offsets[i], s.size, crc);
  }
  pad_to(l.toc_offset);
  put(toc.data(), toc.size());
  uint8_t header[kHeaderSize];
  encode_header(header, l, static_cast<uint32_t>(sections_.size()), crc32c(toc.data(), toc.size()));
  if (!sys_seek(tmp.fd(), 0)) fail("seek failed", errno_text(errno));
  if (!write_full(tmp.fd(), header, kHeaderSize)) fail("write failed", errno_text(errno));

  if (sys_fsync(tmp.fd()) != 0) fail("fsync failed", errno_text(errno));
  if (tmp.close() != 0) fail("close failed", errno_text(errno));
  std::string err = sys_rename_replace(tmp.path(), path);
  if (!err.empty()) fail(concat("cannot rename temporary file '", tmp.path(), "' over it"), err);
  tmp.commit();
  // The new file is in place; make the rename itself durable.
  err = sys_fsync_dir(parent_dir(path));
  if (!err.empty()) fail("fsync of its directory failed", err);
}

// =======================================================================================
// Reader
// =======================================================================================

void ContainerReader::fail(const std::string& msg) const { throw FormatError(context_ + msg); }

ContainerReader::ContainerReader(BlobPtr blob, bool verify_checksums) : blob_(std::move(blob)) {
  ANNX_CHECK(InvalidArgument, blob_ != nullptr, "ContainerReader: null blob");
  if (!blob_->source().empty()) context_ = blob_->source() + ": ";
  const uint8_t* p = blob_->data();
  const uint64_t size = blob_->size();

  if (size == 0) fail("file is empty");
  if (size < kHeaderSize) fail(concat("too small to be an annx file (", size, " bytes)"));
  if (std::memcmp(p + kOffMagic, kMagic, sizeof(kMagic)) != 0) {
    fail("not an annx file (bad magic bytes)");
  }

  // The version is checked before the header CRC: a future major may lay the header out
  // differently, and "written by a newer format" is the useful message then.
  const bool header_ok = crc32c(p, kOffHeaderCrc) == load_u32(p + kOffHeaderCrc);
  major_ = load_u32(p + kOffMajor);
  minor_ = load_u32(p + kOffMinor);
  if (major_ != kFormatMajor) {
    std::string msg =
        major_ == 0 ? concat("invalid annx file format version v0.", minor_,
                             "; this build reads format v", kFormatMajor, ".x")
                    : concat("this file was written by annx file format v", major_, ".", minor_,
                             "; this build reads format v", kFormatMajor, ".x",
                             major_ > kFormatMajor ? " (a newer annx is needed to load it)" : "");
    if (!header_ok) msg += " (the header checksum does not match either: the file may be corrupt)";
    fail(msg);
  }
  if (!header_ok) fail("header is corrupt (checksum mismatch)");

  const uint64_t file_size = load_u64(p + kOffFileSize);
  if (file_size > size) {
    fail(concat("truncated: header says ", file_size, " bytes, file has ", size));
  }
  if (file_size < size) {
    fail(concat("file has ", size, " bytes but its header says ", file_size,
                " (trailing data or a corrupt header)"));
  }

  // Compare the count with the bytes present before using it for anything.
  const uint32_t count = load_u32(p + kOffSectionCount);
  if (count > kMaxSections) {
    fail(concat("section count ", count, " exceeds the limit of ", kMaxSections));
  }
  if (count > (size - kHeaderSize) / kTocEntrySize) {
    fail(concat("section count ", count, " is impossible for a file of ", size, " bytes"));
  }
  const uint64_t toc_bytes = uint64_t{count} * kTocEntrySize;  // <= size, no overflow
  const uint64_t toc_offset = load_u64(p + kOffTocOffset);
  if (toc_offset < kHeaderSize || toc_offset > size || size - toc_offset != toc_bytes) {
    fail(concat("table of contents out of bounds (offset ", toc_offset, ", ", count,
                " entries, file of ", size, " bytes)"));
  }
  if (toc_offset % kSectionAlign != 0) {
    fail(concat("table of contents offset ", toc_offset, " is not 64-byte aligned"));
  }
  const uint8_t* toc = p + toc_offset;
  if (crc32c(toc, static_cast<size_t>(toc_bytes)) != load_u32(p + kOffTocCrc)) {
    fail("table of contents is corrupt (checksum mismatch)");
  }

  entries_.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = toc + size_t{i} * kTocEntrySize;
    const char* raw = reinterpret_cast<const char*>(e + kEntTag);
    size_t len = 0;
    while (len < kMaxTagLength && raw[len] != '\0') ++len;
    std::string_view tag(raw, len);
    if (!is_valid_tag(tag) || !all_zero(e + kEntTag + len, kMaxTagLength - len)) {
      fail(concat("section #", i, " has an invalid tag '",
                  printable(std::string_view(raw, kMaxTagLength)), "'"));
    }
    SectionInfo& s = entries_[i];
    s.tag = std::string(tag);
    s.offset = load_u64(e + kEntOffset);
    s.length = load_u64(e + kEntLength);
    s.crc = load_u32(e + kEntCrc);
    if (s.offset % kSectionAlign != 0) {
      fail(concat("section ", s.tag, " offset ", s.offset, " is not 64-byte aligned"));
    }
    if (s.offset < kHeaderSize) {
      fail(concat("section ", s.tag, " overlaps the header (offset ", s.offset, ")"));
    }
    // Overflow-safe form of offset + length <= toc_offset (toc_offset <= size).
    if (s.offset > toc_offset || s.length > toc_offset - s.offset) {
      fail(concat("section ", s.tag, " (offset ", s.offset, ", ", s.length,
                  " bytes) extends past the start of the table of contents at ", toc_offset));
    }
  }

  by_tag_.resize(count);
  for (uint32_t i = 0; i < count; ++i) by_tag_[i] = i;
  std::sort(by_tag_.begin(), by_tag_.end(),
            [&](uint32_t a, uint32_t b) { return entries_[a].tag < entries_[b].tag; });
  for (size_t i = 1; i < by_tag_.size(); ++i) {
    if (entries_[by_tag_[i - 1]].tag == entries_[by_tag_[i]].tag) {
      fail(concat("duplicate section ", entries_[by_tag_[i]].tag));
    }
  }

  // Sections in file order must not overlap, and every byte between them must be zero
  // padding (this is what makes a bit flip anywhere in the file detectable).
  std::vector<uint32_t> by_offset(by_tag_);
  std::sort(by_offset.begin(), by_offset.end(), [&](uint32_t a, uint32_t b) {
    const SectionInfo& x = entries_[a];
    const SectionInfo& y = entries_[b];
    return x.offset != y.offset ? x.offset < y.offset : x.length < y.length;
  });
  uint64_t end = kHeaderSize;
  const SectionInfo* prev = nullptr;
  auto check_gap = [&](uint64_t from, uint64_t to) {
    for (uint64_t o = from; o < to; ++o) {
      if (p[o] != 0) fail(concat("non-zero padding byte at offset ", o, " (corrupt file)"));
    }
  };
  for (uint32_t idx : by_offset) {
    const SectionInfo& s = entries_[idx];
    if (s.offset < end) {
      fail(concat("section ", s.tag, " overlaps section ", prev->tag));
    }
    check_gap(end, s.offset);
    end = s.offset + s.length;
    prev = &s;
  }
  check_gap(end, toc_offset);

  if (verify_checksums) {
    for (const SectionInfo& s : entries_) {
      if (crc32c(p + s.offset, static_cast<size_t>(s.length)) != s.crc) {
        fail(concat("section ", s.tag, " is corrupt (checksum mismatch)"));
      }
    }
  }
}

const SectionInfo* ContainerReader::lookup(std::string_view tag) const {
  auto it = std::lower_bound(
      by_tag_.begin(), by_tag_.end(), tag,
      [&](uint32_t i, std::string_view t) { return std::string_view(entries_[i].tag) < t; });
  if (it == by_tag_.end() || entries_[*it].tag != tag) return nullptr;
  return &entries_[*it];
}

bool ContainerReader::has(std::string_view tag) const { return lookup(tag) != nullptr; }

std::optional<std::span<const uint8_t>> ContainerReader::find(std::string_view tag) const {
  const SectionInfo* s = lookup(tag);
  if (s == nullptr) return std::nullopt;
  return std::span<const uint8_t>(blob_->data() + s->offset, static_cast<size_t>(s->length));
}

std::span<const uint8_t> ContainerReader::section(std::string_view tag) const {
  auto s = find(tag);
  if (!s) fail(concat("missing section ", printable(tag)));
  return *s;
}

std::vector<std::string> ContainerReader::tags() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const SectionInfo& s : entries_) out.push_back(s.tag);
  return out;
}

void ContainerReader::verify_section(std::string_view tag) const {
  const SectionInfo* s = lookup(tag);
  if (s == nullptr) fail(concat("missing section ", printable(tag)));
  if (crc32c(blob_->data() + s->offset, static_cast<size_t>(s->length)) != s->crc) {
    fail(concat("section ", s->tag, " is corrupt (checksum mismatch)"));
  }
}

// =======================================================================================
// Manifest
// =======================================================================================

bool is_valid_manifest_key(std::string_view key) {
  if (key.empty()) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
  });
}

namespace {

void check_entry(std::string_view key, std::string_view value) {
  ANNX_CHECK(InvalidArgument, is_valid_manifest_key(key), "invalid manifest key '", printable(key),
             "' (use a-z, 0-9, '_' and '.')");
  ANNX_CHECK(InvalidArgument, value.find('\n') == std::string_view::npos, "manifest value of '",
             key, "' contains a newline");
  ANNX_CHECK(InvalidArgument, value.find('\0') == std::string_view::npos, "manifest value of '",
             key, "' contains a NUL byte");
  ANNX_CHECK(InvalidArgument, valid_utf8(value), "manifest value of '", key,
             "' is not valid UTF-8");
}

}  // namespace

std::string format_manifest(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::unordered_set<std::string_view> seen;
  std::string out;
  for (const auto& [key, value] : kv) {
    check_entry(key, value);
    ANNX_CHECK(InvalidArgument, seen.insert(key).second, "duplicate manifest key '", key, "'");
    out += key;
    out += '=';
    out += value;
    out += '\n';
  }
  return out;
}

namespace {

std::vector<std::pair<std::string, std::string>> parse_manifest_impl(std::span<const uint8_t> bytes,
                                                                     const std::string& ctx) {
  auto fail = [&](const std::string& msg) { throw FormatError(ctx + msg); };
  if (bytes.size() > kMaxManifestBytes) {
    fail(concat("manifest is too large (", bytes.size(), " bytes; the limit is ", kMaxManifestBytes,
                ")"));
  }
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (text.find('\0') != std::string_view::npos) fail("manifest contains a NUL byte");
  if (!valid_utf8(text)) fail("manifest is not valid UTF-8");
  if (!text.empty() && text.back() != '\n') fail("manifest is truncated (no final newline)");

  std::vector<std::pair<std::string, std::string>> kv;
  std::unordered_set<std::string_view> seen;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');  // exists: the text ends with '\n'
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      fail(concat("manifest line ", line_no, " has no '=': '", printable(line, true), "'"));
    }
    std::string_view key = line.substr(0, eq);
    if (key.empty()) fail(concat("manifest line ", line_no, " has an empty key"));
    if (!is_valid_manifest_key(key)) {
      fail(concat("manifest line ", line_no, " has an invalid key '", printable(key, true), "'"));
    }
    if (!seen.insert(key).second) fail(concat("manifest has a duplicate key '", key, "'"));
    kv.emplace_back(std::string(key), std::string(line.substr(eq + 1)));
  }
  return kv;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_manifest(std::span<const uint8_t> bytes) {
  return parse_manifest_impl(bytes, "");
}

Manifest::Manifest(std::vector<std::pair<std::string, std::string>> kv) {
  for (auto& [key, value] : kv) set_checked(std::move(key), std::move(value));
}

Manifest Manifest::parse(std::span<const uint8_t> bytes, std::string context) {
  Manifest m;
  m.kv_ = parse_manifest_impl(bytes, context);
  m.context_ = std::move(context);
  return m;
}

Manifest Manifest::from_section(const ContainerReader& reader, std::string_view tag) {
  return parse(reader.section(tag), reader.context());
}

void Manifest::fail(const std::string& msg) const { throw FormatError(context_ + msg); }

void Manifest::set_checked(std::string key, std::string value) {
  check_entry(key, value);
  ANNX_CHECK(InvalidArgument, !has(key), "manifest key '", key, "' set twice");
  kv_.emplace_back(std::move(key), std::move(value));
}

void Manifest::set(std::string key, std::string value) {
  set_checked(std::move(key), std::move(value));
}

void Manifest::set(std::string key, int64_t value) {
  set_checked(std::move(key), std::to_string(value));
}

void Manifest::set(std::string key, uint64_t value) {
  set_checked(std::move(key), std::to_string(value));
}

void Manifest::set(std::string key, double value) {
  ANNX_CHECK(InvalidArgument, std::isfinite(value), "manifest value of '", key,
             "' must be finite, got ", value);
  char buf[64];
  // Shortest round-trip form, independent of the C locale.
  auto res = std::to_chars(buf, buf + sizeof(buf), value);
  set_checked(std::move(key), std::string(buf, res.ptr));
}

void Manifest::set(std::string key, bool value) {
  set_checked(std::move(key), value ? "true" : "false");
}

std::string Manifest::to_string() const { return format_manifest(kv_); }

std::vector<uint8_t> Manifest::to_bytes() const {
  std::string s = to_string();
  return std::vector<uint8_t>(s.begin(), s.end());
}

std::optional<std::string_view> Manifest::get(std::string_view key) const {
  for (const auto& [k, v] : kv_) {
    if (k == key) return std::string_view(v);
  }
  return std::nullopt;
}

bool Manifest::has(std::string_view key) const { return get(key).has_value(); }

const std::string& Manifest::str(std::string_view key) const {
  for (const auto& [k, v] : kv_) {
    if (k == key) return v;
  }
  fail(concat("manifest key '", printable(key), "' missing"));
}

int64_t Manifest::i64(std::string_view key, int64_t lo, int64_t hi) const {
  const std::string& v = str(key);
  int64_t x = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  bool range_error = ec == std::errc::result_out_of_range && ptr == v.data() + v.size();
  if (!range_error && (ec != std::errc() || ptr != v.data() + v.size())) {
    fail(concat("manifest key '", key, "' = '", printable(v, true), "' is not an integer"));
  }
  if (range_error || x < lo || x > hi) {
    fail(concat("manifest key '", key, "' = '", printable(v, true), "' is out of range [", lo, ", ",
                hi, "]"));
  }
  return x;
}

uint64_t Manifest::u64(std::string_view key, uint64_t lo, uint64_t hi) const {
  const std::string& v = str(key);
  uint64_t x = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  bool range_error = ec == std::errc::result_out_of_range && ptr == v.data() + v.size();
  if (!range_error && (ec != std::errc() || ptr != v.data() + v.size())) {
    fail(concat("manifest key '", key, "' = '", printable(v, true),
                "' is not a non-negative integer"));
  }
  if (range_error || x < lo || x > hi) {
    fail(concat("manifest key '", key, "' = '", printable(v, true), "' is out of range [", lo, ", ",
                hi, "]"));
  }
  return x;
}

double Manifest::f64(std::string_view key, double lo, double hi) const {
  const std::string& v = str(key);
  double x = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || ptr != v.data() + v.size() || !std::isfinite(x)) {
    fail(concat("manifest key '", key, "' = '", printable(v, true), "' is not a finite number"));
  }
  if (!(x >= lo && x <= hi)) {
    fail(concat("manifest key '", key, "' = '", printable(v, true), "' is out of range [", lo, ", ",
                hi, "]"));
  }
  return x;
}

bool Manifest::boolean(std::string_view key) const {
  const std::string& v = str(key);
  if (v == "1" || v == "true") return true;
  if (v == "0" || v == "false") return false;
  fail(concat("manifest key '", key, "' = '", printable(v, true),
              "' is not a boolean (true/false/1/0)"));
}

// =======================================================================================
// Typed section views
// =======================================================================================

namespace detail {

void check_section_array(const ContainerReader& reader, std::string_view tag,
                         std::span<const uint8_t> bytes, size_t count, size_t item_size,
                         size_t item_align) {
  const std::string& ctx = reader.context();
  if (count > SIZE_MAX / item_size) {
    throw FormatError(concat(ctx, "section ", tag, ": ", count, " items of ", item_size,
                             " bytes cannot exist (size overflow); the file has ", bytes.size(),
                             " bytes there"));
  }
  if (bytes.size() != count * item_size) {
    throw FormatError(concat(ctx, "section ", tag, " has ", bytes.size(), " bytes, expected ",
                             count * item_size, " (", count, " items of ", item_size, " bytes)"));
  }
  if (count > 0 && reinterpret_cast<uintptr_t>(bytes.data()) % item_align != 0) {
    throw FormatError(
        concat(ctx, "section ", tag, " is not aligned to ", item_align, " bytes in memory"));
  }
}

size_t check_section_multiple(const ContainerReader& reader, std::string_view tag,
                              std::span<const uint8_t> bytes, size_t item_size, size_t item_align) {
  if (bytes.size() % item_size != 0) {
    throw FormatError(concat(reader.context(), "section ", tag, " has ", bytes.size(),
                             " bytes, not a multiple of the item size ", item_size));
  }
  size_t count = bytes.size() / item_size;
  check_section_array(reader, tag, bytes, count, item_size, item_align);
  return count;
}

}  // namespace detail

}  // namespace annx::io
