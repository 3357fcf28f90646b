"""What a results page says about where it ran: the code's commit and the CPU."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

_BENCH = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """Short commit of the checkout (``ANNX_BENCH_COMMIT`` for a run from a copy)."""
    if os.environ.get("ANNX_BENCH_COMMIT"):
        return os.environ["ANNX_BENCH_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=_BENCH)  # fmt: skip
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
