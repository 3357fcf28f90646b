"""annx for ann-benchmarks (https://github.com/erikbern/ann-benchmarks).

Copy this folder to ``ann_benchmarks/algorithms/annx/`` in an ann-benchmarks checkout
(see ``bench/ann_benchmarks/README.md``). The classes follow ann-benchmarks' ``BaseANN``
interface: ``fit``, ``set_query_arguments``, ``query``, ``batch_query`` /
``get_batch_results``, ``get_memory_usage``, ``__str__`` and ``done``. Results never
contain -1 or a repeated id: ann-benchmarks would count them as wrong answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:  # inside an ann-benchmarks checkout
    from ..base.module import BaseANN  # type: ignore[import-not-found]
except ImportError:  # stand-alone (annx's own tests): the same interface

    class BaseANN:  # type: ignore[no-redef]
        """The subset of ann-benchmarks' BaseANN the runner relies on."""

        def done(self) -> None:
            pass

        def get_memory_usage(self) -> float | None:
            try:
                import psutil
            except ImportError:
                return None
            return psutil.Process().memory_info().rss / 1024

        def batch_query(self, X: np.ndarray, n: int) -> None:
            self.res = [self.query(q, n) for q in X]

        def get_batch_results(self) -> Any:
            return self.res

        def get_additional(self) -> dict[str, Any]:
            return {}

        def __str__(self) -> str:
            return self.name


import annx  # noqa: E402

_METRICS = {"angular": "cos", "euclidean": "l2", "ip": "ip", "dot": "ip"}


def _metric(metric: str) -> str:
    try:
        return _METRICS[metric]
    except KeyError:
        raise NotImplementedError(f"annx does not support the {metric!r} distance") from None


def _clean(ids: np.ndarray) -> list[int]:
    """Drop the -1 padding (k larger than what a filter or index can return)."""
    return [int(i) for i in ids if i >= 0]


class _AnnxBase(BaseANN):
    """Common parts: build from a spec, search with per-call parameters."""

    spec = ""

    def __init__(self, metric: str, method_param: dict[str, Any]) -> None:
        self.metric = _metric(metric)
        self.method_param = dict(method_param)
        self.query_params: dict[str, int] = {}
        self.index: annx.Index | None = None
        self.res: Any = None
        self.name = "annx"

    def _spec(self, d: int) -> str:
        raise NotImplementedError

    def fit(self, X: np.ndarray) -> None:
        X = np.ascontiguousarray(X, dtype=np.float32)
        kwargs = {}
        if "efConstruction" in self.method_param:
            kwargs["ef_construction"] = int(self.method_param["efConstruction"])
        self.spec = self._spec(X.shape[1])
        self.index = annx.index_factory(X.shape[1], self.spec, self.metric, **kwargs)
        if not self.index.is_trained:
            self.index.train(X)
        self.index.add(X)

    def query(self, v: np.ndarray, n: int) -> list[int]:
        assert self.index is not None
        q = np.ascontiguousarray(v, dtype=np.float32).reshape(1, -1)
        return _clean(self.index.search(q, n, threads=1, **self.query_params)[1][0])

    def batch_query(self, X: np.ndarray, n: int) -> None:
        assert self.index is not None
        I = self.index.search(np.ascontiguousarray(X, dtype=np.float32), n, **self.query_params)[1]  # noqa: E741
        self.res = [_clean(row) for row in I]

    def get_batch_results(self) -> list[list[int]]:
        return self.res

    def get_additional(self) -> dict[str, Any]:
        assert self.index is not None
        return {"bytes_per_vector": self.index.bytes_per_vector, "spec": self.spec}

    def done(self) -> None:
        self.index = None

    def __str__(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in self.query_params.items())
        return f"annx({self.spec}{',' if params else ''}{params})"


class AnnxHNSW(_AnnxBase):
    """``HNSW<M>`` (optionally ``,SQ8,Refine(F32)``); query argument: ``ef_search``."""

    def _spec(self, d: int) -> str:
        spec = f"HNSW{int(self.method_param.get('M', 32))}"
        codec = self.method_param.get("codec")
        if codec == "sq8-refine":
            spec += ",SQ8,Refine(F32)"
        elif codec:
            spec += f",{codec}"
        return spec

    def set_query_arguments(self, ef: int) -> None:
        self.query_params = {"ef_search": int(ef)}
        if "Refine" in self.spec:
            self.query_params["rerank"] = int(ef)


class AnnxIVFPQFastScan(_AnnxBase):
    """``IVF<nlist>,PQ<M>x4fs,Refine(F32)``; query arguments: ``nprobe``, re-rank factor."""

    def _spec(self, d: int) -> str:
        nlist = int(self.method_param.get("nlist", 1024))
        m = int(self.method_param.get("M", 0)) or max(1, d // 2)
        return f"IVF{nlist},PQ{m}x4fs,Refine(F32)"

    def set_query_arguments(self, nprobe: int, rerank_factor: int = 4) -> None:
        self._factor = int(rerank_factor)
        self.query_params = {"nprobe": int(nprobe)}

    def query(self, v: np.ndarray, n: int) -> list[int]:
        self.query_params["rerank"] = max(n, self._factor * n)
        return super().query(v, n)

    def batch_query(self, X: np.ndarray, n: int) -> None:
        self.query_params["rerank"] = max(n, self._factor * n)
        super().batch_query(X, n)


class AnnxLeanVec(_AnnxBase):
    """``LeanVec<D>,HNSW<M>,SQ8,Refine(F32)`` (PCA to D dimensions, 8-bit primary,
    float32 re-rank); query arguments: ``ef_search`` and ``rerank``."""

    def _spec(self, d: int) -> str:
        target = int(self.method_param.get("target_dim", 0)) or max(16, (d // 4 + 15) // 16 * 16)
        target = min(target, d - 1)
        m = int(self.method_param.get("M", 32))
        return f"LeanVec{target},HNSW{m},SQ8,Refine(F32)"

    def set_query_arguments(self, ef: int, rerank: int) -> None:
        self.query_params = {"ef_search": int(ef), "rerank": int(rerank)}
