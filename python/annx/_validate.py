"""Argument checks shared by the Python API: one place for every message."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._errors import InvalidArgumentError

FLOAT_DTYPES_DOC = "float32 (float16 and float64 are converted to float32)"


def as_matrix(x: Any, d: int, name: str = "x") -> np.ndarray:
    """Return `x` as a C-contiguous float32 array of shape (n, d).

    float32 C-contiguous input is used as is (zero copy); float16/float64 input is
    converted and non-contiguous input is copied. Anything else raises
    InvalidArgumentError naming what was received and what was expected.
    """
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.dtype != np.float32:
        if arr.dtype not in (np.float16, np.float64):
            raise InvalidArgumentError(f"{name} has dtype {arr.dtype}; expected {FLOAT_DTYPES_DOC}")
        if arr.dtype == np.float64:
            too_big = np.isfinite(arr) & (np.abs(arr) > np.finfo(np.float32).max)
            if too_big.any():
                pos = tuple(int(i) for i in np.argwhere(too_big)[0])
                where = f"row {pos[0]}, column {pos[1]}" if len(pos) == 2 else f"position {pos}"
                raise InvalidArgumentError(
                    f"{name} has a value ({float(arr[pos])!r}) beyond the float32 range at "
                    f"{where}; annx stores float32"
                )
        arr = arr.astype(np.float32)
    if arr.ndim != 2:
        hint = f"; for one vector use {name}.reshape(1, -1)" if arr.ndim == 1 else ""
        raise InvalidArgumentError(
            f"{name} must be a 2-D array of shape (n, {d}), got a {arr.ndim}-D array of shape "
            f"{arr.shape}{hint}"
        )
    if arr.shape[1] != d:
        raise InvalidArgumentError(
            f"{name} has dimension {arr.shape[1]} (shape {arr.shape}); the index expects "
            f"dimension {d}"
        )
    return _contiguous_aligned(arr)


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise InvalidArgumentError naming the first NaN/inf of a 2-D array.

    For checks that must happen in Python, before data goes to numpy code or another
    process (the C++ core checks its own input).
    """
    if not np.isfinite(arr).all():
        r, c = (int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise InvalidArgumentError(
            f"{name} contains a non-finite value ({arr[r, c]}) at row {r}, column {c}"
        )


def _contiguous_aligned(arr: np.ndarray) -> np.ndarray:
    """Return ``arr`` C-contiguous and aligned, copying only when needed.

    Arrays deserialised from a byte stream (Dask, pickle protocol 5 buffers) may start
    at a misaligned address.
    """
    if arr.flags.c_contiguous and arr.flags.aligned:
        return arr
    return np.array(arr, order="C", copy=True)


def as_ids(ids: Any, n: int | None = None, name: str = "ids") -> np.ndarray:
    """Return ids as a C-contiguous int64 1-D array (optionally of length n)."""
    if isinstance(ids, numbers.Integral) and not isinstance(ids, bool):
        ids = [ids]
    arr = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    if arr.size == 0 and arr.dtype == np.float64:  # np.asarray([]) is float64
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        raise InvalidArgumentError(f"{name} must be integers (int64), got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise InvalidArgumentError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InvalidArgumentError(
            f"{name} has length {arr.shape[0]}; expected {n} (one id per vector)"
        )
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise InvalidArgumentError(f"{name} has values above the int64 range")
    return _contiguous_aligned(arr.astype(np.int64, copy=False))


def as_k(k: Any) -> int:
    """Validate k (a positive integer)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    if k <= 0:
        raise InvalidArgumentError(f"k must be >= 1, got {k}")
    return int(k)


def as_threads(threads: Any) -> int:
    """Validate a per-call thread count (None means the annx default)."""
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise InvalidArgumentError(f"threads must be a positive integer or None, got {threads!r}")
    return int(threads)


def as_filter(filt: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Split a filter into (allowed ids, boolean mask over ids); one of them is None."""
    if filt is None:
        return None, None
    arr = filt if isinstance(filt, np.ndarray) else np.asarray(filt)
    if arr.dtype == np.bool_:
        if arr.ndim != 1:
            raise InvalidArgumentError(f"a filter mask must be 1-D, got shape {arr.shape}")
        return None, np.ascontiguousarray(arr).view(np.uint8)
    if arr.size == 0 or np.issubdtype(arr.dtype, np.integer):
        return as_ids(arr, name="filter"), None
    raise InvalidArgumentError(
        f"filter must be an array of allowed ids (int64) or a boolean mask over ids, "
        f"got dtype {arr.dtype}"
    )
