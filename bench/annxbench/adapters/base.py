"""The adapter interface every library module implements."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

TRAIN_N = 20_000  # training sample for every library that trains (same rows for all)
SAMPLE_SEED = 1234


class Skip(Exception):
    """A configuration that cannot run here (library missing, metric or data unsupported)."""


def need(module: str, dist: str) -> Any:
    """Import ``module`` or raise :class:`Skip` naming the pip package ``dist``."""
    try:
        return import_module(module)
    except ImportError as exc:
        raise Skip(f"{dist} is not installed (pip install {dist})") from exc


def dist_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def train_sample(x: np.ndarray, n: int = TRAIN_N) -> np.ndarray:
    """A seeded sample of ``n`` rows (all rows when there are fewer), the same for all."""
    if len(x) <= n:
        return x
    g = np.random.default_rng(SAMPLE_SEED)
    return np.ascontiguousarray(x[np.sort(g.choice(len(x), n, replace=False))])


class Adapter:
    """One index configuration of one library."""

    library = ""
    dist = ""  # the pip distribution, for version()

    def __init__(self, metric: str, **params: Any) -> None:
        self.metric, self.params, self.threads, self.n = metric, params, 1, 0

    def version(self) -> str:
        return dist_version(self.dist or self.library)

    def build(self, ds: Any, threads: int) -> None:
        """Train (where needed) and add ``ds``'s base vectors with ``threads`` threads."""
        raise NotImplementedError

    def search(self, queries: Any, k: int, **params: Any) -> np.ndarray:
        """int64 ids [nq, k] (-1 for missing) for one batch of queries."""
        raise NotImplementedError

    def bytes_per_vector(self) -> float:
        """Memory per base vector (per document for multi-vector sets)."""
        raise NotImplementedError
