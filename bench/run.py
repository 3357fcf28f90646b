"""The one benchmark entry point: configurations by family, swept and timed point by
point interleaved (annxbench.timing), JSON lines, per-set tables and plots, a summary
page, and a matrix mode over every data set.

Usage:
    python bench/run.py --algos list
    python bench/run.py --data A.hdf5[,B.hdf5] [--families graph,ivf | --algos NAME,...]
    python bench/run.py --matrix [--data-dir ../shared/data] [--quick] [--nq 400]
    common: [--k 10] [--threads 1] [--build-threads 2] [--repeats 5] [--nq N]
            [--out-dir DIR] [--no-plot] [--stop-recall 0.999] [--min-qps 50]
            [--qps-floor 100] [--note TEXT] [--in-process] [--libraries annx,faiss]
    python bench/run.py --report-only --out-dir DIR   # pages again from DIR/results.jsonl
                                                      # (and DIR/header.json, the run's header)

Families (``--families``, aliases in brackets; the old per-family scripts are these
presets): flat [exact], graph [hnsw], ivf, leanvec, binary [bebr], codecs, multivector
[muvera], fde (MUVERA encoding vs muvera-python and candidate recall by query length:
bench/annxbench/fde_encode.py), and multitenant when ``bench/annxbench/multitenant.py``
exists (a module with ``configs()`` adds configurations; one with ``main(argv)`` is handed
the command line).

Each (data set, family) runs in its own process (``--in-process``, implied by
``--quick``, runs them in this one): build every configuration of the family that
applies (``--build-threads``, BLAS pinned with threadpoolctl), then for each sweep
position time one batch of all queries per configuration, ``--repeats`` times,
alternating the order, on ``--threads`` search threads. Single-vector configurations
skip multi-vector files and the reverse; a library that is not installed is listed
as not run. Output in ``--out-dir``: ``results.jsonl`` (one line per sweep point, with
every repeat's q/s), ``README.md`` (machine, commit, command, best annx vs best peer per
set and recall target with the ratio and its min-max over repeats, plots) and per set
``<set>.md`` (every configuration, the memory-budget table, sweep points), ``<set>.png``
and ``<set>-memory.png``. ``--matrix`` runs every family on every ``*.hdf5`` in
``--data-dir`` into ``bench/results``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# OpenMP workers that spin while waiting stall for seconds when the cores are shared
# (faiss training with 2 threads took 30x longer here); sleeping waits cost nothing alone.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from annxbench import datasets, families, report, timing  # noqa: E402
from annxbench.adapters.base import Skip  # noqa: E402
from annxbench.machine import cpu_model, git_commit  # noqa: E402

DEFAULT_DATA = datasets.default_data_dir() / "minilm-100000-384-angular.hdf5"
DEFAULT_FAMILIES = "flat,graph,ivf"


def rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def blas_limit(n: int) -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only the BLAS env variables then
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=n)


def run_family(path: str, family: str, names: list[str], args: argparse.Namespace) -> list[dict]:
    """Build and time ``names`` (configurations of ``family``) on one data set."""
    ds = datasets.load(path, args.nq)
    cfgs = [families.all_configs()[n] for n in names]
    cfgs = [c for c in cfgs if c.needs(ds) is None]
    if not cfgs:
        return []
    print(f"### {ds.name}: {family}: {', '.join(c.name for c in cfgs)}", flush=True)
    try:
        import annx

        isa = annx.get_isa()
    except ImportError:
        isa = "?"
    meta = {"dataset": ds.name, "family": family, "n": ds.n, "d": ds.d, "metric": ds.metric,
            "nq": ds.nq, "k": args.k, "threads": args.threads, "build_threads": args.build_threads,
            "cpu": cpu_model(), "machine": platform.machine(), "isa": isa,
            "annx_commit": git_commit(),
            "group": f"{ds.name}/{family}/{os.getpid()}/{time.time():.0f}"}  # fmt: skip
    rows, built = [], {}
    with blas_limit(args.build_threads):
        for c in cfgs:
            try:
                ad = c.make(ds)
                t0 = time.perf_counter()
                ad.build(ds, args.build_threads)
                built[c.name] = (ad, time.perf_counter() - t0)
                ad.threads = args.threads
                print(f"== {c.name}: built in {built[c.name][1]:.1f} s, "
                      f"{ad.bytes_per_vector():,.0f} B/vector", flush=True)  # fmt: skip
            except Skip as exc:
                print(f"== {c.name}: skipped: {exc}", flush=True)
                rows.append({**meta, "algorithm": c.name, "skipped": str(exc)})
            except Exception as exc:  # one failing configuration must not stop the rest
                traceback.print_exc()
                rows.append({**meta, "algorithm": c.name, "failed": f"{type(exc).__name__}: {exc}"})
    searchers = {
        n: (lambda ad=ad, **p: ad.search(ds.queries, args.k, **p)) for n, (ad, _) in built.items()
    }
    sweeps = {c.name: c.sweep(ds, args.quick) for c in cfgs if c.name in built}
    errors: dict[str, str] = {}
    with blas_limit(args.threads):
        pts = timing.interleaved(searchers, sweeps, ds.neighbors, args.k, args.repeats,
                                 args.stop_recall, args.min_qps, errors=errors)  # fmt: skip
    peak = rss_mb()
    for name, (ad, build_s) in built.items():
        if name in errors:
            rows.append({**meta, "algorithm": name, "failed": errors[name]})
            continue
        common = {**meta, "algorithm": name, "library": ad.library, "version": ad.version(),
                  "build_params": ad.params, "build_s": round(build_s, 3),
                  "bytes_per_vector": ad.bytes_per_vector(),
                  "peak_rss_mb": round(peak, 1)}  # fmt: skip
        for p in pts[name]:
            rows.append({**common, "search_params": p.params, "recall": p.recall, "qps": p.qps,
                         "qps_runs": [round(p.nq / t, 2) for t in p.times]})  # fmt: skip
    del built, searchers
    gc.collect()
    return rows


def plan(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(file, family, configuration names) for every run, families in a fixed order."""
    allc = families.all_configs()
    if args.algos:
        names = [a.strip() for a in args.algos.split(",") if a.strip()]
        for n in names:
            if n not in allc:
                raise SystemExit(f"unknown configuration {n!r}; --algos list shows them")
    else:
        fams = {families.family_name(f.strip()) for f in args.families.split(",")}
        names = [n for n, c in allc.items() if c.family in fams and (c.matrix or not args.matrix)]
    if args.libraries:
        libs = {x.strip() for x in args.libraries.split(",")}
        names = [n for n in names if allc[n].library in libs]
    fams = list(dict.fromkeys(allc[n].family for n in names))
    # smallest first, the 200k-vector euclidean set last (the longest graph builds)
    files = [p for p in args.data.split(",") if p]
    if args.matrix:
        files = sorted(datasets.files(args.data_dir), key=lambda p: "-euclidean" in p.name)
    return [
        (str(f), fam, [n for n in names if allc[n].family == fam]) for f in files for fam in fams
    ]


def header(args: argparse.Namespace, argv: list[str]) -> list[str]:
    try:
        import annx

        ver = f"annx {annx.__version__}, ISA {annx.get_isa()}"
    except ImportError:
        ver = "annx not importable"
    nq = f"the first {args.nq} queries of each set" if args.nq else "all queries"
    return [
        "# annx benchmark results",
        "",
        f"- Command: `{' '.join(['python', 'bench/run.py', *argv])}`",
        f"- Commit {git_commit()}, "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{ver}; Python {platform.python_version()}",
        f"- Machine: {cpu_model()}, {os.cpu_count()} logical CPUs; build {args.build_threads} "
        f"threads, search {args.threads} thread(s), all queries in one batch call",
        f"- {nq}, k={args.k}; each point: one untimed run, then {args.repeats} timed runs "
        "interleaved across the family's configurations point by point; q/s = nq / median time",
        *([f"- {args.note}"] if args.note else []),
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="comma list of HDF5 files")
    ap.add_argument("--data-dir", default=str(datasets.default_data_dir()))
    ap.add_argument("--algos", default=None, help="comma list of configurations, or 'list'")
    ap.add_argument(
        "--families",
        "--preset",
        default=None,
        help=f"comma list (default {DEFAULT_FAMILIES}; all with --matrix)",
    )
    ap.add_argument(
        "--matrix", action="store_true", help="every family on every file in --data-dir"
    )
    ap.add_argument("--quick", action="store_true", help="short sweeps, in one process (CI)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="search threads")
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--nq", type=int, default=None, help="keep the first N queries")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per point (median)")
    ap.add_argument("--stop-recall", type=float, default=0.999)
    ap.add_argument("--min-qps", type=float, default=50.0, help="stop a sweep below this speed")
    ap.add_argument("--qps-floor", type=float, default=report.QPS_FLOOR, help="memory view")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--note", default=None, help="a line for the results page")
    ap.add_argument("--in-process", action="store_true")
    ap.add_argument("--libraries", default=None, help="keep only these libraries (comma list)")
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the pages from --out-dir's results.jsonl without running",
    )
    ap.add_argument("--child", nargs=3, metavar=("FILE", "FAMILY", "NAMES"), help=argparse.SUPPRESS)
    ap.add_argument("--jsonl", default=None, help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args(argv)
    if args.families and "fde" in args.families.split(","):  # MUVERA encoding + recall by length
        from annxbench import fde_encode

        return int(fde_encode.main(argv) or 0)
    if args.families is None:
        args.families = ",".join(families.families()) if args.matrix else DEFAULT_FAMILIES
    fams = [families.family_name(f) for f in args.families.split(",")]
    if "multitenant" in fams and not any(
        c.family == "multitenant" for c in families.all_configs().values()
    ):
        try:
            from annxbench import multitenant  # type: ignore[attr-defined]
        except ImportError:
            raise SystemExit(
                "the multitenant family needs bench/annxbench/multitenant.py"
            ) from None
        return int(multitenant.main(argv) or 0)
    if "ivfpq-matrix" in fams:  # annx vs faiss IVF-PQ cell by cell (annxbench/ivf_matrix.py)
        from annxbench import ivf_matrix

        return int(ivf_matrix.main([a for a in argv if not a.startswith("--families")
                                    and a != "ivfpq-matrix"]) or 0)  # fmt: skip
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    if min(args.repeats, args.k, args.threads, args.build_threads) < 1:
        ap.error("--repeats, --k, --threads and --build-threads must be >= 1")
    if args.algos == "list":
        for name, c in families.all_configs().items():
            print(f"{name} ({c.family})")
        return 0
    if args.child:
        path, fam, names = args.child
        rows = run_family(path, fam, names.split(","), args)
        with open(args.jsonl, "a") as fh:
            fh.writelines(json.dumps(r, default=str) + "\n" for r in rows)
        return 0
    runs = [] if args.report_only else plan(args)
    out = Path(args.out_dir or (HERE / "results" if args.matrix else HERE / "results" / "run"))
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "results.jsonl"
    failures, rows = 0, []
    if not args.report_only:
        jsonl.unlink(missing_ok=True)
    for path, fam, names in runs:
        if args.in_process or args.quick:
            try:
                rows += run_family(path, fam, names, args)
            except Exception:  # noqa: BLE001 - report and go on with the next family
                traceback.print_exc()
                failures += 1
            continue
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", path, fam,
               ",".join(names), "--jsonl", str(jsonl)]  # fmt: skip
        rc = subprocess.run(cmd).returncode
        if rc != 0:
            failures += 1
            print(f"### {fam} on {path} failed (exit {rc}); continuing", flush=True)
    if rows:
        jsonl.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    head = out / "header.json"
    if not args.report_only or not head.exists():
        head.write_text(json.dumps(header(args, argv)))
    lines = json.loads(head.read_text())
    page = report.write(rows, out, lines, args.k, args.qps_floor, not args.no_plot)
    print(f"# wrote {page}")
    return 1 if failures else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
