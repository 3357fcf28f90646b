"""Intel SVS (``scalable-vs``): Vamana graph, alpha 0.95 (1.2 for L2), degree 64, window 128."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Adapter, need


class SvsVamana(Adapter):
    """Search parameter ``ef_search`` -> ``search_window_size``; bytes per vector estimated
    as float32 data plus a fixed-width uint32 adjacency row of (degree + 1) entries."""

    library, dist = "svs", "scalable-vs"

    def __init__(self, metric: str) -> None:
        super().__init__(metric, alpha=1.2 if metric == "l2" else 0.95, graph_max_degree=64,
                         window_size=128, distance="L2" if metric == "l2" else "MIP")  # fmt: skip
        self.svs = need("svs", "scalable-vs")

    def build(self, ds: Any, threads: int) -> None:
        p, svs = self.params, self.svs
        bp = svs.VamanaBuildParameters(alpha=p["alpha"], graph_max_degree=64, window_size=128)
        self.index = svs.Vamana.build(bp, ds.train, getattr(svs.DistanceType, p["distance"]),
                                      num_threads=threads)  # fmt: skip
        self.n, self.d = len(ds.train), ds.d

    def search(self, queries: Any, k: int, ef_search: int = 64, **p: Any) -> np.ndarray:
        self.index.num_threads = self.threads
        self.index.search_window_size = max(ef_search, k)
        return self.index.search(queries, k)[0].astype(np.int64)

    def bytes_per_vector(self) -> float:
        return self.d * 4 + 65 * 4
