"""LeanVec benchmark: reduced-dimension HNSW + full-dimension re-rank vs full-dimension HNSW,
and LeanVec-OOD vs LeanVec-ID on out-of-distribution queries.

Usage:
    python bench/bench_leanvec.py [--data FILE.hdf5] [--algos annx-hnsw32,annx-lv128,...]
        [--ood-data FILE.hdf5] [--ood-dims 32,64,128] [--no-id | --no-ood]
        [--repeats 3] [--nq N] [--json out.jsonl] [--plot out.png] [--md out.md]

Part 1 (in-distribution, default ``../shared/data/minilm-100000-384-angular.hdf5``): every
configuration is built with 2 threads and searched with 1 thread, k = 10, over a grid of
``ef_search`` x ``rerank`` (LeanVec) or ``ef_search`` (plain HNSW); each point is the
median of ``--repeats`` timed batches. Configurations (``--algos list`` prints them):

* ``annx-hnsw32``: ``"HNSW32"`` in full dimension (the baseline of the ratios);
* ``annx-lv<D>``: ``"LeanVec<D>,HNSW32,Refine(F32)"`` for D in 64, 96, 128, 160, 192;
* ``annx-lv<D>-sq8``: ``"LeanVec<D>,HNSW32,SQ8,Refine(F32)"`` (8-bit primary);
* ``annx-lv<D>-sq8-f16``: ``"LeanVec<D>,HNSW32,SQ8,Refine(F16)"`` (SVS's split: 8-bit
  primary, float16 secondary);
* ``hnswlib-m16``: a peer anchor (hnswlib M=16, ef_construction 200), so numbers taken on
  other machines can be scaled.

Intel SVS's LeanVec (``scalable-vs``) runs only on Intel CPUs; on other machines it is
reported as skipped.

Part 2 (out-of-distribution, default ``../shared/data/minilm-ood-10000-384-angular.hdf5``,
which has a ``learn`` split of training queries): for each D, LeanVec-ID and LeanVec-OOD
(trained on ``learn``, never on ``test``) over an exact reduced-dimension scan
(``"LeanVec<D>[_ood],Flat,Refine(F32)"``) and over HNSW32, recall@10 at re-rank budgets
10, 20, 50 and 100, plus fit seconds and the held-out OOD loss (``LeanVec.loss`` on the
test queries).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hnsw import (  # noqa: E402
    EF_CONSTRUCTION,
    AnnxAdapter,
    Data,
    HnswlibAdapter,
    Result,
    Skip,
    cpu_model,
    fmt_qps,
    load_data,
    plot,
    qps_at,
    recall_at_k,
)
from bench_hnsw import sweep as sweep_ef  # noqa: E402

import annx  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "minilm-100000-384-angular.hdf5"
DEFAULT_OOD = HERE.parent.parent / "shared" / "data" / "minilm-ood-10000-384-angular.hdf5"
DEFAULT_ALGOS = (
    "annx-hnsw32,annx-lv64,annx-lv96,annx-lv128,annx-lv192,annx-lv160-sq8,"
    "annx-lv192-sq8-f16,hnswlib-m16,svs-leanvec192"
)
EFS = [10, 16, 24, 32, 48, 64, 96, 128]
RERANKS = [10, 15, 20, 30, 40, 60, 80, 120, 160, 240]
TARGETS = (0.90, 0.95, 0.99)
BUDGETS = (10, 20, 50, 100)

SPECS = {f"annx-lv{d}": f"LeanVec{d},HNSW32,Refine(F32)" for d in (64, 96, 128, 160, 192)}
SPECS |= {f"annx-lv{d}-sq8": f"LeanVec{d},HNSW32,SQ8,Refine(F32)" for d in (96, 128, 160, 192)}
SPECS |= {f"annx-lv{d}-sq8-f16": f"LeanVec{d},HNSW32,SQ8,Refine(F16)" for d in (128, 160, 192)}
OTHERS = ("annx-hnsw32", "hnswlib-m16", "svs-leanvec192")


class LeanVecAdapter:
    """A LeanVec index: build, then search with (ef_search, rerank)."""

    library = "annx"

    def __init__(self, name: str, metric: str, spec: str) -> None:
        self.name, self.metric = name, metric
        self.params = {"spec": spec, "ef_construction": EF_CONSTRUCTION}
        self.index: Any = None

    def version(self) -> str:
        return annx.__version__

    def build(self, x: np.ndarray, threads: int) -> None:
        annx.set_num_threads(threads)
        idx = annx.index_factory(
            x.shape[1], self.params["spec"], self.metric, ef_construction=EF_CONSTRUCTION, seed=0
        )
        idx.train(x)
        idx.add(x)
        self.index = idx

    def search(self, q: np.ndarray, k: int, ef: int, rerank: int) -> np.ndarray:
        return self.index.search(q, k, ef_search=ef, rerank=rerank, threads=1)[1]

    def bytes_per_vector(self) -> tuple[float, str]:
        p, s = self.index.leanvec_bytes_per_vector()
        return p + s, f"reported: primary {p:.0f} + secondary {s:.0f}"


def sweep_grid(ad: LeanVecAdapter, data: Data, k: int, repeats: int) -> list[dict[str, Any]]:
    """Time every (ef, rerank) pair with rerank in [k, 4 ef] (median of ``repeats``)."""
    q, gt, nq = data.test, data.neighbors, len(data.test)
    grid = [(ef, r) for ef in EFS for r in RERANKS if k <= r <= max(4 * ef, 2 * k)]
    ad.search(q, k, grid[0][0], grid[0][1])  # warm-up
    points = []
    for ef, r in grid:
        ts, ids = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            ids = ad.search(q, k, ef, r)
            ts.append(time.perf_counter() - t0)
        rec = recall_at_k(np.asarray(ids), gt, k)
        points.append(
            {
                "ef": ef,
                "rerank": r,
                "recall": rec,
                "qps": nq / statistics.median(ts),
                "times_s": [round(t, 6) for t in ts],
            }
        )
        if rec >= 0.999:
            break
    return points


def run_id(name: str, data: Data, args: argparse.Namespace) -> Result:
    if name in SPECS:
        ad: Any = LeanVecAdapter(name, data.metric, SPECS[name])
    elif name == "annx-hnsw32":
        ad = AnnxAdapter(name, data.metric, "HNSW32")
    elif name == "hnswlib-m16":
        ad = HnswlibAdapter(name, data.metric, 16)
    elif name == "svs-leanvec192":
        svs_leanvec_check()
    else:
        raise SystemExit(f"unknown configuration {name!r}; --algos list shows them")
    print(f"== {name}: {ad.library} {ad.version()} {ad.params}", flush=True)
    t0 = time.perf_counter()
    ad.build(data.train, args.build_threads)
    build_s = time.perf_counter() - t0
    bpv, how = ad.bytes_per_vector()
    print(f"    build {build_s:.1f} s, {bpv:.0f} B/vector ({how})", flush=True)
    if isinstance(ad, LeanVecAdapter):
        points = sweep_grid(ad, data, args.k, args.repeats)
    else:
        points = sweep_ef(ad, data, args.k, EFS + [192, 256, 384], args.repeats, 0.999, 200)
    for t in TARGETS:
        print(f"    q/s @{t:.2f}: {fmt_qps(qps_at(points, t))}", flush=True)
    return Result(name, ad.library, ad.version(), ad.params, build_s, bpv, how, points)


def svs_leanvec_check() -> None:
    """SVS's LeanVec is closed and Intel-only: say why it is skipped here."""
    try:
        import svs  # noqa: F401
    except ImportError as exc:
        raise Skip("SVS is not installed (pip install scalable-vs)") from exc
    if "intel" not in cpu_model().lower():
        raise Skip(f"SVS's LeanVec/LVQ run only on Intel CPUs (SVS says so on this {cpu_model()})")
    raise Skip("SVS LeanVec adapter: run bench_hnsw.py's SvsAdapter with a LeanVecLoader")


# ----------------------------------------------------------------------------- OOD


def ood_table(path: str, dims: list[int], nq: int | None) -> list[dict[str, Any]]:
    import h5py

    with h5py.File(path, "r") as f:
        x, q, learn = f["train"][()], f["test"][()], f["learn"][()]
        gt = f["neighbors"][()]
    if nq is not None:
        q, gt = q[:nq], gt[:nq]
    rows = []
    for d in dims:
        rows.append(id_with_residual_column(x, q, gt, d))
        for kind in ("id", "ood"):
            for structure in ("Flat", "HNSW32"):
                spec = f"LeanVec{d}{'_ood' if kind == 'ood' else ''},{structure},Refine(F32)"
                idx = annx.index_factory(x.shape[1], spec, "cos", seed=0)
                t0 = time.perf_counter()
                idx.train(x, queries=learn if kind == "ood" else None)
                fit_s = time.perf_counter() - t0
                idx.add(x)
                row: dict[str, Any] = {"D": d, "kind": kind, "structure": structure, "fit_s": fit_s}
                row["heldout_loss"] = idx.leanvec.loss(x, q)
                for r in BUDGETS:
                    kw = {"rerank": r}
                    if structure == "HNSW32":
                        kw["ef_search"] = max(64, r)
                    ids = idx.search(q, 10, threads=1, **kw)[1]
                    row[f"recall@R{r}"] = recall_at_k(ids, gt, 10)
                print(
                    f"  {spec}: fit {fit_s:.2f} s, held-out loss {row['heldout_loss']:.4f}, "
                    + ", ".join(f"R={r}: {row[f'recall@R{r}']:.4f}" for r in BUDGETS),
                    flush=True,
                )
                rows.append(row)
    return rows


def id_with_residual_column(x: np.ndarray, q: np.ndarray, gt: np.ndarray, d: int) -> dict:
    """LeanVec-ID's matrix with the residual-norm column the OOD index adds, computed in
    numpy (exact reduced-space ranking, like a Flat primary): separates what the column
    brings on OOD queries from what the OOD matrices bring."""
    t0 = time.perf_counter()
    lv = annx.LeanVec(d, "id", metric="cos").fit(x)
    fit_s = time.perf_counter() - t0
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    xt = xn - lv.mean
    reduced = -2.0 * (lv.transform_queries(q) @ lv.transform(x).T) + (xt * xt).sum(1)[None, :]
    exact = -(qn @ xn.T)
    row: dict[str, Any] = {"D": d, "kind": "id + column", "structure": "Flat (numpy)"}
    row["fit_s"], row["heldout_loss"] = fit_s, lv.loss(x, q)
    for r in BUDGETS:
        cand = np.argpartition(reduced, r, axis=1)[:, :r]
        best = np.take_along_axis(cand, np.argsort(np.take_along_axis(exact, cand, 1), 1), 1)
        row[f"recall@R{r}"] = recall_at_k(best[:, :10], gt, 10)
    print(
        f"  LeanVec{d} ID + residual column (numpy): "
        + ", ".join(f"R={r}: {row[f'recall@R{r}']:.4f}" for r in BUDGETS),
        flush=True,
    )
    return row


# -------------------------------------------------------------------------- report


def markdown(results: list[Result], ood: list[dict[str, Any]], header: list[str]) -> str:
    out = [*header, ""]
    base = next((r for r in results if r.name == "annx-hnsw32"), None)
    if results:
        out.append(
            "| configuration | spec | build s | build speed-up | bytes/vector (primary + "
            "secondary) | "
            + " | ".join(f"q/s @{t:.2f}" for t in TARGETS)
            + " | vs HNSW32 @0.95 | vs HNSW32 @0.99 |"
        )
        out.append("|---|---|---:|---:|---|" + "---:|" * (len(TARGETS) + 2))
        for r in results:
            speed = "-" if base is None else f"{base.build_s / r.build_s:.2f}x"
            ratios = []
            for t in (0.95, 0.99):
                v, b = qps_at(r.points, t), None if base is None else qps_at(base.points, t)
                ratios.append("-" if v is None or b is None else f"{v / b:.2f}x")
            out.append(
                f"| {r.name} | `{r.params.get('spec', r.params)}` | {r.build_s:.1f} | {speed} | "
                f"{r.bytes_per_vector:,.0f} ({r.bpv_source.replace('reported: ', '')}) | "
                + " | ".join(fmt_qps(qps_at(r.points, t)) for t in TARGETS)
                + " | "
                + " | ".join(ratios)
                + " |"
            )
        out.append("")
        out.append("Frontier points (ef_search/rerank: recall@10 / q/s):")
        out.append("")
        from bench_hnsw import pareto

        for r in results:
            pts = ", ".join(
                f"{p['ef']}/{p.get('rerank', '-')}: {p['recall']:.4f} / {p['qps']:,.0f}"
                for p in pareto(r.points)
            )
            out.append(f"- {r.name}: {pts}")
        out.append("")
    if ood:
        out.append(
            "Out-of-distribution queries: recall@10 at re-rank budget R (candidates re-scored "
            "in full dimension), LeanVec-ID vs LeanVec-OOD (trained on `learn`), held-out "
            "OOD loss on the test queries (lower is better). The `id + column` rows use "
            "LeanVec-ID's matrix with the residual-norm column that the OOD index adds "
            "(computed in numpy, exact reduced ranking): OOD minus that row is what the "
            "query-aware matrices themselves bring."
        )
        out.append("")
        out.append(
            "| D | structure | kind | fit s | held-out loss | "
            + " | ".join(f"R={r}" for r in BUDGETS)
            + " |"
        )
        out.append("|---:|---|---|---:|---:|" + "---:|" * len(BUDGETS))
        for row in ood:
            out.append(
                f"| {row['D']} | {row['structure']} | {row['kind']} | {row['fit_s']:.2f} | "
                f"{row['heldout_loss']:.4f} | "
                + " | ".join(f"{row[f'recall@R{r}']:.4f}" for r in BUDGETS)
                + " |"
            )
        out.append("")
        out.append(
            "OOD minus ID recall (points); in brackets, OOD minus ID with the residual column "
            "(Flat only):"
        )
        out.append("")
        out.append("| D | structure | " + " | ".join(f"R={r}" for r in BUDGETS) + " |")
        out.append("|---:|---|" + "---:|" * len(BUDGETS))
        for row in ood:
            if row["kind"] != "ood":
                continue
            ref = next(
                o
                for o in ood
                if o["kind"] == "id" and o["D"] == row["D"] and o["structure"] == row["structure"]
            )
            col = next((o for o in ood if o["kind"] == "id + column" and o["D"] == row["D"]), None)
            cells = []
            for r in BUDGETS:
                key = f"recall@R{r}"
                cell = f"{100 * (row[key] - ref[key]):+.1f}"
                if col is not None and row["structure"] == "Flat":
                    cell += f" ({100 * (row[key] - col[key]):+.1f})"
                cells.append(cell)
            out.append(f"| {row['D']} | {row['structure']} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--ood-data", default=str(DEFAULT_OOD))
    ap.add_argument("--algos", default=DEFAULT_ALGOS)
    ap.add_argument("--ood-dims", default="32,64,128")
    ap.add_argument("--no-id", action="store_true", help="skip part 1")
    ap.add_argument("--no-ood", action="store_true", help="skip part 2")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nq", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    ap.add_argument("--md", default=None)
    args = ap.parse_args()
    if args.algos == "list":
        for name, spec in SPECS.items():
            print(f"{name}: {spec}")
        for name in OTHERS:
            print(name)
        return 0
    header = [
        f"Command: `python {' '.join(sys.argv)}` at commit {git_commit()}.",
        "",
        f"Machine: {cpu_model()}, {platform.machine()}, annx ISA {annx.get_isa()}; build "
        f"{args.build_threads} threads, search 1 thread, k = {args.k}, median of "
        f"{args.repeats} timed batches per point.",
    ]
    results: list[Result] = []
    if not args.no_id:
        data = load_data(args.data, args.nq)
        header.append(
            f"Data: {data.name} ({len(data.train):,} x {data.d}, {len(data.test):,} queries)."
        )
        for name in args.algos.split(","):
            try:
                results.append(run_id(name.strip(), data, args))
            except Skip as exc:
                print(f"== {name}: skipped: {exc}", flush=True)
                header.append(f"Skipped {name}: {exc}.")
    ood = (
        []
        if args.no_ood
        else ood_table(args.ood_data, [int(v) for v in args.ood_dims.split(",")], None)
    )
    text = markdown(results, ood, header)
    print(text)
    if args.md:
        Path(args.md).write_text(text)
    if args.json:
        with open(args.json, "w") as fh:
            for r in results:
                fh.write(json.dumps(asdict(r)) + "\n")
            for row in ood:
                fh.write(json.dumps({"ood": row}) + "\n")
    if args.plot and results:
        title = f"LeanVec on {Path(args.data).stem}: recall@{args.k} vs q/s (1 thread)"
        plot(results, args.plot, title, args.k, frontier=True, xmin=0.85)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
