#include "annx/factory.h"

#include <vector>

#include "annx/common/error.h"
#include "annx/index/flat.h"

namespace annx {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& spec) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t c = spec.find(',', start);
    out.push_back(trim(spec.substr(start, c == std::string::npos ? std::string::npos : c - start)));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  return out;
}

bool parse_codec(const std::string& t, CodecKind& out) {
  for (CodecKind k : {CodecKind::F32, CodecKind::F16, CodecKind::BF16, CodecKind::SQ8})
    if (t == codec_name(k)) {
      out = k;
      return true;
    }
  return false;
}

bool starts_with_structure(const std::string& t, const char* name) {
  return t.rfind(name, 0) == 0;
}

}  // namespace

std::unique_ptr<Index> make_index(int d, const std::string& spec, Metric metric) {
  const std::vector<std::string> tok = split(spec);
  const std::string& s = tok[0];
  if (s != "Flat") {
    if (s.empty())
      throw InvalidArgument("empty index spec '" + spec + "': expected e.g. 'Flat' or 'Flat,F16'");
    for (const char* planned : {"HNSW", "IVF", "PQ", "LeanVec", "BIN", "BEBR", "FDE", "PCA"})
      if (starts_with_structure(s, planned))
        throw InvalidArgument("spec token '" + s + "' in '" + spec +
                              "' is not available in this version of annx (available structures: "
                              "Flat)");
    throw InvalidArgument("unknown structure '" + s + "' in spec '" + spec +
                          "': expected 'Flat'");
  }
  CodecKind codec = CodecKind::F32;
  if (tok.size() >= 2) {
    if (!parse_codec(tok[1], codec))
      throw InvalidArgument("unknown codec '" + tok[1] + "' in spec '" + spec +
                            "': expected one of F32, F16, BF16, SQ8");
  }
  if (tok.size() >= 3)
    throw InvalidArgument("unexpected token '" + tok[2] + "' in spec '" + spec +
                          "': a Flat spec is 'Flat' or 'Flat,<codec>'");
  return std::make_unique<FlatIndex>(d, metric, codec);
}

}  // namespace annx
