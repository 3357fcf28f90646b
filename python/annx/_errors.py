"""annx's exception classes (defined by the compiled core, re-exported here)."""

from ._core import (
    AnnxError,
    FormatError,
    InvalidArgumentError,
    NotTrainedError,
    UnsupportedError,
)


class CancelledError(AnnxError):
    """A long call stopped because its ``progress`` callback returned False.

    Whatever the call had done is undone (an ``add`` removes the vectors it added).
    """


__all__ = [
    "AnnxError",
    "CancelledError",
    "FormatError",
    "InvalidArgumentError",
    "NotTrainedError",
    "UnsupportedError",
]
