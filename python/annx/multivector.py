"""Multi-vector (ColBERT-style) retrieval: MUVERA encodings, exact Chamfer, an index.

A document or query is a *set* of token vectors. Sets are passed as a list of float32
arrays of shape ``[n_i, dim]``, or as ``(tokens, offsets)`` with ``tokens`` float32
``[T, dim]`` and ``offsets`` int64 ``[n + 1]`` (set ``i`` is
``tokens[offsets[i]:offsets[i + 1]]``, zero copy), or as one 2-D array meaning a single
set. Every set needs at least one vector.

- :class:`FDE`: MUVERA fixed-dimensional encodings (Dhulipala et al., 2024), whose inner
  products approximate ``reps`` times the Chamfer similarity.
- :func:`chamfer`: exact Chamfer (MaxSim) scores ``sum_q max_p <q, p>``.
- :class:`MultiVectorIndex`: documents' FDEs in any single-vector index, candidates by
  FDE inner product, exact Chamfer re-ranking over the stored token vectors.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from . import _core
from ._errors import FormatError, InvalidArgumentError
from ._progress import Progress, _Reporter, add_in_steps
from ._surface import IndexSurface, add_lock, deprecated, register_kind
from ._surface import from_bytes as _from_bytes_any
from ._surface import load as _load_any
from ._validate import as_filter, as_ids, as_k, as_matrix, as_threads

Sets = Union[Sequence[np.ndarray], tuple[np.ndarray, np.ndarray], np.ndarray]

_PRESETS = {
    "default": dict(k_sim=5, d_proj=16, reps=20),
    "compact": dict(k_sim=4, d_proj=16, reps=10),
    "recall": dict(k_sim=4, d_proj=16, reps=40),
}


def _as_sets(sets: Any, name: str, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalise ragged sets to (tokens float32 [T, dim], offsets int64 [n + 1])."""
    if (
        isinstance(sets, tuple)
        and len(sets) == 2
        and np.ndim(sets[1]) == 1
        and np.ndim(sets[0]) == 2
    ):
        tokens = sets[0]
        d = dim if dim is not None else np.shape(tokens)[1]
        tokens = as_matrix(tokens, d, f"{name} tokens")
        offsets = np.asarray(sets[1])
        if offsets.dtype.kind not in "iu":
            raise InvalidArgumentError(
                f"{name} offsets must be integers (int64), got dtype {offsets.dtype}"
            )
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        if offsets.size == 0:
            raise InvalidArgumentError(f"{name} offsets must have n + 1 >= 1 entries, got none")
        return tokens, offsets
    if isinstance(sets, np.ndarray) and sets.ndim == 2:
        sets = [sets]
    if isinstance(sets, np.ndarray) or not isinstance(sets, (list, tuple)):
        raise InvalidArgumentError(
            f"{name} must be a list of 2-D float32 arrays [n_i, dim], a (tokens, offsets) "
            f"tuple, or one 2-D array; got {type(sets).__name__}"
            + (f" of shape {sets.shape}" if isinstance(sets, np.ndarray) else "")
        )
    if len(sets) == 0:
        if dim is None:
            raise InvalidArgumentError(f"{name} is empty and the dimension is unknown")
        return np.zeros((0, dim), np.float32), np.zeros(1, np.int64)
    first = np.asarray(sets[0])
    if first.ndim != 2:
        raise InvalidArgumentError(
            f"{name}[0] must be a 2-D array [n_i, dim] (one row per token vector), got shape "
            f"{first.shape}"
        )
    d = dim if dim is not None else first.shape[1]
    parts = [as_matrix(s, d, f"{name}[{i}]") for i, s in enumerate(sets)]
    counts = np.fromiter((p.shape[0] for p in parts), dtype=np.int64, count=len(parts))
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise InvalidArgumentError(
            f"{name}[{int(empty[0])}] is empty; every set needs at least one vector"
        )
    offsets = np.zeros(len(parts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return np.concatenate(parts, axis=0), offsets


def _int(value: Any, name: str, lo: int, hi: int, none_as: int | None = None) -> int:
    if value is None and none_as is not None:
        return none_as
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidArgumentError(f"{name} must be in [{lo}, {hi}], got {value}")
    return int(value)


class FDE:
    """MUVERA fixed-dimensional encoder (shared design ``algorithms.md`` section 6).

    Each of ``reps`` repetitions splits space into ``2**k_sim`` buckets by SimHash (Gray
    coded, as in Google's graph-mining reference), projects each token with a sparse
    ±1 AMS sketch to ``d_proj`` dimensions (``d_proj=None``: no projection), and
    concatenates per-bucket blocks: sums of the query tokens, means of the document
    tokens, with empty document buckets filled from one document token (``fill_empty``).
    ``fill`` picks that token: ``"margin"`` (default) the token lying deepest on the
    bucket's side of the SimHash hyperplanes (largest ``sum_i ±<g_i, t>``), ``"hamming"``
    the token whose SimHash bits are nearest (graph-mining's rule, first token on ties;
    annx's only rule before 0.2 and what index files without a fill entry use). Margin
    raises candidate recall, most for short queries (``docs/muvera.md``). ``final_dim``
    adds a count-sketch projection to that many dimensions.
    ``<encode_queries(Q), encode_docs(P)>`` approximates ``reps * chamfer(Q, P)``.

    The random matrices come from annx's own portable generator: the same ``seed`` gives
    bit-identical encodings on every platform. Differences from the reference are listed
    in ``docs/muvera.md``.
    """

    def __init__(
        self,
        k_sim: int = 5,
        d_proj: int | None = 16,
        reps: int = 20,
        fill_empty: bool = True,
        final_dim: int | None = None,
        seed: int = 0,
        fill: str = "margin",
    ) -> None:
        self.k_sim = _int(k_sim, "k_sim", 0, 20)
        self.d_proj = None if d_proj is None else _int(d_proj, "d_proj", 1, 1 << 16)
        self.reps = _int(reps, "reps", 1, 4096)
        if not isinstance(fill_empty, (bool, np.bool_)):
            raise InvalidArgumentError(f"fill_empty must be True or False, got {fill_empty!r}")
        self.fill_empty = bool(fill_empty)
        self.final_dim = None if final_dim is None else _int(final_dim, "final_dim", 1, 1 << 24)
        self.seed = _int(seed, "seed", 0, 2**64 - 1)
        if fill not in ("margin", "hamming"):
            raise InvalidArgumentError(f"fill must be 'margin' or 'hamming', got {fill!r}")
        self.fill = str(fill)
        self._encoders: dict[int, Any] = {}

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> FDE:
        """Return an FDE with a named parameter set (keyword overrides win).

        ``"default"``: k_sim 5, d_proj 16, reps 20 (10,240 dimensions, the paper's);
        ``"compact"``: 4, 16, 10 (2,560 dimensions); ``"recall"``: 4, 16, 40 (10,240
        dimensions like the default, twice the repetitions of half as many buckets: fewer
        candidates for the same recall at every query length, most for short queries,
        for about 1.35x the encoding time; bench/results/muvera-fde-minilm-mv-5000.md).
        """
        if name not in _PRESETS:
            raise InvalidArgumentError(
                f"unknown FDE preset {name!r}; choose from {sorted(_PRESETS)}"
            )
        return cls(**{**_PRESETS[name], **overrides})

    def _config(self) -> tuple[int, int, int, bool, int, int, str]:
        return (
            self.k_sim,
            self.d_proj or 0,
            self.reps,
            self.fill_empty,
            self.final_dim or 0,
            self.seed,
            self.fill,
        )

    def _encoder(self, dim: int) -> Any:
        enc = self._encoders.get(dim)
        if enc is None:
            enc = _core.FdeEncoder(dim, *self._config())
            self._encoders[dim] = enc
        return enc

    def output_dim(self, dim: int) -> int:
        """Dimension of the encodings of ``dim``-dimensional token vectors."""
        if self.final_dim:
            return self.final_dim
        return self.reps * (2**self.k_sim) * (self.d_proj or dim)

    def _encode(
        self,
        sets: Sets,
        queries: bool,
        threads: int | None,
        dim: int | None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        tokens, offsets = _as_sets(sets, "queries" if queries else "docs", dim)
        enc = self._encoder(tokens.shape[1])
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise InvalidArgumentError(
                    f"out must be a numpy float32 array, got {type(out).__name__}"
                )
            return enc.encode_into(tokens, offsets, queries, as_threads(threads), out)
        if offsets.size == 1:
            return np.zeros((0, self.output_dim(tokens.shape[1])), np.float32)
        return enc.encode(tokens, offsets, queries, as_threads(threads))

    def encode_queries(
        self, sets: Sets, threads: int | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Encode query sets (sum per bucket, no filling): float32 ``[n, output_dim]``.

        ``out``: optional writeable C-contiguous float32 array ``[n, output_dim]`` to write
        the encodings into (and return), as ``encode_docs``.
        """
        return self._encode(sets, True, threads, None, out)

    def encode_docs(
        self, sets: Sets, threads: int | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Encode document sets: float32 ``[n, output_dim]``.

        Blocks are the mean of the bucket's tokens; empty buckets are filled when
        ``fill_empty``.

        ``out``: optional writeable C-contiguous float32 array ``[n, output_dim]``, not
        overlapping the tokens, that receives the encodings and is returned (anything else
        raises ``InvalidArgumentError`` and writes nothing). Reusing one array across
        batches of the same size skips the zero-filling of fresh memory that every new
        result array costs (the kernel clears each new page: about a sixth of the
        encoding time for large batches of documents).
        """
        return self._encode(sets, False, threads, None, out)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FDE) and self._config() == other._config()

    def __hash__(self) -> int:
        return hash(self._config())

    def __repr__(self) -> str:
        return (
            f"FDE(k_sim={self.k_sim}, d_proj={self.d_proj}, reps={self.reps}, "
            f"fill_empty={self.fill_empty}, final_dim={self.final_dim}, seed={self.seed}, "
            f"fill={self.fill!r})"
        )


def chamfer(query_set: Any, doc_sets: Sets, threads: int | None = None) -> np.ndarray:
    """Exact Chamfer (MaxSim) similarity ``sum over q of max over p of <q, p>``.

    ``query_set`` is one 2-D float32 array ``[m, dim]``: the result is float32 ``[n]``,
    one score per document. A list of query sets (or ``(tokens, offsets)``) gives
    ``[n_queries, n]``. SIMD and multi-threaded over documents.
    """
    t = as_threads(threads)
    if isinstance(query_set, np.ndarray) and query_set.ndim == 2:
        q = as_matrix(query_set, query_set.shape[1], "query_set")
        if q.shape[0] == 0:
            raise InvalidArgumentError("query_set is empty; it needs at least one vector")
        tokens, offsets = _as_sets(doc_sets, "doc_sets", q.shape[1])
        return _core.chamfer(q, tokens, offsets, t)
    qt, qo = _as_sets(query_set, "query_sets")
    tokens, offsets = _as_sets(doc_sets, "doc_sets", qt.shape[1])
    return _core.chamfer_matrix(qt, qo, tokens, offsets, t)


class MultiVectorIndex(IndexSurface):
    """MUVERA retrieval over multi-vector documents with exact Chamfer re-ranking.

    ``spec`` is any single-vector factory string (``"HNSW32"``, ``"Flat"``,
    ``"HNSW32,SQ8"``, ``"IVF64,PQ256x4fs"``, ...) for the documents' FDEs, searched by
    inner product; its ids are the documents' ids, so ``filter`` works as for
    :class:`annx.Index`. ``tokens`` (``"F32"`` or ``"F16"``) is how the token vectors are
    kept for re-ranking. ``search`` returns Chamfer scores (descending) and ids.

    Concurrency: searches may run concurrently with each other and with ``add`` (a
    search sees an added document once its tokens are stored); ``remove`` and ``train``
    briefly block searches.

    It has the surface of every annx index (``d``, ``metric`` (``"chamfer"``), ``spec``,
    ``ntotal``, ``bytes_per_vector`` (per document), ``memory_usage()``, ``reset()``,
    pickling); :func:`annx.load` and :func:`annx.from_bytes` return a
    ``MultiVectorIndex`` for its files.
    """

    def __init__(
        self,
        dim: int,
        spec: str = "HNSW32",
        fde: FDE | None = None,
        tokens: str = "F32",
        *,
        _impl: Any = None,
    ) -> None:
        self._lock = add_lock()
        if _impl is not None:
            self._impl = _impl
            c = _impl.fde_config
            self.fde = FDE(
                c["k_sim"],
                c["d_proj"] or None,
                c["reps"],
                c["fill_empty"],
                c["final_dim"] or None,
                c["seed"],
                c["fill"],
            )
            return
        dim = _int(dim, "dim", 1, 1 << 16)
        if not isinstance(spec, str):
            raise InvalidArgumentError(f"spec must be a factory string, got {spec!r}")
        self.fde = FDE() if fde is None else fde
        if not isinstance(self.fde, FDE):
            raise InvalidArgumentError(f"fde must be an annx.FDE, got {type(fde).__name__}")
        if tokens not in ("F32", "F16"):
            raise InvalidArgumentError(f"tokens must be 'F32' or 'F16', got {tokens!r}")
        self._impl = _core.MultiVectorIndex(dim, spec, *self.fde._config(), tokens)

    # ---- properties ----------------------------------------------------------------
    @property
    def d(self) -> int:
        """Dimension of the token vectors."""
        return self._impl.dim

    @property
    def dim(self) -> int:
        """Deprecated alias of :attr:`d`."""
        deprecated("MultiVectorIndex.dim", "MultiVectorIndex.d")
        return self._impl.dim

    @property
    def metric(self) -> str:
        """Always ``"chamfer"``: scores are Chamfer (MaxSim) similarities, descending."""
        return "chamfer"

    @property
    def next_id(self) -> int:
        """The id :meth:`add` assigns next when no ids are given."""
        return self._impl.next_id

    @property
    def spec(self) -> str:
        """Canonical spec of the inner FDE index."""
        return self._impl.inner_spec

    @property
    def tokens(self) -> str:
        """Storage of the token vectors: ``"F32"`` or ``"F16"``."""
        return self._impl.tokens

    @property
    def ntotal(self) -> int:
        """Number of documents."""
        return self._impl.ntotal

    @property
    def ntokens(self) -> int:
        """Number of stored token vectors."""
        return self._impl.ntokens

    @property
    def is_trained(self) -> bool:
        """False for IVF / PQ specs until :meth:`train` ran."""
        return self._impl.is_trained

    @property
    def output_dim(self) -> int:
        """Dimension of the FDEs in the inner index."""
        return self._impl.output_dim

    def __contains__(self, id: Any) -> bool:
        return isinstance(id, numbers.Integral) and self._impl.contains(int(id))

    def ids(self) -> np.ndarray:
        """Ids of the documents (int64)."""
        return self._impl.ids()

    def get_tokens(self, id: int) -> np.ndarray:
        """The stored token vectors of one document (float32 ``[n_i, dim]``)."""
        return self._impl.doc_tokens(int(id))

    def memory_usage(self) -> int:
        """Bytes held: inner index, token vectors and id bookkeeping."""
        return self._impl.memory_bytes()

    def memory_bytes(self) -> int:
        """Deprecated alias of :meth:`memory_usage`."""
        deprecated("MultiVectorIndex.memory_bytes()", "MultiVectorIndex.memory_usage()")
        return self._impl.memory_bytes()

    @property
    def bytes_per_vector(self) -> float:
        """Bytes per document: its FDE in the inner index plus its token vectors.

        :meth:`bytes_per_document` splits it into the two parts.
        """
        return float(self._impl.inner_bytes_per_doc() + self._impl.token_bytes_per_doc())

    def bytes_per_document(self) -> dict[str, float]:
        """Bytes per document: ``{"fde": inner index, "tokens": token store, "total"}``."""
        fde, tok = self._impl.inner_bytes_per_doc(), self._impl.token_bytes_per_doc()
        return {"fde": fde, "tokens": tok, "total": fde + tok}

    def bytes_per_doc(self) -> dict[str, float]:
        """Deprecated alias of :meth:`bytes_per_document` (see :attr:`bytes_per_vector`)."""
        deprecated("MultiVectorIndex.bytes_per_doc()", "MultiVectorIndex.bytes_per_vector")
        return self.bytes_per_document()

    # ---- mutation ------------------------------------------------------------------
    def train(self, docs: Sets, threads: int | None = None, *, progress: Progress = None) -> None:
        """Train the inner index (IVF / PQ specs) on the FDEs of ``docs``.

        ``progress`` (``True`` or a ``callback(done, total)``) counts one unit, reported
        as ``(1, 1)`` when training is done (as for an index that runs no k-means); the
        training is then committed, so the callback's return value is ignored.
        """
        tokens, offsets = _as_sets(docs, "docs", self.d)
        reporter = None if progress is None or progress is False else _Reporter(
            progress, 1, "train", unit="it"
        )  # fmt: skip
        try:
            self._impl.train(tokens, offsets, as_threads(threads))
            if reporter is not None:
                reporter.update(1)
        finally:
            if reporter is not None:
                reporter.close()

    def add(
        self,
        docs: Sets,
        ids: Any = None,
        threads: int | None = None,
        *,
        progress: Progress = None,
    ) -> np.ndarray:
        """Add documents (ragged sets of token vectors) with optional int64 ``ids``.

        Without ids, documents get ``next_id, next_id + 1, ...``. Nothing is added when
        any document or id is invalid. Returns the ids (int64 ``[n]``).

        ``progress=True`` shows a bar; a callable is called as ``progress(done, total)``
        (units: documents, in steps of about 1 %) and may return ``False`` to cancel:
        the documents this call added are removed again and
        :class:`annx.CancelledError` is raised.
        """
        tokens, offsets = _as_sets(docs, "docs", self.d)
        n = offsets.size - 1
        id_arr = None if ids is None else as_ids(ids, n)
        nthreads = as_threads(threads)
        with self._lock:
            if id_arr is None:
                first = self._impl.next_id
                id_arr = np.arange(first, first + n, dtype=np.int64)
            else:
                id_arr = id_arr.copy()
            if n == 0:
                return id_arr
            if progress is None or progress is False:
                self._impl.add(tokens, offsets, id_arr, nthreads)
                return id_arr
            if np.unique(id_arr).size != n:
                raise InvalidArgumentError("ids contain repeats")
            present = np.isin(id_arr, self.ids()) if self.ntotal else np.zeros(n, bool)
            if present.any():
                raise InvalidArgumentError(f"id {int(id_arr[present][0])} is already in the index")

            def add_step(b: int, e: int) -> None:
                lo, hi = int(offsets[b]), int(offsets[e])
                self._impl.add(tokens[lo:hi], offsets[b : e + 1] - lo, id_arr[b:e], nthreads)

            add_in_steps(
                add_step,
                lambda done: self._impl.remove(id_arr[:done]),
                n,
                progress,
                max(1, -(-n // 100)),
                unit="doc",
                noun="documents",
            )
            return id_arr

    def remove(self, ids: Any) -> int:
        """Remove documents by id (all must exist; nothing is removed otherwise)."""
        return self._impl.remove(as_ids(ids))

    # ---- search --------------------------------------------------------------------
    def search(
        self,
        query_sets: Sets,
        k: int,
        candidates: int | None = None,
        *,
        filter: Any = None,
        ef_search: int | None = None,
        nprobe: int | None = None,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` documents by exact Chamfer score for each query set.

        ``candidates`` documents (default ``max(200, k)``, at least ``k``) are retrieved
        by FDE inner product and re-ranked exactly. ``ef_search`` / ``nprobe`` tune an
        HNSW / IVF inner index (defaults: the inner index's). Returns ``(S, I)``, float32
        and int64 ``[n_queries, k]``, best first; missing results are id -1, score -inf.
        """
        k = as_k(k)
        c = _int(candidates, "candidates", 1, 1 << 30, none_as=0)
        ef = _int(ef_search, "ef_search", 1, 1 << 30, none_as=0)
        npb = _int(nprobe, "nprobe", 1, 1 << 30, none_as=0)
        tokens, offsets = _as_sets(query_sets, "query_sets", self.d)
        fid, fmask = as_filter(filter)
        return self._impl.search(tokens, offsets, k, c, as_threads(threads), fid, fmask, ef, npb)

    # ---- persistence ---------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save atomically (temp file + rename) in the annx container format."""
        self._impl.save(os.fspath(path))

    def to_bytes(self) -> bytes:
        """The index as bytes (the same format as :meth:`save`)."""
        return self._impl.to_bytes()

    @classmethod
    def _open_file(cls, path: str, mmap: bool, verify: bool) -> MultiVectorIndex:
        return cls(0, _impl=_core.mv_load(path, verify))  # read, not mapped

    @classmethod
    def _open_bytes(cls, data: Any, verify: bool) -> MultiVectorIndex:
        return cls(0, _impl=_core.mv_from_bytes(data, verify))

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], verify: bool = True, mmap: bool = False
    ) -> MultiVectorIndex:
        """Alias of :func:`annx.load` that checks the file holds a multi-vector index.

        A malformed file raises :class:`annx.FormatError`. ``mmap`` is accepted for the
        common signature; the file is read (token vectors are not mapped).
        """
        out = _load_any(path, mmap=mmap, verify=verify)
        if not isinstance(out, MultiVectorIndex):
            raise FormatError(
                f"{os.fspath(path)} holds a {type(out).__name__}, not a MultiVectorIndex "
                "(annx.load opens any annx file)"
            )
        return out

    @classmethod
    def from_bytes(cls, data: bytes, verify: bool = True) -> MultiVectorIndex:
        """Alias of :func:`annx.from_bytes` that checks the bytes hold a multi-vector index."""
        out = _from_bytes_any(data, verify=verify)
        if not isinstance(out, MultiVectorIndex):
            raise FormatError(
                f"the bytes hold a {type(out).__name__}, not a MultiVectorIndex "
                "(annx.from_bytes opens any annx file)"
            )
        return out

    def __repr__(self) -> str:
        return (
            f"annx.MultiVectorIndex(spec={self.spec!r}, d={self.d}, metric='chamfer', "
            f"ntotal={self.ntotal}, fde={self.fde!r}, tokens={self.tokens!r})"
        )


register_kind("multivector", MultiVectorIndex)
