"""``annx.index_factory``: build an empty index from a factory string."""

from __future__ import annotations

import numpy as np

from . import _core
from ._bits import structure_spec as _structure_spec
from ._errors import InvalidArgumentError
from ._surface import as_metric
from .binary import BinaryIndex
from .index import Index


def index_factory(
    d: int,
    spec: str = "Flat",
    metric: str | int = "l2",
    *,
    ef_construction: int | None = None,
    seed: int | None = None,
    shuffle: bool | None = None,
    by_residual: bool | None = None,
    insert_order: str | None = None,
) -> Index | BinaryIndex:
    """Build an empty index from a factory string.

    Args:
        d: vector dimension (>= 1).
        spec: ``"Flat"`` (exact, float32), ``"Flat,F16"``, ``"Flat,BF16"`` or
            ``"Flat,SQ8"`` (8-bit scalar quantisation; needs :meth:`Index.train`);
            ``"HNSW<M>[,codec][,Refine(F32|F16)]"`` for a graph index with ``M``
            links per node (``2M`` on level 0), e.g. ``"HNSW32"``,
            ``"HNSW32,F16"`` or ``"HNSW32,SQ8,Refine(F32)"`` (walk on 8-bit codes,
            re-rank with float32 vectors).
            ``"IVF<nlist>[_HNSW<M>][,codec][,Refine(F32|F16)]"`` for an inverted-file
            index over ``nlist`` k-means lists, e.g. ``"IVF1024,Flat"``,
            ``"IVF1024,SQ8"``, ``"IVF1024,PQ48"`` (8-bit product quantization, 48
            sub-quantizers) or ``"IVF1024,PQ192x4fs,Refine(F32)"`` (4-bit fast-scan
            PQ, re-ranked with float32 vectors); ``_HNSW<M>`` searches the centroids
            with an HNSW graph (for large ``nlist``). ``"PQ<M>"`` and ``"PQ<M>x4fs"``
            are flat (single-list) PQ indexes. IVF and PQ indexes need
            :meth:`Index.train` before :meth:`Index.add`.
            ``"LeanVec<D>[_ood][,structure[,codec]],Refine(F32|F16)"`` reduces vectors
            to ``D`` dimensions (:class:`annx.LeanVec`: PCA, or query-aware matrices
            learned from training queries with ``_ood``), indexes them with any spec
            above (default ``Flat``) and re-ranks candidates with the full vectors,
            e.g. ``"LeanVec128,HNSW32,Refine(F32)"`` or
            ``"LeanVec160,HNSW32,SQ8,Refine(F16)"``; :meth:`Index.train` fits it.
        metric: ``"l2"`` (squared Euclidean), ``"ip"`` (inner product) or ``"cos"``
            (cosine similarity; vectors are normalised when added); faiss's constants
            :data:`annx.METRIC_L2` and :data:`annx.METRIC_INNER_PRODUCT` are accepted.
            ``"hamming"`` with ``"BIN"``, ``"HNSW<M>,BIN"`` or ``"IVF<nlist>,BIN"``
            builds a :class:`annx.BinaryIndex` over packed ``d``-bit codes.
        ef_construction: HNSW candidate list size while inserting (default 200).
        seed: HNSW seed for level draws and insertion order (default 0); IVF/PQ seed
            of the k-means samples and initialisations (default 1234); LeanVec: seed of
            the fit's training sample (default 0), also given to the inner index.
        shuffle: HNSW: insert each batch in a seeded random order (default True);
            insertion order moves recall by several points on ordered data.
        by_residual: IVF with a PQ codec: encode each vector's residual to its
            centroid (True) or the vector itself (False). Default: True for 8-bit PQ
            (as faiss's IVFPQ); 4-bit fast-scan (``x4fs``) chooses when trained:
            residuals only where they cut the reconstruction error of held-out
            training rows by at least 15 % (GloVe-50, raw GloVe l2, clustered data; the
            gain is ``index._impl.auto_residual_gain``), else the vectors
            themselves, as faiss's IVFPQFastScan (MiniLM-384: residual codes rank worse
            across lists). ``index._impl.by_residual`` tells which after training.
        insert_order: HNSW: ``"random"`` (default: the ``shuffle`` rule above) or
            ``"lid_desc"``: insert each batch in decreasing order of local intrinsic
            dimensionality (maximum-likelihood estimate from each vector's 20 nearest
            neighbours in a seeded sample of 2,048 vectors of the batch), as proposed by
            Elliott & Clark (2024). Implies ``shuffle=False`` (``shuffle=True`` with it
            raises); stored in the index file. On raw GloVe-200k (l2, ``HNSW32``) it
            raised recall@10 at equal ef_search by 0.2-0.7 points (ef 24-256, two seeds;
            the misses at ef 256 fell by about a quarter); on GloVe-50k angular the change
            (about +0.1 point) was within the seed-to-seed spread. Estimating the order
            took about 7 s of a 200,000-vector build's 130-350 s on a loaded 2-core
            machine (bench/results/issue19/insert-order-lid.md).

    A bad spec raises :class:`annx.InvalidArgumentError` naming the bad token.

    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise InvalidArgumentError(f"d must be a positive integer, got {d!r}")
    if not isinstance(spec, str):
        raise InvalidArgumentError(f"spec must be a string, got {type(spec).__name__}")
    metric = as_metric(metric, None)  # names and aliases are checked by the core
    if ef_construction is not None and (
        isinstance(ef_construction, bool)
        or not isinstance(ef_construction, (int, np.integer))
        or not 1 <= ef_construction <= 2**20
    ):
        raise InvalidArgumentError(
            f"ef_construction must be an integer in [1, 2**20], got {ef_construction!r}"
        )
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64
    ):
        raise InvalidArgumentError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    if shuffle is not None and not isinstance(shuffle, (bool, np.bool_)):
        raise InvalidArgumentError(f"shuffle must be a bool, got {shuffle!r}")
    if by_residual is not None and not isinstance(by_residual, (bool, np.bool_)):
        raise InvalidArgumentError(f"by_residual must be a bool, got {by_residual!r}")
    if insert_order is not None and insert_order not in ("random", "lid_desc"):
        raise InvalidArgumentError(
            f"insert_order must be 'random' or 'lid_desc', got {insert_order!r}"
        )
    if metric == "hamming":
        if insert_order is not None:
            raise InvalidArgumentError("insert_order does not apply to hamming indexes")
        if int(d) % 8:
            raise InvalidArgumentError(
                f"a hamming index needs a number of bits that is a multiple of 8, got {d}"
            )
        inner = index_factory(
            d, _structure_spec(spec), "ip", ef_construction=ef_construction, seed=seed,
            shuffle=shuffle, by_residual=by_residual,
        )  # fmt: skip
        return BinaryIndex(int(d), inner)
    return Index(
        _core.index_factory(
            int(d),
            spec,
            metric,
            None if ef_construction is None else int(ef_construction),
            None if seed is None else int(seed),
            None if shuffle is None else bool(shuffle),
            None if by_residual is None else bool(by_residual),
            insert_order,
        )
    )
