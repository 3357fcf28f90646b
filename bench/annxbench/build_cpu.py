"""CPU seconds of one one-thread ``HNSW32`` build (``index.add`` timed with
``time.process_time()``, less sensitive to a shared machine's load than wall time), for
A/B runs of two annx packages in alternating processes.

Usage::

    python bench/annxbench/build_cpu.py PKG_DIR SET N METRIC [SPEC]   # data: ANNX_SHARED_DATA
                                                                      # or ../shared/data
    # e.g. for p in /tmp/before /tmp/after; do python ... $p glove6b-100000-50-dot 30000 ip; done
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, sys.argv[1])

import h5py  # noqa: E402

import annx  # noqa: E402


def main() -> None:
    name, n, metric = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    spec = sys.argv[5] if len(sys.argv) > 5 else "HNSW32"
    data = Path(os.environ.get("ANNX_SHARED_DATA") or ROOT.parent / "shared" / "data")
    with h5py.File(data / f"{name}.hdf5", "r") as f:
        xb = f["train"][:n]
    idx = annx.index_factory(xb.shape[1], spec, metric, ef_construction=200, seed=0)
    if not idx.is_trained:
        idx.train(xb)
    t = time.process_time()
    idx.add(xb, threads=1)
    print(f"{sys.argv[1]} {name} {n} {spec}: cpu {time.process_time() - t:.2f} s")


if __name__ == "__main__":
    main()
