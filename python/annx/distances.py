"""Exact distances with annx's SIMD kernels (the same ones every index uses).

These helpers compute full distance matrices; use an index for top-k search.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._errors import InvalidArgumentError
from ._validate import _contiguous_aligned

_STORAGE = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def _storage_of(y: np.ndarray, storage: str | None) -> tuple[str, np.ndarray]:
    if storage == "bfloat16":
        if y.dtype != np.uint16:
            raise InvalidArgumentError("storage='bfloat16' expects the raw bits as uint16")
        return "bf16", y
    if storage is not None:
        raise InvalidArgumentError(f"storage must be None or 'bfloat16', got {storage!r}")
    if y.dtype == np.float32:
        return "f32", y
    if y.dtype == np.float16:
        return "f16", y.view(np.uint16)
    if y.dtype.name == "bfloat16":  # ml_dtypes.bfloat16
        return "bf16", y.view(np.uint16)
    if y.dtype == np.float64:
        return "f32", y.astype(np.float32)
    raise InvalidArgumentError(
        f"y has dtype {y.dtype}; expected float32, float16, bfloat16 (ml_dtypes or uint16 "
        "bits with storage='bfloat16'), float64 (converted) or use pairwise_int8 / hamming"
    )


def pairwise(
    x: Any, y: Any, metric: str = "l2", *, storage: str | None = None, threads: int | None = None
) -> np.ndarray:
    """Distance matrix between query rows ``x`` (float) and stored rows ``y``.

    ``y`` may be float32, float16 or bfloat16 (the stored-vector types of annx's
    codecs); ``x`` is converted to float32. ``metric``: ``"l2"`` (squared), ``"ip"``
    (inner product) or ``"cos"`` (cosine similarity). Returns float32 [len(x), len(y)].
    """
    x = _contiguous_aligned(np.asarray(x).astype(np.float32, copy=False))
    y = _contiguous_aligned(np.asarray(y))
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise InvalidArgumentError(
            f"x and y must be 2-D with the same number of columns, got {x.shape} and {y.shape}"
        )
    kind, ybits = _storage_of(y, storage)
    nthreads = 0 if threads is None else int(threads)
    if metric == "l2":
        return _core.kernel_pairwise(f"l2_{kind}", x, ybits, None, nthreads)
    if metric not in ("ip", "cos"):
        raise InvalidArgumentError(f"unknown metric {metric!r}: expected 'l2', 'ip' or 'cos'")
    out = _core.kernel_pairwise(f"ip_{kind}", x, ybits, None, nthreads)
    if metric == "cos":
        yn = _row_norms(ybits, kind)
        xn = np.linalg.norm(x, axis=1)
        if (xn == 0).any() or (yn == 0).any():
            raise InvalidArgumentError("cosine similarity of a zero vector is undefined")
        out /= xn[:, None] * yn[None, :]
    return out


def _row_norms(ybits: np.ndarray, kind: str) -> np.ndarray:
    if kind == "f32":
        yf = ybits
    else:
        yf = _core.convert(f"{kind}_to_f32", ybits)
    return np.linalg.norm(yf.astype(np.float64), axis=1).astype(np.float32)


def pairwise_int8(x: Any, y: Any, metric: str = "l2") -> np.ndarray:
    """Exact int32 distances between int8 vectors (``"l2"`` squared or ``"ip"``)."""
    x = np.ascontiguousarray(np.asarray(x), dtype=np.int8)
    y = np.ascontiguousarray(np.asarray(y), dtype=np.int8)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise InvalidArgumentError("x and y must be 2-D int8 arrays with the same width")
    if metric not in ("l2", "ip"):
        raise InvalidArgumentError(f"unknown metric {metric!r}: expected 'l2' or 'ip'")
    out = np.empty((x.shape[0], y.shape[0]), np.int32)
    for i in range(x.shape[0]):
        for j in range(y.shape[0]):
            out[i, j] = _core.kernel_i8(metric, x[i], y[j])
    return out


def hamming(x: Any, y: Any) -> np.ndarray:
    """Hamming distances between packed bit codes (uint8 [n, nbytes]); uint32 [nx, ny]."""
    x = np.ascontiguousarray(np.asarray(x))
    y = np.ascontiguousarray(np.asarray(y))
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise InvalidArgumentError(
            f"hamming expects packed bits as uint8 (np.packbits), got {x.dtype} and {y.dtype}"
        )
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise InvalidArgumentError("x and y must be 2-D uint8 arrays with the same width")
    out = np.empty((x.shape[0], y.shape[0]), np.uint32)
    for i in range(x.shape[0]):
        out[i] = _core.kernel_hamming_many(x[i], y)
    return out
