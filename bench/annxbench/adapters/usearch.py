"""usearch: ``Index(ndim, metric, dtype, connectivity=16, expansion_add=200)``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Adapter, Skip, need


class Usearch(Adapter):
    """Search parameter ``ef_search`` -> ``expansion_search``; bytes per vector:
    ``memory_usage / len(index)`` (reported by usearch)."""

    library = "usearch"

    def __init__(self, metric: str, dtype: str = "f32") -> None:
        if dtype == "i8" and metric != "cos":
            raise Skip("usearch i8 normalises vectors when casting: only meaningful for cosine")
        umetric = {"cos": "cos", "ip": "ip", "l2": "l2sq"}[metric]
        super().__init__(metric, metric_name=umetric, dtype=dtype, connectivity=16)
        self.lib = need("usearch.index", "usearch")

    def build(self, ds: Any, threads: int) -> None:
        p = self.params
        self.index = self.lib.Index(ndim=ds.d, metric=p["metric_name"], dtype=p["dtype"],
                                    connectivity=16, expansion_add=200)  # fmt: skip
        self.index.add(np.arange(len(ds.train)), ds.train, threads=threads)
        self.n = len(ds.train)

    def search(self, queries: Any, k: int, ef_search: int = 64, **p: Any) -> np.ndarray:
        self.index.expansion_search = ef_search
        m = self.index.search(queries, k, threads=self.threads)
        ids = m.keys.astype(np.int64)
        ids[np.arange(k)[None, :] >= m.counts[:, None]] = -1
        return ids

    def bytes_per_vector(self) -> float:
        return self.index.memory_usage / self.n
