"""Progress reporting for long calls: ``progress=True`` (a bar) or a callback.

A callback is called as ``callback(done, total)`` after each piece of work; returning
``False`` cancels the call (which then undoes what it did and raises
:class:`annx.CancelledError`). ``progress=True`` draws a tqdm bar when tqdm is installed
(``pip install "annx[progress]"``), else prints a line to stderr about once a second.
Units: vectors for ``add``, k-means iterations for ``train`` and ``KMeans.train``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Optional, Union

from ._errors import CancelledError, InvalidArgumentError

ProgressCallback = Callable[[int, int], Optional[bool]]
Progress = Union[None, bool, ProgressCallback]


class _Reporter:
    """Wraps the user's choice into ``update(done) -> keep going?`` and ``close()``.

    ``unit`` names the work items on the bar and the text line ("vec", "it").
    """

    def __init__(self, progress: Progress, total: int, desc: str, unit: str = "vec") -> None:
        self.total, self.desc, self.unit = total, desc, unit
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
                self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "vec")
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
                print(
                    f"{self.desc}: {done:,}/{self.total:,} {self.unit}",
                    file=sys.stderr,
                    flush=True,
                )
                self.last_print = now
        self.done = done
        return True

    def hook(self, offset: int = 0) -> Callable[[int, int], bool]:
        """A ``(done, total) -> keep going?`` function for the compiled core.

        The core counts from 0; ``offset`` units (work done in Python first) come before.
        """

        def report(done: int, total: int) -> bool:
            if offset + total != self.total:  # the core's count is authoritative
                self.total = offset + total
                if self.bar is not None:
                    self.bar.total = self.total
            return self.update(offset + done)

        return report

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def chunk_size(n: int) -> int:
    """Rows per progress step: about 1 % of the work, at least 1,024 rows."""
    return max(1024, -(-n // 100))


def add_in_steps(
    add_step: Callable[[int, int], None],
    undo: Callable[[int], None],
    n: int,
    progress: Progress,
    step: int,
    unit: str = "vec",
    noun: str = "vectors",
) -> None:
    """The one cancellable, reported add of every index class.

    Calls ``add_step(begin, end)`` over ``[0, n)`` in ``step``-sized pieces, reporting
    after each; when the callback cancels (or anything raises, Ctrl-C included),
    ``undo(done)`` removes the first ``done`` items again before the error propagates,
    so a failed or cancelled add adds nothing. ``progress`` None or False: no reports.
    """
    quiet = progress is None or progress is False
    reporter = None if quiet else _Reporter(progress, n, "add", unit)
    done = 0
    try:
        while done < n:
            end = min(n, done + step)
            add_step(done, end)
            done = end
            if reporter is not None and not reporter.update(done):
                raise CancelledError(
                    f"add cancelled by its progress callback after {done:,} of {n:,} "
                    f"{noun}; they were removed again"
                )
    except BaseException:
        if done:
            undo(done)
        raise
    finally:
        if reporter is not None:
            reporter.close()
