"""One reader for every benchmark file: ann-benchmarks single-vector HDF5 (``train``,
``test``, ``neighbors``, a ``distance`` attribute) and the multi-vector Chamfer layout
(``doc_vectors``/``doc_offsets``, ``query_vectors``/``query_offsets``, ``neighbors``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

METRICS = {"angular": "cos", "cosine": "cos", "euclidean": "l2", "l2": "l2", "dot": "ip",
           "ip": "ip", "chamfer": "chamfer"}  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """``ANNX_SHARED_DATA`` or ``<repository>/../shared/data``."""
    return Path(os.environ.get("ANNX_SHARED_DATA") or ROOT.parent / "shared" / "data")


@dataclass
class Dataset:
    """Base vectors, queries and exact ground truth, prepared for the metric (cosine data
    normalised). Multi-vector sets keep token vectors and offsets; ``train``/``test`` are
    then the flat token arrays."""

    name: str
    metric: str  # annx name: "cos", "ip", "l2", or "chamfer"
    train: np.ndarray
    test: np.ndarray
    neighbors: np.ndarray
    learn: np.ndarray | None = None  # training queries (LeanVec-OOD)
    train_offsets: np.ndarray | None = None
    test_offsets: np.ndarray | None = None

    @property
    def multivector(self) -> bool:
        return self.train_offsets is not None

    @property
    def d(self) -> int:
        return int(self.train.shape[1])

    @property
    def n(self) -> int:
        return len(self.train_offsets) - 1 if self.multivector else len(self.train)

    @property
    def nq(self) -> int:
        return len(self.neighbors)

    @property
    def queries(self) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """What a search takes: the query matrix, or (token vectors, offsets)."""
        return (self.test, self.test_offsets) if self.multivector else self.test

    def sets(self, which: str) -> list[np.ndarray]:
        """The documents ("train") or queries ("test") of a multi-vector set, one array each."""
        v, o = (
            (self.train, self.train_offsets) if which == "train" else (self.test, self.test_offsets)
        )
        return [v[o[i] : o[i + 1]] for i in range(len(o) - 1)]


def _attr(f: object, *names: str) -> str:
    for name in names:
        v = f.attrs.get(name)  # type: ignore[attr-defined]
        if v is not None:
            return (v.decode() if isinstance(v, bytes) else str(v)).lower()
    raise ValueError(f"{f}: no {' or '.join(names)} attribute")


def load(path: str | Path, nq: int | None = None) -> Dataset:
    """Read ``path``; ``nq`` keeps the first ``nq`` queries (with their ground truth)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        mv = "doc_vectors" in f
        metric = METRICS.get(_attr(f, "similarity", "distance") if mv else _attr(f, "distance"))
        if metric is None:
            raise ValueError(f"{path}: unknown metric {_attr(f, 'similarity', 'distance')!r}")
        tv, qv = ("doc_vectors", "query_vectors") if mv else ("train", "test")
        gt = f["neighbors"][:nq].astype(np.int64)
        qo = f["query_offsets"][: len(gt) + 1].astype(np.int64) if mv else None
        test = f[qv][: qo[-1]] if mv else f[qv][: len(gt)]
        ds = Dataset(
            name=path.stem, metric=metric, neighbors=gt,
            train=np.ascontiguousarray(f[tv][:], dtype=np.float32),
            test=np.ascontiguousarray(test, dtype=np.float32),
            learn=np.ascontiguousarray(f["learn"][:], dtype=np.float32) if "learn" in f else None,
            train_offsets=f["doc_offsets"][:].astype(np.int64) if mv else None, test_offsets=qo,
        )  # fmt: skip
    if metric == "cos":
        for a in (ds.train, ds.test, ds.learn):
            if a is not None:
                a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-30)
    return ds


def recall_at_k(ids: np.ndarray, gt: np.ndarray, k: int) -> float:
    """Mean fraction of the true top-k ids among the returned top-k (-1 never counts)."""
    ids, gt = np.asarray(ids)[:, :k], np.asarray(gt)[:, :k]
    hits = sum(len(np.intersect1d(r[r >= 0], t)) for r, t in zip(ids, gt, strict=False))
    return hits / (k * len(gt))


def files(data_dir: str | Path) -> list[Path]:
    """Every ``*.hdf5`` in ``data_dir``, smallest first."""
    return sorted(Path(data_dir).glob("*.hdf5"), key=lambda p: p.stat().st_size)
