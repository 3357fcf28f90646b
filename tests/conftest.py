"""Shared fixtures and helpers for annx's tests.

* ``rng``: a seeded numpy Generator (seed 1234), fresh for each test.
* ``isa``: runs the test once per ISA level this machine supports (annx.set_isa),
  restoring the previous level afterwards.
* ``shared_data``: the folder holding the real benchmark files (``ANNX_SHARED_DATA``
  or ``<repo>/../shared/data``); tests using it are skipped when it is absent.
* ``make_data`` / ``brute_force`` / ``brute_range``: seeded synthetic data and an exact
  numpy float64 reference that follows annx's conventions (squared L2 ascending;
  similarities descending for ``"ip"`` and ``"cos"``; padding -1 and +inf / -inf).
* Tests that use ``shared_data`` are marked ``real_data`` (CI's sanitizer run leaves them
  out: they walk the same code as the synthetic tests, on 10-100x more rows).
* A hypothesis profile ``"ci"`` (no deadline, 40 examples, derandomized) loaded by
  default; ``HYPOTHESIS_PROFILE`` selects another registered profile.
"""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import annx

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=40,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("dev", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

METRICS = ("l2", "ip", "cos")
_ISAS = annx.available_isas()
FLAT_SPECS = ("Flat", "Flat,F16", "Flat,BF16", "Flat,SQ8")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def shared_data_dir() -> Path:
    env = os.environ.get("ANNX_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(params=_ISAS)
def isa(request: pytest.FixtureRequest):
    previous = annx.get_isa()
    annx.set_isa(request.param)
    yield request.param
    annx.set_isa(previous)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark data folder; skips the test where it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"benchmark data folder {path} not found (set ANNX_SHARED_DATA)")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses the real benchmark data ``real_data``."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)


# ---------------------------------------------------------------------------- helpers
def make_data(n: int, d: int, seed: int = 0, *, dtype: type = np.float32) -> np.ndarray:
    """Seeded standard-normal data, shape (n, d)."""
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


def make_clustered(n: int, d: int, seed: int = 0, clusters: int = 16) -> np.ndarray:
    """Seeded Gaussian-mixture data (more realistic neighbour structure)."""
    g = np.random.default_rng(seed)
    centres = g.standard_normal((clusters, d)) * 3.0
    labels = g.integers(0, clusters, n)
    return (centres[labels] + g.standard_normal((n, d))).astype(np.float32)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def scores(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """float64 [nq, n] distances (l2) or similarities (ip, cos)."""
    x = np.asarray(x, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if metric == "l2":
        if q.shape[0] * x.shape[0] * x.shape[1] <= 4_000_000:
            return ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        d2 = (q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2.0 * (q @ x.T)
        return np.maximum(d2, 0.0)
    if metric == "cos":
        x, q = _normalise(x), _normalise(q)
    return q @ x.T


def pad_value(metric: str) -> float:
    return np.inf if metric == "l2" else -np.inf


def brute_force(
    x: np.ndarray,
    q: np.ndarray,
    k: int,
    metric: str,
    ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k in float64 with annx's ordering and padding conventions."""
    x = np.asarray(x)
    nq = len(q)
    ids = np.arange(len(x), dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    D = np.full((nq, k), pad_value(metric), dtype=np.float64)
    I = np.full((nq, k), -1, dtype=np.int64)
    if len(x) == 0 or nq == 0:
        return D, I
    s = scores(x, q, metric)
    key = s if metric == "l2" else -s
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    m = order.shape[1]
    D[:, :m] = np.take_along_axis(s, order, axis=1)
    I[:, :m] = ids[order]
    return D, I


def brute_range(
    x: np.ndarray,
    q: np.ndarray,
    radius: float,
    metric: str,
    ids: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query (distances, ids) within radius, best first (float64)."""
    ids = np.arange(len(x), dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    if len(x) == 0:
        return [(np.zeros(0), np.zeros(0, np.int64)) for _ in range(len(q))]
    s = scores(x, q, metric)
    out = []
    for row in s:
        sel = np.nonzero(row < radius if metric == "l2" else row > radius)[0]
        key = row[sel] if metric == "l2" else -row[sel]
        o = sel[np.argsort(key, kind="stable")]
        out.append((row[o], ids[o]))
    return out


def recall(I: np.ndarray, gt: np.ndarray) -> float:
    """Fraction of the true neighbours (gt >= 0) found in each row of I."""
    hits = total = 0
    for a, b in zip(I, gt, strict=False):
        want = set(b[b >= 0].tolist())
        hits += len(want & set(a.tolist()))
        total += len(want)
    return hits / max(total, 1)


def assert_knn(
    D: np.ndarray,
    I: np.ndarray,
    x: np.ndarray,
    q: np.ndarray,
    k: int,
    metric: str,
    ids: np.ndarray | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """D, I must be the exact top-k of x for q (up to float32 near-ties)."""
    nq = len(q)
    assert D.shape == (nq, k) and I.shape == (nq, k)
    assert D.dtype == np.float32 and I.dtype == np.int64
    ids = np.arange(len(x), dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    Dg, Ig = brute_force(x, q, k, metric, ids)
    pad = pad_value(metric)
    # Padding exactly where the reference pads.
    np.testing.assert_array_equal(I == -1, Ig == -1)
    np.testing.assert_array_equal(D[Ig == -1], np.full(int((Ig == -1).sum()), pad, np.float32))
    live = Ig != -1
    np.testing.assert_allclose(D[live], Dg[live], rtol=rtol, atol=atol)
    if not live.any():
        return
    # Ordering: best first.
    Dl = np.where(live, D.astype(np.float64), np.nan)
    with np.errstate(invalid="ignore"):
        diffs = np.diff(Dl, axis=1)
    diffs = diffs[np.isfinite(diffs)]
    assert (diffs >= 0).all() if metric == "l2" else (diffs <= 0).all()
    # Every id differing from the reference must be a near-tie, and rows hold no repeats.
    row_of = {int(v): i for i, v in enumerate(ids)}
    s = scores(x, q, metric)
    for r in range(nq):
        got = I[r][I[r] != -1]
        assert len(set(got.tolist())) == len(got), f"repeated id in row {r}: {I[r]}"
        for j in np.nonzero((I[r] != Ig[r]) & live[r])[0]:
            true = s[r, row_of[int(I[r, j])]]
            assert np.isclose(true, Dg[r, j], rtol=rtol, atol=atol), (
                f"query {r} rank {j}: got id {I[r, j]} (score {true}), expected id "
                f"{Ig[r, j]} (score {Dg[r, j]})"
            )


def unusual_data(kind: str, n: int, d: int, seed: int) -> np.ndarray:
    """Gaussian rows made hard for exact scans: "offset" (far from the origin, where
    |x|^2 - 2<q,x> cancels), "anisotropic" (per-dimension scales over 4 decades) or
    "duplicated" (every row four times: ties broken by id); anything else: plain."""
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, d))
    if kind == "offset":  # far from the origin: |x|^2 - 2<q,x> cancels
        x = x + 1000.0
    elif kind == "anisotropic":  # per-dimension scales over 4 decades
        x = x * np.logspace(-2, 2, d)
    elif kind == "duplicated":  # every row four times: ties broken by id
        x = np.repeat(x[: n // 4], 4, axis=0)
    return x.astype(np.float32)


def normalised(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, in float64."""
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
