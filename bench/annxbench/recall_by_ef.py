"""Recall@10 and q/s of one annx spec per ef_search on one shared set: the graph
quality per candidate-list size (recall at equal ef_search does not depend on machine
load; the q/s do). Not interleaved: for speed comparisons use ``bench/run.py``.

Usage (from the repository root)::

    PYTHONPATH=python python bench/annxbench/recall_by_ef.py glove6b-100000-50-dot \\
        [--spec HNSW32] [--ef-construction 200] [--threads 2] [--data-dir ../shared/data]
        [--insert-order random|lid_desc] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import h5py
import numpy as np

import annx

EF = (10, 16, 24, 32, 48, 64, 96, 128, 256)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set")
    ap.add_argument("--spec", default="HNSW32")
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="build threads (search: 1)")
    ap.add_argument("--insert-order", choices=("random", "lid_desc"), default="random")
    ap.add_argument("--seed", type=int, default=0)
    here = Path(__file__).resolve().parents[2]
    data = os.environ.get("ANNX_SHARED_DATA") or str(here.parent / "shared" / "data")
    ap.add_argument("--data-dir", default=data)
    a = ap.parse_args()
    with h5py.File(Path(a.data_dir) / f"{a.set}.hdf5", "r") as f:
        xb, xq, gt = f["train"][:], f["test"][:], f["neighbors"][:, :10]
        metric = {"dot": "ip", "angular": "cos", "euclidean": "l2"}[f.attrs["distance"]]
    idx = annx.index_factory(xb.shape[1], a.spec, metric, ef_construction=a.ef_construction,
                             seed=a.seed, insert_order=a.insert_order)  # fmt: skip
    if not idx.is_trained:
        idx.train(xb)
    t = time.perf_counter()
    idx.add(xb, threads=a.threads)
    build = time.perf_counter() - t
    print(f"{a.set} {a.spec} {metric} insert_order={a.insert_order} seed {a.seed}: "
          f"build {build:.1f} s ({a.threads} threads)")  # fmt: skip
    print("| ef_search | recall@10 | q/s |\n|---:|---:|---:|")
    for ef in EF:
        t = time.perf_counter()
        _, I = idx.search(xq, 10, ef_search=ef, threads=1)
        qps = len(xq) / (time.perf_counter() - t)
        r = np.mean([len(set(i) & set(g)) / 10 for i, g in zip(I, gt, strict=True)])
        print(f"| {ef} | {r:.3f} | {qps:,.0f} |")


if __name__ == "__main__":
    main()
