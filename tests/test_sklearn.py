"""annx.sklearn.KNNTransformer: scikit-learn's KNeighborsTransformer interface."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.manifold import TSNE, Isomap  # noqa: E402
from sklearn.neighbors import KNeighborsTransformer  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import annx  # noqa: E402
from annx.sklearn import KNNTransformer  # noqa: E402


def data(n: int = 300, d: int = 12, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    # anisotropic and offset, with a few exact duplicates
    x = g.standard_normal((n, d)) * np.linspace(0.2, 3.0, d) + 5.0
    x[-5:] = x[:5]
    return x


def test_check_estimator() -> None:
    check_estimator(KNNTransformer(spec="Flat"))
    check_estimator(KNNTransformer(n_neighbors=3, spec="HNSW16", ef_search=32))


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
@pytest.mark.parametrize(
    ("metric", "sk_metric"),
    [("l2", "euclidean"), ("sqeuclidean", "sqeuclidean"), ("cos", "cosine")],
)
def test_flat_matches_kneighbors_transformer(mode: str, metric: str, sk_metric: str) -> None:
    x = data()
    q = data(40, seed=1)
    ours = KNNTransformer(n_neighbors=6, mode=mode, spec="Flat", metric=metric).fit(x)
    ref = KNeighborsTransformer(n_neighbors=6, mode=mode, metric=sk_metric).fit(x)
    a, b = ours.transform(q), ref.transform(q)
    assert a.shape == b.shape == (40, 300) and a.format == "csr"
    assert (a.getnnz(axis=1) == b.getnnz(axis=1)).all()
    # the same weights row by row; columns may differ only between float32 near-ties
    for i in range(40):
        ra, rb = a.getrow(i), b.getrow(i)
        np.testing.assert_allclose(np.sort(ra.data), np.sort(rb.data), rtol=1e-4, atol=1e-4)
    assert np.mean(np.isclose(a.toarray(), b.toarray(), rtol=1e-4, atol=1e-4)) > 0.999
    # kneighbors with X=None excludes each point itself, as scikit-learn does
    d1, i1 = ours.kneighbors(n_neighbors=4)
    d2, i2 = ref.kneighbors(n_neighbors=4)
    np.testing.assert_allclose(d1, d2, rtol=1e-4, atol=1e-4)
    assert not (i1 == np.arange(300)[:, None]).any()
    same = [len(set(p) & set(r)) / 4 for p, r in zip(i1, i2, strict=False)]  # duplicates tie: sets
    assert np.mean(same) > 0.99


def test_hnsw_recall_and_search_params() -> None:
    x = data(2000, 16)
    exact = KNeighborsTransformer(n_neighbors=10).fit(x).kneighbors(x[:200], 10)[1]
    t = KNNTransformer(n_neighbors=10, spec="HNSW16", ef_search=64).fit(x)
    got = t.kneighbors(x[:200], 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact, strict=False)])
    assert recall >= 0.95
    assert clone(t).get_params()["ef_search"] == 64
    with pytest.raises(annx.InvalidArgumentError, match="nprobe"):
        KNNTransformer(spec="HNSW16", nprobe=4).fit(x).transform(x[:2])


def test_pipelines_into_isomap_and_tsne() -> None:
    x = data(200, 8)
    iso = make_pipeline(
        KNNTransformer(n_neighbors=10, spec="HNSW16"), Isomap(n_neighbors=10, metric="precomputed")
    )
    emb = iso.fit_transform(x)
    assert emb.shape == (200, 2) and np.isfinite(emb).all()
    tsne = make_pipeline(
        KNNTransformer(n_neighbors=16, spec="Flat"),
        TSNE(metric="precomputed", perplexity=5, init="random", max_iter=250, random_state=0),
    )
    emb = tsne.fit_transform(x)
    assert emb.shape == (200, 2) and np.isfinite(emb).all()


def test_errors_and_pickling() -> None:
    x = data(50, 4)
    with pytest.raises(NotFittedError):
        KNNTransformer().transform(x)
    for kwargs, match in (
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"mode": "weights"}, "mode"),
        ({"metric": "ip"}, "metric"),
        ({"metric": annx.METRIC_INNER_PRODUCT}, "METRIC_L2"),
        ({"n_jobs": 0}, "n_jobs"),
    ):
        with pytest.raises(ValueError, match=match):
            KNNTransformer(**kwargs).fit(x)
    with pytest.raises(annx.InvalidArgumentError, match="spec|token"):
        KNNTransformer(spec="Nope").fit(x)
    t = KNNTransformer(n_neighbors=3, metric=annx.METRIC_L2, n_jobs=-1).fit(x)
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        t.kneighbors(x[:2], n_neighbors=51)
    with pytest.raises(ValueError, match="features"):
        t.transform(x[:, :3])
    back = pickle.loads(pickle.dumps(t))
    assert (back.transform(x) != t.transform(x)).nnz == 0


def test_real_data_graph_recall(shared_data) -> None:  # noqa: ANN001
    """GloVe (angular): the HNSW graph against exact float64 cosine neighbours."""
    from annx import datasets

    path = shared_data / "glove6b-50000-50-angular.hdf5"
    if not path.exists():
        pytest.skip(f"{path} not found")
    x = datasets.load_hdf5(path, load_extra=False).train[:10000].astype(np.float64)
    q = x[:300]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    exact = np.argsort(-(xn[:300] @ xn.T), axis=1, kind="stable")[:, :10]
    t = KNNTransformer(n_neighbors=10, spec="HNSW32", metric="cos", ef_search=128).fit(x)
    dist, ind = t.kneighbors(q, n_neighbors=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ind, exact, strict=False)])
    assert recall >= 0.97, recall
    # distances are 1 - cos of the returned ids, in float64 within float32 rounding
    want = 1.0 - np.take_along_axis(xn[:300] @ xn.T, ind, axis=1)
    np.testing.assert_allclose(dist, want, atol=2e-5)
    graph = t.transform(q)
    assert graph.shape == (300, 10000) and (graph.getnnz(axis=1) == 11).all()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 60),
    d=st.integers(1, 9),
    k=st.integers(1, 8),
    dtype=st.sampled_from([np.float32, np.float64]),
    offset=st.sampled_from([0.0, 100.0]),
    scale=st.sampled_from([1e-2, 1.0, 1e3]),
    metric=st.sampled_from(["l2", "sqeuclidean"]),
    seed=st.integers(0, 2**16),
)
def test_flat_graph_is_exact(
    n: int, d: int, k: int, dtype: type, offset: float, scale: float, metric: str, seed: int
) -> None:
    g = np.random.default_rng(seed)
    x = (g.standard_normal((n, d)) * scale + offset).astype(dtype)
    k = min(k, n - 1)
    t = KNNTransformer(n_neighbors=k, spec="Flat", metric=metric).fit(x)
    q = (g.standard_normal((5, d)) * scale + offset).astype(dtype)
    dist, ind = t.kneighbors(q, n_neighbors=k)
    assert dist.dtype == dtype and ind.shape == (5, k)
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    d2 = ((q64[:, None, :] - x64[None, :, :]) ** 2).sum(axis=2)
    kth = np.sort(d2, axis=1)[:, k - 1]
    got2 = np.take_along_axis(d2, ind, axis=1)
    # every returned neighbour is within the exact k-th distance (float32 rounding aside)
    tol = 1e-3 * (np.abs(q64).max() + np.abs(x64).max()) ** 2 * d + 1e-6
    assert (got2 <= kth[:, None] + tol).all()
    want = np.sqrt(got2) if metric == "l2" else got2
    np.testing.assert_allclose(dist, want, rtol=1e-3, atol=np.sqrt(tol))
    graph = t.transform(q)
    assert graph.dtype == dtype and (graph.getnnz(axis=1) == k + 1).all()
