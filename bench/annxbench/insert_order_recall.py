"""Recall@10 per ef_search of one HNSW build with a given ``insert_order`` and seed
(graph quality per candidate: independent of machine load). Used for
bench/results/issue19/insert-order-lid.md.

Usage (from the repository root)::

    PYTHONPATH=python python bench/annxbench/insert_order_recall.py \\
        glove6b-200000-50-euclidean lid_desc 1 [--spec HNSW32] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import h5py
import numpy as np

import annx

EF = (10, 16, 24, 32, 48, 64, 128, 256)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set")
    ap.add_argument("order", choices=("random", "lid_desc"))
    ap.add_argument("seed", type=int)
    ap.add_argument("--spec", default="HNSW32")
    ap.add_argument("--threads", type=int, default=2)
    here = Path(__file__).resolve().parents[2]
    data = os.environ.get("ANNX_SHARED_DATA") or str(here.parent / "shared" / "data")
    ap.add_argument("--data-dir", default=data)
    a = ap.parse_args()
    with h5py.File(Path(a.data_dir) / f"{a.set}.hdf5", "r") as f:
        xb, xq, gt = f["train"][:], f["test"][:], f["neighbors"][:, :10]
        metric = {"dot": "ip", "angular": "cos", "euclidean": "l2"}[f.attrs["distance"]]
    idx = annx.index_factory(xb.shape[1], a.spec, metric, seed=a.seed, insert_order=a.order)
    if not idx.is_trained:
        idx.train(xb)
    t = time.perf_counter()
    idx.add(xb, threads=a.threads)
    build = time.perf_counter() - t
    rec = []
    for ef in EF:
        _, I = idx.search(xq, 10, ef_search=ef, threads=a.threads)
        rec.append(np.mean([len(set(i) & set(g)) / 10 for i, g in zip(I, gt, strict=True)]))
    print(f"{a.set} {a.spec} {a.order} seed {a.seed} build {build:.1f}s "
          + " ".join(f"{ef}:{r:.4f}" for ef, r in zip(EF, rec, strict=True)))  # fmt: skip


if __name__ == "__main__":
    main()
