"""4-bit PQ fast-scan (pq4 layout, LUT quantisation, accumulation kernel) and the 8-bit PQ
ADC kernels, on every ISA level available here, against numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import unusual_data

import annx
from annx import _core

# Byte t of a sub-quantizer's 16 holds vector PERM[t] (low nibble) and PERM[t] + 16 (high).
PERM = np.array([0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15])


def nblocks(n: int) -> int:
    return (n + 31) // 32


def ref_pack(codes: np.ndarray) -> np.ndarray:
    """The pq4 layout written from its definition (independent of annx's packer)."""
    n, M = codes.shape
    npairs = (M + 1) // 2
    nb = nblocks(n)
    c = np.zeros((nb * 32, 2 * npairs), np.uint8)
    c[:n, :M] = codes
    c = c.reshape(nb, 32, npairs, 2)  # block, vector, pair, sub-quantizer in pair
    lo = c[:, PERM]  # (nb, 16, npairs, 2)
    hi = c[:, PERM + 16]
    byte = lo | (hi << 4)
    return np.ascontiguousarray(byte.transpose(0, 2, 3, 1)).reshape(-1)  # nb, pair, sq, t


def ref_codes_of_blocks(blocks: np.ndarray, nb: int, npairs: int) -> np.ndarray:
    """Decodes arbitrary packed bytes into (nb * 32, 2 * npairs) codes."""
    b = blocks.reshape(nb, npairs, 2, 16)
    codes = np.zeros((nb, 32, npairs, 2), np.uint8)
    codes[:, PERM] = (b & 15).transpose(0, 3, 1, 2)
    codes[:, PERM + 16] = (b >> 4).transpose(0, 3, 1, 2)
    return codes.reshape(nb * 32, 2 * npairs)


def ref_accumulate(blocks, nb, npairs, lut_bytes) -> np.ndarray:
    codes = ref_codes_of_blocks(blocks, nb, npairs).astype(np.int64)
    lut = lut_bytes.reshape(2 * npairs, 16).astype(np.int64)
    return lut[np.arange(2 * npairs)[None, :], codes].sum(1)


# ------------------------------------------------------------------------------ layout
@pytest.mark.parametrize("M", [1, 2, 3, 7, 8, 16, 17, 33])
@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 100])
def test_pack_layout_and_round_trip(M, n, rng):
    codes = rng.integers(0, 16, size=(n, M), dtype=np.uint8)
    packed = _core.pq4_pack(codes)
    assert packed.dtype == np.uint8
    assert packed.shape == (nblocks(n) * ((M + 1) // 2) * 32,)
    np.testing.assert_array_equal(packed, ref_pack(codes))
    np.testing.assert_array_equal(_core.pq4_unpack(packed, n, M), codes)
    # Padding vectors and the padding sub-quantizer read back as code 0.
    full = ref_codes_of_blocks(packed, nblocks(n), (M + 1) // 2)
    assert not full[n:].any() and not full[:, M:].any()


def test_get_set_code(rng):
    M, n = 13, 75
    codes = rng.integers(0, 16, size=(n, M), dtype=np.uint8)
    packed = _core.pq4_pack(codes)
    for i in range(n):
        np.testing.assert_array_equal(_core.pq4_get_code(packed, M, i), codes[i])
    np.testing.assert_array_equal(_core.pq4_get_code(packed, M, n + 3), np.zeros(M, np.uint8))
    for i in rng.choice(n, 20, replace=False):
        codes[i] = rng.integers(0, 16, M, dtype=np.uint8)
        _core.pq4_set_code(packed, M, int(i), codes[i])
    np.testing.assert_array_equal(packed, ref_pack(codes))
    # Writing a padding slot makes it a regular vector of the next n.
    extra = np.full(M, 15, np.uint8)
    _core.pq4_set_code(packed, M, n, extra)
    np.testing.assert_array_equal(_core.pq4_unpack(packed, n + 1, M), np.vstack([codes, extra]))


def test_layout_matches_faiss(rng):
    faiss = pytest.importorskip("faiss")
    for M, n in [(1, 3), (7, 70), (8, 32), (16, 100), (33, 5)]:
        codes = rng.integers(0, 16, size=(n, M), dtype=np.uint8)
        # One dimension per sub-quantizer with centroids 0..15: vector = its own code.
        pq = faiss.IndexPQ(M, M, 4)
        faiss.copy_array_to_vector(np.tile(np.arange(16, dtype=np.float32), M), pq.pq.centroids)
        pq.is_trained = True
        pq.add(codes.astype(np.float32))
        fast = faiss.IndexPQFastScan(pq, 32)
        blocks = np.frombuffer(faiss.rev_swig_ptr(fast.codes.get(), fast.codes.size()), np.uint8)
        packed = _core.pq4_pack(codes)
        np.testing.assert_array_equal(blocks[: packed.size], packed)


# ------------------------------------------------------------------------------ kernel
def test_pq4_accumulate_exact(isa, rng):
    for npairs in range(1, 101):
        nb = 1 + npairs % 5
        blocks = rng.integers(0, 256, size=nb * npairs * 32, dtype=np.uint8)
        lut = rng.integers(0, 256, size=npairs * 32, dtype=np.uint8)  # sums <= 51000
        out = _core.kernel_pq4_accumulate(blocks, nb, npairs, lut)
        assert out.dtype == np.uint16 and out.shape == (nb * 32,)
        np.testing.assert_array_equal(out, ref_accumulate(blocks, nb, npairs, lut), f"{npairs=}")


def test_pq4_accumulate_wraps_mod_2_16(isa, rng):
    # Beyond the sum bound the result is the true sum mod 2^16 on every ISA.
    npairs, nb = 200, 3
    blocks = rng.integers(0, 256, size=nb * npairs * 32, dtype=np.uint8)
    lut = rng.integers(128, 256, size=npairs * 32, dtype=np.uint8)
    ref = ref_accumulate(blocks, nb, npairs, lut)
    assert ref.max() > 65535
    np.testing.assert_array_equal(_core.kernel_pq4_accumulate(blocks, nb, npairs, lut), ref % 65536)


@pytest.mark.parametrize("nq", range(9))
def test_pq4_accumulate_nq_matches_per_query(isa, nq, rng):
    # nq queries over the same blocks in one pass: row q is what the one-query kernel writes
    # for lut q. nq 2-4 are single passes (per ISA: 256-bit for npairs <= 8, 512-bit above
    # on AVX-512; two half-block passes for 4 on AVX2), 5-8 passes of up to 4 queries.
    for npairs in [1, 2, 3, 7, 8, 9, 16, 17, 96, 97]:
        for nb in range(6):
            blocks = rng.integers(0, 256, size=nb * npairs * 32, dtype=np.uint8)
            luts = rng.integers(0, 256, size=(nq, npairs * 32), dtype=np.uint8)
            out = _core.kernel_pq4_accumulate_nq(blocks, nb, npairs, luts)
            assert out.dtype == np.uint16 and out.shape == (nq, nb * 32)
            for q in range(nq):
                one = _core.kernel_pq4_accumulate(blocks, nb, npairs, luts[q])
                np.testing.assert_array_equal(out[q], one, f"{npairs=} {nb=} {q=}")
                if npairs in (9, 97):  # and both against numpy
                    ref = ref_accumulate(blocks, nb, npairs, luts[q])
                    np.testing.assert_array_equal(out[q], ref, f"{npairs=} {nb=} {q=}")


@pytest.mark.parametrize("nq", [2, 3, 4, 7])
def test_pq4_accumulate_nq_wraps_mod_2_16(isa, nq, rng):
    # Past the sum bound, every query's sums are the true sums mod 2^16, as with one query.
    for npairs in [8, 199]:  # the 256-bit and the 512-bit (odd tail) kernels on AVX-512
        nb = 3
        blocks = rng.integers(0, 256, size=nb * npairs * 32, dtype=np.uint8)
        luts = rng.integers(128, 256, size=(nq, npairs * 32), dtype=np.uint8)
        out = _core.kernel_pq4_accumulate_nq(blocks, nb, npairs, luts)
        for q in range(nq):
            ref = ref_accumulate(blocks, nb, npairs, luts[q])
            if npairs == 199:
                assert ref.max() > 65535
            np.testing.assert_array_equal(out[q], ref % 65536, f"{npairs=} {q=}")


@pytest.mark.parametrize("M", [1, 7, 8, 15, 32, 33, 192])
def test_quantized_distance_within_bound(isa, M, rng):
    n = 77
    lut = (rng.standard_normal((M, 16)) * rng.uniform(0.1, 10, (M, 1)) + 3).astype(np.float32)
    codes = rng.integers(0, 16, size=(n, M), dtype=np.uint8)
    packed_lut, a, bias = _core.pq4_quantize_lut(lut)
    npairs = (M + 1) // 2
    acc = _core.kernel_pq4_accumulate(_core.pq4_pack(codes), nblocks(n), npairs, packed_lut)
    # Exact against the quantised table (the padding sub-quantizer's row is zero) ...
    q = packed_lut.reshape(2 * npairs, 16).astype(np.int64)
    np.testing.assert_array_equal(acc[:n], q[np.arange(M)[None, :], codes].sum(1))
    # ... and within the rounding bound of the float ADC.
    ref = lut.astype(np.float64)[np.arange(M)[None, :], codes].sum(1)
    approx = bias + acc[:n].astype(np.float64) / a
    slack = 1e-4 * (1 + np.abs(lut).max(1).sum())
    assert np.all(np.abs(approx - ref) <= M / (2 * a) + slack)


def lut_cases(rng):
    yield "normal", rng.standard_normal((16, 16)).astype(np.float32)
    yield (
        "one big span",
        np.vstack([rng.random((5, 16)), 1000 * rng.random((1, 16))]).astype(np.float32),
    )
    z = rng.standard_normal((9, 16)).astype(np.float32)
    z[::2] = 7.5  # some spans zero
    yield "zero spans", z
    yield "all spans zero", np.full((4, 16), -2.0, np.float32)
    yield "sum bound binds", rng.random((600, 16)).astype(np.float32)
    # 700 equal spans: a * span = 65535 / 700 = 93.6 rounds up to 94 and 94 * 700 > 65535,
    # so the scale has to shrink below the formula.
    eq = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (700, 1))
    yield "rounding overflow", eq
    yield "odd M", (rng.standard_normal((33, 16)) * 50 - 100).astype(np.float32)


def test_quantize_lut_bounds(isa, rng):
    """The quantised fast-scan table's range, rounding and scale; bit-identical on every
    ISA level (the row kernels pq4_lut_stats / pq4_quantize_rows round alike)."""
    for name, lut in lut_cases(rng):
        M = lut.shape[0]
        npairs = (M + 1) // 2
        packed, a, bias = _core.pq4_quantize_lut(lut)
        annx.set_isa("scalar")
        reference = _core.pq4_quantize_lut(lut)
        annx.set_isa(isa)
        np.testing.assert_array_equal(packed, reference[0], name)
        assert (a, bias) == reference[1:], name
        assert packed.dtype == np.uint8 and packed.shape == (npairs * 32,), name
        q = packed.reshape(2 * npairs, 16).astype(np.int64)
        assert not q[M:].any(), name  # padding sub-quantizer
        lo = lut.min(1).astype(np.float64)
        span = lut.max(1).astype(np.float64) - lo
        assert bias == pytest.approx(lo.sum(), rel=1e-6, abs=1e-5), name
        if not span.any():
            assert a == 1.0 and not q.any(), name
            continue
        assert a <= min(255 / span.max(), 65535 / span.sum()) * (1 + 1e-6), name
        assert np.all(a * span <= 255 * (1 + 1e-6)), name
        assert q.max() <= 255 and q.max(1).sum() <= 65535, name
        scaled = a * (lut.astype(np.float64) - lo[:, None])
        assert np.all(np.abs(q[:M] - scaled) <= 0.5 + 1e-3), name
        formula = min(255 / span.max(), 65535 / span.sum())
        if name in ("sum bound binds", "rounding overflow"):
            # Rounding may push the sum of maxima past 65535 (by <= M / 2) when the sum
            # bound binds; the scale then shrinks, but only about that much.
            assert a >= formula * (1 - M / 65535), name
        else:
            assert a == pytest.approx(formula, rel=1e-6), name
        if name == "rounding overflow":
            assert a < formula * (1 - 1e-6), name


# ------------------------------------------------------------------------------ select
@pytest.mark.parametrize("n", [0, 1, 15, 16, 31, 32, 33, 63, 64, 65, 100, 1000])
def test_select_le_u16(isa, n, rng):
    v = rng.integers(0, 65536, size=n, dtype=np.uint16)
    if n > 2:
        v[0], v[-1] = 0, 65535
    for thr in (0, 1, 1000, 30000, 65000, 65534, 65535):
        got = _core.kernel_select_le_u16(v, thr)
        assert got.dtype == np.uint32
        np.testing.assert_array_equal(got, np.flatnonzero(v <= thr))
    dense = rng.integers(0, 8, size=n, dtype=np.uint16)  # many hits per 32
    np.testing.assert_array_equal(_core.kernel_select_le_u16(dense, 3), np.flatnonzero(dense <= 3))


# ------------------------------------------------------------------------------ 8-bit PQ
@pytest.mark.parametrize("M", [1, 3, 7, 8, 9, 16, 31, 64])
def test_pq8_adc_blocks(isa, M, rng):
    """8-bit ADC over the blocked list layout (the hook lays row-major codes out in blocks)."""
    lut = (rng.standard_normal((M, 256)) * 10).astype(np.float32)
    for n in (0, 1, 3, 4, 5, 13, 32, 70):
        codes = rng.integers(0, 256, size=(n, M), dtype=np.uint8)
        terms = lut.astype(np.float64)[np.arange(M)[None, :], codes]
        ref, scale = terms.sum(1), np.abs(terms).sum(1)
        got = _core.kernel_pq8_adc_blocks(codes, lut)
        assert got.dtype == np.float32 and got.shape == (-(-n // 32) * 32,)
        assert np.all(np.abs(got[:n] - ref) <= 1e-5 * scale + 1e-6)
        # m-ascending f32 sums on every ISA: bit-identical to the scalar kernel.
        annx.set_isa("scalar")
        np.testing.assert_array_equal(_core.kernel_pq8_adc_blocks(codes, lut), got)
        annx.set_isa(isa)


@pytest.mark.skipif("avx512_icl" not in annx.available_isas(), reason="no byte-sum kernel here")
@pytest.mark.parametrize("metric", ["l2", "ip", "cos"])
@pytest.mark.parametrize("kind", ["plain", "offset", "anisotropic", "duplicated"])
@pytest.mark.parametrize("by_residual", [True, False])
def test_pq8_byte_sums_keep_float_answers(metric, kind, by_residual):
    """IVF 8-bit PQ on avx512_icl skips the codes whose byte-table sums cannot win and
    scores the rest with the float sums: every answer (ids and distances, bit for bit)
    equals the float scan's (avx512), for k-NN with and without a first list bounded by
    its own k-th best (k vs list length), re-ranking, filters and range search."""
    x = unusual_data(kind, 6000, 24, seed=11)
    q = x[:40] + np.random.default_rng(12).standard_normal((40, 24)).astype(np.float32) * (
        0.3 * x.std()
    )
    before = annx.get_isa()
    try:
        annx.set_isa("avx512")
        index = annx.index_factory(24, "IVF12,PQ12", metric=metric, by_residual=by_residual)
        refine = annx.index_factory(24, "IVF12,PQ12,Refine(F32)", metric=metric)
        for ix in (index, refine):
            ix.train(x)
            ix.add(x)
        D0, _ = index.search(q[:1], 50, nprobe=12)
        radius = float(D0[0, 20])  # ~20 hits per query within 6 lists
        cases = [(index, k, dict(nprobe=p)) for k in (1, 10, 100, 400) for p in (1, 3, 12)]
        cases += [
            (index, 10, dict(nprobe=4, filter=np.arange(0, 6000, 3))),
            (refine, 10, dict(nprobe=4, rerank=80)),
        ]
        results = {}
        for isa in ("avx512", "avx512_icl"):
            annx.set_isa(isa)
            out = [ix.search(q, k, **params) for ix, k, params in cases]
            lims, Dr, Ir = index.range_search(q, radius, nprobe=6)
            results[isa] = [*out, (Dr, Ir), (lims, lims)]
    finally:
        annx.set_isa(before)
    for (Da, Ia), (Db, Ib) in zip(results["avx512"], results["avx512_icl"], strict=True):
        np.testing.assert_array_equal(Ia, Ib)
        np.testing.assert_array_equal(Da, Db)


@pytest.mark.parametrize("metric", ["l2", "ip", "cos"])
@pytest.mark.parametrize("kind", ["plain", "offset", "anisotropic", "duplicated"])
@pytest.mark.parametrize("by_residual", [True, False])
def test_fastscan_first_lists_bounded_by_own_kth_keep_answers(metric, kind, by_residual):
    """A collector's first fast-scan lists (unfiltered, more than 2 kc rows) keep only the
    rows at or below their own kc-th smallest sum (and its ties) instead of pushing every
    row. Filtered scans never bound themselves, so with a filter that allows every id they
    push every row: the answers (ids and distances, bit for bit) must be the same, on
    plain, offset, anisotropic and duplicated data, for one query at a time and for
    batches (grouped by list), with and without re-ranking, and where kc is too large for
    the bound (k = 400 against lists of ~750 rows). (Where the
    probed lists hold fewer than k vectors a filtered search goes on to the other lists,
    so those queries are compared one query against batch only.)"""
    x = unusual_data(kind, 6000, 24, seed=21)
    q = x[:48] + np.random.default_rng(22).standard_normal((48, 24)).astype(np.float32) * (
        0.3 * x.std()
    )
    index = annx.index_factory(24, "IVF8,PQ12x4fs", metric=metric, by_residual=by_residual)
    refine = annx.index_factory(24, "IVF8,PQ12x4fs,Refine(F32)", metric=metric)
    for ix in (index, refine):
        ix.train(x)
        ix.add(x)
    everyone = np.arange(6000)
    cases = [(index, k, dict(nprobe=p)) for k in (1, 10, 100, 400) for p in (1, 3, 8)]
    cases += [(refine, 10, dict(nprobe=3, rerank=60))]
    for ix, k, params in cases:
        D, I = ix.search(q, k, **params)  # grouped batch
        Df, If = ix.search(q, k, filter=everyone, **params)
        full = (I >= 0).all(axis=1)
        assert full.sum() >= 24
        np.testing.assert_array_equal(I[full], If[full])
        np.testing.assert_array_equal(D[full], Df[full])
        for i in (0, 17, 47):  # one query at a time
            D1, I1 = ix.search(q[i : i + 1], k, **params)
            np.testing.assert_array_equal(I1[0], I[i])
            np.testing.assert_array_equal(D1[0], D[i])


@pytest.mark.parametrize("metric, offset", [("l2", 0.0), ("l2", 100.0), ("ip", 0.0), ("cos", 0.0)])
@pytest.mark.parametrize("by_residual", [False, True])
def test_fastscan_first_list_bound_falls_back_to_the_exact_kth(metric, offset, by_residual):
    """The first-list bound is first estimated from a strided sample of the list's sums
    (every 12th row of a 6,000-row list: at most 512 samples, ivf.cpp
    select_bounded_first_list); where the rows at or below the estimate are fewer than kc,
    the exact kc-th sum is selected instead. Here the sampled rows are exactly the 500
    best for the metric (l2: 2-8x nearer, also far from the origin; ip and cos: 3-8x
    larger projections on the query's direction, so also the smallest angles to it), so
    every estimate holds too few rows and every query takes the exact selection (checked
    with a temporary counter: all 4 cases). The answers must still be those of a scan that
    pushes every row (a filter admitting every id; more than kDirectFilterMax ids, so it
    is the same scan), bit for bit, and complete."""
    rng = np.random.default_rng(31)
    n, d = 6000, 32
    dirs = rng.standard_normal((n, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    sampled = np.arange(n) % 12 == 0
    u = np.zeros(d)
    u[0] = 1.0
    if metric == "l2":
        radius = np.where(sampled, 1 + rng.random(n), 4 + 4 * rng.random(n))
        x = dirs * radius[:, None]
        q = rng.standard_normal((16, d)) * 0.05
        x, q = x + offset, q + offset
    else:
        along = np.where(sampled, 3 + 5 * rng.random(n), rng.random(n))
        x = along[:, None] * u + dirs
        q = u + 0.05 * rng.standard_normal((16, d))
    x, q = x.astype(np.float32), q.astype(np.float32)
    index = annx.index_factory(d, "IVF1,PQ16x4fs", metric=metric, by_residual=by_residual)
    index.train(x)
    index.add(x)
    everyone = np.arange(n)
    for k in (40, 100, 200):
        D, I = index.search(q, k, nprobe=1)
        Df, If = index.search(q, k, nprobe=1, filter=everyone)
        assert (I >= 0).all()
        assert sampled[I].mean() > 0.9  # the codes rank the sampled (best) rows first
        np.testing.assert_array_equal(I, If)
        np.testing.assert_array_equal(D, Df)
        for i in (0, 9):
            D1, I1 = index.search(q[i : i + 1], k, nprobe=1)
            np.testing.assert_array_equal(I1[0], I[i])
            np.testing.assert_array_equal(D1[0], D[i])


# ------------------------------------------------------------------------------ errors
def test_invalid_arguments():
    bad = pytest.raises(annx.InvalidArgumentError)
    codes = np.zeros((5, 4), np.uint8)
    packed = _core.pq4_pack(codes)
    lut16 = np.zeros((4, 16), np.float32)
    with bad:
        _core.pq4_pack(np.full((2, 3), 16, np.uint8))  # not a 4-bit value
    with bad:
        _core.pq4_pack(codes.astype(np.int32))
    with bad:
        _core.pq4_pack(np.zeros(8, np.uint8))  # 1-D
    with bad:
        _core.pq4_unpack(packed, 33, 4)  # one block holds 32
    with bad:
        _core.pq4_unpack(packed, 5, 5)  # 64 bytes are no whole number of 96-byte blocks
    with bad:
        _core.pq4_unpack(packed[:-1], 5, 4)
    with bad:
        _core.pq4_get_code(packed, 4, 32)
    with bad:
        _core.pq4_set_code(packed, 4, 0, np.array([1, 2, 3, 99], np.uint8))
    with bad:
        _core.pq4_set_code(packed, 4, 0, np.array([1, 2, 3], np.uint8))
    readonly = packed.copy()
    readonly.flags.writeable = False
    with bad:
        _core.pq4_set_code(readonly, 4, 0, np.zeros(4, np.uint8))
    with bad:
        _core.kernel_pq4_accumulate(packed, 2, 2, np.zeros(64, np.uint8))  # blocks too short
    with bad:
        _core.kernel_pq4_accumulate(packed, 1, 2, np.zeros(32, np.uint8))  # lut too short
    with bad:
        _core.kernel_pq4_accumulate(packed, 1, 0, np.zeros(0, np.uint8))
    with bad:
        _core.kernel_pq4_accumulate_nq(packed, 2, 2, np.zeros((2, 64), np.uint8))  # blocks short
    with bad:
        _core.kernel_pq4_accumulate_nq(packed, 1, 2, np.zeros((2, 32), np.uint8))  # luts narrow
    with bad:
        _core.kernel_pq4_accumulate_nq(packed, 1, 2, np.zeros(64, np.uint8))  # luts 1-D
    with bad:
        _core.kernel_pq4_accumulate_nq(packed, 1, 2, np.zeros((2, 64), np.int8))
    with bad:
        _core.kernel_pq4_accumulate_nq(packed, 1, 2, np.zeros((64, 2), np.uint8).T)  # not C order
    with bad:
        _core.kernel_pq4_accumulate_nq(packed, 1, 0, np.zeros((2, 0), np.uint8))
    with bad:
        _core.kernel_select_le_u16(np.zeros(4, np.uint16), 65536)
    with bad:
        _core.kernel_select_le_u16(np.zeros(4, np.int16), 3)
    with bad:
        _core.kernel_pq8_adc_blocks(codes, np.zeros((4, 255), np.float32))
    with bad:
        _core.kernel_pq8_adc_blocks(codes, np.zeros((3, 256), np.float32))
    with bad:
        _core.kernel_pq8_adc_blocks(codes, np.zeros((4, 256), np.float64))
    with bad:
        _core.pq4_quantize_lut(np.zeros((4, 15), np.float32))
    with bad:
        _core.pq4_quantize_lut(lut16.astype(np.float64))
    lut16[2, 3] = np.nan
    with bad:
        _core.pq4_quantize_lut(lut16)
    lut16[2, 3] = np.inf
    with bad:
        _core.pq4_quantize_lut(lut16)
