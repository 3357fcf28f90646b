"""scikit-learn integration: an approximate :class:`~sklearn.neighbors.KNeighborsTransformer`.

Needs scikit-learn (``pip install "annx[sklearn]"``); ``import annx`` does not import it.

:class:`KNNTransformer` has the interface of ``sklearn.neighbors.KNeighborsTransformer``
(``fit``, ``transform`` giving a sparse k-nearest-neighbour graph, ``fit_transform``,
``kneighbors``), so it can be the first step of a pipeline into any estimator that takes
``metric="precomputed"`` sparse graphs::

    from sklearn.manifold import Isomap
    from sklearn.pipeline import make_pipeline
    from annx.sklearn import KNNTransformer

    pipe = make_pipeline(
        KNNTransformer(n_neighbors=10, spec="HNSW32"),
        Isomap(n_neighbors=10, metric="precomputed"),
    )
    embedding = pipe.fit_transform(X)
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    import scipy.sparse as sp
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError('annx.sklearn needs scikit-learn: pip install "annx[sklearn]"') from exc

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(est: Any, X: Any, reset: bool = True, **kw: Any) -> Any:
        return est._validate_data(X, reset=reset, **kw)


from ._surface import METRIC_L2
from .factory import index_factory

__all__ = ["KNNTransformer"]

# metric parameter -> (annx index metric, how squared-L2 / similarity becomes a distance)
_METRICS = {
    "l2": "l2",
    "euclidean": "l2",
    "sqeuclidean": "l2",
    "cos": "cos",
    "cosine": "cos",
}


class KNNTransformer(TransformerMixin, BaseEstimator):
    """Approximate k-nearest-neighbour graphs with an annx index.

    The interface of :class:`sklearn.neighbors.KNeighborsTransformer`: :meth:`fit`
    indexes the training data, :meth:`transform` returns for each row of ``X`` a sparse
    row of its neighbours among the training rows (scipy CSR, shape
    ``[n_queries, n_samples_fit]``), :meth:`kneighbors` returns them as arrays.

    Args:
        n_neighbors: neighbours per row of the graph. As in scikit-learn, with
            ``mode="distance"`` one extra neighbour is computed, because each training
            sample is its own nearest neighbour (at distance 0).
        mode: ``"distance"`` (edges weighted by distance) or ``"connectivity"``
            (edges weighted 1).
        spec: annx factory string (:func:`annx.index_factory`), e.g. ``"HNSW32"``,
            ``"Flat"`` (exact) or ``"IVF256,Flat"`` (trained on the fit data).
        metric: ``"l2"`` / ``"euclidean"`` (Euclidean distance; :data:`annx.METRIC_L2`
            is accepted), ``"sqeuclidean"`` (squared Euclidean) or ``"cos"`` /
            ``"cosine"`` (cosine distance ``1 - cos``). Graph weights must be
            distances, so ``"ip"`` is not offered.
        ef_search: HNSW search parameter (``annx.Index.search``'s ``**params``);
            ``None`` leaves annx's default. The search parameters are named
            parameters, not ``**kwargs``, so that ``get_params``/``clone`` keep them.
        nprobe: IVF search parameter; ``None`` leaves annx's default.
        rerank: ``Refine(...)`` search parameter; ``None`` leaves annx's default.
        ef_construction: passed to :func:`annx.index_factory` when not ``None``.
        seed: passed to :func:`annx.index_factory` when not ``None``.
        n_jobs: threads per call (``None``: annx's default; ``-1``: all).

    Attributes:
        index_: the fitted annx index.
        n_samples_fit_: number of training rows.
        n_features_in_: number of features seen in :meth:`fit`.
        effective_metric_: the metric name used (``"l2"``, ``"sqeuclidean"``, ``"cos"``).

    """

    def __init__(
        self,
        n_neighbors: int = 5,
        mode: str = "distance",
        spec: str = "HNSW32",
        metric: str | int = "l2",
        *,
        ef_search: int | None = None,
        nprobe: int | None = None,
        rerank: int | None = None,
        ef_construction: int | None = None,
        seed: int | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.mode = mode
        self.spec = spec
        self.metric = metric
        self.ef_search = ef_search
        self.nprobe = nprobe
        self.rerank = rerank
        self.ef_construction = ef_construction
        self.seed = seed
        self.n_jobs = n_jobs

    # ---- scikit-learn plumbing -------------------------------------------------------
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"preserves_dtype": [np.float64, np.float32]}

    def _check_params(self) -> tuple[str, str]:
        n = self.n_neighbors
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_neighbors must be a positive integer, got {n!r}")
        if self.mode not in ("distance", "connectivity"):
            raise ValueError(f"mode must be 'distance' or 'connectivity', got {self.mode!r}")
        metric = self.metric
        if isinstance(metric, (int, np.integer)) and not isinstance(metric, bool):
            if int(metric) != METRIC_L2:
                raise ValueError(
                    f"metric {metric!r}: only annx.METRIC_L2 ({METRIC_L2}) is a distance; "
                    "use 'l2', 'sqeuclidean' or 'cos'"
                )
            metric = "l2"
        if metric not in _METRICS:
            raise ValueError(
                f"metric must be one of {sorted(_METRICS)} (graph weights are distances), "
                f"got {metric!r}"
            )
        effective = {"euclidean": "l2", "cosine": "cos"}.get(metric, metric)
        return _METRICS[metric], effective

    def _threads(self) -> int | None:
        j = self.n_jobs
        if j is None:
            return None
        if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or j == 0 or j < -1:
            raise ValueError(f"n_jobs must be None, -1 or a positive integer, got {j!r}")
        if j == -1:
            import os

            return os.cpu_count() or 1
        return int(j)

    def _search_params(self) -> dict[str, int]:
        return {
            name: value
            for name, value in (
                ("ef_search", self.ef_search),
                ("nprobe", self.nprobe),
                ("rerank", self.rerank),
            )
            if value is not None
        }

    # ---- estimator -------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> KNNTransformer:
        """Index the training data ``X`` (array-like ``[n_samples, n_features]``)."""
        index_metric, effective = self._check_params()
        threads = self._threads()
        X = _validate_data(self, X, dtype=[np.float64, np.float32])
        kwargs: dict[str, Any] = {}
        if self.ef_construction is not None:
            kwargs["ef_construction"] = self.ef_construction
        if self.seed is not None:
            kwargs["seed"] = self.seed
        index = index_factory(X.shape[1], self.spec, index_metric, **kwargs)
        x32 = np.ascontiguousarray(X, dtype=np.float32)
        if not index.is_trained:
            index.train(x32)
        index.add(x32, threads=threads)
        self.index_ = index
        self.n_samples_fit_ = X.shape[0]
        self.effective_metric_ = effective
        return self

    def _distances(self, D: np.ndarray, dtype: Any) -> np.ndarray:
        if self.effective_metric_ == "l2":
            out = np.sqrt(np.maximum(D, 0.0, dtype=np.float64))
        elif self.effective_metric_ == "sqeuclidean":
            out = np.maximum(D.astype(np.float64), 0.0)
        else:  # cosine similarity -> distance
            out = np.clip(1.0 - D.astype(np.float64), 0.0, 2.0)
        return out.astype(dtype, copy=False)

    def kneighbors(
        self, X: Any = None, n_neighbors: int | None = None, return_distance: bool = True
    ) -> Any:
        """Find the ``n_neighbors`` nearest training rows of each row of ``X``.

        With ``X=None`` the training rows are queried (as the index stores them: decoded
        for lossy codecs, normalised for ``"cos"``) and each row is not its own
        neighbour (scikit-learn's convention). Returns ``(distances, indices)``
        (``[n_queries, n_neighbors]``, closest first), or only ``indices`` when
        ``return_distance=False``. ``n_neighbors`` above the number of training rows
        (minus one with ``X=None``) raises :class:`ValueError`.
        """
        check_is_fitted(self)
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_neighbors must be a positive integer, got {k!r}")
        query_is_train = X is None
        if query_is_train:
            q = self.index_.reconstruct(np.arange(self.n_samples_fit_))
            dtype = np.float64
            k_search = k + 1
        else:
            Xv = _validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
            q, dtype, k_search = Xv, Xv.dtype, k
        if k_search > self.n_samples_fit_:
            raise ValueError(
                f"Expected n_neighbors <= n_samples_fit, but n_neighbors = {k_search}, "
                f"n_samples_fit = {self.n_samples_fit_}, n_samples = {len(q)}"
            )
        D, I = self.index_.search(
            np.ascontiguousarray(q, dtype=np.float32),
            k_search,
            threads=self._threads(),
            **self._search_params(),
        )
        if query_is_train:  # drop each row itself (or, if absent, its last neighbour)
            rows = np.arange(len(I))[:, None]
            is_self = I == rows
            drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k_search - 1)
            keep = np.ones(I.shape, bool)
            keep[np.arange(len(I)), drop] = False
            D = D[keep].reshape(len(I), k)
            I = I[keep].reshape(len(I), k)
        if (I < 0).any():  # an approximate index found fewer than k: not a valid graph
            raise ValueError(
                f"the index returned fewer than {k_search} neighbours for some rows; raise "
                "ef_search/nprobe or use spec='Flat'"
            )
        dist = self._distances(D, dtype)
        return (dist, I) if return_distance else I

    def transform(self, X: Any) -> sp.csr_matrix:
        """Sparse k-nearest-neighbour graph of ``X`` against the training rows.

        CSR ``[n_queries, n_samples_fit]``; with ``mode="distance"`` each row holds
        ``n_neighbors + 1`` distances (a training row's first neighbour is itself, at
        distance 0, stored explicitly), with ``"connectivity"`` ``n_neighbors`` ones.
        """
        check_is_fitted(self)
        add_one = self.mode == "distance"
        k = self.n_neighbors + add_one
        X = _validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        dist, ind = self.kneighbors(X, n_neighbors=k)
        n = X.shape[0]
        data = dist.ravel() if self.mode == "distance" else np.ones(n * k, dtype=X.dtype)
        indptr = np.arange(0, n * k + 1, k)
        return sp.csr_matrix((data, ind.ravel(), indptr), shape=(n, self.n_samples_fit_))

    def fit_transform(self, X: Any, y: Any = None) -> sp.csr_matrix:
        """:meth:`fit` then :meth:`transform` on the same data."""
        return self.fit(X).transform(X)
