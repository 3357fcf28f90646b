"""Correctness of the HNSW graph index ("HNSW<M>[,codec][,Refine(F32|F16)]").

Every approximate answer is measured against the exact numpy float64 brute force of
conftest.py on seeded data. Recall floors were calibrated from measured values with a
margin, but stay far above what a damaged graph gives (a level-0 graph with random links
scores about 0.4 where these floors ask for 0.95). Structure is checked both through the
core's own ``hnsw_check_graph()`` and independently from ``hnsw_neighbors()``.

Helpers are reused rather than copied: the independent container reader/writer of
test_io.py (corruption tests), the exact-result assertion of test_flat.py and the
real-SIGINT helper of test_threads.py.
"""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import math
import pickle
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import (
    METRICS,
    assert_knn,
    brute_force,
    brute_range,
    make_data,
    pad_value,
    recall,
    scores,
)
from container_format import build_container, manifest_of, parse, section_bytes, with_manifest
from hypothesis import event, given
from hypothesis import strategies as st
from thread_helpers import interrupt_latency, needs_signals, run_threads

import annx

CODECS = ("", ",F16", ",BF16", ",SQ8", ",SQ8,Refine(F32)")


# ---------------------------------------------------------------------------- helpers
def build(
    x: np.ndarray,
    spec: str = "HNSW16",
    metric: str = "l2",
    *,
    ids: np.ndarray | None = None,
    ef_construction: int = 100,
    seed: int = 0,
    threads: int | None = None,
    shuffle: bool = True,
) -> annx.Index:
    index = annx.index_factory(
        x.shape[1], spec, metric, ef_construction=ef_construction, seed=seed, shuffle=shuffle
    )
    if not index.is_trained:
        index.train(x)
    index.add(x, ids=ids, threads=threads)
    return index


def check_graph(index: annx.Index) -> None:
    msg = index._impl.hnsw_check_graph()
    assert msg == "", f"graph invariant violated: {msg}"


def node_level(index: annx.Index, id: int) -> int:
    """Top level of node `id` (hnsw_neighbors raises above it)."""
    level = 0
    while True:
        try:
            index._impl.hnsw_neighbors(id, level + 1)
        except annx.InvalidArgumentError:
            return level
        level += 1


def check_structure_independently(index: annx.Index, m: int) -> None:
    """Graph invariants recomputed in Python from hnsw_neighbors (tombstones are -1)."""
    live = index.ids()
    levels = {int(i): node_level(index, int(i)) for i in live}
    top = index._impl.hnsw_max_level()
    assert max(levels.values()) <= top
    for i, top_i in levels.items():
        for lev in range(top_i + 1):
            nb = np.asarray(index._impl.hnsw_neighbors(i, lev))
            assert len(nb) <= (2 * m if lev == 0 else m), f"node {i} level {lev}: {len(nb)}"
            real = nb[nb >= 0]
            assert i not in real, f"node {i} links to itself at level {lev}"
            assert len(set(real.tolist())) == len(real), f"node {i}: duplicate links"
            for j in real.tolist():
                assert levels[j] >= lev, (
                    f"node {i} links at level {lev} to {j} of level {levels[j]}"
                )


def level0_strongly_connected(index: annx.Index, n: int) -> bool:
    """Whether every node reaches every other through level-0 links (ids 0..n-1)."""
    fwd = [index._impl.hnsw_neighbors(i, 0) for i in range(n)]
    back: list[list[int]] = [[] for _ in range(n)]
    for i, nb in enumerate(fwd):
        for j in nb:
            back[j].append(i)

    def reaches_all(adj: list[Any]) -> bool:
        seen, stack = {0}, [0]
        while stack:
            for j in adj[stack.pop()]:
                if j not in seen:
                    seen.add(j)
                    stack.append(j)
        return len(seen) == n

    return reaches_all(fwd) and reaches_all(back)


def assert_sound(
    D: np.ndarray,
    I: np.ndarray,
    vec_of: Callable[[np.ndarray], np.ndarray],
    q: np.ndarray,
    k: int,
    metric: str,
    n_full: int | None = None,
    atol: float = 1e-4,
) -> None:
    """Rows hold valid, distinct ids, best first, with their true scores.

    ``vec_of(ids)`` returns the stored vectors of ids; ``n_full`` is how many leading
    entries of every row must be real results (the rest padding).
    """
    assert D.shape == I.shape == (len(q), k)
    assert D.dtype == np.float32 and I.dtype == np.int64
    for r in range(len(q)):
        row = I[r]
        real = row[row >= 0]
        m = len(real)
        assert (row[:m] >= 0).all() and (row[m:] == -1).all(), f"padding inside row {row}"
        assert (D[r, m:] == pad_value(metric)).all()
        if n_full is not None:
            assert m == n_full, f"row {r}: {m} results, expected {n_full}"
        assert len(set(real.tolist())) == m, f"repeated id in row {row}"
        if m:
            true = scores(vec_of(real), q[r : r + 1], metric)[0]
            np.testing.assert_allclose(D[r, :m], true, rtol=1e-4, atol=atol)
            steps = np.diff(D[r, :m].astype(np.float64))
            assert (steps >= 0).all() if metric == "l2" else (steps <= 0).all()


def nslots(index: annx.Index) -> int:
    return int(dict(manifest_of(index.to_bytes()))["nslots"])


# ------------------------------------------------------------------------------ recall
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("metric", METRICS)
def test_recall_floor_synthetic(metric: str, codec: str) -> None:
    x = make_data(5000, 32, seed=1)
    q = make_data(100, 32, seed=2)
    index = build(x, "HNSW16" + codec, metric)
    check_graph(index)
    D, I = index.search(q, 10, ef_search=100)
    _, gt = brute_force(x, q, 10, metric)
    r = recall(I, gt)
    # measured 0.973 (SQ8) to 0.998
    floor = 0.94 if codec == ",SQ8" else 0.97
    assert r >= floor, f"HNSW16{codec} {metric}: recall@10 {r:.4f} < {floor}"
    if "Refine" in codec or codec == "":  # scores are exact float32 ones
        assert_sound(D, I, lambda ids: x[ids], q, 10, metric, n_full=10)


@pytest.mark.parametrize("spec", ["HNSW16,F16,Refine(F32)", "HNSW16,SQ8,Refine(F16)"])
def test_refine_rerank(spec: str) -> None:
    """rerank re-scores candidates with the finer codec; more candidates never hurt."""
    x = make_data(4000, 32, seed=3)
    q = make_data(100, 32, seed=4)
    index = build(x, spec, "cos")
    _, gt = brute_force(x, q, 10, "cos")
    r_small = recall(index.search(q, 10, ef_search=64, rerank=10)[1], gt)
    r_big = recall(index.search(q, 10, ef_search=64, rerank=64)[1], gt)
    assert r_big >= 0.96 and r_big >= r_small - 0.005, (r_small, r_big)
    D, I = index.search(q, 10, ef_search=64)  # default rerank: ef_search
    np.testing.assert_array_equal(I, index.search(q, 10, ef_search=64, rerank=64)[1])
    # distances are those of the refine store (float32 or float16 vectors)
    atol = 1e-5 if spec.endswith("(F32)") else 2e-3
    assert_sound(D, I, lambda ids: x[ids], q, 10, "cos", n_full=10, atol=atol)


def test_recall_real_data(shared_data: Path) -> None:
    """First 10k MiniLM sentence embeddings, 100 held-out queries, cosine."""
    h5py = pytest.importorskip("h5py")
    path = shared_data / "minilm-100000-384-angular.hdf5"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with h5py.File(path, "r") as f:
        x = np.asarray(f["train"][:10000], dtype=np.float32)
        q = np.asarray(f["test"][:100], dtype=np.float32)
    _, gt = brute_force(x, q, 10, "cos")
    for spec, floor in (("HNSW16", 0.96), ("HNSW16,SQ8,Refine(F32)", 0.96)):
        index = build(x, spec, "cos", ef_construction=64)
        check_graph(index)
        r = recall(index.search(q, 10, ef_search=64)[1], gt)  # measured 0.983-0.985
        assert r >= floor, f"{spec}: recall@10 {r:.4f} < {floor} on MiniLM"


# --------------------------------------------------------------------------- structure
@pytest.mark.parametrize(("spec", "metric"), [("HNSW4", "l2"), ("HNSW8,SQ8", "cos")])
def test_graph_invariants_through_churn(spec: str, metric: str) -> None:
    m = int(spec.split(",")[0][4:])
    x = make_data(1500, 8, seed=5)
    index = build(x[:1000], spec, metric, ef_construction=40)
    check_graph(index)
    check_structure_independently(index, m)
    index.remove(np.arange(0, 1000, 3))
    check_graph(index)
    check_structure_independently(index, m)
    index.add(x[1000:1200], ids=np.arange(5000, 5200))  # reuses tombstones
    check_graph(index)
    index.remove(np.arange(5000, 5200, 2))
    index.add(x[1200:], ids=np.arange(6000, 6300))  # reuses the rest, then grows
    check_graph(index)
    check_structure_independently(index, m)
    assert index.n_deleted == 0


@pytest.mark.parametrize("m", [4, 16])
def test_level_histogram_geometric(m: int) -> None:
    """P(level >= l) = M^-l: counts at each level match n * M^-l within ~5 sigma."""
    n = 20000
    x = make_data(n, 2, seed=6)
    index = build(x, f"HNSW{m}", ef_construction=8, seed=7)
    counts = np.asarray(index._impl.hnsw_level_counts())
    assert counts.sum() == n
    assert index._impl.hnsw_max_level() == len(counts) - 1
    at_least = counts[::-1].cumsum()[::-1]  # nodes of level >= l
    for lev in range(1, len(counts)):
        expected = n * float(m) ** -lev
        if expected >= 20:
            tol = 5 * math.sqrt(expected)
            assert abs(at_least[lev] - expected) <= tol, (lev, counts.tolist())
    assert index._impl.hnsw_max_level() <= math.log(n, m) + 4, counts.tolist()
    assert at_least[1] > 0  # there is a hierarchy at all


# ---------------------------------------------------------------------- reproducibility
def test_single_thread_build_reproducible() -> None:
    x = make_data(3000, 16, seed=8)
    q = make_data(50, 16, seed=9)

    def two_batches(seed: int) -> annx.Index:
        index = build(x[:1500], "HNSW8", ef_construction=64, seed=seed, threads=1)
        index.add(x[1500:], threads=1)
        return index

    a, b, c = two_batches(5), two_batches(5), two_batches(6)
    assert a.to_bytes() == b.to_bytes()
    for kw in ({}, {"ef_search": 20}, {"filter": np.arange(0, 3000, 2)}):
        Da, Ia = a.search(q, 10, **kw)
        Db, Ib = b.search(q, 10, **kw)
        np.testing.assert_array_equal(Ia, Ib)
        np.testing.assert_array_equal(Da, Db)
    # another seed: other levels and insertion order, so another graph
    assert c.to_bytes() != a.to_bytes()
    changed = sum(a._impl.hnsw_neighbors(i, 0) != c._impl.hnsw_neighbors(i, 0) for i in range(3000))
    assert changed > 1000
    assert a._impl.hnsw_level_counts() != c._impl.hnsw_level_counts()
    # search threads never change results
    np.testing.assert_array_equal(a.search(q, 10, threads=1)[1], a.search(q, 10, threads=3)[1])


def test_multi_threaded_build_recall() -> None:
    x = make_data(5000, 32, seed=10)
    q = make_data(200, 32, seed=11)
    _, gt = brute_force(x, q, 10, "l2")
    # ef_search=32 keeps recall below saturation (about 0.92) so a gap would show
    r1 = recall(build(x, threads=1).search(q, 10, ef_search=32)[1], gt)
    for threads in (2, 4):
        index = build(x, threads=threads)
        check_graph(index)
        r = recall(index.search(q, 10, ef_search=32)[1], gt)
        # typically within 0.005; 0.025 lower seen once in 750 builds on an oversubscribed CPU
        assert r >= r1 - 0.03, f"threads={threads}: recall {r:.4f} vs single-threaded {r1:.4f}"


# ------------------------------------------------------------------------------ deletes
def test_removed_ids_never_returned_and_slots_reused() -> None:
    d = 16
    x = make_data(3000, d, seed=12)
    new = make_data(1400, d, seed=13)
    q = make_data(100, d, seed=14)
    index = build(x, "HNSW8", ef_construction=64)
    slots0 = nslots(index)
    removed = np.arange(0, 3000, 3)
    assert index.remove(removed) == 1000
    assert index.n_deleted == 1000 and len(index) == 2000
    assert 0 not in index and 1 in index
    assert not np.isin(index.ids(), removed).any()
    check_graph(index)
    live = np.setdiff1d(np.arange(3000), removed)
    vec = {int(i): x[i] for i in live}
    for kw in ({"ef_search": 16}, {"ef_search": 64}, {"filter": np.arange(0, 3000, 2)}):
        D, I = index.search(q, 20, **kw)
        assert not np.isin(I, removed).any(), f"removed id returned ({kw})"
        assert_sound(D, I, lambda ids: np.stack([vec[int(i)] for i in ids]), q, 20, "l2", 20)
    _, gt = brute_force(x[live], q, 10, "l2", live)
    assert recall(index.search(q, 10, ef_search=64)[1], gt) >= 0.97
    lims, Dr, Ir = index.range_search(q, 12.0)
    assert not np.isin(Ir, removed).any()

    # adds fill tombstones first: no new slots until they are used up
    new_ids = np.arange(10000, 10400)
    index.add(new[:400], ids=new_ids)
    assert index.n_deleted == 600 and len(index) == 2400 and nslots(index) == slots0
    check_graph(index)
    np.testing.assert_array_equal(index.reconstruct(new_ids), new[:400])
    np.testing.assert_array_equal(index.reconstruct(live[:50]), x[live[:50]])
    # a re-used slot answers as the new vector (each new vector finds itself)
    D, I = index.search(new[:400], 1, ef_search=32)
    assert (I[:, 0] == new_ids).mean() >= 0.99
    assert not np.isin(index.search(q, 30)[1], removed).any()
    index.add(new[400:], ids=np.arange(20000, 21000))
    assert index.n_deleted == 0 and nslots(index) == slots0 + 400
    check_graph(index)


def test_k_results_while_enough_live() -> None:
    """Heavy deletion: every row is full while >= k vectors live, padded after."""
    x = make_data(2000, 8, seed=15)
    q = make_data(30, 8, seed=16)
    index = build(x, "HNSW8", ef_construction=40)
    g = np.random.default_rng(17)
    order = g.permutation(2000)
    for n_live in (500, 60, 25, 20, 7, 1):
        index.remove(np.setdiff1d(index.ids(), order[:n_live]))
        live = np.sort(order[:n_live])
        assert len(index) == n_live and index.n_deleted == 2000 - n_live
        for k in (1, 20):
            D, I = index.search(q, k, ef_search=20)
            assert_sound(D, I, lambda ids: x[ids], q, k, "l2", n_full=min(k, n_live))
            assert np.isin(I[I >= 0], live).all()
            if n_live <= k:  # everything live comes back, exactly ranked
                assert_knn(D, I, x[live], q, k, "l2", ids=live)
    check_graph(index)


@pytest.mark.parametrize("metric", ["l2", "cos"])
def test_churn_recall_matches_fresh_build(metric: str) -> None:
    """Delete 30 %, add as many new vectors (slot reuse + repair), compare to a rebuild.

    ef_search=32 keeps recall below saturation (fresh build: about 0.94): at ef_search=100
    both are near 1.0 and a damaged neighbourhood would not show.
    """
    d = 32
    x = make_data(4000, d, seed=18)
    new = make_data(1200, d, seed=19)
    q = make_data(200, d, seed=20)
    index = build(x, metric=metric, threads=1)  # single-threaded: deterministic
    removed = np.random.default_rng(21).choice(4000, 1200, replace=False)
    index.remove(removed)
    new_ids = np.arange(10000, 11200)
    index.add(new, ids=new_ids, threads=1)
    assert index.n_deleted == 0
    check_graph(index)
    keep = np.setdiff1d(np.arange(4000), removed)
    final_x = np.concatenate([x[keep], new])
    final_ids = np.concatenate([keep, new_ids])
    fresh = build(final_x, metric=metric, ids=final_ids, threads=1)
    _, gt = brute_force(final_x, q, 10, metric, final_ids)
    r_churn = recall(index.search(q, 10, ef_search=32)[1], gt)
    r_fresh = recall(fresh.search(q, 10, ef_search=32)[1], gt)
    assert r_churn >= r_fresh - 0.02, (
        f"recall after churn {r_churn:.4f} vs fresh build {r_fresh:.4f} (ef_search=32)"
    )


def test_remove_everything_then_add() -> None:
    x = make_data(1000, 8, seed=22)
    y = make_data(1500, 8, seed=23)
    q = make_data(20, 8, seed=24)
    for metric in ("l2", "ip"):
        index = build(x, "HNSW8", metric, ef_construction=40)
        index.remove(index.ids())
        assert len(index) == 0 and index.n_deleted == 1000
        D, I = index.search(q, 5)
        assert (I == -1).all() and (D == pad_value(metric)).all()
        D, I = index.search(q, 5, filter=np.arange(10))
        assert (I == -1).all()
        lims, Dr, Ir = index.range_search(q, 1e6 if metric == "l2" else -1e6)
        assert (lims == 0).all() and len(Ir) == 0
        check_graph(index)
        ids = np.arange(5000, 6500)
        index.add(y, ids=ids)  # 1000 reused slots, then 500 new ones
        assert len(index) == 1500 and index.n_deleted == 0
        check_graph(index)
        _, gt = brute_force(y, q, 10, metric, ids)
        assert recall(index.search(q, 10, ef_search=64)[1], gt) >= 0.95


def test_memory_accounting_and_reuse() -> None:
    x = make_data(3000, 32, seed=54)
    per_vector = {}
    for spec in ("HNSW16", "HNSW16,F16", "HNSW16,SQ8", "HNSW32"):
        index = build(x, spec, ef_construction=32)
        per = index.memory_usage() / len(index)
        assert abs(index.bytes_per_vector - per) <= 0.01 * per, (spec, per)
        per_vector[spec] = index.bytes_per_vector
    assert per_vector["HNSW16,SQ8"] < per_vector["HNSW16,F16"] < per_vector["HNSW16"]
    assert per_vector["HNSW16"] < per_vector["HNSW32"]
    assert per_vector["HNSW16"] >= 4 * (1 + 2 * 16) + 4 * 32 + 8  # links, code, id
    # re-filling tombstones costs no new storage (only the free list's few bytes)
    index = build(x, "HNSW16", ef_construction=32)
    index.remove(np.arange(1000))
    before = index.memory_usage()
    index.add(x[:1000], ids=np.arange(1000) + 5000)
    assert index.memory_usage() <= before + 16 * 1000


# ------------------------------------------------------------------------------ filters
@pytest.fixture(scope="module")
def filter_index() -> tuple[annx.Index, np.ndarray, np.ndarray]:
    """60k vectors of d=8: a 50 % filter admits > 20000, so the walk serves it."""
    x = make_data(60000, 8, seed=25)
    q = make_data(100, 8, seed=26)
    return build(x, "HNSW8", ef_construction=64), x, q


@pytest.mark.parametrize("fraction", [0.5, 0.1, 0.01])
def test_filter_recall(
    filter_index: tuple[annx.Index, np.ndarray, np.ndarray], fraction: float
) -> None:
    index, x, q = filter_index
    n = len(x)
    mask = np.random.default_rng(27).random(n) < fraction
    allowed = np.nonzero(mask)[0]
    Dg, Ig = brute_force(x[allowed], q, 10, "l2", allowed)
    D, I = index.search(q, 10, ef_search=32, filter=allowed)
    assert np.isin(I, allowed).all()
    Dm, Im = index.search(q, 10, ef_search=32, filter=mask)
    np.testing.assert_array_equal(Im, I)
    np.testing.assert_array_equal(Dm, D)
    assert_sound(D, I, lambda ids: x[ids], q, 10, "l2", n_full=10)
    if len(allowed) <= 20000:  # documented: answered by exact search
        assert_knn(D, I, x[allowed], q, 10, "l2", ids=allowed)
    else:
        r = recall(I, Ig)  # measured 0.983 to 0.994
        assert r >= 0.95, f"filter {fraction}: recall {r:.4f}"
        # the walk (not an exact scan) served it: a small list misses some neighbours
        r16 = recall(index.search(q, 10, ef_search=16, filter=allowed)[1], Ig)
        assert r16 < 1.0, "the 50 % filter no longer exercises the graph walk; resize the test"


def test_filter_admitting_nothing(filter_index: tuple[annx.Index, np.ndarray, np.ndarray]) -> None:
    index, x, q = filter_index
    for filt in (
        np.array([], np.int64),
        np.zeros(len(x), bool),
        np.array([10**9, 10**9 + 1]),  # ids not in the index
        np.zeros(0, bool),
    ):
        D, I = index.search(q[:5], 10, filter=filt)
        assert (I == -1).all() and (D == np.inf).all()
        lims, Dr, Ir = index.range_search(q[:5], 100.0, filter=filt)
        assert len(Ir) == 0 and (lims == 0).all()


@pytest.mark.parametrize("metric", METRICS)
def test_filter_with_tombstones(metric: str) -> None:
    x = make_data(3000, 12, seed=28)
    q = make_data(40, 12, seed=29)
    index = build(x, "HNSW8", metric, ef_construction=40)
    removed = np.arange(1, 3000, 4)
    index.remove(removed)
    allowed = np.arange(0, 3000, 3)
    admitted = np.setdiff1d(allowed, removed)
    mask = np.zeros(3000, bool)
    mask[allowed] = True
    for filt in (allowed, mask, mask[:1500]):
        adm = admitted if len(filt) != 1500 else admitted[admitted < 1500]
        D, I = index.search(q, 15, filter=filt)
        assert_knn(D, I, x[adm], q, 15, metric, ids=adm)


# ------------------------------------------------------------------------- range search
@pytest.mark.parametrize(
    ("spec", "metric"), [("HNSW16", "l2"), ("HNSW16", "cos"), ("HNSW16,SQ8,Refine(F32)", "ip")]
)
@pytest.mark.parametrize("fraction", [0.005, 0.05])
def test_range_search(spec: str, metric: str, fraction: float) -> None:
    """Small radius (about 25 per query) and one past ef_search (about 250 per query)."""
    x = make_data(5000, 16, seed=30)
    q = make_data(50, 16, seed=31)
    s = scores(x, q, metric)
    radius = float(np.quantile(s, fraction if metric == "l2" else 1 - fraction))
    index = build(x, spec, metric, ef_construction=64)
    lims, D, I = index.range_search(q, radius, ef_search=16)
    assert lims.shape == (len(q) + 1,) and lims[0] == 0 and (np.diff(lims) >= 0).all()
    assert len(D) == len(I) == lims[-1]
    ref = brute_range(x, q, radius, metric)
    hits = total = 0
    for r in range(len(q)):
        got_d, got = D[lims[r] : lims[r + 1]], I[lims[r] : lims[r + 1]]
        assert len(set(got.tolist())) == len(got), f"repeated id in query {r}"
        true = s[r, got]
        np.testing.assert_allclose(got_d, true, rtol=1e-4, atol=1e-4)
        # nothing outside the radius (up to float32 rounding)
        assert (true < radius + 1e-4).all() if metric == "l2" else (true > radius - 1e-4).all()
        steps = np.diff(got_d.astype(np.float64))
        assert (steps >= 0).all() if metric == "l2" else (steps <= 0).all()
        hits += len(set(got.tolist()) & set(ref[r][1].tolist()))
        total += len(ref[r][1])
    assert total > 20 * len(q) * (fraction / 0.005) * 0.5  # the radius is meaningful
    assert hits / total >= 0.95, f"range recall {hits / total:.4f}"  # measured >= 0.99


@pytest.mark.parametrize("metric", ["l2", "cos"])
def test_range_search_filter_and_tombstones(metric: str) -> None:
    x = make_data(4000, 16, seed=32)
    q = make_data(30, 16, seed=33)
    s = scores(x, q, metric)
    radius = float(np.quantile(s, 0.05 if metric == "l2" else 0.95))
    index = build(x, "HNSW16", metric, ef_construction=64)
    removed = np.arange(0, 4000, 4)
    index.remove(removed)
    allowed = np.arange(1, 4000, 2)
    for filt in (None, allowed):
        ids = np.setdiff1d(np.arange(4000), removed)
        if filt is not None:
            ids = np.intersect1d(ids, filt)
        lims, D, I = index.range_search(q, radius, filter=filt)
        assert not np.isin(I, removed).any()
        assert filt is None or np.isin(I, filt).all()
        ref = brute_range(x[ids], q, radius, metric, ids)
        total = sum(len(r[1]) for r in ref)
        hits = sum(
            len(set(I[lims[r] : lims[r + 1]].tolist()) & set(ref[r][1].tolist()))
            for r in range(len(q))
        )
        assert hits / total >= 0.97, f"filter={filt is not None}: {hits / total:.4f}"


# -------------------------------------------------------------------------- persistence
PERSIST = [
    ("HNSW8", "l2"),
    ("HNSW8,F16", "cos"),
    ("HNSW8,BF16", "ip"),
    ("HNSW8,SQ8", "l2"),
    ("HNSW8,SQ8,Refine(F32)", "cos"),
    ("HNSW8,SQ8,Refine(F16)", "ip"),
]
PQ = make_data(10, 12, seed=34)


def make_persist(spec: str, metric: str, n: int = 400) -> annx.Index:
    x = make_data(n, 12, seed=35)
    index = annx.index_factory(12, spec, metric, ef_construction=50, seed=3)
    index.train(x)
    index.add(x[: n // 2])
    index.add(x[n // 2 :], ids=np.arange(n // 2) * 7 + 1000)
    index.remove(index.ids()[::5])  # leaves tombstones
    index.ef_construction = 77
    return index


def assert_same_hnsw(a: annx.Index, b: annx.Index) -> None:
    assert (b.spec, b.metric, b.d) == (a.spec, a.metric, a.d)
    assert (b.ntotal, b.next_id, b.n_deleted) == (a.ntotal, a.next_id, a.n_deleted)
    assert b.ef_construction == a.ef_construction
    assert b.bytes_per_vector == a.bytes_per_vector
    np.testing.assert_array_equal(b.ids(), a.ids())
    assert b._impl.hnsw_level_counts() == a._impl.hnsw_level_counts()
    assert b._impl.hnsw_max_level() == a._impl.hnsw_max_level()
    check_graph(b)
    for kw in ({}, {"ef_search": 10}, {"filter": np.arange(0, 3000, 3)}):
        for k in (1, 10, 50):
            Da, Ia = a.search(PQ, k, **kw)
            Db, Ib = b.search(PQ, k, **kw)
            np.testing.assert_array_equal(Ib, Ia)
            np.testing.assert_array_equal(Db, Da)
    radius = 15.0 if a.metric == "l2" else 0.3
    for x, y in zip(a.range_search(PQ, radius), b.range_search(PQ, radius), strict=False):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(b.reconstruct(a.ids()), a.reconstruct(a.ids()))


@pytest.mark.parametrize(("spec", "metric"), PERSIST)
def test_round_trips(tmp_path: Path, spec: str, metric: str) -> None:
    index = make_persist(spec, metric)
    data = index.to_bytes()
    assert index.to_bytes() == data
    path = tmp_path / "h.annx"
    index.save(path)
    assert path.read_bytes() == data
    for other in (
        annx.load(path),
        annx.load(path, mmap=True),
        annx.load(path, verify=False),
        annx.load(path, mmap=True, verify=False),
        annx.from_bytes(data),
        pickle.loads(pickle.dumps(index)),
    ):
        assert_same_hnsw(index, other)
        assert other.to_bytes() == data
    info = annx.read_info(path)
    assert info["spec"] == spec and int(info["ntotal"]) == index.ntotal


@pytest.mark.parametrize(("spec", "metric"), PERSIST[:1] + PERSIST[4:5])
def test_loaded_index_accepts_adds_and_removes(tmp_path: Path, spec: str, metric: str) -> None:
    index = make_persist(spec, metric)
    path = tmp_path / "h.annx"
    index.save(path)
    on_disk = path.read_bytes()
    n_del = index.n_deleted
    x = make_data(150, 12, seed=36)
    for other in (annx.load(path), annx.load(path, mmap=True), annx.from_bytes(on_disk)):
        assert other.n_deleted == n_del  # tombstones survive the round trip
        before = nslots(other)
        other.add(x[:n_del], ids=np.arange(n_del) + 50000)
        assert other.n_deleted == 0 and nslots(other) == before  # they were reused
        other.add(x[n_del:], ids=np.arange(n_del, 150) + 50000)
        other.remove(np.arange(0, 150, 2) + 50000)
        check_graph(other)
        assert other.n_deleted == 75
        D, I = other.search(x[1::2], 1, ef_search=32)
        assert (I[:, 0] == np.arange(1, 150, 2) + 50000).mean() >= 0.95
    assert path.read_bytes() == on_disk  # a mapped file is never written


def test_loaded_copy_evolves_like_the_original() -> None:
    """The same add/remove sequence on an index and on its reloaded copy gives the same
    index: tombstone reuse order (like everything else) must survive save/load."""
    x = make_data(500, 12, seed=37)
    a = build(x[:400], "HNSW8", ef_construction=40, threads=1)
    a.remove([5, 3, 9, 200, 100])
    b = annx.from_bytes(a.to_bytes())
    for index in (a, b):
        index.add(x[400:], ids=np.arange(1000, 1100), threads=1)
        index.remove(np.arange(1000, 1100, 10))
        index.add(x[:7] + 1, ids=np.arange(2000, 2007), threads=1)
    np.testing.assert_array_equal(b.ids(), a.ids())
    assert b.to_bytes() == a.to_bytes()


# ------------------------------------------------------------------------- corruption
def small_file(spec: str = "HNSW4") -> bytes:
    x = make_data(60, 5, seed=38)
    index = annx.index_factory(5, spec, "l2", ef_construction=20, seed=1)
    index.train(x)
    index.add(x, threads=1)
    index.remove([3, 17, 40])
    return index.to_bytes()


def sections_of(data: bytes) -> dict[str, bytes]:
    return dict(section_bytes(data))


def replace_sections(data: bytes, **new: bytes) -> bytes:
    """A well-formed container (valid CRCs) with some sections' payloads replaced."""
    return build_container([(t, new.get(t, b)) for t, b in section_bytes(data)])


def expect_format_error(tmp_path: Path, data: bytes, what: str, raw: bool = False) -> None:
    """Every loader raises FormatError (raw=True: CRCs may be wrong, skip verification)."""
    path = tmp_path / "bad.annx"
    path.write_bytes(data)
    loaders: list[tuple[str, Callable[[], Any]]] = [
        ("load(verify=False)", lambda: annx.load(path, verify=False)),
        ("load(mmap, verify=False)", lambda: annx.load(path, mmap=True, verify=False)),
    ]
    if not raw:
        loaders += [
            ("from_bytes", lambda: annx.from_bytes(data)),
            ("load(mmap)", lambda: annx.load(path, mmap=True)),
        ]
    for name, fn in loaders:
        with pytest.raises(annx.FormatError):
            fn()
            pytest.fail(f"{what}: accepted by {name}")


def block_info(data: bytes) -> tuple[int, int, int]:
    man = dict(manifest_of(data))
    return int(man["hnsw_block"]), int(man["hnsw_m"]), int(man["nslots"])


def l0_list(l0: bytearray, block: int, s: int) -> tuple[int, int]:
    """(offset of the count, count) of slot s's level-0 list."""
    off = s * block
    return off, struct.unpack_from("<I", l0, off)[0]


def first_with_links(data: bytes, min_links: int = 2) -> int:
    block, _, n = block_info(data)
    l0 = bytearray(sections_of(data)["HNSWL0"])
    return next(s for s in range(n) if l0_list(l0, block, s)[1] >= min_links)


def patch_l0(data: bytes, fn: Callable[[bytearray, int, int], None]) -> bytes:
    block, _, _ = block_info(data)
    l0 = bytearray(sections_of(data)["HNSWL0"])
    s = first_with_links(data)
    fn(l0, *l0_list(l0, block, s))
    return replace_sections(data, HNSWL0=bytes(l0))


def upper_arrays(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    secs = sections_of(data)
    return (
        np.frombuffer(secs["HNSWLVL"], np.uint8).copy(),
        np.frombuffer(secs["HNSWUOFF"], np.uint32).copy(),
        np.frombuffer(secs["HNSWUP"], np.uint32).copy(),
    )


def bad_upper_link(data: bytes) -> bytes:
    lvl, uoff, up = upper_arrays(data)
    s = next(int(s) for s in np.nonzero(lvl >= 1)[0] if up[uoff[s]] >= 1)
    up[uoff[s] + 1] = 0xFFFFFFFF
    return replace_sections(data, HNSWUP=up.tobytes())


def aliased_upper_lists(data: bytes) -> bytes:
    """Two level >= 1 nodes sharing one upper list (each list valid on its own)."""
    lvl, uoff, _ = upper_arrays(data)
    a, b = (int(s) for s in np.nonzero(lvl == 1)[0][:2])
    uoff[b] = uoff[a]
    return replace_sections(data, HNSWUOFF=uoff.tobytes())


def tombstone_promoted(data: bytes) -> bytes:
    """A level-0 tombstone given level 1: its 'upper list' is another node's (offset 0)."""
    lvl, uoff, _ = upper_arrays(data)
    assert lvl[17] == 0 and uoff[17] == 0  # slot 17 holds removed id 17
    lvl[17] = 1
    return replace_sections(data, HNSWLVL=lvl.tobytes())


def upper_offset_out_of_range(data: bytes) -> bytes:
    lvl, uoff, up = upper_arrays(data)
    s = int(np.nonzero(lvl >= 1)[0][0])
    uoff[s] = len(up) - 1
    return replace_sections(data, HNSWUOFF=uoff.tobytes())


def level_above_max(data: bytes) -> bytes:
    lvl, _, _ = upper_arrays(data)
    lvl[0] = int(dict(manifest_of(data))["hnsw_max_level"]) + 1
    return replace_sections(data, HNSWLVL=lvl.tobytes())


def del_flag(data: bytes, slot: int, value: int) -> bytes:
    d = bytearray(sections_of(data)["HNSWDEL"])
    d[slot] = value
    return replace_sections(data, HNSWDEL=bytes(d))


def entry_not_on_top(data: bytes) -> bytes:
    lvl, _, _ = upper_arrays(data)
    return with_manifest(data, hnsw_entry=int(np.nonzero(lvl == 0)[0][0]))


def set_link(value: Callable[[int, bytearray, int], int]) -> Callable[[bytes], bytes]:
    def go(data: bytes) -> bytes:
        block = block_info(data)[0]

        def fn(l0: bytearray, off: int, cnt: int) -> None:
            struct.pack_into("<I", l0, off + 4, value(off // block, l0, off))

        return patch_l0(data, fn)

    return go


CRAFTED: dict[str, Callable[[bytes], bytes]] = {
    "level-0 link 0xFFFFFFFF": set_link(lambda s, l0, off: 0xFFFFFFFF),
    "level-0 link = nslots": set_link(lambda s, l0, off: 60),
    "level-0 self link": set_link(lambda s, l0, off: s),
    "level-0 duplicate link": set_link(lambda s, l0, off: struct.unpack_from("<I", l0, off + 8)[0]),
    "level-0 count > 2M": lambda d: patch_l0(
        d, lambda l0, off, cnt: struct.pack_into("<I", l0, off, 2 * 4 + 1)
    ),
    "level-0 count 0xFFFFFFFF": lambda d: patch_l0(
        d, lambda l0, off, cnt: struct.pack_into("<I", l0, off, 0xFFFFFFFF)
    ),
    "upper link 0xFFFFFFFF": bad_upper_link,
    "upper offset out of range": upper_offset_out_of_range,
    "level above max_level": level_above_max,
    "live slot flagged deleted": lambda d: del_flag(d, 0, 1),
    "tombstone flagged live": lambda d: del_flag(d, 3, 0),
    "deleted flag 2": lambda d: del_flag(d, 3, 2),
    "entry not on the top level": entry_not_on_top,
    "entry = nslots": lambda d: with_manifest(d, hnsw_entry=60),
    "entry -1 with nodes": lambda d: with_manifest(d, hnsw_entry=-1),
    "max_level too high": lambda d: with_manifest(
        d, hnsw_max_level=int(dict(manifest_of(d))["hnsw_max_level"]) + 1
    ),
    "M differs from spec": lambda d: with_manifest(d, hnsw_m=5),
    "block size differs": lambda d: with_manifest(d, hnsw_block=block_info(d)[0] + 64),
    "HNSWL0 one block short": lambda d: replace_sections(
        d, HNSWL0=sections_of(d)["HNSWL0"][: -block_info(d)[0]]
    ),
    "HNSWUP not a multiple of 4": lambda d: replace_sections(
        d, HNSWUP=sections_of(d)["HNSWUP"] + b"\0\0"
    ),
    "HNSWLVL missing": lambda d: build_container(
        [(t, b) for t, b in section_bytes(d) if t != "HNSWLVL"]
    ),
    "HNSWDEL short": lambda d: replace_sections(d, HNSWDEL=sections_of(d)["HNSWDEL"][:-1]),
    "upper lists aliased": aliased_upper_lists,
    "tombstone promoted onto another node's upper list": tombstone_promoted,
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_graph_rejected(tmp_path: Path, case: str) -> None:
    """Well-formed files (valid CRCs) with an invalid graph: FormatError everywhere."""
    data = small_file()
    assert annx.from_bytes(data)._impl.hnsw_check_graph() == ""
    expect_format_error(tmp_path, CRAFTED[case](data), case)


def test_invalid_link_without_crc_fix(tmp_path: Path) -> None:
    """A link set to 0xFFFFFFFF in place (stale CRC): the CRC catches it when verifying,
    the graph check when not."""
    data = small_file()
    info = parse(data)
    off = next(o for t, o, _ in info["sections"] if t == "HNSWL0")
    block, _, _ = block_info(data)
    s = first_with_links(data)
    bad = bytearray(data)
    struct.pack_into("<I", bad, off + s * block + 4, 0xFFFFFFFF)
    expect_format_error(tmp_path, bytes(bad), "raw 0xFFFFFFFF link", raw=True)
    with pytest.raises(annx.FormatError):
        annx.from_bytes(bytes(bad))
    with pytest.raises(annx.FormatError):
        annx.load(tmp_path / "bad.annx")


@pytest.mark.parametrize("spec", ["HNSW4", "HNSW4,SQ8,Refine(F16)"])
def test_bit_flips_in_graph_sections(tmp_path: Path, spec: str) -> None:
    """Flips in the HNSW sections: FormatError when verifying; without verification
    either FormatError or an index that works and keeps a valid graph (never a crash)."""
    data = small_file(spec)
    info = parse(data)
    block, _, _ = block_info(data)
    g = np.random.default_rng(39)
    path = tmp_path / "flip.annx"
    q = make_data(3, 5, seed=40)
    accepted = rejected = 0
    for tag, off, length in info["sections"]:
        if not tag.startswith("HNSW") and tag != "REFINE":
            continue
        positions = g.integers(0, length, 24)
        if tag == "HNSWL0":  # mostly in the link area of the blocks
            positions = (positions // block) * block + positions % 28
        for pos in positions.tolist():
            bad = bytearray(data)
            bad[off + pos] ^= 1 << int(g.integers(0, 8))
            with pytest.raises(annx.FormatError):
                annx.from_bytes(bytes(bad))
            path.write_bytes(bytes(bad))
            try:
                index = annx.load(path, mmap=bool(pos % 2), verify=False)
            except annx.FormatError:
                rejected += 1
                continue
            accepted += 1
            check_graph(index)
            index.search(q, 5)
            index.range_search(q, 1.0)
            index.add(make_data(10, 5, seed=pos), ids=np.arange(10) + 900)
            index.remove(index.ids()[:5])
            index.add(make_data(10, 5, seed=pos + 1), ids=np.arange(10) + 950)
            msg = index._impl.hnsw_check_graph()
            assert msg == "", f"{tag} byte {pos}: accepted, then after add/remove: {msg}"
            index.search(q, 5)
    assert accepted > 0 and rejected > 0


def test_truncated_files(tmp_path: Path) -> None:
    data = small_file("HNSW4,SQ8,Refine(F32)")
    info = parse(data)
    cuts = {1, 64, info["toc"], len(data) - 1}
    for _, off, length in info["sections"]:
        cuts |= {off, off + 1, off + length // 2, off + length - 1}
    path = tmp_path / "t.annx"
    for n in sorted(cuts):
        path.write_bytes(data[:n])
        with pytest.raises(annx.FormatError):
            annx.from_bytes(data[:n])
        with pytest.raises(annx.FormatError):
            annx.load(path)
        with pytest.raises(annx.FormatError):
            annx.load(path, mmap=True, verify=False)


# ------------------------------------------------------------------------- concurrency
@pytest.mark.parametrize(("spec", "metric"), [("HNSW8", "l2"), ("HNSW8,SQ8,Refine(F32)", "cos")])
def test_search_during_add_and_remove(spec: str, metric: str) -> None:
    """Searches racing adds (linking runs alongside searches) and removes.

    A row may or may not hold vectors of a running add, but never an id removed before
    the search began, never an id not yet being added, never a repeat, never padding
    (>= k vectors are always live), and each distance is the true one of its id.
    """
    d, k = 16, 10
    pool = make_data(7000, d, seed=41)  # the vector of id i is pool[i]
    queries = make_data(64, d, seed=42)
    index = annx.index_factory(d, spec, metric, ef_construction=40, seed=0)
    index.train(pool)
    index.add(pool[:2000], ids=np.arange(2000))
    state = {"announced": 2000, "searches": 0, "snapshots": 0}
    removed_log: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        g = np.random.default_rng(43)
        try:
            for lo in range(2000, 7000, 250):
                state["announced"] = lo + 250  # ids below this may appear from now on
                index.add(pool[lo : lo + 250], ids=np.arange(lo, lo + 250))
                gone = g.choice(index.ids(), 100, replace=False)
                index.remove(gone)
                removed_log.extend(gone.tolist())  # after remove returned
        finally:
            stop.set()

    def searcher(seed: int) -> Callable[[], None]:
        def go() -> None:
            g = np.random.default_rng(seed)
            while not stop.is_set():
                n_gone = len(removed_log)
                q = queries[g.integers(0, 64, 6)]
                kw: dict[str, Any] = {"ef_search": int(g.integers(k, 64))}
                if g.random() < 0.3:
                    kw["filter"] = np.arange(0, 7000, 2)
                D, I = index.search(q, k, **kw)
                hi = state["announced"]
                assert_sound(D, I, lambda ids: pool[ids], q, k, metric, n_full=k)
                assert (I < hi).all(), f"id never added: {I.max()} >= {hi}"
                assert not np.isin(I, removed_log[:n_gone]).any(), "removed id returned"
                if "filter" in kw:
                    assert (I % 2 == 0).all()
                if g.random() < 0.2:
                    n_gone = len(removed_log)
                    lims, Dr, Ir = index.range_search(q[:2], 10.0 if metric == "l2" else 0.5)
                    assert not np.isin(Ir, removed_log[:n_gone]).any()
                    assert (Ir < state["announced"]).all()
                state["searches"] += 1

        return go

    def snapshotter() -> None:
        while not stop.is_set():
            copy = annx.from_bytes(index.to_bytes())  # waits for a running add's linking
            assert copy._impl.hnsw_check_graph() == ""
            state["snapshots"] += 1

    run_threads([writer, snapshotter] + [searcher(44 + i) for i in range(3)])
    assert state["searches"] > 20 and state["snapshots"] > 0
    check_graph(index)
    assert len(index) == 7000 - 20 * 100
    live = index.ids()
    _, gt = brute_force(pool[live], queries, k, metric, live)
    assert recall(index.search(queries, k, ef_search=64)[1], gt) >= 0.95


def test_concurrent_adds_serialise() -> None:
    """Adds from several threads (mutations run one at a time): nothing lost."""
    x = make_data(1600, 8, seed=45)
    index = annx.index_factory(8, "HNSW8", "ip", ef_construction=32)

    def adder(t: int) -> Callable[[], None]:
        def go() -> None:
            for j in range(4):
                lo = t * 400 + j * 100
                index.add(x[lo : lo + 100], ids=np.arange(lo, lo + 100))
                index.remove([lo])

        return go

    run_threads([adder(t) for t in range(4)])
    assert len(index) == 1600 - 16
    # later adds (of any thread) reuse the tombstones
    assert index.n_deleted == nslots(index) - len(index) and nslots(index) <= 1600
    check_graph(index)
    live = index.ids()
    _, gt = brute_force(x[live], x[:50], 10, "ip", live)
    assert recall(index.search(x[:50], 10, ef_search=64)[1], gt) >= 0.95


@needs_signals
def test_interrupted_add_adds_nothing() -> None:
    """Ctrl-C during an add (which also reuses tombstones): nothing of it stays visible,
    and the index stays valid, savable and loadable."""
    x = make_data(60000, 16, seed=52)
    q = make_data(30, 16, seed=53)
    index = build(x[:2000])
    index.remove(np.arange(0, 2000, 4))
    ids = index.ids()
    interrupt_latency(lambda: index.add(x[2000:], ids=np.arange(2000, 60000)), after=0.2)
    np.testing.assert_array_equal(index.ids(), ids)
    assert 2000 not in index and 59999 not in index
    D, I = index.search(q, 10)
    assert np.isin(I, ids).all()
    copy = annx.from_bytes(index.to_bytes())  # a saved index must load again
    np.testing.assert_array_equal(copy.ids(), ids)
    check_graph(index)
    index.add(x[2000:3000], ids=np.arange(2000, 3000))
    check_graph(index)
    live = index.ids()
    _, gt = brute_force(x[live], q, 10, "l2", live)
    assert recall(index.search(q, 10, ef_search=64)[1], gt) >= 0.95


# ---------------------------------------------------------------------------- bad input
@pytest.fixture
def small() -> annx.Index:
    x = make_data(50, 6, seed=46)
    index = build(x[:30], "HNSW8", "cos", ef_construction=20)
    index.add(x[30:], ids=np.arange(20) + 1000)
    index.remove([3, 1005])
    return index


def unchanged_after(index: annx.Index, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
    """fn(*args, **kw) raises InvalidArgumentError and leaves the index as it was."""
    before = index.to_bytes()
    with pytest.raises(annx.InvalidArgumentError):
        fn(*args, **kw)
    assert index.to_bytes() == before


def test_non_finite_input(small: annx.Index) -> None:
    for bad in (np.nan, np.inf, -np.inf):
        x = make_data(4, 6, seed=47)
        x[2, 3] = bad
        unchanged_after(small, small.add, x)
        unchanged_after(small, small.add, x, ids=np.arange(4) + 5000)
        unchanged_after(small, small.search, x, 3)
        unchanged_after(small, small.range_search, x, 0.5)
    check_graph(small)


def test_wrong_shapes_and_k(small: annx.Index) -> None:
    q = make_data(2, 6, seed=48)
    unchanged_after(small, small.add, make_data(3, 7))
    unchanged_after(small, small.search, make_data(3, 5), 2)
    for k in (0, -1, 1.5, True):
        unchanged_after(small, small.search, q, k)
    for ef in (0, -3, 2.5, True, 2**31):
        unchanged_after(small, small.search, q, 2, ef_search=ef)
        unchanged_after(small, small.range_search, q, 0.5, ef_search=ef)
    unchanged_after(small, small.search, q, 2, rerank=10)  # no Refine codec
    unchanged_after(small, small.search, q, 2, nprobe=3)
    unchanged_after(small, small.search, q, 2, ef=3)
    with pytest.raises(annx.InvalidArgumentError):
        annx.index_factory(6, "Flat").search(q, 2, ef_search=10)
    for value in (0, -1, 2**21):
        with pytest.raises(annx.InvalidArgumentError):
            small.ef_construction = value
    assert small.ef_construction == 20


def test_k_beyond_ntotal_and_empty_index(small: annx.Index) -> None:
    q = make_data(3, 6, seed=49)
    x = small.reconstruct(small.ids())
    D, I = small.search(q, 60, ef_search=10)
    # cos on normalised vectors (reconstruct returns the stored, normalised ones) is ip
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    assert_knn(D, I, x, qn, 60, "ip", ids=small.ids())
    assert (I[:, 48:] == -1).all() and (D[:, 48:] == -np.inf).all()
    for spec in ("HNSW8", "HNSW8,SQ8,Refine(F32)"):
        empty = annx.index_factory(6, spec, "l2")
        if spec.endswith(")"):
            empty.train(make_data(10, 6))
        D, I = empty.search(q, 4)
        assert (I == -1).all() and (D == np.inf).all()
        lims, Dr, Ir = empty.range_search(q, 10.0)
        assert (lims == 0).all() and len(Ir) == 0
        assert empty._impl.hnsw_max_level() == -1 and empty.n_deleted == 0
        assert empty._impl.hnsw_check_graph() == ""


def test_bad_ids(small: annx.Index) -> None:
    x = make_data(3, 6, seed=50)
    unchanged_after(small, small.remove, [12345])
    unchanged_after(small, small.remove, [3])  # already removed
    unchanged_after(small, small.remove, [1, 2, 1])
    unchanged_after(small, small.remove, [-1])
    unchanged_after(small, small.add, x, ids=[7000, 7001, 7000])
    unchanged_after(small, small.add, x, ids=[7000, 7001, 1])  # 1 is present
    unchanged_after(small, small.add, x, ids=[7000, -2, 7001])
    unchanged_after(small, small.add, x, ids=[7000, 7001])
    small.add(x, ids=[3, 1005, 7000])  # removed ids may come back
    assert 3 in small and 1005 in small and small.n_deleted == 0
    check_graph(small)


def test_sq8_needs_training() -> None:
    x = make_data(20, 6, seed=51)
    for spec in ("HNSW8,SQ8", "HNSW8,SQ8,Refine(F16)"):
        index = annx.index_factory(6, spec)
        assert not index.is_trained
        with pytest.raises(annx.NotTrainedError):
            index.add(x)
        with pytest.raises(annx.NotTrainedError):
            index.search(x, 2)
        assert len(index) == 0
        index.train(x)
        index.add(x)
        assert len(index) == 20
        check_graph(index)


@pytest.mark.parametrize(
    "spec",
    [
        "HNSW",
        "HNSWx",
        "HNSW1",
        "HNSW0",
        "HNSW-4",
        "HNSW 8",
        "HNSW513",
        "HNSW32,Refine(F32)",
        "HNSW32,F16,Refine(F16)",
        "HNSW32,BF16,Refine(F16)",
        "HNSW32,SQ8,Refine(SQ8)",
        "HNSW32,SQ8,Foo",
        "HNSW32,SQ8,Refine(F32),F16",
        "HNSW32,",
    ],
)
def test_bad_specs(spec: str) -> None:
    with pytest.raises(annx.InvalidArgumentError):
        annx.index_factory(8, spec)


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("HNSW32", "HNSW32"),
        ("HNSW2", "HNSW2"),
        ("HNSW16,F16", "HNSW16,F16"),
        ("HNSW16,BF16,Refine(F32)", "HNSW16,BF16,Refine(F32)"),
        ("HNSW16,SQ8,Refine(F16)", "HNSW16,SQ8,Refine(F16)"),
    ],
)
def test_good_specs(spec: str, canonical: str) -> None:
    index = annx.index_factory(8, spec, ef_construction=33, seed=9)
    assert index.spec == canonical and index.ef_construction == 33
    assert index.n_deleted == 0 and index.bytes_per_vector > 0


# --------------------------------------------------------------------------- property
@given(
    n=st.integers(1, 300),
    d=st.integers(1, 16),
    k=st.integers(1, 20),
    metric=st.sampled_from(METRICS),
    m=st.sampled_from([2, 4, 8]),
    seed=st.integers(0, 2**32 - 1),
)
def test_full_candidate_list_is_exact_on_connected_graphs(
    n: int, d: int, k: int, metric: str, m: int, seed: int
) -> None:
    """With ef_search >= n the walk expands every node it can reach from its start.

    Small HNSW graphs (here as in hnswlib) are not always strongly connected on level 0,
    mostly for M=2 and for "ip"; the result must then still be sound and full, and it
    must be exact whenever every node reaches every other.
    """
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, d)).astype(np.float32)
    q = g.standard_normal((5, d)).astype(np.float32)
    index = build(x, f"HNSW{m}", metric, seed=seed % 1000, threads=1)
    check_graph(index)
    D, I = index.search(q, k, ef_search=max(n, k))
    assert_sound(D, I, lambda ids: x[ids], q, k, metric, n_full=min(k, n))
    connected = level0_strongly_connected(index, n)
    event(f"M={m} level 0 strongly connected: {connected}")
    if connected:
        assert_knn(D, I, x, q, k, metric)


def test_range_search_rejects_rerank() -> None:
    """range_search re-ranks every candidate, so a rerank keyword is an error, not ignored."""
    x = make_data(200, 8, seed=90)
    index = annx.index_factory(8, "HNSW8,SQ8,Refine(F32)")
    index.train(x)
    index.add(x)
    with pytest.raises(annx.InvalidArgumentError, match="rerank"):
        index.range_search(x[:2], 1.0, rerank=10)
    index.range_search(x[:2], 1.0, ef_search=32)
