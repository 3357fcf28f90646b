"""Binary-code scan speed: annx BIN / BEBR<L> Flat scans (with and without Refine(F32))
against annx Flat F32 and faiss ``IndexBinaryFlat``, timed point by point back to back.

Usage:
    cd bench && python -m annxbench.binary_speed [--data minilm-100000-384-angular.hdf5] [--nq 1000]
        [--repeats 5] [--threads 1] [--out results/binary-speed-minilm-100k.md]

Every configuration runs at every sweep position (one-point configurations repeat their
point), so each ratio against Flat F32 compares searches that ran back to back in the
same round (annxbench.timing.interleaved: warm-up, then ``--repeats`` rounds in
alternating order). A ratio is the median of the per-repeat ratios with their min-max;
for one-point configurations the per-repeat ratios of every position are pooled.
Queries are binarised inside the timed search for every binary configuration (faiss:
``numpy.packbits`` of the sign bits; annx: the codec's query encoding).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from annxbench import datasets, timing
from annxbench.machine import cpu_model, git_commit

ONE_POINT = ["Flat", "Flat,BIN", "Flat,BEBR2", "Flat,BEBR4", "hamming BIN", "faiss IndexBinaryFlat"]
REFINE = {
    "Flat,BIN,Refine(F32)": [20, 50, 100, 200, 400],
    "Flat,BEBR2,Refine(F32)": [10, 20, 50, 100, 200],
    "Flat,BEBR4,Refine(F32)": [10, 20, 30, 50, 100],
    "Flat,BIN_adc,Refine(F32)": [20, 50, 100, 200, 400],
    "Flat,BEBR2_adc,Refine(F32)": [10, 20, 50, 100, 200],
}
ADC = ["Flat,BIN_adc", "Flat,BEBR2_adc", "Flat,BEBR4_adc"]


def build(ds: Any, k: int, threads: int, adc: bool) -> tuple[dict[str, Any], dict[str, list[dict]]]:
    import annx

    searchers: dict[str, Any] = {}
    sweeps: dict[str, list[dict]] = {}
    npos = max(len(v) for v in REFINE.values())
    metric = {"cos": "cosine"}.get(ds.metric, ds.metric)
    nbits = (ds.d + 7) // 8 * 8

    def packed(x: np.ndarray) -> np.ndarray:
        bits = np.zeros((len(x), nbits), np.uint8)
        bits[:, : x.shape[1]] = x > 0
        return np.packbits(bits, axis=1)

    def annx_index(spec: str) -> Any:
        idx = annx.index_factory(ds.d, spec, metric=metric)
        idx.add(ds.train, threads=2)
        return idx

    for spec in [s for s in ONE_POINT if s.startswith("Flat")] + (ADC if adc else []):
        idx = annx_index(spec)
        searchers[spec] = lambda idx=idx, **p: idx.search(ds.test, k, threads=threads)[1]
        sweeps[spec] = [{}] * npos
    ham = annx.index_factory(nbits, "BIN", metric="hamming")
    ham.add(packed(ds.train))
    searchers["hamming BIN"] = lambda **p: ham.search(packed(ds.test), k, threads=threads)[1]
    sweeps["hamming BIN"] = [{}] * npos
    try:
        import faiss

        fb = faiss.IndexBinaryFlat(nbits)
        fb.add(packed(ds.train))

        def faiss_search(**p: Any) -> np.ndarray:
            faiss.omp_set_num_threads(threads)
            return fb.search(packed(ds.test), k)[1]

        searchers["faiss IndexBinaryFlat"] = faiss_search
        sweeps["faiss IndexBinaryFlat"] = [{}] * npos
    except ImportError:
        print("faiss not installed: IndexBinaryFlat not run")
    for spec, reranks in REFINE.items():
        if "_adc" in spec and not adc:
            continue
        idx = annx_index(spec)
        searchers[spec] = lambda idx=idx, **p: idx.search(ds.test, k, threads=threads, **p)[1]
        sweeps[spec] = [{"rerank": r} for r in reranks]
    return searchers, sweeps


def ratios(a: timing.Point, b: timing.Point) -> list[float]:
    """Per-repeat q/s ratios of a over b (same round, back to back)."""
    return [tb / ta for ta, tb in zip(a.times, b.times, strict=False)]


def fmt(r: list[float]) -> str:
    return f"**{statistics.median(r):.2f}x** ({min(r):.2f}-{max(r):.2f})" if r else "-"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", default=str(datasets.default_data_dir() / "minilm-100000-384-angular.hdf5")
    )
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-adc", action="store_true", help="skip the _adc variants")
    ap.add_argument("--out", default=None, help="markdown file for the results table")
    args = ap.parse_args(argv)

    import annx

    load_before = os.getloadavg()[0]
    ds = datasets.load(args.data, nq=args.nq)
    searchers, sweeps = build(ds, args.k, args.threads, not args.no_adc)
    res = timing.interleaved(
        searchers, sweeps, ds.neighbors, args.k, repeats=args.repeats, stop_recall=2.0, min_qps=0.0
    )
    flat = res["Flat"]
    lines = [
        f"# Binary-code scans on {Path(args.data).name}",
        "",
        f"Date {datetime.date.today()}, annx {annx.__version__} "
        f"(commit {git_commit()}), ISA {annx.get_isa()}, {platform.machine()}"
        f" ({cpu_model()}); {len(ds.train):,} x {ds.d}, {len(ds.test)} queries, k = {args.k}, "
        f"{args.threads} search thread(s), median of {args.repeats} repeats per point. "
        f"Load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the run "
        f"({os.cpu_count()} CPUs): where it exceeds the CPU count, absolute q/s are low and "
        "noisy; the ratios compare searches run back to back in the same round.",
        "",
        "## Scans (one point; ratios pooled over every sweep position)",
        "",
        "| configuration | recall@10 | q/s | vs Flat F32 | vs faiss IndexBinaryFlat |",
        "|---|---:|---:|---:|---:|",
    ]
    fb = res.get("faiss IndexBinaryFlat")
    for name in ONE_POINT + [a for a in ADC if a in res]:
        pts = res.get(name)
        if not pts:
            continue
        rf = [r for i, p in enumerate(pts) for r in ratios(p, flat[i])]
        rb = [r for i, p in enumerate(pts) for r in ratios(p, fb[i])] if fb else []
        binary = name not in ("Flat",) and "adc" not in name
        lines.append(
            f"| {name} | {pts[0].recall:.3f} | {statistics.median(p.qps for p in pts):,.0f} | "
            f"{fmt(rf)} | {fmt(rb) if binary and fb and name != fb else '-'} |"
        )
    lines += [
        "",
        "## With re-ranking (Refine(F32)): every point, against Flat F32 in the same round",
        "",
        "| configuration | rerank | recall@10 | q/s | vs Flat F32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in REFINE:
        for i, p in enumerate(res.get(name, [])):
            lines.append(
                f"| {name} | {p.params['rerank']} | {p.recall:.3f} | {p.qps:,.0f} | "
                f"{fmt(ratios(p, flat[i]))} |"
            )
    lines += ["", "Fastest setting at recall@10 >= 0.95 (by the median ratio to Flat F32):", ""]
    for name in REFINE:
        ok = [(p, i) for i, p in enumerate(res.get(name, [])) if p.recall >= 0.95]
        if ok:
            # Each point ran in its own round: its ratio to Flat in that round, not its
            # absolute q/s, compares points taken under different load.
            p, i = max(ok, key=lambda c: statistics.median(ratios(c[0], flat[c[1]])))
            lines.append(
                f"- {name}: rerank {p.params['rerank']}, recall {p.recall:.3f}, "
                f"{fmt(ratios(p, flat[i]))} Flat F32"
            )
        else:
            lines.append(f"- {name}: recall 0.95 not reached on this sweep")
    cmd = "python -m annxbench.binary_speed " + " ".join(argv if argv is not None else sys.argv[1:])
    lines += ["", f"Command: `PYTHONPATH=python {cmd.strip()}`", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
