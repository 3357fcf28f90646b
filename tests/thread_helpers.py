"""Helpers for tests that use threads and signals: joined-with-timeout thread runs (a
deadlock fails instead of hanging the session) and Ctrl-C latency."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

JOIN_TIMEOUT = 30.0


def run_threads(targets: list[Callable[[], None]], timeout: float = JOIN_TIMEOUT) -> None:
    """Run callables in threads; re-raise the first error; fail on a hang."""
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def inner() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported to the main thread
                errors.append(e)

        return inner

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in threads if t.is_alive()]
    assert not alive, f"{len(alive)} thread(s) still running after {timeout} s (deadlock?)"
    if errors:
        raise errors[0]


needs_signals = pytest.mark.skipif(
    sys.platform == "win32" or threading.current_thread() is not threading.main_thread(),
    reason="POSIX signals delivered to the main thread",
)


def interrupt_latency(fn: Callable[[], Any], after: float = 0.3) -> float:
    """Run fn() in the main thread, send it a real SIGINT after `after` seconds.

    Asserts that KeyboardInterrupt is raised and returns the seconds from the signal
    to the exception: the smaller of the wall time and the process's CPU time. On a
    loaded machine (other jobs on the cores) the wall time mostly measures waiting for a
    core; the CPU time still counts the work done after the signal, which is what a
    late cancellation check makes long.
    """
    fired: list[tuple[float, float]] = []
    in_call = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        # A late signal (after the call returned) must not abort the test session.
        if in_call.is_set():
            raise KeyboardInterrupt

    def send() -> None:
        fired.append((time.monotonic(), time.process_time()))
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, handler)
    timer = threading.Timer(after, send)
    try:
        in_call.set()
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            fn()
        t1, c1 = time.monotonic(), time.process_time()
    finally:
        in_call.clear()
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert fired, f"the call ended ({t1 - t0:.2f} s) before the signal was sent"
    return min(t1 - fired[0][0], c1 - fired[0][1])
