"""k-means clustering on annx's SIMD kernels (the same code that trains IVF and PQ)."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from . import _core
from ._errors import InvalidArgumentError, NotTrainedError
from ._progress import Progress, _Reporter
from ._surface import as_metric
from ._validate import as_matrix, as_threads, check_finite

_INITS = ("auto", "random", "kmeans++")


def _check_int(name: str, value: Any, lo: int, hi: int = 2**31 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise InvalidArgumentError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


class KMeans:
    """Lloyd's k-means, faiss-compatible defaults (``faiss.Kmeans`` users feel at home).

    Args:
        d: dimension of the points.
        k: number of centroids.
        niter: Lloyd iterations (default 25).
        nredo: independent runs with derived seeds; the lowest objective wins.
        seed: seed of the subsample and the initialisation (default 1234).
        init: ``"auto"`` (k-means++ when ``n * k * d <= 2**31``, else random),
            ``"random"`` (k distinct training points, faiss's default) or ``"kmeans++"``.
        spherical: re-normalise centroids to unit length after every update.
        metric: ``"l2"`` assigns points to the nearest centroid, ``"ip"`` to the one
            with the largest inner product (use with ``spherical=True`` for cosine).
        max_points_per_centroid: train on a seeded sample of at most ``k`` times this
            many points (0: use all points).
        min_points_per_centroid: warn (``RuntimeWarning``) below ``k`` times this many.

    After :meth:`train`: ``centroids`` (float32 [k, d]), ``objective`` (the sum of
    squared distances, or of inner products for ``"ip"``, after each iteration's
    assignment), ``imbalance`` (``k * sum(n_j**2) / n**2``; 1 is perfectly balanced),
    ``n_train`` (points used) and ``n_split`` (empty clusters re-seeded by splitting).
    Empty clusters are split from a donor cluster as faiss does. Assignments use blocked
    SIMD kernels and annx's thread pool; results do not depend on the thread count.

    """

    def __init__(
        self,
        d: int,
        k: int,
        *,
        niter: int = 25,
        nredo: int = 1,
        seed: int = 1234,
        init: str = "auto",
        spherical: bool = False,
        metric: str = "l2",
        max_points_per_centroid: int = 256,
        min_points_per_centroid: int = 39,
    ) -> None:
        self.d = _check_int("d", d, 1)
        self.k = _check_int("k", k, 1)
        self.niter = _check_int("niter", niter, 0, 10**6)
        self.nredo = _check_int("nredo", nredo, 1, 10**4)
        if (
            isinstance(seed, bool)
            or not isinstance(seed, numbers.Integral)
            or not 0 <= seed < 2**64
        ):
            raise InvalidArgumentError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        self.seed = int(seed)
        if init not in _INITS:
            raise InvalidArgumentError(f"init must be one of {_INITS}, got {init!r}")
        self.init = init
        self.spherical = bool(spherical)
        self.metric = as_metric(metric, ("l2", "ip"))
        self.max_points_per_centroid = _check_int(
            "max_points_per_centroid", max_points_per_centroid, 0
        )
        self.min_points_per_centroid = _check_int(
            "min_points_per_centroid", min_points_per_centroid, 0
        )
        self.centroids: np.ndarray | None = None
        self.objective: list[float] = []
        self.imbalance: float = float("nan")
        self.n_train = 0
        self.n_split = 0

    def train(self, x: Any, *, threads: int | None = None, progress: Progress = None) -> KMeans:
        """Cluster ``x`` (float32 [n, d], n >= k); returns self.

        ``progress=True`` shows a progress bar (tqdm if installed, else a line on stderr
        every second); a callable is called as ``progress(done, total)`` after every
        Lloyd iteration (``total = nredo * niter``, or 1 with ``niter=0``; the last call
        is ``(total, total)``) and may return ``False`` to cancel: the call then raises
        :class:`annx.CancelledError` and leaves this object unchanged, as does an
        exception raised by the callback (which propagates).
        """
        x = as_matrix(x, self.d, "x")
        check_finite(x, "x")
        if x.shape[0] < self.k:
            raise InvalidArgumentError(
                f"k-means with k={self.k} centroids needs at least {self.k} points, "
                f"got {x.shape[0]}"
            )
        reporter = None
        if progress is not None and progress is not False:
            units = _core.kmeans_units(self.niter, self.nredo)
            reporter = _Reporter(progress, units, "k-means", unit="it")
        try:
            r = _core.kmeans(
                x,
                self.k,
                self.niter,
                self.nredo,
                self.seed,
                self.init,
                self.max_points_per_centroid,
                self.min_points_per_centroid,
                self.spherical,
                self.metric == "ip",
                as_threads(threads),
                None if reporter is None else reporter.hook(),
            )
        finally:
            if reporter is not None:
                reporter.close()
        if r["few_points"]:
            warnings.warn(
                f"k-means: {r['n_train']} training points for {self.k} centroids is fewer than "
                f"{self.min_points_per_centroid} per centroid; centroids may be poor",
                RuntimeWarning,
                stacklevel=2,
            )
        self.centroids = r["centroids"]
        self.objective = list(r["objective"])
        self.imbalance = float(r["imbalance"])
        self.n_train = int(r["n_train"])
        self.n_split = int(r["n_split"])
        return self

    def assign(self, x: Any, *, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Nearest centroid of each row of ``x``: ``(D, I)``, float32 and int64 [n].

        ``D`` is the squared distance (``"l2"``) or the inner product (``"ip"``).
        """
        if self.centroids is None:
            raise NotTrainedError("KMeans.assign needs train() first (no centroids yet)")
        x = as_matrix(x, self.d, "x")
        ip = self.metric == "ip"
        D, I = _core.nearest_centroids(self.centroids, x, 1, ip, as_threads(threads))
        D = D[:, 0]
        return (-D if ip else D), I[:, 0].astype(np.int64)


def kmeans(
    x: Any,
    k: int,
    *,
    niter: int = 25,
    seed: int = 1234,
    spherical: bool = False,
    metric: str = "l2",
    init: str = "auto",
    max_points_per_centroid: int = 256,
    threads: int | None = None,
    progress: Progress = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ``x`` into ``k`` groups; returns ``(centroids, assignments)``.

    ``centroids`` is float32 [k, d]; ``assignments`` int64 [n] gives every row of ``x``
    (all rows, also when training used a sample) its nearest centroid. See
    :class:`KMeans` for the parameters and for the objective and balance reports, and
    :meth:`KMeans.train` for ``progress`` (Lloyd iterations; the final assignment is
    not counted).
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise InvalidArgumentError(f"x must be a 2-D array (n, d), got shape {arr.shape}")
    km = KMeans(
        arr.shape[1],
        k,
        niter=niter,
        seed=seed,
        spherical=spherical,
        metric=metric,
        init=init,
        max_points_per_centroid=max_points_per_centroid,
    )
    km.train(arr, threads=threads, progress=progress)
    _, labels = km.assign(arr, threads=threads)
    assert km.centroids is not None
    return km.centroids, labels
