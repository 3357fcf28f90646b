"""Threads: concurrent searches, searches racing mutations, thread settings, Ctrl-C.

Every worker thread is joined with a timeout so that a deadlock fails the test instead
of hanging the session.
"""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from conftest import FLAT_SPECS, METRICS, make_data, scores
from thread_helpers import interrupt_latency, needs_signals, run_threads

import annx


@pytest.fixture
def restore_threads() -> Iterator[int]:
    before = annx.get_num_threads()
    yield before
    annx.set_num_threads(before)


# --------------------------------------------------------------- thread settings
def test_set_get_num_threads_round_trip(restore_threads: int) -> None:
    assert isinstance(restore_threads, int) and restore_threads >= 1
    for n in (1, 3, 8, 1, restore_threads):
        annx.set_num_threads(n)
        assert annx.get_num_threads() == n
    assert annx.config()["threads"] == restore_threads


def test_results_do_not_depend_on_thread_count(restore_threads: int) -> None:
    x = make_data(40000, 16, seed=1)
    q = make_data(33, 16, seed=2)
    index = annx.index_factory(16, "Flat", "l2")
    index.add(x)
    annx.set_num_threads(1)
    ref = index.search(q, 10), index.search(q[:1], 10)
    for n in (2, 4, 7):
        annx.set_num_threads(n)
        got = index.search(q, 10), index.search(q[:1], 10)
        for (Dr, Ir), (Dg, Ig) in zip(ref, got, strict=False):
            np.testing.assert_array_equal(Ig, Ir)
            np.testing.assert_array_equal(Dg, Dr)


def test_num_threads_is_process_wide(restore_threads: int) -> None:
    seen: list[int] = []
    annx.set_num_threads(3)
    run_threads([lambda: seen.append(annx.get_num_threads())])
    assert seen == [3]


# ------------------------------------------------------------- concurrent searches
def test_concurrent_searches_match_serial() -> None:
    d = 24
    x = make_data(6000, d, seed=3)
    indexes = {}
    for spec in FLAT_SPECS:
        for metric in METRICS:
            ix = annx.index_factory(d, spec, metric)
            ix.train(x)
            ix.add(x, ids=np.arange(len(x)) * 2 + 1)
            indexes[spec, metric] = ix
    g = np.random.default_rng(4)
    allowed = np.sort(g.choice(len(x), 500, replace=False)) * 2 + 1
    jobs: list[tuple[Any, ...]] = []
    for (_spec, metric), ix in indexes.items():
        for nq in (1, 40):
            q = make_data(nq, d, seed=nq + len(jobs))
            jobs.append(("search", ix, q, {}))
            jobs.append(("search", ix, q, {"filter": allowed}))
            if nq > 1:
                jobs.append(("search", ix, q, {"threads": 1}))
            else:
                radius = 15.0 if metric == "l2" else 0.3
                jobs.append(("range", ix, q, {"radius": radius}))

    def run(job: tuple[Any, ...]) -> tuple[np.ndarray, ...]:
        kind, ix, q, kw = job
        if kind == "search":
            return ix.search(q, 8, **kw)
        return ix.range_search(q, **kw)

    serial = [run(j) for j in jobs]
    results: dict[int, list[tuple[np.ndarray, ...]]] = {t: [] for t in range(8)}

    def worker(t: int) -> Callable[[], None]:
        def go() -> None:
            order = np.random.default_rng(100 + t).permutation(len(jobs))
            for i in order:
                results[t].append((i, run(jobs[i])))

        return go

    run_threads([worker(t) for t in range(8)])
    for t in range(8):
        assert len(results[t]) == len(jobs)
        for i, got in results[t]:
            for a, b in zip(got, serial[i], strict=False):
                np.testing.assert_array_equal(a, b)


# -------------------------------------------------------- searches racing mutations
@pytest.mark.parametrize("spec", ["Flat", "Flat,F16"])
def test_search_during_add_and_remove(spec: str) -> None:
    d, k = 16, 12
    n_base, group, n_groups = 2000, 100, 12
    metric = "l2"
    base = make_data(n_base, d, seed=5)
    extra = make_data(group * n_groups, d, seed=6)
    extra_ids = np.arange(len(extra), dtype=np.int64) + 100000
    index = annx.index_factory(d, spec, metric)
    index.add(base)
    # the stored (decoded) vector of every id that may ever be present
    probe = annx.index_factory(d, spec, metric)
    probe.add(extra, ids=extra_ids)
    decoded = np.concatenate([index.reconstruct(np.arange(n_base)), probe.reconstruct(extra_ids)])
    universe = np.concatenate([np.arange(n_base), extra_ids])
    row_of = np.full(int(extra_ids.max()) + 1, -1, dtype=np.int64)
    row_of[universe] = np.arange(len(universe))

    queries = make_data(24, d, seed=7)
    true = scores(decoded, queries, metric)  # [nq, universe]
    base_sorted = np.sort(true[:, :n_base], axis=1)
    stop = threading.Event()
    checked = {"rows": 0, "range": 0, "snap": 0, "mutations": 0}

    def check_rows(qi: np.ndarray, D: np.ndarray, I: np.ndarray) -> None:
        assert (I >= 0).all(), "padding with more than k vectors present"
        assert (row_of[np.minimum(I, len(row_of) - 1)] >= 0).all() and (I < len(row_of)).all(), (
            f"unknown id in {I}"
        )
        for r in range(len(qi)):
            ids = I[r]
            assert len(set(ids.tolist())) == k, f"repeated id: {ids}"
            assert (np.diff(D[r]) >= 0).all(), f"unsorted row: {D[r]}"
            want = true[qi[r], row_of[ids]]
            np.testing.assert_allclose(D[r], want, rtol=1e-4, atol=1e-4)
            # every base vector (never removed) better than the worst result is present
            better = base_sorted[qi[r]] < D[r, -1] - 1e-3
            n_better = int(better.sum())
            assert int((ids < n_base).sum()) >= n_better, "a base vector is missing"
        checked["rows"] += len(qi)

    def searcher(seed: int) -> Callable[[], None]:
        def go() -> None:
            g = np.random.default_rng(seed)
            while not stop.is_set():
                qi = g.choice(len(queries), int(g.integers(1, 9)), replace=False)
                kw: dict[str, Any] = {"threads": int(g.integers(1, 3))}
                D, I = index.search(queries[qi], k, **kw)
                check_rows(qi, D, I)
                if g.random() < 0.3:
                    lims, Dr, Ir = index.range_search(queries[qi[:1]], 8.0)
                    assert (np.diff(Dr) >= 0).all() and (Dr < 8.0).all()
                    np.testing.assert_allclose(Dr, true[qi[0], row_of[Ir]], rtol=1e-4, atol=1e-4)
                    in_base = int((Ir < n_base).sum())
                    assert (
                        in_base == int((true[qi[0], :n_base] < 8.0 - 1e-3).sum())
                        or abs(in_base - int((true[qi[0], :n_base] < 8.0).sum())) <= 2
                    )
                    checked["range"] += 1

        return go

    def snapshotter() -> None:
        while not stop.is_set():
            n = index.ntotal
            assert n >= n_base and (n - n_base) % group == 0, f"torn ntotal {n}"
            assert 0 in index and (n_base - 1) in index
            copy = annx.from_bytes(index.to_bytes())
            ids = copy.ids()
            assert copy.ntotal == len(ids) and (copy.ntotal - n_base) % group == 0
            assert np.isin(np.arange(n_base), ids).all()
            np.testing.assert_array_equal(copy.reconstruct([5, 1999]), decoded[[5, 1999]])
            checked["snap"] += 1

    def mutator() -> None:
        g = np.random.default_rng(8)
        present: list[int] = []
        t_end = time.monotonic() + 1.5
        try:
            while time.monotonic() < t_end:
                absent = [i for i in range(n_groups) if i not in present]
                if absent and (not present or g.random() < 0.6):
                    gi = int(g.choice(absent))
                    sl = slice(gi * group, (gi + 1) * group)
                    index.add(extra[sl], ids=extra_ids[sl])
                    present.append(gi)
                else:
                    gi = present.pop(int(g.integers(len(present))))
                    removed = index.remove(extra_ids[gi * group : (gi + 1) * group])
                    assert removed == group
                checked["mutations"] += 1
        finally:
            stop.set()

    run_threads([mutator, snapshotter] + [searcher(10 + i) for i in range(4)])
    assert checked["rows"] > 0 and checked["snap"] > 0 and checked["mutations"] >= 10
    # afterwards the index is exactly its final state
    live = index.ids()
    D, I = index.search(queries, k)
    rows = row_of[live]
    ref = scores(decoded[rows], queries, metric)
    order = np.argsort(ref, axis=1, kind="stable")[:, :k]
    np.testing.assert_allclose(D, np.take_along_axis(ref, order, 1), rtol=1e-4, atol=1e-4)


def test_concurrent_mutations_from_many_threads() -> None:
    """Several threads adding and removing disjoint id ranges: no lost updates."""
    d = 8
    index = annx.index_factory(d, "Flat", "ip")
    x = make_data(200, d, seed=9)

    def worker(t: int) -> Callable[[], None]:
        def go() -> None:
            ids = np.arange(200, dtype=np.int64) + 1000 * (t + 1)
            for _ in range(15):
                index.add(x, ids=ids)
                assert index.remove(ids[::2]) == 100
                assert index.remove(ids[1::2]) == 100
            index.add(x[:50], ids=ids[:50])

        return go

    run_threads([worker(t) for t in range(6)])
    assert index.ntotal == 300
    expected = np.concatenate([np.arange(50) + 1000 * (t + 1) for t in range(6)])
    np.testing.assert_array_equal(np.sort(index.ids()), np.sort(expected))
    # next_id is past every id ever used
    assert index.next_id == 6000 + 200


# ----------------------------------------------------------------------- Ctrl-C
@pytest.mark.parametrize("spec", ["Flat", "HNSW8"])
def test_writers_are_not_starved_by_searches(spec: str) -> None:
    """An add must get in while several threads search back to back without pause."""
    x = make_data(4000, 16, seed=71)
    q = make_data(64, 16, seed=72)
    index = annx.index_factory(16, spec)
    index.add(x[:3000])
    stop = threading.Event()
    written: list[bool] = []

    def searcher() -> None:
        while not stop.is_set():
            index.search(q, 10, threads=1)

    def writer() -> None:
        time.sleep(0.1)  # let the searchers get going first
        index.add(x[3000:], threads=1)
        index.remove(np.arange(100))
        written.append(True)
        stop.set()

    # run_threads fails if the writer is still waiting at its deadline.
    run_threads([searcher, searcher, searcher, writer])
    assert written
    assert len(index) == 3900


def check_still_works(index: annx.Index, q: np.ndarray, expected: tuple[np.ndarray, ...]) -> None:
    D1, I1 = index.search(q, expected[0].shape[1])
    np.testing.assert_array_equal(I1, expected[1])
    np.testing.assert_array_equal(D1, expected[0])
    n = index.ntotal
    extra = np.zeros((1, index.d), np.float32)
    # a mutation must not block: the search released its lock
    run_threads([lambda: index.add(extra, ids=[10**9])], timeout=10)
    run_threads([lambda: index.remove([10**9])], timeout=10)
    assert index.ntotal == n


@pytest.fixture(scope="module")
def big_index() -> tuple[annx.Index, np.ndarray]:
    d = 64
    x = np.random.default_rng(11).standard_normal((200000, d), dtype=np.float32)
    index = annx.index_factory(d, "Flat", "l2")
    index.add(x)
    q = np.random.default_rng(12).standard_normal((12000, d), dtype=np.float32)
    return index, q


@needs_signals
@pytest.mark.parametrize("call", ["search", "search-threads1", "search-nq1", "range_search"])
def test_keyboard_interrupt(big_index: tuple[annx.Index, np.ndarray], call: str) -> None:
    index, q = big_index
    small = q[:3]
    expected = index.search(small, 5)
    calls: dict[str, Callable[[], Any]] = {
        # explicit thread counts keep the call long enough on machines with many cores
        "search": lambda: index.search(q, 10, threads=2),
        "search-threads1": lambda: index.search(q, 10, threads=1),
        # one query at a time through the Python loop: the per-query (split) path
        "search-nq1": lambda: [index.search(q[i : i + 1], 10) for i in range(len(q))],
        "range_search": lambda: index.range_search(q, 50.0, threads=2),
    }
    latency = interrupt_latency(calls[call])
    assert latency < 1.0, f"interrupt took {latency:.2f} s"
    check_still_works(index, small, expected)


@needs_signals
def test_keyboard_interrupt_large_batch() -> None:
    """Ctrl-C latency must not grow with the number of queries in one call.

    Few base rows (two 4096-row chunks) and many queries: each chunk of the work is
    large, so this fails when cancellation is only checked between chunks.
    """
    n, d, nq = 8192, 256, 60000
    g = np.random.default_rng(13)
    index = annx.index_factory(d, "Flat", "l2")
    index.add(g.standard_normal((n, d), dtype=np.float32))
    q = g.standard_normal((nq, d), dtype=np.float32)
    expected = index.search(q[:3], 5)
    latency = interrupt_latency(lambda: index.search(q, 10))
    assert latency < 1.0, f"interrupt took {latency:.2f} s"
    check_still_works(index, q[:3], expected)
