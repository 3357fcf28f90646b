"""Named configurations, grouped in families, each with its sweep (ann-benchmarks'
config.yml idea, in code). A configuration is (name, family, adapter factory, sweep);
the factory and the sweep see the dataset, so nlist, PQ sizes and LeanVec dimensions
follow n and d. ``quick`` sweeps are the short ones CI runs.

Families: ``flat`` (exact), ``graph`` (HNSW and peers' graphs), ``ivf`` (IVF-Flat, IVF-PQ
fast-scan + refine, ScaNN), ``leanvec``, ``binary`` (BIN, BEBR), ``codecs`` (the rest of the
memory-budget view: F16, BF16, SQ8, PQ 8-bit, with and without refine), ``multivector``
(Chamfer files only) and ``multitenant`` when ``annxbench/multitenant.py`` exists.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .adapters import annx as ax
from .adapters import faiss as fx
from .adapters import hnswlib, muvera, scann, svs, usearch
from .adapters.base import Adapter
from .datasets import Dataset

ALIASES = {"hnsw": "graph", "exact": "flat", "bebr": "binary", "muvera": "multivector"}
EF = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384)
EF_QUICK = (10, 32, 96)
# (nprobe, rerank) ladder for IVF: the re-rank budget grows with nprobe
IVF_LADDER = ((1, 20), (2, 20), (4, 40), (8, 40), (12, 60), (16, 80), (24, 100), (32, 100),
              (48, 200), (64, 200), (128, 400))  # fmt: skip
IVF_QUICK = ((1, 20), (4, 40), (16, 100))
RERANK = (10, 30, 100)
CANDIDATES = (20, 50, 100, 200, 500)


@dataclass
class Config:
    """One named configuration: ``make(ds)`` gives its adapter, ``sweep(ds, quick)`` the
    list of search-parameter dicts in increasing cost; ``needs(ds)`` says why it does not
    apply (None when it does)."""

    name: str
    family: str
    make: Callable[[Dataset], Adapter]
    sweep: Callable[[Dataset, bool], list[dict[str, Any]]]
    needs: Callable[[Dataset], str | None]
    matrix: bool = True  # False: only when asked for by name or family, not in --matrix

    @property
    def library(self) -> str:
        return self.name.split("-")[0] if not self.name.startswith("muvera") else "muvera-python"


def nlist(ds: Dataset) -> int:
    """Power of two nearest 2 sqrt(n) (256 for 10k, 512 for 50k-100k, 1024 for 200k)."""
    return 2 ** max(4, round(math.log2(2 * math.sqrt(ds.n))))


def divisor(d: int, at_most: float) -> int:
    """The largest divisor of ``d`` that is at most ``at_most`` (PQ sub-quantizers)."""
    return max(m for m in range(1, d + 1) if d % m == 0 and m <= max(1, at_most))


def single(ds: Dataset) -> str | None:
    return "a single-vector configuration" if ds.multivector else None


def multi(ds: Dataset) -> str | None:
    return None if ds.multivector else "a multi-vector configuration"


def high_d(ds: Dataset) -> str | None:
    return single(ds) or ("LeanVec is meant for d >= 128" if ds.d < 128 else None)


def one(ds: Dataset, quick: bool) -> list[dict[str, Any]]:
    return [{}]


def efs(ds: Dataset, quick: bool) -> list[dict[str, Any]]:
    return [{"ef_search": e} for e in (EF_QUICK if quick else EF)]


def ivf_sweep(refine: bool) -> Callable[[Dataset, bool], list[dict[str, Any]]]:
    def sweep(ds: Dataset, quick: bool) -> list[dict[str, Any]]:
        pts = [(p, r) for p, r in (IVF_QUICK if quick else IVF_LADDER) if p <= nlist(ds)]
        if refine:
            return [{"nprobe": p, "rerank": r} for p, r in pts]
        return [{"nprobe": p} for p in dict.fromkeys(p for p, _ in pts)]

    return sweep


def reranks(ds: Dataset, quick: bool) -> list[dict[str, Any]]:
    return [{"rerank": r} for r in (RERANK[:2] if quick else RERANK)]


def cands(key: str, ef: bool = False) -> Callable[[Dataset, bool], list[dict[str, Any]]]:
    def sweep(ds: Dataset, quick: bool) -> list[dict[str, Any]]:
        cs = CANDIDATES[::2] if quick else CANDIDATES
        return [{key: c, **({"ef_search": 2 * c} if ef else {})} for c in cs]

    return sweep


def annx(spec: str | Callable[[Dataset], str]) -> Callable[[Dataset], Adapter]:
    return lambda ds: ax.Annx(ds.metric, spec(ds) if callable(spec) else spec)


def faiss(factory: str | Callable[[Dataset], str], refine: bool = False):
    return lambda ds: fx.Faiss(ds.metric, factory(ds) if callable(factory) else factory, refine)


def _configs() -> list[Config]:
    C, S, M, H = Config, single, multi, high_d
    pq4 = lambda ds: divisor(ds.d, ds.d / 2)
    pq8 = lambda ds: divisor(ds.d, ds.d / 4)
    lv = lambda frac, tail: lambda ds: f"LeanVec{ds.d // frac},{tail}"
    ivf = lambda tail: lambda ds: f"IVF{nlist(ds)},{tail(ds) if callable(tail) else tail}"
    fs4 = lambda ds: f"PQ{pq4(ds)}x4fs"
    return [
        C("annx-flat", "flat", annx("Flat"), one, S),
        C("faiss-flat", "flat", faiss("Flat"), one, S),
        C("annx-hnsw32", "graph", annx("HNSW32"), efs, S),
        C("annx-hnsw32-sq8-refine", "graph", annx("HNSW32,SQ8,Refine(F32)"), efs, S),
        # Degree 48 (96 links on level 0): on raw GloVe-200k (l2) 1.14-1.30x the q/s of
        # HNSW32 at equal recall@10 0.983-0.993 (bench/results/issue19/highrecall-l2-200k)
        C("annx-hnsw48", "graph", annx("HNSW48"), efs, S, matrix=False),
        C("annx-hnsw48-sq8-refine", "graph", annx("HNSW48,SQ8,Refine(F32)"), efs, S),
        C("annx-hnsw64-sq8-refine", "graph", annx("HNSW64,SQ8,Refine(F32)"), efs, S,
          matrix=False),
        C("hnswlib-m16", "graph", lambda ds: hnswlib.Hnswlib(ds.metric, 16), efs, S),
        C("faiss-hnsw32", "graph", faiss("HNSW32"), efs, S, matrix=False),
        C("hnswlib-m32", "graph", lambda ds: hnswlib.Hnswlib(ds.metric, 32), efs, S,
          matrix=False),
        C("annx-hnsw32-sq8", "graph", annx("HNSW32,SQ8"), efs, S, matrix=False),
        C("annx-hnsw32-f16", "graph", annx("HNSW32,F16"), efs, S, matrix=False),
        C("usearch-f32", "graph", lambda ds: usearch.Usearch(ds.metric, "f32"), efs, S,
          matrix=False),
        C("svs-vamana", "graph", lambda ds: svs.SvsVamana(ds.metric), efs, S),
        C("annx-ivfpqfs-refine", "ivf", annx(ivf(lambda ds: fs4(ds) + ",Refine(F32)")),
          ivf_sweep(True), S),
        C("faiss-ivfpqfs-refine", "ivf", faiss(ivf(fs4), refine=True), ivf_sweep(True), S),
        C("scann-ah-reorder", "ivf", lambda ds: scann.Scann(ds.metric, nlist(ds)),
          ivf_sweep(True), S),
        C("annx-ivfflat", "ivf", annx(ivf("Flat")), ivf_sweep(False), S),
        C("faiss-ivfflat", "ivf", faiss(ivf("Flat")), ivf_sweep(False), S),
        C("annx-lv-d8-sq8-refine", "leanvec", annx(lv(8, "HNSW32,SQ8,Refine(F32)")), efs, H),
        C("annx-lv-d4-sq8-refine16", "leanvec", annx(lv(4, "HNSW32,SQ8,Refine(F16)")), efs, H,
          matrix=False),
        C("annx-lv-d4-sq8-refine", "leanvec", annx(lv(4, "HNSW32,SQ8,Refine(F32)")), efs, H),
        C("annx-lv-d2-sq8-refine", "leanvec", annx(lv(2, "HNSW32,SQ8,Refine(F32)")), efs, H),
        C("annx-lv-d4-ood-sq8-refine", "leanvec",
          annx(lambda ds: f"LeanVec{ds.d // 4}_ood,HNSW32,SQ8,Refine(F32)"), efs,
          lambda ds: H(ds) or (None if ds.learn is not None else "no 'learn' queries")),
        C("annx-bin", "binary", annx("Flat,BIN"), one, S),
        C("faiss-bin", "binary", lambda ds: fx.FaissBinary(ds.metric), one, S),
        C("annx-bebr2", "binary", annx("Flat,BEBR2"), one, S),
        C("annx-bebr4", "binary", annx("Flat,BEBR4"), one, S),
        C("annx-bin-refine", "binary", annx("Flat,BIN,Refine(F32)"), reranks, S),
        C("annx-bebr2-refine", "binary", annx("Flat,BEBR2,Refine(F32)"), reranks, S),
        C("annx-bebr4-refine", "binary", annx("Flat,BEBR4,Refine(F32)"), reranks, S),
        C("annx-flat-f16", "codecs", annx("Flat,F16"), one, S),
        C("annx-flat-bf16", "codecs", annx("Flat,BF16"), one, S),
        C("annx-flat-sq8", "codecs", annx("Flat,SQ8"), one, S),
        C("annx-flat-sq8-refine", "codecs", annx("Flat,SQ8,Refine(F32)"), reranks, S),
        C("annx-ivfpq8", "codecs", annx(ivf(lambda ds: f"PQ{pq8(ds)}")), ivf_sweep(False), S),
        C("annx-ivfpq8-refine", "codecs", annx(ivf(lambda ds: f"PQ{pq8(ds)},Refine(F32)")),
          ivf_sweep(True), S),
        C("annx-ivfpqfs", "codecs", annx(ivf(fs4)), ivf_sweep(False), S),
        C("annx-mv-k3-hnsw32-sq8", "multivector",
          lambda ds: ax.AnnxMultiVector(ds.metric, "HNSW32,SQ8", k_sim=3, d_proj=16, reps=20),
          cands("candidates", ef=True), M),
        C("annx-mv-k3-flat", "multivector",
          lambda ds: ax.AnnxMultiVector(ds.metric, "Flat", k_sim=3, d_proj=16, reps=20),
          cands("candidates"), M),
        C("annx-chamfer", "multivector", lambda ds: ax.AnnxChamfer(ds.metric), one, M),
        C("muvera-python-flat", "multivector", lambda ds: muvera.MuveraPython(ds.metric),
          cands("candidates"), M),
        C("annx-token-heuristic", "multivector", lambda ds: ax.AnnxTokens(ds.metric),
          lambda ds, quick: [{"k_prime": p} for p in ((1, 5) if quick else (1, 2, 5, 10, 20))],
          M),
    ]  # fmt: skip


def _plugins() -> list[Config]:
    """Families from optional modules (``annxbench/multitenant.py``): a module that defines
    ``configs() -> list[Config]`` adds them."""
    out: list[Config] = []
    for mod in ("multitenant",):
        try:
            m = importlib.import_module(f"{__package__}.{mod}")
        except ImportError:
            continue
        if hasattr(m, "configs"):
            out += list(m.configs())
    return out


CONFIGS: dict[str, Config] = {c.name: c for c in _configs()}


def all_configs() -> dict[str, Config]:
    """Every configuration by name, optional families included."""
    return {**CONFIGS, **{c.name: c for c in _plugins()}}


def families() -> list[str]:
    return list(dict.fromkeys(c.family for c in all_configs().values()))


def family_name(name: str) -> str:
    return ALIASES.get(name, name)
