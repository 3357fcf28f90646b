#include "annx/factory.h"

#include <optional>
#include <vector>

#include "annx/common/error.h"
#include "annx/index/flat.h"
#include "annx/index/hnsw.h"
#include "annx/index/ivf.h"
#include "annx/index/leanvec_index.h"

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
  for (CodecKind k : all_codec_kinds())
    if (t == codec_name(k)) {
      out = k;
      return true;
    }
  return false;
}

/// A positive decimal without leading zeros and at most `max_digits` digits.
bool parse_count(const std::string& digits, size_t max_digits, size_t& out) {
  if (digits.empty() || digits.size() > max_digits || digits[0] == '0' ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return false;
  out = std::stoull(digits);
  return true;
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
  if (opt.insert_order && *opt.insert_order != "random") {
    if (*opt.insert_order != "lid_desc")
      throw InvalidArgument("insert_order must be 'random' or 'lid_desc', got '" +
                            *opt.insert_order + "'");
    if (opt.shuffle && *opt.shuffle)
      throw InvalidArgument(
          "insert_order='lid_desc' fixes the insertion order; it cannot be "
          "combined with shuffle=True");
    o.insert_order = HnswOptions::InsertOrder::LidDesc;
    o.shuffle = false;
  }
  CodecKind codec = CodecKind::F32;
  std::optional<CodecKind> refine;
  size_t i = 1;
  if (i < tok.size() && tok[i].rfind("Refine(", 0) != 0) {
    if (tok[i] != "Flat" && !parse_codec(tok[i], codec))
      throw InvalidArgument(
          "unknown codec '" + tok[i] + "' in spec '" + spec +
          "': expected one of F32, F16, BF16, SQ8, BIN, BEBR2..BEBR8 (optionally _adc)");
    ++i;
  }
  if (i < tok.size()) {
    CodecKind r;
    if (!parse_refine(tok[i], r))
      throw InvalidArgument("unexpected token '" + tok[i] + "' in spec '" + spec +
                            "': an HNSW spec is 'HNSW<M>[,codec][,Refine(F32|F16)]'");
    const bool finer =
        codec == CodecKind::SQ8 || binary_levels(codec) > 0 ||
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

/// "PQ<M>", "PQ<M>x8" (8-bit ADC) or "PQ<M>x4fs" (4-bit fast-scan).
bool parse_pq(const std::string& t, IvfOptions& o) {
  if (t.rfind("PQ", 0) != 0) return false;
  std::string rest = t.substr(2);
  IvfCodec codec = IvfCodec::PQ8;
  if (rest.size() > 4 && rest.compare(rest.size() - 4, 4, "x4fs") == 0) {
    codec = IvfCodec::PQ4FastScan;
    rest.resize(rest.size() - 4);
  } else if (rest.size() > 2 && rest.compare(rest.size() - 2, 2, "x8") == 0) {
    rest.resize(rest.size() - 2);
  }
  size_t m = 0;
  if (!parse_count(rest, 5, m)) return false;
  o.codec = codec;
  o.pq_m = m;
  return true;
}

std::unique_ptr<Index> make_ivf(int d, const std::string& spec, const std::vector<std::string>& tok,
                                Metric metric, const FactoryOptions& opt) {
  IvfOptions o;
  size_t i = 0;
  const bool flat_pq = tok[0].rfind("PQ", 0) == 0;
  const char* grammar = flat_pq ? "a PQ spec is 'PQ<M>[x4fs][,Refine(F32|F16)]'"
                                : "an IVF spec is 'IVF<nlist>[_HNSW<M>][,codec][,Refine(F32|F16)]'";
  if (flat_pq) {
    if (!parse_pq(tok[0], o))
      throw InvalidArgument("bad PQ token '" + tok[0] + "' in spec '" + spec +
                            "': expected PQ<M>, PQ<M>x8 or PQ<M>x4fs, e.g. PQ48x4fs");
    i = 1;
  } else {
    std::string t = tok[0].substr(3);
    const size_t us = t.find("_HNSW");
    std::string hnsw;
    if (us != std::string::npos) {
      hnsw = t.substr(us + 5);
      t.resize(us);
    }
    size_t nlist = 0, hm = 0;
    if (!parse_count(t, 8, nlist) || (us != std::string::npos && !parse_count(hnsw, 4, hm)))
      throw InvalidArgument("bad structure token '" + tok[0] + "' in spec '" + spec +
                            "': expected IVF<nlist> or IVF<nlist>_HNSW<M>, e.g. IVF1024");
    if (nlist > (size_t{1} << 24))
      throw InvalidArgument("IVF nlist must be at most 2^24, got " + t + " in spec '" + spec + "'");
    if (us != std::string::npos && (hm < 2 || hm > 512))
      throw InvalidArgument("HNSW M must be in [2, 512], got " + hnsw + " in spec '" + spec + "'");
    o.nlist = nlist;
    o.hnsw_m = static_cast<int>(hm);
    i = 1;
    if (i < tok.size() && tok[i].rfind("Refine(", 0) != 0) {
      if (tok[i] == "Flat") {
        o.vector_codec = CodecKind::F32;
      } else if (!parse_codec(tok[i], o.vector_codec) && !parse_pq(tok[i], o)) {
        throw InvalidArgument("unknown codec '" + tok[i] + "' in spec '" + spec +
                              "': expected one of Flat, F32, F16, BF16, SQ8, PQ<M>, PQ<M>x4fs");
      }
      ++i;
    }
  }
  if (i < tok.size()) {
    CodecKind r;
    if (!parse_refine(tok[i], r))
      throw InvalidArgument("unexpected token '" + tok[i] + "' in spec '" + spec + "': " + grammar);
    const CodecKind c = o.vector_codec;
    const bool finer = o.codec != IvfCodec::Vector || c == CodecKind::SQ8 || binary_levels(c) > 0 ||
                       (r == CodecKind::F32 && (c == CodecKind::F16 || c == CodecKind::BF16));
    if (!finer)
      throw InvalidArgument("'" + tok[i] + "' in spec '" + spec +
                            "' re-ranks with a codec no finer than " + codec_name(c) +
                            "; use Refine with a compressed codec, e.g. "
                            "'IVF1024,PQ32x4fs,Refine(F32)'");
    o.refine = r;
    ++i;
  }
  if (i < tok.size())
    throw InvalidArgument("unexpected token '" + tok[i] + "' in spec '" + spec + "': " + grammar);
  if (o.codec != IvfCodec::Vector && o.pq_m > static_cast<size_t>(d))
    throw InvalidArgument("PQ" + std::to_string(o.pq_m) + " in spec '" + spec +
                          "' has more sub-quantizers than the " + std::to_string(d) +
                          " dimensions");
  if (opt.ef_construction || opt.shuffle || opt.insert_order)
    throw InvalidArgument(
        "ef_construction, shuffle and insert_order apply to HNSW specs only, "
        "not '" +
        spec + "'");
  if (opt.seed) o.seed = *opt.seed;
  // Fast-scan IVF without an explicit by_residual picks its encoding when trained
  // (IvfOptions::auto_residual); other PQ codecs encode residuals, as faiss's IVFPQ.
  o.auto_residual = o.codec == IvfCodec::PQ4FastScan && o.nlist > 0 && !opt.by_residual;
  if (opt.by_residual) {
    if (o.codec == IvfCodec::Vector || o.nlist == 0)
      throw InvalidArgument("by_residual applies to IVF specs with a PQ codec only, not '" + spec +
                            "'");
    o.by_residual = *opt.by_residual;
  }
  return std::make_unique<IvfIndex>(d, metric, o);
}

/// "LeanVec<D>[_ood],<inner spec>,Refine(F32|F16)": the inner spec (default Flat) is
/// built with metric L2 for L2 and cosine (at D + 1 dimensions for OOD, see
/// leanvec_index.h) and inner product for IP; factory options go to the inner index.
std::unique_ptr<Index> make_leanvec(int d, const std::string& spec,
                                    const std::vector<std::string>& tok, Metric metric,
                                    const FactoryOptions& opt) {
  std::string head = tok[0].substr(7);
  const bool ood = head.size() > 4 && head.compare(head.size() - 4, 4, "_ood") == 0;
  if (ood) head.resize(head.size() - 4);
  size_t target = 0;
  if (!parse_count(head, 8, target))
    throw InvalidArgument("bad transform token '" + tok[0] + "' in spec '" + spec +
                          "': expected LeanVec<D> or LeanVec<D>_ood, e.g. LeanVec128");
  if (target >= static_cast<size_t>(d))
    throw InvalidArgument("LeanVec target dimension " + std::to_string(target) + " in spec '" +
                          spec + "' must be smaller than d = " + std::to_string(d));
  const char* grammar =
      "a LeanVec spec is 'LeanVec<D>[_ood][,structure[,codec]],Refine(F32|F16)', e.g. "
      "'LeanVec128,HNSW32,Refine(F32)'";
  CodecKind secondary;
  if (tok.size() < 2 || !parse_refine(tok.back(), secondary))
    throw InvalidArgument("spec '" + spec + "' has no full-dimension re-rank store: " + grammar);
  std::string inner;
  for (size_t i = 1; i + 1 < tok.size(); ++i) {
    if (tok[i].rfind("Refine(", 0) == 0 || tok[i].rfind("LeanVec", 0) == 0)
      throw InvalidArgument("unexpected token '" + tok[i] + "' in spec '" + spec + "': " + grammar);
    inner += (inner.empty() ? "" : ",") + tok[i];
  }
  if (inner.empty()) inner = "Flat";
  // L2 and cosine (unit vectors): an L2 index, with the residual-norm column for OOD;
  // IP: an IP index (see leanvec_index.h).
  const Metric inner_metric = metric == Metric::IP ? Metric::IP : Metric::L2;
  const int inner_d = static_cast<int>(target) + (ood && metric != Metric::IP ? 1 : 0);
  // The seed also draws the training sample the LeanVec fit uses (Python side); Flat
  // takes no seed.
  FactoryOptions inner_opt = opt;
  if (inner.rfind("Flat", 0) == 0) inner_opt.seed.reset();
  std::unique_ptr<Index> in;
  try {
    in = make_index(inner_d, inner, inner_metric, inner_opt);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string(e.what()) + " (the index inside '" + spec + "')");
  }
  return std::make_unique<LeanVecIndex>(d, metric, static_cast<int>(target), ood, std::move(in),
                                        secondary, opt.seed.value_or(0));
}

}  // namespace

std::unique_ptr<Index> make_index(int d, const std::string& spec, Metric metric,
                                  const FactoryOptions& options) {
  const std::vector<std::string> tok = split(spec);
  const std::string& s = tok[0];
  if (starts_with_structure(s, "LeanVec")) return make_leanvec(d, spec, tok, metric, options);
  if (starts_with_structure(s, "HNSW")) return make_hnsw(d, spec, tok, metric, options);
  if (starts_with_structure(s, "IVF") || starts_with_structure(s, "PQ"))
    return make_ivf(d, spec, tok, metric, options);
  if (options.ef_construction || options.seed || options.shuffle || options.by_residual ||
      options.insert_order)
    throw InvalidArgument(
        "ef_construction, seed, shuffle, insert_order and by_residual do not "
        "apply to '" +
        spec + "'");
  if (s != "Flat") {
    if (s.empty())
      throw InvalidArgument("empty index spec '" + spec + "': expected e.g. 'Flat' or 'HNSW32'");
    if (starts_with_structure(s, "BIN") || starts_with_structure(s, "BEBR"))
      throw InvalidArgument("spec '" + spec + "': '" + s +
                            "' is a codec; put it after a structure ('Flat," + s + "', 'HNSW32," +
                            s +
                            ",Refine(F32)'). A pure binary index over packed codes is "
                            "annx.index_factory(nbits, 'BIN', metric='hamming')");
    for (const char* planned : {"FDE", "PCA"})
      if (starts_with_structure(s, planned))
        throw InvalidArgument(
            "spec token '" + s + "' in '" + spec +
            "' is not available in this version of annx (available: Flat, HNSW<M>, "
            "IVF<nlist>, PQ<M>, LeanVec<D>)");
    throw InvalidArgument("unknown structure '" + s + "' in spec '" + spec +
                          "': expected 'Flat', 'HNSW<M>', 'IVF<nlist>', 'PQ<M>' or a 'LeanVec<D>' "
                          "transform");
  }
  CodecKind codec = CodecKind::F32;
  if (tok.size() >= 2) {
    if (!parse_codec(tok[1], codec))
      throw InvalidArgument(
          "unknown codec '" + tok[1] + "' in spec '" + spec +
          "': expected one of F32, F16, BF16, SQ8, BIN, BEBR2..BEBR8 (optionally _adc)");
  }
  if (tok.size() == 3 && tok[2].rfind("Refine(", 0) == 0) {
    // "Flat,<codec>,Refine(F32|F16)": a scan of the codes re-ranked with the finer store,
    // built as a single-list IVF index (no coarse quantizer), like flat PQ.
    CodecKind r;
    parse_refine(tok[2], r);
    const bool finer =
        codec == CodecKind::SQ8 || binary_levels(codec) > 0 ||
        (r == CodecKind::F32 && (codec == CodecKind::F16 || codec == CodecKind::BF16));
    if (!finer)
      throw InvalidArgument("'" + tok[2] + "' in spec '" + spec +
                            "' re-ranks with a codec no finer than " + codec_name(codec) +
                            "; use Refine with a compressed codec, e.g. 'Flat,BEBR4,Refine(F32)'");
    IvfOptions o;
    o.nlist = 0;
    o.codec = IvfCodec::Vector;
    o.vector_codec = codec;
    o.refine = r;
    return std::make_unique<IvfIndex>(d, metric, o);
  }
  if (tok.size() >= 3)
    throw InvalidArgument("unexpected token '" + tok[2] + "' in spec '" + spec +
                          "': a Flat spec is 'Flat', 'Flat,<codec>' or "
                          "'Flat,<codec>,Refine(F32|F16)'");
  return std::make_unique<FlatIndex>(d, metric, codec);
}

}  // namespace annx
