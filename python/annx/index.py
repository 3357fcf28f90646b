"""The Index class: a thin, validating wrapper over the compiled core."""

from __future__ import annotations

import math
import os
import re
import warnings
from typing import Any

import numpy as np

from . import _core
from ._bits import CHUNK_ROWS, as_codes, unpack_signs
from ._errors import CancelledError, InvalidArgumentError, NotTrainedError
from ._progress import Progress, _Reporter, add_in_steps, chunk_size
from ._surface import IndexSurface, add_lock, register_kind
from ._surface import from_bytes as from_bytes  # old home of these names (and of pickles)
from ._surface import load as load
from ._surface import read_info as read_info
from ._validate import as_filter, as_ids, as_k, as_matrix, as_threads
from .transforms import LeanVec

# Search-time keywords each structure understands (besides filter and threads).
_SEARCH_PARAMS: dict[str, frozenset[str]] = {
    "flat": frozenset(),
    "hnsw": frozenset({"ef_search"}),
    "ivf": frozenset({"nprobe"}),
    "ivf_hnsw": frozenset({"nprobe", "ef_search"}),  # ef_search: the coarse graph's
    "pq": frozenset(),
}
_KNOWN_SEARCH_PARAMS = frozenset({"ef_search", "nprobe", "rerank"})
# Largest nq * k one search may return (12 bytes each): 24 GiB of results.
_MAX_RESULTS = 2**31


class Index(IndexSurface):
    """A vector index built by :func:`annx.index_factory` or loaded from a file.

    Distances returned by :meth:`search` are squared L2 distances (ascending) for
    ``metric="l2"`` and similarities (descending: inner product for ``"ip"``, cosine
    similarity for ``"cos"``) otherwise. Missing results are padded with id -1 and
    distance +inf (L2) or -inf (similarities).

    Thread safety: any number of threads may call :meth:`search`,
    :meth:`range_search` and :meth:`reconstruct` concurrently. :meth:`add`,
    :meth:`remove` and :meth:`train` may also be called while other threads search;
    mutations (and :meth:`save`) run one at a time. On a ``Flat`` index a mutation
    waits for running searches and blocks new ones, so a search sees the index
    before or after it. On an ``HNSW`` index searches keep running while an add
    links its vectors: such a search may or may not return vectors of that add, but
    never a removed id, a half-written vector or a duplicate. On an ``IVF``/``PQ``
    index an add encodes its vectors while searches run and blocks them only while it
    appends the codes to their lists. A ``LeanVec`` index projects while searches run,
    blocks them only while it stores the full-dimension rows, then follows its inner
    index's rule. See docs/threading.md.
    """

    __slots__ = ("_impl", "_lock")

    def __init__(self, impl: _core.Index) -> None:
        object.__setattr__(self, "_impl", impl)
        object.__setattr__(self, "_lock", add_lock())

    @classmethod
    def _open_file(cls, path: str, mmap: bool, verify: bool) -> Index:
        return cls(_core.load(path, mmap, verify))

    @classmethod
    def _open_bytes(cls, data: Any, verify: bool) -> Index:
        return cls(_core.from_bytes(data, verify))

    # ----------------------------------------------------------------- properties
    @property
    def d(self) -> int:
        """Dimension of the vectors."""
        return self._impl.d

    @property
    def metric(self) -> str:
        """``"l2"``, ``"ip"`` or ``"cos"``."""
        return self._impl.metric

    @property
    def spec(self) -> str:
        """Canonical factory string, e.g. ``"Flat,F16"``."""
        return self._impl.spec

    @property
    def ntotal(self) -> int:
        """Number of vectors currently in the index (removed ones excluded)."""
        return self._impl.ntotal

    @property
    def is_trained(self) -> bool:
        """Whether the index can accept vectors (SQ8 needs :meth:`train` first)."""
        return self._impl.is_trained

    @property
    def next_id(self) -> int:
        """The id :meth:`add` assigns next when no ids are given (max id ever used + 1)."""
        return self._impl.next_id

    @property
    def bytes_per_vector(self) -> float:
        """Memory per stored vector: code, int64 id and per-vector extras (norms)."""
        return self._impl.bytes_per_vector()

    @property
    def ef_construction(self) -> int:
        """HNSW: candidate list size used while inserting (settable between adds)."""
        return self._impl.ef_construction

    @ef_construction.setter
    def ef_construction(self, value: int) -> None:
        self._impl.ef_construction = int(value)

    @property
    def n_deleted(self) -> int:
        """HNSW: removed vectors whose slots await reuse by a later :meth:`add`."""
        return self._impl.n_deleted

    @property
    def nlist(self) -> int:
        """IVF: number of inverted lists (1 for a flat ``PQ`` index)."""
        return self._impl.nlist

    def list_sizes(self) -> np.ndarray:
        """IVF / PQ: number of vectors in each inverted list (int64 [nlist])."""
        return np.asarray(self._impl.ivf_list_sizes(), dtype=np.int64)

    @property
    def centroids(self) -> np.ndarray:
        """IVF: the coarse quantizer's centroids, float32 [nlist, d] (empty before training)."""
        return self._impl.ivf_centroids()

    def memory_usage(self) -> int:
        """Bytes held by the index (vectors, ids, auxiliary arrays)."""
        return self._impl.memory_bytes()

    def __contains__(self, id: object) -> bool:
        if isinstance(id, (int, np.integer)) and not isinstance(id, bool):
            return self._impl.contains(int(id))
        return False

    # ------------------------------------------------------------------- building
    def train(self, x: Any, queries: Any = None, *, progress: Progress = None) -> None:
        """Train the index on ``x`` (float32 [n, d]); a no-op where not needed.

        ``SQ8`` learns per-dimension ranges. ``IVF<nlist>`` runs k-means (10 iterations,
        seeded, at most 256 points per list: faiss's defaults; spherical for ``"ip"`` and
        ``"cos"``) and needs at least ``nlist`` vectors; fewer than 39 per list gives a
        ``RuntimeWarning``. PQ codecs train one 16- or 256-centroid k-means per
        sub-quantizer (25 iterations) on the residuals to the nearest centroid (or on the
        vectors: see ``by_residual`` in :func:`annx.index_factory`). An IVF, PQ
        or SQ8 index that already holds vectors cannot be trained again (new parameters
        would invalidate the stored codes).

        ``LeanVec<D>`` specs fit the projection (:class:`annx.LeanVec`: PCA on a seeded
        sample of at most 100,000 vectors) and then train the inner index on the
        reduced vectors; ``LeanVec<D>_ood`` also needs ``queries`` (float32 [m, d]):
        held-out training queries of the kind the index will serve, never the test
        queries. A LeanVec index is trained once, before :meth:`add`.

        ``progress=True`` shows a progress bar (tqdm if installed, else a line on stderr
        every second); a callable is called as ``progress(done, total)`` and may return
        ``False`` to cancel. The units are k-means iterations: an IVF index counts its
        coarse quantizer's iterations plus, for PQ codecs, those of every
        sub-quantizer (``IVF1024,PQ16``: 10 + 16 x 25 = 410; IVF fast-scan without
        ``by_residual`` trains both encodings to choose one, so twice the PQ part:
        ``IVF1024,PQ16x4fs``: 10 + 2 x 16 x 25 = 810), in a strictly increasing
        sequence that may skip values (sub-quantizers train in parallel) and ends with
        ``(total, total)``. Indexes that run no k-means (``Flat``, ``HNSW``, SQ8
        codecs) count one unit: the callback is called once, with ``(1, 1)``, when
        training is done. ``LeanVec<D>`` specs count the projection fit as one unit
        (reported when the fit, which runs in numpy, is done) followed by the inner
        index's units. The callback runs on the calling thread while searches may run,
        so it may search the index (which is still as it was before the call), but it
        must not add to, remove from, train or save that index: those wait for the
        training to end, which would never come.

        Training is atomic: on failure, Ctrl-C, a cancel (:class:`annx.CancelledError`)
        or an exception raised by the callback (which propagates unchanged), the index
        is left exactly as it was, so an untrained index stays untrained and can be
        trained again.
        """
        x = as_matrix(x, self.d, "x")
        if x.shape[0] == 0:
            raise InvalidArgumentError("train needs at least one vector, got 0")
        head = self.spec.split(",")[0]
        if head.startswith("LeanVec"):
            self._train_leanvec(x, queries, progress)
            return
        if queries is not None:
            raise InvalidArgumentError(
                f"queries are used by LeanVec<D>_ood specs only, not by {self.spec!r}"
            )
        if head.startswith("IVF") and x.shape[0] < 39 * self.nlist:
            warnings.warn(
                f"training {self.spec!r} on {x.shape[0]} vectors: fewer than 39 per list "
                f"(nlist={self.nlist}); the lists may be poor",
                RuntimeWarning,
                stacklevel=2,
            )
        if progress is None or progress is False:
            self._impl.train(x)
            return
        reporter = _Reporter(progress, self._impl.train_units(), "train", unit="it")
        try:
            self._impl.train(x, reporter.hook())
        finally:
            reporter.close()

    def _train_leanvec(self, x: np.ndarray, queries: Any, progress: Progress) -> None:
        ood = self._impl.leanvec_ood
        if not ood and queries is not None:
            raise InvalidArgumentError(
                f"{self.spec!r} is LeanVec-ID (PCA), which does not use queries; use "
                f"'LeanVec{self._impl.leanvec_target_dim}_ood' for query-aware projections"
            )
        if ood and queries is None:
            raise InvalidArgumentError(
                f"{self.spec!r} needs training queries: index.train(x, queries=q_train) "
                "(held-out queries of the kind the index will serve, not the test queries)"
            )
        if queries is not None:
            queries = as_matrix(queries, self.d, "queries")
        if self.ntotal:
            raise InvalidArgumentError(
                f"index {self.spec!r} already holds vectors; a LeanVec index is trained once, "
                "before add"
            )
        if progress is None or progress is False:
            reporter = None
        else:  # the fit is one unit, then the inner index's training
            reporter = _Reporter(progress, 1 + self._impl.train_units(), "train", unit="it")
        try:
            lv = LeanVec(
                self._impl.leanvec_target_dim,
                "ood" if ood else "id",
                metric=self.metric,
                seed=int(self._impl.seed) % 2**63,
            ).fit(x, queries)
            hook = None
            if reporter is not None:
                if not reporter.update(1):
                    raise CancelledError(
                        f"training {self.spec!r} cancelled by its progress callback at 1 of "
                        f"{reporter.total} (after the LeanVec fit); the index is unchanged"
                    )
                hook = reporter.hook(offset=1)
            self._impl.leanvec_train(x, lv.mean, lv.data_matrix, lv.query_matrix, hook)
        finally:
            if reporter is not None:
                reporter.close()

    @property
    def leanvec(self) -> LeanVec:
        """LeanVec specs: the fitted transform as an :class:`annx.LeanVec`.

        It holds the index's mean and matrices, e.g. to inspect or reuse the projection.
        """
        mean, data, query = self._impl.leanvec_matrices()
        if mean is None:
            raise NotTrainedError(f"index {self.spec!r} is not trained yet")
        kind = "ood" if self._impl.leanvec_ood else "id"
        return LeanVec._from_matrices(kind, self.metric, mean, data, query)

    def leanvec_bytes_per_vector(self) -> tuple[float, float]:
        """LeanVec specs: bytes per vector of the primary and secondary stores.

        The primary is the reduced index, the secondary the full-dimension re-rank
        store; they sum to :attr:`bytes_per_vector`.
        """
        primary, secondary = self._impl.leanvec_bytes_per_vector()
        return float(primary), float(secondary)

    def add(
        self,
        x: Any,
        ids: Any = None,
        *,
        threads: int | None = None,
        progress: Progress = None,
    ) -> np.ndarray:
        """Add vectors ``x`` (float32 [n, d]); returns their ids (int64 [n]).

        Without ``ids`` the vectors get ids ``next_id, next_id + 1, ...`` (which is
        ``0..n-1`` continuing from ``ntotal`` as long as nothing was removed). With
        ``ids`` (int64 [n], any order, values >= 0) those ids are used; an id already
        present or repeated raises :class:`annx.InvalidArgumentError` and nothing is
        added. float16/float64 input is converted; non-contiguous input is copied.
        ``threads`` caps the threads used (default :func:`annx.get_num_threads`).

        HNSW inserts each batch in a random permutation drawn from the index's seed
        (``shuffle=False`` at creation keeps the given order, ``insert_order="lid_desc"``
        orders it by decreasing local intrinsic dimensionality); with ``threads=1`` a
        seeded build is bit-for-bit reproducible. Slots of removed vectors are reused
        first, and their former neighbours' links are repaired. An interrupted add
        (Ctrl-C) adds nothing.

        ``progress=True`` shows a progress bar (tqdm if installed, else a line on stderr
        every second); a callable is called as ``progress(done, total)`` and may return
        ``False`` to cancel: the vectors already added by this call are removed again
        and :class:`annx.CancelledError` is raised. With progress the vectors are added
        in steps of about 1 % (at least 1,024): the same ids, but HNSW shuffles each
        step on its own, so the graph differs from a single add's.
        """
        x = as_matrix(x, self.d, "x")
        id_arr = None if ids is None else as_ids(ids, x.shape[0])
        nthreads = as_threads(threads)
        n = x.shape[0]
        with self._lock:  # adds run one at a time anyway; this keeps next_id exact
            if progress is None or progress is False:
                first = self._impl.next_id
                self._impl.add(x, id_arr, nthreads)
                if id_arr is None:
                    return np.arange(first, first + n, dtype=np.int64)
                return id_arr.copy()
            if id_arr is None:
                first = self.next_id
                id_arr = np.arange(first, first + n, dtype=np.int64)
            add_in_steps(
                lambda b, e: self._impl.add(x[b:e], id_arr[b:e], nthreads),
                lambda done: self._impl.remove(id_arr[:done]),
                n,
                progress,
                chunk_size(n),
            )
            return id_arr

    def add_codes(
        self,
        codes: Any,
        ids: Any = None,
        threads: int | None = None,
        *,
        progress: Progress = None,
    ) -> np.ndarray:
        """Add binary codes produced elsewhere to an index with a ``BIN`` codec.

        ``codes`` are packed sign bits, uint8 ``[n, d / 8]`` (``numpy.packbits(x > 0,
        axis=1)``; a set bit is +1); each is stored as the sign vector of its bits, so
        the index holds exactly these bits. ``BEBR<L>`` codecs take float vectors only.
        The sign vectors are made in chunks; ids are checked before anything is added,
        so a bad call adds nothing. Returns the ids (int64 [n]). ``progress`` as in
        :meth:`add` (units: codes; a cancel removes what this call added).
        """
        codec = self.spec.split(",")[1] if "," in self.spec else ""
        if codec not in ("BIN", "BIN_adc"):
            raise InvalidArgumentError(
                f"add_codes needs a BIN codec (e.g. 'Flat,BIN', 'HNSW32,BIN'), "
                f"this index is {self.spec!r}"
            )
        if "Refine" in self.spec:
            raise InvalidArgumentError(
                "add_codes cannot fill a Refine store (it needs the float vectors); "
                "use a spec without Refine"
            )
        if self.d % 8:
            raise InvalidArgumentError(f"add_codes needs d to be a multiple of 8, got {self.d}")
        c = as_codes(codes, self.d // 8)
        n = c.shape[0]
        id_arr = None if ids is None else as_ids(ids, n)
        with self._lock:
            if n <= CHUNK_ROWS and (progress is None or progress is False):
                # One add: the core checks the ids itself.
                return self.add(unpack_signs(c, self.d), ids=id_arr, threads=threads)
            if id_arr is None:
                id_arr = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
            elif np.unique(id_arr).size != n:
                raise InvalidArgumentError("ids contain repeats")
            present = np.isin(id_arr, self.ids()) if self.ntotal else np.zeros(n, bool)
            if present.any():
                raise InvalidArgumentError(f"id {int(id_arr[present][0])} is already in the index")
            reported = not (progress is None or progress is False)

            def add_step(b: int, e: int) -> None:
                self.add(unpack_signs(c[b:e], self.d), ids=id_arr[b:e], threads=threads)

            add_in_steps(
                add_step,
                lambda done: self.remove(id_arr[:done]),
                n,
                progress,
                min(CHUNK_ROWS, chunk_size(n)) if reported else CHUNK_ROWS,
                noun="codes",
            )
            return id_arr

    def remove(self, ids: Any) -> int:
        """Remove vectors by id; returns how many were removed.

        Every id must be present and appear once; otherwise nothing is removed and
        :class:`annx.InvalidArgumentError` names the offending id.
        """
        return self._impl.remove(as_ids(ids))

    # ------------------------------------------------------------------ searching
    def _structure(self) -> str:
        tokens = self.spec.split(",")
        head = tokens[1] if tokens[0].startswith("LeanVec") else tokens[0]
        if head.startswith("IVF"):
            return "ivf_hnsw" if "_HNSW" in head else "ivf"
        return re.sub(r"\d.*$", "", head).lower()

    def _check_params(self, params: dict[str, Any]) -> dict[str, int]:
        spec = self.spec
        allowed = _SEARCH_PARAMS.get(self._structure(), frozenset())
        if "Refine(" in spec:
            allowed = allowed | {"rerank"}
        for name in params:
            if name in allowed:
                continue
            if name in _KNOWN_SEARCH_PARAMS:
                raise InvalidArgumentError(
                    f"search parameter {name!r} does not apply to a {self.spec!r} index"
                )
            raise InvalidArgumentError(
                f"unknown search parameter {name!r}; accepted: filter, threads"
                + "".join(f", {p}" for p in sorted(allowed))
            )
        out = {}
        for name, value in params.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
            if value > 2**30:
                raise InvalidArgumentError(f"{name}={value} is too large (at most 2**30)")
            out[name] = int(value)
        return out

    def search(
        self, q: Any, k: int, *, filter: Any = None, threads: int | None = None, **params: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Find the ``k`` nearest stored vectors of each query.

        Args:
            q: queries, float32 [nq, d].
            k: number of results per query (>= 1; may exceed ``ntotal``: padded).
            filter: restrict results to these ids: an int64 array of allowed ids, or a
                boolean mask indexed by id (ids beyond the mask's length are excluded).
            threads: threads for this call (default: :func:`annx.get_num_threads`).
            **params: structure-specific parameters; one that does not apply raises
                :class:`annx.InvalidArgumentError`. HNSW: ``ef_search`` (candidate
                list size, default ``max(64, k)``); with a ``Refine(...)`` codec also
                ``rerank`` (candidates re-scored with the finer codec, default
                ``ef_search``). Under a filter, HNSW answers exactly when the filter
                admits at most 20,000 vectors or when an exact scan is estimated
                cheaper than the walk, and falls back to exact search when the walk
                finds fewer than ``k`` admissible vectors.
                IVF: ``nprobe`` (lists scanned, default 16); ``IVF<n>_HNSW<M>`` also
                ``ef_search`` for the graph over the centroids. ``Refine(...)`` specs
                take ``rerank``: candidates re-scored with the finer codec (default
                ``4 * k``; HNSW: ``ef_search``). Under a filter that admits at most
                4,096 vectors, IVF scores exactly those vectors' codes; when the probed
                lists hold fewer than ``k`` admissible vectors, the other lists are
                scanned too. ``LeanVec<D>`` specs take their inner index's parameters
                plus ``rerank``: candidates the reduced-dimension search returns and
                re-scores in full dimension (default ``max(4 * k, ef_search)``); the
                returned distances are the exact full-dimension ones.

        Returns:
            ``(D, I)``: float32 [nq, k] distances and int64 [nq, k] ids, best first.

        """
        p = self._check_params(params)
        q = as_matrix(q, self.d, "queries")
        k = as_k(k)
        if k > _MAX_RESULTS or q.shape[0] * k > _MAX_RESULTS:
            raise InvalidArgumentError(
                f"k={k} with {q.shape[0]} queries asks for {q.shape[0] * k} results, more than "
                f"the {_MAX_RESULTS} one call can return (the index holds {self.ntotal} vectors)"
            )
        fi, fm = as_filter(filter)
        return self._impl.search(q, k, as_threads(threads), fi, fm, **p)

    def range_search(
        self,
        q: Any,
        radius: float,
        *,
        filter: Any = None,
        threads: int | None = None,
        **params: Any,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All stored vectors within ``radius`` of each query, faiss-style.

        For ``"l2"`` results have squared distance ``< radius``; for ``"ip"``/``"cos"``
        similarity ``> radius``. Returns ``(lims, D, I)``: the results of query ``i``
        are ``D[lims[i]:lims[i+1]]`` and ``I[lims[i]:lims[i+1]]``, best first.
        Structure-specific ``**params`` are checked as in :meth:`search`. On HNSW
        the result is approximate: the walk's candidate list (starting at
        ``ef_search``) grows 4x at a time until it reaches past the radius; every
        candidate is re-ranked, so ``rerank`` does not apply. On IVF only the
        ``nprobe`` nearest lists are scanned; with a PQ or SQ8 codec distances are the
        codes' approximate ones; with ``Refine(...)`` every vector of the probed lists
        is scored with the finer codec, so the result is exact within those lists.
        """
        if "rerank" in params:
            raise InvalidArgumentError(
                "range_search re-ranks every candidate; rerank does not apply"
            )
        p = self._check_params(params)
        q = as_matrix(q, self.d, "queries")
        radius = float(radius)
        if not math.isfinite(radius):
            raise InvalidArgumentError(f"radius must be finite, got {radius}")
        fi, fm = as_filter(filter)
        return self._impl.range_search(q, radius, as_threads(threads), fi, fm, **p)

    def reconstruct(self, ids: Any) -> np.ndarray:
        """Stored vectors of ``ids`` as float32 [n, d] (decoded; normalised for ``"cos"``).

        A single integer id returns a 1-D vector.
        """
        single = isinstance(ids, (int, np.integer)) and not isinstance(ids, bool)
        out = self._impl.reconstruct(as_ids(ids))
        return out[0] if single else out

    def ids(self) -> np.ndarray:
        """All live ids (int64), in storage order."""
        return self._impl.ids()

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to ``path`` atomically (temp file, fsync, rename)."""
        self._impl.save(os.fspath(path))

    def to_bytes(self) -> bytes:
        """The index serialised in the annx file format (same bytes as :meth:`save`)."""
        return self._impl.to_bytes()


register_kind("index", Index)


def __getattr__(name: str) -> Any:
    # annx.index.index_factory moved to annx.factory (it builds BinaryIndex too).
    if name == "index_factory":
        from .factory import index_factory

        return index_factory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
