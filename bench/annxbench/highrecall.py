"""High-recall view of one l2 set: annx ``Flat``, annx graph specs at chosen ef_search and
faiss IVF-PQ fast-scan + refine at chosen (nprobe, rerank), all timed in one process, point
by point, 5 timed repeats with the order alternating; ratios to annx ``Flat`` per repeat.

Usage (from the repository root)::

    PYTHONPATH=python python bench/annxbench/highrecall.py \\
        --data ../shared/data/glove6b-200000-50-euclidean.hdf5 --nq 1000 \\
        --spec "HNSW48,SQ8,Refine(F32):64,96,128,160" --spec "HNSW32:192,256" \\
        --ivf 64:200,96:300,128:400 --cache-dir /tmp/annx-highrecall

Graph indexes are built with seed 0 and 2 threads (``--cache-dir`` keeps them between runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import annx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from annxbench import datasets  # noqa: E402
from annxbench.adapters import faiss as fx  # noqa: E402
from annxbench.families import divisor, nlist  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--spec", action="append", default=[], help="SPEC:ef,ef,...")
    ap.add_argument("--ivf", default="", help="nprobe:rerank,... (faiss IVF-PQfs + refine)")
    ap.add_argument("--cache-dir", default=None)
    a = ap.parse_args()
    ds = datasets.load(a.data, a.nq)
    xq, gt = ds.queries, ds.neighbors[:, :10]
    flat = annx.index_factory(ds.d, "Flat", ds.metric)
    flat.add(ds.train)
    runs = [("annx Flat", lambda: flat.search(xq, 10, threads=1)[1])]
    for item in a.spec:
        spec, efs = item.rsplit(":", 1)
        path = None
        if a.cache_dir:
            Path(a.cache_dir).mkdir(parents=True, exist_ok=True)
            path = Path(a.cache_dir) / f"{ds.name}-{spec}.annx"
        if path is not None and path.exists():
            ix = annx.load(path)
        else:
            ix = annx.index_factory(ds.d, spec, ds.metric, seed=0)
            if not ix.is_trained:
                ix.train(ds.train)
            ix.add(ds.train, threads=2)
            if path is not None:
                ix.save(path)
        for ef in map(int, efs.split(",")):
            fn = lambda ix=ix, ef=ef: ix.search(xq, 10, ef_search=ef, threads=1)[1]  # noqa: E731
            runs.append((f"annx {spec} ef {ef}", fn))
    if a.ivf:
        spec = f"IVF{nlist(ds)},PQ{divisor(ds.d, ds.d / 2)}x4fs"
        fa = fx.Faiss(ds.metric, spec, refine=True)
        fa.build(ds, 2)
        fa.threads = 1
        for pr in a.ivf.split(","):
            npb, rr = map(int, pr.split(":"))
            fn = lambda npb=npb, rr=rr: fa.search(xq, 10, nprobe=npb, rerank=rr)  # noqa: E731
            runs.append((f"faiss {spec}+refine nprobe {npb} rerank {rr}", fn))
    rec = []
    for _, fn in runs:
        ids = fn()
        rec.append(np.mean([len(set(i) & set(g)) / 10 for i, g in zip(ids, gt, strict=True)]))
    times: list[list[float]] = [[] for _ in runs]
    for rep in range(5):
        for i in range(len(runs)) if rep % 2 == 0 else reversed(range(len(runs))):
            t = time.perf_counter()
            runs[i][1]()
            times[i].append(time.perf_counter() - t)
    print(f"{ds.name}, first {a.nq} queries, k=10, 1 search thread")
    print("| configuration | recall@10 | q/s (median) | / annx Flat [min-max] |")
    print("|---|---:|---:|---|")
    for i, (name, _) in enumerate(runs):
        r = np.array(times[0]) / np.array(times[i])
        print(f"| {name} | {rec[i]:.4f} | {a.nq / np.median(times[i]):,.0f} | "
              f"{np.median(r):.2f}x [{r.min():.2f}-{r.max():.2f}] |")  # fmt: skip


if __name__ == "__main__":
    main()
