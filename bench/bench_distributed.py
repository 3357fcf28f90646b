"""Sharded search on Dask: batch throughput with 1, 2, 4 ... workers, and the merge cost.

Usage:
    python bench/bench_distributed.py [--data FILE.hdf5] [--specs "HNSW32;Flat;..."]
        [--workers 1,2,4] [--ef 64] [--nprobe 32] [--nq 1000] [--repeats 5] [--md out.md]

For each worker count a ``LocalCluster(n_workers=w, threads_per_worker=1, processes=True)``
on 127.0.0.1 holds one shard per worker (hash partition; IVF specs are routed by
centroid, ``partition="ivf"``, so a query only visits the shards owning its ``nprobe``
nearest lists); annx inside each worker uses
the machine's CPUs divided by the number of workers (at least 1). The same index in the
client process (one annx index, all CPUs) is the baseline. Reported per configuration:
build seconds (add, data shipped to the workers included), batch search queries/second
(median of ``--repeats``), recall@10, and the client-side merge time per batch (also as
a share of the search time). Data: ann-benchmarks HDF5 (default MiniLM-100k, angular).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hnsw import cpu_model, load_data, recall_at_k  # noqa: E402

import annx  # noqa: E402
from annx.distributed import ShardedIndex, merge_topk  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "minilm-100000-384-angular.hdf5"


def timed(fn, repeats: int) -> tuple[float, object]:
    out, ts = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument(
        "--specs",
        default="HNSW32;Flat;IVF1024,PQ192x4fs,Refine(F32)",
        help="semicolon-separated annx specs",
    )
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--md", default=None)
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    data = load_data(args.data, args.nq)
    q, gt, k = data.test, data.neighbors, 10
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    lines = [
        f"Command: `python {' '.join(sys.argv)}` at commit {commit}.",
        "",
        f"Machine: {cpu_model()} ({cpus} CPUs), {platform.machine()}; data {data.name} "
        f"({len(data.train):,} x {data.d}), {len(q):,} queries per batch, k = {k}, "
        f"HNSW ef_search = {args.ef}, IVF nprobe = {args.nprobe}; median of {args.repeats} "
        "batches.",
        "",
        "| spec | setup | build s | q/s | vs 1 worker | recall@10 | merge ms / batch "
        "| merge share |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for spec in args.specs.split(";"):
        params = {"ef_search": args.ef} if spec.startswith("HNSW") else {}
        if spec.startswith("IVF"):
            params = {"nprobe": args.nprobe}
        kw = {} if spec.startswith("Flat") else {"seed": 0}
        partition = "ivf" if spec.startswith("IVF") else "hash"
        # Baseline: one index in this process with every CPU.
        annx.set_num_threads(cpus or 1)
        t0 = time.perf_counter()
        one = annx.index_factory(data.d, spec, data.metric, **kw)
        if not one.is_trained:
            one.train(data.train)
        one.add(data.train)
        build = time.perf_counter() - t0
        t, (_, I) = timed(lambda: one.search(q, k, **params), args.repeats)
        lines.append(
            f"| `{spec}` | one index, {cpus} threads, no Dask | {build:.1f} | {len(q) / t:,.0f} "
            f"| - | {recall_at_k(I, gt, k):.4f} | - | - |"
        )
        print(lines[-1], flush=True)
        one = None  # free the baseline before the workers start
        base_qps = None
        for w in (int(v) for v in args.workers.split(",")):
            cluster = LocalCluster(
                n_workers=w,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",
            )
            client = Client(cluster)
            try:
                t0 = time.perf_counter()
                si = ShardedIndex(client, data.d, spec, data.metric, partition=partition, **kw)
                if not si.is_trained:
                    si.train(data.train)
                si.add(data.train)
                build = time.perf_counter() - t0
                si.search(q[:10], k, **params)  # warm-up
                t, (_, I) = timed(lambda: si.search(q, k, **params), args.repeats)
                qps = len(q) / t
                base_qps = base_qps or qps
                # Merge cost: the client-side merge of the shards' answers alone.
                parts = [
                    (np.asarray(D), np.asarray(Ii))
                    for D, Ii in (
                        si._result(s, si._submit(s, "search", q, k, params))
                        for s in range(si.n_shards)
                    )
                ]
                tm, _ = timed(lambda: merge_topk(parts, k, si.similarity), args.repeats)
                threads = si.stats()[0]["threads"]
                lines.append(
                    f"| `{spec}` | {w} worker{'s' if w > 1 else ''} x {threads} annx "
                    f"thread{'s' if threads > 1 else ''} | {build:.1f} | {qps:,.0f} | "
                    f"{qps / base_qps:.2f}x | {recall_at_k(I, gt, k):.4f} | {1000 * tm:.1f} | "
                    f"{100 * tm / t:.1f} % |"
                )
                print(lines[-1], flush=True)
            finally:
                client.close()
                cluster.close()
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        Path(args.md).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
