"""Command line: ``python -m annx`` (or ``annx``) runs the demo.

Subcommands: ``demo``, ``build`` (index a data file, with progress bars for training and
adding), ``search`` (query an index file, recall when the data has ground truth),
``bench`` (the peer-comparison runner, bench/run.py, from a source tree), ``info`` (an
index file's header) and ``config``. ``annx --version`` prints the version; options
without a subcommand (``annx --n 1000``) go to ``demo``.

Data files: ``.hdf5``/``.h5`` (ann-benchmarks layout), ``.fvecs``, ``.bvecs``, ``.fbin``,
``.u8bin``, ``.i8bin`` and ``.npy`` (memory-mapped, not read into memory), or the name
of an ann-benchmarks data set (``--data glove-100-angular``), downloaded into the cache
(``$ANNX_DATA_DIR``, default ``~/.cache/annx/datasets``) on first use.

Exit status: 0 on success, 1 when the data, an index file or the computation fails (a
one-line message on stderr), 2 on bad usage (unknown option, missing argument, unknown
file format or spec).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    import annx
    from annx.datasets import recall_at_k, synthetic

    t0 = time.perf_counter()
    ds = synthetic(n=args.n, d=args.d, nq=args.nq, k=args.k, metric=args.metric, seed=args.seed)
    print(
        f"annx {annx.__version__} demo: {ds.name} (n={ds.n}, d={ds.d}, queries={ds.nq}, "
        f"k={args.k}, metric={args.metric}), generated in {time.perf_counter() - t0:.2f} s; "
        f"isa={annx.get_isa()}, threads={annx.get_num_threads()}"
    )
    print(f"{'index':<28} {'build s':>8} {'recall@k':>9} {'queries/s':>10} {'bytes/vec':>10}")
    for spec in args.specs.split(";"):
        index = annx.index_factory(ds.d, spec, metric=args.metric)
        t0 = time.perf_counter()
        if not index.is_trained:
            index.train(ds.train)
        index.add(ds.train)
        build = time.perf_counter() - t0
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            _, I = index.search(ds.test, args.k)
            best = min(best, time.perf_counter() - t0)
        recall = recall_at_k(I, ds.neighbors, args.k)
        print(
            f"{spec:<28} {build:>8.3f} {recall:>9.4f} {ds.nq / best:>10.0f} "
            f"{index.bytes_per_vector:>10.0f}"
        )
        if spec == "Flat" and recall < 0.999:
            print("error: exact search missed ground-truth neighbours", file=sys.stderr)
            return 1
    del np
    return 0


class UsageError(Exception):
    """A command line that cannot work whatever the data: exit status 2."""


_VECTOR_SUFFIXES = (".fvecs", ".bvecs", ".fbin", ".u8bin", ".i8bin", ".npy")


def _load_vectors(path: str, split: str) -> tuple[np.ndarray, Any]:
    """Vectors of a data file and, for ann-benchmarks HDF5, the dataset (else None).

    ``.hdf5``/``.h5``: the ``split`` ("train" or "test"); ``.fvecs``, ``.bvecs``,
    ``.fbin``, ``.u8bin``, ``.i8bin``, ``.npy`` (2-D): the whole file, memory-mapped.
    A path that does not exist and has no suffix is an ann-benchmarks data set name,
    downloaded into the cache first.
    """
    from annx import datasets

    suffix = Path(path).suffix.lower()
    if suffix in (".hdf5", ".h5"):
        ds = datasets.load_hdf5(path, load_extra=False)
        return (ds.train if split == "train" else ds.test), ds
    if suffix in _VECTOR_SUFFIXES:
        return datasets.read_vectors(path, mmap=True), None
    if not suffix and not Path(path).exists() and "/" not in path:
        if path not in datasets.ANN_BENCHMARKS_DATASETS:
            raise UsageError(
                f"{path!r} is neither a file nor an ann-benchmarks data set name "
                "(see annx.datasets.ANN_BENCHMARKS_DATASETS)"
            )
        print(f"annx: fetching {path} into the data cache", file=sys.stderr, flush=True)
        ds = datasets.load(path, load_extra=False)
        return (ds.train if split == "train" else ds.test), ds
    raise UsageError(
        f"{path}: unknown data format {suffix or '(no suffix)'!r} (expected .hdf5, .fvecs, "
        ".bvecs, .fbin, .u8bin, .i8bin or .npy, or an ann-benchmarks data set name)"
    )


def _as_float32(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return x if x.dtype == np.float32 else x.astype(np.float32)


def _build(args: argparse.Namespace) -> int:
    import numpy as np

    import annx

    x, ds = _load_vectors(args.data, "train")
    metric = args.metric or (ds.metric if ds is not None else "l2")
    if args.threads:
        annx.set_num_threads(args.threads)
    kwargs = {}
    if args.ef_construction is not None:
        kwargs["ef_construction"] = args.ef_construction
    if args.seed is not None:
        kwargs["seed"] = args.seed
    try:
        index = annx.index_factory(x.shape[1], args.spec, metric, **kwargs)
    except annx.InvalidArgumentError as exc:
        raise UsageError(str(exc)) from None
    t0 = time.perf_counter()
    if not index.is_trained:
        n_train = min(len(x), args.train_size)
        sample = x
        if n_train < len(x):
            pick = np.random.default_rng(args.seed or 0).choice(len(x), n_train, replace=False)
            sample = x[np.sort(pick)]
        sample = _as_float32(sample)
        if not args.quiet:
            print(f"training {index.spec} on {n_train:,} vectors", file=sys.stderr, flush=True)
        index.train(sample, progress=not args.quiet or None)
    t_train = time.perf_counter() - t0
    if x.dtype == np.float32 and x.flags.c_contiguous:  # zero copy, even when mapped
        index.add(x, progress=not args.quiet or None)
    else:  # convert in chunks: a memory-mapped file is never copied whole
        from annx._progress import _Reporter

        reporter = None if args.quiet else _Reporter(True, len(x), "add")
        step = 65536
        try:
            for lo in range(0, len(x), step):
                index.add(_as_float32(np.ascontiguousarray(x[lo : lo + step])))
                if reporter is not None:
                    reporter.update(min(len(x), lo + step))
        finally:
            if reporter is not None:
                reporter.close()
    t_total = time.perf_counter() - t0
    index.save(args.out)
    print(
        f"{args.out}: {index.spec} ({metric}), {index.ntotal:,} x {index.d}, train "
        f"{t_train:.1f} s, build {t_total:.1f} s, {index.bytes_per_vector:,.0f} bytes/vector, "
        f"{Path(args.out).stat().st_size:,} bytes"
    )
    return 0


def _search(args: argparse.Namespace) -> int:
    import numpy as np

    import annx
    from annx.datasets import recall_at_k

    if args.queries is None and args.data is None:
        raise UsageError("search needs --data or --queries")
    index = annx.load(args.index, mmap=args.mmap)
    if args.queries is None:
        q, ds = _load_vectors(args.data, "test")
    else:
        q, ds = _load_vectors(args.queries, "test")[0], None
        if args.data is not None:  # ground truth from --data's neighbours
            ds = _load_vectors(args.data, "test")[1]
    q = _as_float32(np.asarray(q))
    params = {
        name: value
        for name, value in (
            ("ef_search", args.ef_search),
            ("nprobe", args.nprobe),
            ("rerank", args.rerank),
        )
        if value is not None
    }
    t0 = time.perf_counter()
    D, I = index.search(q, args.k, threads=args.threads, **params)
    dt = time.perf_counter() - t0
    line = f"{len(q):,} queries, k={args.k}: {len(q) / dt:,.0f} queries/s"
    if ds is not None and ds.neighbors is not None:
        line += f", recall@{args.k} = {recall_at_k(I, ds.neighbors, args.k):.4f}"
    print(line)
    if args.out:
        np.savez(args.out, distances=D, ids=I)
    return 0


def _bench(argv: list[str]) -> int:
    """Run bench/run.py (the peer-comparison runner) from annx's source tree.

    ``argv``: the arguments after ``bench``; ``--bench-dir DIR`` first selects the folder
    holding run.py, everything else goes to run.py unchanged.
    """
    import subprocess

    import annx

    bench_dir = None
    if argv[:1] == ["--bench-dir"] and len(argv) >= 2:
        bench_dir, argv = argv[1], argv[2:]
    here = Path(annx.__file__).resolve()
    candidates = [Path.cwd() / "bench" / "run.py", here.parents[2] / "bench" / "run.py"]
    if bench_dir:
        candidates.insert(0, Path(bench_dir) / "run.py")
    runner = next((c for c in candidates if c.is_file()), None)
    if runner is None:
        print(
            "annx bench: error: bench/run.py not found; it lives in annx's source tree "
            "(git clone the repository and run this from its root, or pass --bench-dir)",
            file=sys.stderr,
        )
        return 1
    return subprocess.run([sys.executable, str(runner), *argv]).returncode


def _info(args: argparse.Namespace) -> int:
    import annx

    for key, value in annx.read_info(args.path).items():
        print(f"{key:>14}: {value}")
    return 0


class _Version(argparse.Action):
    """``--version``: imports annx only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("nargs", 0)
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        import annx

        print(f"annx {annx.__version__}")
        parser.exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``annx`` command."""
    parser = argparse.ArgumentParser(
        prog="annx", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action=_Version, help="print annx's version and exit")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="build and search indexes on a generated dataset")
    demo.add_argument("--n", type=int, default=20000)
    demo.add_argument("--d", type=int, default=64)
    demo.add_argument("--nq", type=int, default=500)
    demo.add_argument("--k", type=int, default=10)
    demo.add_argument("--metric", default="l2", choices=["l2", "ip", "cos"])
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--specs",
        default="Flat;Flat,F16;Flat,SQ8;HNSW16;HNSW16,F16;HNSW16,SQ8,Refine(F32);"
        "IVF128,Flat;IVF128,PQ32x4fs,Refine(F32)",
    )
    build = sub.add_parser("build", help="build an index from a data file and save it")
    build.add_argument(
        "--data",
        required=True,
        help=".hdf5 (train split), .fvecs, .bvecs, .fbin, .u8bin, .i8bin, .npy, or an "
        "ann-benchmarks data set name (downloaded into the cache)",
    )
    build.add_argument("--spec", required=True, help='e.g. "HNSW32" or "IVF1024,PQ48x4fs"')
    build.add_argument(
        "--metric",
        choices=["l2", "ip", "cos"],
        default=None,
        help="default: the HDF5 file's distance, else l2",
    )
    build.add_argument("--out", required=True, help="index file to write")
    build.add_argument(
        "--train-size",
        type=int,
        default=100_000,
        help="vectors sampled for training (IVF, PQ, SQ8, LeanVec)",
    )
    build.add_argument("--ef-construction", type=int, default=None)
    build.add_argument("--seed", type=int, default=None)
    build.add_argument("--threads", type=int, default=None)
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    search = sub.add_parser("search", help="search an index file with a data file's queries")
    search.add_argument("--index", required=True)
    search.add_argument(
        "--data",
        default=None,
        help=".hdf5 or data set name (test split and ground truth) or a vectors file",
    )
    search.add_argument(
        "--queries", default=None, help="queries file (default: --data's test split)"
    )
    search.add_argument("--k", type=int, default=10)
    search.add_argument("--ef-search", type=int, default=None)
    search.add_argument("--nprobe", type=int, default=None)
    search.add_argument("--rerank", type=int, default=None)
    search.add_argument("--threads", type=int, default=None)
    search.add_argument("--mmap", action="store_true", help="memory-map the index file")
    search.add_argument("--out", default=None, help="write distances and ids to this .npz")
    bench = sub.add_parser(
        "bench",
        help="run bench/run.py (peer comparison: JSON lines, plot, table); needs the source tree",
    )
    bench.add_argument("--bench-dir", default=None, help="folder holding run.py (first)")
    info = sub.add_parser("info", help="print the header facts of an index file")
    info.add_argument("path")
    sub.add_parser("config", help="print version, compiler, ISA and threads")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"] and argv[1:2] not in (["-h"], ["--help"]):
        return _bench(argv[1:])  # its options belong to bench/run.py
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["demo", *argv]  # `annx --n 1000` is the demo with options
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["demo"])
    run = {"build": _build, "search": _search, "info": _info, "demo": _demo}.get(args.command)
    if args.command == "bench":  # only reached with -h, which argparse answers first
        return _bench(argv[1:])
    if run is None:  # config
        import annx

        annx.show_config()
        return 0
    import annx

    try:
        return run(args)
    except UsageError as exc:
        print(f"annx {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (annx.AnnxError, ValueError, OSError, ImportError, KeyError) as exc:
        print(f"annx {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        text = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    return text


if __name__ == "__main__":
    sys.exit(main())
