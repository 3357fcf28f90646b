"""One-thread build CPU time and recall@10 per ef_search of annx ``HNSW32`` or hnswlib
M=32 (same ef_construction) on the first N vectors of a shared set, one library per
process, so A/B runs of two annx packages and hnswlib can alternate.

The build is timed with ``time.process_time()`` (CPU seconds: less sensitive to a shared
machine's load than wall time). Recall is against exact neighbours of the queries within
the N-vector subset (float64 brute force), at ef_search 16 / 32 / 64 by default.

Usage (from the repository root)::

    python bench/annxbench/build_vs_hnswlib.py annx PKG_DIR SET N [--recall]
    python bench/annxbench/build_vs_hnswlib.py hnswlib - SET N [--recall]
    # prints one JSON line: {"lib", "pkg", "set", "n", "cpu_s", "wall_s", "threads",
    #                        "load", "recall": {ef: r}}   (--threads T: build threads,
    #                        default 1; load: 1-minute load average after the build)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EF = (16, 32, 64)


def exact_top10(xb: np.ndarray, xq: np.ndarray, metric: str) -> np.ndarray:
    b = xb.astype(np.float64)
    q = xq.astype(np.float64)
    if metric == "cos":
        b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-30)
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    s = q @ b.T
    if metric == "l2":
        s = 2 * s - (b * b).sum(1)[None, :]  # larger is closer
    return np.argsort(-s, axis=1, kind="stable")[:, :10]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib", choices=("annx", "hnswlib"))
    ap.add_argument("pkg", help="folder holding the annx package ('-' for hnswlib)")
    ap.add_argument("set")
    ap.add_argument("n", type=int)
    ap.add_argument("--recall", action="store_true")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--M", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    data = Path(os.environ.get("ANNX_SHARED_DATA") or ROOT.parent / "shared" / "data")
    with h5py.File(data / f"{a.set}.hdf5", "r") as f:
        xb = np.ascontiguousarray(f["train"][: a.n], dtype=np.float32)
        xq = np.ascontiguousarray(f["test"][: a.queries], dtype=np.float32)
        metric = {"dot": "ip", "angular": "cos", "euclidean": "l2"}[f.attrs["distance"]]
    n, d = xb.shape
    if a.lib == "annx":
        sys.path.insert(0, a.pkg)
        import annx

        idx = annx.index_factory(d, f"HNSW{a.M}", metric, ef_construction=a.ef_construction,
                                 seed=0)  # fmt: skip
        t, w = time.process_time(), time.perf_counter()
        idx.add(xb, threads=a.threads)
        cpu, wall = time.process_time() - t, time.perf_counter() - w

        def search(ef: int) -> np.ndarray:
            return idx.search(xq, 10, ef_search=ef, threads=1)[1]
    else:
        import hnswlib

        space = {"ip": "ip", "cos": "cosine", "l2": "l2"}[metric]
        idx = hnswlib.Index(space=space, dim=d)
        idx.init_index(max_elements=n, M=a.M, ef_construction=a.ef_construction, random_seed=0)
        t, w = time.process_time(), time.perf_counter()
        idx.add_items(xb, np.arange(n), num_threads=a.threads)
        cpu, wall = time.process_time() - t, time.perf_counter() - w

        def search(ef: int) -> np.ndarray:
            idx.set_ef(ef)
            return idx.knn_query(xq, k=10, num_threads=1)[0]

    out = {"lib": a.lib, "pkg": a.pkg, "set": a.set, "n": n, "cpu_s": round(cpu, 3)}
    out |= {"wall_s": round(wall, 3), "threads": a.threads, "load": os.getloadavg()[0]}
    if a.recall:
        gt = exact_top10(xb, xq, metric)
        out["recall"] = {
            ef: round(float(np.mean([len(set(r) & set(g)) / 10 for r, g in zip(search(ef), gt,
                                                                               strict=True)])), 4)
            for ef in EF
        }  # fmt: skip
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
