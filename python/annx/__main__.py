"""Command line: ``python -m annx`` (or ``annx``) runs the demo; ``annx info FILE``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


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


def _info(args: argparse.Namespace) -> int:
    import annx

    for key, value in annx.read_info(args.path).items():
        print(f"{key:>14}: {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``annx`` command."""
    parser = argparse.ArgumentParser(prog="annx", description=__doc__)
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
    info = sub.add_parser("info", help="print the header facts of an index file")
    info.add_argument("path")
    sub.add_parser("config", help="print version, compiler, ISA and threads")
    args = parser.parse_args(argv)
    if args.command == "info":
        return _info(args)
    if args.command == "config":
        import annx

        annx.show_config()
        return 0
    if args.command is None:
        args = parser.parse_args(["demo", *(argv or [])])
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
