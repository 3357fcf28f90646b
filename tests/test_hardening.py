"""Issue-17 regressions that the fuzzer and the exactness properties do not name directly:
annx's value range (norms up to 2^62, so that every distance is finite), nothing changed by a
refused call, loaded Flat norms being recomputed, and memory accounting alongside writers."""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import threading

import numpy as np
import pytest

import annx

LIMIT = 2.0**62  # largest norm annx accepts for l2 / ip vectors


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("spec", ["Flat", "HNSW8", "Flat,F16"])
def test_norm_beyond_range_is_refused_and_changes_nothing(spec: str, metric: str) -> None:
    g = np.random.default_rng(0)
    index = annx.index_factory(8, spec, metric=metric)
    index.add(g.standard_normal((20, 8), dtype=np.float32))
    big = g.standard_normal((3, 8), dtype=np.float32)
    big[1] *= np.float32(1e19)  # norm ~3e19 > 2^62 ~ 4.6e18, still finite
    with pytest.raises(annx.InvalidArgumentError, match=r"row 1 has norm .* beyond annx's range"):
        index.add(big)
    assert index.ntotal == 20
    with pytest.raises(annx.InvalidArgumentError, match=r"queries row 1 has norm"):
        index.search(big, 3)


def test_largest_accepted_norm_gives_finite_distances() -> None:
    g = np.random.default_rng(1)
    x = g.standard_normal((50, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x *= np.float32(LIMIT * 0.999)
    for metric in ("l2", "ip"):
        index = annx.index_factory(8, "Flat", metric=metric)
        index.add(x)
        D, I = index.search(-x[:10], 5)  # antipodal: the largest possible distances
        assert np.isfinite(D).all() and (I >= 0).all()


def test_cosine_accepts_any_finite_norm() -> None:
    x = np.array([[3e38, 1e38], [1e-39, 2e-39], [1.0, -1.0]], dtype=np.float32)
    index = annx.index_factory(2, "Flat", metric="cos")
    index.add(x)
    r = index.reconstruct([0, 1, 2])
    assert np.isfinite(r).all()
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0, rtol=1e-6)


def test_loaded_flat_norms_are_recomputed() -> None:
    """A NORMS section that lies (finite, valid checksum) cannot break exactness."""
    import annx_fuzz  # tests/ helper module

    g = np.random.default_rng(2)
    x = (1000 + g.standard_normal((400, 16))).astype(np.float32)
    index = annx.index_factory(16, "Flat", metric="l2")
    index.add(x)
    sections = [
        (tag, bytes(len(b)) if tag == "NORMS" else b)
        for tag, b in annx_fuzz.parse(index.to_bytes())
    ]
    loaded = annx.from_bytes(annx_fuzz.build(sections))
    q = x[:64] + np.float32(0.01)
    D0, I0 = index.search(q, 10)
    D1, I1 = loaded.search(q, 10)
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_array_equal(D0, D1)


def test_memory_accounting_alongside_writers() -> None:
    g = np.random.default_rng(3)
    x = g.standard_normal((3000, 16), dtype=np.float32)
    for spec in ("Flat", "IVF8,Flat", "HNSW8"):
        index = annx.index_factory(16, spec, metric="l2")
        if spec.startswith("IVF"):
            index.train(x)
        stop = threading.Event()
        seen: list[float] = []

        def account(ix: annx.Index, stop: threading.Event, seen: list[float]) -> None:
            while not stop.is_set():
                seen.append(ix.memory_usage() + ix.bytes_per_vector)

        t = threading.Thread(target=account, args=(index, stop, seen))
        t.start()
        try:
            for b in range(0, 3000, 500):
                index.add(x[b : b + 500])
                index.remove(np.arange(b, b + 500, 7))
        finally:
            stop.set()
            t.join(30)
        assert not t.is_alive() and seen and all(v > 0 for v in seen)


@pytest.mark.parametrize("spec", ["Flat,SQ8", "HNSW8,SQ8", "IVF2,SQ8"])
def test_sq8_l2_tiny_range_and_far_queries(spec: str) -> None:
    """A dimension trained on a tiny range (1e-30) with queries far from it: the squared
    grid step underflows float and the scaled query overflows it. Distances must stay the
    float64 distances to the decoded vectors (here: the far dimension's term dominates)."""
    rng = np.random.default_rng(31)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    x[:, 0] = rng.random(400).astype(np.float32) * 1e-30
    x[:, 1] = 5.0 + rng.random(400).astype(np.float32) * 1e-3  # small range, far queries
    q = rng.standard_normal((6, 8)).astype(np.float32)
    q[3:, 1] = 3e17  # far beyond the grid of dimension 1
    index = annx.index_factory(8, spec, metric="l2")
    index.train(x)
    index.add(x)
    dec = index.reconstruct(np.arange(400)).astype(np.float64)
    want = ((q[:, None, :].astype(np.float64) - dec[None]) ** 2).sum(-1)
    D, I = index.search(q, 5, **({"nprobe": 2} if spec.startswith("IVF") else {}))
    assert np.isfinite(D).all() and (I >= 0).all()
    got = np.take_along_axis(want, I, axis=1)
    np.testing.assert_allclose(D, got, rtol=1e-4)
    np.testing.assert_allclose(D[:, 0], want.min(1), rtol=1e-4)
