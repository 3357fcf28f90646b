"""ScaNN: a k-means tree, anisotropic 4-bit asymmetric hashing (2 dimensions per block,
threshold 0.2, the settings of ScaNN's ann-benchmarks entry) and exact re-ordering."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Adapter, need, train_sample


class Scann(Adapter):
    """``nprobe`` -> ``leaves_to_search``, ``rerank`` -> ``pre_reorder_num_neighbors``. Bytes
    per vector estimated: 4-bit codes per 2 dimensions + float32 re-order copy + 8 B id."""

    library = "scann"

    def __init__(self, metric: str, nlist: int) -> None:
        super().__init__(metric, num_leaves=nlist, ah_dims_per_block=2, aq_threshold=0.2,
                         distance="squared_l2" if metric == "l2" else "dot_product")  # fmt: skip
        self.lib = need("scann", "scann")

    def build(self, ds: Any, threads: int) -> None:
        p = self.params
        b = self.lib.scann_ops_pybind.builder(ds.train, 10, p["distance"])
        b = b.tree(num_leaves=p["num_leaves"], num_leaves_to_search=min(16, p["num_leaves"]),
                   training_sample_size=len(train_sample(ds.train)))  # fmt: skip
        self.searcher = b.score_ah(2, anisotropic_quantization_threshold=0.2).reorder(100).build()
        self.n, self.d = len(ds.train), ds.d

    def search(self, queries: Any, k: int, nprobe: int = 16, rerank: int = 100, **p: Any):
        ids, _ = self.searcher.search_batched(
            queries, final_num_neighbors=k, leaves_to_search=nprobe,
            pre_reorder_num_neighbors=max(k, rerank),
        )  # fmt: skip
        return np.asarray(ids, dtype=np.int64)

    def bytes_per_vector(self) -> float:
        return self.d / 4 + 4 * self.d + 8
