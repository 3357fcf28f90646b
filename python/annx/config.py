"""Threads, ISA selection and build information."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from . import _core
from ._errors import InvalidArgumentError


def get_num_threads() -> int:
    """Threads annx uses by default (the calling thread included)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the default number of threads (>= 1) for every annx call.

    The initial value is ``ANNX_NUM_THREADS`` if set, else the CPUs this process may
    run on. A per-call ``threads=`` argument overrides it.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidArgumentError(f"number of threads must be a positive integer, got {n!r}")
    _core.set_num_threads(n)


def available_isas() -> list[str]:
    """Kernel sets usable here (compiled and supported by this CPU), lowest first."""
    return list(_core.available_isas())


def get_isa() -> str:
    """The kernel set in use: ``"scalar"``, ``"avx2"``, ``"avx512"`` or ``"avx512_icl"``."""
    return _core.active_isa()


def set_isa(name: str) -> None:
    """Force a kernel set (also settable with the ``ANNX_ISA`` environment variable).

    Raises :class:`annx.InvalidArgumentError` for an unknown name or a set this CPU or
    build lacks.
    """
    _core.set_isa(str(name))


def config() -> dict[str, Any]:
    """Build and runtime facts as a dict (what :func:`show_config` prints)."""
    return {
        "version": _core.__version__,
        "file_format": "%d.%d" % tuple(_core.FORMAT_VERSION),
        "compiler": _core.compiler(),
        "cpu": _core.cpu_brand(),
        "compiled_isas": list(_core.compiled_isas()),
        "detected_isa": _core.detected_isa(),
        "active_isa": _core.active_isa(),
        "threads": _core.get_num_threads(),
        "crc32c": _core.crc32c_backend(),
        "python": sys.version.split()[0],
    }


def show_config(file: TextIO | None = None) -> None:
    """Print version, compiler, detected and active ISA and thread count."""
    out = file or sys.stdout
    for key, value in config().items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:>14}: {value}", file=out)
