"""Exact (Flat) search throughput: annx vs faiss-cpu IndexFlat vs numpy.

Usage:
    python bench/bench_flat.py [--data ../shared/data/minilm-100000-384-angular.hdf5]
                               [--repeats 5] [--json out.jsonl]

For each batch size (1, 16, 1000 queries) and thread count (1, 2) it measures
queries/second of annx `Flat` (metric from the file: angular -> "cos" on normalised
vectors, i.e. inner product, as faiss IndexFlatIP), faiss `IndexFlatIP`/`IndexFlatL2`
and a numpy matmul + argpartition baseline; libraries alternate inside each repeat and
the table reports medians of per-repeat ratios (noisy 2-core VMs). Recall@10 of every
library against the file's ground truth is printed too (exact search must give 1.0
up to ties). faiss and numpy threads: faiss.omp_set_num_threads and threadpoolctl
(if installed) are set to the same count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import annx
from annx.datasets import load_hdf5, recall_at_k

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "minilm-100000-384-angular.hdf5"


def timed(fn, nq: int, min_time: float = 0.3) -> float:
    """Queries/second of fn(), repeating until min_time has passed (best run)."""
    best = float("inf")
    start = time.perf_counter()
    runs = 0
    while runs < 2 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return nq / best


def numpy_search(xb: np.ndarray, q: np.ndarray, k: int, ip: bool):
    s = q @ xb.T
    if not ip:
        s = -(np.einsum("ij,ij->i", xb, xb)[None, :] - 2 * s)
    idx = np.argpartition(-s, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, idx, 1), axis=1)
    return np.take_along_axis(idx, order, 1)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default=str(DEFAULT))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batches", default="1,16,1000")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--json", default=None, help="append one JSON line per measurement")
    args = ap.parse_args()

    try:
        import faiss
    except ImportError:
        faiss = None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None

    ds = load_hdf5(args.data)
    xb, xq = ds.train, ds.test
    ip = ds.metric in ("cos", "ip")
    if ds.metric == "cos":
        xb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
        xq = xq / np.linalg.norm(xq, axis=1, keepdims=True)
    metric = "ip" if ip else "l2"
    index = annx.index_factory(ds.d, "Flat", metric=metric)
    index.add(xb)
    fi = None
    if faiss is not None:
        fi = faiss.IndexFlatIP(ds.d) if ip else faiss.IndexFlatL2(ds.d)
        fi.add(xb)

    print(f"# {Path(args.data).name}: n={ds.n} d={ds.d} metric={ds.metric} k={args.k}")
    print(
        f"# cpu={annx.config()['cpu']} isa={annx.get_isa()} annx={annx.__version__} "
        f"faiss={getattr(faiss, '__version__', 'absent')} numpy={np.__version__} "
        f"python={platform.python_version()}"
    )
    # Recall check (all queries, default threads).
    _, I = index.search(xq, args.k)
    line = f"# recall@{args.k}: annx {recall_at_k(I, ds.neighbors, args.k):.4f}"
    if fi is not None:
        line += f", faiss {recall_at_k(fi.search(xq, args.k)[1], ds.neighbors, args.k):.4f}"
    print(line)

    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for nq in [int(b) for b in args.batches.split(",")]:
            q = np.ascontiguousarray(xq[:nq])
            res: dict[str, list[float]] = {"annx": [], "faiss": [], "numpy": []}
            for _ in range(args.repeats):
                res["annx"].append(timed(lambda: index.search(q, args.k, threads=threads), nq))
                if fi is not None:
                    faiss.omp_set_num_threads(threads)
                    res["faiss"].append(timed(lambda: fi.search(q, args.k), nq))
                if threadpool_limits is not None:
                    with threadpool_limits(limits=threads):
                        res["numpy"].append(timed(lambda: numpy_search(xb, q, args.k, ip), nq))
                else:
                    res["numpy"].append(timed(lambda: numpy_search(xb, q, args.k, ip), nq))
            med = {k: statistics.median(v) for k, v in res.items() if v}
            ratio_f = (
                statistics.median(a / b for a, b in zip(res["annx"], res["faiss"]))
                if res["faiss"]
                else float("nan")
            )
            ratio_n = statistics.median(a / b for a, b in zip(res["annx"], res["numpy"]))
            rows.append((threads, nq, med, ratio_f, ratio_n))
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(
                        json.dumps(
                            {
                                "bench": "flat",
                                "data": Path(args.data).name,
                                "threads": threads,
                                "nq": nq,
                                "qps": med,
                                "annx_over_faiss": ratio_f,
                                "annx_over_numpy": ratio_n,
                                "isa": annx.get_isa(),
                                "host": platform.node(),
                            }
                        )
                        + "\n"
                    )

    print()
    print(
        "| threads | queries/batch | annx q/s | faiss q/s | numpy q/s | annx/faiss | annx/numpy |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for threads, nq, med, rf, rn in rows:
        print(
            f"| {threads} | {nq} | {med['annx']:.0f} | {med.get('faiss', float('nan')):.0f} | "
            f"{med['numpy']:.0f} | {rf:.2f} | {rn:.2f} |"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
