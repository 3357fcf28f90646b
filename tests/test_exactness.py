"""Paths documented as exact give the float64 answer on hostile data (issue 17).

``Flat`` (float32) search and range search on the single-query and the batched paths, the
float32 ``Refine`` re-rank with ``rerank >= ntotal``, ``annx.chamfer`` and Hamming search
(``BinaryIndex``) are checked against a float64 (or integer) reference on data far from
the origin (coordinates ~1000 +- 1 and ~1e6 + small), scaled by 1e-30..1e30 where the
results stay finite, anisotropic, with duplicated vectors, and with tiny-norm vectors for
``"cos"``; batch sizes 1..300, 1 and 2 threads.

Comparison (ties aside): every returned distance equals the float64 distance of the
returned id, and that distance equals the float64 one at the same rank, both within a
tolerance relative to the distance scale (the distances themselves for ``"l2"``,
``|q| |x|`` for ``"ip"``, 1 for ``"cos"``); ids are distinct and stored.
"""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import annx

RTOL = 2e-4  # float32 arithmetic over d <= 48 terms, relative to the distance scale
DENORMAL = 1.5e-45  # spacing of float32 numbers below 2**-126: products that underflow
EXAMPLES = 100
# No shrinking: a failing example is reported as drawn (its description names the data),
# which keeps a failing run as short as a passing one.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate)


# ----------------------------------------------------------------------- data
@st.composite
def datasets(
    draw,
    metric_choices=("l2", "ip", "cos"),
    max_n: int = 600,
    max_nq: int = 300,
    tiny_norms: bool = False,
):
    """(x, q, metric, description) of hostile float32 data.

    ``tiny_norms``: ``"cos"`` data whose stored vectors have norms 1e-39 .. 1e-30.
    """
    metric = draw(st.sampled_from(metric_choices))
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, 48))
    nq = draw(st.integers(1, max_nq))
    offset = draw(st.sampled_from([0.0, 1000.0, 1e6]))
    aniso = draw(st.booleans())
    dups = draw(st.booleans())
    tiny = metric == "cos" and tiny_norms
    exp = draw(st.integers(-30, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, d))
    q = g.standard_normal((nq, d))
    if aniso:
        w = 10.0 ** g.uniform(-3, 3, d)
        x, q = x * w, q * w
    if offset:
        x, q = x + offset, q + offset
    if dups and n > 1:
        src = g.integers(0, n, n // 3 + 1)
        x[g.integers(0, n, src.size)] = x[src]
        q[: min(nq, src.size)] = x[src[: min(nq, src.size)]]  # queries equal to stored rows
    scale = 10.0**exp
    if tiny:  # norms ~1e-39 .. 1e-30 (some components denormal in float32)
        norms = 10.0 ** g.uniform(-39, -30, n)
        x = x / np.linalg.norm(x, axis=1, keepdims=True) * norms[:, None]
        scale, exp = 1.0, 0
    x32 = (x * scale).astype(np.float32)
    q32 = (q * scale).astype(np.float32)
    # Keep to data whose results are finite float32 numbers.
    big = max(np.abs(x32).max(initial=0), np.abs(q32).max(initial=0))
    if metric == "l2":
        spread = np.abs(x32.astype(np.float64)).max() + np.abs(q32.astype(np.float64)).max()
        ok = d * spread**2 < 1e37
    elif metric == "ip":
        ok = d * float(big) ** 2 < 1e37
    else:
        ok = True
    ok = ok and np.isfinite(x32).all() and np.isfinite(q32).all()
    ok = ok and (metric != "cos" or (np.abs(x32).max(axis=1) > 0).all())
    ok = ok and (metric != "cos" or (np.abs(q32).max(axis=1) > 0).all())
    if not ok:  # shrink the scale instead of rejecting the example
        x32 = (x * 1e-3).astype(np.float32) if not tiny else x32
        q32 = (q * 1e-3).astype(np.float32)
        exp = -3
    desc = (
        f"metric={metric} n={n} d={d} nq={nq} offset={offset:g} scale=1e{exp} "
        f"aniso={aniso} dups={dups} tiny_norms={tiny} seed={seed}"
    )
    return x32, q32, metric, desc


def ref_scores(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """float64 [nq, n]: squared L2 distances or similarities."""
    x = x.astype(np.float64)
    q = q.astype(np.float64)
    if metric == "l2":
        out = np.empty((q.shape[0], x.shape[0]))
        for s in range(0, q.shape[0], 64):  # exact differences, no |x|^2 - 2<q,x> shortcut
            out[s : s + 64] = ((q[s : s + 64, None, :] - x[None, :, :]) ** 2).sum(-1)
        return out
    if metric == "cos":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return q @ x.T


def error_scale(x: np.ndarray, q: np.ndarray, metric: str, s: np.ndarray) -> np.ndarray:
    """Per query: the scale float32 errors are relative to."""
    if metric == "l2":
        kth = np.abs(s).max(axis=1)
        return np.maximum(kth, 1e-37)
    if metric == "ip":
        nx = np.linalg.norm(x.astype(np.float64), axis=1).max(initial=0)
        return np.maximum(np.linalg.norm(q.astype(np.float64), axis=1) * nx, 1e-37)
    return np.ones(q.shape[0])


def check_topk(
    D: np.ndarray,
    I: np.ndarray,
    x: np.ndarray,
    q: np.ndarray,
    metric: str,
    k: int,
    what: str,
    s: np.ndarray | None = None,
) -> None:
    s = ref_scores(x, q, metric) if s is None else s
    n = x.shape[0]
    key = s if metric == "l2" else -s
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(s, order, axis=1)
    m = min(k, n)
    tol = RTOL * error_scale(x, q, metric, best) + 4 * x.shape[1] * DENORMAL
    assert D.shape == I.shape == (q.shape[0], k), what
    for r in range(q.shape[0]):
        ids = I[r]
        assert (ids[:m] >= 0).all() and (ids[:m] < n).all(), f"{what}: row {r} ids {ids[:m]}"
        assert (ids[m:] == -1).all(), f"{what}: row {r} padding {ids[m:]}"
        assert len(set(ids[:m].tolist())) == m, f"{what}: row {r} repeats ids"
        got = s[r, ids[:m]]  # float64 distance of each returned id
        bad = np.nonzero(np.abs(got - best[r, :m]) > tol[r])[0]
        assert bad.size == 0, (
            f"{what}: query {r} rank {bad[0]}: id {ids[bad[0]]} has float64 distance "
            f"{got[bad[0]]!r}, the rank's true distance is {best[r, bad[0]]!r} "
            f"(tolerance {tol[r]:.3g})"
        )
        derr = np.abs(D[r, :m].astype(np.float64) - got)
        bad = np.nonzero(~(derr <= tol[r]))[0]
        assert bad.size == 0, (
            f"{what}: query {r} rank {bad[0]}: returned distance {D[r, bad[0]]!r}, float64 "
            f"distance of id {ids[bad[0]]} is {got[bad[0]]!r} (tolerance {tol[r]:.3g})"
        )


def check_range(lims, D, I, x, q, metric, radius, what, s=None) -> None:
    s = ref_scores(x, q, metric) if s is None else s
    tol = RTOL * error_scale(x, q, metric, s) + 4 * x.shape[1] * DENORMAL
    assert lims.shape == (q.shape[0] + 1,), what
    for r in range(q.shape[0]):
        ids = I[lims[r] : lims[r + 1]]
        dist = D[lims[r] : lims[r + 1]].astype(np.float64)
        assert len(set(ids.tolist())) == ids.size, f"{what}: query {r} repeats ids"
        got = s[r, ids]
        inside = got < radius + tol[r] if metric == "l2" else got > radius - tol[r]
        assert inside.all(), f"{what}: query {r} returned id {ids[~inside][0]} outside radius"
        must = np.nonzero(s[r] < radius - tol[r] if metric == "l2" else s[r] > radius + tol[r])
        missing = set(must[0].tolist()) - set(ids.tolist())
        assert not missing, f"{what}: query {r} misses ids {sorted(missing)[:5]} within radius"
        assert (np.abs(dist - got) <= tol[r]).all(), f"{what}: query {r} distances off"


def _searches(index, x, q, metric, k, desc, **params) -> None:
    s = ref_scores(x, q, metric)
    for threads in (1, 2):
        D, I = index.search(q, k, threads=threads, **params)
        check_topk(
            D, I, x, q, metric, k, f"batched nq={len(q)} k={k} threads={threads} [{desc}]", s
        )
        D1, I1 = index.search(q[:1], k, threads=threads, **params)
        check_topk(
            D1, I1, x, q[:1], metric, k, f"single query k={k} threads={threads} [{desc}]", s[:1]
        )


# ------------------------------------------------------------------- Flat F32
@settings(max_examples=EXAMPLES, deadline=None, phases=PHASES, derandomize=True)
@given(data=datasets(), k=st.integers(1, 20))
def test_flat_f32_search_exact(data, k: int) -> None:
    x, q, metric, desc = data
    index = annx.index_factory(x.shape[1], "Flat", metric)
    index.add(x)
    _searches(index, x, q, metric, k, desc)


@pytest.mark.filterwarnings("ignore:training .* on .* vectors")
@settings(max_examples=EXAMPLES // 2, deadline=None, phases=PHASES, derandomize=True)
@given(
    data=datasets(metric_choices=("cos",), max_n=300, tiny_norms=True),
    spec=st.sampled_from(["Flat", "Flat,SQ8,Refine(F32)", "IVF4,SQ8,Refine(F32)"]),
    k=st.integers(1, 20),
)
def test_cos_tiny_norms_exact(data, spec: str, k: int) -> None:
    """Cosine normalisation of vectors with norms 1e-39 .. 1e-30 stays finite and exact."""
    x, q, metric, desc = data
    if x.shape[0] < 40:
        x = np.concatenate([x] * (40 // x.shape[0] + 1))  # enough rows to train
    index = annx.index_factory(x.shape[1], spec, metric)
    index.train(x)
    index.add(x)
    params = {} if spec == "Flat" else {"rerank": len(x)}
    if spec.startswith("IVF"):
        params["nprobe"] = index.nlist
    _searches(index, x, q, metric, k, f"{spec} {desc}", **params)


@settings(max_examples=EXAMPLES, deadline=None, phases=PHASES, derandomize=True)
@given(data=datasets(max_nq=300), frac=st.floats(0.05, 0.6))
def test_flat_f32_range_search_exact(data, frac: float) -> None:
    x, q, metric, desc = data
    index = annx.index_factory(x.shape[1], "Flat", metric)
    index.add(x)
    s = ref_scores(x, q[:1], metric)[0]
    vals = np.sort(s if metric == "l2" else -s)
    j = min(int(frac * len(vals)), len(vals) - 1)
    radius = float(vals[j] if metric == "l2" else -vals[j])
    s = ref_scores(x, q, metric)
    for threads in (1, 2):
        lims, D, I = index.range_search(q, radius, threads=threads)
        what = f"range_search batched nq={len(q)} radius={radius!r} threads={threads} [{desc}]"
        check_range(lims, D, I, x, q, metric, radius, what, s)
        lims, D, I = index.range_search(q[:1], radius, threads=threads)
        what = f"range_search single radius={radius!r} threads={threads} [{desc}]"
        check_range(lims, D, I, x, q[:1], metric, radius, what, s[:1])


# ------------------------------------------------------------- Refine(F32)
REFINE_SPECS = ["Flat,SQ8,Refine(F32)", "Flat,BEBR2,Refine(F32)", "IVF4,SQ8,Refine(F32)",
                "PQ2x4fs,Refine(F32)"]  # fmt: skip


@pytest.mark.filterwarnings("ignore:training .* on .* vectors")
@settings(max_examples=EXAMPLES, deadline=None, phases=PHASES, derandomize=True)
@given(
    data=datasets(max_n=300, max_nq=120),
    spec=st.sampled_from(REFINE_SPECS),
    k=st.integers(1, 10),
)
def test_refine_f32_rerank_all_is_exact(data, spec: str, k: int) -> None:
    x, q, metric, desc = data
    if x.shape[0] < 40:
        x = np.concatenate([x] * (40 // x.shape[0] + 1))  # enough rows to train
    if x.shape[1] == 1:
        spec = spec.replace("PQ2x4fs", "PQ1x4fs")
    index = annx.index_factory(x.shape[1], spec, metric)
    index.train(x)
    index.add(x)
    params = {"rerank": len(x)}
    if spec.startswith("IVF"):
        params["nprobe"] = index.nlist
    _searches(index, x, q, metric, k, f"{spec} rerank=ntotal {desc}", **params)


# ------------------------------------------------------------------ Chamfer
@settings(max_examples=EXAMPLES, deadline=None, phases=PHASES, derandomize=True)
@given(data=datasets(metric_choices=("ip",), max_n=400, max_nq=40), ndocs=st.integers(1, 60))
def test_chamfer_exact(data, ndocs: int) -> None:
    x, q, _metric, desc = data
    g = np.random.default_rng(len(x))
    cuts = np.sort(g.choice(np.arange(1, len(x)), min(ndocs, len(x)) - 1, replace=False))
    docs = np.split(x, cuts)
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    biggest = max(np.linalg.norm(x64, axis=1).max(), np.linalg.norm(q64, axis=1).max())
    if biggest > 2.0**40:  # beyond the token range (Chamfer sums must stay finite)
        with pytest.raises(annx.InvalidArgumentError, match="2\\^40"):
            annx.chamfer(q, docs)
        return
    ref = np.array([(q64 @ doc.astype(np.float64).T).max(axis=1).sum() for doc in docs])
    scale = np.linalg.norm(q64, axis=1).sum() * np.linalg.norm(x64, axis=1).max() if len(x) else 1.0
    for threads in (1, 2):
        got = annx.chamfer(q, docs, threads=threads).astype(np.float64)
        err = np.abs(got - ref)
        assert (err <= RTOL * scale + 4 * q.size * DENORMAL).all(), (
            f"chamfer threads={threads} [{desc}, {len(docs)} docs]: doc {int(err.argmax())} "
            f"got {got[err.argmax()]!r}, float64 {ref[err.argmax()]!r}"
        )
    # The matrix form (several query sets) agrees with the single-set form.
    sets = [q[: max(1, len(q) // 2)], q]
    M = annx.chamfer(sets, docs)
    for i, qs in enumerate(sets):
        np.testing.assert_allclose(
            M[i], annx.chamfer(qs, docs), rtol=0, atol=RTOL * scale + 4 * q.size * DENORMAL
        )


# ------------------------------------------------------------------ Hamming
@settings(max_examples=EXAMPLES, deadline=None, phases=PHASES, derandomize=True)
@given(
    n=st.integers(1, 600),
    nbytes=st.integers(1, 64),
    nq=st.integers(1, 300),
    k=st.integers(1, 20),
    dups=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_hamming_binary_index_exact(n, nbytes, nq, k, dups, seed) -> None:
    g = np.random.default_rng(seed)
    x = g.integers(0, 256, (n, nbytes), dtype=np.uint8)
    q = g.integers(0, 256, (nq, nbytes), dtype=np.uint8)
    if dups:
        x[g.integers(0, n, n // 2 + 1)] = x[0]
        q[: nq // 2] = x[g.integers(0, n, nq // 2)]
    index = annx.index_factory(8 * nbytes, "BIN", metric="hamming")
    index.add(x)
    ref = np.unpackbits(q[:, None, :] ^ x[None, :, :], axis=2).sum(axis=2)  # [nq, n]
    best = np.sort(ref, axis=1)[:, :k]
    m = min(k, n)
    desc = f"n={n} nbits={8 * nbytes} nq={nq} k={k} dups={dups} seed={seed}"
    for threads in (1, 2):
        for qq, rr, what in ((q, ref, "batched"), (q[:1], ref[:1], "single")):
            D, I = index.search(qq, k, threads=threads)
            assert (I[:, m:] == -1).all() and (I[:, :m] >= 0).all(), f"{what} [{desc}]"
            got = np.take_along_axis(rr, I[:, :m], axis=1)
            assert np.array_equal(D[:, :m], got), (
                f"{what} threads={threads}: D != Hamming of I [{desc}]"
            )
            assert np.array_equal(got, best[: len(qq), :m]), (
                f"{what} threads={threads}: not the nearest [{desc}]"
            )
            for row in I[:, :m]:
                assert len(set(row.tolist())) == m, f"{what}: repeated ids [{desc}]"


# ---------------------------------------------------------- targeted examples
@pytest.mark.parametrize("nq", [4, 64])
def test_flat_l2_far_from_origin_batch_independent(nq: int) -> None:
    """The issue's example: coordinates ~1000 +- 1, 256+ vectors, batches of 8+ queries."""
    g = np.random.default_rng(0)
    x = (1000 + g.standard_normal((2000, 32))).astype(np.float32)
    q = (1000 + g.standard_normal((nq, 32))).astype(np.float32)
    index = annx.index_factory(32, "Flat", "l2")
    index.add(x)
    D, I = index.search(q, 10)
    check_topk(D, I, x, q, "l2", 10, f"Flat l2 offset 1000, nq={nq}")


@pytest.mark.parametrize("norm", [1e-39, 3e-39, 1e-38, 1e-35, 1e-30])
def test_cosine_tiny_norm_vectors_are_found(norm: float) -> None:
    g = np.random.default_rng(1)
    x = g.standard_normal((50, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tiny = (x[:10] * norm).astype(np.float32)
    data = np.concatenate([tiny, x[10:].astype(np.float32)])
    index = annx.index_factory(8, "Flat", "cos")
    index.add(data)
    rec = index.reconstruct(np.arange(10))
    assert np.isfinite(rec).all(), f"norm {norm}: stored {rec[~np.isfinite(rec).all(axis=1)][0]}"
    D, I = index.search(x[:10].astype(np.float32), 1)
    assert (I[:, 0] == np.arange(10)).all(), f"norm {norm}: {I[:, 0]}"
    np.testing.assert_allclose(D[:, 0], 1.0, atol=1e-5)
