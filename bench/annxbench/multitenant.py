"""Multi-tenant search benchmark: annx.MultiTenantIndex against what a user can do today.

Run from ``bench/``::

    python -m annxbench.multitenant --dataset minilm-50k --layout topical
    python -m annxbench.multitenant --quick          # a small smoke run

Tenant layouts follow the Curator paper's setting: hundreds of tenants whose sizes are
spread over two orders of magnitude (log-uniform between ``--min-share`` and
``--max-share`` of the vectors), with vectors shared by several tenants.

- ``uniform``: each tenant's vectors are a uniform random subset (no locality at all:
  the hardest case for a shared tree).
- ``topical``: each tenant draws 80 % of its vectors from a few k-means regions of the
  data (a customer's documents are about a few topics) and 20 % at random.

Methods (single thread, one call per tenant with that tenant's queries):

- ``MultiTenant``: ``annx.MultiTenantIndex``, swept over ``ef_search``.
- ``HNSW32+filter``: one ``annx`` HNSW32 over all vectors, ``filter=`` the tenant's ids
  (a precomputed id array or boolean mask, whichever calibrated faster).
- ``Flat+filter``: ``annx`` Flat with ``filter=`` (exact).
- ``HNSW32/tenant``: one ``annx`` HNSW32 per tenant (memory = the sum).
- ``faiss IVF+sel``: ``faiss.IndexIVFFlat`` with an ``IDSelectorBitmap`` per tenant,
  swept over ``nprobe``.

For each tenant-size group every method is calibrated once (the cheapest parameter
reaching recall@10 >= the target), then timed: repetitions x groups x methods, each
method timed back to back with the others at every repetition (interleaved), and the
medians reported with their range. Results go to ``results/multitenant-<dataset>-<layout>.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from threadpoolctl import threadpool_limits

import annx

_HERE = Path(__file__).resolve()
DATA = next(
    (
        p
        for p in (
            Path(os.environ.get("ANNX_SHARED_DATA", "/nonexistent")),
            _HERE.parents[3] / "shared" / "data",
            _HERE.parents[4] / "shared" / "data",
        )
        if p.is_dir()
    ),
    _HERE.parents[3] / "shared" / "data",
)
RESULTS = Path(__file__).resolve().parents[1] / "results"

DATASETS = {
    # name: (file, rows used, metric)
    "minilm-50k": ("minilm-100000-384-angular.hdf5", 50_000, "cos"),
    "minilm-100k": ("minilm-100000-384-angular.hdf5", 100_000, "cos"),
    "glove-100k-l2": ("glove6b-200000-50-euclidean.hdf5", 100_000, "l2"),
    "glove-50k": ("glove6b-50000-50-angular.hdf5", 50_000, "cos"),
    "glove-dot-100k": ("glove6b-100000-50-dot.hdf5", 100_000, "ip"),
}
GROUPS = [("small (<1%)", 0.0, 0.01), ("medium (1-5%)", 0.01, 0.05), ("large (>5%)", 0.05, 1.0)]
MT_EF = [16, 32, 64, 128, 192, 256, 384, 512, 640, 768, 896, 1024, 1280, 1536, 2048, 3072, 4096]
HNSW_EF = [16, 32, 64, 128, 256, 512, 1024]
NPROBE = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def load(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    file, n, metric = DATASETS[name]
    with h5py.File(DATA / file, "r") as f:
        x = np.ascontiguousarray(f["train"][:n], dtype=np.float32)
        q = np.ascontiguousarray(f["test"][:], dtype=np.float32)
    return x, q, metric


def make_layout(
    x: np.ndarray, layout: str, ntenants: int, lo: float, hi: float, seed: int
) -> list[np.ndarray]:
    """Sorted member ids of each tenant."""
    g = np.random.default_rng(seed)
    n = len(x)
    shares = np.exp(g.uniform(np.log(lo), np.log(hi), ntenants))
    sizes = np.maximum(10, (shares * n).astype(int))
    if layout == "uniform":
        return [np.sort(g.choice(n, size=s, replace=False)).astype(np.int64) for s in sizes]
    # topical: 64 k-means regions of the data; a tenant picks 1-4 of them.
    km = annx.KMeans(x.shape[1], 64, niter=10, seed=seed)
    km.train(x[g.choice(n, size=min(n, 20_000), replace=False)])
    region = km.assign(x)[1]
    by_region = [np.flatnonzero(region == r) for r in range(64)]
    out = []
    for s in sizes:
        regs = g.choice(64, size=int(g.integers(1, 5)), replace=False)
        pool = np.concatenate([by_region[r] for r in regs])
        topical = g.choice(pool, size=min(len(pool), int(0.8 * s)), replace=False)
        rest = g.choice(n, size=s - len(topical), replace=False)
        out.append(np.unique(np.concatenate([topical, rest])).astype(np.int64))
    return out


def exact(x: np.ndarray, q: np.ndarray, members: np.ndarray, k: int, metric: str) -> np.ndarray:
    xs = x[members].astype(np.float64)
    q64 = q.astype(np.float64)
    if metric == "cos":
        xs /= np.linalg.norm(xs, axis=1, keepdims=True)
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
    if metric == "l2":
        key = (q64**2).sum(1)[:, None] + (xs**2).sum(1)[None] - 2 * q64 @ xs.T
    else:
        key = -(q64 @ xs.T)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    return members[order]


def recall(I: np.ndarray, gt: np.ndarray) -> float:
    return float(
        np.mean(
            [len(set(a.tolist()) & set(b.tolist())) / len(b) for a, b in zip(I, gt, strict=False)]
        )
    )


@dataclass
class Group:
    name: str
    tenants: list[int]
    queries: list[np.ndarray]  # per tenant
    gt: list[np.ndarray]  # per tenant
    sizes: list[int] = field(default_factory=list)


@dataclass
class Method:
    name: str
    params: list[Any]
    # run(group, param) -> list of I per tenant
    run: Callable[[Group, Any], list[np.ndarray]]
    memory: int
    build_s: float
    chosen: dict[str, Any] = field(default_factory=dict)
    recall_at: dict[str, float] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)


def group_recall(group: Group, res: list[np.ndarray]) -> float:
    return float(np.mean([recall(I, gt) for I, gt in zip(res, group.gt, strict=False)]))


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="minilm-50k", choices=sorted(DATASETS))
    ap.add_argument("--layout", default="topical", choices=["topical", "uniform"])
    ap.add_argument("--tenants", type=int, default=200)
    ap.add_argument("--min-share", type=float, default=0.001)
    ap.add_argument("--max-share", type=float, default=0.1)
    ap.add_argument("--per-group", type=int, default=8, help="tenants measured per group")
    ap.add_argument("--queries", type=int, default=25, help="queries per measured tenant")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma-separated methods to leave out")
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.quick:
        a.tenants, a.per_group, a.queries, a.repeats = 60, 3, 10, 2
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    args = argv if argv is not None else sys.argv[1:]
    command = "python -m annxbench.multitenant " + " ".join(args)

    x, qs, metric = load(a.dataset)
    if a.quick:
        x = x[:10_000]
    n, d = x.shape
    members = make_layout(x, a.layout, a.tenants, a.min_share, a.max_share, a.seed)
    lists: list[list[int]] = [[] for _ in range(n)]
    for t, m in enumerate(members):
        for i in m.tolist():
            lists[i].append(t)
    g = np.random.default_rng(a.seed + 1)
    groups = []
    for gname, lo, hi in GROUPS:
        cand = [t for t, m in enumerate(members) if lo * n <= len(m) < hi * n]
        pick = sorted(g.choice(cand, size=min(a.per_group, len(cand)), replace=False).tolist())
        qq = [qs[g.choice(len(qs), size=a.queries, replace=False)] for _ in pick]
        gt = [exact(x, q, members[t], a.k, metric) for t, q in zip(pick, qq, strict=False)]
        groups.append(Group(gname, pick, qq, gt, [len(members[t]) for t in pick]))
    print(f"{a.dataset}: n={n} d={d} metric={metric} layout={a.layout} tenants={a.tenants} "
          f"grants={sum(map(len, members))} ({sum(map(len, members)) / n:.2f} per vector)",
          flush=True)  # fmt: skip

    annx.set_num_threads(a.build_threads)
    methods: list[Method] = []
    k = a.k

    # annx MultiTenantIndex
    t0 = time.perf_counter()
    mt = annx.MultiTenantIndex(d, metric)
    mt.train(x)
    mt.add(x, tenants=lists)
    mt_build = time.perf_counter() - t0
    methods.append(Method(
        "MultiTenant", MT_EF,
        lambda G, ef: [mt.search(q, k, tenant=t, ef_search=ef, threads=1)[1]
                       for t, q in zip(G.tenants, G.queries, strict=False)],
        mt.memory_usage(), mt_build,
    ))  # fmt: skip
    print(f"MultiTenant built in {mt_build:.1f}s, {mt.memory_usage() / 2**20:.1f} MiB, "
          f"tree {mt.tree_shape}", flush=True)  # fmt: skip

    masks = {}
    for G in groups:
        for t in G.tenants:
            mk = np.zeros(n, bool)
            mk[members[t]] = True
            masks[t] = mk

    def filtered(index: annx.Index, use_mask: bool, **kw: Any) -> Callable[[Group, Any], list]:
        def run(G: Group, ef: Any) -> list[np.ndarray]:
            extra = dict(kw)
            if ef is not None:
                extra["ef_search"] = ef
            return [
                index.search(q, k, filter=masks[t] if use_mask else members[t], threads=1,
                             **extra)[1]
                for t, q in zip(G.tenants, G.queries, strict=False)
            ]  # fmt: skip

        return run

    def fastest_filter(index: annx.Index, ef: Any) -> bool:
        """True when a mask filter beats an id-array filter on this index."""
        G = groups[-1]
        best = {}
        for use_mask in (False, True):
            run = filtered(index, use_mask)
            run(G, ef)
            best[use_mask] = min(timed(lambda: run(G, ef)) for _ in range(3))
        return best[True] < best[False]

    hnsw_mem = None
    if "HNSW32+filter" not in skip or True:  # the memory reference: always built
        cache = Path(os.environ.get("ANNX_BENCH_CACHE", "/tmp/annxbench-cache"))
        cached = cache / f"multitenant-{a.dataset}-{n}-hnsw32.annx"
        t0 = time.perf_counter()
        if cached.exists():
            hnsw = annx.load(cached)
            hb = float("nan")  # loaded from the cache: build time unknown here
        else:
            hnsw = annx.index_factory(d, "HNSW32", metric)
            hnsw.add(x)
            hb = time.perf_counter() - t0
            cache.mkdir(parents=True, exist_ok=True)
            hnsw.save(cached)
        hnsw_mem = hnsw.memory_usage()
        print(f"HNSW32 built in {hb:.1f}s, {hnsw_mem / 2**20:.1f} MiB", flush=True)
        if "HNSW32+filter" not in skip:
            um = fastest_filter(hnsw, 64)
            m = Method(f"HNSW32+filter ({'mask' if um else 'ids'})", HNSW_EF,
                       filtered(hnsw, um), hnsw_mem, hb)  # fmt: skip
            methods.append(m)
    if "Flat+filter" not in skip:
        t0 = time.perf_counter()
        flat = annx.index_factory(d, "Flat", metric)
        flat.add(x)
        fb = time.perf_counter() - t0
        um = fastest_filter(flat, None)
        fr = filtered(flat, um)
        methods.append(Method(f"Flat+filter ({'mask' if um else 'ids'})", [None],
                              lambda G, _p: fr(G, None), flat.memory_usage(), fb))  # fmt: skip
    if "HNSW32/tenant" not in skip:
        # Only the measured tenants get an index (building all of them would take several
        # times the shared index's build); the memory of all of them is extrapolated from
        # these: their bytes per vector times every (vector, tenant) pair.
        t0 = time.perf_counter()
        per: dict[int, annx.Index] = {}
        built_mem = built_n = 0
        built_from_cache = False
        cache = Path(os.environ.get("ANNX_BENCH_CACHE", "/tmp/annxbench-cache"))
        key = f"{a.dataset}-{n}-{a.layout}-{a.tenants}-{a.min_share}-{a.max_share}-{a.seed}"
        for G in groups:
            for t in G.tenants:
                cached = cache / f"multitenant-{key}-tenant{t}-hnsw32.annx"
                if cached.exists():
                    ix = annx.load(cached)
                    built_from_cache = True
                else:
                    ix = annx.index_factory(d, "HNSW32", metric)
                    ix.add(x[members[t]], ids=members[t])
                    cache.mkdir(parents=True, exist_ok=True)
                    ix.save(cached)
                built_mem += ix.memory_usage()
                built_n += len(members[t])
                per[t] = ix
        pb = (time.perf_counter() - t0) * sum(map(len, members)) / built_n
        if built_from_cache:
            pb = float("nan")
        total_mem = int(built_mem / built_n * sum(map(len, members)))
        print(f"HNSW32 per tenant: {len(per)} built, all {a.tenants} estimated at "
              f"{total_mem / 2**20:.1f} MiB, {pb:.0f}s", flush=True)  # fmt: skip
        methods.append(Method(
            "HNSW32/tenant", HNSW_EF,
            lambda G, ef: [per[t].search(q, k, ef_search=ef, threads=1)[1]
                           for t, q in zip(G.tenants, G.queries, strict=False)],
            total_mem, pb,
        ))  # fmt: skip
    if "faiss" not in skip:
        try:
            import faiss
        except ImportError:
            faiss = None
            print("faiss not installed (pip install faiss-cpu): skipped", flush=True)
        if faiss is not None:
            faiss.omp_set_num_threads(a.build_threads)
            xf = x.copy()
            if metric == "cos":
                faiss.normalize_L2(xf)
            nlist = int(4 * np.sqrt(n))
            fm = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
            t0 = time.perf_counter()
            quant = faiss.IndexFlatL2(d) if metric == "l2" else faiss.IndexFlatIP(d)
            ivf = faiss.IndexIVFFlat(quant, d, nlist, fm)
            ivf.train(xf)
            ivf.add(xf)
            ib = time.perf_counter() - t0
            sels = {}
            for G in groups:
                for t in G.tenants:
                    bits = np.packbits(masks[t], bitorder="little")
                    sels[t] = (faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits)), bits)
            qn = {}
            for G in groups:
                for t, q in zip(G.tenants, G.queries, strict=False):
                    qq = q.copy()
                    if metric == "cos":
                        faiss.normalize_L2(qq)
                    qn[(t, id(q))] = qq

            def frun(G: Group, nprobe: int) -> list[np.ndarray]:
                out = []
                for t, q in zip(G.tenants, G.queries, strict=False):
                    p = faiss.SearchParametersIVF(sel=sels[t][0], nprobe=nprobe)
                    out.append(ivf.search(qn[(t, id(q))], k, params=p)[1])
                return out

            mem = len(faiss.serialize_index(ivf))
            methods.append(Method(f"faiss IVF{nlist}+sel", [p for p in NPROBE if p <= nlist],
                                  frun, mem, ib))  # fmt: skip

    # Calibrate: the cheapest parameter reaching the target, once per group and method.
    with threadpool_limits(1):
        if "faiss" not in skip:
            try:
                import faiss

                faiss.omp_set_num_threads(1)
            except ImportError:
                pass
        for M in methods:
            for G in groups:
                chosen, rec = None, 0.0
                for p in M.params:
                    rec = group_recall(G, M.run(G, p))
                    chosen = p
                    if rec >= a.target:
                        break
                M.chosen[G.name] = chosen
                M.recall_at[G.name] = rec
                print(f"  {M.name:28s} {G.name:14s} param={chosen} recall={rec:.3f}", flush=True)
        # Each measurement loops its group's calls for at least ~0.2 s (the small groups
        # take a few ms per pass, too short to time alone on a busy machine).
        loops = {}
        for G in groups:
            for M in methods:
                once = timed(lambda: M.run(G, M.chosen[G.name]))
                loops[(M.name, G.name)] = max(1, int(np.ceil(0.2 / max(once, 1e-6))))
        # Time: repetitions x groups x methods, interleaved.
        for r in range(a.repeats):
            for G in groups:
                for M in methods:
                    p = M.chosen[G.name]
                    nl = loops[(M.name, G.name)]
                    M.run(G, p)  # warm

                    def body(M: Method = M, G: Group = G, p: Any = p, nl: int = nl) -> None:
                        for _ in range(nl):
                            M.run(G, p)

                    M.times.setdefault(G.name, []).append(timed(body) / nl)
            print(f"  repeat {r + 1}/{a.repeats} done", flush=True)

    write_report(a, command, n, d, metric, members, groups, methods, hnsw_mem, mt)


def write_report(a: Any, command: str, n: int, d: int, metric: str, members: list[np.ndarray],
                 groups: list[Group], methods: list[Method], hnsw_mem: int | None,
                 mt: annx.MultiTenantIndex) -> None:  # fmt: skip
    nq = {G.name: sum(len(q) for q in G.queries) for G in groups}
    lines = [
        f"# Multi-tenant search: {a.dataset}, layout `{a.layout}`",
        "",
        f"Command: `cd bench && {command}`",
        "",
        f"annx {annx.__version__}, ISA {annx.get_isa()}, "
        f"{platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}. **The machine was shared with other agents "
        "and noisy** while this ran: every point was timed back to back with the other "
        f"methods at each of {a.repeats} repetitions (interleaved); medians with "
        "[min-max] are reported.",
        "",
        f"Data: n = {n:,}, d = {d}, metric `{metric}`; {a.tenants} tenants, sizes log-uniform "
        f"in [{a.min_share:.1%}, {a.max_share:.1%}] of n ({min(map(len, members)):,} to "
        f"{max(map(len, members)):,} vectors), {sum(map(len, members)) / n:.2f} tenants per "
        f"vector. Per group {a.per_group} tenants x {a.queries} queries (subsampled test "
        f"queries), k = {a.k}, single thread, one call per tenant. Parameter: the cheapest "
        f"reaching recall@{a.k} >= {a.target} on the group (ef_search, or nprobe for faiss; "
        "the last one tried when none does).",
        "",
        "| group | tenant sizes | method | param | recall | q/s median [min-max] "
        "| vs best filtered |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    filt = [M for M in methods if "+filter" in M.name]
    for G in groups:
        base_times = None
        if filt:
            # per repetition: the faster of the filtered baselines
            base_times = np.min([np.array(M.times[G.name]) for M in filt], axis=0)
        for M in methods:
            t = np.array(M.times[G.name])
            qps = nq[G.name] / t
            ratio = ""
            if base_times is not None:
                rr = base_times / t
                ratio = f"{np.median(rr):.2f}x [{rr.min():.2f}-{rr.max():.2f}]"
            spread = f"{np.median(qps):,.0f} [{qps.min():,.0f}-{qps.max():,.0f}]"
            lines.append(
                f"| {G.name} | {min(G.sizes):,}-{max(G.sizes):,} | {M.name} | "
                f"{M.chosen[G.name]} | {M.recall_at[G.name]:.3f} | {spread} | {ratio} |"
            )
    lines += [
        "",
        "| method | memory (MiB) | vs one HNSW32 | build (s, 2 threads) |",
        "|---|---:|---:|---:|",
    ]
    for M in methods:
        rel = f"{M.memory / hnsw_mem:.2f}x" if hnsw_mem else ""
        lines.append(f"| {M.name} | {M.memory / 2**20:.1f} | {rel} | {M.build_s:.1f} |")
    lines += [
        "",
        f"MultiTenant tree: {mt.tree_shape}; {mt.bytes_per_vector:.0f} bytes per vector "
        "(vector, id, leaf, tenant lists); build with "
        f"{a.build_threads} threads. faiss memory is its serialised size. HNSW32/tenant: "
        "only the measured tenants' indexes were built; memory and build time for all "
        "tenants are extrapolated from them (per vector). A build time of nan: the shared "
        "HNSW32 (or the per-tenant ones) came from the benchmark's cache.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(a.out) if a.out else RESULTS / f"multitenant-{a.dataset}-{a.layout}.md"
    if a.quick and not a.out:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
