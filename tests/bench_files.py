"""Tiny benchmark files for the bench harness tests (tests/test_bench_*.py): the
ann-benchmarks single-vector layout with each metric, and the multi-vector Chamfer
layout, with exact ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import brute_force, make_clustered

ATTRS = {"l2": "euclidean", "ip": "dot", "cos": "angular"}


def write_single(path: Path, metric: str, n: int = 600, d: int = 16, nq: int = 20,
                 learn: bool = False) -> None:  # fmt: skip
    """``train``/``test``/``neighbors`` (exact top-100 by ``metric``), ``distance`` attr."""
    import h5py

    x, q = make_clustered(n, d, seed=1), make_clustered(nq, d, seed=2)
    _, ids = brute_force(x, q, 100, metric)
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = ATTRS[metric]
        f["train"], f["test"], f["neighbors"] = x, q, ids.astype(np.int32)
        if learn:
            f["learn"] = make_clustered(100, d, seed=3)


def write_multi(path: Path, n: int = 150, nq: int = 12, d: int = 16) -> None:
    """Token sets in the Chamfer layout, ground truth by exact Chamfer (MaxSim) score."""
    import h5py

    rng = np.random.default_rng(3)
    centres = rng.standard_normal((30, d)).astype(np.float32)

    def sets(m: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        lens = rng.integers(lo, hi + 1, size=m)
        toks = centres[rng.integers(0, 30, size=lens.sum())]
        toks = toks + 0.1 * rng.standard_normal((lens.sum(), d))
        toks = (toks / np.linalg.norm(toks, axis=1, keepdims=True)).astype(np.float32)
        return toks, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)

    dv, do = sets(n, 4, 10)
    qv, qo = sets(nq, 2, 6)
    s = np.array([[(qv[qo[i] : qo[i + 1]] @ dv[do[j] : do[j + 1]].T).max(1).sum()
                   for j in range(n)] for i in range(nq)])  # fmt: skip
    with h5py.File(path, "w") as f:
        f.attrs["similarity"] = "chamfer"
        f["doc_vectors"], f["doc_offsets"] = dv, do
        f["query_vectors"], f["query_offsets"] = qv, qo
        f["neighbors"] = np.argsort(-s, axis=1, kind="stable")[:, :100].astype(np.int32)
