"""Correctness of IVF and PQ indexes ("IVF<nlist>[_HNSW<M>],codec[,Refine(...)]", "PQ<M>[x4fs]").

Exact properties are checked where they exist (algorithms.md §3-4): IVF-Flat with
nprobe = nlist equals exact search; ADC distances equal the exact distances to the
decoded vectors; fast-scan distances stay within the LUT quantisation bound of them;
every vector sits in exactly one list, the one of its nearest centroid. Approximate
quality is checked with recall floors on seeded data (calibrated with a margin).
"""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    METRICS,
    assert_knn,
    brute_force,
    brute_range,
    make_clustered,
    make_data,
    normalised,
    pad_value,
    recall,
    unusual_data,
)
from conftest import scores as exact_scores
from container_format import build_container, section_bytes
from hypothesis import given
from hypothesis import strategies as st
from thread_helpers import run_threads

import annx

PQ_CODECS = ("PQ8", "PQ8x4fs")


def build(
    spec: str, metric: str, x: np.ndarray, *, train: np.ndarray | None = None, **kw
) -> annx.Index:
    index = annx.index_factory(x.shape[1], spec, metric, **kw)
    index.train(x if train is None else train)
    index.add(x)
    return index


# ------------------------------------------------------------------------ spec grammar
@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("IVF16", "IVF16,Flat"),
        ("IVF16,Flat", "IVF16,Flat"),
        ("IVF16,F32", "IVF16,Flat"),
        (" IVF16 , SQ8 ", "IVF16,SQ8"),
        ("IVF16,F16,Refine(F32)", "IVF16,F16,Refine(F32)"),
        ("IVF16,PQ8", "IVF16,PQ8"),
        ("IVF16,PQ8x8", "IVF16,PQ8"),
        ("IVF16,PQ8x4fs,Refine(Flat)", "IVF16,PQ8x4fs,Refine(F32)"),
        ("IVF16_HNSW8,PQ4,Refine(F16)", "IVF16_HNSW8,PQ4,Refine(F16)"),
        ("PQ4", "PQ4"),
        ("PQ5x4fs,Refine(F16)", "PQ5x4fs,Refine(F16)"),
    ],
)
def test_spec_canonical(spec: str, canonical: str) -> None:
    index = annx.index_factory(16, spec, "l2")
    assert index.spec == canonical
    assert annx.index_factory(16, index.spec, "l2").spec == canonical


@pytest.mark.parametrize(
    ("spec", "token"),
    [
        ("IVF0,Flat", "IVF0"),
        ("IVF016,Flat", "IVF016"),
        ("IVFx,Flat", "IVFx"),
        ("IVF16_HNSW,Flat", "IVF16_HNSW"),
        ("IVF16_HNSW1,Flat", "HNSW M"),
        ("IVF16,PQ", "PQ"),
        ("IVF16,PQ0", "PQ0"),
        ("IVF16,PQ8x5", "PQ8x5"),
        ("IVF16,PQ32", "PQ32"),  # more sub-quantizers than dimensions (d = 16)
        ("IVF16,Flat,Refine(F32)", "Refine(F32)"),
        ("IVF16,F16,Refine(F16)", "Refine(F16)"),
        ("IVF16,PQ8,Refine(SQ8)", "Refine(SQ8)"),
        ("IVF16,PQ8,Refine(F32),F16", "F16"),
        ("PQ8,F16", "F16"),
        ("PQ0", "PQ0"),
        ("PQ4x4", "PQ4x4"),
    ],
)
def test_bad_specs(spec: str, token: str) -> None:
    with pytest.raises(
        annx.InvalidArgumentError, match=token.replace("(", r"\(").replace(")", r"\)")
    ):
        annx.index_factory(16, spec, "l2")


def test_factory_options() -> None:
    assert annx.index_factory(8, "IVF4,PQ4", "l2", by_residual=False)._impl.by_residual is False
    with pytest.raises(annx.InvalidArgumentError, match="by_residual"):
        annx.index_factory(8, "PQ4", "l2", by_residual=False)
    with pytest.raises(annx.InvalidArgumentError, match="by_residual"):
        annx.index_factory(8, "IVF4,Flat", "l2", by_residual=True)
    with pytest.raises(annx.InvalidArgumentError, match="ef_construction"):
        annx.index_factory(8, "IVF4,Flat", "l2", ef_construction=10)
    with pytest.raises(annx.InvalidArgumentError, match="by_residual"):
        annx.index_factory(8, "IVF4,PQ4", "l2", by_residual=1)


# ------------------------------------------------------------------------- lifecycle
@pytest.mark.parametrize("spec", ["IVF8,Flat", "IVF8,PQ4", "PQ4x4fs", "IVF8,SQ8"])
def test_train_add_search_lifecycle(spec: str) -> None:
    x = make_data(600, 8, seed=1)
    index = annx.index_factory(8, spec, "l2")
    assert not index.is_trained
    with pytest.raises(annx.NotTrainedError, match="train"):
        index.add(x)
    with pytest.raises(annx.NotTrainedError, match="train"):
        index.search(x[:2], 3)
    index.train(x)
    assert index.is_trained and index.ntotal == 0
    D, I = index.search(x[:2], 3)  # empty index: padding, no error
    assert (I == -1).all() and (D == np.inf).all()
    index.add(x)
    assert index.ntotal == 600
    with pytest.raises(annx.InvalidArgumentError, match="already holds vectors"):
        index.train(x)


def test_too_few_training_points() -> None:
    x = make_data(10, 8, seed=2)
    with (
        pytest.warns(RuntimeWarning, match="fewer than 39"),
        pytest.raises(annx.InvalidArgumentError, match="at least 16 vectors"),
    ):
        annx.index_factory(8, "IVF16,Flat", "l2").train(x)
    with pytest.raises(annx.InvalidArgumentError, match="at least 256 vectors"):
        annx.index_factory(8, "PQ4", "l2").train(make_data(100, 8))
    with pytest.raises(annx.InvalidArgumentError, match="at least 16 vectors"):
        annx.index_factory(8, "PQ4x4fs", "l2").train(x)
    # A failed train changes nothing: the index stays untrained and trains later.
    ivf = annx.index_factory(8, "IVF4,PQ4", "l2")
    with pytest.raises(annx.InvalidArgumentError, match="at least 256 vectors"):
        ivf.train(make_data(200, 8))
    assert not ivf.is_trained and len(ivf.centroids) == 0
    ivf.train(make_data(400, 8))
    assert ivf.is_trained
    with pytest.warns(RuntimeWarning, match="fewer than 39"):
        annx.index_factory(8, "IVF16,Flat", "l2").train(make_data(100, 8))


def test_search_parameters_checked() -> None:
    x = make_data(500, 8, seed=3)
    ivf = build("IVF8,PQ4x4fs,Refine(F32)", "l2", x)
    ivf.search(x[:2], 3, nprobe=2, rerank=10)
    with pytest.raises(annx.InvalidArgumentError, match="ef_search"):
        ivf.search(x[:2], 3, ef_search=10)
    with pytest.raises(annx.InvalidArgumentError, match="nprobe"):
        ivf.search(x[:2], 3, nprobe=0)
    pq = build("PQ4", "l2", x)
    with pytest.raises(annx.InvalidArgumentError, match="nprobe"):
        pq.search(x[:2], 3, nprobe=4)
    with pytest.raises(annx.InvalidArgumentError, match="rerank"):
        pq.search(x[:2], 3, rerank=4)
    hnsw_coarse = build("IVF8_HNSW4,Flat", "l2", x)
    hnsw_coarse.search(x[:2], 3, nprobe=2, ef_search=16)


# ------------------------------------------------------------------- exact properties
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("quantizer", ["IVF16", "IVF16_HNSW8"])
def test_ivf_flat_full_probe_is_exact(metric: str, quantizer: str) -> None:
    x = make_clustered(2000, 24, seed=4)
    q = make_data(30, 24, seed=5)
    index = build(f"{quantizer},Flat", metric, x)
    D, I = index.search(q, 10, nprobe=16)
    assert_knn(D, I, x, q, 10, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_every_vector_in_its_nearest_list(metric: str) -> None:
    x = make_clustered(3000, 16, seed=6)
    index = build("IVF32,SQ8", metric, x)
    sizes = index.list_sizes()
    assert sizes.sum() == 3000 and len(sizes) == 32
    c = index.centroids.astype(np.float64)
    lists = index._impl.ivf_list_of(np.arange(3000))
    np.testing.assert_array_equal(np.bincount(lists, minlength=32), sizes)
    xs = normalised(x) if metric == "cos" else x
    if metric == "l2":
        ref = ((xs[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
        best = ref.min(1)
    else:
        ref = -(xs.astype(np.float64) @ c.T)
        best = ref.min(1)
        # Spherical k-means for inner products: unit-norm centroids.
        np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-5)
    got = ref[np.arange(3000), lists]
    np.testing.assert_allclose(got, best, rtol=1e-4, atol=1e-4)


def decoded_scores(index: annx.Index, q: np.ndarray, metric: str) -> np.ndarray:
    """Exact scores (annx convention) of q against every stored vector's decoded code."""
    ids = index.ids()
    xr = index.reconstruct(ids)
    return ids, exact_scores(xr, q, "ip" if metric == "cos" else metric)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("spec", ["PQ8", "IVF8,PQ8", "IVF8,PQ8,Refine(F16)"])
def test_adc_equals_exact_distance_to_decoded(metric: str, spec: str) -> None:
    x = make_clustered(2000, 16, seed=7)
    q = make_data(20, 16, seed=8)
    index = build(spec, metric, x)
    if "Refine" in spec:
        # rerank == k: the returned distances are the Refine codec's, not the codes'.
        return
    nprobe = {} if spec.startswith("PQ") else {"nprobe": 8}
    D, I = index.search(q, 2000, **nprobe)
    ids, s = decoded_scores(index, q if metric != "cos" else normalised(q), metric)
    pos = {int(v): j for j, v in enumerate(ids)}
    for r in range(len(q)):
        ref = s[r, [pos[int(i)] for i in I[r]]]
        np.testing.assert_allclose(D[r], ref, rtol=1e-4, atol=1e-3)
        # Ranked by those distances, and every vector returned once.
        assert len(set(I[r].tolist())) == 2000


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("M", [4, 5, 8])
def test_fastscan_within_lut_quantisation_bound(metric: str, M: int) -> None:
    """4-bit fast-scan distances (flat PQ) vs the exact distance to the decoded vector:
    at most M / (2a) apart, where a is the LUT quantisation scale."""
    d = 16
    x = make_clustered(3000, d, seed=9)
    q = make_data(10, d, seed=10)
    qs = normalised(q) if metric == "cos" else q
    index = build(f"PQ{M}x4fs", metric, x)
    cb = index._impl.ivf_pq_codebooks().reshape(M, 16, -1).astype(np.float64)
    dsub = cb.shape[2]
    D, I = index.search(q, 3000)
    ids, s = decoded_scores(index, qs, metric)
    pos = np.empty(ids.max() + 1, np.int64)
    pos[ids] = np.arange(len(ids))
    for r in range(len(q)):
        qp = np.zeros(M * dsub)
        qp[:d] = qs[r]
        sub = qp.reshape(M, 1, dsub)
        lut = ((sub - cb) ** 2).sum(-1) if metric == "l2" else -(sub * cb).sum(-1)
        _, a, _ = annx._core.pq4_quantize_lut(lut.astype(np.float32))
        bound = M / (2 * a) + 1e-4 * np.abs(lut).sum()
        ref = s[r, pos[I[r]]]
        assert np.abs(D[r] - ref).max() <= bound, (np.abs(D[r] - ref).max(), bound)


def test_lossless_pq_is_exact() -> None:
    """With at most 256 distinct sub-vectors per sub-space, 8-bit PQ codes are exact."""
    g = np.random.default_rng(11)
    atoms = g.standard_normal((4, 200, 2)).astype(np.float32)  # 4 sub-spaces of 2 dims
    pick = g.integers(0, 200, (3000, 4))
    x = np.concatenate([atoms[m, pick[:, m]] for m in range(4)], axis=1)
    q = make_data(20, 8, seed=12)
    index = build("PQ4", "l2", x)
    np.testing.assert_array_equal(index.reconstruct(np.arange(3000)), x)
    D, I = index.search(q, 10)
    assert_knn(D, I, x, q, 10, "l2")


@pytest.mark.parametrize("codec", ["PQ8", "PQ8x4fs"])
def test_full_probe_matches_flat_pq_scores(codec: str) -> None:
    """IVF with nprobe = nlist ranks by the same code distances as an exhaustive scan."""
    x = make_clustered(2000, 16, seed=13)
    q = make_data(15, 16, seed=14)
    index = build(f"IVF8,{codec}", "l2", x)
    D, I = index.search(q, 50, nprobe=8)
    ids, s = decoded_scores(index, q, "l2")
    order = np.argsort(s, axis=1, kind="stable")[:, :50]
    tol = 1e-3 if codec == "PQ8" else 0.5  # fast-scan: LUT quantisation
    for r in range(len(q)):
        kth = s[r, order[r, -1]]
        ref = s[r, np.searchsorted(ids, I[r])]
        assert (ref <= kth + tol).all()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("residual", [True, False])
def test_batched_fastscan_equals_one_query_at_a_time(metric: str, residual: bool) -> None:
    """Batches of >= 16 fast-scan queries scan each list once per group of queries
    (several queries per kernel pass, lists in list order); results must equal the
    one-query path exactly, with and without Refine and filters."""
    x = make_clustered(4000, 24, seed=41)
    q = make_data(40, 24, seed=42)
    allowed = np.arange(0, 4000, 3)
    for spec in ("IVF32,PQ12x4fs", "IVF32,PQ12x4fs,Refine(F32)"):
        index = build(spec, metric, x, by_residual=residual)
        kw = {"rerank": 25} if "Refine" in spec else {}
        for filt in (None, allowed):
            D, I = index.search(q, 10, nprobe=6, filter=filt, **kw)
            for r in range(len(q)):
                d1, i1 = index.search(q[r : r + 1], 10, nprobe=6, filter=filt, **kw)
                np.testing.assert_array_equal(i1[0], I[r])
                np.testing.assert_array_equal(d1[0], D[r])


@pytest.mark.parametrize(
    "spec", ["IVF16,Flat", "IVF16,SQ8", "IVF16,PQ32", "IVF16,PQ32,Refine(F32)"]
)
@pytest.mark.parametrize("metric", ["l2", "cos"])
def test_single_query_split_across_threads_is_identical(spec: str, metric: str) -> None:
    """With fewer queries than threads, a query with enough list work (here ~17k vectors
    of 128-d codes at nprobe 9, above the split threshold for these codecs) has its lists
    split across threads; the answer must be the one-thread answer."""
    x = make_clustered(30000, 128, seed=43)
    q = make_data(3, 128, seed=44)
    index = build(spec, metric, x)
    kw = {"rerank": 30} if "Refine" in spec else {}
    for filt in (None, np.arange(0, 30000, 5)):
        for nq in (1, 3):
            D1, I1 = index.search(q[:nq], 10, nprobe=9, threads=1, filter=filt, **kw)
            D4, I4 = index.search(q[:nq], 10, nprobe=9, threads=4, filter=filt, **kw)
            np.testing.assert_array_equal(I1, I4)
            np.testing.assert_array_equal(D1, D4)


# ------------------------------------------------------------------------ recall floors
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(
    ("codec", "nprobe", "floor"),
    [
        ("Flat", 8, 0.88),
        ("SQ8", 8, 0.85),
        ("F16", 8, 0.88),
        ("PQ16", 8, 0.55),
        ("PQ16,Refine(F32)", 8, 0.88),
        ("PQ16x4fs", 8, 0.35),
        ("PQ16x4fs,Refine(F32)", 8, 0.85),
        ("PQ16x4fs,Refine(F16)", 8, 0.85),
    ],
)
def test_recall_floor(metric: str, codec: str, nprobe: int, floor: float) -> None:
    if metric == "ip" and "PQ" in codec:
        # Raw inner products (MIPS) on unnormalised data: PQ codes of these vectors lose
        # more ranking information (measured 0.77 with Refine, 0.37 fast-scan alone).
        floor -= 0.12 if "Refine" in codec else 0.05
    x = make_clustered(5000, 32, seed=15, clusters=40)
    q = make_clustered(100, 32, seed=16, clusters=40)
    index = build(f"IVF32,{codec}", metric, x)
    kw = {"rerank": 50} if "Refine" in codec else {}
    _, I = index.search(q, 10, nprobe=nprobe, **kw)
    _, gt = brute_force(x, q, 10, metric)
    r = recall(I, gt)
    assert r >= floor, f"recall {r:.3f} < {floor}"
    # More probes never hurt much and all probes reach the codec's ceiling.
    _, I2 = index.search(q, 10, nprobe=32, **kw)
    assert recall(I2, gt) >= r - 0.02


@pytest.mark.parametrize("residual", [True, False])
def test_by_residual_both_work(residual: bool) -> None:
    x = make_clustered(4000, 32, seed=17)
    q = make_clustered(50, 32, seed=18)
    index = build("IVF16,PQ16", "l2", x, by_residual=residual)
    assert index._impl.by_residual is residual
    _, I = index.search(q, 10, nprobe=16)
    _, gt = brute_force(x, q, 10, "l2")
    assert recall(I, gt) >= 0.5


@pytest.mark.parametrize("metric", ["cos", "ip", "l2"])
def test_fastscan_auto_residual(metric: str) -> None:
    """IVF fast-scan without by_residual picks its encoding at training: residuals where
    they cut the sample's reconstruction error clearly (clustered data with l2 or cos),
    the vectors themselves where not (raw inner products: the spherical centroids are
    unit vectors, residuals to them barely differ from the vectors). Recall floors
    against float64 brute force on offset, scaled, anisotropic data; a saved copy keeps
    the encoding and answers identically; an explicit by_residual is kept as given."""
    g = np.random.default_rng(61)
    scale = np.exp(g.normal(0, 0.7, 128)).astype(np.float32)  # anisotropic
    x = make_clustered(2000, 128, seed=62) * scale + 5.0  # offset
    q = make_clustered(30, 128, seed=63) * scale + 5.0
    _, gt = brute_force(x, q, 10, metric)
    for asked in (None, metric == "ip"):
        kw = {} if asked is None else {"by_residual": asked}
        index = build("IVF16,PQ32x4fs,Refine(F32)", metric, x, **kw)
        chosen = index._impl.by_residual
        assert chosen is ({"ip": False}.get(metric, True) if asked is None else asked)
        D, I = index.search(q, 10, nprobe=8, rerank=100)
        r = recall(I, gt)
        assert r >= (0.80 if asked is False else 0.90), f"recall {r:.3f} ({asked})"
        copy = annx.from_bytes(index.to_bytes())
        assert copy._impl.by_residual is chosen
        D2, I2 = copy.search(q, 10, nprobe=8, rerank=100)
        np.testing.assert_array_equal(I, I2)
        np.testing.assert_array_equal(D, D2)
    # 8-bit PQ keeps faiss's residual default.
    assert annx.index_factory(128, "IVF16,PQ32", metric)._impl.by_residual is True


def test_fastscan_auto_residual_held_out() -> None:
    """The automatic encoding is chosen on training rows held out of the comparison's
    centroids, not on in-sample error. Isotropic data with 10 training points per list:
    k-means overfits (in-sample residuals hold ~0.77 of the vectors' energy, fresh
    vectors' residuals ~0.94), so in-sample error favoured residuals (the rule before
    held-out rows picked them here) but held-out rows do not: vectors are kept. Strongly
    clustered l2 data still keeps residuals. A file records the choice (not the gain)."""
    x = make_data(1280, 64, seed=81)
    index = annx.index_factory(64, "IVF128,PQ16x4fs", "l2")
    with pytest.warns(RuntimeWarning, match="fewer than 39 per list"):
        index.train(x)
    c = index._impl.ivf_centroids()

    def residual_share(y: np.ndarray) -> float:
        d2 = ((y[:, None, :] - c[None]) ** 2).sum(-1).min(1)
        return float(d2.mean() / (y**2).sum(1).mean())

    assert residual_share(x) < 0.8 < 0.9 < residual_share(make_data(500, 64, seed=82))
    assert index._impl.by_residual is False
    assert index._impl.auto_residual_gain < 0.1
    clustered = make_clustered(1280, 32, seed=83, clusters=32)
    index = build("IVF32,PQ16x4fs", "l2", clustered)
    assert index._impl.by_residual is True
    assert index._impl.auto_residual_gain > 0.5
    copy = annx.from_bytes(index.to_bytes())
    assert copy._impl.by_residual is True
    assert copy._impl.auto_residual_gain is None
    # An explicit encoding measures nothing.
    assert (
        build("IVF32,PQ16x4fs", "l2", clustered, by_residual=True)._impl.auto_residual_gain is None
    )


def test_default_rerank_is_four_k() -> None:
    x = make_clustered(3000, 16, seed=19)
    q = make_data(20, 16, seed=20)
    index = build("IVF8,PQ4x4fs,Refine(F32)", "l2", x)
    a = index.search(q, 5, nprobe=4)
    b = index.search(q, 5, nprobe=4, rerank=20)
    np.testing.assert_array_equal(a[1], b[1])
    # Refined distances are exact float32 distances.
    Dx = exact_scores(x, q, "l2")
    np.testing.assert_allclose(a[0], np.take_along_axis(Dx, a[1], 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [1, 7, 40])
def test_k_larger_than_probed_lists(k: int) -> None:
    x = make_clustered(200, 8, seed=21)
    with pytest.warns(RuntimeWarning, match="fewer than 39"):
        index = build("IVF16,Flat", "l2", x)
    D, I = index.search(x[:5], k, nprobe=1)
    for r in range(5):
        got = I[r][I[r] >= 0]
        assert len(set(got.tolist())) == len(got)
        assert (D[r][I[r] < 0] == np.inf).all()
    D, I = index.search(x[:5], 300, nprobe=16)
    assert (I[:, :200] >= 0).all() and (I[:, 200:] == -1).all()


def test_real_minilm_ivfpq(shared_data: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = shared_data / "minilm-100000-384-angular.hdf5"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with h5py.File(path, "r") as f:
        x = f["train"][:20000]
        q = f["test"][:100]
    _, gt = brute_force(x, q, 10, "cos")
    index = build("IVF128,PQ96x4fs,Refine(F32)", "cos", x)
    _, I = index.search(q, 10, nprobe=32, rerank=50)
    assert recall(I, gt) >= 0.87  # measured 0.899 (IVF128,Flat at nprobe 16: 0.891)
    flat = build("IVF128,Flat", "cos", x)
    _, I = flat.search(q, 10, nprobe=128)
    assert recall(I, gt) >= 0.999


# ---------------------------------------------------------------- hypothesis: shapes
@given(
    n=st.integers(0, 300),
    d=st.integers(1, 24),
    nlist=st.integers(1, 8),
    k=st.integers(1, 20),
    metric=st.sampled_from(METRICS),
    codec=st.sampled_from(["Flat", "PQ1x4fs", "PQ1"]),
    dtype=st.sampled_from([np.float32, np.float64, np.float16]),
    seed=st.integers(0, 10_000),
)
def test_shapes_property(
    n: int, d: int, nlist: int, k: int, metric: str, codec: str, dtype: type, seed: int
) -> None:
    train = make_data(max(nlist * 40, 300), d, seed=seed)
    x = make_data(n, d, seed=seed + 1)
    q = make_data(3, d, seed=seed + 2).astype(dtype)
    import warnings

    index = annx.index_factory(d, f"IVF{nlist},{codec}", metric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        index.train(train)
    index.add(x)
    D, I = index.search(q, k, nprobe=nlist)
    assert D.shape == I.shape == (3, k)
    if codec == "Flat":
        assert_knn(D, I, x, q.astype(np.float32), k, metric)
    else:
        valid = I >= 0
        assert (valid.sum(1) == min(n, k)).all()
        assert (D[~valid] == pad_value(metric)).all()
        for row in I:
            got = row[row >= 0]
            assert len(set(got.tolist())) == len(got) and (got < n).all()


# -------------------------------------------------------------------- remove and ids
@pytest.mark.parametrize("spec", ["IVF8,Flat", "IVF8,PQ4x4fs", "PQ8x4fs,Refine(F32)", "IVF8,PQ4"])
def test_remove_and_slot_reuse(spec: str) -> None:
    x = make_clustered(1000, 8, seed=22)
    q = make_data(10, 8, seed=23)
    index = build(spec, "l2", x)
    nprobe = {} if spec.startswith("PQ") else {"nprobe": 8}
    gone = np.arange(0, 1000, 3)
    assert index.remove(gone) == len(gone)
    assert index.ntotal == 1000 - len(gone) and index.list_sizes().sum() == index.ntotal
    D, I = index.search(q, 1000, **nprobe)
    assert not np.isin(I, gone).any()
    keep = np.setdiff1d(np.arange(1000), gone)
    assert set(I[0][I[0] >= 0].tolist()) == set(keep.tolist())
    # The codes of the survivors did not move to other ids: decoded vectors agree
    # with a fresh copy's decoding (fast-scan removal moves codes between blocks).
    fresh = build(spec, "l2", x)
    np.testing.assert_allclose(index.reconstruct(keep), fresh.reconstruct(keep), atol=1e-6)
    # Re-adding fills the holes; the ids come back searchable.
    index.add(x[gone], ids=gone + 5000)
    assert index.ntotal == 1000
    _, I = index.search(x[gone[:5]], 1, **nprobe)
    assert set(I[:, 0].tolist()) <= set((gone + 5000).tolist()) | set(keep.tolist())
    with pytest.raises(annx.InvalidArgumentError, match="5000"):
        index.add(x[:1], ids=[5000])
    with pytest.raises(annx.InvalidArgumentError):
        index.remove([0, 0])


@pytest.mark.parametrize("spec", ["IVF8,Flat", "IVF8,PQ8x4fs,Refine(F32)"])
def test_explicit_ids(spec: str) -> None:
    x = make_clustered(500, 16, seed=24)
    ids = np.random.default_rng(0).permutation(10**6)[:500].astype(np.int64)
    index = annx.index_factory(16, spec, "cos")
    index.train(x)
    index.add(x, ids=ids)
    _, I = index.search(x[:20], 1, nprobe=8, **({"rerank": 30} if "Refine" in spec else {}))
    np.testing.assert_array_equal(I[:, 0], ids[:20])
    assert index.next_id == ids.max() + 1


# ----------------------------------------------------------------------------- filters
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("spec", ["IVF16,Flat", "IVF16,PQ8x4fs,Refine(F32)", "PQ8"])
def test_filters(metric: str, spec: str) -> None:
    x = make_clustered(6000, 16, seed=25)
    q = make_data(10, 16, seed=26)
    index = build(spec, metric, x)
    nprobe = {} if spec.startswith("PQ") else {"nprobe": 2}
    rng = np.random.default_rng(1)
    for frac in (0.003, 0.1, 0.5):
        allowed = np.sort(rng.choice(6000, int(6000 * frac), replace=False))
        for filt in (allowed, np.isin(np.arange(6000), allowed)):
            D, I = index.search(q, 10, filter=filt, **nprobe)
            got = I[I >= 0]
            assert np.isin(got, allowed).all()
            # Never fewer than k results while the filter admits k vectors.
            assert ((I >= 0).sum(1) == min(10, len(allowed))).all()
        if spec == "IVF16,Flat" and frac < 0.01:
            # Small filters score exactly the admitted vectors.
            assert_knn(D, I, x[allowed], q, 10, metric, ids=allowed)


# ------------------------------------------------------------------------ range search
@pytest.mark.parametrize("metric", METRICS)
def test_range_search_full_probe_is_exact(metric: str) -> None:
    x = make_clustered(1500, 12, seed=27)
    q = make_data(8, 12, seed=28)
    index = build("IVF8,Flat", metric, x)
    s = exact_scores(x, q, metric)
    radius = float(np.quantile(s, 0.02 if metric == "l2" else 0.98))
    lims, D, I = index.range_search(q, radius, nprobe=8)
    ref = brute_range(x, q, radius, metric)
    for r in range(len(q)):
        got = I[lims[r] : lims[r + 1]]
        assert set(got.tolist()) ^ set(ref[r][1].tolist()) <= {
            int(i) for i in ref[r][1][np.isclose(ref[r][0], radius, rtol=1e-5)]
        }


def test_range_search_refine_is_exact_within_probed() -> None:
    """With Refine every vector of the probed lists is re-scored: all lists = exact."""
    x = make_clustered(3000, 16, seed=29)
    q = make_data(5, 16, seed=30)
    index = build("IVF8,PQ8x4fs,Refine(F32)", "l2", x)
    s = exact_scores(x, q, "l2")
    radius = float(np.quantile(s, 0.01))
    lims, D, I = index.range_search(q, radius, nprobe=8)
    ref = brute_range(x, q, radius, "l2")
    for r in range(len(q)):
        np.testing.assert_array_equal(np.sort(I[lims[r] : lims[r + 1]]), np.sort(ref[r][1]))
        np.testing.assert_allclose(D[lims[r] : lims[r + 1]], ref[r][0], rtol=1e-4, atol=1e-4)
    # Fewer probes: a subset, still exact distances.
    lims, D, I = index.range_search(q, radius, nprobe=2)
    for r in range(len(q)):
        got = I[lims[r] : lims[r + 1]]
        assert set(got.tolist()) <= set(ref[r][1].tolist())
    with pytest.raises(annx.InvalidArgumentError, match="rerank"):
        index.range_search(q, radius, rerank=5)


# ------------------------------------------------------------------------- persistence
@pytest.mark.parametrize(
    "spec",
    ["IVF8,Flat", "IVF8,SQ8", "IVF8,PQ4", "IVF8,PQ5x4fs,Refine(F16)", "PQ4x4fs", "IVF8_HNSW4,PQ4"],
)
def test_persistence_round_trip(tmp_path: Path, spec: str) -> None:
    x = make_clustered(800, 10, seed=31)
    q = make_data(6, 10, seed=32)
    index = build(spec, "cos", x)
    index.remove([1, 5, 700])
    kw = {} if spec.startswith("PQ") else {"nprobe": 3}
    D, I = index.search(q, 7, **kw)
    path = tmp_path / "i.annx"
    index.save(path)
    for loaded in (
        annx.load(path),
        annx.load(path, mmap=True),
        annx.from_bytes(index.to_bytes()),
        pickle.loads(pickle.dumps(index)),
    ):
        assert loaded.spec == index.spec and loaded.ntotal == 797
        D2, I2 = loaded.search(q, 7, **kw)
        np.testing.assert_array_equal(I, I2)
        np.testing.assert_array_equal(D, D2)
        assert loaded.to_bytes() == index.to_bytes()
        # A loaded copy reuses holes like the original.
        loaded.add(x[:2], ids=[9001, 9002])
    info = annx.read_info(path)
    assert info["spec"] == spec and info["structure"] == "ivf"


def _replace(data: bytes, **new: bytes) -> bytes:
    return build_container([(t, new.get(t, b)) for t, b in section_bytes(data)])


def test_corrupt_files_raise_format_error(tmp_path: Path) -> None:
    x = make_clustered(300, 8, seed=33)
    index = build("IVF4,PQ4x4fs,Refine(F32)", "l2", x)
    index.remove([2, 3])
    data = index.to_bytes()
    secs = dict(section_bytes(data))
    sizes = np.frombuffer(secs["IVFSIZES"], np.uint64).copy()
    slots = np.frombuffer(secs["IVFSLOTS"], np.uint32).copy()
    bad_sizes = sizes.copy()
    bad_sizes[0] += 1
    dup = slots.copy()
    dup[1] = dup[0]
    oob = slots.copy()
    oob[0] = 10**6
    hole = slots.copy()
    hole[0] = 2  # a removed slot listed again
    cases = {
        "sizes": _replace(data, IVFSIZES=bad_sizes.tobytes()),
        "dup slot": _replace(data, IVFSLOTS=dup.tobytes()),
        "oob slot": _replace(data, IVFSLOTS=oob.tobytes()),
        "hole listed": _replace(data, IVFSLOTS=hole.tobytes()),
        "short codes": _replace(data, IVFCODES=secs["IVFCODES"][:-1]),
        "nan centroid": _replace(
            data, IVFCENT=np.full(len(secs["IVFCENT"]) // 4, np.nan, np.float32).tobytes()
        ),
        "short codebook": _replace(data, PQCB=secs["PQCB"][:-4]),
        "short refine": _replace(data, REFINE=secs["REFINE"][:-4]),
    }
    for name, bad in cases.items():
        with pytest.raises(annx.FormatError):
            annx.from_bytes(bad)
            pytest.fail(f"{name}: accepted")
    for n in range(0, len(data), max(1, len(data) // 40)):
        with pytest.raises(annx.FormatError):
            annx.from_bytes(data[:n])
    path = tmp_path / "t.annx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(annx.FormatError):
        annx.load(path, mmap=True)


# ------------------------------------------------------------------------- concurrency
@pytest.mark.parametrize("spec", ["IVF16,PQ8x4fs,Refine(F32)", "IVF16,Flat"])
def test_concurrent_search_and_mutations(spec: str) -> None:
    x = make_clustered(4000, 16, seed=34)
    index = build(spec, "l2", x[:2000])
    q = make_data(20, 16, seed=35)
    stop = threading.Event()

    def searcher() -> None:
        while not stop.is_set():
            D, I = index.search(q, 10, nprobe=4)
            got = I[I >= 0]
            assert (got < 4000).all()
            for row in I:
                r = row[row >= 0]
                assert len(set(r.tolist())) == len(r)

    def writer() -> None:
        try:
            for b in range(2000, 4000, 250):
                index.add(x[b : b + 250], ids=np.arange(b, b + 250))
                index.remove(np.arange(b - 2000, b - 1900))
        finally:
            stop.set()

    run_threads([searcher, searcher, writer])
    assert index.ntotal == 4000 - 8 * 100


# Four lists of ~400 rows: long enough for the narrow codecs to take the grouped scan.
@pytest.mark.parametrize("spec", ["IVF4,Flat", "IVF4,F16", "IVF4,SQ8", "IVF4,SQ8,Refine(F32)"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["offset", "anisotropic", "duplicated"])
def test_float_grouped_batch_equals_one_query_scans(
    spec: str, metric: str, kind: str, tmp_path
) -> None:
    """Batches of IVF over float-like codes are scanned list by list for the queries
    probing each list (dot tiles, candidates re-scored and proven): the answers are those
    of one query at a time, on data far from the origin, anisotropic or duplicated, after
    removals, after adds of larger rows than an earlier batch saw (the cached norm bound)
    and after a save / load. With every list probed they are the exact answers."""
    d, k, nprobe = 37, 10, 2
    x = unusual_data(kind, 1600, d, seed=70)
    q = unusual_data(kind, 40, d, seed=71) if kind != "duplicated" else x[::40] + 0.01
    index = annx.index_factory(d, spec, metric)
    index.train(x)
    index.add(x[:1300])
    index.remove(np.arange(0, 1300, 9))
    index.search(q, k, nprobe=nprobe)  # computes the cached bound on these rows
    growth = np.float32(1.0 if kind == "offset" else 30.0 if "F16" in spec else 1000.0)
    index.add(x[1300:] * growth)
    path = str(tmp_path / "ivf.annx")
    index.save(path)
    loaded = annx.load(path)
    # One thread: the whole batch is one chunk, so each list has a group of queries.
    for candidate, threads in ((index, 1), (loaded, None)):
        D, I = candidate.search(q, k, nprobe=nprobe, threads=threads)
        for r in range(len(q)):
            D1, I1 = candidate.search(q[r : r + 1], k, nprobe=nprobe)
            np.testing.assert_array_equal(I1[0], I[r], err_msg=f"{spec} {metric} query {r}")
            np.testing.assert_allclose(D1[0], D[r], rtol=1e-6, atol=1e-6)
    if spec == "IVF4,Flat":
        keep = np.setdiff1d(np.arange(1300), np.arange(0, 1300, 9))
        rows = np.concatenate([x[keep], x[1300:] * growth])
        ids = np.concatenate([keep, np.arange(1300, 1600)])
        D, I = index.search(q, k, nprobe=4)
        if metric == "cos":
            assert_knn(D, I, normalised(rows), normalised(q), k, "ip", ids=ids)
        else:
            assert_knn(D, I, rows, q, k, metric, ids=ids)
