"""annx's exception classes (defined by the compiled core, re-exported here)."""

from ._core import (
    AnnxError,
    FormatError,
    InvalidArgumentError,
    NotTrainedError,
    UnsupportedError,
)

__all__ = [
    "AnnxError",
    "FormatError",
    "InvalidArgumentError",
    "NotTrainedError",
    "UnsupportedError",
]
