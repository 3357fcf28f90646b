#include "annx/factory.h"

#include <optional>
#include <vector>

#include "annx/common/error.h"
#include "annx/index/flat.h"
#include "annx/index/hnsw.h"

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

bool starts_with_structure(const std::string& t, const char* name) { return t.rfind(name, 0) == 0; }

bool parse_refine(const std::string& t, CodecKind& out) {
  if (t.rfind("Refine(", 0) != 0 || t.back() != ')') return false;
  const std::string inner = t.substr(7, t.size() - 8);
  if (inner == "F32" || inner == "Flat") {
    out = CodecKind::F32;
    return true;
  }
  if (inner == "F16") {
    out = CodecKind::F16;
    return true;
  }
  throw InvalidArgument("unknown re-rank codec in '" + t +
                        "': expected Refine(F32) or Refine(F16)");
}

std::unique_ptr<Index> make_hnsw(int d, const std::string& spec,
                                 const std::vector<std::string>& tok, Metric metric,
                                 const FactoryOptions& opt) {
  const std::string digits = tok[0].substr(4);
  const bool numeric = !digits.empty() && digits.size() <= 4 && digits[0] != '0' &&
                       digits.find_first_not_of("0123456789") == std::string::npos;
  if (!numeric)
    throw InvalidArgument("bad structure token '" + tok[0] + "' in spec '" + spec +
                          "': expected HNSW<M>, e.g. HNSW32");
  HnswOptions o;
  o.M = std::stoi(digits);
  if (o.M < 2 || o.M > 512)
    throw InvalidArgument("HNSW M must be in [2, 512], got " + digits + " in spec '" + spec + "'");
  if (opt.ef_construction) o.ef_construction = *opt.ef_construction;
  if (opt.seed) o.seed = *opt.seed;
  if (opt.shuffle) o.shuffle = *opt.shuffle;
  CodecKind codec = CodecKind::F32;
  std::optional<CodecKind> refine;
  size_t i = 1;
  if (i < tok.size() && tok[i].rfind("Refine(", 0) != 0) {
    if (tok[i] != "Flat" && !parse_codec(tok[i], codec))
      throw InvalidArgument("unknown codec '" + tok[i] + "' in spec '" + spec +
                            "': expected one of F32, F16, BF16, SQ8");
    ++i;
  }
  if (i < tok.size()) {
    CodecKind r;
    if (!parse_refine(tok[i], r))
      throw InvalidArgument("unexpected token '" + tok[i] + "' in spec '" + spec +
                            "': an HNSW spec is 'HNSW<M>[,codec][,Refine(F32|F16)]'");
    const bool finer =
        codec == CodecKind::SQ8 ||
        (r == CodecKind::F32 && (codec == CodecKind::F16 || codec == CodecKind::BF16));
    if (!finer)
      throw InvalidArgument("'" + tok[i] + "' in spec '" + spec +
                            "' re-ranks with a codec no finer than " + codec_name(codec) +
                            "; use Refine with a compressed codec, e.g. "
                            "'HNSW32,SQ8,Refine(F32)'");
    refine = r;
    ++i;
  }
  if (i < tok.size())
    throw InvalidArgument("unexpected token '" + tok[i] + "' in spec '" + spec +
                          "': an HNSW spec is 'HNSW<M>[,codec][,Refine(F32|F16)]'");
  return std::make_unique<HnswIndex>(d, metric, codec, refine, o);
}

}  // namespace

std::unique_ptr<Index> make_index(int d, const std::string& spec, Metric metric,
                                  const FactoryOptions& options) {
  const std::vector<std::string> tok = split(spec);
  const std::string& s = tok[0];
  if (starts_with_structure(s, "HNSW")) return make_hnsw(d, spec, tok, metric, options);
  if (options.ef_construction || options.seed || options.shuffle)
    throw InvalidArgument("ef_construction, seed and shuffle apply to HNSW specs only, not '" +
                          spec + "'");
  if (s != "Flat") {
    if (s.empty())
      throw InvalidArgument("empty index spec '" + spec + "': expected e.g. 'Flat' or 'HNSW32'");
    for (const char* planned : {"IVF", "PQ", "LeanVec", "BIN", "BEBR", "FDE", "PCA"})
      if (starts_with_structure(s, planned))
        throw InvalidArgument("spec token '" + s + "' in '" + spec +
                              "' is not available in this version of annx (available structures: "
                              "Flat, HNSW<M>)");
    throw InvalidArgument("unknown structure '" + s + "' in spec '" + spec +
                          "': expected 'Flat' or 'HNSW<M>'");
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
