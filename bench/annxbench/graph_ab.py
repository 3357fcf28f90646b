"""q/s at recall@10 targets of two (or more) ``HNSW`` graphs searched by the same annx
package: the graphs are built once (``build``) and saved, then searched by one process per
round that times every graph back to back at each ef_search and repeat (alternating);
q/s at each recall target is interpolated (log q/s linear in recall) between the two
sweep points around it.

Graph quality per candidate (recall at equal ef_search) does not depend on the load;
the q/s do, hence the alternation and the per-round ratios.

Usage (from the repository root; data: ANNX_SHARED_DATA or ../shared/data)::

    # build: environment variables of the building package apply to the build
    python bench/annxbench/graph_ab.py build PKG SET N OUT.annx [--threads 2] [--M 32]
    # compare: graphs A (baseline) and B..., searched by package PKG: one process per
    # round, every graph timed back to back at each ef_search and repeat
    python bench/annxbench/graph_ab.py compare PKG SET N A.annx B.annx [...] \\
        [--rounds 5] [--reps 5] [--targets 0.95 0.99]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EF = (10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512)


def _data(name: str, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    data = Path(os.environ.get("ANNX_SHARED_DATA") or ROOT.parent / "shared" / "data")
    with h5py.File(data / f"{name}.hdf5", "r") as f:
        xb = np.ascontiguousarray(f["train"][:n], dtype=np.float32)
        xq = np.ascontiguousarray(f["test"][:], dtype=np.float32)
        metric = {"dot": "ip", "angular": "cos", "euclidean": "l2"}[f.attrs["distance"]]
    return xb, xq, metric


def _truth(name: str, n: int) -> np.ndarray:
    """Exact top-10 of the queries within the first n vectors (float64), cached."""
    cache = Path(f"/tmp/annx-graph-ab-gt-{name}-{n}.npy")
    if cache.exists():
        return np.load(cache)
    xb, xq, metric = _data(name, n)
    b, q = xb.astype(np.float64), xq.astype(np.float64)
    if metric == "cos":
        b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-30)
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    s = q @ b.T
    if metric == "l2":
        s = 2 * s - (b * b).sum(1)[None, :]
    gt = np.argsort(-s, axis=1, kind="stable")[:, :10]
    np.save(cache, gt)
    return gt


def _build(a: argparse.Namespace) -> None:
    sys.path.insert(0, a.pkg)
    import annx

    xb, _, metric = _data(a.set, a.n)
    idx = annx.index_factory(xb.shape[1], f"HNSW{a.M}", metric, ef_construction=200, seed=0)
    t, w = time.process_time(), time.perf_counter()
    idx.add(xb, threads=a.threads)
    cpu, wall = time.process_time() - t, time.perf_counter() - w
    idx.save(a.out)
    indeg = np.zeros(a.n, np.int64)
    outdeg = np.zeros(a.n, np.int64)
    for i in range(a.n):
        nb = idx._impl.hnsw_neighbors(i, 0)
        outdeg[i] = len(nb)
        np.add.at(indeg, np.asarray(nb, np.int64), 1)
    print(json.dumps({"out": a.out, "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
                      "env": {k: v for k, v in os.environ.items() if k.startswith("ANNX_")},
                      "out_deg": round(float(outdeg.mean()), 2),
                      "in_deg_median": float(np.median(indeg)),
                      "no_in_link": int((indeg == 0).sum())}))  # fmt: skip


def _search(a: argparse.Namespace) -> None:
    """All graphs in one process, timed back to back at every ef_search and repeat
    (the order alternating), so load changes hit them alike."""
    sys.path.insert(0, a.pkg)
    import annx

    annx.set_num_threads(1)
    _, xq, _ = _data(a.set, a.n)
    gt = _truth(a.set, a.n)
    idx = [annx.load(g) for g in a.graphs]
    out: list[dict] = [{} for _ in idx]
    for ef in EF:
        recs = []
        for ix in idx:
            _, ids = ix.search(xq, 10, ef_search=ef, threads=1)
            recs.append(float(np.mean([len(set(r) & set(g)) / 10
                                       for r, g in zip(ids, gt, strict=True)])))  # fmt: skip
        ts: list[list[float]] = [[] for _ in idx]
        for rep in range(a.reps):
            order = range(len(idx)) if rep % 2 == 0 else range(len(idx) - 1, -1, -1)
            for i in order:
                t = time.perf_counter()
                idx[i].search(xq, 10, ef_search=ef, threads=1)
                ts[i].append(time.perf_counter() - t)
        for i in range(len(idx)):
            out[i][ef] = (recs[i], len(xq) / statistics.median(ts[i]))
        if min(recs) >= 0.999:
            break
    print(json.dumps(out))


def qps_at(curve: dict, target: float) -> float | None:
    pts = sorted((int(k), v[0], v[1]) for k, v in curve.items())
    prev = None
    for _, rec, qps in pts:
        if rec >= target:
            if prev is None or prev[0] >= target:
                return qps
            r0, q0 = prev
            f = (target - r0) / (rec - r0)
            return math.exp(math.log(q0) + f * (math.log(qps) - math.log(q0)))
        prev = (rec, qps)
    return None


def _compare(a: argparse.Namespace) -> None:
    _truth(a.set, a.n)
    runs: dict[str, list[dict]] = {g: [] for g in a.graphs}
    for r in range(a.rounds):
        order = a.graphs if r % 2 == 0 else a.graphs[::-1]
        cmd = [sys.executable, __file__, "search", a.pkg, a.set, str(a.n), *order]
        cmd += ["--reps", str(a.reps)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        for g, curve in zip(order, json.loads(res.stdout.strip().splitlines()[-1]), strict=True):
            runs[g].append(curve)
    base = a.graphs[0]
    print(f"\n{a.set} n={a.n}: {a.rounds} rounds x {a.reps} reps, load {os.getloadavg()}")
    efs = [16, 24, 32, 64, 128]
    print("| graph | " + " | ".join(f"recall ef {e}" for e in efs) + " | "
          + " | ".join(f"q/s @{t}" for t in a.targets) + " | "
          + " | ".join(f"vs A @{t}" for t in a.targets) + " |")  # fmt: skip
    for g in a.graphs:
        c0 = runs[g][0]
        recs = [f"{c0[str(e)][0]:.4f}" if str(e) in c0 else "-" for e in efs]
        qs, rat = [], []
        for t in a.targets:
            vals = [qps_at(c, t) for c in runs[g]]
            bvals = [qps_at(c, t) for c in runs[base]]
            if any(v is None for v in vals + bvals):
                qs.append("n/r")
                rat.append("-")
                continue
            qs.append(f"{statistics.median(vals):,.0f}")
            ratios = [v / b for v, b in zip(vals, bvals, strict=True)]
            rat.append(f"{statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")
        print(f"| {Path(g).name} | " + " | ".join(recs + qs + rat) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("pkg")
    b.add_argument("set")
    b.add_argument("n", type=int)
    b.add_argument("out")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--M", type=int, default=32)
    for name in ("search", "compare"):  # both search saved graphs
        p = sub.add_parser(name)
        p.add_argument("pkg")
        p.add_argument("set")
        p.add_argument("n", type=int)
        p.add_argument("graphs", nargs="+")
        p.add_argument("--reps", type=int, default=5)
    c = sub.choices["compare"]
    c.add_argument("--rounds", type=int, default=5)
    c.add_argument("--targets", type=float, nargs="+", default=[0.95, 0.99])
    a = ap.parse_args()
    {"build": _build, "search": _search, "compare": _compare}[a.cmd](a)


if __name__ == "__main__":
    main()
