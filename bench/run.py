"""The peer-comparison runner: build each configuration, sweep its search parameters,
write JSON lines, then a plot and a table per dataset (bench/plot.py).

Usage:
    python bench/run.py --data FILE.hdf5[,FILE2.hdf5...] [--algos annx-hnsw32,hnswlib-m16,...]
        [--k 10] [--threads 1] [--build-threads 2] [--nq N] [--repeats 3]
        [--out-dir bench/results/run] [--no-plot]
    python bench/run.py --algos list

Each (dataset, configuration) runs in its own Python process, so peak RSS is the
configuration's own and one crash cannot take the others down. Peers are optional
imports: a configuration whose library is missing (or that does not apply, e.g. LeanVec
below 128 dimensions) is reported as skipped. Configurations and their sweeps come from
the per-family scripts in this folder, so every benchmark measures alike:

* HNSW-type (``bench_hnsw.py``): ``annx-hnsw32``, ``annx-hnsw16``,
  ``annx-hnsw32-sq8-refine``, ``annx-hnsw32-f16``, ``hnswlib-m16``, ``hnswlib-m32``,
  ``faiss-hnsw32``, ``usearch-f32``, ``usearch-i8``, ``svs-vamana`` (ef sweep);
* IVF (``bench_ivf.py``): ``annx-ivfpqfs-refine``, ``faiss-ivfpqfs-refine``,
  ``scann-ah-reorder`` (``pip install scann``), ``annx-ivfflat``, ``faiss-ivfflat``, ...
  (nprobe x re-rank sweep; nlist 1024 at 50k
  vectors and more, else the power of two nearest 4 sqrt(n); M = d/2 for even d);
* LeanVec (``bench_leanvec.py``): ``annx-lv<D>...`` (ef x rerank sweep);
* exact: ``annx-flat``, ``faiss-flat`` (one point);
* multi-vector (``bench_muvera.py``, for ``*-chamfer.hdf5`` files only):
  ``annx-mv-k3-hnsw32-sq8``, ``annx-mv-k5-hnsw32-sq8``, ``annx-mv-k3-flat``
  (MultiVectorIndex, candidates x ef sweep), ``annx-chamfer`` (exact, one point),
  ``muvera-python-flat`` (muvera-python's encoder, ``pip install muvera-python``, exact
  FDE scan and annx's exact re-rank), ``annx-token-heuristic`` (per-token HNSW, union,
  exact re-rank). Single-vector configurations skip multi-vector files and vice versa;
  "bytes_per_vector" is bytes per document there.

JSON lines (``<out-dir>/results.jsonl``), one per sweep point: dataset, algorithm,
library, version, build_params, search_params, build_s, recall, qps, k, nq, threads,
bytes_per_vector, peak_rss_mb (the process's peak), data_rss_mb (after loading the data),
cpu, isa, annx_commit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_hnsw  # noqa: E402
import bench_ivf  # noqa: E402
import bench_leanvec  # noqa: E402
import bench_muvera  # noqa: E402
from bench_hnsw import Skip, cpu_model, load_data, recall_at_k  # noqa: E402

DEFAULT_ALGOS = (
    "annx-flat,faiss-flat,annx-hnsw32,annx-hnsw32-sq8-refine,hnswlib-m16,faiss-hnsw32,"
    "usearch-f32,annx-ivfpqfs-refine,faiss-ivfpqfs-refine,scann-ah-reorder,annx-lv160-sq8"
)
EXACT = ("annx-flat", "faiss-flat")


def family(name: str) -> str:
    if name in EXACT:
        return "exact"
    if name in bench_hnsw.ALGOS:
        return "hnsw"
    if name in bench_ivf.ALGOS:
        return "ivf"
    if name in bench_leanvec.SPECS:
        return "leanvec"
    if name in bench_muvera.MV_ALGOS:
        return "multivector"
    raise SystemExit(f"unknown configuration {name!r}; --algos list shows them")


def all_names() -> list[str]:
    return [*EXACT, *bench_hnsw.ALGOS, *bench_ivf.ALGOS, *bench_leanvec.SPECS,
            *bench_muvera.MV_ALGOS]  # fmt: skip


def rss_mb() -> float:
    # ru_maxrss: kilobytes on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def timed_search(search: Any, q: np.ndarray, repeats: int) -> tuple[float, np.ndarray]:
    ts, ids = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        ids = search(q)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), np.asarray(ids)


# ------------------------------------------------------------------ one configuration
def run_exact(name: str, data: Any, args: argparse.Namespace) -> dict[str, Any]:
    x, q, k = data.train, data.test, args.k
    if name == "annx-flat":
        import annx

        annx.set_num_threads(args.build_threads)
        t0 = time.perf_counter()
        idx = annx.index_factory(data.d, "Flat", data.metric)
        idx.add(x)
        build_s = time.perf_counter() - t0
        version, bpv = annx.__version__, float(idx.bytes_per_vector)

        def search(qq: np.ndarray) -> np.ndarray:
            return idx.search(qq, k, threads=args.threads)[1]

    else:
        try:
            import faiss
        except ImportError as exc:
            raise Skip("faiss-cpu is not installed") from exc
        faiss.omp_set_num_threads(args.build_threads)
        t0 = time.perf_counter()
        idx = faiss.IndexFlatL2(data.d) if data.metric == "l2" else faiss.IndexFlatIP(data.d)
        idx.add(x)
        build_s = time.perf_counter() - t0
        version, bpv = faiss.__version__, 4.0 * data.d + 8

        def search(qq: np.ndarray) -> np.ndarray:
            faiss.omp_set_num_threads(args.threads)
            return idx.search(qq, k)[1]

    t, ids = timed_search(search, q, args.repeats)
    point = {"search_params": {}, "recall": recall_at_k(ids, data.neighbors, k), "qps": len(q) / t}
    return {"library": name.split("-")[0], "version": version, "build_params": {},
            "build_s": build_s, "bytes_per_vector": bpv, "points": [point]}  # fmt: skip


def run_hnsw(name: str, data: Any, args: argparse.Namespace) -> dict[str, Any]:
    ad = bench_hnsw.ALGOS[name](name, data.metric)
    t0 = time.perf_counter()
    ad.build(data.train, args.build_threads)
    build_s = time.perf_counter() - t0
    efs = bench_hnsw.int_list(bench_hnsw.DEFAULT_EF)
    pts = bench_hnsw.sweep(ad, data, args.k, efs, args.repeats, 0.999, 200)
    bpv, _ = ad.bytes_per_vector()
    return {"library": ad.library, "version": ad.version(), "build_params": ad.params,
            "build_s": build_s, "bytes_per_vector": bpv,
            "points": [{"search_params": {"ef_search": p["ef"]}, "recall": p["recall"],
                        "qps": p["qps"]} for p in pts]}  # fmt: skip


def ivf_shape(n: int, d: int) -> tuple[int, int]:
    nlist = 1024 if n >= 50_000 else 2 ** max(4, round(math.log2(4 * math.sqrt(n))))
    return nlist, (d // 2 if d % 2 == 0 else d)


def run_ivf(name: str, data: Any, args: argparse.Namespace) -> dict[str, Any]:
    nlist, m = ivf_shape(len(data.train), data.d)
    ad = bench_ivf.make_adapter(name, data.metric, nlist, m)
    ad.create(data.d)
    g = np.random.default_rng(bench_ivf.SAMPLE_SEED)
    n_train = min(len(data.train), 65_536)
    xt = data.train[np.sort(g.choice(len(data.train), n_train, replace=False))]
    t0 = time.perf_counter()
    ad.train(xt, args.build_threads)
    ad.add(data.train, args.build_threads)
    build_s = time.perf_counter() - t0
    sweep_args = argparse.Namespace(
        stop_recall=0.999, min_qps=200, plateau=0.0005, retime_slack=0.15, repeats=args.repeats
    )
    nprobes = [v for v in bench_hnsw.int_list(bench_ivf.DEFAULT_NPROBE) if v <= nlist]
    factors = bench_hnsw.int_list(bench_ivf.DEFAULT_RERANK_FACTORS)
    reranks = [args.k * f for f in factors] if ad.refine else [None]
    pts = bench_ivf.sweep(ad, data, args.k, nprobes, reranks, sweep_args)
    bpv, _ = ad.bytes_per_vector()
    return {"library": ad.library, "version": ad.version(),
            "build_params": {**ad.params, "nlist": nlist, "M": m}, "build_s": build_s,
            "bytes_per_vector": bpv,
            "points": [{"search_params": {"nprobe": p["nprobe"], "rerank": p["rerank"]},
                        "recall": p["recall"], "qps": p["qps"]} for p in pts]}  # fmt: skip


def run_leanvec(name: str, data: Any, args: argparse.Namespace) -> dict[str, Any]:
    spec = bench_leanvec.SPECS[name]
    target = int(spec.split(",")[0][len("LeanVec") :].split("_")[0])
    if data.d < 128 or target >= data.d:
        raise Skip(f"LeanVec{target} is meant for high dimensions (this data has d={data.d})")
    ad = bench_leanvec.LeanVecAdapter(name, data.metric, spec)
    t0 = time.perf_counter()
    ad.build(data.train, args.build_threads)
    build_s = time.perf_counter() - t0
    pts = bench_leanvec.sweep_grid(ad, data, args.k, args.repeats)
    bpv, _ = ad.bytes_per_vector()
    return {"library": "annx", "version": ad.version(), "build_params": ad.params,
            "build_s": build_s, "bytes_per_vector": bpv,
            "points": [{"search_params": {"ef_search": p["ef"], "rerank": p["rerank"]},
                        "recall": p["recall"], "qps": p["qps"]} for p in pts]}  # fmt: skip


def run_multivector(name: str, data: Any, args: argparse.Namespace) -> dict[str, Any]:
    return bench_muvera.run_config(
        name, data, args.k, args.repeats, args.build_threads, args.threads
    )


RUNNERS = {"exact": run_exact, "hnsw": run_hnsw, "ivf": run_ivf, "leanvec": run_leanvec,
           "multivector": run_multivector}  # fmt: skip


def one(args: argparse.Namespace) -> int:
    """Child process: one configuration on one dataset, JSON lines to --jsonl."""
    mv_file = bench_muvera.is_multivector_file(args.data)
    if mv_file != (family(args.one) == "multivector"):
        why = "a multi-vector configuration" if not mv_file else "a single-vector configuration"
        print(f"== {args.one}: skipped: {why} does not apply to {Path(args.data).name}")
        return 0
    data = bench_muvera.load_mv(args.data, args.nq) if mv_file else load_data(args.data, args.nq)
    data_rss = rss_mb()
    try:
        import annx

        isa, commit = annx.get_isa(), git_commit()
    except ImportError:
        isa, commit = "?", git_commit()
    try:
        res = RUNNERS[family(args.one)](args.one, data, args)
    except Skip as exc:
        print(f"== {args.one}: skipped: {exc}", flush=True)
        with open(args.jsonl, "a") as fh:
            fh.write(json.dumps({"dataset": data.name, "algorithm": args.one,
                                 "skipped": str(exc)}) + "\n")  # fmt: skip
        return 0
    peak = rss_mb()
    with open(args.jsonl, "a") as fh:
        for p in res["points"]:
            rec = {
                "dataset": data.name,
                "algorithm": args.one,
                "library": res["library"],
                "version": res["version"],
                "build_params": res["build_params"],
                "search_params": p["search_params"],
                "build_s": round(res["build_s"], 3),
                "recall": p["recall"],
                "qps": p["qps"],
                "k": args.k,
                "nq": data.nq if mv_file else len(data.test),
                "threads": args.threads,
                "build_threads": args.build_threads,
                "bytes_per_vector": res["bytes_per_vector"],
                "peak_rss_mb": round(peak, 1),
                "data_rss_mb": round(data_rss, 1),
                "cpu": cpu_model(),
                "machine": platform.machine(),
                "isa": isa,
                "annx_commit": commit,
            }
            fh.write(json.dumps(rec, default=str) + "\n")
    return 0


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default=str(bench_hnsw.DEFAULT_DATA), help="comma list of files")
    ap.add_argument("--algos", default=DEFAULT_ALGOS, help="comma list, or 'list'")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="search threads")
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--nq", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out-dir", default=str(HERE / "results" / "run"))
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--jsonl", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.algos == "list":
        for name in all_names():
            print(f"{name} ({family(name)})")
        return 0
    if args.one:
        return one(args)
    names = [a.strip() for a in args.algos.split(",") if a.strip()]
    for name in names:
        family(name)  # fail early on a typo
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "results.jsonl"
    jsonl.unlink(missing_ok=True)
    failures = 0
    for path in args.data.split(","):
        for name in names:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--one", name,
                   "--data", path, "--jsonl", str(jsonl), "--k", str(args.k),
                   "--threads", str(args.threads), "--build-threads", str(args.build_threads),
                   "--repeats", str(args.repeats)]  # fmt: skip
            if args.nq is not None:
                cmd += ["--nq", str(args.nq)]
            print(f"### {Path(path).name}: {name}", flush=True)
            env = dict(os.environ)
            if family(name) == "multivector":  # muvera-python encodes with numpy's BLAS
                for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                    env[var] = str(args.threads)
            rc = subprocess.run(cmd, env=env).returncode
            if rc != 0:
                failures += 1
                print(f"### {name} on {path} failed (exit {rc}); continuing", flush=True)
    if not args.no_plot:
        import plot as plotter

        plotter.report(jsonl, out, command=" ".join(["python", *sys.argv]))
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
