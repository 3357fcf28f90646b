"""IVF / PQ sweep: recall@10 vs queries/second, annx IVF indexes against faiss-cpu.

Usage:
    python bench/bench_ivf.py [--data FILE.hdf5]
        [--algos faiss-ivfpqfs-refine,annx-ivfpqfs-refine,...] [--nlist 1024] [--M 192]
        [--nprobe 1,2,4,8,12,16,24,32,48,64,96,128,192,256] [--rerank-factors 1,2,4,8,16,32]
        [--k 10] [--build-threads 2] [--train-n 65536] [--repeats 3] [--nq N]
        [--kmeans | --no-kmeans] [--kmeans-niter N[,N...]] [--kmeans-repeats 2]
        [--json out.jsonl] [--plot out.png] [--md out.md]

``--algos list`` prints the known configurations and exits. faiss is optional, and a
configuration that fails (e.g. an annx index type that is not built yet) is reported with
its error and skipped; the others still run. Helpers (data loading, recall, Pareto
interpolation) come from ``bench_hnsw.py`` in this folder, so both benchmarks measure alike.

Configurations (the same ``nlist`` and ``M`` for every library):

* faiss (``index_factory(d, ..., METRIC_INNER_PRODUCT)`` for angular/ip files, ``METRIC_L2``
  otherwise): ``faiss-ivfpqfs-refine`` = ``"IVF<nlist>,PQ<M>x4fs"`` (4-bit fast-scan) wrapped
  in ``IndexRefineFlat``; ``faiss-ivfpq`` = ``"IVF<nlist>,PQ<M>"`` (8-bit);
  ``faiss-ivfpq-refine`` = the same in ``IndexRefineFlat``; ``faiss-ivfflat`` =
  ``"IVF<nlist>,Flat"``; ``faiss-ivfpqfs`` (fast-scan without refine; not run by default, it
  tops out at low recall). faiss's polysemous training of 8-bit ``IndexIVFPQ`` (on by
  default in ``index_factory``, unused by these searches) is switched off so that train
  times compare like with like.
* annx (``annx.index_factory(d, spec, metric)``): ``annx-ivfpqfs-refine``
  ``"IVF<nlist>,PQ<M>x4fs,Refine(F32)"``, ``annx-ivfpqfs-refine16`` ``...,Refine(F16)``,
  ``annx-ivfpq`` ``"IVF<nlist>,PQ<M>"``, ``annx-ivfpq-refine`` ``"IVF<nlist>,PQ<M>,Refine(F32)"``,
  ``annx-ivfflat`` ``"IVF<nlist>,Flat"``, ``annx-ivfsq8`` ``"IVF<nlist>,SQ8"``, and
  ``annx-ivfpqfs`` (not run by default).
* Not run by default either: ``faiss-ivfpq-refine`` and ``annx-ivfpq-refine`` (8-bit PQ
  training takes about 2 minutes per library on MiniLM with 2 threads). The default set takes
  about 12-15 minutes on MiniLM-100k on a 2-core machine, about 1 minute on GloVe-50k with
  ``--nq 200``.
* Defaults: ``nlist`` 1024; ``M`` = d/2 for even d (192 for MiniLM-384, 25 for GloVe-50),
  else d.

Data: an ann-benchmarks HDF5 file (default ``../shared/data/minilm-100000-384-angular.hdf5``;
``glove6b-50000-50-angular.hdf5`` is a fast alternative), prepared as in ``bench_hnsw.py``:
for ``angular`` files base vectors and queries are normalised and searched by inner product
(annx ``metric="cos"``). Ground truth is the file's ``neighbors[:, :k]``; recall@k = mean over
queries of |returned top-k & true top-k| / k. ``--nq N`` keeps only the first N queries.

Methodology, per configuration (configurations run one after another, faiss and annx
alternating in the default order):

* Training sample: ``--train-n`` base vectors (65,536 by default, as for the reference
  numbers in ``shared/design/peers.md``; 0 = all), drawn once with a fixed seed and given to
  every library, so every ``train()`` sees the same sample. Each library subsamples it as it
  normally would (k-means on at most 256 points per centroid; faiss's PQ trains on at most
  256 * 2^nbits of it).
* Build with ``--build-threads`` threads (2 by default; ``faiss.omp_set_num_threads``,
  ``annx.set_num_threads`` and ``add(..., threads=)``); ``train()`` and ``add()`` (all base
  vectors) are timed separately. A faiss configuration whose base index was already trained
  in this run (``faiss-ivfpq`` and ``faiss-ivfpq-refine``, ``faiss-ivfpqfs`` and
  ``faiss-ivfpqfs-refine``: ``IndexRefineFlat`` trains nothing itself) reuses a copy of that
  trained index and reports the original training time.
* Search with one thread (``faiss.omp_set_num_threads(1)``, annx ``threads=1``), all queries
  in one batch call, over a grid: ``nprobe`` in ``--nprobe`` (values above nlist dropped) and,
  for configurations with a refine stage, a re-rank budget ``rerank`` = k * f for f in
  ``--rerank-factors`` (the total number of candidates re-scored with the exact vectors:
  annx ``search(..., nprobe=, rerank=)``, faiss ``IndexRefineSearchParameters(k_factor=f,
  base_index_params=SearchParametersIVF(nprobe=...))``); without refine only nprobe varies.
* One untimed warm-up batch, then a first pass: for each rerank value (increasing), nprobe
  increases until recall reaches ``--stop-recall`` (0.999), speed falls below ``--min-qps``
  (300 q/s), or recall gains less than ``--plateau`` (0.001) over the previous nprobe (the
  re-rank budget, not nprobe, is then the limit); larger rerank values are skipped once a
  rerank value gains less than ``--plateau`` recall over the previous one at every nprobe
  both ran. Then ``--repeats - 1`` further interleaved passes over the points that may lie
  within ``--retime-slack`` (25 %) of the Pareto frontier: no point with at least the same
  recall is more than 25 % faster than the point's optimistic speed (the fastest first-pass
  speed among points with at least its nprobe and rerank, so one slow, noisy timing does not
  hide a point). Other points keep their single timing. Queries/second = nq / median batch
  time.
* Bytes per vector: annx ``idx.bytes_per_vector`` (reported by the index). faiss, computed
  from the index's own structures: codes + 8 B id (int64) + refine store (``d*4``, float32
  ``IndexRefineFlat``). Codes: ``d*4`` (IVF-Flat), ``M`` (8-bit PQ) and, for 4-bit fast-scan,
  the packed blocks actually allocated: sum over lists of ceil(n_list / 32) * 32 *
  ceil(M/2)*2 / 2 bytes, i.e. M/2 bytes per vector plus the padding of each list's last
  32-vector block, amortised. Fixed tables (coarse centroids ``nlist*d*4``, PQ codebooks) are
  not included; the log shows them amortised per vector.
* k-means (``--kmeans``, on by default): faiss's IVF coarse trainer uses
  ``index.cp.niter`` iterations (10 in faiss 1.15, not the ``Kmeans`` default of 25),
  ``max_points_per_centroid=256``, ``seed=1234`` and ``spherical=True`` for inner product;
  ``--kmeans-niter`` defaults to the ``cp.niter`` read from faiss. ``faiss.Kmeans(d, nlist,
  niter=, seed=1234, max_points_per_centroid=256, spherical=)`` and ``annx.KMeans`` (or
  ``annx.kmeans``) with the same arguments (plus ``init="random"``, faiss's initialisation,
  and ``metric="ip"`` when spherical, as ``faiss.Kmeans`` assigns with ``IndexFlatIP``) run
  on the same training sample with ``--build-threads`` threads, alternating, median of
  ``--kmeans-repeats``. Reported: seconds, each library's own final objective (for both:
  sum of inner products when spherical, of squared distances otherwise; annx:
  ``KMeans.objective[-1]``), and, computed here identically for both, the mean squared L2
  distance of the sample to its nearest centroid, the imbalance factor
  (nlist * sum n_i^2 / n^2) and the number of empty clusters.

Outputs: a progress log; a Markdown summary (printed, and written with ``--md``) giving per
configuration train and add seconds, bytes/vector and queries/second at recall@k = 0.90,
0.95, 0.99 interpolated on the configuration's Pareto frontier (``bench_hnsw.qps_at``: linear
in recall, log in q/s; "-" where the target is not reached); the ratio of the best annx
configuration at 0.90 and 0.95 against each faiss configuration; matched annx/faiss pairs
(q/s ratios and train/add time ratios); the k-means table; and the Pareto points of every
sweep. One JSON line per sweep point (``"bench": "ivf"``) and per k-means run
(``"bench": "ivf-kmeans"``) is appended to ``--json``; ``--plot`` writes a recall vs q/s plot
(Pareto frontiers as lines, dominated points faint) when matplotlib is installed. The machine
these numbers come from is small and shared: run nothing else while timing and prefer ratios
over absolute numbers.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hnsw import (  # noqa: E402
    DEFAULT_DATA,
    Data,
    Skip,
    best_vs_peers,
    cpu_model,
    fmt_qps,
    int_list,
    load_data,
    pareto,
    plot,
    qps_at,
    recall_at_k,
)

DEFAULT_ALGOS = (
    "faiss-ivfpqfs-refine,annx-ivfpqfs-refine,annx-ivfpqfs-refine16,faiss-ivfpq,annx-ivfpq,"
    "faiss-ivfflat,annx-ivfflat,annx-ivfsq8"
)
DEFAULT_NPROBE = "1,2,4,8,12,16,24,32,48,64,96,128,192,256"
DEFAULT_RERANK_FACTORS = "1,2,4,8,16,32"
TARGETS = (0.90, 0.95, 0.99)
RATIO_TARGETS = (0.90, 0.95)
KMEANS_SEED = 1234
MAX_POINTS_PER_CENTROID = 256
SAMPLE_SEED = 1234

# annx configuration -> the faiss configuration it is compared with one-to-one.
PAIRS = {
    "annx-ivfpqfs-refine": "faiss-ivfpqfs-refine",
    "annx-ivfpqfs-refine16": "faiss-ivfpqfs-refine",
    "annx-ivfpqfs": "faiss-ivfpqfs",
    "annx-ivfpq": "faiss-ivfpq",
    "annx-ivfpq-refine": "faiss-ivfpq-refine",
    "annx-ivfflat": "faiss-ivfflat",
}


# --------------------------------------------------------------------------- adapters


class IvfAdapter:
    """One IVF configuration of one library: train, add, search at (nprobe, rerank)."""

    library = ""

    def __init__(self, name: str, metric: str, nlist: int, m: int, refine: bool) -> None:
        self.name = name
        self.metric = metric
        self.nlist = nlist
        self.m = m
        self.refine = refine
        self.params: dict[str, Any] = {"nlist": nlist, "M": m}
        self.n = 0

    def version(self) -> str:
        return "?"

    def create(self, d: int) -> None:
        """Make the empty index (errors here mean the configuration is not supported)."""
        raise NotImplementedError

    def train(self, x: np.ndarray, threads: int) -> float | None:
        """Train on ``x``; return the seconds of an earlier identical training it reused."""
        raise NotImplementedError

    def add(self, x: np.ndarray, threads: int) -> None:
        raise NotImplementedError

    def search(self, q: np.ndarray, k: int, nprobe: int, rerank: int | None) -> np.ndarray:
        """Return int64 ids [nq, k] (-1 for missing) using a single thread."""
        raise NotImplementedError

    def bytes_per_vector(self) -> tuple[float | None, str]:
        """(bytes, how it was obtained)."""
        return None, "unknown"


class FaissIvfAdapter(IvfAdapter):
    library = "faiss"
    # (factory, metric, id of the training sample) -> (trained empty base index, seconds, name)
    trained: dict[tuple[str, str, int], tuple[bytes, float, str]] = {}

    def __init__(self, name: str, metric: str, nlist: int, m: int, kind: str) -> None:
        refine = kind.endswith("-refine")
        super().__init__(name, metric, nlist, m, refine)
        try:
            import faiss
        except ImportError as exc:
            raise Skip("faiss is not installed (pip install faiss-cpu)") from exc
        self.faiss = faiss
        base = kind.removesuffix("-refine")
        self.factory = FAISS_FACTORY[base].format(nlist=nlist, M=m)
        self.params["factory"] = self.factory + (" + IndexRefineFlat" if refine else "")
        self.base: Any = None
        self.index: Any = None

    def version(self) -> str:
        return self.faiss.__version__

    def create(self, d: int) -> None:
        faiss = self.faiss
        mt = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.base = faiss.index_factory(d, self.factory, mt)
        ivf = faiss.downcast_index(self.base)
        if getattr(ivf, "do_polysemous_training", False):
            ivf.do_polysemous_training = False
            self.params["polysemous_training"] = False
        self.params["coarse_niter"] = ivf.cp.niter
        self.params["coarse_spherical"] = bool(ivf.cp.spherical)
        self.params["by_residual"] = bool(ivf.by_residual)
        self.index = faiss.IndexRefineFlat(self.base) if self.refine else self.base

    def train(self, x: np.ndarray, threads: int) -> float | None:
        faiss = self.faiss
        key = (self.factory, self.metric, id(x))
        if key in self.trained:  # same base factory and sample: IndexRefineFlat adds no training
            buf, seconds, owner = self.trained[key]
            self.base = faiss.deserialize_index(np.frombuffer(buf, dtype=np.uint8))
            self.index = faiss.IndexRefineFlat(self.base) if self.refine else self.base
            self.params["trained_by"] = owner
            return seconds
        faiss.omp_set_num_threads(threads)
        t0 = time.perf_counter()
        self.index.train(x)
        seconds = time.perf_counter() - t0
        faiss.omp_set_num_threads(1)
        self.trained[key] = (faiss.serialize_index(self.base).tobytes(), seconds, self.name)
        return None

    def add(self, x: np.ndarray, threads: int) -> None:
        self.faiss.omp_set_num_threads(threads)
        self.index.add(x)
        self.faiss.omp_set_num_threads(1)
        self.n = self.index.ntotal

    def search(self, q: np.ndarray, k: int, nprobe: int, rerank: int | None) -> np.ndarray:
        faiss = self.faiss
        faiss.omp_set_num_threads(1)
        ivf_params = faiss.SearchParametersIVF(nprobe=nprobe)
        if self.refine:
            params = faiss.IndexRefineSearchParameters(
                k_factor=(rerank or k) / k, base_index_params=ivf_params
            )
        else:
            params = ivf_params
        return self.index.search(q, k, params=params)[1]

    def bytes_per_vector(self) -> tuple[float | None, str]:
        faiss = self.faiss
        ivf = faiss.downcast_index(self.base)
        il = faiss.downcast_InvertedLists(ivf.invlists)
        sizes = [il.list_size(i) for i in range(ivf.nlist)]
        n = sum(sizes)
        if isinstance(il, faiss.BlockInvertedLists):
            codes = sum(-(-s // il.n_per_block) * il.block_size for s in sizes)
            how = f"codes in {il.n_per_block}-vector blocks of {il.block_size} B"
        else:
            codes = n * il.code_size
            how = f"codes {il.code_size} B"
        total = codes + n * 8
        how += " + 8 B id"
        if self.refine:
            ri = faiss.downcast_index(self.index.refine_index)
            total += ri.ntotal * ri.code_size
            how += f" + {ri.code_size} B refine"
        fixed = ivf.nlist * ivf.d * 4
        pq = getattr(ivf, "pq", None)
        if pq is not None:
            fixed += pq.M * pq.ksub * pq.dsub * 4
        how += f"; fixed tables {fixed / n:.1f} B/vector more"
        return total / n, "computed: " + how


class AnnxIvfAdapter(IvfAdapter):
    library = "annx"

    def __init__(self, name: str, metric: str, nlist: int, m: int, spec: str) -> None:
        super().__init__(name, metric, nlist, m, "Refine(" in spec)
        try:
            import annx
        except ImportError as exc:
            raise Skip(f"annx is not importable: {exc}") from exc
        self.annx = annx
        self.params["spec"] = spec
        self.index: Any = None

    def version(self) -> str:
        return self.annx.__version__

    def create(self, d: int) -> None:
        self.index = self.annx.index_factory(d, self.params["spec"], self.metric)

    def train(self, x: np.ndarray, threads: int) -> float | None:
        self.annx.set_num_threads(threads)
        if not self.index.is_trained:
            self.index.train(x)
        return None

    def add(self, x: np.ndarray, threads: int) -> None:
        self.annx.set_num_threads(threads)
        self.index.add(x, threads=threads)
        self.annx.set_num_threads(1)
        self.n = self.index.ntotal

    def search(self, q: np.ndarray, k: int, nprobe: int, rerank: int | None) -> np.ndarray:
        extra = {"rerank": rerank} if self.refine and rerank is not None else {}
        return self.index.search(q, k, nprobe=nprobe, threads=1, **extra)[1]

    def bytes_per_vector(self) -> tuple[float | None, str]:
        return float(self.index.bytes_per_vector), "reported: idx.bytes_per_vector"


class ScannAdapter(IvfAdapter):
    """ScaNN (``pip install scann``): a k-means tree with ``nlist`` leaves, anisotropic
    4-bit asymmetric hashing (2 dimensions per sub-space, threshold 0.2, the settings of
    ScaNN's ann-benchmarks entry) and exact re-ordering; nprobe = ``leaves_to_search``,
    rerank = ``pre_reorder_num_neighbors``."""

    library = "scann"

    def __init__(self, name: str, metric: str, nlist: int, m: int) -> None:
        super().__init__(name, metric, nlist, m, refine=True)
        try:
            import scann
        except ImportError as exc:
            raise Skip("ScaNN is not installed (pip install scann)") from exc
        self.scann = scann
        self.params = {"num_leaves": nlist, "ah_dims_per_block": 2, "aq_threshold": 0.2,
                       "distance": "squared_l2" if metric == "l2" else "dot_product"}  # fmt: skip
        self.xt: np.ndarray | None = None
        self.searcher: Any = None

    def version(self) -> str:
        try:
            from importlib.metadata import version

            return version("scann")
        except Exception:  # noqa: BLE001 - metadata is optional
            return "?"

    def create(self, d: int) -> None:
        self.d = d

    def train(self, x: np.ndarray, threads: int) -> float | None:
        self.xt = x  # ScaNN trains and adds in one build (below)
        return None

    def add(self, x: np.ndarray, threads: int) -> None:
        p = self.params
        builder = self.scann.scann_ops_pybind.builder(x, 10, p["distance"])
        builder = builder.tree(
            num_leaves=self.nlist,
            num_leaves_to_search=min(16, self.nlist),
            training_sample_size=len(self.xt if self.xt is not None else x),
        )
        builder = builder.score_ah(2, anisotropic_quantization_threshold=0.2).reorder(100)
        self.searcher = builder.build()
        self.n = len(x)

    def search(self, q: np.ndarray, k: int, nprobe: int, rerank: int | None) -> np.ndarray:
        ids, _ = self.searcher.search_batched(
            q, final_num_neighbors=k, leaves_to_search=nprobe,
            pre_reorder_num_neighbors=max(k, rerank or k),
        )  # fmt: skip
        return np.asarray(ids, dtype=np.int64)

    def bytes_per_vector(self) -> tuple[float | None, str]:
        return (
            self.d / 2 * 0.5 + 4 * self.d + 8,
            "estimate: 4-bit codes per 2 dimensions + float32 re-order copy + 8-byte id",
        )


# name -> (library, faiss kind or annx spec template); {nlist} and {M} are filled in.
ALGOS: dict[str, tuple[str, str]] = {
    "faiss-ivfpqfs-refine": ("faiss", "pqfs-refine"),
    "faiss-ivfpqfs": ("faiss", "pqfs"),
    "faiss-ivfpq": ("faiss", "pq"),
    "faiss-ivfpq-refine": ("faiss", "pq-refine"),
    "faiss-ivfflat": ("faiss", "flat"),
    "annx-ivfpqfs-refine": ("annx", "IVF{nlist},PQ{M}x4fs,Refine(F32)"),
    "annx-ivfpqfs-refine16": ("annx", "IVF{nlist},PQ{M}x4fs,Refine(F16)"),
    "annx-ivfpqfs": ("annx", "IVF{nlist},PQ{M}x4fs"),
    "annx-ivfpq": ("annx", "IVF{nlist},PQ{M}"),
    "annx-ivfpq-refine": ("annx", "IVF{nlist},PQ{M},Refine(F32)"),
    "annx-ivfflat": ("annx", "IVF{nlist},Flat"),
    "annx-ivfsq8": ("annx", "IVF{nlist},SQ8"),
    "scann-ah-reorder": ("scann", "ah"),
}
FAISS_FACTORY = {
    "pqfs": "IVF{nlist},PQ{M}x4fs",
    "pq": "IVF{nlist},PQ{M}",
    "flat": "IVF{nlist},Flat",
}


def describe(name: str) -> str:
    """The configuration's factory string with placeholders, for ``--algos list``."""
    library, what = ALGOS[name]
    if library == "scann":
        return "scann builder: tree(nlist leaves), score_ah(2, 0.2), reorder"
    if library == "annx":
        return f'annx.index_factory(d, "{what}", metric)'
    base = what.removesuffix("-refine")
    text = f'faiss.index_factory(d, "{FAISS_FACTORY[base]}", metric)'
    return f"faiss.IndexRefineFlat({text})" if what.endswith("-refine") else text


def make_adapter(name: str, metric: str, nlist: int, m: int) -> IvfAdapter:
    library, what = ALGOS[name]
    if library == "annx":
        return AnnxIvfAdapter(name, metric, nlist, m, what.format(nlist=nlist, M=m))
    if library == "scann":
        return ScannAdapter(name, metric, nlist, m)
    return FaissIvfAdapter(name, metric, nlist, m, what)


# --------------------------------------------------------------------------- measuring


@dataclass
class Result:
    """One configuration's build and sweep."""

    name: str
    library: str
    version: str
    params: dict[str, Any]
    train_s: float
    add_s: float
    bytes_per_vector: float | None
    bpv_source: str
    points: list[dict[str, Any]] = field(default_factory=list)  # nprobe, rerank, recall, qps

    @property
    def is_annx(self) -> bool:
        return self.library == "annx"


def near_frontier(points: list[dict[str, Any]], slack: float) -> list[dict[str, Any]]:
    """Points that may be within ``slack`` of the Pareto frontier once timed again.

    A point's speed is first raised to that of any point with at least its nprobe and
    rerank (which does more work, so cannot truly be faster): one slow, noisy timing then
    does not hide a point. A point is kept when no point with at least the same recall is
    more than ``slack`` faster than that optimistic speed.
    """

    def more_work(o: dict[str, Any], p: dict[str, Any]) -> bool:
        return o["nprobe"] >= p["nprobe"] and (o["rerank"] or 0) >= (p["rerank"] or 0)

    best = {id(p): max(o["qps"] for o in points if more_work(o, p)) for p in points}
    return [
        p
        for p in points
        if not any(
            o is not p and o["recall"] >= p["recall"] and o["qps"] > best[id(p)] * (1 + slack)
            for o in points
        )
    ]


def fmt_setting(p: dict[str, Any]) -> str:
    return f"{p['nprobe']}" if p["rerank"] is None else f"{p['nprobe']}/{p['rerank']}"


def sweep(
    ad: IvfAdapter, data: Data, k: int, nprobes: list[int], reranks: list[int | None], args
) -> list[dict[str, Any]]:
    """Time one batch search per (rerank, nprobe) (median of ``repeats``), with pruning."""
    q, gt, nq = data.test, data.neighbors, len(data.test)
    ad.search(q, k, nprobes[0], reranks[0])  # warm-up
    pts: list[dict[str, Any]] = []
    last_row: dict[int, float] = {}
    for rr in reranks:
        prev = None
        row: dict[int, float] = {}
        for npb in nprobes:
            t0 = time.perf_counter()
            ids = ad.search(q, k, npb, rr)
            dt = time.perf_counter() - t0
            rec = recall_at_k(np.asarray(ids), gt, k)
            pts.append({"nprobe": npb, "rerank": rr, "recall": rec, "times": [dt]})
            row[npb] = rec
            what = f"nprobe={npb:<4}" + ("" if rr is None else f" rerank={rr:<4}")
            print(f"    {what} recall={rec:.4f} q/s={nq / dt:,.0f}", flush=True)
            if rec >= args.stop_recall or nq / dt < args.min_qps:
                break
            if prev is not None and rec - prev < args.plateau:
                break
            prev = rec
        common = row.keys() & last_row.keys()
        if common and max(row[v] - last_row[v] for v in common) < args.plateau:
            print(f"    rerank={rr} gains < {args.plateau} recall: no larger rerank", flush=True)
            break
        last_row = row
    for p in pts:
        p["qps"] = nq / p["times"][0]
    again = near_frontier(pts, args.retime_slack) if args.repeats > 1 else []
    if again:
        print(f"    re-timing {len(again)} of {len(pts)} points x {args.repeats - 1}", flush=True)
    for _ in range(args.repeats - 1):
        for p in again:
            t0 = time.perf_counter()
            ad.search(q, k, p["nprobe"], p["rerank"])
            p["times"].append(time.perf_counter() - t0)
    return [
        {
            "nprobe": p["nprobe"],
            "rerank": p["rerank"],
            "recall": p["recall"],
            "qps": nq / statistics.median(p["times"]),
            "times_s": [round(t, 6) for t in p["times"]],
        }
        for p in pts
    ]


def run_one(name: str, data: Data, xt: np.ndarray, args: argparse.Namespace) -> Result:
    ad = make_adapter(name, data.metric, args.nlist, args.M)
    print(f"== {name}: {ad.library} {ad.version()}", flush=True)
    ad.create(data.d)
    print(f"    {ad.params}", flush=True)
    threads = args.build_threads
    t0 = time.perf_counter()
    reused = ad.train(xt, threads)
    train_s = time.perf_counter() - t0 if reused is None else reused
    if reused is not None:
        print(f"    reusing the base index trained by {ad.params['trained_by']}", flush=True)
    t0 = time.perf_counter()
    ad.add(data.train, threads)
    add_s = time.perf_counter() - t0
    bpv, how = ad.bytes_per_vector()
    bpv_text = "?" if bpv is None else f"{bpv:.1f}"
    print(
        f"    train {train_s:.2f} s ({len(xt):,} vectors), add {add_s:.2f} s "
        f"({threads} threads), {bpv_text} B/vector ({how})",
        flush=True,
    )
    nprobes = [v for v in args.nprobes if v <= args.nlist] or [args.nlist]
    reranks: list[int | None] = [args.k * f for f in args.factors] if ad.refine else [None]
    t0 = time.perf_counter()
    points = sweep(ad, data, args.k, nprobes, reranks, args)
    print(f"    sweep: {len(points)} points in {time.perf_counter() - t0:.0f} s", flush=True)
    return Result(name, ad.library, ad.version(), ad.params, train_s, add_s, bpv, how, points)


# --------------------------------------------------------------------------- k-means


def kmeans_quality(x: np.ndarray, c: np.ndarray, chunk: int = 8192) -> dict[str, float]:
    """Mean squared L2 distance to the nearest centroid, imbalance and empty clusters."""
    c = np.ascontiguousarray(c, dtype=np.float32)
    cn = np.einsum("ij,ij->i", c, c)
    total = 0.0
    counts = np.zeros(len(c), dtype=np.int64)
    for s in range(0, len(x), chunk):
        xs = x[s : s + chunk]
        dist = cn[None, :] - 2.0 * (xs @ c.T)
        a = np.argmin(dist, axis=1)
        best = dist[np.arange(len(xs)), a] + np.einsum("ij,ij->i", xs, xs)
        total += float(np.maximum(best, 0).sum())
        counts += np.bincount(a, minlength=len(c))
    n = len(x)
    return {
        "mse": total / n,
        "imbalance": float(len(c) * (counts.astype(np.float64) ** 2).sum() / n**2),
        "empty": int((counts == 0).sum()),
    }


def faiss_ivf_coarse_params(d: int, nlist: int, metric: str) -> tuple[int, bool] | None:
    """(niter, spherical) that faiss's IVF coarse k-means uses for this metric."""
    try:
        import faiss
    except ImportError:
        return None
    mt = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    ivf = faiss.downcast_index(faiss.index_factory(d, f"IVF{nlist},Flat", mt))
    return int(ivf.cp.niter), bool(ivf.cp.spherical)


def kmeans_faiss(x: np.ndarray, k: int, niter: int, spherical: bool, threads: int):
    import faiss

    km = faiss.Kmeans(
        x.shape[1],
        k,
        niter=niter,
        seed=KMEANS_SEED,
        max_points_per_centroid=MAX_POINTS_PER_CENTROID,
        spherical=spherical,
    )
    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    km.train(x)
    dt = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    obj = float(km.obj[-1]) if len(km.obj) else None
    return dt, np.asarray(km.centroids), obj, faiss.__version__


def kmeans_annx(x: np.ndarray, k: int, niter: int, spherical: bool, threads: int):
    import annx

    kw: dict[str, Any] = {
        "niter": niter,
        "seed": KMEANS_SEED,
        "spherical": spherical,
        "max_points_per_centroid": MAX_POINTS_PER_CENTROID,
        # as faiss: k distinct sample points as the initial centroids, and for spherical
        # k-means assignment by largest inner product (faiss.Kmeans uses IndexFlatIP)
        "init": "random",
        "metric": "ip" if spherical else "l2",
    }
    make = getattr(annx, "KMeans", None) or getattr(annx, "kmeans", None)
    if make is None:
        raise Skip("annx has neither KMeans nor kmeans")
    accepted = inspect.signature(make).parameters
    kw = {key: v for key, v in kw.items() if key in accepted}
    annx.set_num_threads(threads)
    if hasattr(annx, "KMeans"):
        km = annx.KMeans(x.shape[1], k, **kw)
        t0 = time.perf_counter()
        km.train(x, threads=threads)
        dt = time.perf_counter() - t0
        cent, objs = np.asarray(km.centroids), list(km.objective)
    else:
        t0 = time.perf_counter()
        cent, _ = annx.kmeans(x, k, threads=threads, **kw)
        dt = time.perf_counter() - t0
        cent, objs = np.asarray(cent), []
    annx.set_num_threads(1)
    return dt, cent, (float(objs[-1]) if objs else None), annx.__version__


def kmeans_compare(
    xt: np.ndarray, nlist: int, niters: list[int], spherical: bool, args
) -> list[dict[str, Any]]:
    """Time faiss.Kmeans and annx k-means on the same sample, alternating."""
    runners = {"faiss": kmeans_faiss, "annx": kmeans_annx}
    rows: list[dict[str, Any]] = []
    for niter in niters:
        print(
            f"== k-means: k={nlist} niter={niter} n={len(xt):,} spherical={spherical} "
            f"max_points_per_centroid={MAX_POINTS_PER_CENTROID} seed={KMEANS_SEED} "
            f"threads={args.build_threads}",
            flush=True,
        )
        times: dict[str, list[float]] = {lib: [] for lib in runners}
        last: dict[str, tuple[np.ndarray, float | None, str]] = {}
        failed: set[str] = set()
        for rep in range(args.kmeans_repeats):
            order = list(runners) if rep % 2 == 0 else list(runners)[::-1]
            for lib in order:
                if lib in failed:
                    continue
                try:
                    dt, cent, obj, ver = runners[lib](
                        xt, nlist, niter, spherical, args.build_threads
                    )
                except Exception as exc:  # a missing or failing library is reported
                    print(f"    {lib}: FAILED: {type(exc).__name__}: {exc}", flush=True)
                    failed.add(lib)
                    continue
                finally:
                    gc.collect()
                times[lib].append(dt)
                last[lib] = (cent, obj, ver)
                print(f"    {lib} {ver}: {dt:.2f} s, objective {obj}", flush=True)
        for lib, (cent, obj, ver) in last.items():
            q = kmeans_quality(xt, cent)
            rows.append(
                {
                    "library": lib,
                    "version": ver,
                    "clusters": nlist,
                    "niter": niter,
                    "n": len(xt),
                    "spherical": spherical,
                    "threads": args.build_threads,
                    "seconds": statistics.median(times[lib]),
                    "times_s": [round(t, 4) for t in times[lib]],
                    "objective": obj,
                    **q,
                }
            )
            print(
                f"    {lib}: median {rows[-1]['seconds']:.2f} s, mean sq. distance "
                f"{q['mse']:.5f}, imbalance {q['imbalance']:.3f}, {q['empty']} empty",
                flush=True,
            )
    return rows


# --------------------------------------------------------------------------- reporting


def markdown(
    results: list[Result], km_rows: list[dict[str, Any]], header: list[str], k: int
) -> str:
    out = [*header, ""]
    out.append(
        "| configuration | library | train s | add s | bytes/vector | max recall | "
        + " | ".join(f"q/s @{t:.2f}" for t in TARGETS)
        + " |"
    )
    out.append("|---|---|---:|---:|---:|---:|" + "---:|" * len(TARGETS))
    for r in results:
        bpv = "?" if r.bytes_per_vector is None else f"{r.bytes_per_vector:,.1f}"
        maxr = max(p["recall"] for p in r.points)
        out.append(
            f"| {r.name} | {r.library} {r.version} | {r.train_s:.2f} | {r.add_s:.2f} | {bpv} | "
            f"{maxr:.4f} | " + " | ".join(fmt_qps(qps_at(r.points, t)) for t in TARGETS) + " |"
        )
    out.append("")
    annx_runs = [r for r in results if r.is_annx]
    peers = [r for r in results if not r.is_annx]
    if not annx_runs:
        out.append("No annx configuration ran, so there are no annx/faiss ratios.")
        out.append("")
    elif peers:
        out += best_vs_peers(annx_runs, peers, RATIO_TARGETS, "faiss configuration")
        out.append("")
        by_name = {r.name: r for r in results}
        pairs = [(a, by_name[PAIRS[a.name]]) for a in annx_runs if PAIRS.get(a.name) in by_name]
        if pairs:
            out.append(
                "Matched pairs (same nlist and M): q/s ratios > 1 favour annx; "
                "time ratios < 1 favour annx."
            )
            out.append("")
            out.append(
                "| annx | faiss | "
                + " | ".join(f"annx / faiss q/s @{t:.2f}" for t in RATIO_TARGETS)
                + " | annx / faiss train s | annx / faiss add s | annx / faiss bytes |"
            )
            out.append("|---|---|" + "---:|" * (len(RATIO_TARGETS) + 3))
            for a, f in pairs:
                cells = []
                for t in RATIO_TARGETS:
                    va, vf = qps_at(a.points, t), qps_at(f.points, t)
                    cells.append("-" if va is None or vf is None else f"{va / vf:.2f}")
                cells.append(f"{a.train_s / f.train_s:.2f}" if f.train_s > 0 else "-")
                cells.append(f"{a.add_s / f.add_s:.2f}" if f.add_s > 0 else "-")
                if a.bytes_per_vector and f.bytes_per_vector:
                    cells.append(f"{a.bytes_per_vector / f.bytes_per_vector:.2f}")
                else:
                    cells.append("-")
                out.append(f"| {a.name} | {f.name} | " + " | ".join(cells) + " |")
            out.append("")
    if km_rows:
        out.append(
            "k-means on the training sample (same k, niter, seed, sample cap and threads; "
            "mean sq. distance, imbalance and empty clusters computed here for both):"
        )
        out.append("")
        out.append(
            "| library | k | niter | n | spherical | threads | seconds | own objective | "
            "mean sq. distance | imbalance | empty |"
        )
        out.append("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        for row in km_rows:
            obj = "-" if row["objective"] is None else f"{row['objective']:.6g}"
            out.append(
                f"| {row['library']} {row['version']} | {row['clusters']} | {row['niter']} | "
                f"{row['n']:,} | {row['spherical']} | {row['threads']} | {row['seconds']:.2f} | "
                f"{obj} | {row['mse']:.5f} | {row['imbalance']:.3f} | {row['empty']} |"
            )
        secs = {(r["library"], r["niter"]): r["seconds"] for r in km_rows}
        for niter in sorted({r["niter"] for r in km_rows}):
            if ("annx", niter) in secs and ("faiss", niter) in secs:
                ratio = secs[("annx", niter)] / secs[("faiss", niter)]
                out.append("")
                out.append(f"k-means time annx / faiss at niter={niter}: {ratio:.2f}.")
        out.append("")
    out.append(
        f"Pareto points (nprobe or nprobe/rerank: recall@{k} / q/s, median of the timed runs; "
        "all points are in the JSON output):"
    )
    out.append("")
    for r in results:
        front = pareto(r.points)
        pts = ", ".join(f"{fmt_setting(p)}: {p['recall']:.4f} / {p['qps']:,.0f}" for p in front)
        out.append(f"- {r.name} ({len(front)} of {len(r.points)} points): {pts}")
    return "\n".join(out) + "\n"


def write_json(path: str, recs: list[dict[str, Any]]) -> None:
    with open(path, "a") as fh:
        for rec in recs:
            fh.write(json.dumps(rec) + "\n")


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="ann-benchmarks HDF5 file")
    ap.add_argument("--algos", default=DEFAULT_ALGOS, help="comma list, or 'list'")
    ap.add_argument("--nlist", type=int, default=1024, help="inverted lists (coarse centroids)")
    ap.add_argument("--M", type=int, default=None, help="PQ sub-quantizers (default d/2 or d)")
    ap.add_argument("--nprobe", default=DEFAULT_NPROBE, help="nprobe values to sweep")
    ap.add_argument(
        "--rerank-factors",
        default=DEFAULT_RERANK_FACTORS,
        help="refine configs: rerank = k * factor (faiss k_factor = factor)",
    )
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument(
        "--train-n", type=int, default=65536, help="training sample size (0 = all base vectors)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per point (median)")
    ap.add_argument("--nq", type=int, default=None, help="use only the first N queries")
    ap.add_argument("--stop-recall", type=float, default=0.999)
    ap.add_argument("--min-qps", type=float, default=300.0)
    ap.add_argument("--plateau", type=float, default=0.001, help="min recall gain per nprobe")
    ap.add_argument("--retime-slack", type=float, default=0.25)
    ap.add_argument(
        "--kmeans",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compare faiss.Kmeans and annx k-means (default on)",
    )
    ap.add_argument(
        "--kmeans-niter", default=None, help="comma list (default: faiss IVF's cp.niter)"
    )
    ap.add_argument("--kmeans-repeats", type=int, default=2)
    ap.add_argument("--json", default=None, help="append one JSON line per sweep point")
    ap.add_argument("--plot", default=None, help="write a recall vs q/s PNG")
    ap.add_argument("--md", default=None, help="write the Markdown summary")
    args = ap.parse_args()

    if args.algos == "list":
        width = max(len(a) for a in ALGOS)
        defaults = DEFAULT_ALGOS.split(",")
        for name in ALGOS:
            default = " (default)" if name in defaults else ""
            print(f"{name:<{width}}  {describe(name)}{default}")
        return 0
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    unknown = [a for a in algos if a not in ALGOS]
    if unknown:
        ap.error(f"unknown --algos {unknown}; known: {', '.join(ALGOS)}")
    if min(args.repeats, args.k, args.build_threads, args.nlist, args.kmeans_repeats) < 1:
        ap.error("--repeats, --k, --build-threads, --nlist and --kmeans-repeats must be >= 1")
    args.nprobes = sorted(set(int_list(args.nprobe)))
    args.factors = sorted(set(int_list(args.rerank_factors)))
    if not args.nprobes or min(args.nprobes) < 1 or not args.factors or min(args.factors) < 1:
        ap.error("--nprobe and --rerank-factors need positive integers")

    data = load_data(args.data, args.nq)
    if data.neighbors.shape[1] < args.k:
        ap.error(f"the file's ground truth has only {data.neighbors.shape[1]} neighbours")
    if args.M is None:
        args.M = data.d // 2 if data.d % 2 == 0 else data.d
    if data.d % args.M:
        ap.error(f"--M {args.M} does not divide d={data.d}")
    n = len(data.train)
    ntrain = n if args.train_n <= 0 else min(args.train_n, n)
    rng = np.random.default_rng(SAMPLE_SEED)
    sample = np.sort(rng.choice(n, ntrain, replace=False)) if ntrain < n else np.arange(n)
    xt = np.ascontiguousarray(data.train[sample])

    cpu = cpu_model()
    header = [
        f"# {Path(args.data).name}: n={n:,} d={data.d} nq={len(data.test):,} "
        f"metric={data.metric} k={args.k}; nlist={args.nlist} M={args.M}; "
        f"training sample {ntrain:,} vectors (seed {SAMPLE_SEED})",
        f"# cpu: {cpu} ({os.cpu_count()} logical CPUs); build {args.build_threads} threads, "
        f"search 1 thread, all queries in one batch; median of {args.repeats} timed runs "
        f"(near-frontier points); numpy {np.__version__}, python {platform.python_version()}",
        "# command: python bench/bench_ivf.py " + " ".join(sys.argv[1:]),
    ]
    print("\n".join(header), flush=True)

    common = {
        "data": Path(args.data).name,
        "n": n,
        "d": data.d,
        "nq": len(data.test),
        "k": args.k,
        "metric": data.metric,
        "nlist": args.nlist,
        "M": args.M,
        "train_n": ntrain,
        "build_threads": args.build_threads,
        "cpu": cpu,
        "host": platform.node(),
    }

    km_rows: list[dict[str, Any]] = []
    if args.kmeans:
        coarse = faiss_ivf_coarse_params(data.d, args.nlist, data.metric)
        spherical = coarse[1] if coarse else data.metric != "l2"
        if args.kmeans_niter:
            niters = int_list(args.kmeans_niter)
        else:
            niters = [coarse[0] if coarse else 10]
        if coarse:
            print(f"# faiss IVF coarse k-means: niter={coarse[0]} spherical={coarse[1]}")
        km_rows = kmeans_compare(xt, args.nlist, niters, spherical, args)
        if args.json:
            write_json(args.json, [{"bench": "ivf-kmeans", **common, **r} for r in km_rows])

    results: list[Result] = []
    for name in algos:
        try:
            res = run_one(name, data, xt, args)
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
            write_json(
                args.json,
                [
                    {
                        "bench": "ivf",
                        **common,
                        "algorithm": res.name,
                        "library": res.library,
                        "version": res.version,
                        "params": res.params,
                        "train_s": round(res.train_s, 3),
                        "add_s": round(res.add_s, 3),
                        "search_threads": 1,
                        **p,
                        "bytes_per_vector": res.bytes_per_vector,
                        "bytes_per_vector_source": res.bpv_source,
                    }
                    for p in res.points
                ],
            )

    if not results and not km_rows:
        print("# nothing ran")
        return 1
    md = markdown(results, km_rows, header, args.k)
    print()
    print(md)
    if args.md:
        Path(args.md).write_text(md)
    if args.plot and results:
        title = (
            f"{Path(args.data).stem} (nq={len(data.test)}, k={args.k}, nlist={args.nlist}, "
            f"M={args.M}), {cpu}, search 1 thread"
        )
        plot(results, args.plot, title, args.k, frontier=True)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
