"""IVF-PQ matrix: annx against faiss cell by cell (issue 18 item 4).

A cell is (data set, nlist, M, bits): annx ``IVF<nlist>,PQ<M>x4fs,Refine(F32)`` against
faiss ``IVF<nlist>,PQ<M>x4fs`` in ``IndexRefineFlat`` (4-bit fast-scan), and annx
``IVF<nlist>,PQ<M>,Refine(F32)`` against faiss ``IVF<nlist>,PQ<M>`` in
``IndexRefineFlat`` (8-bit). nlist in {256, 1024, 4096 where n >= 200,000}, M in
{d/8, d/4, d/2} (the nearest divisor of d, as faiss needs d % M == 0), metrics as the
files say. Both libraries build from the same training sample with their defaults
(annx's by_residual default; faiss's factory's) and are timed point by point back to
back over one (nprobe, rerank) ladder (annxbench.timing: median of ``--repeats``, order
alternating). Per cell: q/s at recall@10 0.90 and 0.95 of each, the annx / faiss ratio
with its [min-max] over paired repeats, and the mean recall over the ladder (equal
parameters) of each.

Usage (also ``python bench/run.py --families ivfpq-matrix [...]``):
    python -m annxbench.ivf_matrix [--data-dir DIR | --data A.hdf5,...] [--quick]
        [--nq 300] [--repeats 5] [--out bench/results/ivfpq-matrix.md]

``--quick``: 4-bit only, M = d/4, nlist 256 and 1024, a five-point ladder.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from . import datasets, report, timing
from .adapters import annx as ax
from .adapters import faiss as fx
from .families import divisor

# nprobe steps of at most 1.5x from 8 to 128: with 2x steps (16 -> 32 -> 64) a target between
# two points was interpolated across a wide gap and cell ratios near it flipped between runs.
LADDER = ((1, 20), (2, 20), (4, 40), (8, 40), (12, 60), (16, 50), (16, 100), (24, 100),
          (32, 100), (32, 200), (48, 200), (64, 200), (64, 400), (96, 400), (128, 800),
          (256, 1000))  # fmt: skip
LADDER_QUICK = ((4, 40), (16, 100), (32, 200), (64, 400), (128, 800))
TARGETS = (0.90, 0.95)


def cells(ds: datasets.Dataset, quick: bool, bits_only: list[int] | None = None,
          fracs: list[float] | None = None, nlists_only: list[int] | None = None,
          ) -> list[tuple[int, int, int]]:  # fmt: skip
    """(nlist, M, bits) of one data set (``bits_only``/``fracs``/``nlists_only``: a
    subset of bits, of M as fractions of d, of nlist)."""
    nlists = [256, 1024] + ([4096] if ds.n >= 200_000 and not quick else [])
    nlists = [n for n in nlists if not nlists_only or n in nlists_only]
    ms = [ds.d / 4] if quick else [ds.d / 8, ds.d / 4, ds.d / 2]
    if fracs:
        ms = [ds.d * f for f in fracs]
    out = []
    for bits in bits_only or ((4,) if quick else (4, 8)):
        for nl in nlists:
            for m in dict.fromkeys(divisor(ds.d, x) for x in ms):
                out.append((nl, m, bits))
    return out


def run_cell(ds: datasets.Dataset, nl: int, m: int, bits: int, args: argparse.Namespace,
             log: Any) -> dict[str, Any]:  # fmt: skip
    codec = f"PQ{m}x4fs" if bits == 4 else f"PQ{m}"
    a = ax.Annx(ds.metric, f"IVF{nl},{codec},Refine(F32)")
    f = fx.Faiss(ds.metric, f"IVF{nl},{codec}", refine=True)
    for ad in (a, f):
        ad.build(ds, args.build_threads)
        ad.threads = args.threads
    q = ds.queries
    ladder = [{"nprobe": p, "rerank": r} for p, r in (LADDER_QUICK if args.quick else LADDER)
              if p <= nl]  # fmt: skip
    searchers = {"annx": lambda **p: a.search(q, args.k, **p),
                 "faiss": lambda **p: f.search(q, args.k, **p)}  # fmt: skip
    pts = timing.interleaved(searchers, {"annx": ladder, "faiss": ladder}, ds.neighbors,
                             args.k, repeats=args.repeats, stop_recall=2.0, log=log)  # fmt: skip
    runs = {}
    for name, ps in pts.items():
        rows = [{"recall": p.recall, "qps": p.qps, "qps_runs": [p.nq / t for t in p.times],
                 "params": p.params} for p in ps]  # fmt: skip
        runs[name] = report.Run(name, rows)
    res = bool(a.index._impl.by_residual)
    cell: dict[str, Any] = {"set": ds.name, "metric": ds.metric, "nlist": nl, "M": m,
                            "bits": bits, "by_residual": res}  # fmt: skip
    for t in TARGETS:
        cell[f"annx_qps@{t}"] = report.qps_at(runs["annx"].points(), t)
        cell[f"faiss_qps@{t}"] = report.qps_at(runs["faiss"].points(), t)
        cell[f"ratio@{t}"] = report.ratio(runs["annx"], runs["faiss"], t)
    n = min(len(pts["annx"]), len(pts["faiss"]))
    cell["annx_mean_recall"] = statistics.mean(p.recall for p in pts["annx"][:n])
    cell["faiss_mean_recall"] = statistics.mean(p.recall for p in pts["faiss"][:n])
    cell["points"] = {k: [(r["params"]["nprobe"], r["params"]["rerank"], r["recall"], r["qps"])
                          for r in v.rows] for k, v in runs.items()}  # fmt: skip
    return cell


def fmt_ratio(r: tuple[float, float, float] | None) -> str:
    return "-" if r is None else f"**{r[0]:.2f}x** [{r[1]:.2f}-{r[2]:.2f}]"


def write_table(cells_out: list[dict[str, Any]], out: Path, head: list[str]) -> None:
    lines = ["# IVF-PQ matrix: annx vs faiss", "", *head, "",
             "| set | metric | nlist | M | bits | annx res. | annx q/s @0.90 | faiss q/s @0.90 "
             "| annx/faiss @0.90 | annx q/s @0.95 | faiss q/s @0.95 | annx/faiss @0.95 "
             "| mean recall annx | mean recall faiss |",
             "|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|---|---:|---:|"]  # fmt: skip
    for c in cells_out:
        lines.append(
            f"| {c['set']} | {c['metric']} | {c['nlist']} | {c['M']} | {c['bits']} "
            f"| {'yes' if c['by_residual'] else 'no'} "
            f"| {report.fmt(c['annx_qps@0.9'])} | {report.fmt(c['faiss_qps@0.9'])} "
            f"| {fmt_ratio(c['ratio@0.9'])} "
            f"| {report.fmt(c['annx_qps@0.95'])} | {report.fmt(c['faiss_qps@0.95'])} "
            f"| {fmt_ratio(c['ratio@0.95'])} "
            f"| {c['annx_mean_recall']:.4f} | {c['faiss_mean_recall']:.4f} |"
        )
    lines += ["", "Points (nprobe, rerank, recall@10, q/s) per cell:", ""]
    for c in cells_out:
        lines.append(f"- {c['set']} IVF{c['nlist']} M={c['M']} {c['bits']}-bit:")
        for lib, ps in c["points"].items():
            pts = "; ".join(f"({p}, {r}) {rc:.3f} {q:,.0f}" for p, r, rc, q in ps)
            lines.append(f"  - {lib}: {pts}")
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--data-dir", default=str(datasets.default_data_dir()))
    ap.add_argument("--data", default=None, help="comma list of HDF5 files (default: all)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--nq", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="markdown table (default: none)")
    ap.add_argument("--note", default="")
    ap.add_argument("--bits", default=None, help="comma list, e.g. 8 (default: 4 and 8)")
    ap.add_argument("--m-fracs", default=None, help="M as fractions of d, e.g. 0.25,0.5")
    ap.add_argument("--nlists", default=None, help="comma list, e.g. 256")
    args, _ = ap.parse_known_args(argv)
    paths = (args.data.split(",") if args.data else
             [str(p) for p in datasets.files(args.data_dir)])  # fmt: skip
    cmd = "python bench/run.py --families ivfpq-matrix " + shlex.join(argv or sys.argv[1:])
    now = datetime.datetime.now(datetime.timezone.utc)
    head = [f"- Command: `{cmd}` ({now:%Y-%m-%d %H:%M} UTC)",
            f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
            f"search {args.threads} thread(s), build {args.build_threads}; k={args.k}, "
            f"first {args.nq} queries, median of {args.repeats} repeats, the two libraries "
            "timed point by point back to back.",
            "- q/s at a recall target: Pareto front of the ladder, interpolated "
            "(annxbench.report.qps_at); ratio: median [min-max] of per-repeat ratios.",
            "- mean recall: over the (nprobe, rerank) ladder points both ran (equal parameters).",
            *([f"- {args.note}"] if args.note else [])]  # fmt: skip
    out_cells = []
    for path in paths:
        ds = datasets.load(path, nq=args.nq)
        if ds.multivector:
            continue
        sub = (
            [int(b) for b in args.bits.split(",")] if args.bits else None,
            [float(f) for f in args.m_fracs.split(",")] if args.m_fracs else None,
            [int(n) for n in args.nlists.split(",")] if args.nlists else None,
        )
        for nl, m, bits in cells(ds, args.quick, *sub):
            if nl * 39 > ds.n:
                continue
            print(f"{ds.name} IVF{nl} M={m} {bits}-bit", flush=True)
            c = run_cell(ds, nl, m, bits, args, log=lambda s: print(s, flush=True))
            out_cells.append(c)
            print(json.dumps({k: v for k, v in c.items() if k != "points"}), flush=True)
            if args.out:
                write_table(out_cells, Path(args.out), head)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
