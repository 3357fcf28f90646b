"""PQ lookup tables (ProductQuantizer::compute_lut) against float64 scores of the
decoded codes, including a padded last sub-space (d not a multiple of M, here a whole
sub-space past d) and offset, scaled data, for 8-bit (float tables) and 4-bit fast-scan
(quantised tables) with per-list L2 residual tables and shared inner-product tables."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import scores

import annx


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("codec", ["PQ6", "PQ6x4fs"])
@pytest.mark.parametrize("residual", [True, False])
def test_lut_scores_match_decoded_codes(metric: str, codec: str, residual: bool) -> None:
    g = np.random.default_rng(21)
    x = (g.standard_normal((1500, 9)) * [1, 2, 3, 1, 1, 5, 1, 1, 2] + 40.0).astype(np.float32)
    q = (g.standard_normal((12, 9)) + 40.0).astype(np.float32)
    index = annx.index_factory(9, f"IVF4,{codec}", metric, by_residual=residual)
    index.train(x)
    index.add(x)
    D, I = index.search(q, 30, nprobe=4)
    ids = index.ids()
    s = scores(index.reconstruct(ids).astype(np.float64), q.astype(np.float64), metric)
    key = s if metric == "l2" else -s
    for r in range(len(q)):
        got = key[r, np.searchsorted(ids, I[r])]
        kth = np.sort(key[r])[29]
        span = np.ptp(key[r])
        if codec == "PQ6":  # float tables: the code distance itself
            np.testing.assert_allclose(D[r], s[r, np.searchsorted(ids, I[r])], rtol=1e-4,
                                       atol=1e-3 * span)  # fmt: skip
            assert (got <= kth + 1e-4 * span).all()
        else:  # 8-bit quantised tables: near the exact k-th
            assert (got <= kth + 0.02 * span).all()


def _ivf_l2(x: np.ndarray, codec: str, residual: bool = True) -> annx.Index:
    index = annx.index_factory(x.shape[1], f"IVF8,{codec}", "l2", by_residual=residual)
    index.train(x)
    index.add(x)
    return index


def _table_tolerance(index: annx.Index, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per result: M / (2a), the bound of pq4.quantize_lut for the result's list table."""
    cb = index._impl.ivf_pq_codebooks().astype(np.float64)  # (M * 16) x dsub
    dsub = cb.shape[1]
    m = cb.shape[0] // 16
    cen = index._impl.ivf_centroids().astype(np.float64)
    lists = index._impl.ivf_list_of(ids.ravel().astype(np.int64)).reshape(ids.shape)
    tol = np.zeros(ids.shape)
    for r in range(ids.shape[0]):
        for j in range(ids.shape[1]):
            res = np.zeros(m * dsub)
            res[: q.shape[1]] = q[r] - cen[lists[r, j]]
            t = ((res.reshape(m, 1, dsub) - cb.reshape(m, 16, dsub)) ** 2).sum(2)
            span = np.ptp(t, axis=1)
            a = min(255 / span.max(), 65535 / span.sum())
            tol[r, j] = m / (2 * a)
    return tol


@pytest.mark.parametrize("codec", ["PQ6", "PQ6x4fs"])
def test_precomputed_l2_tables(tmp_path, codec: str) -> None:
    """L2 residual tables from the precomputed table (||y||^2 + 2<c, y> per list) score
    like float64 ADC of the decoded codes (4-bit: within the quantisation bound); batched
    (grouped) search equals one query at a time; a saved copy rebuilds the table on load
    and answers identically; centroids far from the origin (terms that would cancel in
    float) fall back to per-list tables."""
    g = np.random.default_rng(5)
    x = (g.standard_normal((1200, 10)) * [1, 3, 1, 2, 1, 1, 4, 1, 1, 2] + 7.0).astype(np.float32)
    q = (g.standard_normal((20, 10)) * 2 + 7.0).astype(np.float32)
    index = _ivf_l2(x, codec)
    ksub = 256 if codec == "PQ6" else 16
    assert index._impl.ivf_precomputed_bytes == 8 * 6 * ksub * 4
    D, I = index.search(q, 25, nprobe=3)  # 20 queries: the grouped batch path for x4fs
    for r in range(len(q)):
        d1, i1 = index.search(q[r : r + 1], 25, nprobe=3)
        np.testing.assert_array_equal(i1[0], I[r])
        np.testing.assert_array_equal(d1[0], D[r])
    exact = np.stack([((index.reconstruct(I[r]).astype(np.float64) - q[r]) ** 2).sum(1)
                      for r in range(len(q))])  # fmt: skip
    if codec == "PQ6":
        np.testing.assert_allclose(D, exact, rtol=1e-5, atol=1e-4)
    else:
        assert (np.abs(D - exact) <= _table_tolerance(index, q, I) * 1.001 + 1e-4).all()
    path = tmp_path / "p.annx"
    index.save(path)
    loaded = annx.load(path)
    assert loaded._impl.ivf_precomputed_bytes == index._impl.ivf_precomputed_bytes
    D2, I2 = loaded.search(q, 25, nprobe=3)
    np.testing.assert_array_equal(I2, I)
    np.testing.assert_array_equal(D2, D)
    # Not used: inner products (one shared table), vector codes, far-off centroids.
    assert _ivf_l2(x, codec, residual=False)._impl.ivf_precomputed_bytes == 0
    ipx = annx.index_factory(10, f"IVF8,{codec}", "ip", by_residual=True)
    ipx.train(x)
    assert ipx._impl.ivf_precomputed_bytes == 0
    far = _ivf_l2(x + np.float32(1e5), codec)
    assert far._impl.ivf_precomputed_bytes == 0
    qf = q + np.float32(1e5)
    Df, If = far.search(qf, 25, nprobe=3)
    exact_f = np.stack([((far.reconstruct(If[r]).astype(np.float64) - qf[r]) ** 2).sum(1)
                        for r in range(len(q))])  # fmt: skip
    if codec == "PQ6":  # float residual q - c: rounding of 1e5-sized coordinates
        np.testing.assert_allclose(Df, exact_f, rtol=1e-3, atol=0.1)
    else:
        assert (np.abs(Df - exact_f) <= _table_tolerance(far, qf, If) * 1.001 + 0.1).all()
