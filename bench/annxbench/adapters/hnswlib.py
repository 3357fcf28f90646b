"""hnswlib: ``Index(space, dim)``, ``init_index(M, ef_construction=200, random_seed=100)``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Adapter, need


class Hnswlib(Adapter):
    """Search parameter ``ef_search`` -> ``set_ef``. Bytes per vector: ``index_file_size()/n``
    plus 52 B of per-element bookkeeping in memory (link-list pointer, level, mutex)."""

    library = "hnswlib"

    def __init__(self, metric: str, M: int = 16) -> None:
        space = {"cos": "cosine", "ip": "ip", "l2": "l2"}[metric]
        super().__init__(metric, M=M, ef_construction=200, space=space)
        self.lib = need("hnswlib", "hnswlib")

    def build(self, ds: Any, threads: int) -> None:
        p = self.params
        idx = self.lib.Index(space=p["space"], dim=ds.d)
        idx.init_index(max_elements=len(ds.train), M=p["M"], ef_construction=200, random_seed=100)
        idx.add_items(ds.train, np.arange(len(ds.train)), num_threads=threads)
        self.index, self.n = idx, len(ds.train)

    def search(self, queries: Any, k: int, ef_search: int = 64, **p: Any) -> np.ndarray:
        self.index.set_ef(ef_search)
        return self.index.knn_query(queries, k=k, num_threads=self.threads)[0].astype(np.int64)

    def bytes_per_vector(self) -> float:
        return self.index.index_file_size() / self.n + 52
