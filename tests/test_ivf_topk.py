"""IVF fast-scan candidate collection (ReservoirTopK) under heavy ties.

Candidates are kept as the k best by (score, lowest id) whatever order the lists are
scanned in: the batched path (lists grouped by probe-rank phase) and the one-query path
(nearest list first) must return the same answer, and with Refine(F32) that answer is the
float64 brute-force one, ties going to the lowest ids.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import brute_force

import annx


def duplicated(
    n_distinct: int, copies: int, d: int, seed: int, offset: float = 500.0
) -> np.ndarray:
    """Offset, scaled rows, each repeated ``copies`` times at shuffled positions: every
    score ties with ``copies - 1`` others, approximate (same code) and exact."""
    g = np.random.default_rng(seed)
    base = (g.standard_normal((n_distinct, d)) * 3.0 + offset).astype(np.float32)
    return base[g.permutation(np.repeat(np.arange(n_distinct), copies))]


@pytest.mark.parametrize("metric", ["l2", "ip", "cos"])
def test_ties_same_answer_in_any_scan_order_and_exact(metric: str) -> None:
    # 1,200 rows, 30 copies of each (a smaller offset for cosine, where a large one
    # leaves directions float32 cannot tell apart)
    x = duplicated(40, 30, 8, seed=7, offset=2.0 if metric == "cos" else 500.0)
    g = np.random.default_rng(8)
    rows = g.choice(len(x), 20, replace=False)
    q = (x[rows] + g.standard_normal((20, 8)).astype(np.float32) * 0.01).astype(np.float32)
    index = annx.index_factory(8, "IVF8,PQ4x4fs,Refine(F32)", metric)
    index.train(x)
    index.add(x)
    # rerank 40: the collector (cap 80) shrinks many times while 1,200 tied candidates
    # stream in; the nearest group's 30 copies plus 10 of the next fit.
    D, I = index.search(q, 10, nprobe=8, rerank=40)  # batched (>= 16 queries)
    for r in range(len(q)):
        d1, i1 = index.search(q[r : r + 1], 10, nprobe=8, rerank=40)
        np.testing.assert_array_equal(i1[0], I[r])
        np.testing.assert_array_equal(d1[0], D[r])
    ref = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cos" else x
    qr = q / np.linalg.norm(q, axis=1, keepdims=True) if metric == "cos" else q
    _, I_ref = brute_force(ref.astype(np.float64), qr.astype(np.float64), 10, metric)
    np.testing.assert_array_equal(I, I_ref)


def test_ties_with_filter_batched_equals_one_query() -> None:
    x = duplicated(25, 40, 6, seed=9)
    g = np.random.default_rng(10)
    q = (x[g.choice(len(x), 18, replace=False)] + 0.02).astype(np.float32)
    index = annx.index_factory(6, "IVF4,PQ3x4fs", "l2")
    index.train(x)
    index.add(x)
    allowed = np.arange(1, len(x), 2)
    D, I = index.search(q, 12, nprobe=3, filter=allowed)
    assert np.isin(I, allowed).all()
    for r in range(len(q)):
        d1, i1 = index.search(q[r : r + 1], 12, nprobe=3, filter=allowed)
        np.testing.assert_array_equal(i1[0], I[r])
        np.testing.assert_array_equal(d1[0], D[r])
        # ties (equal approximate scores) come out in ascending id order
        same = np.diff(D[r]) == 0
        assert (np.diff(I[r])[same] > 0).all()
