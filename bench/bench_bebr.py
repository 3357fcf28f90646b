"""Binary codes (BIN / BEBR<L>): Hamming scan vs faiss IndexBinaryFlat, recall vs bits,
BEBR with re-ranking vs exact float32 search, and SDC vs ADC on the same codes.

Usage:
    python bench/bench_bebr.py [--data FILE.hdf5] [--nq 1000] [--repeats 3] [--md out.md]

Default data: ``../shared/data/minilm-100000-384-angular.hdf5`` (cosine). One search
thread (``annx.set_num_threads(1)``, faiss ``omp_set_num_threads(1)``), builds on 2.
Every timing is the median of ``--repeats`` batches of ``--nq`` queries, k = 10.

1. Memory bandwidth: a numpy streaming read (sum over a 1 GiB float32 array).
2. One-bit scan: faiss ``IndexBinaryFlat`` over sign codes (48 bytes per vector at
   d = 384) against annx ``Flat,BIN`` (SDC: the same sign bits plus a scale and a norm),
   codes/s and bytes/s as a fraction of (1).
3. ``Flat`` with each binary codec: recall@10 and q/s against bits per dimension and
   bytes per vector; ``Flat`` float32 is the baseline of the ratios.
4. ``Flat,<codec>,Refine(F32)``, ``HNSW32,<codec>,Refine(F32)`` and
   ``IVF1024,<codec>,Refine(F32)`` swept over rerank x ef_search / nprobe: the fastest
   setting at recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import annx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hnsw import DEFAULT_DATA, load_data  # noqa: E402
from bench_hnsw import median_seconds as med  # noqa: E402


def recall(I: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([len(set(gt[i]) & set(I[i])) / 10 for i in range(len(gt))]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--md", default=None)
    args = ap.parse_args()
    data = load_data(args.data, args.nq)
    x, q, gt = data.train, data.test, data.neighbors[:, :10]
    n, d, nq = len(x), data.d, len(q)
    md = [f"# Binary codes on {Path(args.data).name}\n"]
    md.append(
        f"Machine: {annx.config()['cpu']}, annx {annx.__version__}, ISA {annx.get_isa()}; "
        f"search 1 thread, build 2; {n:,} x {d}, {nq} queries, k = 10, median of "
        f"{args.repeats}.\n"
    )

    # 1. bandwidth
    big = np.ones(1 << 28, np.float32)
    bw = big.nbytes / med(big.sum, args.repeats) / 1e9
    big = None
    md.append(
        f"## 1. Memory bandwidth\n\nnumpy streaming read (sum of 1 GiB): **{bw:.1f} GB/s**.\n"
    )

    # 2. one-bit scan
    md.append("## 2. One-bit scan\n")
    md.append("| method | bytes/vector | q/s | codes/s | GB/s read | of bandwidth | recall@10 |")
    md.append("|---|---:|---:|---:|---:|---:|---:|")
    annx.set_num_threads(1)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
        xb = np.packbits(x > 0, axis=1)
        qb = np.packbits(q > 0, axis=1)
        fi = faiss.IndexBinaryFlat(d)
        fi.add(xb)
        t = med(lambda: fi.search(qb, 10), args.repeats)
        _, I = fi.search(qb, 10)
        cs = xb.shape[1]
        md.append(
            f"| faiss IndexBinaryFlat (Hamming) | {cs} | {nq / t:,.0f} | "
            f"{n * nq / t / 1e6:,.0f} M "
            f"| {n * nq * cs / t / 1e9:.1f} | {n * nq * cs / t / 1e9 / bw:.0%} | "
            f"{recall(I, gt):.3f} |"
        )
    except ImportError:
        md.append("| faiss-cpu not installed | | | | | | |")
    fb = annx.index_factory(d, "Flat,BIN", metric=data.metric)
    annx.set_num_threads(2)
    fb.add(x)
    annx.set_num_threads(1)
    t = med(lambda: fb.search(q, 10), args.repeats)
    _, I = fb.search(q, 10)
    cs = fb.bytes_per_vector - 8
    md.append(
        f"| annx Flat,BIN (SDC) | {cs:.0f} | {nq / t:,.0f} | {n * nq / t / 1e6:,.0f} M "
        f"| {n * nq * cs / t / 1e9:.1f} | {n * nq * cs / t / 1e9 / bw:.0%} | {recall(I, gt):.3f} |"
    )
    md.append("")

    # 3. Flat with each codec
    md.append("## 3. Flat scan: recall against bits\n")
    md.append("| spec | bits/dim | bytes/vector | recall@10 | q/s | vs Flat F32 |")
    md.append("|---|---:|---:|---:|---:|---:|")
    flat = annx.index_factory(d, "Flat", metric=data.metric)
    flat.add(x)
    t_flat = med(lambda: flat.search(q, 10), args.repeats)
    flat_qps = nq / t_flat
    md.append(
        f"| Flat (F32) | 32 | {flat.bytes_per_vector:,.0f} | 1.000 | {flat_qps:,.0f} | 1.00x |"
    )
    for spec, bits in (
        ("Flat,BIN", 1),
        ("Flat,BIN_adc", 1),
        ("Flat,BEBR2", 2),
        ("Flat,BEBR2_adc", 2),
        ("Flat,BEBR4", 4),
        ("Flat,BEBR4_adc", 4),
    ):
        idx = annx.index_factory(d, spec, metric=data.metric)
        idx.add(x)
        qq = q[: max(100, nq // 10)] if "BEBR4" in spec and "adc" not in spec else q
        t = med(lambda idx=idx, qq=qq: idx.search(qq, 10), max(1, args.repeats - 2))
        _, I = idx.search(q, 10)
        qps = len(qq) / t
        md.append(
            f"| {spec} | {bits} | {idx.bytes_per_vector:,.0f} | {recall(I, gt):.3f} | "
            f"{qps:,.0f} | {qps / flat_qps:.2f}x |"
        )
        print(md[-1], flush=True)
    md.append("")

    # 4. with re-ranking
    md.append("## 4. With re-ranking: fastest setting at recall@10 >= 0.95\n")
    md.append("| spec | build s | bytes/vector | setting | recall@10 | q/s | vs Flat F32 |")
    md.append("|---|---:|---:|---|---:|---:|---:|")
    configs = [
        ("Flat,BIN,Refine(F32)", "flat"),
        ("Flat,BEBR2,Refine(F32)", "flat"),
        ("HNSW32,BIN,Refine(F32)", "ef"),
        ("HNSW32,BEBR2,Refine(F32)", "ef"),
        ("HNSW32,BEBR2_adc,Refine(F32)", "ef"),
        ("HNSW32,BEBR4,Refine(F32)", "ef"),
        ("IVF1024,BEBR2,Refine(F32)", "nprobe"),
        ("IVF1024,BEBR4,Refine(F32)", "nprobe"),
        ("IVF1024,BEBR4_adc,Refine(F32)", "nprobe"),
    ]
    for spec, knob in configs:
        idx = annx.index_factory(d, spec, metric=data.metric)
        annx.set_num_threads(2)
        t0 = time.perf_counter()
        if not idx.is_trained:
            idx.train(x[np.random.default_rng(0).choice(n, min(n, 65536), replace=False)])
        idx.add(x)
        build = time.perf_counter() - t0
        annx.set_num_threads(1)
        best = None
        values = {"ef": (16, 32, 64, 128, 256), "nprobe": (4, 8, 16, 32, 64), "flat": (0,)}[knob]
        for v in values:
            for rr in (20, 50, 100, 200):
                kw = {"ef": {"ef_search": max(v, rr)}, "nprobe": {"nprobe": v}, "flat": {}}[knob]
                kw["rerank"] = rr
                _, I = idx.search(q, 10, **kw)
                r = recall(I, gt)
                if r < 0.95:
                    continue
                t = med(lambda kw=kw, idx=idx: idx.search(q, 10, **kw), args.repeats)
                if best is None or nq / t > best[0]:
                    best = (nq / t, r, kw)
        if best is None:
            md.append(f"| {spec} | {build:.1f} | {idx.bytes_per_vector:,.0f} | not reached | | | |")
        else:
            qps, r, kw = best
            setting = ", ".join(f"{k} {v}" for k, v in kw.items())
            md.append(
                f"| {spec} | {build:.1f} | {idx.bytes_per_vector:,.0f} | {setting} | {r:.3f} | "
                f"{qps:,.0f} | **{qps / flat_qps:.1f}x** |"
            )
        print(md[-1], flush=True)
        del idx
    md.append("")
    md.append(
        f"Command: `PYTHONPATH=python python bench/bench_bebr.py --md {args.md or 'OUT.md'}`."
    )
    text = "\n".join(md) + "\n"
    print(text)
    if args.md:
        Path(args.md).write_text(text)


if __name__ == "__main__":
    main()
