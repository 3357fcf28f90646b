// Kernel bodies shared by every SIMD level (AVX2, AVX-512, ...), written once against a
// small `Ops` vocabulary that each ISA translation unit defines just before including
// this file inside its own anonymous namespace. No includes here on purpose: the ISA
// TU includes <cstring>, <immintrin.h> and kernels.h first, so nothing from this file
// can be emitted as a weak symbol visible to the generic build (ODR safety).
//
// Required from the including TU, inside the same namespace:
//   struct Ops {
//     using F = <vector of W floats>; static constexpr size_t W;
//     static constexpr int kMQ, kNR;  // GEMM micro-kernel: kMQ queries x kNR vectors of rows
//     static F zero(); static F load(const float*);   // unaligned
//     static F load_partial(const float*, size_t n); // n < W lanes, rest zero, no over-read
//     static F broadcast(const float*); static void store(float*, F);
//     static F load_f16(const uint16_t*); static F load_bf16(const uint16_t*);
//     static F load_u8(const uint8_t*);               // W bytes -> W floats
//     static F add(F, F), sub(F, F), mul(F, F), fmadd(F a, F b, F c) /* a*b+c */;
//     static float reduce(F);
//   };
//
// Tails (d not a multiple of W) are handled by copying the last partial block into a
// zero-padded stack buffer: zero lanes add nothing to L2, IP or weighted L2.

using simd::DistKind;

template <DistKind K>
struct RowType {
  using T = float;
};
template <>
struct RowType<DistKind::L2_F16> {
  using T = uint16_t;
};
template <>
struct RowType<DistKind::IP_F16> {
  using T = uint16_t;
};
template <>
struct RowType<DistKind::L2_BF16> {
  using T = uint16_t;
};
template <>
struct RowType<DistKind::IP_BF16> {
  using T = uint16_t;
};
template <>
struct RowType<DistKind::IP_U8> {
  using T = uint8_t;
};
template <>
struct RowType<DistKind::WL2_U8> {
  using T = uint8_t;
};

using F = Ops::F;
constexpr size_t W = Ops::W;

template <DistKind K>
inline F load_row(const typename RowType<K>::T* x) {
  if constexpr (K == DistKind::L2_F16 || K == DistKind::IP_F16) {
    return Ops::load_f16(x);
  } else if constexpr (K == DistKind::L2_BF16 || K == DistKind::IP_BF16) {
    return Ops::load_bf16(x);
  } else if constexpr (K == DistKind::IP_U8 || K == DistKind::WL2_U8) {
    return Ops::load_u8(x);
  } else {
    return Ops::load(x);
  }
}

constexpr bool kind_is_l2(DistKind k) {
  return k == DistKind::L2_F32 || k == DistKind::L2_F16 || k == DistKind::L2_BF16;
}

/// acc + term(q, x) for one block of W lanes; `w` only matters for WL2_U8.
template <DistKind K>
inline F accumulate(F acc, F q, F x, F w) {
  if constexpr (kind_is_l2(K)) {
    const F t = Ops::sub(q, x);
    return Ops::fmadd(t, t, acc);
  } else if constexpr (K == DistKind::WL2_U8) {
    const F t = Ops::sub(q, x);
    return Ops::fmadd(Ops::mul(w, t), t, acc);
  } else {
    return Ops::fmadd(q, x, acc);
  }
}

/// Zero-padded copies of a query tail (and weights), prepared once per call. For
/// narrow rows (F16, BF16, U8) with d >= W, also the "overlapped" tail: the last W
/// lanes of the query and weights (x read at d - W, inside the row), with the lanes
/// the full blocks already counted zeroed (`m` is 0 there, 1 on the tail lanes):
/// copying a partial narrow row into a stack buffer (memcpy, then a vector load that
/// cannot be store-forwarded) cost about 15 ns per row at d = 50.
struct QueryTail {
  alignas(64) float q[W];
  alignas(64) float w[W];
  alignas(64) float oq[W];
  alignas(64) float ow[W];
  alignas(64) float m[W];
  size_t start, len;
  QueryTail(const float* qp, const float* aux, size_t d) : start(d - d % W), len(d % W) {
    for (size_t i = 0; i < W; ++i) q[i] = w[i] = oq[i] = ow[i] = m[i] = 0.f;
    if (len) {
      memcpy(q, qp + start, len * sizeof(float));
      if (aux) memcpy(w, aux + start, len * sizeof(float));
      if (d >= W)
        for (size_t i = W - len; i < W; ++i) {
          oq[i] = qp[d - W + i];
          ow[i] = aux ? aux[d - W + i] : 0.f;
          m[i] = 1.f;
        }
    }
  }
};

template <DistKind K>
constexpr bool kind_is_narrow() {
  return K != DistKind::L2_F32 && K != DistKind::IP_F32;
}

/// acc + term over the overlapped tail (see QueryTail): x = the row's last W values.
template <DistKind K>
inline F accumulate_overlapped(F acc, const QueryTail& t, F x) {
  const F qv = Ops::load(t.oq);
  if constexpr (kind_is_l2(K)) {
    const F d = Ops::mul(Ops::sub(qv, x), Ops::load(t.m));
    return Ops::fmadd(d, d, acc);
  } else {
    return accumulate<K>(acc, qv, x, Ops::load(t.ow));  // zero q (IP) or weight (WL2) lanes
  }
}

template <DistKind K>
inline F load_row_tail(const typename RowType<K>::T* x, size_t len) {
  using T = typename RowType<K>::T;
  if constexpr (K == DistKind::L2_F32 || K == DistKind::IP_F32) {
    return Ops::load_partial(x, len);
  } else {
    alignas(64) T buf[W];
    for (size_t i = 0; i < W; ++i) buf[i] = 0;
    memcpy(buf, x, len * sizeof(T));
    return load_row<K>(buf);
  }
}

template <DistKind K>
inline F wload(const float* aux, size_t j) {
  if constexpr (K == DistKind::WL2_U8) {
    return Ops::load(aux + j);
  } else {
    (void)aux;
    (void)j;
    return Ops::zero();
  }
}

template <DistKind K>
float one(const float* q, const void* xv, size_t d, const float* aux) {
  using T = typename RowType<K>::T;
  const T* x = static_cast<const T*>(xv);
  F a0 = Ops::zero(), a1 = Ops::zero(), a2 = Ops::zero(), a3 = Ops::zero();
  size_t j = 0;
  for (; j + 4 * W <= d; j += 4 * W) {
    a0 = accumulate<K>(a0, Ops::load(q + j), load_row<K>(x + j), wload<K>(aux, j));
    a1 = accumulate<K>(a1, Ops::load(q + j + W), load_row<K>(x + j + W), wload<K>(aux, j + W));
    a2 = accumulate<K>(a2, Ops::load(q + j + 2 * W), load_row<K>(x + j + 2 * W),
                       wload<K>(aux, j + 2 * W));
    a3 = accumulate<K>(a3, Ops::load(q + j + 3 * W), load_row<K>(x + j + 3 * W),
                       wload<K>(aux, j + 3 * W));
  }
  for (; j + W <= d; j += W)
    a0 = accumulate<K>(a0, Ops::load(q + j), load_row<K>(x + j), wload<K>(aux, j));
  if (j < d) {
    const size_t len = d - j;
    if constexpr (kind_is_narrow<K>()) {
      if (d >= W) {  // the overlapped tail (see QueryTail); m: 1 on the last len lanes
        alignas(64) static constexpr float kMask[32] = {
            0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f,
            1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f, 1.f};
        static_assert(W <= 16, "kMask holds up to 16 lanes");
        const F m = Ops::load(kMask + 16 - W + len);
        const F qv = Ops::load(q + d - W), rv = load_row<K>(x + d - W);
        if constexpr (kind_is_l2(K)) {
          const F t = Ops::mul(Ops::sub(qv, rv), m);
          a1 = Ops::fmadd(t, t, a1);
        } else {
          const F wv = K == DistKind::WL2_U8 ? Ops::mul(Ops::load(aux + d - W), m) : m;
          a1 = accumulate<K>(a1, K == DistKind::WL2_U8 ? qv : Ops::mul(qv, m), rv, wv);
        }
        return Ops::reduce(Ops::add(Ops::add(a0, a1), Ops::add(a2, a3)));
      }
    }
    F wv = Ops::zero();
    if constexpr (K == DistKind::WL2_U8) wv = Ops::load_partial(aux + j, len);
    a1 = accumulate<K>(a1, Ops::load_partial(q + j, len), load_row_tail<K>(x + j, len), wv);
  }
  return Ops::reduce(Ops::add(Ops::add(a0, a1), Ops::add(a2, a3)));
}

/// one() for narrow rows (F16, BF16, U8) with d >= W and a tail, with the overlapped tail
/// prepared once per call (QueryTail) instead of masked per row: the same operations in
/// the same order as one(), hence the same score bit for bit.
template <DistKind K>
inline float one_tail(const float* q, const typename RowType<K>::T* x, size_t d, const float* aux,
                      const QueryTail& tail) {
  F a0 = Ops::zero(), a1 = Ops::zero(), a2 = Ops::zero(), a3 = Ops::zero();
  size_t j = 0;
  for (; j + 4 * W <= d; j += 4 * W) {
    a0 = accumulate<K>(a0, Ops::load(q + j), load_row<K>(x + j), wload<K>(aux, j));
    a1 = accumulate<K>(a1, Ops::load(q + j + W), load_row<K>(x + j + W), wload<K>(aux, j + W));
    a2 = accumulate<K>(a2, Ops::load(q + j + 2 * W), load_row<K>(x + j + 2 * W),
                       wload<K>(aux, j + 2 * W));
    a3 = accumulate<K>(a3, Ops::load(q + j + 3 * W), load_row<K>(x + j + 3 * W),
                       wload<K>(aux, j + 3 * W));
  }
  for (; j + W <= d; j += W)
    a0 = accumulate<K>(a0, Ops::load(q + j), load_row<K>(x + j), wload<K>(aux, j));
  a1 = accumulate_overlapped<K>(a1, tail, load_row<K>(x + d - W));
  return Ops::reduce(Ops::add(Ops::add(a0, a1), Ops::add(a2, a3)));
}

/// Four rows against one query: the query block is loaded once per four rows and the
/// four accumulator chains hide FMA latency even for small d.
template <DistKind K>
inline void four(const float* q, const typename RowType<K>::T* const* x, size_t d, const float* aux,
                 const QueryTail& tail, float* out) {
  F a0 = Ops::zero(), a1 = Ops::zero(), a2 = Ops::zero(), a3 = Ops::zero();
  size_t j = 0;
  for (; j + W <= d; j += W) {
    const F qv = Ops::load(q + j);
    const F wv = wload<K>(aux, j);
    a0 = accumulate<K>(a0, qv, load_row<K>(x[0] + j), wv);
    a1 = accumulate<K>(a1, qv, load_row<K>(x[1] + j), wv);
    a2 = accumulate<K>(a2, qv, load_row<K>(x[2] + j), wv);
    a3 = accumulate<K>(a3, qv, load_row<K>(x[3] + j), wv);
  }
  // The tail goes into its own accumulators, added at the end, as in one(): a row's
  // score is the same bit for bit whichever of the two scores it.
  F t0 = Ops::zero(), t1 = Ops::zero(), t2 = Ops::zero(), t3 = Ops::zero();
  bool overlapped = false;
  if constexpr (kind_is_narrow<K>()) {
    if (tail.len && d >= W) {
      const size_t o = d - W;
      t0 = accumulate_overlapped<K>(t0, tail, load_row<K>(x[0] + o));
      t1 = accumulate_overlapped<K>(t1, tail, load_row<K>(x[1] + o));
      t2 = accumulate_overlapped<K>(t2, tail, load_row<K>(x[2] + o));
      t3 = accumulate_overlapped<K>(t3, tail, load_row<K>(x[3] + o));
      overlapped = true;
    }
  }
  if (tail.len && !overlapped) {
    const F qv = Ops::load(tail.q);
    const F wv = Ops::load(tail.w);
    t0 = accumulate<K>(t0, qv, load_row_tail<K>(x[0] + j, tail.len), wv);
    t1 = accumulate<K>(t1, qv, load_row_tail<K>(x[1] + j, tail.len), wv);
    t2 = accumulate<K>(t2, qv, load_row_tail<K>(x[2] + j, tail.len), wv);
    t3 = accumulate<K>(t3, qv, load_row_tail<K>(x[3] + j, tail.len), wv);
  }
  out[0] = Ops::reduce(Ops::add(a0, t0));
  out[1] = Ops::reduce(Ops::add(a1, t1));
  out[2] = Ops::reduce(Ops::add(a2, t2));
  out[3] = Ops::reduce(Ops::add(a3, t3));
}

template <DistKind K>
void many(const float* q, const void* xv, size_t n, size_t d, const float* aux, float* out) {
  using T = typename RowType<K>::T;
  const T* x = static_cast<const T*>(xv);
  const QueryTail tail(q, aux, d);
  size_t i = 0;
  if (d >= 2 * W) {
    // Long rows: one row at a time with four accumulator chains streams at memory
    // speed; interleaving four rows measured 2x slower here (four read streams).
    // Narrow rows with a tail: its query lanes are prepared once for all rows (1.2-1.5x
    // faster per row at d = 50-100 than one()), with the same score as one() for any row
    // wherever a scan starts (batched scans re-score candidates with one()).
    if constexpr (kind_is_narrow<K>()) {
      if (tail.len) {
        for (; i < n; ++i) out[i] = one_tail<K>(q, x + i * d, d, aux, tail);
        return;
      }
    }
    for (; i < n; ++i) out[i] = one<K>(q, x + i * d, d, aux);
    return;
  }
  for (; i + 4 <= n; i += 4) {
    const T* rows[4] = {x + i * d, x + (i + 1) * d, x + (i + 2) * d, x + (i + 3) * d};
    four<K>(q, rows, d, aux, tail, out + i);
  }
  for (; i < n; ++i) out[i] = one<K>(q, x + i * d, d, aux);
}

inline void prefetch_row(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(c + o, 0, 3);
}

template <DistKind K>
void gather(const float* q, const void* xv, const uint32_t* ids, size_t n, size_t stride, size_t d,
            const float* aux, float* out) {
  using T = typename RowType<K>::T;
  const auto* x = static_cast<const uint8_t*>(xv);
  auto row = [&](size_t i) { return reinterpret_cast<const T*>(x + size_t{ids[i]} * stride); };
  const QueryTail tail(q, aux, d);
  const size_t row_bytes = d * sizeof(T);
  size_t i = 0;
  // Rows here are scattered (graph neighbours, re-ranking, filters), so four rows in
  // flight at once overlap their cache misses: measured 1.25x faster HNSW search on
  // GloVe-50, 1.09x on MiniLM-384 and 1.1x faster filtered flat search than one row
  // at a time (unlike `many`, whose rows are contiguous).
  for (; i + 4 <= n; i += 4) {
    for (size_t p = i + 4; p < i + 8 && p < n; ++p) prefetch_row(row(p), row_bytes);
    const T* rows[4] = {row(i), row(i + 1), row(i + 2), row(i + 3)};
    four<K>(q, rows, d, aux, tail, out + i);
  }
  for (; i < n; ++i) out[i] = one<K>(q, row(i), d, aux);
}

// ---- Many-to-many inner products (GEMM-like) -------------------------------------
// The base rows are packed into "panels" of kPanel = kNR * W rows stored column-major
// (for each dimension k, the k-th value of every row of the panel is contiguous), so
// the micro-kernel broadcasts one query value and multiplies it with W rows at a time:
// no horizontal reductions, kMQ x kNR accumulators live in registers for the whole d
// loop. Packing costs one pass over the rows and is amortised over every query.

constexpr size_t kPanel = static_cast<size_t>(Ops::kNR) * W;

void pack_f32_panel(const float* x, size_t nrows, size_t d, float* panel) {
  // Tiles of 16 dimensions: each row's 64 contiguous bytes are read once and the tile's
  // writes stay within 16 panel lines (the plain k-outer loop re-reads every row line
  // 16 times from afar).
  for (size_t k0 = 0; k0 < d; k0 += 16) {
    const size_t k1 = std::min(d, k0 + 16);
    for (size_t r = 0; r < nrows; ++r)
      for (size_t k = k0; k < k1; ++k) panel[k * kPanel + r] = x[r * d + k];
    for (size_t k = k0; k < k1; ++k)
      for (size_t r = nrows; r < kPanel; ++r) panel[k * kPanel + r] = 0.f;
  }
}

/// Dimensions [k0, k1) of MQ queries against one panel; adds to `out` unless FIRST.
template <int MQ, bool FIRST>
inline void panel_micro(const float* q, size_t d, size_t k0, size_t k1, const float* panel,
                        float* out, size_t out_stride) {
  constexpr int NR = Ops::kNR;
  F acc[MQ][NR];
  for (int a = 0; a < MQ; ++a)
    for (int b = 0; b < NR; ++b)
      acc[a][b] = FIRST ? Ops::zero() : Ops::load(out + a * out_stride + b * W);
  for (size_t k = k0; k < k1; ++k) {
    F xv[NR];
    for (int b = 0; b < NR; ++b) xv[b] = Ops::load(panel + k * kPanel + b * W);
    for (int a = 0; a < MQ; ++a) {
      const F qv = Ops::broadcast(q + a * d + k);
      for (int b = 0; b < NR; ++b) acc[a][b] = Ops::fmadd(qv, xv[b], acc[a][b]);
    }
  }
  for (int a = 0; a < MQ; ++a)
    for (int b = 0; b < NR; ++b) Ops::store(out + a * out_stride + b * W, acc[a][b]);
}

/// out[a * out_stride + r] = <q_a, panel row r> for a < nq, r < kPanel.
void dot_f32_panel(const float* q, size_t nq, size_t d, const float* panel, float* out,
                   size_t out_stride) {
  // The d loop is cut into slices of kKC dimensions so that the slice of the panel
  // being multiplied stays in L1 while every query group passes over it.
  constexpr size_t MQ = Ops::kMQ;
  constexpr size_t kKC = 128;
  for (size_t k0 = 0; k0 < d; k0 += kKC) {
    const size_t k1 = d - k0 < kKC ? d : k0 + kKC;
    size_t a = 0;
    if (k0 == 0) {
      for (; a + MQ <= nq; a += MQ)
        panel_micro<Ops::kMQ, true>(q + a * d, d, k0, k1, panel, out + a * out_stride, out_stride);
      for (; a < nq; ++a)
        panel_micro<1, true>(q + a * d, d, k0, k1, panel, out + a * out_stride, out_stride);
    } else {
      for (; a + MQ <= nq; a += MQ)
        panel_micro<Ops::kMQ, false>(q + a * d, d, k0, k1, panel, out + a * out_stride, out_stride);
      for (; a < nq; ++a)
        panel_micro<1, false>(q + a * d, d, k0, k1, panel, out + a * out_stride, out_stride);
    }
  }
}

/// Few queries: no packing; TQ queries x TX rows of inner products in registers, each
/// reduced horizontally at the end (cheaper than packing when nq is small).
template <int TQ, int TX>
inline void dot_micro(const float* q, const float* x, size_t d, float* out, size_t out_stride) {
  F acc[TQ][TX];
  for (int a = 0; a < TQ; ++a)
    for (int b = 0; b < TX; ++b) acc[a][b] = Ops::zero();
  size_t j = 0;
  for (; j + W <= d; j += W) {
    F xv[TX];
    for (int b = 0; b < TX; ++b) xv[b] = Ops::load(x + b * d + j);
    for (int a = 0; a < TQ; ++a) {
      const F qv = Ops::load(q + a * d + j);
      for (int b = 0; b < TX; ++b) acc[a][b] = Ops::fmadd(qv, xv[b], acc[a][b]);
    }
  }
  if (j < d) {
    const size_t len = d - j;
    F xv[TX];
    for (int b = 0; b < TX; ++b) xv[b] = Ops::load_partial(x + b * d + j, len);
    for (int a = 0; a < TQ; ++a) {
      const F qv = Ops::load_partial(q + a * d + j, len);
      for (int b = 0; b < TX; ++b) acc[a][b] = Ops::fmadd(qv, xv[b], acc[a][b]);
    }
  }
  for (int a = 0; a < TQ; ++a)
    for (int b = 0; b < TX; ++b) out[a * out_stride + b] = Ops::reduce(acc[a][b]);
}

void dot_f32_tile(const float* q, size_t nq, const float* x, size_t nx, size_t d, float* out,
                  size_t out_stride) {
  constexpr size_t TQ = 4, TX = 3;
  size_t i = 0;
  for (; i + TQ <= nq; i += TQ) {
    size_t j = 0;
    for (; j + TX <= nx; j += TX)
      dot_micro<4, 3>(q + i * d, x + j * d, d, out + i * out_stride + j, out_stride);
    for (; j < nx; ++j)
      dot_micro<4, 1>(q + i * d, x + j * d, d, out + i * out_stride + j, out_stride);
  }
  for (; i < nq; ++i) {
    size_t j = 0;
    for (; j + TX <= nx; j += TX)
      dot_micro<1, 3>(q + i * d, x + j * d, d, out + i * out_stride + j, out_stride);
    for (; j < nx; ++j)
      out[i * out_stride + j] = one<DistKind::IP_F32>(q + i * d, x + j * d, d, nullptr);
  }
}

// ---- Multi-vector kernels ------------------------------------------------------------

/// T document tokens against one W-lane block of packed query tokens: the element-wise
/// max over the T tokens of their W inner products (no horizontal reductions).
template <int T>
inline F maxsim_tokens(const float* qt, size_t qw, const float* x, size_t d) {
  F acc[T];
  for (int b = 0; b < T; ++b) acc[b] = Ops::zero();
  for (size_t k = 0; k < d; ++k) {
    const F qv = Ops::load(qt + k * qw);
    for (int b = 0; b < T; ++b) acc[b] = Ops::fmadd(Ops::broadcast(x + b * d + k), qv, acc[b]);
  }
  F m = acc[0];
  for (int b = 1; b < T; ++b) m = Ops::max(m, acc[b]);
  return m;
}

void maxsim_f32(const float* qt, size_t qw, const float* x, size_t nx, size_t d, float* best) {
  for (size_t blk = 0; blk < qw; blk += W) {
    F bv = Ops::load(best + blk);
    size_t j = 0;
    // 12 document tokens per pass (12 accumulators + the query vector fit AVX2's 16
    // registers); measured 15 % faster than 8 on Zen 4.
    for (; j + 12 <= nx; j += 12) bv = Ops::max(bv, maxsim_tokens<12>(qt + blk, qw, x + j * d, d));
    if (j + 8 <= nx) {
      bv = Ops::max(bv, maxsim_tokens<8>(qt + blk, qw, x + j * d, d));
      j += 8;
    }
    if (j + 4 <= nx) {
      bv = Ops::max(bv, maxsim_tokens<4>(qt + blk, qw, x + j * d, d));
      j += 4;
    }
    if (j + 2 <= nx) {
      bv = Ops::max(bv, maxsim_tokens<2>(qt + blk, qw, x + j * d, d));
      j += 2;
    }
    if (j < nx) bv = Ops::max(bv, maxsim_tokens<1>(qt + blk, qw, x + j * d, d));
    Ops::store(best + blk, bv);
  }
}

/// One output row of signed_segment_sum over NB column vectors, with CH interleaved
/// accumulator chains per vector so that the FMAs do not wait on each other.
template <int NB, int CH>
inline void segment_sum_row(const float* src, size_t ld, const uint32_t* idx, const float* signs,
                            size_t i0, size_t i1, float* out) {
  F acc[CH][NB];
  for (int h = 0; h < CH; ++h)
    for (int v = 0; v < NB; ++v) acc[h][v] = Ops::zero();
  size_t i = i0;
  for (; i + CH <= i1; i += CH)
    for (int h = 0; h < CH; ++h) {
      const F sg = Ops::broadcast(signs + i + h);
      const float* row = src + size_t{idx[i + h]} * ld;
      for (int v = 0; v < NB; ++v) acc[h][v] = Ops::fmadd(sg, Ops::load(row + v * W), acc[h][v]);
    }
  for (; i < i1; ++i) {
    const F sg = Ops::broadcast(signs + i);
    const float* row = src + size_t{idx[i]} * ld;
    for (int v = 0; v < NB; ++v) acc[0][v] = Ops::fmadd(sg, Ops::load(row + v * W), acc[0][v]);
  }
  for (int v = 0; v < NB; ++v) {
    F t = acc[0][v];
    for (int h = 1; h < CH; ++h) t = Ops::add(t, acc[h][v]);
    Ops::store(out + v * W, t);
  }
}

void signed_segment_sum(const float* src, size_t ld, size_t len, const uint32_t* idx,
                        const float* signs, const uint32_t* seg_end, size_t nseg, float* dst) {
  size_t i0 = 0;
  for (size_t j = 0; j < nseg; ++j) {
    const size_t i1 = seg_end[j];
    for (size_t c = 0; c < len;) {
      const size_t nb = std::min<size_t>(4, (len - c) / W);
      float* out = dst + j * ld + c;
      switch (nb) {
        case 1: segment_sum_row<1, 4>(src + c, ld, idx, signs, i0, i1, out); break;
        case 2: segment_sum_row<2, 2>(src + c, ld, idx, signs, i0, i1, out); break;
        case 3: segment_sum_row<3, 2>(src + c, ld, idx, signs, i0, i1, out); break;
        default: segment_sum_row<4, 2>(src + c, ld, idx, signs, i0, i1, out); break;
      }
      c += nb * W;
    }
    i0 = i1;
  }
}

/// One output row of segment_sum_pm over NB column vectors: CH chains for the added
/// rows and CH for the subtracted ones.
template <int NB, int CH>
inline void segment_sum_pm_row(const float* src, size_t ld, const uint32_t* idx, size_t i0,
                               size_t im, size_t i1, float* out) {
  F acc[CH][NB], neg[CH][NB];
  for (int h = 0; h < CH; ++h)
    for (int v = 0; v < NB; ++v) acc[h][v] = neg[h][v] = Ops::zero();
  size_t i = i0;
  for (; i + CH <= im; i += CH)
    for (int h = 0; h < CH; ++h) {
      const float* row = src + size_t{idx[i + h]} * ld;
      for (int v = 0; v < NB; ++v) acc[h][v] = Ops::add(acc[h][v], Ops::load(row + v * W));
    }
  for (; i < im; ++i) {
    const float* row = src + size_t{idx[i]} * ld;
    for (int v = 0; v < NB; ++v) acc[0][v] = Ops::add(acc[0][v], Ops::load(row + v * W));
  }
  for (; i + CH <= i1; i += CH)
    for (int h = 0; h < CH; ++h) {
      const float* row = src + size_t{idx[i + h]} * ld;
      for (int v = 0; v < NB; ++v) neg[h][v] = Ops::add(neg[h][v], Ops::load(row + v * W));
    }
  for (; i < i1; ++i) {
    const float* row = src + size_t{idx[i]} * ld;
    for (int v = 0; v < NB; ++v) neg[0][v] = Ops::add(neg[0][v], Ops::load(row + v * W));
  }
  for (int v = 0; v < NB; ++v) {
    F p = acc[0][v], n = neg[0][v];
    for (int h = 1; h < CH; ++h) {
      p = Ops::add(p, acc[h][v]);
      n = Ops::add(n, neg[h][v]);
    }
    Ops::store(out + v * W, Ops::sub(p, n));
  }
}

void segment_sum_pm(const float* src, size_t ld, size_t len, const uint32_t* idx,
                    const uint32_t* seg_split, const uint32_t* seg_end, size_t nseg, float* dst) {
  size_t i0 = 0;
  for (size_t j = 0; j < nseg; ++j) {
    const size_t im = seg_split[j], i1 = seg_end[j];
    for (size_t c = 0; c < len;) {
      const size_t nb = std::min<size_t>(2, (len - c) / W);
      float* out = dst + j * ld + c;
      if (nb == 2)
        segment_sum_pm_row<2, 2>(src + c, ld, idx, i0, im, i1, out);
      else
        segment_sum_pm_row<1, 4>(src + c, ld, idx, i0, im, i1, out);
      c += nb * W;
    }
    i0 = i1;
  }
}

/// PQ lookup tables (KernelTable::pq_lut): W centroids per register, 4 registers per
/// pass over the sub-space's dimensions; per entry the scalar kernel's operations in its
/// order (x86 builds may contract them into FMA).
void pq_lut(const float* q, size_t d, size_t M, size_t dsub, const float* ct, size_t kstride,
            size_t ksub, bool ip, float* out) {
  for (size_t m = 0; m < M; ++m) {
    const float* c = ct + m * dsub * kstride;
    const size_t b = m * dsub, nq = b < d ? std::min(dsub, d - b) : 0;  // padded sub-space
    float* o = out + m * ksub;
    size_t j = 0;
    for (; j + 4 * W <= ksub; j += 4 * W) {
      F acc[4] = {Ops::zero(), Ops::zero(), Ops::zero(), Ops::zero()};
      for (size_t t = 0; t < dsub; ++t) {
        const float v = t < nq ? q[b + t] : 0.f;
        const F vb = Ops::broadcast(&v);
        const float* ctj = c + t * kstride + j;
        for (int u = 0; u < 4; ++u) {
          const F cv = Ops::load(ctj + u * W);
          if (ip) {
            acc[u] = Ops::sub(acc[u], Ops::mul(vb, cv));
          } else {
            const F diff = Ops::sub(vb, cv);
            acc[u] = Ops::add(acc[u], Ops::mul(diff, diff));
          }
        }
      }
      for (int u = 0; u < 4; ++u) Ops::store(o + j + u * W, acc[u]);
    }
    for (; j + W <= ksub; j += W) {  // e.g. 4-bit PQ's 16 centroids
      F acc = Ops::zero();
      for (size_t t = 0; t < dsub; ++t) {
        const float v = t < nq ? q[b + t] : 0.f;
        const F vb = Ops::broadcast(&v), cv = Ops::load(c + t * kstride + j);
        if (ip) {
          acc = Ops::sub(acc, Ops::mul(vb, cv));
        } else {
          const F diff = Ops::sub(vb, cv);
          acc = Ops::add(acc, Ops::mul(diff, diff));
        }
      }
      Ops::store(o + j, acc);
    }
    for (; j < ksub; ++j) {  // ksub not a multiple of W
      float acc = 0.f;
      for (size_t t = 0; t < dsub; ++t) {
        const float v = t < nq ? q[b + t] : 0.f, cv = c[t * kstride + j];
        if (ip) {
          acc -= v * cv;
        } else {
          const float diff = v - cv;
          acc += diff * diff;
        }
      }
      o[j] = acc;
    }
  }
}

#if defined(__AVX2__)  // the NEON level (arm_neon.cpp) has its own, without gathers
/// 8-bit PQ over blocked codes (pq8_layout.h): per sub-quantizer, 32 codes index its
/// 1 KB table (L1-resident) with four 8-lane gathers. Shared by the AVX2 and AVX-512
/// levels: on Zen 4, 16-lane gathers measured slower (2,570 vs 2,900 queries/s for
/// IVF1024,PQ192 at nprobe 32 on MiniLM) and scalar loads slower still (1,830).
void pq8_adc_blocks(const uint8_t* blocks, size_t nblocks, size_t M, const float* lut, float* out) {
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* blk = blocks + b * 32 * M;
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    for (size_t m = 0; m < M; ++m) {
      const float* t = lut + m * 256;
      const uint8_t* c = blk + m * 32;
      for (int g = 0; g < 4; ++g) {
        const __m256i idx =
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + 8 * g)));
        a[g] = _mm256_add_ps(a[g], _mm256_i32gather_ps(t, idx, 4));
      }
    }
    for (int g = 0; g < 4; ++g) _mm256_storeu_ps(out + b * 32 + 8 * g, a[g]);
  }
}
#endif  // __AVX2__

template <DistKind K>
void fill_kind(simd::KernelTable& t) {
  t.one[static_cast<int>(K)] = &one<K>;
  t.many[static_cast<int>(K)] = &many<K>;
  t.gather[static_cast<int>(K)] = &gather<K>;
}

// Every SIMD level is compiled with POPCNT.
inline int popcount64(uint64_t v) { return static_cast<int>(__builtin_popcountll(v)); }

#define ANNX_BEBR_SIMD 1  // bebr_body-inl.h: use this level's popcount instructions
#include "bebr_body-inl.h"

inline void fill_float_kinds(simd::KernelTable& t) {
  fill_bebr_kinds(t);
  fill_kind<DistKind::L2_F32>(t);
  fill_kind<DistKind::IP_F32>(t);
  fill_kind<DistKind::L2_F16>(t);
  fill_kind<DistKind::IP_F16>(t);
  fill_kind<DistKind::L2_BF16>(t);
  fill_kind<DistKind::IP_BF16>(t);
  fill_kind<DistKind::IP_U8>(t);
  fill_kind<DistKind::WL2_U8>(t);
  t.dot_f32_tile = &dot_f32_tile;
  t.panel_rows = kPanel;
  t.pack_f32_panel = &pack_f32_panel;
  t.dot_f32_panel = &dot_f32_panel;
  t.maxsim_f32 = &maxsim_f32;
  t.signed_segment_sum = &signed_segment_sum;
  t.segment_sum_pm = &segment_sum_pm;
  t.pq_lut = &pq_lut;
}

// ---- 4-bit PQ fast-scan, 256-bit (pq4 layout, see annx/quant/pq4_layout.h) -----------
// The AVX2 kernel, also used by the AVX-512 levels for short codes (few pairs), where the
// 512-bit kernel's lane reduction costs more than it saves.
//
// One 256-bit register covers a sub-quantizer pair: lane 0 sub-quantizer 2j, lane 1 2j+1,
// so one vpshufb looks up 32 codes. Byte t of a lane holds vector pi(t) (low nibble) and
// pi(t) + 16 (high nibble), pi = 0, 8, 1, 9, ...: a u16 lane k of a lookup result holds the
// entries of vector k (low byte) and k + 8 (high byte). Adding whole u16 lanes into a0
// and the high bytes alone into a1 gives a0 = sum(lo) + 256 * sum(hi) mod 2^16 and
// a1 = sum(hi), so a0 - (a1 << 8) = sum(lo): exact, as all sums are <= 65535 (and equal to
// the true sum mod 2^16 otherwise, like the scalar kernel).
#if defined(__AVX2__)

/// Accumulators of one block: a0/a1 vectors 0-7 / 8-15, a2/a3 16-23 / 24-31; lane 0 sums
/// the even, lane 1 the odd sub-quantizers.
struct Pq4Acc256 {
  __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
  __m256i a2 = _mm256_setzero_si256(), a3 = _mm256_setzero_si256();

  inline void add(__m256i lut, __m256i codes, __m256i nib) {
    add_nibbles(lut, _mm256_and_si256(codes, nib),
                _mm256_and_si256(_mm256_srli_epi16(codes, 4), nib));
  }

  /// The same with the codes already unpacked: lo/hi = low/high nibbles (one per byte).
  inline void add_nibbles(__m256i lut, __m256i lo, __m256i hi) {
    const __m256i r0 = _mm256_shuffle_epi8(lut, lo);
    const __m256i r1 = _mm256_shuffle_epi8(lut, hi);
    a0 = _mm256_add_epi16(a0, r0);
    a1 = _mm256_add_epi16(a1, _mm256_srli_epi16(r0, 8));
    a2 = _mm256_add_epi16(a2, r1);
    a3 = _mm256_add_epi16(a3, _mm256_srli_epi16(r1, 8));
  }

  /// Call on every accumulator between the loop and the stores: GCC 12 otherwise keeps
  /// each loop-carried accumulator in two registers joined by a vmovdqa per update, which
  /// makes the loop front-end bound (Zen 4: 6% slower for one query, up to 1.9x for several
  /// at once). The empty asm pins each value in one register and emits nothing.
  inline void keep() { asm("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3)); }

  inline void store(uint16_t* out) const {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), finish(a0, a1));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), finish(a2, a3));
  }

  /// The 16 sums of an accumulator pair (a0, a1) or (a2, a3): sum(lo) = a0 - (a1 << 8), then
  /// the two lanes (even + odd sub-quantizers) of each added; low half of the result:
  /// vectors 0-7 (16-23), high half: 8-15 (24-31).
  static inline __m256i finish(__m256i x0, __m256i x1) {
    const __m256i v = _mm256_sub_epi16(x0, _mm256_slli_epi16(x1, 8));
    return _mm256_add_epi16(_mm256_permute2x128_si256(v, x1, 0x20),
                            _mm256_permute2x128_si256(v, x1, 0x31));
  }
};

inline __m256i pq4_load256(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

/// NB blocks per pass over the LUT (each LUT load serves NB blocks), then single blocks.
template <int NB>
void pq4_accumulate_256(const uint8_t* blocks, size_t nblocks, size_t npairs, const uint8_t* lut,
                        uint16_t* out) {
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const size_t bb = npairs * 32;
  size_t b = 0;
  for (; b + NB <= nblocks; b += NB) {
    const uint8_t* c = blocks + b * bb;
    Pq4Acc256 acc[NB];
    for (size_t j = 0; j < npairs; ++j) {
      const __m256i l = pq4_load256(lut + j * 32);
      for (int k = 0; k < NB; ++k) acc[k].add(l, pq4_load256(c + k * bb + j * 32), nib);
    }
    for (int k = 0; k < NB; ++k) acc[k].keep();
    for (int k = 0; k < NB; ++k) acc[k].store(out + (b + k) * 32);
  }
  for (; b < nblocks; ++b) {
    const uint8_t* c = blocks + b * bb;
    Pq4Acc256 acc;
    for (size_t j = 0; j < npairs; ++j)
      acc.add(pq4_load256(lut + j * 32), pq4_load256(c + j * 32), nib);
    acc.keep();
    acc.store(out + b * 32);
  }
}

/// pq4_accumulate for NQ queries per pass: each 32-byte code chunk is loaded and split into
/// nibbles once, then shuffled with the LUT of every query. 4 * NQ accumulators: NQ <= 3
/// fits 16 registers (3 just; see pq4_accumulate_nq_halves_256 for 4).
template <int NQ>
[[gnu::noinline]] void pq4_accumulate_nq_256(const uint8_t* blocks, size_t nblocks, size_t npairs,
                                             const uint8_t* const* luts, uint16_t* const* out) {
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const size_t bb = npairs * 32;
  const uint8_t* lut[NQ];  // local copies (stores through out[] might alias luts[])
  for (int q = 0; q < NQ; ++q) lut[q] = luts[q];
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* c = blocks + b * bb;
    Pq4Acc256 acc[NQ];
    for (size_t j = 0; j < npairs; ++j) {
      const __m256i codes = pq4_load256(c + j * 32);
      const __m256i lo = _mm256_and_si256(codes, nib);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(codes, 4), nib);
      for (int q = 0; q < NQ; ++q) acc[q].add_nibbles(pq4_load256(lut[q] + j * 32), lo, hi);
    }
    for (int q = 0; q < NQ; ++q) acc[q].keep();
    for (int q = 0; q < NQ; ++q) acc[q].store(out[q] + b * 32);
  }
}

/// The same in two passes over each block, low nibbles (vectors 0-15) then high nibbles
/// (16-31): 2 * NQ accumulators, so NQ = 4 fits 16 registers without spills (the codes are
/// loaded twice, from L1, and the per-pass unpack is 1-2 ops instead of 3).
template <int NQ>
[[gnu::noinline]] void pq4_accumulate_nq_halves_256(const uint8_t* blocks, size_t nblocks,
                                                    size_t npairs, const uint8_t* const* luts,
                                                    uint16_t* const* out) {
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const size_t bb = npairs * 32;
  const uint8_t* lut[NQ];  // local copies (stores through out[] might alias luts[])
  for (int q = 0; q < NQ; ++q) lut[q] = luts[q];
  for (size_t b = 0; b < nblocks; ++b) {
    const uint8_t* c = blocks + b * bb;
    for (int h = 0; h < 2; ++h) {
      __m256i a0[NQ], a1[NQ];
      for (int q = 0; q < NQ; ++q) a0[q] = a1[q] = _mm256_setzero_si256();
      for (size_t j = 0; j < npairs; ++j) {
        __m256i codes = pq4_load256(c + j * 32);
        if (h) codes = _mm256_srli_epi16(codes, 4);
        const __m256i x = _mm256_and_si256(codes, nib);
        for (int q = 0; q < NQ; ++q) {
          const __m256i r = _mm256_shuffle_epi8(pq4_load256(lut[q] + j * 32), x);
          a0[q] = _mm256_add_epi16(a0[q], r);
          a1[q] = _mm256_add_epi16(a1[q], _mm256_srli_epi16(r, 8));
        }
      }
      for (int q = 0; q < NQ; ++q) asm("" : "+v"(a0[q]), "+v"(a1[q]));  // see Pq4Acc256::keep
      for (int q = 0; q < NQ; ++q)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[q] + b * 32 + 16 * h),
                            Pq4Acc256::finish(a0[q], a1[q]));
    }
  }
}

#endif  // __AVX2__
