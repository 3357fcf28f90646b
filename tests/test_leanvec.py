"""LeanVec: the numpy fit (PCA, Frank-Wolfe OOD solver) and LeanVec<D> indexes.

Indexes are checked against exact numpy brute force: a reduced-dimension search
followed by an exact full-dimension re-rank, so returned distances must be the exact
ones and recall must reach floors on data whose variance lives in few dimensions.
"""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import METRICS, brute_force, brute_range, scores
from hypothesis import given
from hypothesis import strategies as st

import annx
from annx.transforms import _lmo, _OodObjective

D_IN = 48


def low_rank(n: int, seed: int, d: int = D_IN, rank: int = 12, noise: float = 0.1) -> np.ndarray:
    """Data whose variance is mostly in `rank` directions (what LeanVec is for)."""
    g = np.random.default_rng(seed)
    basis = np.random.default_rng(99).standard_normal((rank, d))
    x = g.standard_normal((n, rank)) @ basis + noise * g.standard_normal((n, d)) + 0.5
    return x.astype(np.float32)


def recall(I: np.ndarray, gt: np.ndarray) -> float:
    k = gt.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(I, gt, strict=False)]))


def subspace_gap(p1: np.ndarray, p2: np.ndarray) -> float:
    return float(np.linalg.norm(p1 @ p1.T - p2 @ p2.T))


# ------------------------------------------------------------------------ the fit
def test_pca_matches_numpy_svd() -> None:
    x = low_rank(2000, seed=1)
    # 10 of the 12 signal directions: well separated eigenvalues (noise ones are not).
    lv = annx.LeanVec(10, metric="l2").fit(x)
    xc = x.astype(np.float64) - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    ref = vt[:10].T
    B = lv.data_matrix.astype(np.float64)
    assert subspace_gap(B, ref) < 1e-4
    # Columns agree with the SVD's up to sign.
    np.testing.assert_allclose(np.abs(np.sum(B * ref, axis=0)), 1.0, atol=1e-5)
    np.testing.assert_allclose(B.T @ B, np.eye(10), atol=1e-5)
    np.testing.assert_array_equal(lv.query_matrix, lv.data_matrix)
    np.testing.assert_allclose(lv.mean, x.mean(axis=0), rtol=1e-5, atol=1e-5)
    ratio = lv.explained_variance_ratio_
    np.testing.assert_allclose(ratio, (s**2 / np.sum(s**2))[:10], rtol=1e-4)
    assert np.all(np.diff(ratio) <= 0)


def test_transform_matches_definition() -> None:
    x = low_rank(500, seed=2)
    q = low_rank(20, seed=3)
    for metric in METRICS:
        lv = annx.LeanVec(8, metric=metric).fit(x)
        xs, qs = x.astype(np.float64), q.astype(np.float64)
        if metric == "cos":
            xs = xs / np.linalg.norm(xs, axis=1, keepdims=True)
            qs = qs / np.linalg.norm(qs, axis=1, keepdims=True)
        mean, B = lv.mean.astype(np.float64), lv.data_matrix.astype(np.float64)
        np.testing.assert_allclose(lv.transform(x), (xs - mean) @ B, rtol=1e-4, atol=1e-4)
        want_q = (qs if metric == "ip" else qs - mean) @ B
        np.testing.assert_allclose(lv.transform_queries(q), want_q, rtol=1e-4, atol=1e-4)


def test_sampling_is_seeded() -> None:
    x = low_rank(3000, seed=4)
    a = annx.LeanVec(8, sample_size=500, seed=7).fit(x)
    b = annx.LeanVec(8, sample_size=500, seed=7).fit(x)
    c = annx.LeanVec(8, sample_size=500, seed=8).fit(x)
    np.testing.assert_array_equal(a.data_matrix, b.data_matrix)
    assert not np.array_equal(a.mean, c.mean)


def test_ood_gradient_matches_finite_differences() -> None:
    g = np.random.default_rng(5)
    d, k = 10, 3
    kq = np.cov(g.standard_normal((200, d)), rowvar=False)
    kx = np.cov(g.standard_normal((200, d)) * np.linspace(0.2, 2, d), rowvar=False)
    obj = _OodObjective(kq, kx)
    A, B = g.standard_normal((d, k)) * 0.3, g.standard_normal((d, k)) * 0.3
    ga = _OodObjective.gradient(obj.kq, A, obj.kx, B)
    gb = _OodObjective.gradient(obj.kx, B, obj.kq, A)
    eps = 1e-6
    for grad, which in ((ga, "A"), (gb, "B")):
        num = np.zeros_like(grad)
        for i in range(d):
            for j in range(k):
                e = np.zeros((d, k))
                e[i, j] = eps
                if which == "A":
                    num[i, j] = (obj.value(A + e, B) - obj.value(A - e, B)) / (2 * eps)
                else:
                    num[i, j] = (obj.value(A, B + e) - obj.value(A, B - e)) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-4, atol=1e-7)


def test_lmo_is_the_spectral_ball_minimiser() -> None:
    g = np.random.default_rng(6).standard_normal((12, 4))
    S = _lmo(g)
    assert np.linalg.norm(S, 2) == pytest.approx(1.0, abs=1e-9)
    nuclear = np.linalg.svd(g, compute_uv=False).sum()
    assert np.sum(g * S) == pytest.approx(-nuclear, rel=1e-9)


def test_ood_beats_pca_when_queries_differ() -> None:
    """Data isotropic but for a few loud directions; queries live in a rank-d subspace
    the data barely varies in: PCA keeps the wrong directions, OOD finds the queries'."""
    g = np.random.default_rng(7)
    d, k = 32, 4
    x = g.standard_normal((4000, d))
    x[:, :k] *= 6.0  # PCA picks these
    uq = np.zeros((d, k))  # a random k-subspace orthogonal to the loud directions
    uq[k:] = np.linalg.qr(g.standard_normal((d - k, k)))[0]
    q = g.standard_normal((3000, k)) @ uq.T
    q_test = g.standard_normal((500, k)) @ uq.T
    x, q, q_test = (a.astype(np.float32) for a in (x, q, q_test))
    pca = annx.LeanVec(k, "id", metric="ip").fit(x)
    ood = annx.LeanVec(k, "ood", metric="ip").fit(x, queries=q)
    hist = np.array(ood.loss_history_)
    assert len(hist) >= 2 and np.all(np.diff(hist) <= 1e-12), hist
    assert ood.loss(x, q_test) < 0.05
    assert pca.loss(x, q_test) > 0.5
    assert ood.loss(x, q_test) < pca.loss(x, q_test)


@pytest.mark.parametrize("metric", METRICS)
def test_ood_loss_monotone_and_not_above_pca(metric: str) -> None:
    x = low_rank(3000, seed=8)
    q = low_rank(800, seed=9, noise=0.6) * np.linspace(0.5, 1.5, D_IN, dtype=np.float32)
    ood = annx.LeanVec(8, "ood", metric=metric, tol=1e-6).fit(x, queries=q)
    pca = annx.LeanVec(8, "id", metric=metric).fit(x)
    hist = np.array(ood.loss_history_)
    assert ood.n_iter_ >= 1 and len(hist) == ood.n_iter_ + 1
    assert np.all(np.diff(hist) <= 1e-12), hist
    assert hist[-1] <= hist[0]
    assert ood.loss(x, q) <= pca.loss(x, q) + 1e-6


def test_fit_errors() -> None:
    x = low_rank(100, seed=10)
    with pytest.raises(annx.InvalidArgumentError, match="smaller than the dimension"):
        annx.LeanVec(D_IN).fit(x)
    with pytest.raises(annx.InvalidArgumentError, match="more than 16 training vectors"):
        annx.LeanVec(16).fit(x[:10])
    with pytest.raises(annx.InvalidArgumentError, match="needs training queries"):
        annx.LeanVec(8, "ood").fit(x)
    with pytest.raises(annx.InvalidArgumentError, match="kind='ood' only"):
        annx.LeanVec(8, "id").fit(x, queries=x)
    with pytest.raises(annx.InvalidArgumentError, match="dimension 47"):
        annx.LeanVec(8, "ood").fit(x, queries=x[:, :47])
    bad = x.copy()
    bad[3, 5] = np.nan
    with pytest.raises(annx.InvalidArgumentError, match="non-finite"):
        annx.LeanVec(8).fit(bad)
    with pytest.raises(annx.InvalidArgumentError, match="non-finite"):
        annx.LeanVec(8, "ood").fit(x, queries=bad)
    with pytest.raises(annx.InvalidArgumentError, match="zero vector"):
        annx.LeanVec(8, metric="cos").fit(np.zeros_like(x))
    with pytest.raises(annx.InvalidArgumentError, match="kind"):
        annx.LeanVec(8, "pca")
    with pytest.raises(annx.InvalidArgumentError, match="target_dim"):
        annx.LeanVec(0)
    with pytest.raises(annx.NotTrainedError):
        annx.LeanVec(8).transform(x)
    lv = annx.LeanVec(8).fit(x)
    with pytest.raises(annx.InvalidArgumentError, match="dimension"):
        lv.transform_queries(x[:, :10])


# ------------------------------------------------------------------------ indexes
SPECS = [
    "LeanVec16,Refine(F32)",
    "LeanVec16,HNSW16,Refine(F32)",
    "LeanVec16,HNSW16,F16,Refine(F16)",
    "LeanVec16,IVF16,Refine(F32)",
    "LeanVec16,IVF16,PQ8x4fs,Refine(F32)",
    "LeanVec16_ood,HNSW16,SQ8,Refine(F32)",
]


def build(spec: str, metric: str, n: int = 3000, seed: int = 11) -> tuple[annx.Index, np.ndarray]:
    x = low_rank(n, seed=seed)
    index = annx.index_factory(D_IN, spec, metric)
    queries = low_rank(500, seed=seed + 1) if "_ood" in spec else None
    index.train(x, queries=queries)
    index.add(x)
    return index, x


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("spec", SPECS)
def test_recall_floor_and_exact_distances(spec: str, metric: str) -> None:
    index, x = build(spec, metric)
    q = low_rank(60, seed=12)
    _, gt = brute_force(x, q, 10, metric)
    params = {"rerank": 100}
    if "HNSW" in spec:
        params["ef_search"] = 100
    if "IVF" in spec:
        params["nprobe"] = 8
    D, I = index.search(q, 10, **params)
    assert recall(I, gt) >= 0.9, recall(I, gt)
    # Re-ranked in full dimension: the distances are the exact ones of the ids.
    exact = np.take_along_axis(scores(x, q, metric), I, axis=1)
    np.testing.assert_allclose(D, exact, rtol=2e-3 if "F16" in spec else 1e-4, atol=2e-3)
    order = D if metric == "l2" else -D
    assert np.all(np.diff(order, axis=1) >= 0)


@pytest.mark.parametrize("metric", METRICS)
def test_full_rerank_is_exact(metric: str) -> None:
    """Re-ranking every vector makes the answer exact whatever the projection."""
    index, x = build("LeanVec4,Refine(F32)", metric, n=500)
    q = low_rank(30, seed=13)
    Dg, Ig = brute_force(x, q, 7, metric)
    D, I = index.search(q, 7, rerank=2**30)  # capped at the index size, not allocated
    np.testing.assert_array_equal(I, Ig)
    np.testing.assert_allclose(D, Dg, rtol=1e-4, atol=1e-4)


def test_larger_rerank_budget_raises_recall() -> None:
    index, x = build("LeanVec8,HNSW16,Refine(F32)", "l2")
    q = low_rank(100, seed=14)
    _, gt = brute_force(x, q, 10, "l2")
    low = recall(index.search(q, 10, ef_search=64, rerank=10)[1], gt)
    high = recall(index.search(q, 10, ef_search=64, rerank=64)[1], gt)
    assert high >= low and high >= 0.9


@given(
    k=st.integers(1, 40),
    nq=st.integers(0, 5),
    n=st.integers(0, 60),
    metric=st.sampled_from(METRICS),
)
def test_shapes_and_padding(k: int, nq: int, n: int, metric: str) -> None:
    x = low_rank(80, seed=15)
    index = annx.index_factory(D_IN, "LeanVec6,HNSW8,Refine(F16)", metric)
    index.train(x)
    index.add(x[:n])
    D, I = index.search(low_rank(nq, seed=16), k)
    assert D.shape == (nq, k) and I.shape == (nq, k)
    m = min(k, n)
    assert np.all(I[:, :m] >= 0) and np.all(I[:, m:] == -1)
    pad = np.inf if metric == "l2" else -np.inf
    assert np.all(D[:, m:] == pad)
    for row in I:
        assert len(set(row[:m])) == m


def test_ids_remove_filter_and_reuse() -> None:
    x = low_rank(1200, seed=17)
    ids = np.arange(1200, dtype=np.int64) * 7 + 1000
    index = annx.index_factory(D_IN, "LeanVec12,HNSW16,Refine(F32)", "cos")
    index.train(x)
    index.add(x, ids=ids)
    gone = ids[::3]
    index.remove(gone)
    assert index.ntotal == 800 and gone[0] not in index
    q = low_rank(40, seed=18)
    keep = np.setdiff1d(ids, gone)
    live_x = x[np.isin(ids, keep)]
    _, gt = brute_force(live_x, q, 10, "cos", ids=keep)
    _, I = index.search(q, 10, ef_search=80, rerank=80)
    assert not np.isin(I, gone).any()
    assert recall(I, gt) >= 0.9
    allowed = keep[::5]
    _, I = index.search(q, 5, filter=allowed, rerank=200, ef_search=200)
    assert np.isin(I[I >= 0], allowed).all()
    _, gt_f = brute_force(x[np.isin(ids, allowed)], q, 5, "cos", ids=allowed)
    assert recall(I, gt_f) >= 0.9
    # Holes are reused by the next add (lowest slot first), ids stay consistent.
    new = low_rank(100, seed=19)
    index.add(new)
    assert index.ntotal == 900
    np.testing.assert_allclose(
        index.reconstruct(np.arange(100) + index.next_id - 100),
        new / np.linalg.norm(new, axis=1, keepdims=True),
        rtol=1e-5,
        atol=1e-6,
    )
    _, I = index.search(new[:10], 1, ef_search=64, rerank=64)
    np.testing.assert_array_equal(I[:, 0], np.arange(10) + index.next_id - 100)


@pytest.mark.parametrize("metric", METRICS)
def test_range_search_is_exact(metric: str) -> None:
    index, x = build("LeanVec8,HNSW16,Refine(F32)", metric, n=800)
    q = low_rank(10, seed=20)
    radius = {"l2": 30.0, "ip": 20.0, "cos": 0.9}[metric]
    lims, D, I = index.range_search(q, radius)
    ref = brute_range(x, q, radius, metric)
    for i, (rd, ri) in enumerate(ref):
        got = I[lims[i] : lims[i + 1]]
        assert set(got) == set(ri)
        np.testing.assert_allclose(np.sort(D[lims[i] : lims[i + 1]]), np.sort(rd), rtol=1e-4)


@pytest.mark.parametrize("spec", ["LeanVec12,HNSW16,Refine(F32)", "LeanVec12_ood,IVF8,Refine(F16)"])
@pytest.mark.parametrize("metric", ["l2", "cos"])
def test_persistence_round_trip(tmp_path: Path, spec: str, metric: str) -> None:
    index, x = build(spec, metric, n=1500)
    index.remove(np.arange(0, 1500, 4))
    q = low_rank(30, seed=21)
    D, I = index.search(q, 10)
    path = tmp_path / "lv.annx"
    index.save(path)
    for loaded in (annx.load(path), annx.load(path, mmap=True), annx.from_bytes(index.to_bytes())):
        assert loaded.spec == index.spec and loaded.ntotal == index.ntotal
        D2, I2 = loaded.search(q, 10)
        np.testing.assert_array_equal(I2, I)
        np.testing.assert_array_equal(D2, D)
        np.testing.assert_array_equal(loaded.leanvec.data_matrix, index.leanvec.data_matrix)
        np.testing.assert_array_equal(loaded.leanvec.query_matrix, index.leanvec.query_matrix)
        # A loaded index keeps working: adds reuse the same holes as the original.
        more = low_rank(50, seed=22)
        loaded.add(more)
        assert loaded.ntotal == index.ntotal + 50
    info = annx.read_info(path)
    assert info["structure"] == "leanvec" and info["target_dim"] == 12


def test_corrupt_files_raise() -> None:
    index, _ = build("LeanVec8,HNSW8,Refine(F32)", "l2", n=200)
    data = index.to_bytes()
    for n in range(0, len(data), max(1, len(data) // 97)):
        with pytest.raises(annx.FormatError):
            annx.from_bytes(data[:n])
    g = np.random.default_rng(23)
    for pos in g.integers(0, len(data), 60):
        bad = bytearray(data)
        bad[int(pos)] ^= 1 << int(g.integers(0, 8))
        with pytest.raises(annx.FormatError):
            annx.from_bytes(bytes(bad))


def test_index_errors() -> None:
    x = low_rank(300, seed=24)
    with pytest.raises(annx.InvalidArgumentError, match="smaller than d"):
        annx.index_factory(D_IN, "LeanVec48,HNSW16,Refine(F32)")
    with pytest.raises(annx.InvalidArgumentError, match="re-rank store"):
        annx.index_factory(D_IN, "LeanVec16,HNSW16")
    with pytest.raises(annx.InvalidArgumentError, match="LeanVec<D>"):
        annx.index_factory(D_IN, "LeanVecX,Refine(F32)")
    with pytest.raises(annx.InvalidArgumentError, match="HNSW"):
        annx.index_factory(D_IN, "LeanVec16,HNSW1,Refine(F32)")
    index = annx.index_factory(D_IN, "LeanVec16,HNSW16,Refine(F32)")
    assert not index.is_trained
    with pytest.raises(annx.NotTrainedError):
        index.add(x)
    with pytest.raises(annx.NotTrainedError):
        index.search(x[:2], 3)
    with pytest.raises(annx.NotTrainedError):
        index.leanvec  # noqa: B018
    with pytest.raises(annx.InvalidArgumentError, match="does not use queries"):
        index.train(x, queries=x)
    with pytest.raises(annx.InvalidArgumentError, match="more than 16 training vectors"):
        index.train(x[:10])
    ood = annx.index_factory(D_IN, "LeanVec16_ood,HNSW16,Refine(F32)")
    with pytest.raises(annx.InvalidArgumentError, match="needs training queries"):
        ood.train(x)
    with pytest.raises(annx.InvalidArgumentError, match="dimension 40"):
        ood.train(x, queries=x[:, :40])
    index.train(x)
    index.add(x)
    with pytest.raises(annx.InvalidArgumentError, match="already holds vectors"):
        index.train(x)
    with pytest.raises(annx.InvalidArgumentError, match="dimension"):
        index.search(x[:, :16], 3)
    with pytest.raises(annx.InvalidArgumentError, match="nprobe"):
        index.search(x[:2], 3, nprobe=4)
    flat = annx.index_factory(D_IN, "Flat")
    with pytest.raises(annx.InvalidArgumentError, match="LeanVec<D>_ood specs only"):
        flat.train(x, queries=x)


def test_memory_accounting() -> None:
    index, _ = build("LeanVec16,HNSW16,F16,Refine(F16)", "l2", n=500)
    primary, secondary = index.leanvec_bytes_per_vector()
    assert secondary == 2 * D_IN + 8
    assert primary == pytest.approx(index.bytes_per_vector - secondary)
    assert index.memory_usage() > 500 * (primary + secondary) * 0.9


def test_searches_run_alongside_adds() -> None:
    x = low_rank(4000, seed=25)
    index = annx.index_factory(D_IN, "LeanVec12,HNSW16,Refine(F32)", "l2")
    index.train(x)
    index.add(x[:1000])
    q = x[:50]
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher() -> None:
        try:
            while not stop.is_set():
                D, I = index.search(q, 5, threads=1)
                assert (I[:, 0] >= 0).all()
                assert np.isfinite(D[:, 0]).all()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    for b in range(1000, 4000, 500):
        index.add(x[b : b + 500])
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert index.ntotal == 4000
    _, I = index.search(q, 1, ef_search=64, rerank=64)
    np.testing.assert_array_equal(I[:, 0], np.arange(50))


# ------------------------------------------------------------------ real data
def test_real_minilm_ood(shared_data: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = shared_data / "minilm-ood-10000-384-angular.hdf5"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with h5py.File(path, "r") as f:
        x, q, learn = f["train"][:], f["test"][:200], f["learn"][:]
        gt = f["neighbors"][:200, :10]
    got = {}
    for spec in ("LeanVec64,HNSW16,Refine(F32)", "LeanVec64_ood,HNSW16,Refine(F32)"):
        index = annx.index_factory(384, spec, "cos")
        index.train(x, queries=learn if "_ood" in spec else None)
        index.add(x)
        got[spec] = recall(index.search(q, 10, ef_search=100, rerank=100)[1], gt)
        assert got[spec] >= 0.9, got


@pytest.mark.parametrize("spec", ["LeanVec12,HNSW16,Refine(F32)", "LeanVec12,IVF8,Refine(F16)"])
def test_results_do_not_depend_on_threads(spec: str) -> None:
    index, _ = build(spec, "cos", n=2000)
    q = low_rank(37, seed=26)
    D1, I1 = index.search(q, 10, threads=1)
    for t in (2, 3):
        Dt, It = index.search(q, 10, threads=t)
        np.testing.assert_array_equal(It, I1)
        np.testing.assert_array_equal(Dt, D1)
    D1, I1 = index.search(q[:1], 10, threads=1)
    Dt, It = index.search(q[:1], 10, threads=4)
    np.testing.assert_array_equal(It, I1)
