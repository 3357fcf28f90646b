"""faiss-cpu: any ``index_factory`` string (Flat, HNSW, IVF, PQ fast-scan), optionally in
``IndexRefineFlat``, and ``IndexBinaryFlat`` over sign bits."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Adapter, need, train_sample


class Faiss(Adapter):
    """``faiss.index_factory(d, factory, metric)`` (inner product for cos/ip); HNSW with
    efConstruction 200; IVF-PQ without polysemous training; ``refine`` wraps it in
    ``IndexRefineFlat`` (search parameter ``rerank`` = k_factor * k)."""

    library, dist = "faiss", "faiss-cpu"

    def __init__(self, metric: str, factory: str, refine: bool = False) -> None:
        super().__init__(metric, factory=factory + (" + IndexRefineFlat" if refine else ""))
        self.faiss, self.factory, self.refine = need("faiss", "faiss-cpu"), factory, refine

    def version(self) -> str:
        return self.faiss.__version__

    def build(self, ds: Any, threads: int) -> None:
        faiss = self.faiss
        mt = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.base = faiss.index_factory(ds.d, self.factory, mt)
        inner = faiss.downcast_index(self.base)
        if hasattr(inner, "hnsw"):
            inner.hnsw.efConstruction = 200
        if getattr(inner, "do_polysemous_training", False):
            inner.do_polysemous_training = False
        self.index = faiss.IndexRefineFlat(self.base) if self.refine else self.base
        faiss.omp_set_num_threads(threads)
        if not self.index.is_trained:
            self.index.train(train_sample(ds.train))
        self.index.add(ds.train)
        self.n = self.index.ntotal

    def search(self, queries: Any, k: int, **p: Any) -> np.ndarray:
        faiss = self.faiss
        faiss.omp_set_num_threads(self.threads)
        params = None
        if "ef_search" in p:
            params = faiss.SearchParametersHNSW(efSearch=p["ef_search"])
        if "nprobe" in p:
            params = faiss.SearchParametersIVF(nprobe=p["nprobe"])
        if self.refine:
            kf = max(1.0, p.get("rerank", k) / k)
            params = faiss.IndexRefineSearchParameters(k_factor=kf, base_index_params=params)
        return self.index.search(queries, k, params=params)[1]

    def bytes_per_vector(self) -> float:
        """Computed from the index's own arrays (ids, codes, graph links, refine store);
        fixed tables (centroids, codebooks) are left out."""
        faiss, inner = self.faiss, self.faiss.downcast_index(self.base)
        if hasattr(inner, "hnsw"):
            h = inner.hnsw
            total = self.n * inner.d * 4 + h.neighbors.size() * 4 + h.offsets.size() * 8
            total += h.levels.size() * 4
        elif hasattr(inner, "invlists"):
            il = faiss.downcast_InvertedLists(inner.invlists)
            sizes = [il.list_size(i) for i in range(inner.nlist)]
            if isinstance(il, faiss.BlockInvertedLists):
                total = sum(-(-s // il.n_per_block) * il.block_size for s in sizes)
            else:
                total = sum(sizes) * il.code_size
            total += 8 * sum(sizes)
        else:
            total = self.n * inner.sa_code_size() if hasattr(inner, "sa_code_size") else 0
            total = total or self.n * inner.d * 4
        if self.refine:
            total += self.n * inner.d * 4
        return total / self.n


class FaissBinary(Adapter):
    """``IndexBinaryFlat`` over the sign bits of the vectors (1 bit per dimension); the
    queries are binarised inside the timed search."""

    library, dist = "faiss", "faiss-cpu"

    def __init__(self, metric: str) -> None:
        super().__init__(metric, factory="IndexBinaryFlat(sign bits)")
        self.faiss = need("faiss", "faiss-cpu")

    def version(self) -> str:
        return self.faiss.__version__

    def build(self, ds: Any, threads: int) -> None:
        self.nbits = (ds.d + 7) // 8 * 8
        self.index = self.faiss.IndexBinaryFlat(self.nbits)
        self.index.add(self._codes(ds.train))
        self.n = self.index.ntotal

    def _codes(self, x: np.ndarray) -> np.ndarray:
        bits = np.zeros((len(x), self.nbits), np.uint8)
        bits[:, : x.shape[1]] = x > 0
        return np.packbits(bits, axis=1)

    def search(self, queries: Any, k: int, **p: Any) -> np.ndarray:
        self.faiss.omp_set_num_threads(self.threads)
        return self.index.search(self._codes(queries), k)[1]

    def bytes_per_vector(self) -> float:
        return self.nbits / 8
