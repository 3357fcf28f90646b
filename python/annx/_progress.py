"""Progress reporting for long calls: ``progress=True`` (a bar) or a callback.

A callback is called as ``callback(done, total)`` after each piece of work; returning
``False`` cancels the call (which then undoes what it did and raises
:class:`annx.CancelledError`). ``progress=True`` draws a tqdm bar when tqdm is installed
(``pip install "annx[progress]"``), else prints a line to stderr about once a second.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional, Union

from ._errors import InvalidArgumentError

ProgressCallback = Callable[[int, int], Optional[bool]]
Progress = Union[None, bool, ProgressCallback]


class _Reporter:
    """Wraps the user's choice into ``update(done) -> keep going?`` and ``close()``."""

    def __init__(self, progress: Progress, total: int, desc: str) -> None:
        self.total, self.desc = total, desc
        self.callback: ProgressCallback | None = None
        self.bar: Any = None
        self.last_print = 0.0
        self.done = 0
        if progress is True:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self.bar = None
                self.text = True
            else:
                self.bar = tqdm(total=total, desc=desc, unit="vec", unit_scale=True)
                self.text = False
        elif callable(progress):
            self.callback = progress
            self.text = False
        else:
            raise InvalidArgumentError(
                f"progress must be True, False, None or a callable(done, total), got {progress!r}"
            )

    def update(self, done: int) -> bool:
        if self.bar is not None:
            self.bar.update(done - self.done)
        elif self.callback is not None:
            self.done = done
            return self.callback(done, self.total) is not False
        elif self.text:
            now = time.monotonic()
            if now - self.last_print >= 1.0 or done == self.total:
                print(f"{self.desc}: {done:,}/{self.total:,}", file=sys.stderr, flush=True)
                self.last_print = now
        self.done = done
        return True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def chunk_size(n: int) -> int:
    """Rows per progress step: about 1 % of the work, at least 1,024 rows."""
    return max(1024, -(-n // 100))
