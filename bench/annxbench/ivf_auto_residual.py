"""IVF fast-scan's training-time encoding choice (``auto_residual``), cell by cell.

For every 4-bit cell of the IVF-PQ matrix (annxbench.ivf_matrix.cells: nlist in {256,
1024, 4096 where n >= 200,000}, M in {d/8, d/4, d/2}) this builds annx
``IVF<nlist>,PQ<M>x4fs,Refine(F32)`` three ways from the matrix's training sample
(adapters.base.train_sample): without ``by_residual`` (the automatic choice: its held-out
gain ``index._impl.auto_residual_gain``, the encoding it picked, its training time) and
with ``by_residual=True`` / ``False``, and measures recall@10 of the residual and the
vector encoding at a few (nprobe, rerank) points. ``--check-equal`` also checks that the
automatic index answers as the explicit one of its encoding (same training, same seeds). A cell's
better encoding is the one with the higher mean recall over the points; the table says
whether the rule picked it (``tie``: the means differ by less than 0.001). Recall does
not depend on machine load; training times do.

Usage:
    python -m annxbench.ivf_auto_residual [--data A.hdf5,...] [--nq 1000]
        [--nlists 256,1024] [--m-fracs 0.125,0.25,0.5] [--out FILE.md] [--jsonl FILE]
    python -m annxbench.ivf_auto_residual --render FILE.jsonl --out FILE.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import datasets
from .adapters.base import train_sample
from .ivf_matrix import cells

POINTS = ((8, 40), (16, 100), (64, 200))
TIE = 0.001  # mean recall differences below this are ties (either pick is right)


def build(ds: datasets.Dataset, spec: str, threads: int, **kw: Any) -> tuple[Any, float]:
    """An index of ``ds``'s base vectors, trained on the matrix's sample; training seconds."""
    import annx

    annx.set_num_threads(threads)
    idx = annx.index_factory(ds.d, spec, ds.metric, **kw)
    t0 = time.perf_counter()
    idx.train(train_sample(ds.train))
    t = time.perf_counter() - t0
    idx.add(ds.train, threads=threads)
    return idx, t


def recalls(idx: Any, ds: datasets.Dataset, k: int) -> list[float]:
    out = []
    for nprobe, rerank in POINTS:
        _, ids = idx.search(ds.test, k, nprobe=nprobe, rerank=rerank)
        out.append(datasets.recall_at_k(ids, ds.neighbors, k))
    return out


def run_cell(ds: datasets.Dataset, nl: int, m: int, args: argparse.Namespace) -> dict[str, Any]:
    spec = f"IVF{nl},PQ{m}x4fs,Refine(F32)"
    auto, t_auto = build(ds, spec, args.build_threads)
    chosen = bool(auto._impl.by_residual)
    other, t_other = build(ds, spec, args.build_threads, by_residual=not chosen)
    r_auto, r_other = recalls(auto, ds, args.k), recalls(other, ds, args.k)
    same = None
    if args.check_equal:  # the automatic index is the explicit one of its encoding
        twin, _ = build(ds, spec, args.build_threads, by_residual=chosen)
        p, r = POINTS[0]
        a = auto.search(ds.test, args.k, nprobe=p, rerank=r)[1]
        same = bool(np.array_equal(a, twin.search(ds.test, args.k, nprobe=p, rerank=r)[1]))
    res, vec = (r_auto, r_other) if chosen else (r_other, r_auto)
    better = statistics.mean(res) > statistics.mean(vec)
    return {"set": ds.name, "metric": ds.metric, "n": ds.n, "nlist": nl, "M": m,
            "per_list": len(train_sample(ds.train)) / nl, "gain": auto._impl.auto_residual_gain,
            "residual": chosen, "residual_better": better, "recall_residual": res,
            "recall_vectors": vec, "train_s_auto": t_auto, "train_s_explicit": t_other,
            "auto_equals_explicit": same}  # fmt: skip


def write_table(rows: list[dict[str, Any]], out: Path, head: list[str]) -> None:
    pts = ", ".join(f"({p}, {r})" for p, r in POINTS)
    lines = [*head, "",
             f"| set | metric | nlist | train/list | M | held-out gain | choice | recall@10 "
             f"residual at {pts} | recall@10 vectors | mean res. - vec. | picks the better |",
             "|---|---|---:|---:|---:|---:|---|---|---|---:|---|"]  # fmt: skip
    for c in rows:
        diff = statistics.mean(c["recall_residual"]) - statistics.mean(c["recall_vectors"])
        ok = "tie" if abs(diff) < TIE else "yes" if c["residual"] == (diff > 0) else "**no**"
        lines.append(
            f"| {c['set']} | {c['metric']} | {c['nlist']} | {c['per_list']:.0f} | {c['M']} "
            f"| {c['gain']:.3f} | {'residual' if c['residual'] else 'vectors'} "
            f"| {' / '.join(f'{x:.3f}' for x in c['recall_residual'])} "
            f"| {' / '.join(f'{x:.3f}' for x in c['recall_vectors'])} "
            f"| {diff:+.4f} | {ok} |"
        )
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--data-dir", default=str(datasets.default_data_dir()))
    ap.add_argument("--data", default=None, help="comma list of HDF5 files (default: all)")
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--m-fracs", default=None, help="M as fractions of d, e.g. 0.25,0.5")
    ap.add_argument("--nlists", default=None, help="comma list, e.g. 256")
    ap.add_argument("--out", default=None, help="markdown table (default: none)")
    ap.add_argument("--check-equal", action="store_true",
                    help="also build the automatic index's explicit twin and compare")  # fmt: skip
    ap.add_argument("--jsonl", default=None, help="append one JSON line per cell")
    ap.add_argument("--render", default=None, help="only write --out from this --jsonl file")
    args = ap.parse_args(argv)
    if args.render:
        rows = [json.loads(line) for line in Path(args.render).read_text().splitlines()]
        write_table(rows, Path(args.out), [f"- rendered from `{args.render}`"])
        return 0
    paths = (args.data.split(",") if args.data else
             [str(p) for p in datasets.files(args.data_dir)])  # fmt: skip
    now = datetime.datetime.now(datetime.timezone.utc)
    cmd = "python -m annxbench.ivf_auto_residual " + shlex.join(argv or sys.argv[1:])
    head = [f"- `{cmd}` ({now:%Y-%m-%d %H:%M} UTC)"]
    rows = []
    for path in paths:
        ds = datasets.load(path, nq=args.nq)
        if ds.multivector:
            continue
        fracs = [float(f) for f in args.m_fracs.split(",")] if args.m_fracs else None
        nls = [int(n) for n in args.nlists.split(",")] if args.nlists else None
        for nl, m, _ in cells(ds, False, [4], fracs, nls):
            if nl * 39 > ds.n:
                continue
            c = run_cell(ds, nl, m, args)
            rows.append(c)
            print(json.dumps(c), flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(c) + "\n")
            if args.out:
                write_table(rows, Path(args.out), head)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
