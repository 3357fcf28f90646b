"""Sharded annx indexes on a Dask cluster (``pip install "annx[distributed]"``).

A :class:`ShardedIndex` keeps ``n_shards`` ordinary annx indexes, each inside a Dask
actor on a worker: vectors are sent to the worker that owns them once and never come
back; searches send the queries to the shards, each returns its top ``k'`` and the
client merges them by score with global ids. The same code runs on a
``LocalCluster`` and on a real cluster (Kubernetes, SLURM, cloud) behind a
``dask.distributed.Client``.

Partitioning (``partition=``):

- ``"hash"`` (default): vector with id ``i`` lives on shard ``splitmix64(i) % n_shards``
  (splitmix64 as in ``cpp/include/annx/common/random.h``), so removals go straight to
  the owner;
- ``"round_robin"``: the vectors of each ``add`` are dealt to the shards in turn
  (continuing where the previous add stopped): perfectly balanced;
- ``"ivf"``: routed; the spec must start with ``IVF<nlist>``. A vector goes to the shard
  owning its nearest centroid (centroid ``c`` belongs to shard ``c % n_shards``), and a
  search only asks the shards owning the ``nprobe`` centroids nearest to each query,
  which returns exactly what one IVF index with all the vectors would.

Threads: run workers with one Dask thread each (``threads_per_worker=1``) and let annx
use the worker's cores (``annx_threads``, default: the worker's CPU count divided by
the number of Dask workers on the same host, so co-located workers do not
oversubscribe); annx releases the GIL during its work, so the worker stays responsive.

``import annx`` never imports Dask; this module does.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import secrets
from collections.abc import Sequence
from concurrent.futures import Future as _StdFuture
from pathlib import Path
from typing import Any

import numpy as np

try:
    from distributed import Client
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        'annx.distributed needs Dask: pip install "annx[distributed]" (dask and distributed)'
    ) from exc

import annx

from ._errors import AnnxError, FormatError, InvalidArgumentError, NotTrainedError
from ._validate import as_ids, as_k, as_matrix, check_finite

__all__ = ["SearchResult", "ShardError", "ShardedIndex"]

_MANIFEST = "annx-sharded.json"
_FORMAT = "annx-sharded"
_FORMAT_VERSION = 1
_PARTITIONS = ("hash", "round_robin", "ivf")
_MASK64 = (1 << 64) - 1


class ShardError(AnnxError):
    """A shard failed (its worker died, or its index raised an unexpected error).

    ``shard`` is the shard number and ``worker`` the address of its worker.
    """

    def __init__(self, message: str, shard: int, worker: str) -> None:
        super().__init__(message)
        self.shard = shard
        self.worker = worker


class SearchResult(tuple):
    """``(D, I)`` of a sharded search, with ``partial`` and ``failed_shards``.

    Unpacks like the plain tuple :meth:`annx.Index.search` returns. ``partial`` is True
    only with ``allow_partial=True`` when some shards failed; their numbers are in
    ``failed_shards`` and the results come from the other shards.
    """

    partial: bool
    failed_shards: tuple[int, ...]

    def __new__(  # noqa: D102
        cls,
        D: np.ndarray,
        I: np.ndarray,  # noqa: E741
        failed: Sequence[int] = (),
    ) -> SearchResult:
        obj = super().__new__(cls, (D, I))
        obj.failed_shards = tuple(failed)
        obj.partial = bool(obj.failed_shards)
        return obj


def splitmix64(ids: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser of each id (uint64), the hash partition's mixer."""
    z = np.asarray(ids, dtype=np.int64).view(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_owner(ids: np.ndarray, n_shards: int) -> np.ndarray:
    """The shard of each id under ``partition="hash"``: splitmix64(id) % n_shards."""
    return (splitmix64(ids) % np.uint64(n_shards)).astype(np.int64)


# --------------------------------------------------------------------- the shard actor
class _Shard:
    """One annx index living on a Dask worker (a Dask actor; methods run there)."""

    def __init__(self, annx_threads: int | None, workers_on_host: int) -> None:
        threads = annx_threads or _default_threads(workers_on_host)
        annx.set_num_threads(threads)
        self.index: annx.Index | None = None

    def create(self, d: int, spec: str, metric: str, kwargs: dict[str, Any]) -> None:
        self.index = annx.index_factory(d, spec, metric, **kwargs)

    def from_bytes(self, data: bytes) -> None:
        self.index = annx.from_bytes(data)

    def train(self, x: np.ndarray, queries: np.ndarray | None) -> bytes:
        assert self.index is not None
        self.index.train(x, queries=queries)
        return self.index.to_bytes()

    def present(self, ids: np.ndarray) -> np.ndarray:
        """The ids of ``ids`` this shard holds."""
        assert self.index is not None
        return ids[np.isin(ids, self.index.ids())]

    def add(self, x: np.ndarray, ids: np.ndarray) -> int:
        assert self.index is not None
        self.index.add(x, ids=ids)
        return self.index.ntotal

    def remove(self, ids: np.ndarray) -> int:
        assert self.index is not None
        return self.index.remove(ids)

    def search(
        self, q: np.ndarray, k: int, params: dict[str, Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self.index is not None
        return self.index.search(q, k, **params)

    def stats(self) -> dict[str, Any]:
        assert self.index is not None
        return {
            "ntotal": self.index.ntotal,
            "is_trained": self.index.is_trained,
            "spec": self.index.spec,
            "bytes_per_vector": self.index.bytes_per_vector,
            "threads": annx.get_num_threads(),
        }

    def save(self, path: str) -> dict[str, Any]:
        assert self.index is not None
        self.index.save(path)
        return {
            "sha256": _sha256(path),
            "ntotal": self.index.ntotal,
            "bytes": os.path.getsize(path),
        }

    def load(self, path: str, sha256: str, mmap: bool) -> int:
        got = _sha256(path)
        if got != sha256:
            raise FormatError(
                f"{path}: checksum {got[:16]}... does not match the manifest's {sha256[:16]}..."
            )
        self.index = annx.load(path, mmap=mmap)
        return self.index.ntotal


def _default_threads(workers_on_host: int) -> int:
    """The worker's share of its host's CPUs (at least 1)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, workers_on_host))


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -------------------------------------------------------------------------- merging
def merge_topk(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int, similarity: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard ``(D, I)`` (each ``[nq, k']``, best first) into the global top k.

    Padding (id -1) is dropped; ties are broken by the smaller id, so the result does
    not depend on shard order. A NaN score raises :class:`annx.InvalidArgumentError`.
    """
    nq = parts[0][0].shape[0] if parts else 0
    D_all = np.concatenate([p[0] for p in parts], axis=1) if parts else np.zeros((nq, 0))
    I_all = np.concatenate([p[1] for p in parts], axis=1) if parts else np.zeros((nq, 0), int)
    valid = I_all >= 0
    if np.isnan(D_all[valid]).any():
        raise InvalidArgumentError("a shard returned a NaN score; results rejected")
    pad = -np.inf if similarity else np.inf
    key = np.where(valid, -D_all if similarity else D_all, np.inf)
    ids_key = np.where(valid, I_all, np.iinfo(np.int64).max)
    D = np.full((nq, k), pad, dtype=np.float32)
    I = np.full((nq, k), -1, dtype=np.int64)  # noqa: E741
    m = min(k, D_all.shape[1])
    if nq == 0 or m == 0:
        return D, I
    # Sort each row by (score, id); padding sorts last (key +inf, id max).
    order = np.lexsort((ids_key, key), axis=1)[:, :m]
    keep = np.take_along_axis(valid, order, 1)
    D[:, :m] = np.where(keep, np.take_along_axis(D_all, order, 1), pad)
    I[:, :m] = np.where(keep, np.take_along_axis(I_all, order, 1), -1)
    return D, I


# --------------------------------------------------------------------- the index
class ShardedIndex:
    """An annx index split into shards held by Dask workers.

    Args:
        client: a connected ``dask.distributed.Client``.
        d: vector dimension, as :func:`annx.index_factory`.
        spec: factory string, as :func:`annx.index_factory` (every shard has this spec).
        metric: as :func:`annx.index_factory`.
        n_shards: number of shards (default: one per worker); shards are placed on the
            workers in turn.
        partition: ``"hash"``, ``"round_robin"`` or ``"ivf"`` (see the module doc).
        annx_threads: annx threads per shard (default: the worker's CPUs divided by
            the number of Dask workers on its host).
        workers: restrict shards to these worker addresses.
        **factory_kwargs: ``ef_construction``, ``seed``, ... as for
            :func:`annx.index_factory`.

    Mutations (``train``, ``add``, ``remove``, ``save``) must not run concurrently with
    each other on one ``ShardedIndex``; searches may run from several client threads.

    """

    def __init__(
        self,
        client: Client,
        d: int,
        spec: str = "Flat",
        metric: str = "l2",
        n_shards: int | None = None,
        *,
        partition: str = "hash",
        annx_threads: int | None = None,
        workers: Sequence[str] | None = None,
        **factory_kwargs: Any,
    ) -> None:
        if partition not in _PARTITIONS:
            raise InvalidArgumentError(
                f"partition must be one of {', '.join(_PARTITIONS)}, got {partition!r}"
            )
        if partition == "ivf" and not spec.startswith("IVF"):
            raise InvalidArgumentError(
                f"partition='ivf' routes by IVF centroids; spec {spec!r} is not an IVF spec"
            )
        # Build one index locally first: validates d, spec, metric and kwargs up front.
        probe = annx.index_factory(d, spec, metric, **factory_kwargs)
        self._init_common(client, probe.d, probe.spec, probe.metric, partition, workers)
        n = len(self._workers) if n_shards is None else n_shards
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise InvalidArgumentError(f"n_shards must be a positive integer, got {n_shards!r}")
        self._spawn(int(n), annx_threads)
        self._call_all("create", lambda i: (d, spec, metric, dict(factory_kwargs)))
        self._trained = probe.is_trained
        self._state: bytes | None = None
        self._router: annx.Index | None = None

    def _init_common(
        self, client: Client, d: int, spec: str, metric: str, partition: str, workers: Any
    ) -> None:
        if not isinstance(client, Client):
            raise InvalidArgumentError(
                f"client must be a dask.distributed.Client, got {type(client).__name__}"
            )
        self.client = client
        self.d, self.spec, self.metric, self.partition = d, spec, metric, partition
        known = list(client.scheduler_info()["workers"])
        self._workers = list(workers) if workers is not None else known
        if not self._workers:
            raise InvalidArgumentError("the Dask cluster has no workers")
        unknown = [w for w in self._workers if w not in known]
        if unknown:
            raise InvalidArgumentError(f"unknown Dask workers: {unknown}")
        self._next_id = 0
        self._rr = 0  # round-robin position

    def _spawn(self, n: int, annx_threads: int | None) -> None:
        self._shard_workers = [self._workers[i % len(self._workers)] for i in range(n)]
        info = self.client.scheduler_info()["workers"]
        hosts = [info[w].get("host", w) for w in info]
        futures = [
            self.client.submit(
                _Shard,
                annx_threads,
                hosts.count(info[w].get("host", w)),
                actor=True,
                workers=[w],
                allow_other_workers=False,
                pure=False,
            )
            for w in self._shard_workers
        ]
        self._actors = [self._result(i, f) for i, f in enumerate(futures)]

    # ------------------------------------------------------------------ plumbing
    @property
    def n_shards(self) -> int:
        """Number of shards."""
        return len(self._actors)

    @property
    def shard_workers(self) -> list[str]:
        """Worker address of each shard."""
        return list(self._shard_workers)

    @property
    def similarity(self) -> bool:
        """Whether scores are similarities (``ip``, ``cos``: larger is better)."""
        return self.metric != "l2"

    def _result(self, shard: int, fut: Any) -> Any:
        """The value of a shard call.

        annx errors keep their type (the message names the shard); anything else (a
        lost worker, a closed connection) becomes a :class:`ShardError`.
        """
        try:
            return fut.result()
        except AnnxError as exc:
            raise type(exc)(f"shard {shard}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - worker loss, comm errors, ...
            worker = self._shard_workers[shard]
            raise ShardError(
                f"shard {shard} (worker {worker}) failed: {type(exc).__name__}: {exc}",
                shard,
                worker,
            ) from exc

    def _submit(self, shard: int, method: str, *args: Any) -> Any:
        try:
            return getattr(self._actors[shard], method)(*args)
        except Exception as exc:  # noqa: BLE001 - the actor's worker is gone
            fut: _StdFuture = _StdFuture()
            fut.set_exception(exc)
            return fut

    def _call_all(self, method: str, args: Any, shards: Sequence[int] | None = None) -> list[Any]:
        shards = range(self.n_shards) if shards is None else shards
        futs = {i: self._submit(i, method, *args(i)) for i in shards}
        return [self._result(i, f) for i, f in futs.items()]

    # ------------------------------------------------------------------- building
    @property
    def is_trained(self) -> bool:
        """Whether the shards can take vectors."""
        return self._trained

    def train(self, x: Any, queries: Any = None) -> None:
        """Train shard 0 on ``x`` (a sample) and copy its trained state to every shard.

        All shards then share the same centroids, codebooks or projections, so their
        scores are comparable. Only allowed while the index is empty.
        """
        x = as_matrix(x, self.d, "x")
        if self.ntotal:
            raise InvalidArgumentError("a ShardedIndex is trained once, while empty")
        q = None if queries is None else as_matrix(queries, self.d, "queries")
        state = self._result(0, self._submit(0, "train", x, q))
        self._call_all("from_bytes", lambda i: (state,), shards=range(1, self.n_shards))
        self._set_trained_state(state)

    def _set_trained_state(self, state: bytes | None) -> None:
        """Keep the trained, empty index (small: centroids, codebooks, matrices).

        For ``"ivf"`` it is also the router, so routing uses the shards' own list choice.
        """
        self._state = state
        self._trained = True
        self._router = annx.from_bytes(state) if state is not None else None

    def _owners(self, x: np.ndarray, ids: np.ndarray) -> np.ndarray:
        n = self.n_shards
        if self.partition == "hash":
            return hash_owner(ids, n)
        if self.partition == "round_robin":
            owners = (self._rr + np.arange(len(ids))) % n
            return owners.astype(np.int64)
        return self._nearest_lists(x, 1, 0)[:, 0] % n

    def _nearest_lists(self, x: np.ndarray, p: int, ef_search: int) -> np.ndarray:
        """The IVF lists the shards would choose for x (add: p = 1; search: nprobe)."""
        assert self._router is not None
        return self._router._impl.ivf_nearest_lists(x, p, ef_search)

    def _held(self, ids: np.ndarray) -> list[np.ndarray]:
        """Per shard, which of ``ids`` it holds.

        With ``"hash"`` an id can only be on its owner, so each shard is asked about its
        own ids; otherwise every shard is asked about all of them.
        """
        if self.partition == "hash":
            owner = hash_owner(ids, self.n_shards)
            return self._call_all("present", lambda i: (ids[owner == i],))
        return self._call_all("present", lambda i: (ids,))

    def add(self, x: Any, ids: Any = None) -> None:
        """Add vectors (ids as in :meth:`annx.Index.add`), each to the shard that owns it.

        Ids are checked on every shard before anything is added, so a duplicate adds
        nothing; NaN/inf rows are rejected on the client.
        """
        if not self._trained:
            raise NotTrainedError(f"ShardedIndex {self.spec!r} must be trained before add")
        x = as_matrix(x, self.d, "x")
        check_finite(x, "x")
        n = x.shape[0]
        if ids is None:
            id_arr = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        else:
            id_arr = as_ids(ids, n)
            if (id_arr < 0).any():
                raise InvalidArgumentError("ids must be >= 0")
            uniq, counts = np.unique(id_arr, return_counts=True)
            if (counts > 1).any():
                raise InvalidArgumentError(f"id {int(uniq[counts > 1][0])} is repeated in ids")
        if n == 0:
            return
        owners = self._owners(x, id_arr)
        shards = [s for s in range(self.n_shards) if (owners == s).any()]
        found = np.concatenate(self._held(id_arr))
        if found.size:
            raise InvalidArgumentError(f"id {int(found[0])} is already in the index")
        self._call_all("add", lambda i: (x[owners == i], id_arr[owners == i]), shards=shards)
        self._next_id = max(self._next_id, int(id_arr.max()) + 1)
        if self.partition == "round_robin":
            self._rr = (self._rr + n) % self.n_shards

    def remove(self, ids: Any) -> int:
        """Remove vectors by id; every id must be present once (else nothing changes)."""
        id_arr = as_ids(ids)
        uniq, counts = np.unique(id_arr, return_counts=True)
        if (counts > 1).any():
            raise InvalidArgumentError(f"id {int(uniq[counts > 1][0])} is repeated in ids")
        if id_arr.size == 0:
            return 0
        held = self._held(id_arr)
        covered = np.concatenate(held)
        if covered.size != id_arr.size:
            missing = np.setdiff1d(id_arr, covered)
            raise InvalidArgumentError(f"id {int(missing[0])} is not in the index")
        shards = [i for i, h in enumerate(held) if h.size]
        self._call_all("remove", lambda i: (held[i],), shards=shards)
        return int(id_arr.size)

    # ------------------------------------------------------------------ searching
    def search(
        self,
        q: Any,
        k: int,
        *,
        k_shard: int | None = None,
        allow_partial: bool = False,
        **params: Any,
    ) -> SearchResult:
        """Search every shard (or the routed ones) and merge to the global top k.

        Args:
            q: queries, float32 [nq, d].
            k: results per query.
            k_shard: results asked of each shard (default ``k``; more gives the merge
                more to choose from when shards are approximate).
            allow_partial: if a shard fails, return the other shards' merged results
                flagged ``partial`` instead of raising :class:`ShardError`.
            **params: search parameters for every shard (``ef_search``, ``nprobe``,
                ``rerank``, ``filter``, ``threads``).

        Returns:
            :class:`SearchResult`: ``(D, I)`` as :meth:`annx.Index.search` (global ids;
            similarities descending for ``ip``/``cos``), plus ``partial`` and
            ``failed_shards``.

        """
        if not self._trained:
            raise NotTrainedError(f"ShardedIndex {self.spec!r} must be trained before search")
        q = as_matrix(q, self.d, "queries")
        k = as_k(k)
        ks = k if k_shard is None else as_k(k_shard)
        if ks < k:
            raise InvalidArgumentError(f"k_shard ({ks}) must be >= k ({k})")
        nq = q.shape[0]
        routes = self._routes(q, params)
        futs = {}
        for s in range(self.n_shards):
            rows = routes[s]
            if rows is None or len(rows):
                futs[s] = self._submit(s, "search", q if rows is None else q[rows], ks, params)
        pad = -np.inf if self.similarity else np.inf
        parts, failed = [], []
        for s, fut in futs.items():
            try:
                D, I = self._result(s, fut)  # noqa: E741
            except ShardError:
                if not allow_partial:
                    raise
                failed.append(s)
                continue
            rows = routes[s]
            if rows is not None:  # scatter the routed rows back into [nq, ks]
                Dfull = np.full((nq, ks), pad, dtype=np.float32)
                Ifull = np.full((nq, ks), -1, dtype=np.int64)
                Dfull[rows], Ifull[rows] = D, I
                D, I = Dfull, Ifull  # noqa: E741
            if np.isnan(D[I >= 0]).any():
                raise ShardError(f"shard {s} returned a NaN score", s, self._shard_workers[s])
            parts.append((D, I))
        D, I = (
            merge_topk(parts, k, self.similarity)
            if parts
            else (  # noqa: E741
                np.full((nq, k), pad, dtype=np.float32),
                np.full((nq, k), -1, dtype=np.int64),
            )
        )
        return SearchResult(D, I, failed)

    def _routes(self, q: np.ndarray, params: dict[str, Any]) -> list[np.ndarray | None]:
        """Per shard, the query rows it must answer (None: all of them)."""
        if self.partition != "ivf" or self._router is None or "filter" in params:
            return [None] * self.n_shards
        lists = self._nearest_lists(
            q, int(params.get("nprobe", 16)), int(params.get("ef_search", 0))
        )
        owners = np.where(lists >= 0, lists % self.n_shards, -1)
        return [np.flatnonzero((owners == s).any(axis=1)) for s in range(self.n_shards)]

    # -------------------------------------------------------------------- inspecting
    def stats(self) -> list[dict[str, Any]]:
        """Per shard: ``ntotal``, ``spec``, ``bytes_per_vector``, annx ``threads``, worker."""
        out = self._call_all("stats", lambda i: ())
        for i, s in enumerate(out):
            s["worker"] = self._shard_workers[i]
        return out

    @property
    def ntotal(self) -> int:
        """Vectors across all shards."""
        return int(sum(s["ntotal"] for s in self._call_all("stats", lambda i: ())))

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self) -> str:
        return (
            f"annx.distributed.ShardedIndex(spec={self.spec!r}, d={self.d}, "
            f"metric={self.metric!r}, n_shards={self.n_shards}, partition={self.partition!r})"
        )

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write one annx file per shard and a JSON manifest with their SHA-256.

        The workers write the shard files, so ``directory`` must be on a file system
        they share with the client. Files get a fresh name on each save and the
        manifest is replaced atomically (temp file + rename) last, so a reader sees the
        old or the new index, never a mix; files of the previous save are deleted
        after.
        """
        path = Path(directory).resolve()
        path.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(4)
        names = [f"shard-{i:04d}-{token}.annx" for i in range(self.n_shards)]
        infos = self._call_all("save", lambda i: (str(path / names[i]),))
        old = _read_manifest(path) if (path / _MANIFEST).exists() else None
        manifest = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "annx_version": annx.__version__,
            "d": self.d,
            "spec": self.spec,
            "metric": self.metric,
            "partition": self.partition,
            "next_id": self._next_id,
            "round_robin_position": self._rr,
            "trained": self._trained,
            "shards": [{"file": names[i], **infos[i]} for i in range(self.n_shards)],
        }
        if self._state is not None:
            state_file = f"trained-{token}.annx"
            tmp_state = path / f".{state_file}.tmp"
            tmp_state.write_bytes(self._state)
            os.replace(tmp_state, path / state_file)
            manifest["trained_state"] = {
                "file": state_file,
                "sha256": hashlib.sha256(self._state).hexdigest(),
            }
        tmp = path / f".{_MANIFEST}.{token}.tmp"
        with open(tmp, "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path / _MANIFEST)
        if old is not None:
            keep = set(names) | {manifest.get("trained_state", {}).get("file")}
            olds = old.get("shards", []) + [old.get("trained_state") or {}]
            for s in olds:
                f = path / str(s.get("file", ""))
                if f.name not in keep and f.parent == path and f.exists():
                    f.unlink()

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        client: Client,
        *,
        annx_threads: int | None = None,
        workers: Sequence[str] | None = None,
        mmap: bool = False,
    ) -> ShardedIndex:
        """Load a directory written by :meth:`save`.

        Each worker checks its shard file's SHA-256 against the manifest, then loads it.
        """
        path = Path(directory).resolve()
        m = _read_manifest(path)
        self = cls.__new__(cls)
        self._init_common(client, m["d"], m["spec"], m["metric"], m["partition"], workers)
        shards = m["shards"]
        self._spawn(len(shards), annx_threads)
        counts = self._call_all(
            "load", lambda i: (str(path / shards[i]["file"]), shards[i]["sha256"], mmap)
        )
        for i, (c, s) in enumerate(zip(counts, shards, strict=False)):
            if c != s["ntotal"]:
                raise FormatError(f"shard {i}: holds {c} vectors, the manifest says {s['ntotal']}")
        self._next_id = int(m["next_id"])
        self._rr = int(m["round_robin_position"])
        self._trained = bool(m["trained"])
        self._state, self._router = None, None
        ts = m.get("trained_state")
        if ts is not None:
            if not (
                isinstance(ts, dict) and isinstance(ts.get("file"), str) and "/" not in ts["file"]
            ):
                raise FormatError(f"{path / _MANIFEST}: malformed trained_state entry")
            state = (path / ts["file"]).read_bytes()
            if hashlib.sha256(state).hexdigest() != ts.get("sha256"):
                raise FormatError(f"{path / ts['file']}: checksum does not match the manifest")
            self._set_trained_state(state)
        elif self.partition == "ivf" and self._trained:
            raise FormatError(f"{path / _MANIFEST}: an IVF-routed index needs its trained_state")
        return self

    def close(self) -> None:
        """Release the shard actors (their indexes are freed on the workers)."""
        self._actors = []


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / _MANIFEST
    try:
        m = json.loads(file.read_text())
    except FileNotFoundError:
        raise FormatError(f"{file}: no manifest (not a ShardedIndex directory)") from None
    except (OSError, ValueError) as exc:
        raise FormatError(f"{file}: unreadable manifest: {exc}") from exc
    if not isinstance(m, dict) or m.get("format") != _FORMAT:
        raise FormatError(f"{file}: not an annx sharded-index manifest")
    if m.get("format_version") != _FORMAT_VERSION:
        raise FormatError(
            f"{file}: manifest format version {m.get('format_version')!r}; this annx reads "
            f"version {_FORMAT_VERSION}"
        )
    need = {
        "d": int,
        "spec": str,
        "metric": str,
        "partition": str,
        "next_id": int,
        "round_robin_position": int,
        "trained": bool,
        "shards": list,
    }
    for key, typ in need.items():
        if not isinstance(m.get(key), typ):
            raise FormatError(f"{file}: manifest key {key!r} missing or not a {typ.__name__}")
    if m["partition"] not in _PARTITIONS or not m["shards"]:
        raise FormatError(f"{file}: bad partition or no shards")
    for s in m["shards"]:
        if not (
            isinstance(s, dict)
            and isinstance(s.get("file"), str)
            and "/" not in s["file"]
            and isinstance(s.get("sha256"), str)
            and isinstance(s.get("ntotal"), int)
        ):
            raise FormatError(f"{file}: malformed shard entry {s!r}")
    return m
