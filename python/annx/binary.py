"""Hamming-distance indexes over packed binary codes (faiss's ``IndexBinary*`` use case).

``annx.index_factory(nbits, "BIN", metric="hamming")`` (also ``"HNSW32,BIN"``,
``"IVF256,BIN"``) returns a :class:`BinaryIndex`: ``add`` and ``search`` take ``uint8``
arrays of packed bits, shape ``[n, nbits / 8]`` (any fixed bit order, e.g.
``numpy.packbits(bits, axis=1)`` as :func:`annx.datasets.load_hdf5` returns ann-benchmarks'
Hamming sets), and ``search`` returns Hamming distances as ``int32``.

Inside, a code is the sign vector (+1 for a set bit, -1 otherwise) stored with the ``BIN``
codec of a float index under the inner-product metric: the stored bits are exactly the
given ones, and the symmetric score ``nbits - 2 * Hamming`` is computed with XOR + popcount,
so distances are exact.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._bits import CHUNK_ROWS, MISSING_DISTANCE, as_codes, unpack_signs
from ._errors import FormatError, InvalidArgumentError
from ._progress import Progress
from ._surface import IndexSurface, register_kind
from ._surface import load as _load_any
from ._validate import as_k
from .index import Index

__all__ = ["CHUNK_ROWS", "MISSING_DISTANCE", "BinaryIndex"]

#: The manifest ``kind`` of a BinaryIndex file.
KIND = "binary"


class BinaryIndex(IndexSurface):
    """Hamming-distance index over packed binary codes.

    Build it with ``annx.index_factory(nbits, spec, metric="hamming")``. ``nbits`` must be
    a multiple of 8. Searches may run concurrently with each other; mutations follow the
    rules of the underlying structure (see ``docs/threading.md``). :func:`annx.load` and
    :func:`annx.from_bytes` return a ``BinaryIndex`` for its files (the manifest's
    ``kind`` is ``"binary"``).
    """

    def __init__(self, nbits: int, inner: Index) -> None:
        self.nbits = int(nbits)
        self.code_size = self.nbits // 8
        inner._impl.file_kind = KIND
        self._inner = inner

    # ---- properties -------------------------------------------------------------------
    @property
    def d(self) -> int:
        """Bits per code."""
        return self.nbits

    @property
    def metric(self) -> str:
        """Always ``"hamming"``."""
        return "hamming"

    @property
    def spec(self) -> str:
        """The binary spec (``"BIN"``, ``"HNSW32,BIN"``, ...)."""
        s = self._inner.spec
        return "BIN" if s == "Flat,BIN" else s

    @property
    def ntotal(self) -> int:
        """Number of codes."""
        return self._inner.ntotal

    @property
    def next_id(self) -> int:
        """The id :meth:`add` assigns next when no ids are given."""
        return self._inner.next_id

    @property
    def is_trained(self) -> bool:
        """False for IVF specs until :meth:`train` ran."""
        return self._inner.is_trained

    @property
    def bytes_per_vector(self) -> float:
        """Bytes per stored code (bits, an 8-byte scale/norm header, id, structure)."""
        return self._inner.bytes_per_vector

    def memory_usage(self) -> int:
        """Bytes held by the index (codes, ids, structure)."""
        return self._inner.memory_usage()

    def __contains__(self, id: object) -> bool:
        return id in self._inner

    def ids(self) -> np.ndarray:
        """Ids of the stored codes (int64)."""
        return self._inner.ids()

    # ---- mutation ---------------------------------------------------------------------
    def train(self, codes: Any, *, progress: Progress = None) -> None:
        """Train an IVF spec's lists (k-means over the sign vectors); a no-op otherwise.

        ``progress`` as in :meth:`annx.Index.train`.
        """
        c = as_codes(codes, self.code_size)
        if c.shape[0] == 0:
            raise InvalidArgumentError("train needs at least one code, got 0")
        self._inner.train(unpack_signs(c, self.nbits), progress=progress)

    def add(
        self,
        codes: Any,
        ids: Any = None,
        threads: int | None = None,
        *,
        progress: Progress = None,
    ) -> np.ndarray:
        """Add packed codes (uint8 ``[n, nbits / 8]``) with optional int64 ids.

        Returns the ids (int64 ``[n]``). Ids are checked before anything is added (new,
        distinct), so a bad call adds nothing (:meth:`annx.Index.add_codes` on the
        underlying index). ``progress`` as in :meth:`annx.Index.add` (units: codes).
        """
        return self._inner.add_codes(codes, ids=ids, threads=threads, progress=progress)

    def remove(self, ids: Any) -> int:
        """Remove codes by id (all must exist; nothing is removed otherwise)."""
        return self._inner.remove(ids)

    # ---- search -----------------------------------------------------------------------
    @staticmethod
    def _params(ef_search: int | None, nprobe: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if ef_search is not None:
            params["ef_search"] = ef_search
        if nprobe is not None:
            params["nprobe"] = nprobe
        return params

    def search(
        self,
        codes: Any,
        k: int,
        *,
        filter: Any = None,
        ef_search: int | None = None,
        nprobe: int | None = None,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest codes by Hamming distance.

        Returns ``(D, I)``: int32 Hamming distances (ascending) and int64 ids, shape
        ``[nq, k]``; missing results have id -1 and distance ``MISSING_DISTANCE``
        (2**31 - 1). ``ef_search`` / ``nprobe`` tune HNSW / IVF specs.
        """
        c = as_codes(codes, self.code_size, "queries")
        k = as_k(k)
        S, I = self._inner.search(
            unpack_signs(c, self.nbits),
            k,
            filter=filter,
            threads=threads,
            **self._params(ef_search, nprobe),
        )
        D = np.full(S.shape, MISSING_DISTANCE, dtype=np.int32)
        ok = I >= 0
        D[ok] = np.rint((self.nbits - S[ok]) / 2).astype(np.int32)
        return D, I

    def range_search(  # type: ignore[override]
        self,
        codes: Any,
        radius: int,
        *,
        filter: Any = None,
        ef_search: int | None = None,
        nprobe: int | None = None,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All codes at Hamming distance ``< radius`` of each query (faiss's rule).

        Returns ``(lims, D, I)``: the results of query ``i`` are ``D[lims[i]:lims[i+1]]``
        (int32 Hamming distances, ascending) and ``I[lims[i]:lims[i+1]]``. Exact on
        ``BIN``; on ``HNSW<M>,BIN`` and ``IVF<nlist>,BIN`` approximate as
        :meth:`annx.Index.range_search` is.
        """
        if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, (int, np.integer)):
            raise InvalidArgumentError(f"radius must be an integer (bits), got {radius!r}")
        if not 0 <= radius <= self.nbits + 1:
            raise InvalidArgumentError(f"radius must be in [0, {self.nbits + 1}], got {radius}")
        c = as_codes(codes, self.code_size, "queries")
        # Hamming h < radius  <=>  score nbits - 2h > nbits - 2 radius (scores are integers).
        lims, S, I = self._inner.range_search(
            unpack_signs(c, self.nbits),
            float(self.nbits - 2 * int(radius)),
            filter=filter,
            threads=threads,
            **self._params(ef_search, nprobe),
        )
        return lims, np.rint((self.nbits - S) / 2).astype(np.int32), I

    def reconstruct(self, ids: Any) -> np.ndarray:
        """The stored codes of the given ids, packed (uint8 ``[n, nbits / 8]``).

        A single integer id returns one code (uint8 ``[nbits / 8]``).
        """
        x = self._inner.reconstruct(ids)
        if x.ndim == 1:
            return np.packbits(x > 0)
        return np.packbits(x > 0, axis=1)

    # ---- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save atomically (an annx index file whose manifest kind is ``"binary"``)."""
        self._inner.save(path)

    def to_bytes(self) -> bytes:
        """The index as bytes (the same format as :meth:`save`)."""
        return self._inner.to_bytes()

    @classmethod
    def _from_inner(cls, inner: Index) -> BinaryIndex:
        if not (inner.spec.endswith(",BIN") and inner.metric == "ip" and inner.d % 8 == 0):
            raise FormatError(
                f"not a binary index file: spec {inner.spec!r}, metric {inner.metric!r} "
                "(a BinaryIndex file holds a '...,BIN' index with metric 'ip')"
            )
        return cls(inner.d, inner)

    @classmethod
    def _open_file(cls, path: str, mmap: bool, verify: bool) -> BinaryIndex:
        return cls._from_inner(Index._open_file(path, mmap, verify))

    @classmethod
    def _open_bytes(cls, data: Any, verify: bool) -> BinaryIndex:
        return cls._from_inner(Index._open_bytes(data, verify))

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], mmap: bool = False, verify: bool = True
    ) -> BinaryIndex:
        """Alias of :func:`annx.load` that also checks the file holds a binary index.

        Files saved before annx wrote the ``"binary"`` kind (a ``...,BIN`` index with
        metric ``"ip"``) are opened too.
        """
        out = _load_any(path, mmap=mmap, verify=verify)
        if isinstance(out, BinaryIndex):
            return out
        if isinstance(out, Index):
            return cls._from_inner(out)
        raise FormatError(f"{os.fspath(path)} holds a {type(out).__name__}, not a BinaryIndex")

    @classmethod
    def from_bytes(cls, data: bytes, verify: bool = True) -> BinaryIndex:
        """Alias of :func:`annx.from_bytes` that also checks the bytes hold a binary index."""
        from ._surface import from_bytes

        out = from_bytes(data, verify=verify)
        if isinstance(out, BinaryIndex):
            return out
        if isinstance(out, Index):
            return cls._from_inner(out)
        raise FormatError(f"the bytes hold a {type(out).__name__}, not a BinaryIndex")

    def __repr__(self) -> str:
        return (
            f"annx.BinaryIndex(spec={self.spec!r}, d={self.nbits}, metric='hamming', "
            f"ntotal={self.ntotal})"
        )


register_kind(KIND, BinaryIndex)
