"""annx's exception classes (defined by the compiled core, re-exported here)."""

from ._core import (
    AnnxError,
    CancelledError,
    FormatError,
    InvalidArgumentError,
    NotTrainedError,
    UnsupportedError,
)

__all__ = [
    "AnnxError",
    "CancelledError",
    "FormatError",
    "InvalidArgumentError",
    "NotTrainedError",
    "UnsupportedError",
]
