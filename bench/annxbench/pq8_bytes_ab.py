"""IVF 8-bit PQ: the byte-sum scan against the float scan, in one process.

The same index searched with ``annx.set_isa("avx512")`` (float sums of every code) and
``annx.set_isa("avx512_icl")`` (byte-table sums first, float sums only for the codes that
can still win), alternating, ``--repeats`` times per nprobe; q/s from process CPU time
(robust to other load), the ratio as median [min-max] of the paired repeats, and whether
the two returned the same ids (they must). Needs a CPU with the avx512_icl level.

Usage:
    PYTHONPATH=python python -m annxbench.pq8_bytes_ab DATA.hdf5 "IVF1024,PQ48" 1,4,16
        [--n 50000] [--nq 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import annx

from . import datasets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("spec")
    ap.add_argument("nprobes", help="comma list, e.g. 1,4,16")
    ap.add_argument("--n", type=int, default=None, help="keep the first N base vectors")
    ap.add_argument("--nq", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if "avx512_icl" not in annx.available_isas():
        raise SystemExit("this CPU has no avx512_icl level (the byte-sum kernel)")
    ds = datasets.load(args.data, nq=args.nq)
    x = ds.train[: args.n] if args.n else ds.train
    annx.set_num_threads(1)
    index = annx.index_factory(ds.d, args.spec, metric=ds.metric)
    index.train(x)
    index.add(x)
    before = annx.get_isa()
    try:
        for nprobe in (int(p) for p in args.nprobes.split(",")):
            secs: dict[str, list[float]] = {"avx512": [], "avx512_icl": []}
            ids = {}
            for r in range(args.repeats):
                order = ("avx512", "avx512_icl") if r % 2 == 0 else ("avx512_icl", "avx512")
                for isa in order:
                    annx.set_isa(isa)
                    t = time.process_time()
                    _, ids[isa] = index.search(ds.test, 10, nprobe=nprobe)
                    secs[isa].append(time.process_time() - t)
            ratios = sorted(a / b for a, b in zip(secs["avx512"], secs["avx512_icl"], strict=True))
            nq = len(ds.test)
            print(
                f"{args.spec} nprobe={nprobe}: float {nq / statistics.median(secs['avx512']):,.0f}"
                f" q/s, bytes {nq / statistics.median(secs['avx512_icl']):,.0f} q/s, "
                f"x{statistics.median(ratios):.2f} [{ratios[0]:.2f}-{ratios[-1]:.2f}], "
                f"same ids: {np.array_equal(ids['avx512'], ids['avx512_icl'])}",
                flush=True,
            )
    finally:
        annx.set_isa(before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
