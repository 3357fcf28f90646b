"""Correctness of the exact index family ("Flat" and its compressed codecs).

Everything is compared with a numpy float64 brute force (see conftest.py). annx works
in float32, so two candidates whose true scores differ by less than float32 rounding may
legitimately come out in either order: `assert_knn` accepts a different id only where its
true score equals the reference score at that rank within tolerance.
"""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    FLAT_SPECS,
    METRICS,
    assert_knn,
    brute_force,
    brute_range,
    make_clustered,
    make_data,
    normalised,
    pad_value,
    recall,
    scores,
    unusual_data,
)
from hypothesis import given
from hypothesis import strategies as st

import annx

RTOL, ATOL = 1e-4, 1e-5


# ---------------------------------------------------------------------------- helpers
def build(
    d: int, spec: str, metric: str, x: np.ndarray, ids: np.ndarray | None = None
) -> annx.Index:
    index = annx.index_factory(d, spec, metric)
    if not index.is_trained:
        index.train(x)
    if len(x):
        index.add(x, ids=ids)
    return index


def bf16_round(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 (round to nearest even) -> float32, in numpy."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


# ------------------------------------------------------------------- exact Flat search
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("d", [1, 3, 16, 33, 128])
def test_flat_exact_topk(metric: str, d: int) -> None:
    x = make_data(1500, d, seed=d)
    q = make_data(50, d, seed=d + 100)
    index = build(d, "Flat", metric, x)
    D, I = index.search(q, 10)
    assert_knn(D, I, x, q, 10, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_flat_exact_clustered(metric: str) -> None:
    x = make_clustered(3000, 48, seed=1)
    q = make_clustered(40, 48, seed=2)
    D, I = build(48, "Flat", metric, x).search(q, 25)
    assert_knn(D, I, x, q, 25, metric)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 3, 7, 8, 64, 1000])
def test_query_batch_sizes(metric: str, nq: int) -> None:
    d = 40
    x = make_data(2000, d, seed=5)
    q = make_data(nq, d, seed=6)
    index = build(d, "Flat", metric, x)
    D, I = index.search(q, 7)
    assert_knn(D, I, x, q, 7, metric)
    # Each query alone gives the same row as in the batch.
    for r in sorted({0, nq // 2, nq - 1}):
        D1, I1 = index.search(q[r : r + 1], 7)
        np.testing.assert_allclose(D1[0], D[r], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(I1[0], I[r])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 2, 5])
def test_large_index_few_queries(metric: str, nq: int) -> None:
    """n >= 32768 with few queries: the scan is split across threads."""
    n, d = 40000, 16
    x = make_data(n, d, seed=7)
    q = make_data(nq, d, seed=8)
    index = build(d, "Flat", metric, x)
    for k in (1, 10, 100):
        D, I = index.search(q, k)
        assert_knn(D, I, x, q, k, metric)
        D1, I1 = index.search(q, k, threads=1)
        np.testing.assert_array_equal(I1, I)
        np.testing.assert_array_equal(D1, D)
    # The split path with a filter (allowed ids spread over all chunks).
    allowed = np.arange(5, n, 997, dtype=np.int64)
    D, I = index.search(q, 20, filter=allowed)
    assert_knn(D, I, x[allowed], q, 20, metric, ids=allowed)


@pytest.mark.parametrize("spec", FLAT_SPECS)
@pytest.mark.parametrize("metric", METRICS)
def test_threads_one_vs_default_identical(spec: str, metric: str) -> None:
    d = 24
    x = make_data(3000, d, seed=9)
    index = build(d, spec, metric, x)
    for nq in (1, 4, 64):
        q = make_data(nq, d, seed=10 + nq)
        D0, I0 = index.search(q, 12)
        for threads in (1, 2, 3):
            D1, I1 = index.search(q, 12, threads=threads)
            np.testing.assert_array_equal(I1, I0)
            np.testing.assert_array_equal(D1, D0)


def test_large_index_threads_identical() -> None:
    d = 16
    x = make_data(40000, d, seed=11)
    q = make_data(1, d, seed=12)
    index = build(d, "Flat", "l2", x)
    D0, I0 = index.search(q, 50)
    for threads in (1, 2, 5):
        D1, I1 = index.search(q, 50, threads=threads)
        np.testing.assert_array_equal(I1, I0)
        np.testing.assert_array_equal(D1, D0)


@given(
    n=st.integers(0, 300),
    d=st.integers(1, 70),
    k=st.integers(1, 20),
    metric=st.sampled_from(METRICS),
    nq=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
    integer_valued=st.booleans(),
)
def test_flat_matches_numpy(
    n: int, d: int, k: int, metric: str, nq: int, seed: int, integer_valued: bool
) -> None:
    g = np.random.default_rng(seed)
    if integer_valued:  # many exact ties
        x = g.integers(-3, 4, (n, d)).astype(np.float32)
        q = g.integers(-3, 4, (nq, d)).astype(np.float32)
        if metric == "cos":  # no zero vectors for cosine
            x[np.abs(x).sum(1) == 0, 0] = 1.0
            q[np.abs(q).sum(1) == 0, 0] = -2.0
    else:
        x = g.standard_normal((n, d)).astype(np.float32)
        q = g.standard_normal((nq, d)).astype(np.float32)
    index = build(d, "Flat", metric, x)
    assert index.ntotal == n
    D, I = index.search(q, k)
    assert_knn(D, I, x, q, k, metric)
    if k > n:
        assert (I[:, n:] == -1).all()
        assert (D[:, n:] == pad_value(metric)).all()
        if metric != "l2":
            assert (D[:, n:] == -np.inf).all()


# ----------------------------------------------------------------- compressed codecs
@pytest.mark.parametrize(
    ("spec", "floor"), [("Flat,F16", 0.99), ("Flat,BF16", 0.97), ("Flat,SQ8", 0.95)]
)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("d", [32, 128])
def test_codec_recall_floor(spec: str, floor: float, metric: str, d: int) -> None:
    x = make_data(4000, d, seed=20 + d)
    q = make_data(100, d, seed=21 + d)
    index = build(d, spec, metric, x)
    D, I = index.search(q, 10)
    _, Ig = brute_force(x, q, 10, metric)
    r = recall(I, Ig)
    assert r >= floor, f"{spec} {metric} d={d}: recall@10 {r:.4f} < {floor}"


@pytest.mark.parametrize("spec", FLAT_SPECS[1:])
@pytest.mark.parametrize("metric", METRICS)
def test_codec_search_exact_on_decoded(spec: str, metric: str) -> None:
    """A compressed Flat index is an exact search over its decoded vectors."""
    d = 40
    x = make_clustered(2500, d, seed=30)
    q = make_clustered(60, d, seed=31)
    index = build(d, spec, metric, x)
    decoded = index.reconstruct(np.arange(len(x)))
    D, I = index.search(q, 15)
    if metric == "cos":  # decoded vectors are the stored, normalised ones
        assert_knn(D, I, decoded, normalised(q), 15, "ip")
    else:
        assert_knn(D, I, decoded, q, 15, metric)


@pytest.mark.parametrize("spec", FLAT_SPECS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["offset", "anisotropic", "duplicated"])
@pytest.mark.parametrize("d", [20, 37])  # below / above two SIMD widths (scan code paths)
def test_codec_batched_scan_equals_one_query_scans(
    spec: str, metric: str, kind: str, d: int
) -> None:
    """Batches (tiles over decoded blocks, re-scored by the codec's kernel) give the
    answers of one-query scans, exact over the decoded vectors, on unusual data."""
    k = 12
    x = unusual_data(kind, 1200, d, seed=40)
    q = unusual_data(kind, 40, d, seed=41)
    if kind == "duplicated":
        q = x[::30] + np.float32(0.01)
    index = build(d, spec, metric, x)
    D, I = index.search(q, k)
    for r in range(len(q)):
        D1, I1 = index.search(q[r : r + 1], k)
        np.testing.assert_array_equal(I1[0], I[r], err_msg=f"{spec} {metric} {kind} query {r}")
        np.testing.assert_allclose(D1[0], D[r], rtol=1e-6, atol=1e-6)
    decoded = index.reconstruct(np.arange(len(x)))
    if metric == "cos":
        assert_knn(D, I, decoded, normalised(q), k, "ip")
    else:
        assert_knn(D, I, decoded, q, k, metric)
    # Under a filter the batch scans the admitted rows (gathered per block) the same way.
    allowed = np.random.default_rng(42).permutation(len(x))[:700]
    DF, IF = index.search(q, k, filter=allowed)
    for r in range(len(q)):
        D1, I1 = index.search(q[r : r + 1], k, filter=allowed)
        np.testing.assert_array_equal(I1[0], IF[r], err_msg=f"filtered {spec} {metric} {r}")
        np.testing.assert_allclose(D1[0], DF[r], rtol=1e-6, atol=1e-6)
    ref_q = normalised(q) if metric == "cos" else q
    assert_knn(DF, IF, decoded[allowed], ref_q, k, "ip" if metric == "cos" else metric, ids=allowed)


@pytest.mark.parametrize("spec", FLAT_SPECS)
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_batched_scan_bound_follows_adds_and_loads(spec: str, metric: str, tmp_path) -> None:
    """The batched scan's error bound uses the rows' largest norm, cached by the index:
    rows added after a search (here 1000x larger) and loaded files must update it."""
    d, k = 37, 12
    small = unusual_data("anisotropic", 400, d, seed=50) * np.float32(1e-3)
    far = unusual_data("offset", 800, d, seed=51)
    q = unusual_data("offset", 30, d, seed=52)
    index = annx.index_factory(d, spec, metric)
    if not index.is_trained:
        index.train(np.concatenate([small, far]))
    index.add(small)
    index.search(q, k)  # computes the cached bound on the small rows
    index.add(far)
    D, I = index.search(q, k)
    path = str(tmp_path / "flat.annx")
    index.save(path)
    loaded = annx.load(path)
    DL, IL = loaded.search(q, k)
    for r in range(len(q)):
        D1, I1 = index.search(q[r : r + 1], k)
        np.testing.assert_array_equal(I1[0], I[r], err_msg=f"{spec} {metric} query {r}")
        np.testing.assert_array_equal(I1[0], IL[r], err_msg=f"loaded {spec} {metric} query {r}")
        np.testing.assert_allclose(D1[0], D[r], rtol=1e-6, atol=1e-6)


REFINE_SPECS = [
    "Flat,F16,Refine(F32)",
    "Flat,BF16,Refine(F32)",
    "Flat,SQ8,Refine(F32)",
    "Flat,SQ8,Refine(F16)",
]


@pytest.mark.parametrize("spec", REFINE_SPECS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["offset", "anisotropic", "duplicated"])
def test_refine_batched_scan_equals_one_query_scans(
    spec: str, metric: str, kind: str, tmp_path
) -> None:
    """Flat,<codec>,Refine batches take their candidates from the batched float scan:
    the answers are those of one-query searches, also after removals (rows no longer in
    slot order), after adds of rows 1000x larger than those seen by an earlier batch
    (30x where float16 must hold them; the cached norm bound), and after a save / load."""
    d, k = 37, 12
    growth = np.float32(1.0 if kind == "offset" else 30.0 if "F16" in spec else 1000.0)
    x = unusual_data(kind, 1200, d, seed=60)
    q = unusual_data(kind, 30, d, seed=61)
    if kind == "duplicated":
        q = x[::40] + np.float32(0.01)
    index = annx.index_factory(d, spec, metric)
    index.train(x)
    index.add(x[:900])
    index.remove(np.arange(0, 900, 7))
    index.search(q, k)  # computes the cached bound on these rows
    index.add(x[900:] * growth)
    path = str(tmp_path / "refine.annx")
    index.save(path)
    loaded = annx.load(path)
    for candidate in (index, loaded):
        D, I = candidate.search(q, k)
        for r in range(len(q)):
            D1, I1 = candidate.search(q[r : r + 1], k)
            np.testing.assert_array_equal(I1[0], I[r], err_msg=f"{spec} {metric} query {r}")
            np.testing.assert_allclose(D1[0], D[r], rtol=1e-6, atol=1e-6)
    if spec.endswith("Refine(F32)") and kind != "offset":
        # With every row a candidate the re-rank is exact over the stored vectors.
        keep = np.setdiff1d(np.arange(900), np.arange(0, 900, 7))
        rows = np.concatenate([x[keep], x[900:] * growth])
        ids = np.concatenate([keep, np.arange(900, 1200)])
        D, I = index.search(q, k, rerank=len(rows))
        if metric == "cos":
            assert_knn(D, I, normalised(rows), normalised(q), k, "ip", ids=ids)
        else:
            assert_knn(D, I, rows, q, k, metric, ids=ids)


# ------------------------------------------------------------------------------ ids
@pytest.mark.parametrize("metric", METRICS)
def test_explicit_ids(metric: str) -> None:
    d = 12
    x = make_data(300, d, seed=40)
    q = make_data(20, d, seed=41)
    g = np.random.default_rng(42)
    ids = g.permutation(np.arange(300, dtype=np.int64) * 7919 + 10**12)
    index = build(d, "Flat", metric, x, ids=ids)
    assert index.ntotal == 300
    assert index.next_id == int(ids.max()) + 1
    assert sorted(index.ids().tolist()) == sorted(ids.tolist())
    assert int(ids[17]) in index and 0 not in index
    D, I = index.search(q, 9)
    assert_knn(D, I, x, q, 9, metric, ids=ids)
    np.testing.assert_allclose(
        index.reconstruct(ids[[3, 250, 0]]),
        normalised(x[[3, 250, 0]]) if metric == "cos" else x[[3, 250, 0]],
        rtol=1e-6,
        atol=1e-6,
    )
    if metric != "ip":  # self-search finds each vector under its own id
        _, Iself = index.search(x[:50], 1)
        np.testing.assert_array_equal(Iself[:, 0], ids[:50])


def test_mixed_add_with_and_without_ids() -> None:
    d = 8
    x = make_data(40, d, seed=43)
    index = annx.index_factory(d, "Flat")
    index.add(x[:10])  # 0..9
    assert index.next_id == 10
    index.add(x[10:15], ids=[100, 57, 3000, 12, 11])
    assert index.next_id == 3001
    index.add(x[15:20])  # 3001..3005
    index.add(x[20:22], ids=np.array([10, 13], dtype=np.uint32))
    assert index.next_id == 3006
    index.add(x[22:40])
    expected = np.concatenate(
        [
            np.arange(10),
            [100, 57, 3000, 12, 11],
            np.arange(3001, 3006),
            [10, 13],
            np.arange(3006, 3024),
        ]
    ).astype(np.int64)
    assert index.ntotal == 40 and len(index) == 40
    np.testing.assert_array_equal(np.sort(index.ids()), np.sort(expected))
    D, I = index.search(x, 3)
    assert_knn(D, I, x, x, 3, "l2", ids=expected)
    np.testing.assert_array_equal(I[:, 0], expected)


@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["add", "add_ids", "remove", "search", "filter"]),
            st.integers(1, 40),
            st.integers(0, 2**31),
        ),
        min_size=1,
        max_size=12,
    ),
    metric=st.sampled_from(METRICS),
    spec=st.sampled_from(["Flat", "Flat,F16"]),
)
def test_operation_sequences_match_model(
    ops: list[tuple[str, int, int]], metric: str, spec: str
) -> None:
    """Random add / add(ids) / remove / filtered searches against a dict model."""
    d = 5
    index = annx.index_factory(d, spec, metric)
    model: dict[int, np.ndarray] = {}  # id -> decoded vector
    next_id = 0
    for op, n, seed in ops:
        g = np.random.default_rng(seed)
        if op in ("add", "add_ids"):
            x = g.standard_normal((n, d)).astype(np.float32)
            if op == "add":
                ids = np.arange(next_id, next_id + n)
                index.add(x)
            else:
                pool = np.setdiff1d(np.arange(3 * next_id + 2 * n + 10), list(model))
                ids = g.permutation(pool)[:n]
                index.add(x, ids=ids)
            dec = index.reconstruct(ids)
            model.update({int(i): v for i, v in zip(ids, dec, strict=False)})
            next_id = max(next_id, int(ids.max()) + 1)
        elif op == "remove" and model:
            keys = np.array(sorted(model))
            gone = g.choice(keys, min(n, len(keys)), replace=False)
            assert index.remove(gone) == len(gone)
            for i in gone:
                del model[int(i)]
        else:
            q = g.standard_normal((3, d)).astype(np.float32)
            keys = np.array(sorted(model), dtype=np.int64)
            kw = {}
            if op == "filter" and len(keys):
                keys = keys[g.random(len(keys)) < 0.5]
                kw = {"filter": keys}
            x_ref = np.array([model[int(i)] for i in keys]).reshape(-1, d)
            D, I = index.search(q, n, **kw)
            if metric == "cos":
                assert_knn(D, I, x_ref, normalised(q), n, "ip", ids=keys)
            else:
                assert_knn(D, I, x_ref, q, n, metric, ids=keys)
        assert index.ntotal == len(model)
        assert index.next_id == next_id
    np.testing.assert_array_equal(np.sort(index.ids()), np.array(sorted(model), np.int64))


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
def test_cosine_extreme_scales(scale: float) -> None:
    """Cosine normalisation must not underflow or overflow for tiny or huge vectors."""
    x = make_data(50, 8, seed=64)
    q = make_data(5, 8, seed=65)
    index = build(8, "Flat", "cos", (x * scale).astype(np.float32))
    np.testing.assert_allclose(
        np.linalg.norm(index.reconstruct(np.arange(50)), axis=1), 1.0, rtol=1e-5
    )
    D, I = index.search((q * scale).astype(np.float32), 5)
    assert_knn(D, I, x, q, 5, "cos")


def test_next_id_not_reused_after_remove() -> None:
    d = 4
    x = make_data(10, d, seed=44)
    index = annx.index_factory(d, "Flat")
    index.add(x[:5])
    index.remove([4, 3])
    assert index.next_id == 5
    index.add(x[5:7])
    np.testing.assert_array_equal(np.sort(index.ids()), [0, 1, 2, 5, 6])


# --------------------------------------------------------------------------- remove
@pytest.mark.parametrize("spec", FLAT_SPECS)
@pytest.mark.parametrize("metric", METRICS)
def test_remove(spec: str, metric: str) -> None:
    d = 20
    n = 500
    x = make_data(n, d, seed=50)
    q = make_data(30, d, seed=51)
    index = build(d, spec, metric, x)
    decoded = index.reconstruct(np.arange(n))
    g = np.random.default_rng(52)
    removed = g.choice(n, 200, replace=False)
    assert index.remove(removed) == 200
    assert index.ntotal == n - 200 and len(index) == n - 200
    keep = np.setdiff1d(np.arange(n), removed)
    for r in removed[:20]:
        assert int(r) not in index
    assert int(keep[0]) in index
    np.testing.assert_array_equal(np.sort(index.ids()), keep)
    D, I = index.search(q, 30)
    assert not np.isin(I, removed).any()
    ref_q = normalised(q) if metric == "cos" else q
    assert_knn(D, I, decoded[keep], ref_q, 30, "ip" if metric == "cos" else metric, ids=keep)
    # Remove the rest: all padding.
    assert index.remove(keep) == len(keep)
    assert index.ntotal == 0
    D, I = index.search(q, 5)
    assert (I == -1).all() and (D == pad_value(metric)).all()
    lims, Dr, Ir = index.range_search(q, 1e9 if metric == "l2" else -1e9)
    assert (lims == 0).all() and len(Dr) == 0 and len(Ir) == 0
    # Re-adding works, removed ids may be reused explicitly.
    index.add(x[:50], ids=np.arange(50))
    index.add(x[50:60])
    assert index.ntotal == 60
    D, I = index.search(x[:5], 1)
    np.testing.assert_array_equal(I[:, 0], np.arange(5))


def test_remove_swaps_keep_vectors_attached_to_ids() -> None:
    """Removal moves the last slot into the hole; each id must keep its vector."""
    d = 6
    x = make_data(100, d, seed=53)
    index = build(d, "Flat", "l2", x)
    order = np.random.default_rng(54).permutation(100)
    alive = set(range(100))
    for step, rid in enumerate(order[:90]):
        index.remove([int(rid)])
        alive.discard(int(rid))
        if step % 15 == 0:
            live = np.array(sorted(alive))
            np.testing.assert_array_equal(index.reconstruct(live), x[live])
            D, I = index.search(x[live], 1)
            np.testing.assert_array_equal(I[:, 0], live)


# ---------------------------------------------------------------------- reconstruct
@pytest.mark.parametrize("metric", METRICS)
def test_reconstruct(metric: str) -> None:
    d = 33
    x = make_data(200, d, seed=60) * np.float32(30)
    sel = np.array([5, 0, 199, 6, 77])
    ref = normalised(x).astype(np.float32) if metric == "cos" else x
    f32 = build(d, "Flat", metric, x)
    r = f32.reconstruct(sel)
    assert r.shape == (5, d) and r.dtype == np.float32
    if metric == "cos":
        np.testing.assert_allclose(r, ref[sel], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0, rtol=1e-6)
    else:
        np.testing.assert_array_equal(r, x[sel])
    one = f32.reconstruct(77)
    assert one.shape == (d,)
    np.testing.assert_array_equal(one, r[4])

    f16 = build(d, "Flat,F16", metric, x).reconstruct(sel)
    np.testing.assert_allclose(f16, ref[sel].astype(np.float16).astype(np.float32), rtol=1e-3)
    np.testing.assert_allclose(f16, ref[sel], rtol=2.0**-11, atol=2.0**-24 * 2)

    bf16 = build(d, "Flat,BF16", metric, x).reconstruct(sel)
    np.testing.assert_allclose(bf16, ref[sel], rtol=2.0**-8, atol=1e-30)
    np.testing.assert_allclose(bf16, bf16_round(ref[sel]), rtol=2.0**-7)

    sq = build(d, "Flat,SQ8", metric, x).reconstruct(sel)
    step = (ref.max(0) - ref.min(0)) / 255.0
    assert (np.abs(sq - ref[sel]) <= step * 0.5 + 1e-5).all()


def test_reconstruct_repeated_ids() -> None:
    """Reading the same id twice is harmless (faiss's reconstruct_batch allows it)."""
    x = make_data(10, 4, seed=63)
    index = build(4, "Flat", "l2", x)
    np.testing.assert_array_equal(index.reconstruct([3, 3, 1]), x[[3, 3, 1]])


def test_reconstruct_f16_exact_rounding() -> None:
    x = make_data(300, 17, seed=61) * np.float32(100)
    index = build(17, "Flat,F16", "l2", x)
    np.testing.assert_array_equal(
        index.reconstruct(np.arange(300)), x.astype(np.float16).astype(np.float32)
    )


def test_reconstruct_bf16_exact_rounding() -> None:
    x = make_data(300, 17, seed=62) * np.float32(100)
    index = build(17, "Flat,BF16", "l2", x)
    np.testing.assert_array_equal(index.reconstruct(np.arange(300)), bf16_round(x))


# --------------------------------------------------------------------------- filter
@pytest.mark.parametrize("spec", ["Flat", "Flat,F16"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 9, 70])
def test_filter_ids_and_mask(spec: str, metric: str, nq: int) -> None:
    d = 16
    n = 800
    x = make_data(n, d, seed=70)
    q = make_data(nq, d, seed=71)
    ids = np.arange(n, dtype=np.int64) * 3 + 5  # ids 5, 8, ..., 2402
    index = build(d, spec, metric, x, ids=ids)
    decoded = index.reconstruct(ids)
    ref_q = normalised(q) if metric == "cos" else q
    ref_metric = "ip" if metric == "cos" else metric
    g = np.random.default_rng(72)
    rows = np.sort(g.choice(n, 37, replace=False))
    allowed = ids[rows]

    # allowed-id array (shuffled, with unknown ids and repeats that must be harmless)
    filt = np.concatenate([g.permutation(allowed), [0, 1, 10**9, int(allowed[0])]])
    D, I = index.search(q, 10, filter=filt)
    assert_knn(D, I, decoded[rows], ref_q, 10, ref_metric, ids=allowed)
    # list input
    D2, I2 = index.search(q, 10, filter=allowed.tolist())
    np.testing.assert_array_equal(I2, I)
    # k larger than the allowed count: padding
    D, I = index.search(q, 50, filter=allowed)
    assert_knn(D, I, decoded[rows], ref_q, 50, ref_metric, ids=allowed)
    assert (I[:, 37:] == -1).all()

    # boolean mask over ids
    mask = np.zeros(int(ids.max()) + 1, dtype=bool)
    mask[allowed] = True
    D, I = index.search(q, 10, filter=mask)
    assert_knn(D, I, decoded[rows], ref_q, 10, ref_metric, ids=allowed)
    # a mask shorter than the largest id excludes the ids beyond it
    cut = int(allowed[20])
    short = mask[:cut]
    D, I = index.search(q, 10, filter=short)
    assert_knn(D, I, decoded[rows[:20]], ref_q, 10, ref_metric, ids=allowed[:20])
    # a longer mask is fine too
    long_mask = np.concatenate([mask, np.ones(100, dtype=bool)])
    D, I = index.search(q, 10, filter=long_mask)
    assert_knn(D, I, decoded[rows], ref_q, 10, ref_metric, ids=allowed)

    # empty filters: all padding
    for empty in (np.array([], dtype=np.int64), [], np.zeros(n, dtype=bool), np.zeros(0, bool)):
        D, I = index.search(q, 4, filter=empty)
        assert (I == -1).all() and (D == pad_value(metric)).all()


def test_filter_large_index_and_removed_ids() -> None:
    n, d = 40000, 16
    x = make_data(n, d, seed=73)
    q = make_data(2, d, seed=74)
    index = build(d, "Flat", "l2", x)
    allowed = np.arange(0, n, 5)
    index.remove(allowed[:100])
    D, I = index.search(q, 10, filter=allowed)
    live = allowed[100:]
    assert_knn(D, I, x[live], q, 10, "l2", ids=live)


# --------------------------------------------------------------------- range search
def check_range(
    lims: np.ndarray,
    D: np.ndarray,
    I: np.ndarray,
    x: np.ndarray,
    q: np.ndarray,
    radius: float,
    metric: str,
    ids: np.ndarray | None = None,
) -> None:
    nq = len(q)
    assert lims.shape == (nq + 1,) and lims[0] == 0
    assert (np.diff(lims) >= 0).all() and lims[-1] == len(D) == len(I)
    assert D.dtype == np.float32 and I.dtype == np.int64
    ref = brute_range(x, q, radius, metric, ids)
    tol = ATOL + RTOL * abs(radius)
    ids_arr = np.arange(len(x)) if ids is None else np.asarray(ids)
    row_of = {int(v): i for i, v in enumerate(ids_arr)}
    s = scores(x, q, metric) if len(x) else None
    for i in range(nq):
        d_i, i_i = D[lims[i] : lims[i + 1]], I[lims[i] : lims[i + 1]]
        if metric == "l2":
            assert (d_i < radius).all() and (np.diff(d_i) >= 0).all()
        else:
            assert (d_i > radius).all() and (np.diff(d_i) <= 0).all()
        assert len(set(i_i.tolist())) == len(i_i)
        rd, ri = ref[i]
        sure = set(ri[np.abs(rd - radius) > tol].tolist())
        got = set(i_i.tolist())
        assert sure <= got, f"query {i}: missing ids {sorted(sure - got)}"
        for j, rid in enumerate(i_i):
            true = s[i, row_of[int(rid)]]
            assert np.isclose(d_i[j], true, rtol=RTOL, atol=ATOL)
            if rid not in set(ri.tolist()):  # only borderline extras allowed
                assert abs(true - radius) <= tol


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 5, 64])
def test_range_search(metric: str, nq: int) -> None:
    d = 10
    x = make_data(1200, d, seed=80)
    q = make_data(nq, d, seed=81)
    index = build(d, "Flat", metric, x)
    radius = {"l2": 6.0, "ip": 4.0, "cos": 0.7}[metric]
    lims, D, I = index.range_search(q, radius)
    assert lims[-1] > 0
    check_range(lims, D, I, x, q, radius, metric)
    # Everything / nothing.
    lims, D, I = index.range_search(q, 1e9 if metric == "l2" else -1e9)
    assert (np.diff(lims) == 1200).all()
    lims, D, I = index.range_search(q, 0.0 if metric == "l2" else 1e9)
    assert (lims == 0).all()


@pytest.mark.parametrize("metric", METRICS)
def test_range_search_ids_filter_large(metric: str) -> None:
    n, d = 40000, 16
    x = make_data(n, d, seed=82)
    q = make_data(2, d, seed=83)
    ids = np.arange(n, dtype=np.int64)[::-1] + 1000
    index = build(d, "Flat", metric, x, ids=ids)
    radius = {"l2": 8.0, "ip": 7.0, "cos": 0.6}[metric]
    lims, D, I = index.range_search(q, radius)
    check_range(lims, D, I, x, q, radius, metric, ids=ids)
    rows = np.arange(0, n, 3)
    lims, D, I = index.range_search(q, radius, filter=ids[rows])
    check_range(lims, D, I, x[rows], q, radius, metric, ids=ids[rows])
    lims1, D1, I1 = index.range_search(q, radius, threads=1)
    lims2, D2, I2 = index.range_search(q, radius)
    np.testing.assert_array_equal(lims1, lims2)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)


# --------------------------------------------------------------------- input forms
@pytest.mark.parametrize("metric", METRICS)
def test_float64_and_float16_input(metric: str) -> None:
    d = 16
    x = make_data(300, d, seed=90)
    q = make_data(10, d, seed=91)
    ref = build(d, "Flat", metric, x)
    D0, I0 = ref.search(q, 5)
    for dt in (np.float64, np.float16):
        xi = x.astype(dt)
        index = build(d, "Flat", metric, xi)
        D, I = index.search(q.astype(dt), 5)
        xf, qf = xi.astype(np.float32), q.astype(dt).astype(np.float32)
        assert_knn(D, I, xf, qf, 5, metric)
        if dt == np.float64:
            np.testing.assert_array_equal(I, I0)
            np.testing.assert_array_equal(D, D0)
    # list input
    D, I = ref.search(q.tolist(), 5)
    np.testing.assert_array_equal(I, I0)


@pytest.mark.parametrize("metric", METRICS)
def test_non_contiguous_input(metric: str) -> None:
    d = 16
    wide = make_data(600, 2 * d, seed=92)
    x_view = wide[::2, ::2]  # strided in both axes
    x = np.ascontiguousarray(x_view)
    q_wide = make_data(20, 3 * d, seed=93)
    q_view = q_wide[:, 1::3]
    q = np.ascontiguousarray(q_view)
    a = build(d, "Flat", metric, x)
    b = build(d, "Flat", metric, x_view)
    c = build(d, "Flat", metric, np.asfortranarray(x))
    Da, Ia = a.search(q, 8)
    for index in (b, c):
        for qq in (q, q_view, np.asfortranarray(q), q[::-1][::-1]):
            D, I = index.search(qq, 8)
            np.testing.assert_array_equal(I, Ia)
            np.testing.assert_array_equal(D, Da)
    assert_knn(Da, Ia, x, q, 8, metric)
    # the caller's arrays are not modified (cosine normalises a copy)
    np.testing.assert_array_equal(x_view, np.ascontiguousarray(wide[::2, ::2]))
    qc = q.copy()
    a.search(q, 3)
    np.testing.assert_array_equal(q, qc)
    xc = x.copy()
    a.add(x)
    np.testing.assert_array_equal(x, xc)


# ------------------------------------------------------------------------- training
@pytest.mark.parametrize("metric", METRICS)
def test_sq8_requires_train(metric: str) -> None:
    d = 8
    x = make_data(100, d, seed=94)
    index = annx.index_factory(d, "Flat,SQ8", metric)
    assert not index.is_trained
    with pytest.raises(annx.NotTrainedError):
        index.add(x)
    with pytest.raises(annx.NotTrainedError):
        index.search(x[:2], 3)
    assert issubclass(annx.NotTrainedError, annx.AnnxError)
    assert index.ntotal == 0
    index.train(x)
    assert index.is_trained
    index.add(x)
    D, I = index.search(x[:10], 5)
    decoded = index.reconstruct(np.arange(100))
    if metric == "cos":
        assert_knn(D, I, decoded, normalised(x[:10]), 5, "ip")
    else:
        assert_knn(D, I, decoded, x[:10], 5, metric)


@pytest.mark.parametrize("spec", ["Flat", "Flat,F16", "Flat,BF16"])
def test_train_is_noop_for_untrained_codecs(spec: str) -> None:
    x = make_data(50, 8, seed=95)
    index = annx.index_factory(8, spec)
    assert index.is_trained
    index.train(x)
    assert index.ntotal == 0
    index.add(x)
    assert index.ntotal == 50


# ------------------------------------------------------------------ small API facts
def test_len_contains_repr_spec() -> None:
    index = annx.index_factory(5, "Flat,F32", "ip")
    assert index.spec == "Flat" and str(index.spec) == "Flat"
    assert index.d == 5 and index.metric == "ip"
    assert len(index) == 0 and index.ntotal == 0
    index.add(make_data(4, 5, seed=96), ids=[10, 20, 30, 40])
    assert len(index) == 4
    assert 10 in index and np.int64(40) in index
    assert 11 not in index and -1 not in index
    assert "10" not in index and 10.0 not in index and True not in index
    r = repr(index)
    assert "Flat" in r and "d=5" in r and "'ip'" in r and "ntotal=4" in r


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("Flat", "Flat"),
        ("Flat,F32", "Flat"),
        ("Flat,F16", "Flat,F16"),
        ("Flat,BF16", "Flat,BF16"),
        ("Flat,SQ8", "Flat,SQ8"),
    ],
)
@pytest.mark.parametrize("metric", METRICS)
def test_spec_canonical(spec: str, canonical: str, metric: str) -> None:
    index = annx.index_factory(7, spec, metric)
    assert index.spec == canonical
    assert index.metric == metric
    # the canonical spec builds the same kind of index
    assert annx.index_factory(7, index.spec, metric).spec == canonical


@pytest.mark.parametrize("d", [1, 32, 100])
def test_bytes_per_vector(d: int) -> None:
    # code bytes + 8-byte id (+ a float32 norm for exact L2 on float32 vectors)
    expected = {
        ("Flat", "l2"): 4 * d + 8 + 4,
        ("Flat", "ip"): 4 * d + 8,
        ("Flat", "cos"): 4 * d + 8,
        ("Flat,F16", "l2"): 2 * d + 8,
        ("Flat,BF16", "l2"): 2 * d + 8,
        ("Flat,SQ8", "l2"): d + 8,
    }
    for (spec, metric), value in expected.items():
        index = annx.index_factory(d, spec, metric)
        assert index.bytes_per_vector == pytest.approx(value), (spec, metric)
    for spec in FLAT_SPECS:
        bpv = [annx.index_factory(d, spec, m).bytes_per_vector for m in METRICS]
        assert min(bpv) >= {"Flat": 4, "Flat,F16": 2, "Flat,BF16": 2, "Flat,SQ8": 1}[spec] * d + 8


def test_memory_usage_grows() -> None:
    index = annx.index_factory(64, "Flat,F16")
    m0 = index.memory_usage()
    index.add(make_data(1000, 64, seed=97))
    assert index.memory_usage() >= m0 + 1000 * (2 * 64 + 8)


# ------------------------------------------------------------------------ real data
def _check_real(
    index: annx.Index,
    test: np.ndarray,
    neighbors: np.ndarray,
    distances: np.ndarray,
    k: int,
) -> None:
    D, I = index.search(test, k)
    r = annx.datasets.recall_at_k(I, neighbors, k)
    if r == 1.0:
        return
    # Ties aside: a mismatching id must be as similar as the k-th true neighbour.
    kth = 1.0 - distances[:, k - 1].astype(np.float64)  # angular distance = 1 - cos
    for row in range(len(test)):
        truth = set(neighbors[row, :k].tolist())
        for j, got in enumerate(I[row]):
            if int(got) not in truth:
                assert abs(float(D[row, j]) - kth[row]) <= 1e-6, (
                    f"query {row}: id {got} (similarity {D[row, j]}) is not a true "
                    f"neighbour; 10th true similarity {kth[row]}"
                )


def test_real_glove_exact(shared_data) -> None:
    path = shared_data / "glove6b-50000-50-angular.hdf5"
    if not path.exists():
        pytest.skip(f"{path} not found")
    ds = annx.datasets.load_hdf5(path)
    index = annx.index_factory(ds.d, "Flat", "cos")
    index.add(ds.train)
    _check_real(index, ds.test, ds.neighbors, ds.distances, 10)


def test_real_minilm_exact(shared_data) -> None:
    path = shared_data / "minilm-100000-384-angular.hdf5"
    if not path.exists():
        pytest.skip(f"{path} not found")
    ds = annx.datasets.load_hdf5(path, load_extra=False)
    index = annx.index_factory(ds.d, "Flat", "cos")
    index.add(ds.train)
    nq = 200
    _check_real(index, ds.test[:nq], ds.neighbors[:nq], ds.distances[:nq], 10)
