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

from ._errors import FormatError, InvalidArgumentError
from ._validate import as_k
from .index import Index

#: Rows converted to floats at a time (bounds the temporary: rows x nbits x 4 bytes).
CHUNK_ROWS = 16384
#: Distance reported for missing results (k larger than the index, filters).
MISSING_DISTANCE = np.iinfo(np.int32).max


def _structure_spec(spec: str) -> str:
    """Map a binary spec (``"BIN"``, ``"HNSW32,BIN"``, ``"IVF256,BIN"``) to the float one."""
    tokens = [t.strip() for t in spec.split(",")]
    if tokens == ["BIN"]:
        return "Flat,BIN"
    if len(tokens) == 2 and tokens[1] == "BIN" and tokens[0] not in ("Flat", "BIN"):
        return spec.replace(" ", "")
    if tokens == ["Flat", "BIN"]:
        return "Flat,BIN"
    raise InvalidArgumentError(
        f"spec {spec!r} is not a binary spec: with metric 'hamming' use 'BIN', "
        "'HNSW<M>,BIN' or 'IVF<nlist>,BIN'"
    )


def as_codes(codes: Any, nbytes: int, name: str = "codes") -> np.ndarray:
    """Validate packed codes: a C-contiguous uint8 array of shape (n, nbytes)."""
    arr = codes if isinstance(codes, np.ndarray) else np.asarray(codes)
    if arr.dtype != np.uint8:
        raise InvalidArgumentError(
            f"{name} must be uint8 packed bits (numpy.packbits), got dtype {arr.dtype}"
        )
    if arr.ndim != 2 or arr.shape[1] != nbytes:
        raise InvalidArgumentError(
            f"{name} must have shape (n, {nbytes}) ({nbytes * 8} bits per code), got {arr.shape}"
        )
    return np.ascontiguousarray(arr)


def unpack_signs(codes: np.ndarray, nbits: int) -> np.ndarray:
    """Packed codes -> float32 sign vectors (+1 for a set bit, -1 otherwise)."""
    bits = np.unpackbits(codes, axis=1, count=nbits)
    return bits.astype(np.float32) * 2.0 - 1.0


class BinaryIndex:
    """Hamming-distance index over packed binary codes.

    Build it with ``annx.index_factory(nbits, spec, metric="hamming")``. ``nbits`` must be
    a multiple of 8. Searches may run concurrently with each other; mutations follow the
    rules of the underlying structure (see ``docs/threading.md``).
    """

    def __init__(self, nbits: int, inner: Index) -> None:
        self.nbits = int(nbits)
        self.code_size = self.nbits // 8
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
    def is_trained(self) -> bool:
        """False for IVF specs until :meth:`train` ran."""
        return self._inner.is_trained

    @property
    def bytes_per_vector(self) -> float:
        """Bytes per stored code (bits, an 8-byte scale/norm header, id, structure)."""
        return self._inner.bytes_per_vector

    def __len__(self) -> int:
        return self.ntotal

    def __contains__(self, id: object) -> bool:
        return id in self._inner

    def __repr__(self) -> str:
        return f"BinaryIndex(nbits={self.nbits}, spec={self.spec!r}, ntotal={self.ntotal})"

    def ids(self) -> np.ndarray:
        """Ids of the stored codes (int64)."""
        return self._inner.ids()

    # ---- mutation ---------------------------------------------------------------------
    def train(self, codes: Any) -> None:
        """Train an IVF spec's lists (k-means over the sign vectors)."""
        c = as_codes(codes, self.code_size)
        self._inner.train(unpack_signs(c, self.nbits))

    def add(self, codes: Any, ids: Any = None, threads: int | None = None) -> None:
        """Add packed codes (uint8 ``[n, nbits / 8]``) with optional int64 ids.

        Ids are checked before anything is added (new, distinct), so a bad call adds
        nothing (:meth:`annx.Index.add_codes` on the underlying index).
        """
        self._inner.add_codes(codes, ids=ids, threads=threads)

    def remove(self, ids: Any) -> int:
        """Remove codes by id (all must exist; nothing is removed otherwise)."""
        return self._inner.remove(ids)

    # ---- search -----------------------------------------------------------------------
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
        params: dict[str, Any] = {}
        if ef_search is not None:
            params["ef_search"] = ef_search
        if nprobe is not None:
            params["nprobe"] = nprobe
        S, I = self._inner.search(
            unpack_signs(c, self.nbits), k, filter=filter, threads=threads, **params
        )
        D = np.full(S.shape, MISSING_DISTANCE, dtype=np.int32)
        ok = I >= 0
        D[ok] = np.rint((self.nbits - S[ok]) / 2).astype(np.int32)
        return D, I

    def reconstruct(self, ids: Any) -> np.ndarray:
        """The stored codes of the given ids, packed (uint8 ``[n, nbits / 8]``)."""
        x = self._inner.reconstruct(ids)
        return np.packbits(x > 0, axis=1)

    # ---- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save atomically (the annx file of the underlying float index)."""
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
    def load(cls, path: str | os.PathLike[str], mmap: bool = False) -> BinaryIndex:
        """Load a saved binary index (``annx.load`` returns its float view)."""
        from .index import load

        return cls._from_inner(load(path, mmap=mmap))

    @classmethod
    def from_bytes(cls, data: bytes) -> BinaryIndex:
        """Load from :meth:`to_bytes` output."""
        from .index import from_bytes

        return cls._from_inner(from_bytes(data))
