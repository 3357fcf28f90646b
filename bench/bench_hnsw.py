"""Graph-index sweep: recall@10 vs queries/second, annx HNSW against its peers.

Usage:
    python bench/bench_hnsw.py [--data FILE.hdf5]
        [--algos annx-hnsw32,annx-hnsw16,...,hnswlib-m16,faiss-hnsw32,usearch-f32,svs-vamana]
        [--ef 10,16,24,32,48,64,96,128,192,256,384,512] [--k 10] [--build-threads 2]
        [--repeats 3] [--nq N] [--json out.jsonl] [--plot out.png] [--md out.md]

``--algos list`` prints the known configurations and exits. Peers are optional: a library
that is not installed, or a configuration that fails (e.g. an annx index type that is not
built yet), is reported with its error and skipped; the others still run.

Data: an ann-benchmarks HDF5 file (default ``../shared/data/minilm-100000-384-angular.hdf5``;
``glove6b-50000-50-angular.hdf5`` is a fast alternative). For ``angular`` files both base
vectors and queries are normalised to unit length and every library searches by inner
product / cosine (annx ``metric="cos"``, hnswlib ``space="cosine"``, faiss
``METRIC_INNER_PRODUCT``, usearch ``metric="cos"``, SVS ``DistanceType.MIP``); ``euclidean``
and ``dot`` files use each library's L2 / inner-product variant. Ground truth is the file's
``neighbors[:, :k]``; recall@k = mean over queries of |returned top-k & true top-k| / k.
``--nq N`` keeps only the first N queries.

Methodology, per configuration (configurations run one after another):

* Build once with ``--build-threads`` threads (2 by default) and time it (for annx indexes
  that need training, ``train()`` is part of the build time). Build parameters are fixed,
  following ``shared/design/peers.md``: hnswlib ``M`` 16/32, ``ef_construction=200``,
  ``random_seed=100``; faiss ``"HNSW32"`` with ``efConstruction=200``; usearch
  ``connectivity=16``, ``expansion_add=200`` (``dtype`` f32 or i8); SVS Vamana
  ``alpha=0.95`` (1.2 for L2), ``graph_max_degree=64``, ``window_size=128``; annx
  ``ef_construction=200``, ``seed=0``.
* Search with one thread (annx ``threads=1``, ``hnswlib.set_num_threads(1)``,
  ``faiss.omp_set_num_threads(1)``, usearch ``threads=1``, SVS ``index.num_threads = 1``),
  all queries in one batch call, sweeping the library's beam width: annx ``ef_search``,
  hnswlib ``set_ef``, faiss ``SearchParametersHNSW(efSearch=...)``, usearch
  ``expansion_search``, SVS ``search_window_size``. ef values below k are skipped (every
  library clamps them to k).
* One untimed warm-up batch at the smallest ef, then a first pass over the ef values in
  increasing order; the sweep stops after the first ef whose recall reaches
  ``--stop-recall`` (0.999) or whose speed falls below ``--min-qps`` (200 q/s). Then
  ``--repeats - 1`` further passes over the kept ef values (interleaved, so slow drifts of a
  shared VM hit every ef alike). Queries/second = nq / median batch time.
* Bytes per vector: annx ``idx.bytes_per_vector`` (reported by the index); usearch
  ``index.memory_usage / len(index)`` (reported; includes spare capacity and arena slack, so
  ``serialized_length / len(index)`` is logged beside it, and the SIMD kernel family usearch
  picked is shown after its version); faiss computed from the index's own arrays (``d*4``
  float32 storage + 4 B per neighbour slot actually allocated + 8 B offset + 4 B level);
  hnswlib ``index_file_size() / n`` (level-0 record ``d*4 + 2*M*4 + 4 + 8``, plus each
  element's upper-level link lists as built) plus 52 B of per-element in-memory
  bookkeeping (8 B link-list pointer, 4 B level, 40 B ``std::mutex``; the label hash map
  is not counted); SVS estimated as ``d*4`` float32 data + ``(graph_max_degree + 1) * 4`` B
  of fixed-width uint32 adjacency row.

Outputs: a progress log; a Markdown summary (printed, and written with ``--md``) giving per
configuration the build seconds, bytes/vector and queries/second at recall@k = 0.90, 0.95,
0.99, interpolated on the configuration's Pareto frontier (linear in recall, log in q/s;
where even the fastest point exceeds the target, that point's q/s; "-" where the target is
not reached), plus the ratio of the best annx configuration at 0.95 and 0.99 against each
peer, followed by the raw sweep points; one JSON line per (config, ef) appended to
``--json``; and a recall vs q/s plot (log y) written to ``--plot`` when matplotlib is
installed. The machine these numbers come from is small and shared: run
nothing else while timing and prefer ratios over absolute numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "minilm-100000-384-angular.hdf5"
)
DEFAULT_ALGOS = (
    "annx-hnsw32,annx-hnsw16,annx-hnsw32-sq8-refine,annx-hnsw32-f16,hnswlib-m16,hnswlib-m32,"
    "faiss-hnsw32,usearch-f32,usearch-i8,svs-vamana"
)
DEFAULT_EF = "10,16,24,32,48,64,96,128,192,256,384,512"
TARGETS = (0.90, 0.95, 0.99)
EF_CONSTRUCTION = 200


class Skip(Exception):
    """A configuration that cannot run here (library missing, metric unsupported)."""


# --------------------------------------------------------------------------- data


@dataclass
class Data:
    """Base vectors, queries and ground truth, already prepared for the metric."""

    name: str
    train: np.ndarray
    test: np.ndarray
    neighbors: np.ndarray
    metric: str  # annx name: "cos", "ip" or "l2"

    @property
    def d(self) -> int:
        return int(self.train.shape[1])


def load_data(path: str, nq: int | None) -> Data:
    """Read an ann-benchmarks HDF5 file (annx.datasets if importable, else h5py)."""
    try:
        from annx.datasets import load_hdf5
    except ImportError:
        load_hdf5 = None
    if load_hdf5 is not None:
        ds = load_hdf5(path, load_extra=False)
        train, test, neighbors, metric = ds.train, ds.test, ds.neighbors, ds.metric
    else:
        import h5py

        with h5py.File(path, "r") as f:
            train, test = f["train"][()], f["test"][()]
            neighbors = f["neighbors"][()] if "neighbors" in f else None
            distance = f.attrs["distance"]
        distance = distance.decode() if isinstance(distance, bytes) else str(distance)
        metric = {"angular": "cos", "euclidean": "l2", "dot": "ip", "ip": "ip"}.get(
            distance.lower(), distance
        )
    if metric not in ("cos", "ip", "l2"):
        raise SystemExit(f"{path}: metric {metric!r} is not a dense float metric")
    if neighbors is None:
        raise SystemExit(f"{path}: the file has no 'neighbors' (ground truth)")
    train = np.ascontiguousarray(train, dtype=np.float32)
    test = np.ascontiguousarray(test, dtype=np.float32)
    neighbors = np.asarray(neighbors, dtype=np.int64)
    if nq is not None:
        test, neighbors = test[:nq].copy(), neighbors[:nq]
    if metric == "cos":
        train /= np.linalg.norm(train, axis=1, keepdims=True)
        test /= np.linalg.norm(test, axis=1, keepdims=True)
    return Data(Path(path).stem, train, test, neighbors, metric)


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (the family scripts' timer)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def recall_at_k(ids: np.ndarray, gt: np.ndarray, k: int) -> float:
    """Mean fraction of the true top-k ids among the returned top-k (-1 never counts)."""
    hits = 0
    for row, true in zip(ids[:, :k], gt[:, :k]):
        hits += len(set(row[row >= 0].tolist()) & set(true.tolist()))
    return hits / (k * len(gt))


# --------------------------------------------------------------------------- adapters


class Adapter:
    """One index configuration of one library: build, set ef, search."""

    library = ""

    def __init__(self, name: str, metric: str, params: dict[str, Any]) -> None:
        self.name = name
        self.metric = metric
        self.params = params
        self.n = 0

    def version(self) -> str:
        return "?"

    def build(self, x: np.ndarray, threads: int) -> None:
        raise NotImplementedError

    def search(self, q: np.ndarray, k: int, ef: int) -> np.ndarray:
        """Return int64 ids [nq, k] (-1 for missing) using a single thread."""
        raise NotImplementedError

    def bytes_per_vector(self) -> tuple[float | None, str]:
        """(bytes, how it was obtained)."""
        return None, "unknown"


class AnnxAdapter(Adapter):
    library = "annx"

    def __init__(self, name: str, metric: str, spec: str) -> None:
        super().__init__(name, metric, {"spec": spec, "ef_construction": EF_CONSTRUCTION})
        try:
            import annx
        except ImportError as exc:
            raise Skip(f"annx is not importable: {exc}") from exc
        self.annx = annx
        self.index: Any = None

    def version(self) -> str:
        return self.annx.__version__

    def build(self, x: np.ndarray, threads: int) -> None:
        idx = self.annx.index_factory(
            x.shape[1],
            self.params["spec"],
            metric=self.metric,
            ef_construction=EF_CONSTRUCTION,
            seed=0,
        )
        self.annx.set_num_threads(threads)
        if not idx.is_trained:
            idx.train(x)
        idx.add(x)
        self.index, self.n = idx, len(x)

    def search(self, q: np.ndarray, k: int, ef: int) -> np.ndarray:
        return self.index.search(q, k, ef_search=ef, threads=1)[1]

    def bytes_per_vector(self) -> tuple[float | None, str]:
        return float(self.index.bytes_per_vector), "reported: idx.bytes_per_vector"


class HnswlibAdapter(Adapter):
    library = "hnswlib"

    def __init__(self, name: str, metric: str, m: int) -> None:
        space = {"cos": "cosine", "ip": "ip", "l2": "l2"}[metric]
        super().__init__(
            name,
            metric,
            {"M": m, "ef_construction": EF_CONSTRUCTION, "random_seed": 100, "space": space},
        )
        try:
            import hnswlib
        except ImportError as exc:
            raise Skip("hnswlib is not installed (pip install hnswlib)") from exc
        self.hnswlib = hnswlib
        self.index: Any = None

    def version(self) -> str:
        from importlib.metadata import version

        return version("hnswlib")

    def build(self, x: np.ndarray, threads: int) -> None:
        p = self.params
        idx = self.hnswlib.Index(space=p["space"], dim=x.shape[1])
        idx.init_index(
            max_elements=len(x),
            M=p["M"],
            ef_construction=p["ef_construction"],
            random_seed=p["random_seed"],
        )
        idx.add_items(x, np.arange(len(x)), num_threads=threads)
        idx.set_num_threads(1)
        self.index, self.n = idx, len(x)

    def search(self, q: np.ndarray, k: int, ef: int) -> np.ndarray:
        self.index.set_ef(ef)
        return self.index.knn_query(q, k=k)[0].astype(np.int64)

    def bytes_per_vector(self) -> tuple[float | None, str]:
        return (
            self.index.index_file_size() / self.n + 52,
            "index_file_size()/n + 52 B per-element pointer, level and mutex",
        )


class FaissAdapter(Adapter):
    library = "faiss"

    def __init__(self, name: str, metric: str, m: int) -> None:
        super().__init__(name, metric, {"factory": f"HNSW{m}", "efConstruction": EF_CONSTRUCTION})
        try:
            import faiss
        except ImportError as exc:
            raise Skip("faiss is not installed (pip install faiss-cpu)") from exc
        self.faiss = faiss
        self.index: Any = None

    def version(self) -> str:
        return self.faiss.__version__

    def build(self, x: np.ndarray, threads: int) -> None:
        faiss = self.faiss
        mt = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        idx = faiss.index_factory(x.shape[1], self.params["factory"], mt)
        idx.hnsw.efConstruction = self.params["efConstruction"]
        faiss.omp_set_num_threads(threads)
        idx.add(x)
        faiss.omp_set_num_threads(1)
        self.index, self.n = idx, len(x)

    def search(self, q: np.ndarray, k: int, ef: int) -> np.ndarray:
        self.faiss.omp_set_num_threads(1)
        params = self.faiss.SearchParametersHNSW(efSearch=ef)
        return self.index.search(q, k, params=params)[1]

    def bytes_per_vector(self) -> tuple[float | None, str]:
        h = self.index.hnsw
        total = self.n * self.index.d * 4 + h.neighbors.size() * 4
        total += h.offsets.size() * 8 + h.levels.size() * 4
        return total / self.n, "computed from faiss arrays (storage, neighbors, offsets, levels)"


class UsearchAdapter(Adapter):
    library = "usearch"

    def __init__(self, name: str, metric: str, dtype: str) -> None:
        if dtype == "i8" and metric != "cos":
            raise Skip("usearch i8 normalises vectors when casting: only meaningful for cosine")
        umetric = {"cos": "cos", "ip": "ip", "l2": "l2sq"}[metric]
        super().__init__(
            name,
            metric,
            {
                "metric": umetric,
                "dtype": dtype,
                "connectivity": 16,
                "expansion_add": EF_CONSTRUCTION,
            },
        )
        try:
            import usearch.index
        except ImportError as exc:
            raise Skip("usearch is not installed (pip install usearch)") from exc
        self.usearch = usearch
        self.index: Any = None

    def version(self) -> str:
        isa = getattr(self.index, "hardware_acceleration", None)
        return self.usearch.__version__ + (f" ({isa})" if isa else "")

    def build(self, x: np.ndarray, threads: int) -> None:
        p = self.params
        idx = self.usearch.index.Index(
            ndim=x.shape[1],
            metric=p["metric"],
            dtype=p["dtype"],
            connectivity=p["connectivity"],
            expansion_add=p["expansion_add"],
        )
        idx.add(np.arange(len(x)), x, threads=threads)
        self.index, self.n = idx, len(x)

    def search(self, q: np.ndarray, k: int, ef: int) -> np.ndarray:
        self.index.expansion_search = ef
        m = self.index.search(q, k, threads=1)
        ids = m.keys.astype(np.int64)
        ids[np.arange(k)[None, :] >= m.counts[:, None]] = -1
        return ids

    def bytes_per_vector(self) -> tuple[float | None, str]:
        n = len(self.index)
        ser = self.index.serialized_length / n
        return (
            self.index.memory_usage / n,
            f"reported: memory_usage / len(index); serialized {ser:.0f}",
        )


class SvsAdapter(Adapter):
    library = "svs"

    def __init__(self, name: str, metric: str) -> None:
        super().__init__(
            name,
            metric,
            {
                "alpha": 1.2 if metric == "l2" else 0.95,
                "graph_max_degree": 64,
                "window_size": 128,
                "distance": "L2" if metric == "l2" else "MIP",
            },
        )
        try:
            import svs
        except ImportError as exc:
            raise Skip("SVS is not installed (pip install scalable-vs)") from exc
        self.svs = svs
        self.index: Any = None

    def version(self) -> str:
        v = self.svs.library_version
        return v() if callable(v) else str(v)

    def build(self, x: np.ndarray, threads: int) -> None:
        svs, p = self.svs, self.params
        bp = svs.VamanaBuildParameters(
            alpha=p["alpha"], graph_max_degree=p["graph_max_degree"], window_size=p["window_size"]
        )
        dist = getattr(svs.DistanceType, p["distance"])
        idx = svs.Vamana.build(bp, x, dist, num_threads=threads)
        idx.num_threads = 1
        self.index, self.n = idx, len(x)

    def search(self, q: np.ndarray, k: int, ef: int) -> np.ndarray:
        self.index.search_window_size = ef
        return self.index.search(q, k)[0].astype(np.int64)  # SVS returns (I, D)

    def bytes_per_vector(self) -> tuple[float | None, str]:
        d = self.index.dimensions
        return (
            d * 4 + (self.params["graph_max_degree"] + 1) * 4,
            "estimate: d*4 data + (R+1)*4 adjacency row",
        )


ALGOS: dict[str, Callable[[str, str], Adapter]] = {
    "annx-hnsw32": lambda n, m: AnnxAdapter(n, m, "HNSW32"),
    "annx-hnsw16": lambda n, m: AnnxAdapter(n, m, "HNSW16"),
    "annx-hnsw32-sq8-refine": lambda n, m: AnnxAdapter(n, m, "HNSW32,SQ8,Refine(F32)"),
    "annx-hnsw32-f16": lambda n, m: AnnxAdapter(n, m, "HNSW32,F16"),
    "annx-hnsw32-bf16": lambda n, m: AnnxAdapter(n, m, "HNSW32,BF16"),
    "annx-hnsw32-sq8": lambda n, m: AnnxAdapter(n, m, "HNSW32,SQ8"),
    "hnswlib-m16": lambda n, m: HnswlibAdapter(n, m, 16),
    "hnswlib-m32": lambda n, m: HnswlibAdapter(n, m, 32),
    "faiss-hnsw32": lambda n, m: FaissAdapter(n, m, 32),
    "usearch-f32": lambda n, m: UsearchAdapter(n, m, "f32"),
    "usearch-i8": lambda n, m: UsearchAdapter(n, m, "i8"),
    "svs-vamana": lambda n, m: SvsAdapter(n, m),
}


# --------------------------------------------------------------------------- measuring


@dataclass
class Result:
    """One configuration's build and sweep."""

    name: str
    library: str
    version: str
    params: dict[str, Any]
    build_s: float
    bytes_per_vector: float | None
    bpv_source: str
    points: list[dict[str, Any]] = field(default_factory=list)  # ef, recall, qps, times

    @property
    def is_annx(self) -> bool:
        return self.library == "annx"


def sweep(
    ad: Adapter,
    data: Data,
    k: int,
    efs: list[int],
    repeats: int,
    stop_recall: float,
    min_qps: float,
) -> list[dict[str, Any]]:
    """Time one batch search per ef (median of ``repeats``), with early stop."""
    q, gt, nq = data.test, data.neighbors, len(data.test)
    ad.search(q, k, efs[0])  # warm-up
    times: dict[int, list[float]] = {}
    recalls: dict[int, float] = {}
    for ef in efs:
        t0 = time.perf_counter()
        ids = ad.search(q, k, ef)
        dt = time.perf_counter() - t0
        times[ef], recalls[ef] = [dt], recall_at_k(np.asarray(ids), gt, k)
        print(f"    ef={ef:<4} recall={recalls[ef]:.4f} q/s={nq / dt:,.0f}", flush=True)
        if recalls[ef] >= stop_recall or nq / dt < min_qps:
            break
    for _ in range(repeats - 1):
        for ef in times:
            t0 = time.perf_counter()
            ad.search(q, k, ef)
            times[ef].append(time.perf_counter() - t0)
    return [
        {
            "ef": ef,
            "recall": recalls[ef],
            "qps": nq / statistics.median(ts),
            "times_s": [round(t, 6) for t in ts],
        }
        for ef, ts in times.items()
    ]


def run_one(name: str, data: Data, args: argparse.Namespace, efs: list[int]) -> Result:
    ad = ALGOS[name](name, data.metric)
    print(f"== {name}: {ad.library} {ad.version()} {ad.params}", flush=True)
    t0 = time.perf_counter()
    ad.build(data.train, args.build_threads)
    build_s = time.perf_counter() - t0
    bpv, how = ad.bytes_per_vector()
    bpv_text = "?" if bpv is None else f"{bpv:.0f}"
    print(f"    build {build_s:.1f} s ({args.build_threads} threads), {bpv_text} B/vector ({how})")
    points = sweep(ad, data, args.k, efs, args.repeats, args.stop_recall, args.min_qps)
    return Result(name, ad.library, ad.version(), ad.params, build_s, bpv, how, points)


# --------------------------------------------------------------------------- analysis


def pareto(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other point beats on both recall and q/s, by increasing recall."""
    front: list[dict[str, Any]] = []
    best = -math.inf
    for p in sorted(points, key=lambda p: (-p["recall"], -p["qps"])):
        if p["qps"] > best:
            front.append(p)
            best = p["qps"]
    return front[::-1]


def qps_at(points: list[dict[str, Any]], target: float) -> float | None:
    """Queries/second at recall ``target`` on the Pareto frontier (None if not reached)."""
    front = [(p["recall"], p["qps"]) for p in pareto(points)]
    above = [p for p in front if p[0] >= target]
    if not above:
        return None
    hi = above[0]
    below = [p for p in front if p[0] < target]
    if not below:
        return hi[1]
    lo = below[-1]
    t = (target - lo[0]) / (hi[0] - lo[0])
    return math.exp(math.log(lo[1]) + t * (math.log(hi[1]) - math.log(lo[1])))


def fmt_qps(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def best_vs_peers(
    annx_runs: list[Any], peers: list[Any], targets: Any, peer_label: str
) -> list[str]:
    """Markdown lines: the best annx configuration at each recall target, then a table of
    each peer's q/s there and the best annx / peer ratio."""
    best: dict[float, tuple[str, float] | None] = {}
    for t in targets:
        valid = [(r.name, v) for r in annx_runs if (v := qps_at(r.points, t)) is not None]
        best[t] = max(valid, key=lambda c: c[1]) if valid else None
    names = ", ".join(
        f"@{t:.2f}: {b[0]} ({b[1]:,.0f} q/s)" if b else f"@{t:.2f}: none reached it"
        for t, b in best.items()
    )
    out = [f"Best annx configuration {names}.", ""]
    out.append(
        f"| {peer_label} | "
        + " | ".join(f"q/s @{t:.2f} | best annx / {peer_label.split()[0]} @{t:.2f}" for t in best)
        + " |"
    )
    out.append("|---|" + "---:|---:|" * len(best))
    for r in peers:
        cells = []
        for t, b in best.items():
            v = qps_at(r.points, t)
            ratio = "-" if v is None or b is None else f"{b[1] / v:.2f}"
            cells += [fmt_qps(v), ratio]
        out.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return out


def markdown(results: list[Result], header: list[str], k: int) -> str:
    out = [*header, ""]
    out.append(
        "| configuration | library | build s | bytes/vector | max recall | "
        + " | ".join(f"q/s @{t:.2f}" for t in TARGETS)
        + " |"
    )
    out.append("|---|---|---:|---:|---:|" + "---:|" * len(TARGETS))
    for r in results:
        bpv = "?" if r.bytes_per_vector is None else f"{r.bytes_per_vector:,.0f}"
        maxr = max(p["recall"] for p in r.points)
        out.append(
            f"| {r.name} | {r.library} {r.version} | {r.build_s:.1f} | {bpv} | {maxr:.4f} | "
            + " | ".join(fmt_qps(qps_at(r.points, t)) for t in TARGETS)
            + " |"
        )
    out.append("")
    annx_runs = [r for r in results if r.is_annx]
    peers = [r for r in results if not r.is_annx]
    if not annx_runs:
        out.append("No annx configuration ran, so there are no annx/peer ratios.")
    elif peers:
        out += best_vs_peers(annx_runs, peers, TARGETS[1:], "peer")
    out.append("")
    out.append(f"Sweep points (ef: recall@{k} / q/s, median of the timed runs):")
    out.append("")
    for r in results:
        pts = ", ".join(f"{p['ef']}: {p['recall']:.4f} / {p['qps']:,.0f}" for p in r.points)
        out.append(f"- {r.name}: {pts}")
    return "\n".join(out) + "\n"


def plot(
    results: list[Any],
    path: str,
    title: str,
    k: int,
    *,
    frontier: bool = False,
    xmin: float | None = None,
) -> None:
    """recall vs q/s (log) per configuration: the sweep in ef order, or with ``frontier``
    the Pareto frontier as a line and every point as a faint dot (two-parameter sweeps).
    ``xmin`` starts the recall axis there (points below it are left out of view)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"# matplotlib is not installed: no plot written to {path}")
        return
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for r in results:
        pts = pareto(r.points) if frontier else sorted(r.points, key=lambda p: p["ef"])
        (line,) = ax.plot(
            [p["recall"] for p in pts],
            [p["qps"] for p in pts],
            "-" if r.is_annx else "--",
            marker="o" if r.is_annx else "s",
            markersize=3.5,
            linewidth=1.8 if r.is_annx else 1.2,
            label=r.name,
        )
        if frontier:
            ax.scatter(
                [p["recall"] for p in r.points],
                [p["qps"] for p in r.points],
                s=6,
                color=line.get_color(),
                alpha=0.2,
            )
    ax.set_yscale("log")
    if xmin is not None:
        ax.set_xlim(xmin, 1.0 + (1.0 - xmin) * 0.02)
        shown = [p["qps"] for r in results for p in r.points if p["recall"] >= xmin]
        if shown:
            ax.set_ylim(min(shown) / 1.2, max(shown) * 1.2)
    ax.set_xlabel(f"recall@{k}")
    ax.set_ylabel("queries / second (1 thread, log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"# plot written to {path}")


# --------------------------------------------------------------------------- main


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="ann-benchmarks HDF5 file")
    ap.add_argument("--algos", default=DEFAULT_ALGOS, help="comma list, or 'list'")
    ap.add_argument("--ef", default=DEFAULT_EF, help="search beam widths to sweep")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per ef (median)")
    ap.add_argument("--nq", type=int, default=None, help="use only the first N queries")
    ap.add_argument("--stop-recall", type=float, default=0.999)
    ap.add_argument("--min-qps", type=float, default=200.0)
    ap.add_argument("--json", default=None, help="append one JSON line per sweep point")
    ap.add_argument("--plot", default=None, help="write a recall vs q/s PNG")
    ap.add_argument("--md", default=None, help="write the Markdown summary")
    args = ap.parse_args()

    if args.algos == "list":
        print("\n".join(ALGOS))
        return 0
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    unknown = [a for a in algos if a not in ALGOS]
    if unknown:
        ap.error(f"unknown --algos {unknown}; known: {', '.join(ALGOS)}")
    if args.repeats < 1 or args.k < 1 or args.build_threads < 1:
        ap.error("--repeats, --k and --build-threads must be >= 1")
    efs = sorted({e for e in int_list(args.ef) if e >= args.k})
    if not efs:
        ap.error(f"no --ef value is >= k={args.k}")

    data = load_data(args.data, args.nq)
    if data.neighbors.shape[1] < args.k:
        ap.error(f"the file's ground truth has only {data.neighbors.shape[1]} neighbours")
    cpu = cpu_model()
    header = [
        f"# {Path(args.data).name}: n={len(data.train):,} d={data.d} nq={len(data.test):,} "
        f"metric={data.metric} k={args.k}",
        f"# cpu: {cpu} ({os.cpu_count()} logical CPUs); build {args.build_threads} threads, "
        f"search 1 thread, all queries in one batch; median of {args.repeats} timed runs; "
        f"numpy {np.__version__}, python {platform.python_version()}",
    ]
    print("\n".join(header), flush=True)

    results: list[Result] = []
    for name in algos:
        try:
            res = run_one(name, data, args, efs)
        except Skip as exc:
            print(f"== {name}: skipped: {exc}", flush=True)
            continue
        except Exception as exc:  # one failing configuration must not stop the rest
            print(f"== {name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            continue
        finally:
            gc.collect()
        results.append(res)
        if args.json:
            with open(args.json, "a") as fh:
                for p in res.points:
                    rec = {
                        "bench": "hnsw",
                        "data": Path(args.data).name,
                        "n": len(data.train),
                        "d": data.d,
                        "nq": len(data.test),
                        "k": args.k,
                        "metric": data.metric,
                        "algorithm": res.name,
                        "library": res.library,
                        "version": res.version,
                        "params": res.params,
                        "build_s": round(res.build_s, 3),
                        "build_threads": args.build_threads,
                        "search_threads": 1,
                        **p,
                        "bytes_per_vector": res.bytes_per_vector,
                        "bytes_per_vector_source": res.bpv_source,
                        "cpu": cpu,
                        "host": platform.node(),
                    }
                    fh.write(json.dumps(rec) + "\n")

    if not results:
        print("# nothing ran")
        return 1
    md = markdown(results, header, args.k)
    print()
    print(md)
    if args.md:
        Path(args.md).write_text(md)
    if args.plot:
        title = f"{Path(args.data).stem} (nq={len(data.test)}, k={args.k}), {cpu}, search 1 thread"
        plot(results, args.plot, title, args.k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
