"""Binary codecs BIN / BEBR<L>: residual binarization, SDC and ADC scores, structures."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import brute_force, make_clustered
from hypothesis import given, settings
from hypothesis import strategies as st

import annx


def ref_binarize(x: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy residual sign binarization (float32 scales), as the design specifies."""
    r = x.astype(np.float64).copy()
    alphas, signs = [], []
    for _ in range(levels):
        a = np.float32(np.abs(r).sum() / len(r))
        s = np.where(r >= 0, 1.0, -1.0)
        r -= float(a) * s
        alphas.append(a)
        signs.append(s)
    return np.array(alphas), np.array(signs)


def mixture(n: int, d: int, seed: int, spread: float = 0.5) -> np.ndarray:
    """50 Gaussian clusters around the origin (fixed centres), float32."""
    centres = np.random.default_rng(99).standard_normal((50, d))
    rng = np.random.default_rng(seed)
    return (centres[rng.integers(0, 50, n)] + spread * rng.standard_normal((n, d))).astype(
        np.float32
    )


def codec(levels: int, adc: bool = False) -> str:
    name = "BIN" if levels == 1 else f"BEBR{levels}"
    return name + ("_adc" if adc else "")


def adc_query(q: np.ndarray, bits: int = 6) -> np.ndarray:
    """The query an ADC scan scores (float64): each row quantized uniformly to `bits`
    bits over its own [min, max], in the codec's float32 arithmetic."""
    q = q.astype(np.float32)
    top = np.float32(2**bits - 1)
    lo = q.min(1, keepdims=True)
    step = (q.max(1, keepdims=True) - lo) / top
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.where(step > 0, np.clip(np.rint((q - lo) / step), 0, top), 0).astype(np.float64)
    centre = (lo + step * np.float32(0.5 * top)).astype(np.float64)  # the constant level
    return centre + step.astype(np.float64) * (u - 0.5 * float(top))


def reconstructions(x: np.ndarray, levels: int) -> np.ndarray:
    idx = annx.index_factory(x.shape[1], "Flat," + codec(levels), metric="ip")
    idx.add(x)
    return idx.reconstruct(np.arange(len(x)))


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 200), levels=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_reconstruction_matches_reference(d, levels, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5, d)).astype(np.float32)
    rec = reconstructions(x, levels)
    for i in range(len(x)):
        a, s = ref_binarize(x[i], levels)
        np.testing.assert_allclose(rec[i], (a[:, None] * s).sum(0), rtol=1e-5, atol=1e-6)


def test_error_decreases_with_each_level():
    x = make_clustered(200, 96, seed=3)
    errs = [np.linalg.norm(x - reconstructions(x, L), axis=1) for L in range(1, 9)]
    for a, b in zip(errs, errs[1:], strict=False):
        assert (b <= a + 1e-6).all()
    assert errs[-1].mean() < 0.25 * errs[0].mean()  # measured: 0.19 after 8 levels
    assert all(b.mean() < a.mean() for a, b in zip(errs, errs[1:], strict=False))


@pytest.mark.parametrize("metric", ["ip", "l2", "cos"])
@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("adc", [False, True])
def test_scores_equal_reconstruction_arithmetic(metric, levels, adc):
    """SDC: exact inner products of both reconstructions; ADC: the 6-bit query vs x^
    (norms of the float query)."""
    x = make_clustered(300, 70, seed=4)
    q = make_clustered(20, 70, seed=5)
    if metric == "cos":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    xr = reconstructions(x, levels).astype(np.float64)
    qr = q.astype(np.float64) if adc else reconstructions(q, levels).astype(np.float64)
    dots = (adc_query(q) if adc else qr) @ xr.T
    if metric == "ip":
        want = dots
    elif metric == "l2":
        want = (qr**2).sum(1)[:, None] + (xr**2).sum(1)[None, :] - 2 * dots
    else:
        want = dots / np.linalg.norm(qr, axis=1)[:, None] / np.linalg.norm(xr, axis=1)[None, :]
    idx = annx.index_factory(70, "Flat," + codec(levels, adc), metric=metric)
    idx.add(x)
    D, I = idx.search(q, 10)
    got = np.take_along_axis(want, I, axis=1)
    np.testing.assert_allclose(D, got, rtol=1e-4, atol=1e-4)
    order = np.argsort(want if metric == "l2" else -want, axis=1, kind="stable")[:, :10]
    best = np.take_along_axis(want, order, axis=1)
    np.testing.assert_allclose(D, best, rtol=1e-4, atol=1e-4)  # the true top-10 scores


@pytest.mark.parametrize("d", [1, 37, 63, 64, 65, 130, 517])
def test_one_bit_is_scaled_hamming(d):
    """Odd bit lengths: pad bits never count."""
    rng = np.random.default_rng(6)
    x = rng.choice([-1.0, 1.0], size=(400, d)).astype(np.float32)  # |x_i| = 1: alpha = 1
    q = rng.choice([-1.0, 1.0], size=(15, d)).astype(np.float32)
    idx = annx.index_factory(d, "Flat,BIN", metric="ip")
    idx.add(x)
    D, I = idx.search(q, 400)
    assert (I >= 0).all()
    ham = ((q[:, None, :] > 0) != (x[None, :, :] > 0)).sum(2)
    np.testing.assert_allclose(D, np.take_along_axis(d - 2 * ham, I, axis=1))
    assert (np.diff(np.take_along_axis(ham, I, axis=1), axis=1) >= 0).all()  # Hamming order


def test_every_isa_gives_identical_results():
    x = make_clustered(500, 100, seed=7)
    q = make_clustered(20, 100, seed=8)
    before = annx.get_isa()
    try:
        results = {}
        for isa in annx.available_isas():
            annx.set_isa(isa)
            for spec in ("Flat,BEBR3", "Flat,BEBR2_adc"):
                idx = annx.index_factory(100, spec, metric="l2")
                idx.add(x)
                results.setdefault(spec, []).append(idx.search(q, 10))
    finally:
        annx.set_isa(before)
    for runs in results.values():
        for D, I in runs[1:]:
            np.testing.assert_array_equal(I, runs[0][1])
            np.testing.assert_allclose(D, runs[0][0], rtol=1e-6)


def test_recall_grows_with_levels():
    x = make_clustered(3000, 64, seed=9)
    q = make_clustered(100, 64, seed=10)
    _, gt = brute_force(x, q, 10, "cos")
    recalls = []
    for L in (1, 2, 4):
        idx = annx.index_factory(64, "Flat," + codec(L), metric="cos")
        idx.add(x)
        _, I = idx.search(q, 10)
        recalls.append(np.mean([len(set(gt[i]) & set(I[i])) / 10 for i in range(len(q))]))
    assert recalls[0] < recalls[1] < recalls[2], recalls


@pytest.mark.parametrize("metric", ["l2", "ip", "cos"])
def test_adc_keeps_float_query_recall(metric):
    """ADC quantizes the query to 6 bits per dimension: its recall@10 must stay within a
    point of scoring the float query against the same codes (x^), and above SDC's, on
    offset, anisotropic data (per-dimension scales spanning 30x)."""
    rng = np.random.default_rng(21)
    scales = np.geomspace(0.2, 6.0, 48)
    x = (make_clustered(4000, 48, seed=22) * scales + 2.0).astype(np.float32)
    q = (make_clustered(200, 48, seed=23) * scales + 2.0).astype(np.float32)
    q += 0.1 * rng.standard_normal(q.shape).astype(np.float32)
    _, gt = brute_force(x, q, 10, metric)

    def recall(ids: np.ndarray) -> float:
        return float(np.mean([len(set(gt[i]) & set(ids[i])) / 10 for i in range(len(q))]))

    for L in (1, 2, 4):
        want = _sdc_reference(q, x, L, metric)  # the symmetric scores
        xr = reconstructions(x, L).astype(np.float64)
        qf = q.astype(np.float64)
        if metric == "cos":
            qf = qf / np.linalg.norm(qf, axis=1, keepdims=True)
        dots = qf @ xr.T
        if metric == "l2":
            float_score = (xr**2).sum(1)[None, :] - 2 * dots
        elif metric == "cos":
            float_score = -dots / np.linalg.norm(xr, axis=1)[None, :]
        else:
            float_score = -dots
        float_ids = np.argsort(float_score, axis=1, kind="stable")[:, :10]
        sdc_ids = np.argsort(want if metric == "l2" else -want, axis=1, kind="stable")[:, :10]
        idx = annx.index_factory(48, "Flat," + codec(L, adc=True), metric=metric)
        idx.add(x)
        _, I = idx.search(q, 10)
        r_adc, r_float, r_sdc = recall(I), recall(float_ids), recall(sdc_ids)
        assert r_adc >= r_float - 0.01, (L, r_adc, r_float)
        assert r_adc > r_sdc, (L, r_adc, r_sdc)


@pytest.mark.parametrize(
    "spec, params",
    [
        ("HNSW32,BEBR2,Refine(F32)", {"rerank": 100, "ef_search": 100}),
        ("Flat,BIN,Refine(F32)", {"rerank": 200}),
        ("Flat,BEBR4,Refine(F16)", {"rerank": 50}),
        ("HNSW16,BIN,Refine(F16)", {"rerank": 300, "ef_search": 300}),
        ("IVF32,BEBR4,Refine(F32)", {"rerank": 50, "nprobe": 8}),
        ("IVF32,BEBR2_adc,Refine(F32)", {"rerank": 50, "nprobe": 8}),
    ],
)
@pytest.mark.parametrize("metric", ["l2", "cos", "ip"])
def test_structures_recall_floor(spec, params, metric):
    # Sign codes need many dimensions around the origin, as real embeddings have (annx
    # does not centre yet; on tight low-dimensional clusters far from the origin, such
    # as make_clustered's, they lose most of the ranking): a Gaussian mixture in 128-d.
    x, q = mixture(4000, 128, seed=11), mixture(100, 128, seed=12)
    _, gt = brute_force(x, q, 10, metric)
    idx = annx.index_factory(128, spec, metric=metric)
    if not idx.is_trained:
        idx.train(x)
    idx.add(x, threads=1)  # a seeded one-thread build is reproducible: a fixed recall
    _, I = idx.search(q, 10, **params)
    recall = np.mean([len(set(gt[i]) & set(I[i])) / 10 for i in range(len(q))])
    assert recall >= 0.95, recall


def test_persistence_and_removal(tmp_path):
    x = make_clustered(1000, 40, seed=13)
    q = make_clustered(20, 40, seed=14)
    for spec in (
        "Flat,BEBR3",
        "Flat,BEBR2,Refine(F32)",
        "HNSW16,BEBR2,Refine(F32)",
        "IVF8,BIN_adc,Refine(F16)",
    ):
        idx = annx.index_factory(40, spec, metric="l2")
        if not idx.is_trained:
            idx.train(x)
        idx.add(x)
        idx.remove(np.arange(0, 100))
        want = idx.search(q, 5)
        path = tmp_path / "b.annx"
        idx.save(path)
        for loaded in (
            annx.load(path),
            annx.load(path, mmap=True),
            annx.from_bytes(idx.to_bytes()),
        ):
            assert loaded.spec == spec
            got = loaded.search(q, 5)
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_allclose(got[0], want[0])
        raw = path.read_bytes()
        with pytest.raises(annx.FormatError):
            annx.from_bytes(raw[: len(raw) // 2])


def test_memory_and_specs():
    idx = annx.index_factory(384, "Flat,BIN")
    # 48 bytes of bits + 8 of scale and norm + 8-byte id
    assert idx.bytes_per_vector == 64
    assert annx.index_factory(384, "Flat,BEBR4").bytes_per_vector == 24 + 4 * 48 + 8
    for bad in (
        "Flat,BEBR1",
        "Flat,BEBR9",
        "Flat,BIN2",
        "Flat,bin",
        "HNSW32,Refine(BIN)",
        "Flat,F32,Refine(F32)",
        "Flat,F16,Refine(F16)",
        "Flat,BIN,Refine(F32),x",
    ):
        with pytest.raises(annx.InvalidArgumentError):
            annx.index_factory(64, bad)
    with pytest.raises(annx.InvalidArgumentError):
        annx.index_factory(64, "LeanVec32,Flat,Refine(BIN)")
    with pytest.raises(annx.InvalidArgumentError, match="is a codec"):
        annx.index_factory(64, "BIN")


# ---- Batched scans (KernelTable::bebr_sdc_tile) ---------------------------------


def _sdc_reference(
    q: np.ndarray, x: np.ndarray, levels: int, metric: str, adc: bool = False
) -> np.ndarray:
    """float64 scores from both reconstructions (SDC) or from the 6-bit query and the
    float query's norm (ADC): what the kernel returns, unnegated."""
    qr = (q if adc else reconstructions(q, levels)).astype(np.float64)
    xr = reconstructions(x, levels).astype(np.float64)
    dots = (adc_query(q) if adc else qr) @ xr.T
    qn, xn = (qr**2).sum(1)[:, None], (xr**2).sum(1)[None, :]
    if metric == "ip":
        return dots
    if metric == "l2":
        return qn + xn - 2 * dots
    den = np.sqrt(qn * xn)
    return np.divide(dots, den, out=np.zeros_like(dots), where=den > 0)


@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(1, 300),
    levels=st.sampled_from([1, 2, 3, 4, 5, 8]),
    metric=st.sampled_from(["ip", "l2", "cosine"]),
    nq=st.integers(1, 9),
    n=st.integers(1, 40),
    tile=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    offset=st.sampled_from([0.0, 3.0]),
    adc=st.booleans(),
)
def test_tile_kernel_bit_identical_on_every_isa(d, levels, metric, nq, n, tile, seed, offset, adc):
    """The batched kernel equals the one-query kernel bit for bit on every ISA level (and
    its negated form, the distances the Flat scan selects on, equals the negation), and
    both match the float64 reference of the symmetric or asymmetric score."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) + offset).astype(np.float32)
    q = (rng.standard_normal((nq, d)) + offset).astype(np.float32)
    if seed % 5 == 0:
        x[: n // 2] = x[0]  # duplicates
    name = codec(levels, adc)
    want = _sdc_reference(q, x, levels, metric if metric != "cosine" else "cos", adc)
    before = annx.get_isa()
    try:
        for isa in annx.available_isas():
            annx.set_isa(isa)
            one = annx._core.kernel_bebr_sdc(name, metric, q, x, False)
            tiled = annx._core.kernel_bebr_sdc(name, metric, q, x, True, tile=tile)
            np.testing.assert_array_equal(tiled, one, err_msg=isa)
            negated = annx._core.kernel_bebr_sdc(name, metric, q, x, True, tile=tile, negate=True)
            np.testing.assert_array_equal(negated, -one, err_msg=isa)
            scale = 1.0 if metric == "cosine" else np.abs(want).max() + 1e-30
            np.testing.assert_allclose(tiled, want, rtol=2e-5, atol=2e-5 * scale, err_msg=isa)
    finally:
        annx.set_isa(before)


@pytest.mark.parametrize(
    "spec,params",
    [
        ("Flat,BIN", {}),
        ("Flat,BEBR2", {}),
        ("Flat,BEBR3", {}),
        ("Flat,BEBR4", {}),
        ("Flat,BEBR2,Refine(F32)", {"rerank": 30}),
        ("Flat,BIN,Refine(F32)", {"rerank": 40}),
        ("Flat,BIN_adc", {}),
        ("Flat,BEBR2_adc", {}),
        ("Flat,BEBR3_adc", {}),
        ("Flat,BEBR4_adc,Refine(F32)", {"rerank": 30}),
    ],
)
@pytest.mark.parametrize("metric", ["l2", "cos"])
def test_batched_search_equals_one_query_search(spec, params, metric):
    """Flat over binary codes answers a batch (the tiled scan) exactly as it
    answers each query alone (the one-query scan): d not a multiple of 64, k edge cases,
    duplicated rows (ties broken by id)."""
    x = mixture(700, 97, seed=11)
    x[100:140] = x[5]  # ties, in every block of 256 rows
    x[300:340] = x[5]
    x[600:640] = x[5]
    q = mixture(23, 97, seed=12)
    q[0] = x[5]  # the ties are its nearest rows
    idx = annx.index_factory(97, spec, metric=metric)
    idx.add(x)
    for k in (1, 10, 800):
        D, I = idx.search(q, k, threads=2, **params)
        for i in (0, 7, 22):
            d1, i1 = idx.search(q[i : i + 1], k, threads=1, **params)
            np.testing.assert_array_equal(I[i], i1[0])
            np.testing.assert_array_equal(D[i], d1[0])
        if k == 800:
            assert (I[:, :700] >= 0).all() and (I[:, 700:] == -1).all()


def test_batched_binary_search_with_filter_and_removal():
    """Filters take the one-query path; removals keep the batched path's ids right."""
    x = mixture(600, 64, seed=13)
    q = mixture(6, 64, seed=14)
    idx = annx.index_factory(64, "Flat,BEBR2", metric="l2")
    ids = idx.add(x)
    idx.remove(ids[:50])
    D, I = idx.search(q, 5)
    assert not np.isin(I, ids[:50]).any()
    for i in range(len(q)):
        np.testing.assert_array_equal(idx.search(q[i : i + 1], 5)[1][0], I[i])
    keep = ids[100:200]
    Df, If = idx.search(q, 5, filter=keep)
    assert np.isin(If, keep).all()


@pytest.mark.parametrize("d", [64, 1985, 2100])
def test_sdc_tile_kernel_long_codes(d):
    """Past 31 words per plane (the AVX2 / NEON byte counters are flushed in chunks)."""
    rng = np.random.default_rng(d)
    x = rng.standard_normal((11, d)).astype(np.float32)
    q = rng.standard_normal((3, d)).astype(np.float32)
    before = annx.get_isa()
    try:
        for isa in annx.available_isas():
            annx.set_isa(isa)
            for name in ("BIN", "BEBR2", "BEBR3", "BIN_adc", "BEBR4_adc"):
                one = annx._core.kernel_bebr_sdc(name, "l2", q, x, False)
                tiled = annx._core.kernel_bebr_sdc(name, "l2", q, x, True, tile=2)
                np.testing.assert_array_equal(tiled, one, err_msg=f"{isa} {name}")
    finally:
        annx.set_isa(before)
