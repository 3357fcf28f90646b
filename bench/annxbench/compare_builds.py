"""A/B two builds of annx (e.g. before and after a change) on load and search time.

Each round runs one child process per build, in alternating order, on the same prebuilt
index files (the file format is shared); a child times every measurement ``--reps`` times
and reports medians. The table gives, per measurement, each build's median over rounds
and the median (min-max) of the per-round ratios B/A: for q/s above 1 is faster, for
seconds below 1 is faster.

Usage (from bench/)::

    python -m annxbench.compare_builds --a /tmp/before --b ../python --rounds 7 \\
        --data-dir ../../shared/data --out results/compare.md

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

from annxbench.datasets import default_data_dir

# (name, data file, spec, metric, queries, search kwargs)
CASES = [
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


def _median_seconds(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _child(data_dir: Path, work: Path, reps: int) -> dict[str, float]:
    import h5py

    import annx

    annx.set_num_threads(1)
    out: dict[str, float] = {}
    for name, data, _spec, _metric, nq, kw in CASES:
        with h5py.File(data_dir / data, "r") as f:
            q = f["test"][:nq]
        path = str(work / f"{name}.annx")
        out[f"{name} load (s)"] = _median_seconds(lambda p=path: annx.load(p), reps)
        out[f"{name} load mmap (s)"] = _median_seconds(lambda p=path: annx.load(p, mmap=True), reps)
        index = annx.load(path)
        out[f"{name} search (q/s)"] = nq / _median_seconds(lambda: index.search(q, 10, **kw), reps)
    return out


def _prepare(data_dir: Path, work: Path) -> None:
    import h5py

    import annx

    work.mkdir(parents=True, exist_ok=True)
    for name, data, spec, metric, _nq, _kw in CASES:
        path = work / f"{name}.annx"
        if path.exists():
            continue
        with h5py.File(data_dir / data, "r") as f:
            x = f["train"][:]
        kw = {"seed": 0} if spec.startswith("HNSW") else {}
        index = annx.index_factory(x.shape[1], spec, metric=metric, **kw)
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
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    data_dir, work = Path(args.data_dir), Path(args.work)
    if args.child:
        print(json.dumps(_child(data_dir, work, args.reps)))
        return 0
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from annxbench.compare_builds import _prepare as p; "
            f"from pathlib import Path; p(Path({str(data_dir)!r}), Path({str(work)!r}))",
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
            ]
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            runs[build].append(json.loads(res.stdout.strip().splitlines()[-1]))
    lines = [
        f"A = `{args.a}`, B = `{args.b}`; {args.rounds} rounds alternating A/B, "
        f"medians of {args.reps} repeats per child, 1 search thread.",
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
