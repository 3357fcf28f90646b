"""Packed binary codes: validation and sign-vector conversion (shared by Index and BinaryIndex)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._errors import InvalidArgumentError

#: Rows converted to floats at a time (bounds the temporary: rows x nbits x 4 bytes).
CHUNK_ROWS = 16384
#: Distance reported for missing results (k larger than the index, filters).
MISSING_DISTANCE = np.iinfo(np.int32).max


def structure_spec(spec: str) -> str:
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
