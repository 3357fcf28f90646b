"""annx: any ``index_factory`` spec, MultiVectorIndex, exact Chamfer and the per-token
heuristic for multi-vector sets."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Adapter, Skip, need, train_sample


class Annx(Adapter):
    """``annx.index_factory(d, spec, metric)``; HNSW built with ef_construction 200, seed 0;
    ``_ood`` LeanVec trained with the set's ``learn`` queries."""

    library = "annx"

    def __init__(self, metric: str, spec: str) -> None:
        super().__init__(metric, spec=spec)
        self.annx = need("annx", "annx")
        self.index: Any = None

    def version(self) -> str:
        return self.annx.__version__

    def build(self, ds: Any, threads: int) -> None:
        spec = self.params["spec"]
        kw = {"ef_construction": 200, "seed": 0} if "HNSW" in spec else {}
        idx = self.annx.index_factory(ds.d, spec, self.metric, **kw)
        self.annx.set_num_threads(threads)
        if not idx.is_trained:
            learn = ds.learn if "_ood" in spec else None
            if "_ood" in spec and learn is None:
                raise Skip(f"{ds.name} has no 'learn' queries for LeanVec-OOD")
            idx.train(train_sample(ds.train), queries=learn)
        idx.add(ds.train, threads=threads)
        self.index, self.n = idx, len(ds.train)

    def search(self, queries: Any, k: int, **params: Any) -> np.ndarray:
        return self.index.search(queries, k, threads=self.threads, **params)[1]

    def bytes_per_vector(self) -> float:
        return float(self.index.bytes_per_vector)


class AnnxMultiVector(Adapter):
    """``annx.MultiVectorIndex(d, spec, FDE(...))``: FDE search, exact Chamfer re-rank."""

    library = "annx"

    def __init__(self, metric: str, spec: str, **fde: int) -> None:
        super().__init__(metric, spec=spec, **fde)
        self.annx, self.fde = need("annx", "annx"), fde

    def version(self) -> str:
        return self.annx.__version__

    def build(self, ds: Any, threads: int) -> None:
        self.annx.set_num_threads(threads)
        mv = self.annx.MultiVectorIndex(ds.d, self.params["spec"], self.annx.FDE(**self.fde))
        docs = (ds.train, ds.train_offsets)
        if not mv.is_trained:
            mv.train(docs)
        mv.add(docs)
        self.index, self.n = mv, ds.n

    def search(self, queries: Any, k: int, **params: Any) -> np.ndarray:
        return self.index.search(queries, k, threads=self.threads, **params)[1]

    def bytes_per_vector(self) -> float:
        return float(self.index.bytes_per_doc()["total"])


class AnnxChamfer(Adapter):
    """Exact Chamfer (MaxSim) over every document with ``annx.chamfer``."""

    library = "annx"

    def __init__(self, metric: str) -> None:
        super().__init__(metric)
        self.annx = need("annx", "annx")

    def version(self) -> str:
        return self.annx.__version__

    def build(self, ds: Any, threads: int) -> None:
        self.docs, self.n = (ds.train, ds.train_offsets), ds.n
        self.token_bytes = 4.0 * ds.d * len(ds.train) / ds.n + 8

    def search(self, queries: Any, k: int, **params: Any) -> np.ndarray:
        self.annx.set_num_threads(self.threads)
        scores = self.annx.chamfer(queries, self.docs)
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]

    def bytes_per_vector(self) -> float:
        return self.token_bytes


def rerank_chamfer(annx: Any, queries: Any, docs: list[np.ndarray], cand: np.ndarray, k: int):
    """Exact Chamfer re-rank of each query's candidate documents; ids [nq, k], -1 padded."""
    qv, qo = queries
    out = np.full((len(qo) - 1, k), -1, np.int64)
    for i, c in enumerate(cand):
        c = c[c >= 0]
        s = annx.chamfer(qv[qo[i] : qo[i + 1]], [docs[j] for j in c])
        top = c[np.argsort(-s, kind="stable")[:k]]
        out[i, : len(top)] = top
    return out


class AnnxTokens(Adapter):
    """The single-vector heuristic: every document token in an ``HNSW32`` inner-product
    index; each query token's top ``k_prime`` tokens give candidate documents, re-ranked
    by exact Chamfer."""

    library = "annx"

    def __init__(self, metric: str) -> None:
        super().__init__(metric, tokens="HNSW32 ip")
        self.annx = need("annx", "annx")

    def version(self) -> str:
        return self.annx.__version__

    def build(self, ds: Any, threads: int) -> None:
        self.annx.set_num_threads(threads)
        self.tok = self.annx.index_factory(ds.d, "HNSW32", "ip", ef_construction=200, seed=0)
        self.tok.add(ds.train, threads=threads)
        self.tok_doc = np.repeat(np.arange(ds.n), np.diff(ds.train_offsets))
        self.docs, self.n = ds.sets("train"), ds.n
        self.bpv = self.tok.bytes_per_vector * len(ds.train) / ds.n

    def search(self, queries: Any, k: int, k_prime: int = 10, **params: Any) -> np.ndarray:
        qv, qo = queries
        _, it = self.tok.search(qv, k_prime, ef_search=max(128, k_prime), threads=self.threads)
        cand = [np.unique(self.tok_doc[it[qo[i] : qo[i + 1]].ravel()]) for i in range(len(qo) - 1)]
        return rerank_chamfer(self.annx, queries, self.docs, cand, k)

    def bytes_per_vector(self) -> float:
        return self.bpv
