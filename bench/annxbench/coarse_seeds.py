"""Coarse-quantizer seed study (issue 18): how much of "annx's mean recall is lower than
faiss's at equal (nprobe, rerank)" is the k-means seed.

Both libraries train their IVF coarse centroids on the benchmark's training sample
(``adapters.base.train_sample``) exactly as the matrix builds them: annx
``index_factory(d, "IVF<n>,Flat", metric, seed=s)``, faiss
``index_factory(d, "IVF<n>,Flat", metric)`` with ``cp.seed = s`` (both: 25 Lloyd
iterations, at most 256 points per list, spherical for inner products), for several seeds
each. For every seed the **list recall** at nprobe p is measured: the fraction of each
query's true 10 nearest neighbours whose list is among the query's p nearest centroids.
It bounds the recall@10 of any IVF index over those lists at any re-rank budget. With
vector codes (same code layout, same ADC) the coarse lists and the PQ codebooks are what
the two libraries' IVF-PQ cells differ in, and both come from seeded k-means. The page
reports both libraries' mean, standard deviation and range over the seeds, Welch's t of
the difference of the means (|t| < 2: the libraries cannot be told apart at this many
seeds), and the seed the matrix uses (1234).

Usage (from bench/)::

    python -m annxbench.coarse_seeds --data ../../shared/data/minilm-100000-384-angular.hdf5 \\
        --nlist 256 --seeds 1234,1,2,3,4,5,6 --out results/coarse-seeds.md

Several ``--data``/``--nlist`` pairs may be given as comma lists of equal length; the page
gets one table per pair. Only recall is measured here (no timing), so the machine's load
does not matter.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from .adapters.base import need, train_sample

NPROBES = (4, 8, 16, 32, 64)
MATRIX_SEED = 1234


def annx_centroids(ds: datasets.Dataset, nlist: int, seed: int) -> np.ndarray:
    """The coarse centroids annx's ``IVF<nlist>`` trains with ``seed``."""
    import annx

    idx = annx.index_factory(ds.d, f"IVF{nlist},Flat", ds.metric, seed=seed)
    idx.train(train_sample(ds.train))
    return np.asarray(idx.centroids, dtype=np.float32)


def faiss_centroids(ds: datasets.Dataset, nlist: int, seed: int) -> np.ndarray:
    """The coarse centroids faiss's ``IVF<nlist>,Flat`` trains with ``cp.seed = seed``."""
    faiss = need("faiss", "faiss-cpu")
    mt = faiss.METRIC_L2 if ds.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    base = faiss.index_factory(ds.d, f"IVF{nlist},Flat", mt)
    idx = faiss.downcast_index(base)  # a view: `base` owns it and must stay alive
    idx.cp.seed = seed
    idx.train(train_sample(ds.train))
    return idx.quantizer.reconstruct_n(0, nlist)


def list_recall(ds: datasets.Dataset, centroids: np.ndarray, nprobes: tuple[int, ...],
                k: int = 10) -> list[float]:  # fmt: skip
    """Per nprobe: the mean over queries of the fraction of the true k nearest neighbours
    assigned (nearest centroid; largest inner product for cos/ip) to one of the query's
    nprobe nearest centroids."""
    faiss = need("faiss", "faiss-cpu")
    ip = ds.metric != "l2"
    q = faiss.IndexFlatIP(ds.d) if ip else faiss.IndexFlatL2(ds.d)
    q.add(np.ascontiguousarray(centroids, dtype=np.float32))
    assign = q.search(ds.train, 1)[1][:, 0]
    probes = q.search(ds.test, max(nprobes))[1]
    lists_of_gt = assign[ds.neighbors[:, :k]]  # nq x k
    out = []
    for p in nprobes:
        hit = (lists_of_gt[:, :, None] == probes[:, None, :p]).any(axis=2)
        out.append(float(hit.mean()))
    return out


def study(ds: datasets.Dataset, nlist: int, seeds: list[int], log: Any) -> dict[str, Any]:
    """List recall per library, seed and nprobe."""
    res: dict[str, Any] = {"set": ds.name, "nlist": nlist, "seeds": seeds, "annx": {}, "faiss": {}}
    for s in seeds:
        for lib, fn in (("annx", annx_centroids), ("faiss", faiss_centroids)):
            res[lib][s] = list_recall(ds, fn(ds, nlist, s), NPROBES)
        print(f"{ds.name} IVF{nlist} seed {s}: annx {np.round(res['annx'][s], 4).tolist()} "
              f"faiss {np.round(res['faiss'][s], 4).tolist()}", file=log, flush=True)  # fmt: skip
    return res


def table(res: dict[str, Any]) -> list[str]:
    """Markdown rows of one study: mean, sd, [min-max] per library and nprobe, the matrix
    seed's values, and Welch's t of the difference of the means."""
    seeds = res["seeds"]
    lines = [f"### {res['set']}, IVF{res['nlist']} ({len(seeds)} seeds: "
             f"{', '.join(map(str, seeds))})", "",
             "| nprobe | annx mean (sd) [min-max] | faiss mean (sd) [min-max] | "
             "annx - faiss | Welch t | seed 1234: annx / faiss |",
             "|---:|---|---|---:|---:|---|"]  # fmt: skip
    for j, p in enumerate(NPROBES):
        a = [res["annx"][s][j] for s in seeds]
        f = [res["faiss"][s][j] for s in seeds]
        se = (statistics.variance(a) / len(a) + statistics.variance(f) / len(f)) ** 0.5
        m = f"{res['annx'][MATRIX_SEED][j]:.4f} / {res['faiss'][MATRIX_SEED][j]:.4f}" if (
            MATRIX_SEED in seeds) else "-"  # fmt: skip

        def cell(v: list[float]) -> str:
            mean, sd = statistics.mean(v), statistics.stdev(v)
            return f"{mean:.4f} ({sd:.4f}) [{min(v):.4f}-{max(v):.4f}]"

        diff = statistics.mean(a) - statistics.mean(f)
        t = diff / se if se > 0 else float("nan")
        lines.append(f"| {p} | {cell(a)} | {cell(f)} | {diff:+.4f} | {t:+.2f} | {m} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="comma list of HDF5 sets")
    ap.add_argument("--nlist", required=True, help="comma list, one per --data")
    ap.add_argument("--seeds", default="1234,1,2,3,4,5,6")
    ap.add_argument("--nq", type=int, default=1000, help="first queries used")
    ap.add_argument("--out", help="markdown page to write")
    args = ap.parse_args(argv)
    paths, nlists = args.data.split(","), [int(x) for x in args.nlist.split(",")]
    if len(paths) != len(nlists):
        ap.error("--data and --nlist need the same number of entries")
    seeds = [int(s) for s in args.seeds.split(",")]
    if len(seeds) < 2:
        ap.error("--seeds needs at least two seeds (the page reports spreads)")
    results, loaded = [], {}
    for path, nl in zip(paths, nlists, strict=True):
        if path not in loaded:
            loaded[path] = datasets.load(path, nq=args.nq)
        results.append(study(loaded[path], nl, seeds, sys.stderr))
    import annx

    faiss = need("faiss", "faiss-cpu")
    lines = ["# Coarse quantizer: list recall by k-means seed, annx vs faiss (issue 18)", "",
             (__doc__ or "").split("\n\n")[1].replace("\n", " "), "",
             f"- Command: `python -m annxbench.coarse_seeds {' '.join(argv or sys.argv[1:])}` "
             f"({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)",
             f"- annx {annx.__version__}, faiss-cpu {faiss.__version__}; first {args.nq} queries, "
             "k = 10.", ""]  # fmt: skip
    for r in results:
        lines += table(r)
    text = "\n".join(lines)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
