"""Multi-tenant search: one shared index, each vector visible to some tenants.

:class:`MultiTenantIndex` follows Curator (Jin et al., "Efficient Indexing for
Multi-Tenant Vector Databases"): one clustering tree shared by all tenants, and per
tenant a compact description of where its vectors sit in that tree, so a search for a
tenant walks only the tenant's part of the tree. Small tenants are scanned exactly. See
``docs/multitenant.md``.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import _core
from ._errors import InvalidArgumentError
from ._progress import Progress, _Reporter, add_in_steps, chunk_size
from ._surface import IndexSurface, register_kind
from ._validate import as_ids, as_k, as_matrix, as_threads

_METRICS = {
    "l2": "l2",
    "euclidean": "l2",
    "ip": "ip",
    "inner_product": "ip",
    "cos": "cos",
    "cosine": "cos",
    0: "ip",  # faiss.METRIC_INNER_PRODUCT
    1: "l2",  # faiss.METRIC_L2
}
# Largest nq * k one search may return.
_MAX_RESULTS = 2**31


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidArgumentError(f"{name} must be in [{lo}, {hi}], got {value}")
    return int(value)


def _tenant(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(f"tenant must be an integer >= 0, got {value!r}")
    if not 0 <= value < 2**63:
        raise InvalidArgumentError(f"tenant must be an integer >= 0, got {value}")
    return int(value)


def _tenant_lists(tenants: Any, n: int) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """Normalise ``tenants`` to (flat int64 tenant ids, int64 offsets [n + 1]).

    Accepts a list of n lists/arrays of ints (the tenants of each vector), a 1-D integer
    array of n entries (one tenant each), a single int (every vector, that tenant), or
    None (no tenant: stored, never returned).
    """
    if tenants is None:
        return None, None
    if isinstance(tenants, numbers.Integral) and not isinstance(tenants, bool):
        t = _tenant(tenants)
        return np.full(n, t, np.int64), np.arange(n + 1, dtype=np.int64)
    if isinstance(tenants, np.ndarray) and tenants.ndim == 1:
        flat = as_ids(tenants, n, name="tenants")
        offsets = np.arange(n + 1, dtype=np.int64)
    else:
        if isinstance(tenants, (str, bytes)) or not isinstance(tenants, Iterable):
            raise InvalidArgumentError(
                f"tenants must be a list with one list of tenant ids per vector, got "
                f"{type(tenants).__name__}"
            )
        rows = list(tenants)
        if len(rows) != n:
            raise InvalidArgumentError(
                f"tenants has {len(rows)} entries; expected {n} (one list per vector)"
            )
        parts = []
        for i, row in enumerate(rows):
            if isinstance(row, numbers.Integral) and not isinstance(row, bool):
                row = [row]
            try:
                parts.append(
                    as_ids(
                        np.asarray(row) if not isinstance(row, np.ndarray) else row,
                        name=f"tenants[{i}]",
                    )
                )
            except InvalidArgumentError:
                raise
            except Exception as e:  # ragged nested input and the like
                raise InvalidArgumentError(f"tenants[{i}] is not a list of ints: {e}") from None
        counts = np.fromiter((p.size for p in parts), dtype=np.int64, count=n)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        flat = np.ascontiguousarray(flat, dtype=np.int64)
    if flat.size and int(flat.min()) < 0:
        raise InvalidArgumentError(f"tenant ids must be >= 0, got {int(flat.min())}")
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] != flat.size:
        raise InvalidArgumentError("tenant offsets must run from 0 to len(tenants), ascending")
    return flat, offsets


class MultiTenantIndex(IndexSurface):
    """One index shared by many tenants; each search sees only one tenant's vectors.

    Each vector is stored once, with the set of tenants (ints >= 0) that may see it.
    ``search(q, k, tenant=t)`` returns only vectors tenant ``t`` may see: squared L2
    distances ascending for ``metric="l2"``, similarities descending for ``"ip"`` and
    ``"cos"``; missing results are id -1 with +inf / -inf. A vector with no tenant is
    stored but never returned; an unknown tenant gets only padding.

    A tenant with at most ``max(exact_threshold, ef_search)`` vectors is scanned
    exactly. A larger one is searched by a best-first walk over its part of the shared
    clustering tree (hierarchical k-means with ``branching`` children per node and
    leaves of about ``leaf_size`` training vectors), scanning the tenant's vectors in the
    closest nodes (whole runs of at most ``split`` vectors) until ``ef_search`` vectors
    were scored.

    Args:
        d: dimension.
        metric: ``"l2"``, ``"ip"`` or ``"cos"`` (also faiss's metric constants).
        branching: children per tree node (default 8).
        leaf_size: training vectors per leaf (default 32).
        split: a tenant's vectors under one node are scanned together once at most this
            many (default ``3072 // d`` clamped to [8, 128]: 8 at d = 384, 61 at d = 50;
            in few dimensions tree nodes cost more relative to vectors), and at most
            ``ef_search // 16`` (a walk scans at least about 16 runs).
        exact_threshold: tenants up to this size are always scanned exactly (default
            ``max(1024, 393216 // d)``: 1024 at d = 384, 7864 at d = 50, where exact scans
            are cheap next to a walk's fixed costs).
        ef_search: default candidate budget (vectors scored per query, default 256).
        max_depth: deepest tree level (default 12).
        niter: k-means iterations per tree node (default 12).
        seed: k-means seed (default 1234).

    Thread safety: any number of threads may search concurrently, also while ``add``,
    ``grant``, ``revoke``, ``remove`` or ``train`` run in another thread; a search sees
    the index before or after each such call. Mutations run one at a time.

    """

    __slots__ = ("_impl",)

    def __init__(
        self,
        d: int,
        metric: str | int = "l2",
        *,
        branching: int = 8,
        leaf_size: int | None = None,
        split: int | None = None,
        exact_threshold: int | None = None,
        ef_search: int = 256,
        max_depth: int = 12,
        niter: int = 12,
        seed: int = 1234,
        _impl: Any = None,
    ) -> None:
        if _impl is not None:
            self._impl = _impl
            return
        d = _int(d, "d", 1, 1 << 24)
        if (
            not isinstance(metric, (str, numbers.Integral))
            or isinstance(metric, bool)
            or (metric not in _METRICS)
        ):
            raise InvalidArgumentError(
                f"metric must be 'l2', 'ip' or 'cos' (or faiss's METRIC_L2 / "
                f"METRIC_INNER_PRODUCT), got {metric!r}"
            )
        self._impl = _core.MultiTenantIndex(
            d,
            _METRICS[metric],
            _int(branching, "branching", 2, 256),
            0 if leaf_size is None else _int(leaf_size, "leaf_size", 1, 1 << 20),
            0 if split is None else _int(split, "split", 1, 1 << 24),
            -1 if exact_threshold is None else _int(exact_threshold, "exact_threshold", 0, 1 << 30),
            _int(ef_search, "ef_search", 1, 1 << 30),
            _int(max_depth, "max_depth", 1, 32),
            _int(niter, "niter", 1, 1000),
            _int(seed, "seed", 0, 2**64 - 1),
        )

    # ---- properties ----------------------------------------------------------------
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
        """``"MultiTenant"``."""
        return self._impl.spec

    @property
    def ntotal(self) -> int:
        """Number of stored vectors (with or without tenants)."""
        return self._impl.ntotal

    @property
    def is_trained(self) -> bool:
        """Whether :meth:`train` built the tree (needed before :meth:`add`)."""
        return self._impl.is_trained

    @property
    def next_id(self) -> int:
        """The first id :meth:`add` without ids hands out."""
        return self._impl.next_id

    @property
    def bytes_per_vector(self) -> float:
        """Bytes per stored vector, the tree excluded (see :meth:`memory_usage`).

        The vector, its id, its leaf, its tenant list and its per-tenant entries.
        """
        return float(self._impl.bytes_per_vector())

    @property
    def config(self) -> dict[str, int]:
        """The construction parameters."""
        return dict(self._impl.config)

    @property
    def tree_shape(self) -> dict[str, int]:
        """``{"nodes", "leaves", "depth"}`` of the clustering tree (zeros before train)."""
        i = self._impl
        return {"nodes": i.num_nodes, "leaves": i.num_leaves, "depth": i.depth}

    @property
    def num_grants(self) -> int:
        """Number of (vector, tenant) pairs."""
        return self._impl.num_grants

    def memory_usage(self) -> int:
        """Bytes held: vectors, ids, tenant lists, per-tenant entries and the tree."""
        return int(self._impl.memory_bytes())

    def __len__(self) -> int:
        return self.ntotal

    def __contains__(self, id: object) -> bool:
        return (
            isinstance(id, numbers.Integral)
            and not isinstance(id, bool)
            and self._impl.contains(int(id))
        )

    def ids(self) -> np.ndarray:
        """All ids (int64), in storage order."""
        return self._impl.ids()

    def tenants(self) -> np.ndarray:
        """Tenants that can see at least one vector (int64, ascending)."""
        return self._impl.tenants()

    def tenants_of(self, id: int) -> np.ndarray:
        """Tenants that may see vector ``id`` (int64, ascending)."""
        if isinstance(id, bool) or not isinstance(id, numbers.Integral):
            raise InvalidArgumentError(f"id must be an integer, got {id!r}")
        return self._impl.tenants_of(int(id))

    def tenant_size(self, tenant: int) -> int:
        """Number of vectors ``tenant`` may see (0 for an unknown tenant)."""
        return int(self._impl.tenant_size(_tenant(tenant)))

    def tenant_ids(self, tenant: int) -> np.ndarray:
        """Ids of the vectors ``tenant`` may see (int64, ascending)."""
        return self._impl.tenant_ids(_tenant(tenant))

    def reconstruct(self, ids: Any) -> np.ndarray:
        """Stored vectors of ``ids`` (float32 ``[n, d]``; normalised for ``"cos"``)."""
        return self._impl.reconstruct(as_ids(ids))

    # ---- mutation ------------------------------------------------------------------
    def train(self, x: Any, *, threads: int | None = None, progress: Progress = None) -> None:
        """Build the shared clustering tree from ``x`` (float32 ``[n, d]``), seeded.

        Refused once the index holds vectors (:meth:`reset` first). ``progress``: True
        for a progress bar, or a callable ``progress(done, total)`` counting training
        vectors placed in leaves; returning False cancels (the index stays untrained).
        """
        x = as_matrix(x, self.d, "x")
        t = as_threads(threads)
        if progress is None or progress is False:
            self._impl.train(x, t)
            return
        reporter = _Reporter(progress, x.shape[0], "train")
        try:
            self._impl.train(x, t, reporter.hook())
        finally:
            reporter.close()

    def add(
        self,
        x: Any,
        ids: Any = None,
        tenants: Any = None,
        *,
        threads: int | None = None,
        progress: Progress = None,
    ) -> np.ndarray:
        """Add vectors ``x`` (float32 ``[n, d]``) and return their int64 ids.

        ``tenants``: one list of tenant ids (ints >= 0) per vector, e.g. ``[[0, 3], [1],
        []]``; a 1-D int array (one tenant per vector); one int (all vectors); or None
        (no tenant yet: use :meth:`grant`). Repeated tenants in a list are ignored.
        Without ``ids`` the vectors get ``next_id, next_id + 1, ...``. Nothing is added
        when anything is invalid. ``progress`` as for :meth:`annx.Index.add`.
        """
        x = as_matrix(x, self.d, "x")
        n = x.shape[0]
        id_arr = None if ids is None else as_ids(ids, n)
        flat, offsets = _tenant_lists(tenants, n)
        nthreads = as_threads(threads)
        if n == 0:
            return np.zeros(0, np.int64) if id_arr is None else id_arr
        if progress is None or progress is False:
            return self._impl.add(x, id_arr, flat, offsets, nthreads)
        if id_arr is None:
            first = self.next_id
            id_arr = np.arange(first, first + n, dtype=np.int64)

        def add_step(b: int, e: int) -> None:
            f = None if flat is None else flat[offsets[b] : offsets[e]]
            o = None if flat is None else offsets[b : e + 1] - offsets[b]
            self._impl.add(x[b:e], id_arr[b:e], f, o, nthreads)

        add_in_steps(
            add_step, lambda done: self._impl.remove(id_arr[:done]), n, progress, chunk_size(n)
        )
        return id_arr

    def grant(self, ids: Any, tenant: int) -> None:
        """Let ``tenant`` see the vectors ``ids`` (all must exist; already granted: no-op)."""
        self._impl.grant(as_ids(ids), _tenant(tenant))

    def revoke(self, ids: Any, tenant: int) -> None:
        """Stop ``tenant`` seeing the vectors ``ids`` (all must exist; not granted: no-op)."""
        self._impl.revoke(as_ids(ids), _tenant(tenant))

    def remove(self, ids: Any) -> int:
        """Remove vectors by id (all must exist, no repeats; nothing is removed otherwise)."""
        return int(self._impl.remove(as_ids(ids)))

    def reset(self) -> None:
        """Remove every vector and tenant; the tree stays trained."""
        self._impl.reset()

    # ---- search --------------------------------------------------------------------
    def search(
        self,
        q: Any,
        k: int,
        *,
        tenant: Any,
        ef_search: int | None = None,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest vectors that ``tenant`` may see, for each query.

        ``tenant``: one int for every query, or an int array with one tenant per query.
        ``ef_search``: candidate budget, the vectors scored per query in the tree walk
        (default: the index's; more is slower and more accurate). Returns ``(D, I)``,
        float32 and int64 ``[n_queries, k]``, best first.
        """
        q = as_matrix(q, self.d, "queries")
        k = as_k(k)
        nq = q.shape[0]
        if nq * k > _MAX_RESULTS:
            raise InvalidArgumentError(
                f"nq * k = {nq * k:,} results is too many; search in smaller batches"
            )
        ef = 0 if ef_search is None else _int(ef_search, "ef_search", 1, 1 << 30)
        if isinstance(tenant, np.ndarray) and tenant.ndim == 1:
            t = as_ids(tenant, nq, name="tenant")
            if t.size and int(t.min()) < 0:
                raise InvalidArgumentError(f"tenant ids must be >= 0, got {int(t.min())}")
        elif isinstance(tenant, (list, tuple)):
            t = as_ids(np.asarray(tenant), nq, name="tenant")
            if t.size and int(t.min()) < 0:
                raise InvalidArgumentError(f"tenant ids must be >= 0, got {int(t.min())}")
        else:
            t = np.full(nq, _tenant(tenant), np.int64)
        return self._impl.search(q, k, t, ef, as_threads(threads))

    # ---- persistence ---------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to ``path`` atomically (temp file, fsync, rename)."""
        self._impl.save(os.fspath(path))

    def to_bytes(self) -> bytes:
        """The index in the annx file format (the same bytes as :meth:`save`)."""
        return self._impl.to_bytes()

    @classmethod
    def _open_file(cls, path: str, mmap: bool, verify: bool) -> MultiTenantIndex:
        return cls(0, _impl=_core.mt_load(path, verify))  # read, not mapped

    @classmethod
    def _open_bytes(cls, data: Any, verify: bool) -> MultiTenantIndex:
        return cls(0, _impl=_core.mt_from_bytes(data, verify))

    @classmethod
    def load(cls, path: str | os.PathLike[str], verify: bool = True) -> MultiTenantIndex:
        """Load a saved index (alias of :func:`annx.load` for this class's files).

        A malformed file raises :class:`annx.FormatError`.
        """
        return cls._open_file(os.fspath(path), False, bool(verify))

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview, verify: bool = True
    ) -> MultiTenantIndex:
        """Rebuild an index from :meth:`to_bytes` output (alias of :func:`annx.from_bytes`)."""
        return cls._open_bytes(data, bool(verify))

    def __repr__(self) -> str:
        return (
            f"MultiTenantIndex(d={self.d}, metric={self.metric!r}, ntotal={self.ntotal}, "
            f"tenants={len(self.tenants())}, is_trained={self.is_trained})"
        )


register_kind("multitenant", MultiTenantIndex)
