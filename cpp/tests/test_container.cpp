// Standalone tests of the annx file container (cpp/include/annx/io/container.h).
// No framework: CHECK records failures and main returns non-zero if any. See README.md.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "annx/io/container.h"

namespace fs = std::filesystem;
using namespace annx;
using namespace annx::io;

namespace {

int g_checks = 0;
int g_failures = 0;

void report_failure(const std::string& what, const char* file, int line) {
  ++g_failures;
  if (g_failures <= 50) std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
}

#define CHECK(cond)                                         \
  do {                                                      \
    ++g_checks;                                             \
    if (!(cond)) report_failure(#cond, __FILE__, __LINE__); \
  } while (0)

#define CHECK_MSG(cond, msg)                                                              \
  do {                                                                                    \
    ++g_checks;                                                                           \
    if (!(cond)) report_failure(std::string(#cond) + " -- " + (msg), __FILE__, __LINE__); \
  } while (0)

// Runs `stmt`, expecting exception `Type` whose message contains `substr`.
#define CHECK_THROWS(Type, stmt, substr)                                               \
  do {                                                                                 \
    ++g_checks;                                                                        \
    std::string what_;                                                                 \
    bool ok_ = false;                                                                  \
    try {                                                                              \
      stmt;                                                                            \
      what_ = "no exception";                                                          \
    } catch (const Type& e_) {                                                         \
      ok_ = std::string(e_.what()).find(substr) != std::string::npos;                  \
      what_ = std::string("message '") + e_.what() + "' lacks '" + (substr) + "'";     \
    } catch (const std::exception& e_) {                                               \
      what_ = std::string("wrong exception type: ") + e_.what();                       \
    }                                                                                  \
    if (!ok_) report_failure(std::string(#stmt) + " -- " + what_, __FILE__, __LINE__); \
  } while (0)

// Whether opening `bytes` throws FormatError (and nothing else). Returns the message.
enum class Outcome { kOk, kFormatError, kOther };
Outcome open_outcome(const std::vector<uint8_t>& bytes, bool verify, std::string* msg = nullptr) {
  try {
    ContainerReader r(Blob::copy_of(bytes.data(), bytes.size()), verify);
    // Touch every section so that ASan sees any out-of-bounds view.
    uint64_t sum = 0;
    for (const SectionInfo& s : r.sections()) {
      for (uint8_t b : r.section(s.tag)) sum += b;
    }
    (void)sum;
    return Outcome::kOk;
  } catch (const FormatError& e) {
    if (msg) *msg = e.what();
    return Outcome::kFormatError;
  } catch (const std::exception& e) {
    if (msg) *msg = e.what();
    return Outcome::kOther;
  }
}

uint32_t ld32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t ld64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
void st32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void st64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

// Recomputes the TOC CRC (when the TOC fields are in range) and the header CRC, so that a
// deliberately inconsistent field reaches the structural checks behind them.
void fix_crcs(std::vector<uint8_t>& b) {
  uint64_t toc = ld64(&b[32]);
  uint64_t count = ld32(&b[40]);
  if (toc <= b.size() && count <= (b.size() - toc) / 32) {
    st32(&b[44], crc32c(b.data() + toc, count * 32));
  }
  st32(&b[60], crc32c(b.data(), 60));
}

uint8_t* toc_entry(std::vector<uint8_t>& b, size_t i) { return &b[ld64(&b[32]) + 32 * i]; }

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(rng());
  return v;
}

// A small file with sections of awkward sizes (0, 1, 63, 64, 65 and 200 bytes).
struct Sample {
  std::vector<uint8_t> a = pattern(1, 1), b = pattern(63, 2), c = pattern(64, 3),
                       d = pattern(65, 4), e = pattern(200, 5);
  std::vector<float> floats = std::vector<float>{1.5f, -2.25f, 3.0f, 1e-3f, 7.0f};
  std::vector<uint8_t> bytes() const {
    ContainerWriter w;
    Manifest m;
    m.set("kind", "flat");
    m.set("d", 5);
    m.set("ntotal", int64_t{1});
    w.add_section_copy("MANIFEST", m.to_bytes());
    w.add_section("EMPTY", nullptr, 0);
    w.add_section("A", a.data(), a.size());
    w.add_section("B", b.data(), b.size());
    w.add_section("C", c.data(), c.size());
    w.add_section("D", d.data(), d.size());
    w.add_array("FLOATS", std::span<const float>(floats));
    w.add_section("CODES", e.data(), e.size());
    return w.to_bytes();
  }
};

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
void write_raw(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
size_t count_temp_files(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".tmp.") != std::string::npos) ++n;
  }
  return n;
}

std::string g_tmp;  // per-run temporary directory

// ---------------------------------------------------------------------------------------

void test_crc32c() {
  CHECK(crc32c("123456789", 9) == 0xE3069283u);
  CHECK(io::detail::crc32c_portable("123456789", 9) == 0xE3069283u);
  CHECK(crc32c(nullptr, 0) == 0);
  CHECK(crc32c(nullptr, 0, 1234) == 1234);
  // RFC 3720 (iSCSI) B.4 vectors.
  std::vector<uint8_t> z(32, 0), ff(32, 0xFF), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<uint8_t>(i);
    dec[i] = static_cast<uint8_t>(31 - i);
  }
  CHECK(crc32c(z.data(), 32) == 0x8A9136AAu);
  CHECK(crc32c(ff.data(), 32) == 0x62A8AB43u);
  CHECK(crc32c(inc.data(), 32) == 0x46DD794Eu);
  CHECK(crc32c(dec.data(), 32) == 0x113FDB5Cu);
  // Chaining and agreement of the dispatched and portable versions on all kinds of
  // lengths, alignments and seeds (covers the three-way SSE4.2 blocks and their tails).
  std::vector<uint8_t> big = pattern(3 * 8192 * 2 + 1000, 9);
  CHECK(crc32c(big.data() + 100, 5000, crc32c(big.data(), 100)) == crc32c(big.data(), 5100));
  std::mt19937_64 rng(7);
  int mismatches = 0;
  for (int i = 0; i < 2000; ++i) {
    size_t off = rng() % 64;
    size_t len = (i % 4 == 0) ? rng() % (big.size() - 64) : rng() % 1200;
    uint32_t seed = static_cast<uint32_t>(rng());
    if (crc32c(big.data() + off, len, seed) !=
        io::detail::crc32c_portable(big.data() + off, len, seed))
      ++mismatches;
  }
  CHECK(mismatches == 0);
  std::string backend = crc32c_backend();
  CHECK(backend == "sse4.2" || backend == "armv8-crc" || backend == "portable");
  std::printf("  crc32c backend: %s\n", backend.c_str());
}

void test_blob() {
  std::vector<uint8_t> v = pattern(100, 1);
  const uint8_t* original = v.data();
  BlobPtr b = Blob::from_vector(std::move(v));
  CHECK(b->data() == original);  // no copy
  CHECK(b->size() == 100 && !b->is_mapped() && b->source().empty());

  std::vector<uint8_t> src = pattern(1000, 2);
  BlobPtr c = Blob::copy_of(src.data() + 3, 997);
  CHECK(reinterpret_cast<uintptr_t>(c->data()) % 64 == 0);
  CHECK(std::memcmp(c->data(), src.data() + 3, 997) == 0);
  CHECK(Blob::copy_of(nullptr, 0)->empty());
  CHECK_THROWS(InvalidArgument, Blob::copy_of(nullptr, 5), "null");

  bool released = false;
  {
    auto owner = std::shared_ptr<std::vector<uint8_t>>(new std::vector<uint8_t>(src),
                                                       [&](std::vector<uint8_t>* p) {
                                                         released = true;
                                                         delete p;
                                                       });
    BlobPtr d = Blob::borrow(owner->data(), owner->size(), owner);
    owner.reset();
    CHECK(!released);
    CHECK(d->size() == 1000 && d->data()[5] == src[5]);
  }
  CHECK(released);
  CHECK_THROWS(InvalidArgument, Blob::borrow(nullptr, 1, nullptr), "null");
}

void test_round_trip_bytes() {
  Sample s;
  std::vector<uint8_t> bytes = s.bytes();
  ContainerWriter w;  // file_size() agrees with to_bytes()
  w.add_section("X", s.e.data(), 65);
  w.add_section("Y", s.e.data(), 0);
  CHECK(w.file_size() == w.to_bytes().size());
  CHECK(w.has("X") && !w.has("Z") && w.section_count() == 2);

  CHECK(bytes.size() % 32 == 0);
  CHECK(std::memcmp(bytes.data(), "ANNXIDX\0", 8) == 0);
  ContainerReader r(Blob::from_vector(bytes));
  CHECK(r.format_major() == 1 && r.format_minor() == 0);
  std::vector<std::string> expect = {"MANIFEST", "EMPTY", "A", "B", "C", "D", "FLOATS", "CODES"};
  CHECK(r.tags() == expect);
  for (const SectionInfo& si : r.sections()) CHECK(si.offset % 64 == 0 && si.offset >= 64);
  auto eq = [&](std::string_view tag, const std::vector<uint8_t>& v) {
    auto sp = r.section(tag);
    return sp.size() == v.size() && (v.empty() || std::memcmp(sp.data(), v.data(), v.size()) == 0);
  };
  CHECK(eq("A", s.a) && eq("B", s.b) && eq("C", s.c) && eq("D", s.d) && eq("CODES", s.e));
  CHECK(r.section("EMPTY").empty());
  CHECK(r.has("CODES") && !r.has("NOPE") && !r.has("") && !r.has("codes"));
  CHECK(!r.find("NOPE").has_value() && r.find("A").has_value());
  CHECK_THROWS(FormatError, r.section("NOPE"), "missing section NOPE");
  r.verify_section("CODES");
  CHECK_THROWS(FormatError, r.verify_section("NOPE"), "missing section NOPE");

  auto fl = section_as<float>(r, "FLOATS", 5);
  CHECK(fl.size() == 5 && fl[1] == -2.25f && fl[3] == 1e-3f);
  CHECK(section_array<float>(r, "FLOATS").size() == 5);
  CHECK(section_as<float>(r, "EMPTY", 0).empty());
  CHECK_THROWS(FormatError, section_as<float>(r, "FLOATS", 6),
               "section FLOATS has 20 bytes, expected 24");
  CHECK_THROWS(FormatError, section_as<double>(r, "FLOATS", SIZE_MAX / 4), "overflow");
  CHECK_THROWS(FormatError, section_array<double>(r, "FLOATS"), "not a multiple");
  CHECK_THROWS(FormatError, section_as<float>(r, "NOPE", 1), "missing section NOPE");

  Manifest m = Manifest::from_section(r);
  CHECK(m.str("kind") == "flat" && m.i64("d", 1, 100) == 5 && m.i64("ntotal") == 1);

  // The reader keeps the blob alive on its own.
  std::span<const uint8_t> codes;
  {
    ContainerReader r2(Blob::copy_of(bytes.data(), bytes.size()));
    codes = r2.section("CODES");
    ContainerReader r3 = r2;  // copyable, shares the blob
    CHECK(r3.section("CODES").data() == codes.data());
  }
  // Blob alignment: sections of an aligned blob are 64-byte aligned in memory.
  ContainerReader r4(Blob::copy_of(bytes.data(), bytes.size()));
  for (const std::string& t : r4.tags()) {
    CHECK(reinterpret_cast<uintptr_t>(r4.section(t).data()) % 64 == 0);
  }
  // A misaligned base (e.g. a borrowed Python buffer) is caught by section_as.
  std::vector<uint8_t> shifted(bytes.size() + 8);
  size_t shift = (8 - reinterpret_cast<uintptr_t>(shifted.data()) % 8) % 8 + 4;
  shifted.resize(bytes.size() + shift);
  std::memcpy(shifted.data() + shift, bytes.data(), bytes.size());
  ContainerReader r5(Blob::borrow(shifted.data() + shift, bytes.size(), nullptr));
  CHECK_THROWS(FormatError, section_as<double>(r5, "C", 8), "not aligned");
  CHECK(section_as<uint8_t>(r5, "C", 64).size() == 64);

  // Identical input gives identical bytes (the format is deterministic).
  CHECK(s.bytes() == bytes);
  // An empty container is valid.
  ContainerWriter empty;
  std::vector<uint8_t> eb = empty.to_bytes();
  CHECK(eb.size() == 64);
  ContainerReader re(Blob::from_vector(eb));
  CHECK(re.tags().empty());
}

void test_writer_validation() {
  ContainerWriter w;
  uint8_t x = 0;
  CHECK_THROWS(InvalidArgument, w.add_section("", &x, 1), "invalid section tag");
  CHECK_THROWS(InvalidArgument, w.add_section("TOOLONGTAG", &x, 1), "invalid section tag");
  CHECK_THROWS(InvalidArgument, w.add_section("lower", &x, 1), "invalid section tag");
  CHECK_THROWS(InvalidArgument, w.add_section("A-B", &x, 1), "invalid section tag");
  CHECK_THROWS(InvalidArgument, w.add_section(std::string_view("A\0B", 3), &x, 1),
               "invalid section tag");
  CHECK_THROWS(InvalidArgument, w.add_section("A", nullptr, 1), "null data");
  w.add_section("ABCDEFGH", &x, 1);
  w.add_section("A_1", &x, 1);
  CHECK_THROWS(InvalidArgument, w.add_section("A_1", &x, 1), "duplicate section tag A_1");
  CHECK_THROWS(InvalidArgument, w.add_section_copy("ABCDEFGH", {1, 2}), "duplicate");
  CHECK_THROWS(InvalidArgument, w.add_section("HUGE", &x, SIZE_MAX - 10), "too large");
  CHECK(w.section_count() == 2);
  CHECK(is_valid_tag("IDS") && !is_valid_tag("ids") && !is_valid_tag("ABCDEFGHI"));
}

void test_file_round_trip() {
  Sample s;
  const std::string path = g_tmp + "/index.annx";
  std::vector<float> big(3 * 1024 * 1024 + 7);  // > 4 MiB chunk of write_file
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i) * 0.5f;
  ContainerWriter w;
  w.add_section("A", s.a.data(), s.a.size());
  w.add_array("BIG", std::span<const float>(big));
  w.add_section_copy("CODES", s.e);
  w.write_file(path);
  CHECK(fs::file_size(path) == w.file_size());
  CHECK(read_all(path) == w.to_bytes());  // the file and the bytes path agree
  CHECK(count_temp_files(g_tmp) == 0);

  for (int mode = 0; mode < 2; ++mode) {
    BlobPtr blob = mode == 0 ? Blob::read_file(path) : Blob::map_file(path);
    CHECK(blob->is_mapped() == (mode == 1));
    CHECK(blob->source() == path);
    CHECK(reinterpret_cast<uintptr_t>(blob->data()) % 64 == 0);
    ContainerReader r(blob);
    blob.reset();  // the reader keeps it alive
    auto sp = section_as<float>(r, "BIG", big.size());
    CHECK(reinterpret_cast<uintptr_t>(sp.data()) % 64 == 0);
    CHECK(std::memcmp(sp.data(), big.data(), big.size() * sizeof(float)) == 0);
    CHECK(r.section("A").size() == 1 && r.section("A")[0] == s.a[0]);
    ContainerReader fast(r.blob(), /*verify_checksums=*/false);
    CHECK(fast.section("CODES").size() == 200);
    CHECK_THROWS(FormatError, r.section("NOPE"), path + ": missing section NOPE");
  }

  // Overwriting replaces the file atomically; repeated saves leave no temporaries.
  for (int i = 0; i < 5; ++i) {
    ContainerWriter w2;
    std::vector<uint8_t> v = pattern(100 + i, i);
    w2.add_section("V", v.data(), v.size());
    w2.write_file(path);
    ContainerReader r(Blob::map_file(path));
    CHECK(r.section("V").size() == 100u + i);
  }
  CHECK(count_temp_files(g_tmp) == 0);
  // A relative path (temporary in the current directory).
  fs::path cwd = fs::current_path();
  fs::current_path(g_tmp);
  ContainerWriter w3;
  w3.add_section("R", s.a.data(), 1);
  w3.write_file("relative.annx");
  fs::current_path(cwd);
  CHECK(ContainerReader(Blob::read_file(g_tmp + "/relative.annx")).has("R"));
  CHECK(count_temp_files(g_tmp) == 0);
}

void test_io_errors() {
  const std::string missing = g_tmp + "/does_not_exist.annx";
  CHECK_THROWS(IoError, Blob::read_file(missing), missing);
  CHECK_THROWS(IoError, Blob::read_file(missing), "No such file");
  CHECK_THROWS(IoError, Blob::map_file(missing), missing);
  CHECK_THROWS(IoError, Blob::read_file(g_tmp), "Is a directory");
  CHECK_THROWS(IoError, Blob::map_file(g_tmp), "Is a directory");

  // A zero-byte file is not mapped and reads as "file is empty".
  const std::string empty = g_tmp + "/empty.annx";
  write_raw(empty, {});
  BlobPtr eb = Blob::map_file(empty);
  CHECK(eb->empty() && !eb->is_mapped());
  CHECK_THROWS(FormatError, ContainerReader r(eb), "file is empty");
  CHECK_THROWS(FormatError, ContainerReader r(Blob::read_file(empty)), empty + ": file is empty");

  // A pipe is read, not mapped.
  int fds[2];
  if (pipe(fds) == 0) {
    Sample s;
    std::vector<uint8_t> bytes = s.bytes();
    CHECK(write(fds[1], bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
    close(fds[1]);
    std::string dev = "/dev/fd/" + std::to_string(fds[0]);
    BlobPtr pb = Blob::map_file(dev);
    CHECK(!pb->is_mapped() && pb->size() == bytes.size());
    CHECK(ContainerReader(pb).has("CODES"));
    close(fds[0]);
  }
}

void test_atomic_write_failures() {
  Sample s;
  ContainerWriter w;
  w.add_section("CODES", s.e.data(), s.e.size());

  // Target path is a directory: rename fails, the directory and its content survive.
  const std::string dir_target = g_tmp + "/adir";
  fs::create_directory(dir_target);
  write_raw(dir_target + "/keep", {1, 2, 3});
  CHECK_THROWS(IoError, w.write_file(dir_target), dir_target);
  CHECK(fs::is_directory(dir_target) && fs::file_size(dir_target + "/keep") == 3);
  CHECK(count_temp_files(g_tmp) == 0);

  // Parent directory missing.
  const std::string no_parent = g_tmp + "/no/such/dir/x.annx";
  CHECK_THROWS(IoError, w.write_file(no_parent), "No such file");

  // Read-only directory (not testable as root, who may write anyway).
  const std::string ro = g_tmp + "/ro";
  fs::create_directory(ro);
  const std::string ro_file = ro + "/x.annx";
  write_raw(ro_file, {9, 9, 9});
  chmod(ro.c_str(), 0555);
  int probe = open((ro + "/probe").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (probe >= 0) {
    close(probe);
    unlink((ro + "/probe").c_str());
    std::printf(
        "  note: running with write access to read-only directories (root?); "
        "read-only directory case skipped, RLIMIT_FSIZE case covers the cleanup\n");
  } else {
    CHECK_THROWS(IoError, w.write_file(ro_file), ro_file);
    CHECK_THROWS(IoError, w.write_file(ro_file), "Permission denied");
    CHECK(read_all(ro_file) == std::vector<uint8_t>({9, 9, 9}));
    CHECK(count_temp_files(ro) == 0);
  }
  chmod(ro.c_str(), 0755);

  // A write that fails halfway (file size limit -> EFBIG): the old file is untouched and
  // the temporary is removed. Works as root too.
  const std::string victim = g_tmp + "/victim.annx";
  ContainerWriter small;
  small.add_section("OLD", s.a.data(), s.a.size());
  small.write_file(victim);
  const std::vector<uint8_t> before = read_all(victim);
  std::vector<uint8_t> large(1 << 20, 0x5A);
  ContainerWriter big;
  big.add_section("NEW", large.data(), large.size());
  struct rlimit old_limit;
  getrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old_limit;
  lim.rlim_cur = 64 * 1024;
  if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
    CHECK_THROWS(IoError, big.write_file(victim), victim);
    setrlimit(RLIMIT_FSIZE, &old_limit);
    CHECK(read_all(victim) == before);
    CHECK(count_temp_files(g_tmp) == 0);
    CHECK(ContainerReader(Blob::map_file(victim)).has("OLD"));
  } else {
    std::printf("  note: setrlimit(RLIMIT_FSIZE) failed; mid-write failure case skipped\n");
  }
  signal(SIGXFSZ, SIG_DFL);
}

// Truncations, extensions and single-bit flips of a small file: every one is a FormatError.
void test_corruption_matrix() {
  Sample s;
  const std::vector<uint8_t> good = s.bytes();
  CHECK(open_outcome(good, true) == Outcome::kOk);
  ContainerReader ref(Blob::copy_of(good.data(), good.size()));

  std::string msg;
  CHECK(open_outcome({}, true, &msg) == Outcome::kFormatError && msg == "file is empty");
  // Every truncation length (this includes each section boundary and +-1 around it).
  int bad = 0;
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> t(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    for (bool verify : {true, false}) {
      if (open_outcome(t, verify, &msg) != Outcome::kFormatError) ++bad;
    }
    if (n > 0 && n < 64)
      CHECK_MSG(msg.find("too small to be an annx file") != std::string::npos, msg);
    if (n >= 64)
      CHECK_MSG(msg.find("truncated: header says " + std::to_string(good.size()) +
                         " bytes, file has " + std::to_string(n)) != std::string::npos,
                msg);
  }
  CHECK(bad == 0);
  for (size_t extra : {1, 63, 64, 1000}) {
    std::vector<uint8_t> t = good;
    t.resize(good.size() + extra, 0);
    CHECK(open_outcome(t, true, &msg) == Outcome::kFormatError);
    CHECK_MSG(msg.find("trailing data") != std::string::npos, msg);
  }

  // Every bit of every byte.
  int not_detected = 0, other = 0, unverified_outside_sections = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> t = good;
      t[i] ^= static_cast<uint8_t>(1u << bit);
      Outcome o = open_outcome(t, true);
      if (o == Outcome::kOk) ++not_detected;
      if (o == Outcome::kOther) ++other;
      // Without section CRCs only flips inside section bytes may go unnoticed.
      if (open_outcome(t, false) == Outcome::kOk) {
        bool inside = false;
        for (const SectionInfo& si : ref.sections()) {
          if (i >= si.offset && i < si.offset + si.length) inside = true;
        }
        if (!inside) ++unverified_outside_sections;
      }
    }
  }
  CHECK(not_detected == 0);
  CHECK(other == 0);
  CHECK(unverified_outside_sections == 0);

  // Specific messages.
  {
    std::vector<uint8_t> t = good;
    t[ref.sections().back().offset + 3] ^= 0x10;  // inside CODES
    CHECK(open_outcome(t, true, &msg) == Outcome::kFormatError);
    CHECK_MSG(msg == "section CODES is corrupt (checksum mismatch)", msg);
    t = good;
    t[50] ^= 1;  // reserved bytes: covered by the header CRC
    CHECK(open_outcome(t, true, &msg) == Outcome::kFormatError);
    CHECK_MSG(msg.find("header is corrupt") != std::string::npos, msg);
    t = good;
    t[0] = 'X';
    CHECK(open_outcome(t, true, &msg) == Outcome::kFormatError);
    CHECK_MSG(msg.find("not an annx file") != std::string::npos, msg);
    t = good;
    t[ld64(&t[32]) + 5] ^= 1;  // TOC
    CHECK(open_outcome(t, true, &msg) == Outcome::kFormatError);
    CHECK_MSG(msg.find("table of contents is corrupt") != std::string::npos, msg);
    t = good;
    t[ref.sections()[2].offset + 1] = 0xAA;  // padding after the 1-byte section A
    fix_crcs(t);
    CHECK(open_outcome(t, true, &msg) == Outcome::kFormatError);
    CHECK_MSG(msg.find("non-zero padding byte") != std::string::npos, msg);
  }

  // Truncated files on disk, at each section boundary and +-1, through both loaders.
  const std::string path = g_tmp + "/trunc.annx";
  std::vector<size_t> cuts;
  for (const SectionInfo& si : ref.sections()) {
    for (uint64_t at : {si.offset, si.offset + si.length}) {
      for (int delta = -1; delta <= 1; ++delta) cuts.push_back(static_cast<size_t>(at + delta));
    }
  }
  for (size_t cut : cuts) {
    write_raw(path,
              std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut)));
    const std::string why = cut < 64 ? "too small to be an annx file" : "truncated: header says";
    CHECK_THROWS(FormatError, ContainerReader r(Blob::map_file(path)), path + ": " + why);
    CHECK_THROWS(FormatError, ContainerReader r(Blob::read_file(path)), path + ": " + why);
  }
}

void test_versions() {
  Sample s;
  const std::vector<uint8_t> good = s.bytes();
  std::string msg;

  std::vector<uint8_t> t = good;
  st32(&t[8], 2);
  fix_crcs(t);
  CHECK(open_outcome(t, true, &msg) == Outcome::kFormatError);
  CHECK_MSG(msg.find("written by annx file format v2.0") != std::string::npos, msg);
  CHECK_MSG(msg.find("this build reads format v1.x") != std::string::npos, msg);
  CHECK_MSG(msg.find("corrupt") == std::string::npos, msg);
  st32(&t[12], 3);  // v2.3 without fixing the CRC: still a version error, flagged as suspect
  CHECK(open_outcome(t, true, &msg) == Outcome::kFormatError);
  CHECK_MSG(msg.find("v2.3") != std::string::npos && msg.find("v1.x") != std::string::npos, msg);
  CHECK_MSG(msg.find("may be corrupt") != std::string::npos, msg);

  t = good;
  st32(&t[8], 0);
  fix_crcs(t);
  CHECK(open_outcome(t, true, &msg) == Outcome::kFormatError);
  CHECK_MSG(msg.find("v0.0") != std::string::npos && msg.find("v1.x") != std::string::npos, msg);

  // Any minor of major 1 is accepted; flags and reserved bytes are ignored by v1.0 readers.
  t = good;
  st32(&t[12], 7);
  st64(&t[16], 0x5);
  t[48] = 0xEE;
  t[59] = 0x01;
  fix_crcs(t);
  {
    ContainerReader r(Blob::from_vector(t));
    CHECK(r.format_major() == 1 && r.format_minor() == 7);
    CHECK(r.section("CODES").size() == 200);
  }
  // Unknown sections (added by a later minor) are simply available/ignored.
  ContainerReader r(Blob::from_vector(good));
  CHECK(r.has("D"));
}

// Structural checks behind valid CRCs (what a buggy writer or a crafted file produces).
void test_structural_checks() {
  Sample s;
  const std::vector<uint8_t> good = s.bytes();
  ContainerReader ref(Blob::from_vector(good));
  const uint64_t toc = ref.sections().empty() ? 0 : ld64(&good[32]);
  const size_t n = ref.sections().size();
  auto expect = [&](std::vector<uint8_t> t, const std::string& substr, int line) {
    fix_crcs(t);
    std::string msg;
    Outcome o = open_outcome(t, true, &msg);
    ++g_checks;
    if (o != Outcome::kFormatError || msg.find(substr) == std::string::npos) {
      report_failure("expected FormatError containing '" + substr + "', got '" + msg + "'",
                     __FILE__, line);
    }
  };
  std::vector<uint8_t> t;

  t = good;
  st32(&t[40], 0xFFFFFFFFu);
  expect(t, "exceeds the limit", __LINE__);
  t = good;
  st32(&t[40], kMaxSections);
  expect(t, "is impossible for a file of", __LINE__);
  t = good;
  st32(&t[40], static_cast<uint32_t>(n - 1));
  expect(t, "table of contents out of bounds", __LINE__);
  t = good;
  st64(&t[32], UINT64_MAX);
  expect(t, "table of contents out of bounds", __LINE__);
  t = good;
  st64(&t[32], 0);
  expect(t, "table of contents out of bounds", __LINE__);
  t = good;
  st64(&t[24], UINT64_MAX);
  expect(t, "truncated: header says", __LINE__);
  t = good;
  st64(&t[24], 10);
  expect(t, "trailing data", __LINE__);
  // TOC not 64-aligned: move it by 32 bytes (one fewer entry keeps it ending the file).
  t = good;
  st64(&t[32], toc + 32);
  st32(&t[40], static_cast<uint32_t>(n - 1));
  expect(t, "not 64-byte aligned", __LINE__);

  const size_t codes = n - 1;  // last entry
  t = good;
  st64(toc_entry(t, codes) + 8, ld64(toc_entry(t, codes) + 8) + 8);
  expect(t, "section CODES offset", __LINE__);
  t = good;
  st64(toc_entry(t, codes) + 8, 0);
  expect(t, "section CODES overlaps the header", __LINE__);
  t = good;
  st64(toc_entry(t, codes) + 16, UINT64_MAX);
  expect(t, "extends past", __LINE__);
  t = good;
  st64(toc_entry(t, codes) + 16, 10000);
  expect(t, "extends past", __LINE__);
  t = good;
  st64(toc_entry(t, codes) + 8, UINT64_MAX - 63);
  expect(t, "extends past", __LINE__);
  t = good;
  st64(toc_entry(t, codes) + 8, UINT64_MAX & ~uint64_t{63});
  st64(toc_entry(t, codes) + 16, 128);  // offset + length wraps around
  expect(t, "extends past", __LINE__);
  t = good;
  st64(toc_entry(t, codes) + 8, ld64(toc_entry(t, codes - 1) + 8));
  expect(t, "overlaps section", __LINE__);
  t = good;
  std::memcpy(toc_entry(t, codes), "A\0\0\0\0\0\0\0", 8);
  expect(t, "duplicate section A", __LINE__);
  t = good;
  std::memcpy(toc_entry(t, codes), "codes\0\0\0", 8);
  expect(t, "invalid tag", __LINE__);
  t = good;
  std::memcpy(toc_entry(t, codes), "CO\0ES\0\0\0", 8);
  expect(t, "invalid tag", __LINE__);
  t = good;
  std::memset(toc_entry(t, codes), 0, 8);
  expect(t, "invalid tag", __LINE__);
  t = good;
  std::memcpy(toc_entry(t, codes), "CODES\xff\0\0", 8);
  expect(t, "section #7 has an invalid tag 'CODES\\xff", __LINE__);
  t = good;
  st32(toc_entry(t, codes) + 24, 0);
  expect(t, "section CODES is corrupt (checksum mismatch)", __LINE__);
  // TOC reserved field: ignored (a later minor may use it) once the CRC is right.
  t = good;
  st32(toc_entry(t, codes) + 28, 0xABCD);
  fix_crcs(t);
  CHECK(open_outcome(t, true) == Outcome::kOk);

  for (size_t size = 1; size < 64; ++size) {
    std::vector<uint8_t> small(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(size));
    std::string msg;
    CHECK(open_outcome(small, true, &msg) == Outcome::kFormatError);
    CHECK_MSG(msg == "too small to be an annx file (" + std::to_string(size) + " bytes)", msg);
  }
}

void test_random_inputs() {
  std::mt19937_64 rng(12345);
  int bad = 0;
  auto run = [&](const std::vector<uint8_t>& b) {
    if (open_outcome(b, true) != Outcome::kFormatError) ++bad;
    if (open_outcome(b, false) != Outcome::kFormatError) ++bad;
  };
  // 1000 random strings.
  for (int i = 0; i < 1000; ++i) {
    std::vector<uint8_t> b(rng() % 4096);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    run(b);
  }
  // 1000 random strings behind a valid magic and version, half with a valid header CRC.
  for (int i = 0; i < 1000; ++i) {
    std::vector<uint8_t> b(64 + rng() % 4096);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    std::memcpy(b.data(), kMagic, 8);
    st32(&b[8], 1);
    if (i % 2) fix_crcs(b);
    run(b);
  }
  CHECK(bad == 0);

  // Structure-aware fuzzing: random edits to the header and TOC with the CRCs fixed up.
  // Whatever is accepted must only expose in-bounds views (ASan checks every byte).
  Sample s;
  const std::vector<uint8_t> good = s.bytes();
  const uint64_t toc = ld64(&good[32]);
  int other = 0, accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> t = good;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      size_t pos = (rng() % 2) ? rng() % 64 : toc + rng() % (good.size() - toc);
      switch (rng() % 4) {
        case 0:
          t[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          t[pos] = static_cast<uint8_t>(rng());
          break;
        case 2:
          if (pos + 8 <= t.size()) st64(&t[pos], rng() % 4096);
          break;
        default:
          if (pos + 8 <= t.size()) st64(&t[pos], UINT64_MAX - rng() % 4096);
          break;
      }
    }
    if (rng() % 4 != 0) fix_crcs(t);
    Outcome o = open_outcome(t, true);
    if (o == Outcome::kOther) ++other;
    if (o == Outcome::kOk) ++accepted;
  }
  CHECK(other == 0);
  std::printf("  structure-aware fuzz: %d of 20000 edited files still valid\n", accepted);
}

void test_manifest() {
  std::vector<std::pair<std::string, std::string>> kv = {{"kind", "ivf_pq"}, {"d", "128"},
                                                         {"metric", "l2"},   {"note", "a=b=c é"},
                                                         {"empty", ""},      {"x.y_z9", "-5"}};
  std::string text = format_manifest(kv);
  CHECK(text == "kind=ivf_pq\nd=128\nmetric=l2\nnote=a=b=c é\nempty=\nx.y_z9=-5\n");
  auto bytes = [](const std::string& str) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(str.data()), str.size());
  };
  CHECK(parse_manifest(bytes(text)) == kv);
  CHECK(parse_manifest({}).empty());
  CHECK(format_manifest({}).empty());

  CHECK_THROWS(FormatError, parse_manifest(bytes("a=1\nnoequals\n")), "line 2 has no '='");
  CHECK_THROWS(FormatError, parse_manifest(bytes("=1\n")), "empty key");
  CHECK_THROWS(FormatError, parse_manifest(bytes("\n")), "no '='");
  CHECK_THROWS(FormatError, parse_manifest(bytes("Bad=1\n")), "invalid key 'Bad'");
  CHECK_THROWS(FormatError, parse_manifest(bytes("a b=1\n")), "invalid key");
  CHECK_THROWS(FormatError, parse_manifest(bytes("a=1\na=2\n")), "duplicate key 'a'");
  CHECK_THROWS(FormatError, parse_manifest(bytes(std::string("a=1\0\n", 5))), "NUL");
  CHECK_THROWS(FormatError, parse_manifest(bytes("a=1")), "no final newline");
  CHECK_THROWS(FormatError, parse_manifest(bytes("a=\xff\n")), "not valid UTF-8");
  CHECK_THROWS(FormatError, parse_manifest(bytes("a=\xc0\x80\n")), "not valid UTF-8");
  CHECK_THROWS(FormatError, parse_manifest(bytes("a=\xed\xa0\x80\n")), "not valid UTF-8");
  std::string huge = "a=" + std::string(kMaxManifestBytes, 'x') + "\n";
  CHECK_THROWS(FormatError, parse_manifest(bytes(huge)), "too large");

  CHECK_THROWS(InvalidArgument, format_manifest({{"a", "x\ny"}}), "newline");
  CHECK_THROWS(InvalidArgument, format_manifest({{"A", "x"}}), "invalid manifest key");
  CHECK_THROWS(InvalidArgument, format_manifest({{"", "x"}}), "invalid manifest key");
  CHECK_THROWS(InvalidArgument, format_manifest({{"a", "1"}, {"a", "2"}}), "duplicate");
  CHECK_THROWS(InvalidArgument, format_manifest({{"a", std::string("x\0", 2)}}), "NUL");
  CHECK_THROWS(InvalidArgument, format_manifest({{"a", "\xff"}}), "UTF-8");

  // Typed lookups.
  Manifest m = Manifest::parse(
      bytes("d=128\nneg=-7\nabc=abc\nbig=99999999999999999999\nsp= 5\nplus=+5\nhex=0x10\n"
            "f=0.25\nnan=nan\ninf=inf\nhuge=1e400\nt=true\nz=0\nmaybe=yes\nempty=\n"));
  CHECK(m.has("d") && !m.has("nope") && m.size() == 15);
  CHECK(m.i64("d") == 128 && m.i64("d", 1, 65536) == 128 && m.i64("neg") == -7);
  CHECK(m.u64("d") == 128);
  CHECK(m.get("abc").value() == "abc" && !m.get("nope").has_value());
  CHECK_THROWS(FormatError, m.i64("ntotal"), "manifest key 'ntotal' missing");
  CHECK_THROWS(FormatError, m.str("ntotal"), "manifest key 'ntotal' missing");
  CHECK_THROWS(FormatError, m.i64("abc"), "manifest key 'abc' = 'abc' is not an integer");
  CHECK_THROWS(FormatError, m.i64("sp"), "is not an integer");
  CHECK_THROWS(FormatError, m.i64("plus"), "is not an integer");
  CHECK_THROWS(FormatError, m.i64("hex"), "is not an integer");
  CHECK_THROWS(FormatError, m.i64("empty"), "is not an integer");
  CHECK_THROWS(FormatError, m.i64("f"), "is not an integer");
  CHECK_THROWS(FormatError, m.i64("big"), "is out of range");
  CHECK_THROWS(FormatError, m.i64("d", 1, 64), "manifest key 'd' = '128' is out of range [1, 64]");
  CHECK_THROWS(FormatError, m.u64("neg"), "is not a non-negative integer");
  CHECK_THROWS(FormatError, m.u64("big"), "is out of range");
  CHECK(m.f64("f") == 0.25 && m.f64("d") == 128.0);
  CHECK_THROWS(FormatError, m.f64("nan"), "is not a finite number");
  CHECK_THROWS(FormatError, m.f64("inf"), "is not a finite number");
  CHECK_THROWS(FormatError, m.f64("huge"), "is not a finite number");
  CHECK_THROWS(FormatError, m.f64("abc"), "is not a finite number");
  CHECK_THROWS(FormatError, m.f64("f", 0.5, 1.0), "is out of range");
  CHECK(m.boolean("t") && !m.boolean("z"));
  CHECK_THROWS(FormatError, m.boolean("maybe"), "is not a boolean");

  // Building.
  Manifest b;
  b.set("s", "text");
  b.set("i", -42);
  b.set("n", int64_t{1} << 40);
  b.set("u", UINT64_MAX);
  b.set("pi", 3.141592653589793);
  b.set("tiny", 1e-300);
  b.set("tenth", 0.1);
  b.set("yes", true);
  CHECK_THROWS(InvalidArgument, b.set("s", "again"), "set twice");
  CHECK_THROWS(InvalidArgument, b.set("nan", std::nan("")), "finite");
  CHECK_THROWS(InvalidArgument, b.set("Bad", "x"), "invalid manifest key");
  Manifest back = Manifest::parse(b.to_bytes());
  CHECK(back.str("s") == "text" && back.i64("i") == -42 && back.i64("n") == (int64_t{1} << 40));
  CHECK(back.u64("u") == UINT64_MAX);
  CHECK(back.f64("pi") == 3.141592653589793 && back.f64("tiny") == 1e-300);
  CHECK(back.str("tenth") == "0.1" && back.f64("tenth") == 0.1);
  CHECK(back.boolean("yes"));
  CHECK(back.entries().size() == 8 && back.entries()[0].first == "s");
  CHECK(Manifest(kv).to_string() == text);
  CHECK_THROWS(InvalidArgument, Manifest({{"a", "1"}, {"a", "1"}}), "set twice");

  // Errors from a file name the file.
  const std::string path = g_tmp + "/manifest.annx";
  ContainerWriter w;
  w.add_section_copy("MANIFEST", b.to_bytes());
  w.add_section_copy("BADMAN", {'x', '\n'});
  w.write_file(path);
  ContainerReader r(Blob::map_file(path));
  Manifest fm = Manifest::from_section(r);
  CHECK_THROWS(FormatError, fm.i64("d"), path + ": manifest key 'd' missing");
  CHECK_THROWS(FormatError, Manifest::from_section(r, "BADMAN"), path + ": manifest line 1");
  CHECK_THROWS(FormatError, Manifest::from_section(r, "NOMAN"), path + ": missing section NOMAN");
}

}  // namespace

int main() {
  char tmpl[] = "/tmp/annx_test_container.XXXXXX";
  const char* base = std::getenv("TMPDIR");
  std::string t = std::string(base && *base ? base : "/tmp") + "/annx_test_container.XXXXXX";
  std::vector<char> buf(t.begin(), t.end());
  buf.push_back('\0');
  char* dir = mkdtemp(buf.data());
  if (dir == nullptr) dir = mkdtemp(tmpl);
  if (dir == nullptr) {
    std::perror("mkdtemp");
    return 2;
  }
  g_tmp = dir;

  struct Test {
    const char* name;
    void (*fn)();
  };
  const Test tests[] = {
      {"crc32c", test_crc32c},
      {"blob", test_blob},
      {"round_trip_bytes", test_round_trip_bytes},
      {"writer_validation", test_writer_validation},
      {"file_round_trip", test_file_round_trip},
      {"io_errors", test_io_errors},
      {"atomic_write_failures", test_atomic_write_failures},
      {"corruption_matrix", test_corruption_matrix},
      {"versions", test_versions},
      {"structural_checks", test_structural_checks},
      {"random_inputs", test_random_inputs},
      {"manifest", test_manifest},
  };
  for (const Test& test : tests) {
    int before = g_failures;
    std::printf("[ RUN  ] %s\n", test.name);
    std::fflush(stdout);
    try {
      test.fn();
    } catch (const std::exception& e) {
      report_failure(std::string("uncaught exception: ") + e.what(), __FILE__, __LINE__);
    }
    std::printf("[ %s ] %s\n", g_failures == before ? " OK " : "FAIL", test.name);
  }
  std::error_code ec;
  fs::permissions(g_tmp + "/ro", fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(g_tmp, ec);
  std::printf("test_container: %d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
