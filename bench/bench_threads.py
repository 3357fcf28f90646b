"""Thread scaling of annx on one machine: build and search at 1, 2, 4, 8 and 16 threads.

Usage:
    python bench/bench_threads.py --data FILE.hdf5 [--n 40000] [--nq 1000] [--out scale.md]
    python bench/bench_threads.py --x x.npy --q q.npy      # the same vectors as .npy files

Measures HNSW32 build and search (ef 64), N Python threads searching concurrently with
one annx thread each (the GIL is released), exact Flat search, IVF-PQ fast-scan with
re-ranking, FDE encoding and exact Chamfer (synthetic token sets). Cosine metric; the
first --n base vectors and --nq queries of an ann-benchmarks HDF5 file (default: the
shared MiniLM-100k set). Each search timing is the median of 3 batches.
"""

import argparse
import os
import statistics
import threading
import time

import numpy as np

import annx

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument(
    "--data",
    default=os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "data", "minilm-100000-384-angular.hdf5"
    ),
)
ap.add_argument("--x", default=None)
ap.add_argument("--q", default=None)
ap.add_argument("--n", type=int, default=40000)
ap.add_argument("--nq", type=int, default=1000)
ap.add_argument("--out", default=None)
args = ap.parse_args()
if args.x:
    x = np.load(args.x)[: args.n].astype(np.float32)
    q = np.load(args.q)[: args.nq].astype(np.float32)
else:
    import h5py

    with h5py.File(args.data, "r") as f:
        x = f["train"][: args.n].astype(np.float32)
        q = f["test"][: args.nq].astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
q /= np.linalg.norm(q, axis=1, keepdims=True)
annx.show_config()
print("cpus", os.cpu_count(), "sched", len(os.sched_getaffinity(0)), flush=True)
THREADS = [1, 2, 4, 8, 16]
res = {}


def med(fn, r=3):
    ts = []
    for _ in range(r):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


flat = annx.index_factory(384, "Flat", metric="cos")
flat.add(x)
_, gt = flat.search(q, 10)


def rec(I):
    return float(np.mean([len(set(gt[i]) & set(I[i])) / 10 for i in range(len(q))]))


rows = []
# HNSW build + search
for t in THREADS:
    annx.set_num_threads(t)
    idx = annx.index_factory(384, "HNSW32", metric="cos")
    t0 = time.perf_counter()
    idx.add(x)
    b = time.perf_counter() - t0
    s = med(lambda: idx.search(q, 10, ef_search=64, threads=t))
    _, I = idx.search(q, 10, ef_search=64)
    rows.append(("HNSW32 build 40k (s)", t, b))
    rows.append(("HNSW32 search ef64 (q/s)", t, len(q) / s))
    print(f"hnsw t={t} build={b:.2f}s qps={len(q) / s:.0f} recall={rec(I):.3f}", flush=True)
    if t == 16:
        hnsw16 = idx
# concurrent Python threads, each single-threaded search (GIL released)
annx.set_num_threads(1)
for nth in (1, 4, 16):

    def work():
        for _ in range(3):
            hnsw16.search(q[:250], 10, ef_search=64, threads=1)

    ths = [threading.Thread(target=work) for _ in range(nth)]
    t0 = time.perf_counter()
    [h.start() for h in ths]
    [h.join() for h in ths]
    el = time.perf_counter() - t0
    rows.append(("HNSW32 search, N Python threads x 1 (q/s)", nth, nth * 750 / el))
    print(f"pythreads={nth} qps={nth * 750 / el:.0f}", flush=True)
# Flat and IVF-PQ fast-scan search
ivf = annx.index_factory(384, "IVF256,PQ96x4fs,Refine(F32)", metric="cos")
annx.set_num_threads(16)
ivf.train(x)
ivf.add(x)
for t in THREADS:
    annx.set_num_threads(t)
    s = med(lambda: flat.search(q, 10, threads=t))
    rows.append(("Flat exact search (q/s)", t, len(q) / s))
    s2 = med(lambda: ivf.search(q, 10, nprobe=16, threads=t))
    rows.append(("IVF256,PQ96x4fs,Refine search np16 (q/s)", t, len(q) / s2))
    print(f"flat t={t} qps={len(q) / s:.0f}  ivfpq qps={len(q) / s2:.0f}", flush=True)
# MUVERA: FDE encoding and exact Chamfer on synthetic token sets (5,000 docs x 12 tokens)
rng = np.random.default_rng(0)
tok = rng.standard_normal((60000, 384)).astype(np.float32)
tok /= np.linalg.norm(tok, axis=1, keepdims=True)
off = np.arange(0, 60001, 12, dtype=np.int64)
qt = tok[:2700].copy()
qo = np.arange(0, 2701, 9, dtype=np.int64)
fde = annx.FDE()
for t in THREADS:
    s = med(lambda: fde.encode_docs((tok, off), threads=t), 2)
    s2 = med(lambda: annx.chamfer((qt[:900], qo[:101]), (tok, off), threads=t), 2)
    rows.append(("FDE encode docs (docs/s)", t, 5000 / s))
    rows.append(("exact Chamfer, 100 queries x 5,000 docs (q/s)", t, 100 / s2))
    print(f"fde t={t} docs/s={5000 / s:.0f} chamfer qps={100 / s2:.1f}", flush=True)

names = list(dict.fromkeys(r[0] for r in rows))
out = [
    "| measurement | " + " | ".join(f"{t} thr" for t in THREADS) + " | 16 thr / 1 thr |",
    "|---|" + "---:|" * (len(THREADS) + 1),
]
for n in names:
    vals = {t: v for (m, t, v) in rows if m == n}
    cells = [f"{vals[t]:,.2f}" if t in vals else "-" for t in THREADS]
    ks = sorted(vals)
    ratio = vals[ks[-1]] / vals[ks[0]] if "build" not in n else vals[ks[0]] / vals[ks[-1]]
    out.append(f"| {n} | " + " | ".join(cells) + f" | {ratio:.1f}x |")
text = "\n".join(out)
print(text)
if args.out:
    with open(args.out, "w") as fh:
        fh.write(text + "\n")
