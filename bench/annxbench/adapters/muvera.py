"""muvera-python's FDE encoder (AMS projection; k_sim 5, d_proj 16, 20 repetitions,
fill_empty) with an exact FDE scan (annx ``Flat``) and annx's exact Chamfer re-rank; the
query encoding is inside the timed search."""

from __future__ import annotations

from typing import Any

import numpy as np

from .annx import rerank_chamfer
from .base import Adapter, need


class MuveraPython(Adapter):
    """Search parameter ``candidates``: FDE candidates re-ranked exactly."""

    library, dist = "muvera-python", "muvera-python"

    def __init__(self, metric: str) -> None:
        super().__init__(metric, k_sim=5, d_proj=16, reps=20, index="annx Flat")
        self.muvera, self.annx = need("muvera", "muvera-python"), need("annx", "annx")

    def build(self, ds: Any, threads: int) -> None:
        self.enc = self.muvera.Muvera(
            num_repetitions=20, num_simhash_projections=5, dimension=ds.d,
            projection_type="ams_sketch", projection_dimension=16, fill_empty_partitions=True,
            seed=0,
        )  # fmt: skip
        self.docs = ds.sets("train")
        f = np.ascontiguousarray(self.enc.encode_documents(self.docs), dtype=np.float32)
        self.flat = self.annx.index_factory(f.shape[1], "Flat", "ip")
        self.flat.add(f)
        self.n = ds.n
        self.bpv = 4.0 * f.shape[1] + 8 + 4.0 * ds.d * len(ds.train) / ds.n

    def search(self, queries: Any, k: int, candidates: int = 100, **p: Any) -> np.ndarray:
        qv, qo = queries
        sets = [qv[qo[i] : qo[i + 1]] for i in range(len(qo) - 1)]
        fq = np.ascontiguousarray(self.enc.encode_queries(sets), dtype=np.float32)
        cand = self.flat.search(fq, candidates, threads=self.threads)[1]
        return rerank_chamfer(self.annx, queries, self.docs, cand, k)

    def bytes_per_vector(self) -> float:
        return self.bpv
