"""A/B two builds of annx (e.g. before and after a change) on load and search time.

Each round runs one child process per build, in alternating order, on the same prebuilt
index files (the file format is shared); a child times every measurement ``--reps`` times
and reports medians. The table gives, per measurement, each build's median over rounds
and the median (min-max) of the per-round ratios B/A: for q/s above 1 is faster, for
seconds below 1 is faster.

Usage (from bench/)::

    python -m annxbench.compare_builds --a /tmp/before --b ../python --rounds 7 \\
        --data-dir ../../shared/data --out results/compare.md [--cases CASES]

``--cases``: ``default``, ``binary``, ``flat-codecs``, ``flat-refine``, ``flat-filter``,
``ivf-float`` or ``ivf-fastscan`` (see the lists below).

``--a`` / ``--b`` are folders holding an ``annx`` package (PYTHONPATH entries). The index
files are built once with build B into ``--work`` (default /tmp/annx-ab).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from annxbench.datasets import default_data_dir

# (name, data file, spec, metric, queries, search kwargs)
DEFAULT_CASES = [
    ("flat-l2-glove200k", "glove6b-200000-50-euclidean.hdf5", "Flat", "l2", 200, {}),
    ("flat-cos-minilm100k", "minilm-100000-384-angular.hdf5", "Flat", "cos", 200, {}),
    (
        "hnsw32-cos-minilm100k",
        "minilm-100000-384-angular.hdf5",
        "HNSW32",
        "cos",
        1000,
        {"ef_search": 64},
    ),
]

# Batched exact scans of every float-like codec on every single-vector shared set.
_SETS = [
    ("glove50k", "glove6b-50000-50-angular.hdf5", "cos"),
    ("glove200k", "glove6b-200000-50-euclidean.hdf5", "l2"),
    ("dot100k", "glove6b-100000-50-dot.hdf5", "ip"),
    ("minilm100k", "minilm-100000-384-angular.hdf5", "cos"),
    ("minilm-ood", "minilm-ood-10000-384-angular.hdf5", "cos"),
]
FLAT_CODEC_CASES = [
    (f"{spec.replace(',', '-').lower()}-{name}", data, spec, metric, 200, {})
    for name, data, metric in _SETS
    for spec in ("Flat", "Flat,F16", "Flat,BF16", "Flat,SQ8")
]
# The same scans re-ranked with float32 (a one-list IVF; default re-rank 4k).
FLAT_REFINE_CASES = [
    (
        f"{spec.replace(',', '-').replace('(', '').replace(')', '').lower()}-{name}",
        data,
        spec,
        metric,
        200,
        {},
    )
    for name, data, metric in _SETS
    for spec in ("Flat,F16,Refine(F32)", "Flat,BF16,Refine(F32)", "Flat,SQ8,Refine(F32)")
]
# Batched exact scans under a filter admitting half the ids (a seeded random half).
FLAT_FILTER_CASES = [
    (
        f"filtered-{spec.replace(',', '-').lower()}-{name}",
        data,
        spec,
        metric,
        200,
        {"filter_fraction": 0.5},
    )
    for name, data, metric in _SETS
    for spec in ("Flat", "Flat,F16", "Flat,SQ8")
]
# IVF over float-like codes: batches of 1,000 queries, nprobe 16 (nlist 1024, or 256 on the
# 10k set).
IVF_FLOAT_CASES = [
    (f"ivf{nl}-{codec.lower()}-{name}", data, f"IVF{nl},{codec}", metric, 1000, {"nprobe": 16})
    for name, data, metric in _SETS
    for nl in [256 if name == "minilm-ood" else 1024]
    for codec in ("Flat", "F16", "SQ8")
]
# IVF-PQ 4-bit fast-scan + re-rank (the matrix's 4-bit cells): batches of 300 queries.
IVF_FASTSCAN_CASES = [
    (f"ivf{nl}-pq{m}x4fs-{name}", data, f"IVF{nl},PQ{m}x4fs,Refine(F32)", metric, 300,
     {"nprobe": p, "rerank": r})
    for name, data, metric, nl, m, p, r in [
        ("minilm100k", "minilm-100000-384-angular.hdf5", "cos", 256, 48, 32, 100),
        ("minilm100k", "minilm-100000-384-angular.hdf5", "cos", 256, 192, 32, 100),
        ("minilm100k", "minilm-100000-384-angular.hdf5", "cos", 1024, 96, 32, 100),
        ("glove200k", "glove6b-200000-50-euclidean.hdf5", "l2", 256, 25, 16, 50),
        ("glove200k", "glove6b-200000-50-euclidean.hdf5", "l2", 1024, 25, 16, 50),
        ("glove50k", "glove6b-50000-50-angular.hdf5", "cos", 256, 25, 16, 50),
        ("dot100k", "glove6b-100000-50-dot.hdf5", "ip", 256, 25, 16, 50),
        ("minilm-ood", "minilm-ood-10000-384-angular.hdf5", "cos", 256, 96, 16, 50),
    ]
]  # fmt: skip
# Binary-code Flat scans (the batched tile kernel), with and without float32 re-ranking:
# batches of 1,000 queries.
BINARY_CASES = [
    (
        f"{spec.replace(',', '-').replace('(', '').replace(')', '').lower()}-{name}",
        data,
        spec,
        metric,
        1000,
        kwargs,
    )
    for name, data, metric in _SETS
    for spec, kwargs in (
        ("Flat,BIN", {}),
        ("Flat,BEBR2", {}),
        ("Flat,BEBR4", {}),
        ("Flat,BIN,Refine(F32)", {"rerank": 100}),
    )
]
CASE_SETS = {
    "default": DEFAULT_CASES,
    "binary": BINARY_CASES,
    "ivf-fastscan": IVF_FASTSCAN_CASES,
    "ivf-float": IVF_FLOAT_CASES,
    "flat-codecs": FLAT_CODEC_CASES,
    "flat-refine": FLAT_REFINE_CASES,
    "flat-filter": FLAT_FILTER_CASES,
}


def _median_seconds(fn, reps: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(reps):
        t = clock()
        fn()
        times.append(clock() - t)
    return statistics.median(times)


def _child(
    data_dir: Path, work: Path, reps: int, cases: str, load: bool, cpu: bool
) -> dict[str, float]:
    import h5py

    import annx

    annx.set_num_threads(1)
    out: dict[str, float] = {}
    for name, data, _spec, _metric, nq, kw in CASE_SETS[cases]:
        with h5py.File(data_dir / data, "r") as f:
            q = f["test"][:nq]
        path = str(work / f"{name}.annx")
        if load:
            out[f"{name} load (s)"] = _median_seconds(lambda p=path: annx.load(p), reps)
            out[f"{name} load mmap (s)"] = _median_seconds(
                lambda p=path: annx.load(p, mmap=True), reps
            )
        index = annx.load(path)
        kw = dict(kw)
        if "filter_fraction" in kw:
            ids = np.random.default_rng(0).permutation(index.ntotal)
            kw["filter"] = ids[: int(kw.pop("filter_fraction") * len(ids))]
        # CPU time of the process (one search thread) moves less with other processes'
        # load than wall time does.
        clock = time.process_time if cpu else time.perf_counter
        out[f"{name} search (q/s)"] = nq / _median_seconds(
            lambda kw=kw: index.search(q, 10, **kw), reps, clock
        )
    return out


def _prepare(data_dir: Path, work: Path, cases: str) -> None:
    import h5py

    import annx

    work.mkdir(parents=True, exist_ok=True)
    for name, data, spec, metric, _nq, _kw in CASE_SETS[cases]:
        path = work / f"{name}.annx"
        if path.exists():
            continue
        with h5py.File(data_dir / data, "r") as f:
            x = f["train"][:]
        kw = {"seed": 0} if spec.startswith("HNSW") else {}
        index = annx.index_factory(x.shape[1], spec, metric=metric, **kw)
        if not index.is_trained:
            index.train(x)
        index.add(x)
        index.save(str(path))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, help="PYTHONPATH entry of build A (baseline)")
    ap.add_argument("--b", required=True, help="PYTHONPATH entry of build B")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--data-dir", default=str(default_data_dir()))
    ap.add_argument("--work", default="/tmp/annx-ab")
    ap.add_argument("--out", default=None, help="markdown table to write (also printed)")
    ap.add_argument("--cases", choices=sorted(CASE_SETS), default="default")
    ap.add_argument("--no-load", action="store_true", help="time searches only, not loads")
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="time searches by wall clock or by the process's CPU time (1 search thread)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    data_dir, work = Path(args.data_dir), Path(args.work)
    if args.child:
        res = _child(data_dir, work, args.reps, args.cases, not args.no_load, args.clock == "cpu")
        print(json.dumps(res))
        return 0
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from annxbench.compare_builds import _prepare as p; "
            f"from pathlib import Path; "
            f"p(Path({str(data_dir)!r}), Path({str(work)!r}), {args.cases!r})",
        ],
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([args.b, str(Path(__file__).parents[1])])),
        check=True,
    )
    runs: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for r in range(args.rounds):
        for build in ("A", "B") if r % 2 == 0 else ("B", "A"):
            path = args.a if build == "A" else args.b
            env = dict(
                os.environ, PYTHONPATH=os.pathsep.join([path, str(Path(__file__).parents[1])])
            )
            cmd = [
                sys.executable,
                "-m",
                "annxbench.compare_builds",
                "--child",
                "--a",
                args.a,
                "--b",
                args.b,
                "--reps",
                str(args.reps),
                "--data-dir",
                str(data_dir),
                "--work",
                str(work),
                "--cases",
                args.cases,
                "--clock",
                args.clock,
            ] + (["--no-load"] if args.no_load else [])
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            runs[build].append(json.loads(res.stdout.strip().splitlines()[-1]))
    lines = [
        f"A = `{args.a}`, B = `{args.b}`; {args.rounds} rounds alternating A/B, "
        f"medians of {args.reps} repeats per child, 1 search thread, cases `{args.cases}`, "
        f"{args.clock} clock.",
        "",
        "| measurement | A (median) | B (median) | B/A (median of rounds) | spread (min-max) |",
        "|---|---:|---:|---:|---:|",
    ]
    for key in runs["A"][0]:
        a = [x[key] for x in runs["A"]]
        b = [x[key] for x in runs["B"]]
        ratios = [y / x for x, y in zip(a, b, strict=True)]
        lines.append(
            f"| {key} | {statistics.median(a):.4g} | {statistics.median(b):.4g} | "
            f"{statistics.median(ratios):.3f} | {min(ratios):.3f}-{max(ratios):.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
