"""LeanVec linear dimensionality reduction (ID: PCA; OOD: query-aware, Frank-Wolfe).

The fit runs in numpy (LAPACK through numpy, none in annx's C++ core); an index built
with a ``"LeanVec<D>"`` spec applies the fitted matrices in C++ (see
``cpp/include/annx/transform/leanvec.h``). Method: Tepper et al., "LeanVec: Searching
vectors faster by making them fit", arXiv 2312.16335; annx's specification is in the
shared design (algorithms.md section 5).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._errors import InvalidArgumentError, NotTrainedError
from ._surface import as_metric
from ._validate import as_matrix, check_finite

_KINDS = ("id", "ood")
_METRICS = {
    "l2": "l2",
    "euclidean": "l2",
    "ip": "ip",
    "dot": "ip",
    "cos": "cos",
    "cosine": "cos",
    "angular": "cos",
}
# Eigen-blend initialisation of the OOD solver: weights of the query moment tried.
_BETAS = np.linspace(0.0, 1.0, 11)


def _normalise(x: np.ndarray, name: str) -> np.ndarray:
    # float64: the squares of tiny (subnormal) float32 values underflow in float32.
    x64 = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x64, axis=1, keepdims=True)
    if (norms == 0).any():
        r = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise InvalidArgumentError(f"{name} row {r} is a zero vector, which has no cosine")
    return (x64 / norms).astype(np.float32)


def _second_moment(x: np.ndarray, shift: np.ndarray | None) -> np.ndarray:
    """(x - shift)^T (x - shift) / n in float64 (the product itself in float32 BLAS)."""
    xc = x if shift is None else x - shift.astype(np.float32)
    k = (xc.T @ xc).astype(np.float64) / x.shape[0]
    return (k + k.T) / 2


def _top_eigvecs(k: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-d eigenvectors (columns, descending eigenvalue), signs fixed.

    Each column's largest-magnitude entry is made positive, so fits are reproducible.
    """
    w, v = np.linalg.eigh(k)
    w, v = w[::-1][:d], v[:, ::-1][:, :d]
    flip = np.sign(v[np.abs(v).argmax(axis=0), np.arange(d)])
    return v * np.where(flip == 0, 1.0, flip), w


def _lmo(g: np.ndarray) -> np.ndarray:
    """Linear minimisation oracle over the spectral-norm unit ball.

    argmin_{|S|_2 <= 1} <G, S> = -U V^T for the thin SVD G = U diag(s) V^T.
    """
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    return -(u @ vt)


class _OodObjective:
    """f(A, B) = sum_q sum_x (q^T x - q^T A B^T x)^2 = tr(K_Q M K_X M^T), M = I - A B^T.

    Both second moments are scaled to unit trace (scaling does not move the optimum);
    ``relative(A, B)`` is f divided by f(0, 0) = tr(K_Q K_X): 0 is a perfect
    reduction, 1 projects everything to zero.
    """

    def __init__(self, kq: np.ndarray, kx: np.ndarray) -> None:
        self.kq = kq / np.trace(kq)
        self.kx = kx / np.trace(kx)
        self.c = float(np.sum(self.kq * self.kx))

    def value(self, a: np.ndarray, b: np.ndarray) -> float:
        kqa, kxb = self.kq @ a, self.kx @ b
        f = self.c - 2 * np.sum(kxb * kqa) + np.sum((a.T @ kqa) * (b.T @ kxb))
        return max(float(f), 0.0)

    def relative(self, a: np.ndarray, b: np.ndarray) -> float:
        return self.value(a, b) / self.c

    @staticmethod
    def gradient(k1: np.ndarray, y: np.ndarray, k2: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Gradient of f in y: 2 k1 y (z^T k2 z) - 2 k1 k2 z.

        Argument roles as in :meth:`fw_step`.
        """
        k2z = k2 @ z
        return _OodObjective._gradient(k1, y, k2z, z.T @ k2z)

    @staticmethod
    def _gradient(k1: np.ndarray, y: np.ndarray, k2z: np.ndarray, w: np.ndarray) -> np.ndarray:
        return 2 * ((k1 @ y) @ w) - 2 * (k1 @ k2z)

    @staticmethod
    def fw_step(k1: np.ndarray, y: np.ndarray, k2: np.ndarray, z: np.ndarray) -> np.ndarray:
        """One Frank-Wolfe step on y (z fixed) over the spectral-norm unit ball.

        The step length is an exact line search (f is quadratic along the step), where
        f = c - 2 sum((k2 z) * (k1 y)) + sum((y^T k1 y) * (z^T k2 z)).
        A = query matrix: (k1, y, k2, z) = (K_Q, A, K_X, B); B: (K_X, B, K_Q, A).
        """
        k2z = k2 @ z
        w = z.T @ k2z
        step = _lmo(_OodObjective._gradient(k1, y, k2z, w)) - y
        k1s = k1 @ step
        g1 = -2 * np.sum(k2z * k1s) + 2 * np.sum((y.T @ k1s) * w)
        h = np.sum((step.T @ k1s) * w)
        if h > 0:
            gamma = float(np.clip(-g1 / (2 * h), 0.0, 1.0))
        else:
            gamma = 1.0 if g1 < 0 else 0.0
        return y + gamma * step


class LeanVec:
    """LeanVec dimensionality reduction (Tepper et al., 2023).

    Database vectors map to ``x -> (x - mean) @ B`` and queries to
    ``q -> (q - mean) @ A`` (L2, cosine) or ``q @ A`` (inner product), with
    ``B`` (:attr:`data_matrix`) and ``A`` (:attr:`query_matrix`) of shape
    ``(d, target_dim)``.

    Args:
        target_dim: reduced dimension (``1 <= target_dim < d``).
        kind: ``"id"`` (in-distribution: PCA of the centred database vectors,
            ``A = B``) or ``"ood"`` (out-of-distribution: separate query and data
            matrices learned from training queries so that ``<A^T q, B^T x>``
            approximates ``<q, x>``; needs ``queries`` in :meth:`fit`).
        metric: ``"l2"``, ``"ip"`` or ``"cos"``; decides whether queries are centred
            (L2 and cosine, whose unit vectors rank by L2) and whether vectors are
            normalised first (cosine).
        seed: seed of the training sample.
        sample_size: fit on at most this many (uniformly sampled) vectors and queries.
        max_iter: Frank-Wolfe iteration cap (OOD).
        tol: the OOD solver stops when an iteration lowers the loss by less than
            ``tol`` times its value.

    After :meth:`fit`: :attr:`mean`, :attr:`data_matrix`, :attr:`query_matrix`;
    ``explained_variance_ratio_`` (ID: variance kept by each dimension); for OOD
    ``loss_history_`` (relative loss before the solver and after each iteration:
    non-increasing) and ``n_iter_``. :meth:`loss` evaluates the OOD objective.

    The OOD solver is the paper's block-coordinate Frank-Wolfe over the spectral-norm
    unit ball. It starts from the best of eleven eigen-blend solutions (top
    eigenvectors of ``beta K_Q + (1 - beta) K_X``, which includes PCA at
    ``beta = 0``) rather than from zero, and takes exactly line-searched steps
    instead of the ``1 / (t + 1)`` schedule, so the loss never increases and never
    ends above the ID (PCA) loss on the training data.

    """

    def __init__(
        self,
        target_dim: int,
        kind: str = "id",
        *,
        metric: str = "l2",
        seed: int = 0,
        sample_size: int = 100_000,
        max_iter: int = 500,
        tol: float = 1e-4,
    ) -> None:
        if (
            isinstance(target_dim, bool)
            or not isinstance(target_dim, numbers.Integral)
            or (target_dim < 1)
        ):
            raise InvalidArgumentError(f"target_dim must be a positive integer, got {target_dim!r}")
        if kind not in _KINDS:
            raise InvalidArgumentError(f"kind must be 'id' or 'ood', got {kind!r}")
        metric = as_metric(metric, ("l2", "ip", "cos"))
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise InvalidArgumentError(f"seed must be a non-negative integer, got {seed!r}")
        for name, v, lo in (("sample_size", sample_size, 2), ("max_iter", max_iter, 0)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise InvalidArgumentError(f"{name} must be an integer >= {lo}, got {v!r}")
        if not (isinstance(tol, numbers.Real) and 0 <= tol < 1):
            raise InvalidArgumentError(f"tol must be in [0, 1), got {tol!r}")
        self.target_dim = int(target_dim)
        self.kind = kind
        self.metric = _METRICS[metric]
        self.seed = int(seed)
        self.sample_size = int(sample_size)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self._mean: np.ndarray | None = None
        self._data: np.ndarray | None = None
        self._query: np.ndarray | None = None
        self.explained_variance_ratio_: np.ndarray | None = None
        self.loss_history_: list[float] = []
        self.n_iter_ = 0

    # ------------------------------------------------------------------ fitting
    def _prepare(self, x: Any, name: str, d: int | None = None) -> np.ndarray:
        arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
        if arr.ndim != 2:
            raise InvalidArgumentError(
                f"{name} must be a 2-D array of shape (n, d), got shape {arr.shape}"
            )
        arr = as_matrix(arr, arr.shape[1] if d is None else d, name)
        check_finite(arr, name)
        return _normalise(arr, name) if self.metric == "cos" else arr

    def _sample(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if x.shape[0] <= self.sample_size:
            return x
        return x[np.sort(rng.choice(x.shape[0], self.sample_size, replace=False))]

    def fit(self, x: Any, queries: Any = None) -> LeanVec:
        """Fit on database vectors ``x`` [n, d]; returns ``self``.

        ``kind="ood"`` also needs training ``queries`` [m, d]: held-out queries of the
        kind the index will serve, never the test queries.
        """
        x = self._prepare(x, "x")
        n, d = x.shape
        if self.target_dim >= d:
            raise InvalidArgumentError(
                f"target_dim ({self.target_dim}) must be smaller than the dimension d = {d}"
            )
        if n <= self.target_dim:
            raise InvalidArgumentError(
                f"LeanVec{self.target_dim} needs more than {self.target_dim} training vectors, "
                f"got {n}"
            )
        if self.kind == "id" and queries is not None:
            raise InvalidArgumentError(
                "queries are used by kind='ood' only; LeanVec-ID (PCA) is fitted on x alone"
            )
        if self.kind == "ood":
            if queries is None:
                raise InvalidArgumentError(
                    "LeanVec-OOD needs training queries: fit(x, queries=q_train) (held-out "
                    "queries of the kind the index will serve, not the test queries)"
                )
            q = self._prepare(queries, "queries", d)
            if q.shape[0] < 2:
                raise InvalidArgumentError(
                    f"LeanVec-OOD needs at least 2 training queries, got {q.shape[0]}"
                )
        rng = np.random.default_rng(self.seed)
        xs = self._sample(x, rng)
        mean = xs.mean(axis=0, dtype=np.float64)
        kx = _second_moment(xs, mean)
        p, w = _top_eigvecs(kx, self.target_dim)
        total = float(np.trace(kx))
        self.explained_variance_ratio_ = (w / total) if total > 0 else np.zeros_like(w)
        a = b = p
        self.loss_history_ = []
        self.n_iter_ = 0
        if self.kind == "ood":
            qs = self._sample(q, rng)
            kq = _second_moment(qs, None if self.metric == "ip" else mean)
            a, b = self._solve_ood(_OodObjective(kq, kx))
        self._mean = mean.astype(np.float32)
        self._data = np.ascontiguousarray(b, dtype=np.float32)
        self._query = np.ascontiguousarray(a, dtype=np.float32)
        return self

    def _solve_ood(self, obj: _OodObjective) -> tuple[np.ndarray, np.ndarray]:
        kq_n = obj.kq / np.linalg.norm(obj.kq)
        kx_n = obj.kx / np.linalg.norm(obj.kx)
        best, best_loss = None, np.inf
        for beta in _BETAS:
            p, _ = _top_eigvecs(beta * kq_n + (1 - beta) * kx_n, self.target_dim)
            loss = obj.value(p, p)
            if loss < best_loss:
                best, best_loss = p, loss
        a = b = best
        prev = best_loss
        self.loss_history_ = [prev / obj.c]
        for it in range(self.max_iter):
            a = obj.fw_step(obj.kq, a, obj.kx, b)
            b = obj.fw_step(obj.kx, b, obj.kq, a)
            cur = obj.value(a, b)
            self.loss_history_.append(cur / obj.c)
            self.n_iter_ = it + 1
            if prev - cur <= self.tol * prev:
                break
            prev = cur
        return a, b

    # --------------------------------------------------------------- applying
    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has run (or matrices were loaded from an index)."""
        return self._mean is not None

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._mean is None or self._data is None or self._query is None:
            raise NotTrainedError("LeanVec is not fitted: call fit(x) first")
        return self._mean, self._data, self._query

    @property
    def d(self) -> int:
        """Input dimension (after fitting)."""
        return self._fitted()[0].shape[0]

    @property
    def mean(self) -> np.ndarray:
        """Mean of the (normalised, for cosine) training vectors, float32 [d]."""
        return self._fitted()[0].copy()

    @property
    def data_matrix(self) -> np.ndarray:
        """B, float32 [d, target_dim]: database vectors map to ``(x - mean) @ B``."""
        return self._fitted()[1].copy()

    @property
    def query_matrix(self) -> np.ndarray:
        """A, float32 [d, target_dim], the query matrix.

        Queries map to ``(q - mean) @ A`` (L2, cosine) or ``q @ A`` (inner product).
        Equal to :attr:`data_matrix` for ``kind="id"``.
        """
        return self._fitted()[2].copy()

    def transform(self, x: Any) -> np.ndarray:
        """Database side: float32 [n, target_dim]."""
        mean, data, _ = self._fitted()
        return np.ascontiguousarray((self._prepare(x, "x", mean.shape[0]) - mean) @ data)

    def transform_queries(self, q: Any) -> np.ndarray:
        """Query side: float32 [m, target_dim] (centred except for inner product)."""
        mean, _, query = self._fitted()
        q = self._prepare(q, "queries", mean.shape[0])
        if self.metric != "ip":
            q = q - mean
        return np.ascontiguousarray(q @ query)

    def loss(self, x: Any, queries: Any) -> float:
        """The OOD objective of the fitted matrices on ``x`` and ``queries``.

        Relative to the loss of mapping everything to zero (0 is perfect). Applies to
        both kinds, so ID and OOD fits can be compared on held-out data.
        """
        mean, data, query = self._fitted()
        x = self._prepare(x, "x", mean.shape[0])
        q = self._prepare(queries, "queries", mean.shape[0])
        obj = _OodObjective(
            _second_moment(q, None if self.metric == "ip" else mean.astype(np.float64)),
            _second_moment(x, mean.astype(np.float64)),
        )
        return obj.relative(query.astype(np.float64), data.astype(np.float64))

    @classmethod
    def _from_matrices(
        cls, kind: str, metric: str, mean: np.ndarray, data: np.ndarray, query: np.ndarray
    ) -> LeanVec:
        lv = cls(data.shape[1], kind, metric=metric)
        lv._mean, lv._data, lv._query = mean, data, query
        return lv

    def __repr__(self) -> str:
        state = "fitted" if self.is_fitted else "not fitted"
        return (
            f"annx.LeanVec(target_dim={self.target_dim}, kind={self.kind!r}, "
            f"metric={self.metric!r}, {state})"
        )
