"""Benchmark datasets, vector file formats and exact ground truth for annx.

This module is self-contained: it needs only numpy at import time. Reading HDF5
files imports :mod:`h5py` lazily (``pip install "annx[hdf5]"``).

What it provides
----------------
* :class:`Dataset` and :func:`load_hdf5` for files in the ann-benchmarks HDF5
  layout (``train``, ``test``, ``neighbors``, ``distances`` and a ``distance``
  attribute), :func:`download` to fetch the published ann-benchmarks files into
  a local cache, and :func:`load` which accepts either a path or a name.
* Readers and writers for the TEXMEX ``.fvecs`` / ``.ivecs`` / ``.bvecs`` files
  and the big-ann-benchmarks ``.fbin`` / ``.ibin`` / ``.u8bin`` / ``.i8bin``
  files. Every reader validates the file against its size before allocating.
* :func:`recall_at_k`, :func:`ground_truth` (exact float64 brute force) and
  :func:`synthetic`, the deterministic clustered data set annx's demo runs on.

Metric names
------------
annx uses ``"l2"`` (squared Euclidean), ``"cos"`` (cosine), ``"ip"`` (inner
product), ``"hamming"`` and ``"jaccard"``. The ann-benchmarks names map to them
as ``euclidean -> l2``, ``angular -> cos``, ``dot``/``ip -> ip``.
"""

from __future__ import annotations

import difflib
import http.client
import operator
import os
import pathlib
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final, Union

import numpy as np
import numpy.typing as npt

__all__ = [
    "ANN_BENCHMARKS_DATASETS",
    "DEFAULT_BASE_URL",
    "Dataset",
    "download",
    "ground_truth",
    "load",
    "load_hdf5",
    "read_bvecs",
    "read_fbin",
    "read_fvecs",
    "read_i8bin",
    "read_ibin",
    "read_ivecs",
    "read_u8bin",
    "read_vectors",
    "recall_at_k",
    "synthetic",
    "write_bvecs",
    "write_fbin",
    "write_fvecs",
    "write_i8bin",
    "write_ibin",
    "write_ivecs",
    "write_u8bin",
]

PathLike = Union[str, "os.PathLike[str]"]
"""A file system path: ``str`` or any :class:`os.PathLike`."""

METRICS: Final[tuple[str, ...]] = ("l2", "cos", "ip", "hamming", "jaccard")
"""The metric names annx understands."""

# ann-benchmarks ``distance`` attribute -> annx metric. annx's own names are
# accepted too, so files written by other tools with "l2"/"cos" still load.
_DISTANCE_TO_METRIC: Final[dict[str, str]] = {
    "euclidean": "l2",
    "l2": "l2",
    "angular": "cos",
    "cosine": "cos",
    "cos": "cos",
    "dot": "ip",
    "ip": "ip",
    "inner_product": "ip",
    "hamming": "hamming",
    "jaccard": "jaccard",
}

_METRIC_TO_DISTANCE: Final[dict[str, str]] = {
    "l2": "euclidean",
    "cos": "angular",
    "ip": "dot",
    "hamming": "hamming",
    "jaccard": "jaccard",
}

DEFAULT_BASE_URL: Final[str] = "http://ann-benchmarks.com"
"""Where :func:`download` fetches ``{name}.hdf5`` from unless told otherwise."""

ANN_BENCHMARKS_DATASETS: Final[tuple[str, ...]] = (
    "deep-image-96-angular",
    "fashion-mnist-784-euclidean",
    "gist-960-euclidean",
    "glove-25-angular",
    "glove-50-angular",
    "glove-100-angular",
    "glove-200-angular",
    "kosarak-jaccard",
    "mnist-784-euclidean",
    "movielens1m-jaccard",
    "movielens10m-jaccard",
    "movielens20m-jaccard",
    "nytimes-16-angular",
    "nytimes-256-angular",
    "sift-128-euclidean",
    "sift-256-hamming",
    "word2bits-800-hamming",
    "lastfm-64-dot",
    "coco-i2i-512-angular",
    "coco-t2i-512-angular",
    "random-xs-20-euclidean",
    "random-s-100-euclidean",
    "random-xs-20-angular",
    "random-s-100-angular",
    "random-xs-16-hamming",
    "random-s-128-hamming",
    "random-l-256-hamming",
    "random-s-jaccard",
    "random-l-jaccard",
    *(f"dbpedia-openai-{n}k-angular" for n in range(100, 1100, 100)),
)
"""Every dataset name ann-benchmarks defines (and, for most, publishes)."""

# ann-benchmarks links the COCO sets to their author's GitHub release rather
# than to ann-benchmarks.com; used only when no base URL is configured.
_DEFAULT_URL_OVERRIDES: Final[dict[str, str]] = {
    "coco-i2i-512-angular": (
        "https://github.com/fabiocarrara/str-encoders/releases/download/v0.1.3"
    ),
    "coco-t2i-512-angular": (
        "https://github.com/fabiocarrara/str-encoders/releases/download/v0.1.3"
    ),
}

HDF5_SIGNATURE: Final[bytes] = b"\x89HDF\r\n\x1a\n"
"""The 8 bytes every HDF5 file (without a user block) starts with."""

_CHUNK: Final[int] = 1 << 20
# Upper bound on the float64 elements of one distance block in ground_truth.
_BLOCK_ELEMS: int = 1 << 22
# Rows written per chunk by the vector-file writers.
_WRITE_CHUNK_BYTES: Final[int] = 64 << 20


# --------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A benchmark data set: base vectors, queries and their exact neighbours.

    Parameters
    ----------
    name : str
        Short name, e.g. the file stem ``"glove-100-angular"``.
    train : numpy.ndarray
        Base vectors, ``float32`` of shape ``[n, d]``; for ``"hamming"`` and
        ``"jaccard"`` sets the bits packed with ``numpy.packbits(axis=1)``
        (``uint8`` of shape ``[n, ceil(bits / 8)]``). A vector's id is its row.
    test : numpy.ndarray
        Query vectors, same dtype and width as ``train``.
    neighbors : numpy.ndarray or None
        Exact neighbour ids, ``int64`` of shape ``[nq, K]``, nearest first.
    distances : numpy.ndarray or None
        Their distances as stored in the source (``float32``, ``[nq, K]``).
    metric : str
        The annx metric: ``"l2"``, ``"cos"``, ``"ip"``, ``"hamming"`` or
        ``"jaccard"``.
    distance : str
        The raw ann-benchmarks ``distance`` attribute, e.g. ``"angular"``.
    extra : dict of str to numpy.ndarray
        Other numeric datasets found in the source file (e.g. ``learn``).
    bits : int or None
        For packed bit sets, the number of meaningful bits per vector (the
        padding bits of the last byte are zero); ``None`` otherwise.

    """

    name: str
    train: np.ndarray
    test: np.ndarray
    neighbors: np.ndarray | None
    distances: np.ndarray | None
    metric: str
    distance: str
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    bits: int | None = None

    def __post_init__(self) -> None:
        """Check the metric name and the array ranks."""
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; expected one of {METRICS}")
        for label in ("train", "test"):
            arr = getattr(self, label)
            if not isinstance(arr, np.ndarray) or arr.ndim != 2:
                raise ValueError(f"Dataset.{label} must be a 2-D numpy array")

    @property
    def n(self) -> int:
        """int: Number of base vectors (rows of ``train``)."""
        return int(self.train.shape[0])

    @property
    def d(self) -> int:
        """int: Columns of ``train`` (bytes per vector for packed bit sets)."""
        return int(self.train.shape[1])

    @property
    def nq(self) -> int:
        """int: Number of queries (rows of ``test``)."""
        return int(self.test.shape[0])

    def __repr__(self) -> str:
        """Summarise shapes instead of printing the arrays."""
        k = None if self.neighbors is None else self.neighbors.shape[1]
        extra = f", extra={sorted(self.extra)}" if self.extra else ""
        return (
            f"Dataset(name={self.name!r}, n={self.n}, d={self.d}, nq={self.nq}, "
            f"k={k}, metric={self.metric!r}, dtype={self.train.dtype}{extra})"
        )


# --------------------------------------------------------------------------
# HDF5
# --------------------------------------------------------------------------


def _import_h5py() -> ModuleType:
    try:
        import h5py
    except ImportError as exc:
        raise ImportError('reading HDF5 data sets needs h5py: pip install "annx[hdf5]"') from exc
    return h5py


def _metric_from_distance(distance: str, where: str) -> str:
    metric = _DISTANCE_TO_METRIC.get(distance.strip().lower())
    if metric is None:
        raise ValueError(
            f"{where}: unknown distance {distance!r}; expected one of {sorted(_DISTANCE_TO_METRIC)}"
        )
    return metric


def _attr_str(value: Any) -> str | None:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return str(value)
    return None


def _pack_dense_bits(arr: np.ndarray, label: str, where: str) -> np.ndarray:
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "iu":
            raise ValueError(
                f"{where}: {label!r} of a bit data set must be bool or 0/1 "
                f"integers, got {arr.dtype}"
            )
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"{where}: {label!r} of a bit data set holds values other than 0/1")
        arr = arr.astype(np.bool_)
    return np.packbits(arr, axis=1)


def _pack_sparse_bits(
    flat: np.ndarray, sizes: np.ndarray, bits: int, label: str, where: str
) -> np.ndarray:
    """Turn ann-benchmarks' flattened index sets into packed bitmaps."""
    if flat.ndim != 1 or sizes.ndim != 1:
        raise ValueError(f"{where}: sparse {label!r} and its sizes must be 1-D")
    if flat.dtype.kind not in "iu" or sizes.dtype.kind not in "iu":
        raise ValueError(f"{where}: sparse {label!r} must hold integer item ids")
    sizes = sizes.astype(np.int64)
    if sizes.size and sizes.min() < 0:
        raise ValueError(f"{where}: negative set size in size_{label}")
    if int(sizes.sum()) != flat.shape[0]:
        raise ValueError(
            f"{where}: size_{label} sums to {int(sizes.sum())} but {label!r} "
            f"holds {flat.shape[0]} item ids"
        )
    ids = flat.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= bits):
        raise ValueError(
            f"{where}: {label!r} holds item ids outside [0, {bits}) (the 'dimension' attribute)"
        )
    out = np.zeros((sizes.shape[0], (bits + 7) // 8), dtype=np.uint8)
    rows = np.repeat(np.arange(sizes.shape[0], dtype=np.int64), sizes)
    masks = (np.uint8(0x80) >> (ids & 7).astype(np.uint8)).astype(np.uint8)
    np.bitwise_or.at(out, (rows, ids >> 3), masks)
    return out


def load_hdf5(path: PathLike, *, load_extra: bool = True) -> Dataset:
    """Load a data set stored in the ann-benchmarks HDF5 layout.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.hdf5`` file.
    load_extra : bool, default True
        Also load every other top-level dataset of numeric (or bool) dtype
        into :attr:`Dataset.extra`, e.g. ``learn``. Text datasets such as
        ``test_texts`` and the consumed ``size_train``/``size_test`` are
        skipped.

    Returns
    -------
    Dataset
        ``train``/``test`` as ``float32`` (``uint8`` packed bits for hamming
        and jaccard sets), ``neighbors`` as ``int64`` and ``distances`` as
        ``float32`` (``None`` where the file has no such dataset).

    Raises
    ------
    ValueError
        If ``train`` or ``test`` is missing, the ``distance`` attribute is
        missing or unknown, or shapes disagree (``train``/``test`` widths,
        ``neighbors`` rows versus ``test`` rows, ``distances`` versus
        ``neighbors``). The message names the file.
    ImportError
        If h5py is not installed.

    Notes
    -----
    Bit data sets (``distance`` ``"hamming"`` or ``"jaccard"``) are converted
    to packed bits with ``numpy.packbits(axis=1)``: the bit for dimension ``j``
    is ``(row[j // 8] >> (7 - j % 8)) & 1``. ann-benchmarks stores dense bit
    sets as ``bool`` (or 0/1 ``uint8``) per bit, and sparse sets (``type``
    attribute ``"sparse"``, e.g. ``kosarak-jaccard``) as the flattened item ids
    of every set plus ``size_train``/``size_test``; both become packed
    bitmaps of ``dimension`` bits, recorded in :attr:`Dataset.bits`.

    """
    h5py = _import_h5py()
    p = pathlib.Path(path)
    where = str(p)
    with h5py.File(p, "r") as f:
        for required in ("train", "test"):
            if required not in f or not isinstance(f[required], h5py.Dataset):
                raise ValueError(f"{where}: missing required dataset {required!r}")
        if "distance" not in f.attrs:
            raise ValueError(f"{where}: missing the 'distance' attribute")
        distance = _attr_str(f.attrs["distance"])
        if distance is None:
            raise ValueError(
                f"{where}: the 'distance' attribute is not a string: {f.attrs['distance']!r}"
            )
        metric = _metric_from_distance(distance, where)
        kind = _attr_str(f.attrs.get("type", "dense")) or "dense"
        train = f["train"][()]
        test = f["test"][()]
        neighbors = f["neighbors"][()] if "neighbors" in f else None
        distances = f["distances"][()] if "distances" in f else None
        sparse = kind.lower() == "sparse" or (
            train.ndim == 1 and "size_train" in f and "size_test" in f
        )
        consumed = {"train", "test", "neighbors", "distances"}
        bits: int | None = None
        if sparse:
            if metric not in ("hamming", "jaccard"):
                raise ValueError(
                    f"{where}: sparse data is only supported for bit metrics, not {distance!r}"
                )
            for sz in ("size_train", "size_test"):
                if sz not in f:
                    raise ValueError(f"{where}: sparse file misses dataset {sz!r}")
            size_train = f["size_train"][()]
            size_test = f["size_test"][()]
            consumed |= {"size_train", "size_test"}
            if "dimension" in f.attrs:
                bits = int(f.attrs["dimension"])
            else:
                top = max(int(train.max(initial=-1)), int(test.max(initial=-1)))
                bits = top + 1
            if bits < 1:
                raise ValueError(f"{where}: invalid 'dimension' attribute {bits}")
            train = _pack_sparse_bits(train, size_train, bits, "train", where)
            test = _pack_sparse_bits(test, size_test, bits, "test", where)
        extra: dict[str, np.ndarray] = {}
        if load_extra:
            for key in f:
                obj = f[key]
                if key in consumed or not isinstance(obj, h5py.Dataset):
                    continue
                if obj.dtype.kind in "biuf":
                    extra[key] = obj[()]

    for label, arr in (("train", train), ("test", test)):
        if arr.ndim != 2:
            raise ValueError(f"{where}: {label!r} must be 2-D, got shape {arr.shape}")
    if train.shape[1] != test.shape[1]:
        raise ValueError(
            f"{where}: train has dimension {train.shape[1]} but test has {test.shape[1]}"
        )
    if metric in ("hamming", "jaccard"):
        if not sparse:
            bits = int(train.shape[1])
            train = _pack_dense_bits(train, "train", where)
            test = _pack_dense_bits(test, "test", where)
    else:
        for label, arr in (("train", train), ("test", test)):
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"{where}: {label!r} has non-numeric dtype {arr.dtype}")
        train = np.ascontiguousarray(train, dtype=np.float32)
        test = np.ascontiguousarray(test, dtype=np.float32)
    if neighbors is not None:
        if neighbors.ndim != 2 or neighbors.dtype.kind not in "iu":
            raise ValueError(
                f"{where}: 'neighbors' must be a 2-D integer array, got "
                f"{neighbors.dtype} of shape {neighbors.shape}"
            )
        if neighbors.shape[0] != test.shape[0]:
            raise ValueError(
                f"{where}: 'neighbors' has {neighbors.shape[0]} rows but 'test' has {test.shape[0]}"
            )
        neighbors = np.ascontiguousarray(neighbors, dtype=np.int64)
    if distances is not None:
        if distances.dtype.kind not in "iuf":
            raise ValueError(f"{where}: 'distances' has dtype {distances.dtype}")
        expected = neighbors.shape if neighbors is not None else None
        if distances.ndim != 2 or (expected is not None and distances.shape != expected):
            raise ValueError(
                f"{where}: 'distances' has shape {distances.shape}, expected "
                f"{expected if expected is not None else '2-D'}"
            )
        if distances.shape[0] != test.shape[0]:
            raise ValueError(
                f"{where}: 'distances' has {distances.shape[0]} rows but 'test' has {test.shape[0]}"
            )
        distances = np.ascontiguousarray(distances, dtype=np.float32)
    return Dataset(
        name=p.stem,
        train=train,
        test=test,
        neighbors=neighbors,
        distances=distances,
        metric=metric,
        distance=distance,
        extra=extra,
        bits=bits,
    )


# --------------------------------------------------------------------------
# Vector files: shared helpers
# --------------------------------------------------------------------------


def _resolve_range(where: str, n: int, count: int | None, offset: int) -> tuple[int, int]:
    offset = operator.index(offset)
    if offset < 0 or offset > n:
        raise ValueError(f"{where}: offset {offset} is outside the file's {n} vectors")
    if count is None:
        return n - offset, offset
    count = operator.index(count)
    if count < 0:
        raise ValueError(f"{where}: count must be >= 0, got {count}")
    if offset + count > n:
        raise ValueError(
            f"{where}: cannot read {count} vectors from offset {offset}; the file holds {n}"
        )
    return count, offset


def _as_matrix(array: npt.ArrayLike, fmt: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.ndim != 2:
        raise ValueError(f"{fmt} needs a 2-D array, got shape {arr.shape}")
    return arr


def _convert_for_disk(arr: np.ndarray, disk: np.dtype, fmt: str) -> np.ndarray:
    """Cast to the on-disk dtype, refusing lossy integer conversions."""
    if disk.kind == "f":
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{fmt} needs real numbers, got dtype {arr.dtype}")
        return np.ascontiguousarray(arr, dtype=disk)
    if arr.dtype.kind not in "biu":
        raise ValueError(f"{fmt} needs integers ({disk.name}), got dtype {arr.dtype}")
    info = np.iinfo(disk)
    if arr.size and arr.dtype.kind != "b":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < info.min or hi > info.max:
            raise ValueError(
                f"{fmt}: values in [{lo}, {hi}] do not fit {disk.name} [{info.min}, {info.max}]"
            )
    return np.ascontiguousarray(arr, dtype=disk)


# --------------------------------------------------------------------------
# TEXMEX .fvecs / .ivecs / .bvecs
# --------------------------------------------------------------------------


def _strided(
    buf: np.ndarray, dtype: npt.DTypeLike, shape: tuple[int, ...], start: int, rec: int
) -> np.ndarray:
    """View ``shape`` values of ``dtype`` at byte ``start`` of each ``rec``-byte row."""
    dt = np.dtype(dtype)
    strides = (rec,) if len(shape) == 1 else (rec, dt.itemsize)
    return np.ndarray(shape, dtype=dt, buffer=buf, offset=start, strides=strides)


def _scan_vecs_error(path: str, size: int, rec: int, dim: int) -> ValueError:
    """Explain why a vecs file's size is not a multiple of its record size."""
    n_full = size // rec
    if n_full > 1:
        mm = np.memmap(path, dtype=np.uint8, mode="r", shape=(n_full, rec))
        try:
            heads = np.array(_strided(mm, "<i4", (n_full,), 0, rec))
        finally:
            del mm
        bad = np.flatnonzero(heads != dim)
        if bad.size:
            i = int(bad[0])
            return ValueError(
                f"{path}: inconsistent dimension {int(heads[i])} at byte offset "
                f"{i * rec} (vector {i}); the first vector has dimension {dim}"
            )
    return ValueError(
        f"{path}: truncated last record at byte offset {n_full * rec}: "
        f"{size - n_full * rec} bytes where a record of dimension {dim} needs "
        f"{rec}"
    )


def _read_vecs(
    path: PathLike, disk: str, count: int | None, offset: int, mmap: bool = False
) -> np.ndarray:
    where = os.fspath(path)
    disk_dtype = np.dtype(disk)
    out_dtype = disk_dtype.newbyteorder("=")
    size = os.path.getsize(where)
    if size == 0:
        _resolve_range(where, 0, count, offset)
        return np.empty((0, 0), dtype=out_dtype)
    if size < 4:
        raise ValueError(
            f"{where}: truncated record at byte offset 0: {size} bytes, too "
            "short for the 4-byte dimension"
        )
    dim = int(np.fromfile(where, dtype="<i4", count=1)[0])
    if dim <= 0:
        raise ValueError(f"{where}: invalid dimension {dim} at byte offset 0")
    rec = 4 + dim * disk_dtype.itemsize
    if rec > size:
        raise ValueError(
            f"{where}: dimension {dim} at byte offset 0 needs {rec}-byte records "
            f"but the file has only {size} bytes (corrupt or not a "
            f"{disk_dtype.name} vecs file)"
        )
    if size % rec:
        raise _scan_vecs_error(where, size, rec, dim)
    count, offset = _resolve_range(where, size // rec, count, offset)
    out = np.empty((count, dim), dtype=out_dtype)
    if count == 0:
        return out
    mm = np.memmap(where, dtype=np.uint8, mode="r", offset=offset * rec, shape=(count, rec))
    try:
        heads = _strided(mm, "<i4", (count,), 0, rec)
        bad = np.flatnonzero(heads != dim)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{where}: inconsistent dimension {int(heads[i])} at byte offset "
                f"{(offset + i) * rec} (vector {offset + i}); the first vector "
                f"has dimension {dim}"
            )
        if mmap:  # a read-only strided view of the mapping (it keeps the map alive)
            return _strided(mm, disk_dtype, (count, dim), 4, rec)
        out[...] = _strided(mm, disk_dtype, (count, dim), 4, rec)
    finally:
        del mm
    return out


def _write_vecs(path: PathLike, array: npt.ArrayLike, disk: str, fmt: str) -> None:
    arr = _as_matrix(array, fmt)
    n, d = arr.shape
    if n and d == 0:
        raise ValueError(f"{fmt} cannot store vectors of dimension 0")
    if d > np.iinfo(np.int32).max:
        raise ValueError(f"{fmt}: dimension {d} does not fit int32")
    disk_dtype = np.dtype(disk)
    data = _convert_for_disk(arr, disk_dtype, fmt)
    rec = 4 + d * disk_dtype.itemsize
    head = np.frombuffer(np.array([d], dtype="<i4").tobytes(), dtype=np.uint8)
    rows = max(1, _WRITE_CHUNK_BYTES // max(rec, 1))
    with open(path, "wb") as fh:
        for r0 in range(0, n, rows):
            part = data[r0 : r0 + rows]
            buf = np.empty((part.shape[0], rec), dtype=np.uint8)
            buf[:, :4] = head
            buf[:, 4:] = part.view(np.uint8).reshape(part.shape[0], -1)
            buf.tofile(fh)


def write_fvecs(path: PathLike, array: npt.ArrayLike) -> None:
    """Write a 2-D array as a TEXMEX ``.fvecs`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (overwritten).
    array : array_like
        Real numbers of shape ``[n, d]``, cast to ``float32``. ``n == 0``
        writes an empty file.

    Raises
    ------
    ValueError
        If the array is not 2-D, not real-valued, or has ``d == 0`` rows.

    """
    _write_vecs(path, array, "<f4", "fvecs")


def write_ivecs(path: PathLike, array: npt.ArrayLike) -> None:
    """Write a 2-D integer array as a TEXMEX ``.ivecs`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (overwritten).
    array : array_like
        Integers of shape ``[n, d]`` that fit ``int32``.

    Raises
    ------
    ValueError
        If the array is not 2-D, not integer, out of the int32 range, or has
        ``d == 0`` rows.

    """
    _write_vecs(path, array, "<i4", "ivecs")


def write_bvecs(path: PathLike, array: npt.ArrayLike) -> None:
    """Write a 2-D integer array as a TEXMEX ``.bvecs`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (overwritten).
    array : array_like
        Integers of shape ``[n, d]`` in ``[0, 255]``.

    Raises
    ------
    ValueError
        If the array is not 2-D, not integer, out of the uint8 range, or has
        ``d == 0`` rows.

    """
    _write_vecs(path, array, "u1", "bvecs")


# --------------------------------------------------------------------------
# big-ann-benchmarks .fbin / .ibin / .u8bin / .i8bin
# --------------------------------------------------------------------------


def _read_bin(
    path: PathLike, disk: str, count: int | None, offset: int, mmap: bool = False
) -> np.ndarray:
    where = os.fspath(path)
    disk_dtype = np.dtype(disk)
    out_dtype = disk_dtype.newbyteorder("=")
    size = os.path.getsize(where)
    if size < 8:
        raise ValueError(
            f"{where}: {size} bytes, too short for the 8-byte header (uint32 n, uint32 d)"
        )
    n, d = (int(v) for v in np.fromfile(where, dtype="<u4", count=2))
    if n > 0 and d == 0:
        raise ValueError(f"{where}: header claims {n} vectors of dimension 0")
    need = 8 + n * d * disk_dtype.itemsize
    if size < need:
        raise ValueError(
            f"{where}: header claims {n} x {d} {disk_dtype.name} values "
            f"({need} bytes) but the file ends at byte offset {size}"
        )
    if size > need:
        raise ValueError(
            f"{where}: {size - need} unexpected bytes after the {n} x {d} "
            f"{disk_dtype.name} values, starting at byte offset {need} (wrong "
            "element type, or not a plain .bin matrix)"
        )
    count, offset = _resolve_range(where, n, count, offset)
    out = np.empty((count, d), dtype=out_dtype)
    if count == 0 or d == 0:
        return out
    mm = np.memmap(
        where,
        dtype=disk_dtype,
        mode="r",
        offset=8 + offset * d * disk_dtype.itemsize,
        shape=(count, d),
    )
    if mmap:
        return mm
    try:
        out[...] = mm
    finally:
        del mm
    return out


def _write_bin(path: PathLike, array: npt.ArrayLike, disk: str, fmt: str) -> None:
    arr = _as_matrix(array, fmt)
    n, d = arr.shape
    limit = np.iinfo(np.uint32).max
    if n > limit or d > limit:
        raise ValueError(f"{fmt}: shape {arr.shape} does not fit the uint32 header")
    data = _convert_for_disk(arr, np.dtype(disk), fmt)
    rows = max(1, _WRITE_CHUNK_BYTES // max(1, d * data.itemsize))
    with open(path, "wb") as fh:
        fh.write(np.array([n, d], dtype="<u4").tobytes())
        for r0 in range(0, n, rows):
            data[r0 : r0 + rows].tofile(fh)


def write_fbin(path: PathLike, array: npt.ArrayLike) -> None:
    """Write a 2-D array as a big-ann-benchmarks ``.fbin`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (overwritten).
    array : array_like
        Real numbers of shape ``[n, d]``, cast to ``float32``.

    Raises
    ------
    ValueError
        If the array is not 2-D or not real-valued.

    """
    _write_bin(path, array, "<f4", "fbin")


def write_ibin(path: PathLike, array: npt.ArrayLike) -> None:
    """Write a 2-D integer array as a big-ann-benchmarks ``.ibin`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (overwritten).
    array : array_like
        Integers of shape ``[n, d]`` that fit ``int32``.

    Raises
    ------
    ValueError
        If the array is not 2-D, not integer or out of the int32 range.

    """
    _write_bin(path, array, "<i4", "ibin")


def write_u8bin(path: PathLike, array: npt.ArrayLike) -> None:
    """Write a 2-D integer array as a big-ann-benchmarks ``.u8bin`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (overwritten).
    array : array_like
        Integers of shape ``[n, d]`` in ``[0, 255]``.

    Raises
    ------
    ValueError
        If the array is not 2-D, not integer or out of the uint8 range.

    """
    _write_bin(path, array, "u1", "u8bin")


def write_i8bin(path: PathLike, array: npt.ArrayLike) -> None:
    """Write a 2-D integer array as a big-ann-benchmarks ``.i8bin`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (overwritten).
    array : array_like
        Integers of shape ``[n, d]`` in ``[-128, 127]``.

    Raises
    ------
    ValueError
        If the array is not 2-D, not integer or out of the int8 range.

    """
    _write_bin(path, array, "i1", "i8bin")


# --------------------------------------------------------------------------
# Readers: one body, one docstring (read_vectors); read_<format> are shorthands
# --------------------------------------------------------------------------

# format -> (layout, on-disk dtype)
_READ_FORMATS: Final[dict[str, tuple[str, str]]] = {
    "fvecs": ("vecs", "<f4"),
    "ivecs": ("vecs", "<i4"),
    "bvecs": ("vecs", "u1"),
    "fbin": ("bin", "<f4"),
    "ibin": ("bin", "<i4"),
    "u8bin": ("bin", "u1"),
    "i8bin": ("bin", "i1"),
    "npy": ("npy", ""),
}


def read_vectors(
    path: PathLike,
    *,
    format: str | None = None,
    count: int | None = None,
    offset: int = 0,
    mmap: bool = False,
) -> np.ndarray:
    """Read a matrix of vectors from a TEXMEX, big-ann-benchmarks or numpy file.

    Formats (``format=None`` takes it from the file's suffix):

    - ``"fvecs"`` / ``"ivecs"`` / ``"bvecs"`` (TEXMEX): records of an int32 dimension
      ``d`` followed by ``d`` float32 / int32 / uint8 values.
    - ``"fbin"`` / ``"ibin"`` / ``"u8bin"`` / ``"i8bin"`` (big-ann-benchmarks): a header
      of uint32 ``n`` and uint32 ``d``, then ``n * d`` float32 / int32 / uint8 / int8
      values.
    - ``"npy"``: a 2-D numpy array (``numpy.load``, never with pickles).

    :func:`read_fvecs`, :func:`read_ivecs`, :func:`read_bvecs`, :func:`read_fbin`,
    :func:`read_ibin`, :func:`read_u8bin` and :func:`read_i8bin` are this function with
    the format fixed.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    format : str, optional
        One of the formats above; default: the suffix of ``path``.
    count : int, optional
        Number of vectors to read; all remaining vectors by default.
    offset : int, default 0
        Index of the first vector to read (in vectors, not bytes).
    mmap : bool, default False
        Return a read-only view of a memory map of the file instead of a copy in
        memory (``numpy.load(mmap_mode="r")`` for ``.npy``). Pages are read when
        used, so a file larger than memory can be indexed in chunks. For TEXMEX
        files the view is strided (each row skips its 4-byte dimension), so
        ``numpy.ascontiguousarray`` copies it.

    Returns
    -------
    numpy.ndarray
        Array of shape ``[count, d]`` in the format's element type (native byte
        order). An empty TEXMEX file gives shape ``(0, 0)`` (the dimension is not
        recorded anywhere).

    Raises
    ------
    ValueError
        For an unknown format; a non-positive or impossible dimension, a truncated
        last record or records of differing dimension (TEXMEX; checked among those
        read, or anywhere when the file size does not fit); a file shorter or longer
        than its header claims (``.bin``: trailing bytes usually mean a different
        element type); a ``.npy`` array that is not 2-D or holds objects; or a
        ``count``/``offset`` past the end. The message gives the file name and the
        byte offset of the problem.
    OSError
        When the file cannot be read.

    """
    where = os.fspath(path)
    fmt = format if format is not None else pathlib.Path(where).suffix.lower().lstrip(".")
    if fmt not in _READ_FORMATS:
        raise ValueError(
            f"{where}: unknown vector file format {fmt!r}; expected one of "
            f"{', '.join(sorted(_READ_FORMATS))}"
        )
    if not isinstance(mmap, (bool, np.bool_)):
        raise ValueError(f"mmap must be True or False, got {mmap!r}")
    layout, disk = _READ_FORMATS[fmt]
    if layout == "vecs":
        return _read_vecs(where, disk, count, offset, bool(mmap))
    if layout == "bin":
        return _read_bin(where, disk, count, offset, bool(mmap))
    try:
        arr = np.load(where, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{where}: not a plain .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 2:
        shape = getattr(arr, "shape", None)
        raise ValueError(f"{where}: expected a 2-D array, got shape {shape}")
    count, offset = _resolve_range(where, arr.shape[0], count, offset)
    return arr[offset : offset + count]


def read_fvecs(
    path: PathLike, *, count: int | None = None, offset: int = 0, mmap: bool = False
) -> np.ndarray:
    """Read a TEXMEX ``.fvecs`` file (float32): :func:`read_vectors` with ``format="fvecs"``."""
    return read_vectors(path, format="fvecs", count=count, offset=offset, mmap=mmap)


def read_ivecs(
    path: PathLike, *, count: int | None = None, offset: int = 0, mmap: bool = False
) -> np.ndarray:
    """Read a TEXMEX ``.ivecs`` file (int32): :func:`read_vectors` with ``format="ivecs"``."""
    return read_vectors(path, format="ivecs", count=count, offset=offset, mmap=mmap)


def read_bvecs(
    path: PathLike, *, count: int | None = None, offset: int = 0, mmap: bool = False
) -> np.ndarray:
    """Read a TEXMEX ``.bvecs`` file (uint8): :func:`read_vectors` with ``format="bvecs"``."""
    return read_vectors(path, format="bvecs", count=count, offset=offset, mmap=mmap)


def read_fbin(
    path: PathLike, *, count: int | None = None, offset: int = 0, mmap: bool = False
) -> np.ndarray:
    """Read a ``.fbin`` file (float32): :func:`read_vectors` with ``format="fbin"``."""
    return read_vectors(path, format="fbin", count=count, offset=offset, mmap=mmap)


def read_ibin(
    path: PathLike, *, count: int | None = None, offset: int = 0, mmap: bool = False
) -> np.ndarray:
    """Read a ``.ibin`` file (int32): :func:`read_vectors` with ``format="ibin"``."""
    return read_vectors(path, format="ibin", count=count, offset=offset, mmap=mmap)


def read_u8bin(
    path: PathLike, *, count: int | None = None, offset: int = 0, mmap: bool = False
) -> np.ndarray:
    """Read a ``.u8bin`` file (uint8): :func:`read_vectors` with ``format="u8bin"``."""
    return read_vectors(path, format="u8bin", count=count, offset=offset, mmap=mmap)


def read_i8bin(
    path: PathLike, *, count: int | None = None, offset: int = 0, mmap: bool = False
) -> np.ndarray:
    """Read a ``.i8bin`` file (int8): :func:`read_vectors` with ``format="i8bin"``."""
    return read_vectors(path, format="i8bin", count=count, offset=offset, mmap=mmap)


# --------------------------------------------------------------------------
# Recall and exact ground truth
# --------------------------------------------------------------------------


def _ids_matrix(a: npt.ArrayLike, label: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{label} must be 2-D [nq, k], got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{label} must hold integer ids, got dtype {arr.dtype}")
    return arr


def _unique_sorted_rows(ids: np.ndarray, invalid: int) -> np.ndarray:
    """Sort each row; replace negatives and repeats by ``invalid`` (< 0)."""
    s = np.sort(ids, axis=1)
    bad = s < 0
    bad[:, 1:] |= s[:, 1:] == s[:, :-1]
    s[bad] = invalid
    return s


def recall_at_k(I: npt.ArrayLike, gt: npt.ArrayLike, k: int) -> float:  # noqa: E741
    """Mean fraction of the true ``k`` nearest neighbours that were found.

    Parameters
    ----------
    I : array_like
        Returned ids, integer ``[nq, >= k]``; only the first ``k`` columns
        count. ``-1`` (any negative id) marks an empty slot and never counts,
        and an id repeated within a row counts once.
    gt : array_like
        Exact neighbour ids, integer ``[nq, >= k]``, nearest first.
    k : int
        Cut-off, ``>= 1``.

    Returns
    -------
    float
        ``mean_q |set(I[q, :k]) & set(gt[q, :k])| / k`` in ``[0, 1]``.

    Raises
    ------
    ValueError
        If ``k < 1``, either array is not 2-D integer, the row counts differ,
        there are no queries, or either array has fewer than ``k`` columns.

    Notes
    -----
    Vectorised: each row of both arrays is sorted and de-duplicated, then the
    concatenation is sorted again and equal neighbours are counted; the cost
    is ``O(nq k log k)`` with no Python loop over queries.

    """
    k = operator.index(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    res = _ids_matrix(I, "I")
    truth = _ids_matrix(gt, "gt")
    if res.shape[0] != truth.shape[0]:
        raise ValueError(f"I has {res.shape[0]} queries but gt has {truth.shape[0]}")
    if res.shape[0] == 0:
        raise ValueError("recall_at_k needs at least one query")
    for label, arr in (("I", res), ("gt", truth)):
        if arr.shape[1] < k:
            raise ValueError(f"{label} has {arr.shape[1]} columns, fewer than k={k}")
    a = _unique_sorted_rows(res[:, :k].astype(np.int64), -1)
    b = _unique_sorted_rows(truth[:, :k].astype(np.int64), -2)
    c = np.sort(np.concatenate([a, b], axis=1), axis=1)
    hits = np.count_nonzero((c[:, 1:] == c[:, :-1]) & (c[:, 1:] >= 0))
    return float(hits) / float(res.shape[0] * k)


def _canonical_metric(metric: str, allowed: tuple[str, ...]) -> str:
    m = _DISTANCE_TO_METRIC.get(str(metric).strip().lower())
    if m is None or m not in allowed:
        raise ValueError(f"unsupported metric {metric!r}; expected one of {allowed}")
    return m


def _real_matrix(a: npt.ArrayLike, label: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError(f"{label} must be 2-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{label} must be real-valued, got dtype {arr.dtype}")
    return arr


def _normalise_rows(x: np.ndarray, label: str, base: int = 0) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(
            f"cosine similarity is undefined for the zero vector {label}[{base + int(zero[0])}]"
        )
    x /= norms[:, None]
    return x


def _smallest_k(key: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``m`` smallest keys and their columns, ties by lower column."""
    b, w = key.shape
    if m >= w:
        cols = np.argsort(key, axis=1, kind="stable")
        return np.take_along_axis(key, cols, axis=1), cols
    thr = np.partition(key, m - 1, axis=1)[:, m - 1 : m]
    rows, cols = np.nonzero(key <= thr)  # >= m per row (more when tied)
    vals = key[rows, cols]
    order = np.lexsort((cols, vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    counts = np.bincount(rows, minlength=b)
    starts = np.cumsum(counts) - counts
    rank = np.arange(rows.shape[0]) - np.repeat(starts, counts)
    keep = rank < m
    return vals[keep].reshape(b, m), cols[keep].reshape(b, m)


def ground_truth(
    train: npt.ArrayLike,
    test: npt.ArrayLike,
    k: int,
    metric: str = "l2",
    *,
    batch: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours by brute force in float64.

    Parameters
    ----------
    train : array_like
        Base vectors ``[n, d]`` (real-valued, finite).
    test : array_like
        Queries ``[nq, d]``.
    k : int
        Neighbours per query, ``>= 1``. If ``k > n`` the missing columns are
        padded with id ``-1`` and distance ``+inf`` (``"l2"``) or ``-inf``
        (``"ip"``/``"cos"``).
    metric : {"l2", "ip", "cos"}, default "l2"
        ``"l2"``: squared Euclidean distance, ascending. ``"ip"``: inner
        product, descending. ``"cos"``: cosine similarity of the normalised
        vectors, descending. ann-benchmarks names (``"euclidean"``, ``"dot"``,
        ``"angular"``) are accepted as aliases.
    batch : int, default 1024
        Queries per block; the base is also processed in blocks so the
        float64 distance block stays around 32 MiB.

    Returns
    -------
    D : numpy.ndarray
        ``float32 [nq, k]`` distances (l2) or similarities (ip, cos).
    I : numpy.ndarray
        ``int64 [nq, k]`` ids, best first; equal values are ordered by the
        lower id.

    Raises
    ------
    ValueError
        For bad shapes, ``k < 1``, ``batch < 1``, non-finite input, an
        unsupported metric, or a zero vector with ``"cos"``.

    Notes
    -----
    Ties are decided on the float64 values as computed (``|q|^2 + |x|^2 -
    2 q.x`` for l2, so identical base vectors always tie); ids are ordered by a
    stable sort on (value, id).
    Memory: a float64 copy of ``train`` (``8 n d`` bytes) plus one distance
    block of about ``_BLOCK_ELEMS`` float64 values.

    """
    metric = _canonical_metric(metric, ("l2", "ip", "cos"))
    k = operator.index(k)
    batch = operator.index(batch)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    x = _real_matrix(train, "train")
    q = _real_matrix(test, "test")
    if x.shape[1] != q.shape[1]:
        raise ValueError(f"train has dimension {x.shape[1]} but test has {q.shape[1]}")
    n, nq = x.shape[0], q.shape[0]
    pad = np.inf if metric == "l2" else -np.inf
    D = np.full((nq, k), pad, dtype=np.float32)
    ids = np.full((nq, k), -1, dtype=np.int64)
    if n == 0 or nq == 0:
        return D, ids
    xf = np.array(x, dtype=np.float64, order="C")
    if not np.isfinite(xf).all():
        raise ValueError("train contains NaN or infinite values")
    if not np.isfinite(q).all():
        raise ValueError("test contains NaN or infinite values")
    if metric == "cos":
        _normalise_rows(xf, "train")
    xsq = np.einsum("ij,ij->i", xf, xf) if metric == "l2" else None
    kk = min(k, n)
    bq = min(batch, nq)
    block = min(n, max(kk, _BLOCK_ELEMS // bq))
    for q0 in range(0, nq, bq):
        qb = np.array(q[q0 : q0 + bq], dtype=np.float64, order="C")
        if metric == "cos":
            _normalise_rows(qb, "test", q0)
        qsq = np.einsum("ij,ij->i", qb, qb)[:, None] if metric == "l2" else None
        best_v: np.ndarray | None = None
        best_i: np.ndarray | None = None
        for x0 in range(0, n, block):
            x1 = min(n, x0 + block)
            s = qb @ xf[x0:x1].T
            if xsq is not None and qsq is not None:
                s *= -2.0
                s += qsq
                s += xsq[None, x0:x1]
                np.maximum(s, 0.0, out=s)
            else:
                np.negative(s, out=s)
            v, c = _smallest_k(s, min(kk, x1 - x0))
            c += x0
            if best_v is None or best_i is None:
                best_v, best_i = v, c
            else:
                # Earlier blocks hold lower ids, so a stable sort keeps ties
                # ordered by id.
                cat_v = np.concatenate([best_v, v], axis=1)
                cat_i = np.concatenate([best_i, c], axis=1)
                order = np.argsort(cat_v, axis=1, kind="stable")[:, :kk]
                best_v = np.take_along_axis(cat_v, order, axis=1)
                best_i = np.take_along_axis(cat_i, order, axis=1)
        assert best_v is not None and best_i is not None
        D[q0 : q0 + bq, :kk] = best_v if metric == "l2" else -best_v
        ids[q0 : q0 + bq, :kk] = best_i
    return D, ids


# --------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------


def synthetic(
    n: int = 20000,
    d: int = 64,
    nq: int = 200,
    *,
    k: int = 10,
    metric: str = "l2",
    clusters: int = 64,
    seed: int = 0,
) -> Dataset:
    """Deterministic clustered Gaussian-mixture data with exact neighbours.

    Cluster centres are standard normal; each cluster has its own spread
    (uniform in ``[0.3, 1.0]``) and weight (Dirichlet, so clusters differ in
    size). Base vectors and queries are independent draws from the same
    mixture, all from ``numpy.random.default_rng(seed)``.

    Parameters
    ----------
    n : int, default 20000
        Base vectors.
    d : int, default 64
        Dimension.
    nq : int, default 200
        Queries.
    k : int, default 10
        Neighbours computed per query by :func:`ground_truth`.
    metric : {"l2", "ip", "cos"}, default "l2"
        Metric for the ground truth.
    clusters : int, default 64
        Mixture components.
    seed : int, default 0
        Seed; equal arguments give identical arrays.

    Returns
    -------
    Dataset
        Named ``f"synthetic-{n}-{d}-{metric}"``, ``float32`` data,
        ``neighbors``/``distances`` from :func:`ground_truth`, and ``distance``
        set to the ann-benchmarks name of the metric.

    Raises
    ------
    ValueError
        If a size is below 1 or the metric is not supported.

    """
    metric = _canonical_metric(metric, ("l2", "ip", "cos"))
    for label, value in (("n", n), ("d", d), ("nq", nq), ("k", k), ("clusters", clusters)):
        if operator.index(value) < 1:
            raise ValueError(f"{label} must be >= 1, got {value}")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d), dtype=np.float32)
    spread = rng.uniform(0.3, 1.0, size=clusters).astype(np.float32)
    weights = rng.dirichlet(np.full(clusters, 2.0))
    labels = rng.choice(clusters, size=n + nq, p=weights)
    data = rng.standard_normal((n + nq, d), dtype=np.float32)
    data *= spread[labels, None]
    data += centres[labels]
    train = np.ascontiguousarray(data[:n])
    test = np.ascontiguousarray(data[n:])
    dist, ids = ground_truth(train, test, k, metric)
    return Dataset(
        name=f"synthetic-{n}-{d}-{metric}",
        train=train,
        test=test,
        neighbors=ids,
        distances=dist,
        metric=metric,
        distance=_METRIC_TO_DISTANCE[metric],
    )


# --------------------------------------------------------------------------
# Download and load
# --------------------------------------------------------------------------


def _default_cache_dir() -> pathlib.Path:
    env = os.environ.get("ANNX_DATA_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "annx" / "datasets"


def _has_hdf5_signature(path: pathlib.Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


def download(
    name: str,
    *,
    cache_dir: PathLike | None = None,
    base_url: str | None = None,
    force: bool = False,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> pathlib.Path:
    """Fetch an ann-benchmarks HDF5 data set into a local cache.

    Parameters
    ----------
    name : str
        One of :data:`ANN_BENCHMARKS_DATASETS`, e.g. ``"glove-100-angular"``.
    cache_dir : str or os.PathLike, optional
        Where to keep the files; default ``$ANNX_DATA_DIR`` or
        ``~/.cache/annx/datasets``. Created if missing.
    base_url : str, optional
        Server prefix; the file is ``{base_url}/{name}.hdf5``. Default
        ``$ANNX_DATASETS_URL`` or ``http://ann-benchmarks.com`` (the two COCO
        sets default to their GitHub release, where ann-benchmarks links them).
    force : bool, default False
        Download even if the file is already cached.
    timeout : float, default 60.0
        Socket timeout in seconds for connecting and for each read.
    progress : callable, optional
        Called as ``progress(bytes_done, bytes_total_or_None)`` before the
        first chunk and after every chunk.

    Returns
    -------
    pathlib.Path
        The cached ``{cache_dir}/{name}.hdf5``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists close matches), or when the
        server's response is not an HDF5 file.
    OSError
        When the download fails (HTTP error such as 404, network error,
        timeout, or a body shorter than its ``Content-Length``).

    Notes
    -----
    The body is streamed in 1 MiB chunks into a temporary file in the cache
    directory, checked for the HDF5 signature, and moved into place with
    :func:`os.replace`; on any failure the temporary file is deleted, so the
    cache never holds a partial file. A cached file that lacks the HDF5
    signature is treated as missing and fetched again.

    """
    if name not in ANN_BENCHMARKS_DATASETS:
        close = difflib.get_close_matches(str(name), ANN_BENCHMARKS_DATASETS, n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown ann-benchmarks data set {name!r}{hint} (see "
            "annx.datasets.ANN_BENCHMARKS_DATASETS)"
        )
    cache = pathlib.Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
    target = cache / f"{name}.hdf5"
    if not force and target.is_file() and _has_hdf5_signature(target):
        return target
    base = base_url or os.environ.get("ANNX_DATASETS_URL")
    if not base:
        base = _DEFAULT_URL_OVERRIDES.get(name, DEFAULT_BASE_URL)
    url = f"{base.rstrip('/')}/{name}.hdf5"
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=cache)
    tmp = pathlib.Path(tmp_name)
    done = False
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "annx"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    got = 0
                    head = b""
                    if progress is not None:
                        progress(0, total)
                    while True:
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        if len(head) < len(HDF5_SIGNATURE):
                            head += chunk[: len(HDF5_SIGNATURE) - len(head)]
                        out.write(chunk)
                        got += len(chunk)
                        if progress is not None:
                            progress(got, total)
            except urllib.error.HTTPError as exc:
                raise OSError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from exc
            except urllib.error.URLError as exc:
                raise OSError(f"could not download {url}: {exc.reason}") from exc
            except TimeoutError as exc:
                raise OSError(f"could not download {url}: timed out") from exc
            except http.client.HTTPException as exc:
                raise OSError(f"could not download {url}: {exc!r}") from exc
            if total is not None and got != total:
                raise OSError(f"could not download {url}: got {got} of {total} bytes")
            if head != HDF5_SIGNATURE:
                raise ValueError(
                    f"{url} did not return an HDF5 file (it starts with "
                    f"{head!r}); nothing was saved"
                )
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        done = True
    finally:
        if not done:
            tmp.unlink(missing_ok=True)
    return target


_SYNTHETIC_NAME = re.compile(r"synthetic(?:-(\d+)-(\d+)-(l2|ip|cos))?")


def load(
    name_or_path: PathLike,
    *,
    load_extra: bool = True,
    cache_dir: PathLike | None = None,
    base_url: str | None = None,
    force: bool = False,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Dataset:
    """Load a data set from a file path or by name.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        An existing ``.hdf5``/``.h5`` file; or ``"synthetic"`` /
        ``"synthetic-{n}-{d}-{metric}"`` for :func:`synthetic`; or an
        ann-benchmarks name, which is fetched with :func:`download` first.
    load_extra : bool, default True
        Passed to :func:`load_hdf5`.
    cache_dir, base_url, force, timeout, progress
        Passed to :func:`download` when a name is given.

    Returns
    -------
    Dataset
        The loaded data set.

    Raises
    ------
    FileNotFoundError
        If the argument looks like a path (has a separator or an HDF5
        extension) but no such file exists.
    ValueError
        For an unsupported file extension or an unknown name, and as raised
        by :func:`load_hdf5` and :func:`download`.

    """
    text = os.fspath(name_or_path)
    path = pathlib.Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() not in (".hdf5", ".h5"):
            raise ValueError(
                f"{path}: cannot load a data set from a {path.suffix or 'suffix-less'} "
                "file; expected .hdf5 or .h5 (use read_fvecs/read_fbin for "
                "plain vector files)"
            )
        return load_hdf5(path, load_extra=load_extra)
    match = _SYNTHETIC_NAME.fullmatch(text)
    if match:
        if match.group(1) is None:
            return synthetic()
        return synthetic(int(match.group(1)), int(match.group(2)), metric=match.group(3))
    looks_like_path = (
        os.sep in text
        or (os.altsep is not None and os.altsep in text)
        or path.suffix.lower() in (".hdf5", ".h5")
    )
    if looks_like_path:
        raise FileNotFoundError(f"no such data set file: {text}")
    cached = download(
        text,
        cache_dir=cache_dir,
        base_url=base_url,
        force=force,
        timeout=timeout,
        progress=progress,
    )
    return load_hdf5(cached, load_extra=load_extra)
