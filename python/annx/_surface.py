"""The surface every annx index class shares, and the registry behind ``annx.load``.

One place for what :class:`annx.Index`, :class:`annx.BinaryIndex`,
:class:`annx.MultiVectorIndex` (and any later index class) have in common:

- :class:`IndexSurface`, a mixin: ``len()``, pickling (``pickle.dumps(index)`` is
  ``index.to_bytes()``), ``repr``, ``reset()``, ``range_search`` (raising
  :class:`annx.UnsupportedError` where a class has none), the faiss names that work
  (``add_with_ids``, ``remove_ids``) and the faiss idioms that fail with an error naming
  the annx way (``index.nprobe = 8``, ``index.hnsw.efSearch = 64``, ...).
- :func:`as_metric`: metric names and faiss's constants (:data:`METRIC_L2` = 1,
  :data:`METRIC_INNER_PRODUCT` = 0), accepted wherever a metric is.
- The file-kind registry: every annx file's manifest has a ``kind`` (absent means
  ``"index"``); :func:`load` and :func:`from_bytes` read it and call the class
  registered for it, so they return the class that saved the file.

Adding an index class
---------------------
A class that subclasses :class:`IndexSurface` implements ``d``, ``metric``, ``spec``,
``ntotal``, ``is_trained``, ``bytes_per_vector``, ``memory_usage()``, ``add``, ``search``,
``remove``, ``ids()``, ``save(path)``, ``to_bytes()`` and two class methods that open
its files::

    @classmethod
    def _open_file(cls, path: str, mmap: bool, verify: bool) -> MyIndex: ...
    @classmethod
    def _open_bytes(cls, data: bytes, verify: bool) -> MyIndex: ...

writes ``kind = "mykind"`` into its files' manifest, and registers with one line after
the class body::

    register_kind("mykind", MyIndex)

A class whose file is an :class:`annx.Index` file (a wrapper around one float index,
as :class:`annx.BinaryIndex` is) sets ``inner._impl.file_kind = "mykind"`` on that
index; its ``save``/``to_bytes`` then write the kind.
"""

from __future__ import annotations

import numbers
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from . import _core
from ._errors import AnnxError, FormatError, InvalidArgumentError, UnsupportedError
from ._validate import as_ids

#: faiss's ``METRIC_INNER_PRODUCT``: accepted wherever annx takes a metric (means ``"ip"``).
METRIC_INNER_PRODUCT = 0
#: faiss's ``METRIC_L2``: accepted wherever annx takes a metric (means ``"l2"``).
METRIC_L2 = 1
_METRIC_CONSTANTS = {METRIC_INNER_PRODUCT: "ip", METRIC_L2: "l2"}


def as_metric(metric: Any, allowed: tuple[str, ...] | None = ("l2", "ip", "cos")) -> str:
    """Return a metric name from a name or one of faiss's constants.

    ``annx.METRIC_L2`` (1) means ``"l2"``, ``annx.METRIC_INNER_PRODUCT`` (0) ``"ip"``.
    A name outside ``allowed`` raises :class:`annx.InvalidArgumentError`;
    ``allowed=None`` passes any string on (the core parses names and their aliases).
    """
    shown = allowed or ("l2", "ip", "cos")
    if isinstance(metric, numbers.Integral) and not isinstance(metric, (bool, np.bool_)):
        name = _METRIC_CONSTANTS.get(int(metric))
        if name is None:
            raise InvalidArgumentError(
                f"metric {int(metric)} is not one annx knows: use a name "
                f"({', '.join(repr(a) for a in shown)}) or annx.METRIC_L2 (1) / "
                "annx.METRIC_INNER_PRODUCT (0)"
            )
        metric = name
    if not isinstance(metric, str):
        raise InvalidArgumentError(
            f"metric must be a string ({', '.join(repr(a) for a in shown)}) or "
            f"annx.METRIC_L2 / annx.METRIC_INNER_PRODUCT, got {type(metric).__name__}"
        )
    if allowed is not None and metric not in allowed:
        raise InvalidArgumentError(
            f"unknown metric {metric!r}; expected one of {', '.join(repr(a) for a in allowed)}"
        )
    return metric


def deprecated(old: str, new: str) -> None:
    """Warn that ``old`` is a deprecated alias of ``new``."""
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)


# ------------------------------------------------------------------ faiss idioms
class FaissIdiomError(UnsupportedError, AttributeError):
    """A faiss attribute annx does not have; the message names the annx way.

    Subclasses :class:`annx.UnsupportedError` and :class:`AttributeError` (so
    ``hasattr`` answers ``False``).
    """


_FAISS_ATTRIBUTES = {
    "nprobe": "annx takes nprobe per call: index.search(q, k, nprobe=16)",
    "efSearch": "annx takes ef_search per call: index.search(q, k, ef_search=64)",
    "efConstruction": (
        "annx sets it at creation or between adds: "
        "annx.index_factory(d, 'HNSW32', ef_construction=200) or index.ef_construction = 200"
    ),
    "hnsw": (
        "annx has no index.hnsw object: search parameters are keywords, "
        "index.search(q, k, ef_search=64); ef_construction is "
        "annx.index_factory(d, 'HNSW32', ef_construction=200)"
    ),
    "quantizer": "annx has no separate quantizer object: an IVF index's centroids are "
    "index.centroids",
    "invlists": "annx has no invlists object: index.list_sizes() gives the list sizes",
    "metric_type": "annx names the metric: index.metric is 'l2', 'ip', 'cos' or 'hamming'",
    "verbose": "annx reports progress per call: index.add(x, progress=True)",
    "parallel_mode": "annx takes threads per call (threads=) or annx.set_num_threads(n)",
}


def _faiss_error(cls: type, name: str) -> FaissIdiomError:
    return FaissIdiomError(f"annx.{cls.__name__} has no attribute {name!r} (a faiss name): "
                           f"{_FAISS_ATTRIBUTES[name]}")  # fmt: skip


# ---------------------------------------------------------------------- registry
class _Opener(Protocol):
    @classmethod
    def _open_file(cls, path: str, mmap: bool, verify: bool) -> Any: ...  # noqa: D102

    @classmethod
    def _open_bytes(cls, data: Any, verify: bool) -> Any: ...  # noqa: D102


_KINDS: dict[str, Any] = {}


def register_kind(kind: str, cls: Any) -> Any:
    """Make :func:`annx.load` / :func:`annx.from_bytes` open files of ``kind`` with ``cls``.

    ``cls`` provides the class methods ``_open_file(path, mmap, verify)`` and
    ``_open_bytes(data, verify)``. Returns ``cls`` (usable as a decorator's body).
    Registering a kind twice with different classes raises :class:`annx.AnnxError`.
    """
    if not isinstance(kind, str) or not kind:
        raise InvalidArgumentError(f"kind must be a non-empty string, got {kind!r}")
    for method in ("_open_file", "_open_bytes"):
        if not callable(getattr(cls, method, None)):
            raise InvalidArgumentError(f"{cls!r} has no class method {method}")
    old = _KINDS.get(kind)
    if old is not None and old is not cls:
        raise AnnxError(f"file kind {kind!r} is already registered to {old.__name__}")
    _KINDS[kind] = cls
    return cls


def registered_kinds() -> dict[str, Any]:
    """The registered file kinds and their classes (a copy)."""
    return dict(_KINDS)


def _opener(kind: str, where: str) -> Any:
    cls = _KINDS.get(kind)
    if cls is None:
        raise FormatError(
            f"{where}: an annx file of kind {kind!r}, which this version of annx cannot open "
            f"(it knows {', '.join(sorted(_KINDS))}); a newer annx may"
        )
    return cls


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def load(path: str | os.PathLike[str], mmap: bool = False, verify: bool = True) -> Any:
    """Open any annx index file; returns an instance of the class that saved it.

    Args:
        path: the file (:meth:`save` of :class:`annx.Index`, :class:`annx.BinaryIndex`,
            :class:`annx.MultiVectorIndex`, ...).
        mmap: use the vectors and ids in place from a read-only memory map (no copy;
            adding or removing later copies them first). Classes that cannot map
            (:class:`annx.MultiVectorIndex`) read the file instead.
        verify: check every section's checksum (reads the whole file once).

    Raises:
        annx.FormatError: a malformed, truncated, foreign or future-version file.
        OSError: the file cannot be read.

    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    where = os.fspath(path)
    mmap, verify = _check_flag(mmap, "mmap"), _check_flag(verify, "verify")
    try:
        kind = dict(_core.read_manifest(where)).get("kind", "index")
    except FormatError:
        kind = "index"  # the index loader reports what is wrong with the file
    return _opener(kind, where)._open_file(where, mmap, verify)


def from_bytes(data: bytes | bytearray | memoryview, verify: bool = True) -> Any:
    """Rebuild an index from ``to_bytes()`` output (any class; also used by pickle).

    The bytes are copied, so ``data`` may be changed afterwards.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError(
            f"from_bytes expects bytes, bytearray or memoryview, got {type(data).__name__}"
        )
    verify = _check_flag(verify, "verify")
    try:
        kind = dict(_core.read_manifest_bytes(data)).get("kind", "index")
    except FormatError:
        kind = "index"
    return _opener(kind, "bytes")._open_bytes(data, verify)


# Pickles of every index class name the public ``annx.from_bytes``, not this module.
from_bytes.__module__ = "annx"


# ------------------------------------------------------------------------- mixin
class IndexSurface:
    """Behaviour shared by every annx index class (see the module docstring).

    Subclasses provide the abstract members; this class derives ``len()``, pickling,
    ``repr``, ``reset``, the faiss aliases and the faiss-idiom errors from them.
    """

    __slots__ = ()

    # Members subclasses provide (documented on each class).
    d: int
    metric: str
    spec: str
    ntotal: int
    is_trained: bool
    add: Callable[..., np.ndarray]
    remove: Callable[..., int]
    ids: Callable[[], np.ndarray]
    to_bytes: Callable[[], bytes]

    def __len__(self) -> int:
        return self.ntotal

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (from_bytes, (self.to_bytes(),))

    def __repr__(self) -> str:
        return (
            f"annx.{type(self).__name__}(spec={self.spec!r}, d={self.d}, "
            f"metric={self.metric!r}, ntotal={self.ntotal})"
        )

    def reset(self) -> None:
        """Remove every vector, keeping the training (faiss's ``reset``).

        Ids are never reused: a later :meth:`add` without ids continues from the
        index's next id, as after any removal.
        """
        ids = self.ids()
        if ids.size:
            self.remove(ids)

    def range_search(self, q: Any, radius: float, **kwargs: Any) -> Any:
        """Not available for this class: raises :class:`annx.UnsupportedError`."""
        raise UnsupportedError(f"annx.{type(self).__name__} has no range_search")

    # ---- faiss names ------------------------------------------------------------
    def add_with_ids(self, x: Any, ids: Any, **kwargs: Any) -> np.ndarray:
        """Add with explicit ids (faiss's name for ``add(x, ids=ids)``); returns the ids."""
        return self.add(x, ids=ids, **kwargs)

    def remove_ids(self, ids: Any) -> int:
        """Remove those of ``ids`` that are present (faiss's ``remove_ids``).

        Unlike :meth:`remove` (which raises for an absent id and then removes
        nothing), absent ids are skipped, as in faiss. Returns how many were removed.
        Takes an int64 array of ids (faiss's ``IDSelector`` objects are not accepted).
        """
        if not isinstance(ids, (np.ndarray, list, tuple, numbers.Integral)):
            raise InvalidArgumentError(
                f"remove_ids takes an int64 array of ids, got {type(ids).__name__} "
                "(faiss IDSelectors are not supported; use index.remove(ids))"
            )
        arr = np.unique(as_ids(ids))
        present = arr[np.isin(arr, self.ids())] if arr.size else arr
        return int(self.remove(present)) if present.size else 0

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails: explain faiss names.
        if name in _FAISS_ATTRIBUTES:
            raise _faiss_error(type(self), name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FAISS_ATTRIBUTES:
            raise _faiss_error(type(self), name)
        object.__setattr__(self, name, value)


def add_lock() -> threading.RLock:
    """The per-index lock that makes ``add`` return the ids it assigned."""
    return threading.RLock()


_INFO_TEXT_KEYS = frozenset({"annx_version", "format_version", "spec", "inner_spec", "metric",
                             "kind", "isa_at_save", "tokens", "structure", "codec"})  # fmt: skip


def _typed(key: str, value: Any) -> Any:
    if not isinstance(value, str) or key in _INFO_TEXT_KEYS:
        return value
    if value in ("true", "false"):
        return value == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def read_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Header facts of an annx file, with typed values; reads only the manifest.

    Keys include ``kind`` (``"index"``, ``"binary"``, ``"multivector"``, ...: the class
    :func:`annx.load` returns), ``spec``, ``metric``, ``d``, ``ntotal`` (ints),
    ``format_version`` (``"major.minor"``), ``annx_version`` and ``file_bytes``.
    Integers are ``int``, flags ``bool``, other values ``str``.

    Raises:
        annx.FormatError: not an annx file, or a corrupt header.
        OSError: the file cannot be read.

    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    raw = dict(_core.read_manifest(os.fspath(path)))
    out: dict[str, Any] = {"kind": raw.pop("kind", "index")}
    out.update((k, _typed(k, v)) for k, v in raw.items())
    if out["kind"] == "binary":  # the file holds the float view of a BinaryIndex
        out["metric"] = "hamming"
        if out.get("spec") == "Flat,BIN":
            out["spec"] = "BIN"
    return out
