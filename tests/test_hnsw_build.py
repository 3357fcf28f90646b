"""HNSW construction details: the neighbour heuristic scores pairs in tiles from inner
products (squared L2 as |a|^2 + |b|^2 - 2 <a, b> on rows translated by a vector near the
base), so it must give the same graph quality on data far from the origin, where the
untranslated expansion would cancel (|x|^2 ~ 2.4e9 against neighbour distances ~ 50).

An add that links at least 1/8 of the index scores its walks and pair decisions on a
temporary int8 copy (centred, one scale per row; undecided pairs re-scored in float); a
smaller add scores in float. Both must build graphs of the same quality, on any metric,
scale, offset or anisotropy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import brute_force, make_clustered, recall

import annx


def _build(x: np.ndarray, spec: str, metric: str) -> annx.Index:
    index = annx.index_factory(x.shape[1], spec, metric, ef_construction=64, seed=0)
    if not index.is_trained:
        index.train(x)
    index.add(x)
    return index


@pytest.mark.parametrize("codec", ["", ",SQ8"])
def test_offset_data_builds_the_same_graph_quality(codec: str) -> None:
    x = make_clustered(3000, 24, seed=5)
    q = make_clustered(100, 24, seed=6)
    got = {}
    for off in (0.0, 1e4):
        xo, qo = x + np.float32(off), q + np.float32(off)
        index = _build(xo, "HNSW16" + codec, "l2")
        assert index._impl.hnsw_check_graph() == ""
        _, gt = brute_force(xo, qo, 10, "l2")
        degree = np.mean([len(index._impl.hnsw_neighbors(i, 0)) for i in range(len(x))])
        got[off] = (recall(index.search(qo, 10, ef_search=16)[1], gt), degree)
    # measured: recall 0.814-0.819 and mean level-0 degree 20.1-20.2 in all four builds
    (r0, g0), (r1, g1) = got[0.0], got[1e4]
    assert r1 >= 0.78 and r1 >= r0 - 0.03, got
    assert abs(g1 - g0) <= 0.02 * g0, got


def _variant(x: np.ndarray, how: str) -> np.ndarray:
    g = np.random.default_rng(7)
    if how == "anisotropic":  # per-dimension scales over four decades
        return (x * np.float32(10.0) ** np.linspace(-2, 2, x.shape[1])).astype(np.float32)
    if how == "offset_small":  # far from the origin relative to a tiny spread
        return (x * np.float32(1e-2) + np.float32(50.0)).astype(np.float32)
    # norms spread over two decades (inner product), duplicated rows
    y = x * (np.float32(10.0) ** g.uniform(-1, 1, (len(x), 1))).astype(np.float32)
    y[1::50] = y[::50][: len(y[1::50])]
    return y.astype(np.float32)


@pytest.mark.parametrize(
    "metric,how,floor",
    [("l2", "anisotropic", 0.9), ("l2", "offset_small", 0.5), ("cos", "anisotropic", 0.93),
     ("ip", "norms", 0.82)],
)  # fmt: skip
def test_int8_copy_and_float_builds_agree(metric: str, how: str, floor: float) -> None:
    x = _variant(make_clustered(2000, 24, seed=11), how)
    q = _variant(make_clustered(100, 24, seed=12), how)
    _, gt = brute_force(x, q, 10, metric)
    got = []
    # One add (int8 copy) against one add of 1/10 then adds of 50 rows (float scoring).
    for chunks in ([x], [x[:200]] + [x[i : i + 50] for i in range(200, len(x), 50)]):
        index = annx.index_factory(x.shape[1], "HNSW8", metric, ef_construction=32, seed=0)
        for c in chunks:
            index.add(c, threads=1)  # one thread: the same graph on every machine
        assert index._impl.hnsw_check_graph() == ""
        got.append(recall(index.search(q, 10, ef_search=10)[1], gt))
    # measured (one add, chunked): l2 anisotropic 0.937 / 0.948, offset_small 0.58 / 0.615
    # (0.53-0.60 over seeds, both ways, before the int8 copy too), cos 0.973 / 0.967,
    # ip 0.886 / 0.859 (two threads; 0.891 / 0.847 in another run: the one-add build may
    # be better, it must not be worse)
    assert min(got) >= floor and got[0] >= got[1] - 0.04, got
