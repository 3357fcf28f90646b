"""Point-by-point interleaved timing.

For sweep position i, every configuration still running first searches once untimed
(warm-up; its ids give the recall), then ``repeats`` rounds time one batch search of
each configuration back to back, alternating the order (A B C, then C B A, ...), so a
neighbour's burst on a shared machine hits every library at that point alike. A
configuration stops after the point where its recall reaches ``stop_recall`` or its
speed falls below ``min_qps``. Every point keeps all its per-repeat times: a ratio
between two configurations is reported as the ratio of the medians and the min-max of
the per-repeat ratios (``report.ratio``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .datasets import recall_at_k


@dataclass
class Point:
    """One sweep point of one configuration."""

    params: dict[str, Any]
    recall: float
    times: list[float] = field(default_factory=list)  # seconds per batch, one per repeat
    nq: int = 1

    @property
    def qps(self) -> float:
        return self.nq / statistics.median(self.times)


def order(names: list[str], r: int) -> list[str]:
    """Repeat ``r``'s order: as given on even repeats, reversed on odd ones."""
    return names if r % 2 == 0 else names[::-1]


def interleaved(
    searchers: dict[str, Callable[..., Any]],
    sweeps: dict[str, list[dict[str, Any]]],
    gt: Any,
    k: int,
    repeats: int = 5,
    stop_recall: float = 0.999,
    min_qps: float = 0.0,
    log: Callable[[str], None] = print,
    clock: Callable[[], float] = time.perf_counter,
    errors: dict[str, str] | None = None,
) -> dict[str, list[Point]]:
    """Run every ``searchers[name](**params)`` over ``sweeps[name]``, interleaved point by
    point. Returns each configuration's points in sweep order. A configuration whose
    untimed search raises is dropped, its error in ``errors``."""
    nq = len(gt)
    out: dict[str, list[Point]] = {name: [] for name in searchers}
    live = list(searchers)
    for i in range(max((len(s) for s in sweeps.values()), default=0)):
        cur = [n for n in live if i < len(sweeps[n])]
        if not cur:
            break
        for n in list(cur):
            try:
                ids = searchers[n](**sweeps[n][i])
            except Exception as exc:  # noqa: BLE001 - the others go on
                log(f"    {n} {sweeps[n][i]}: FAILED: {type(exc).__name__}: {exc}")
                if errors is not None:
                    errors[n] = f"{type(exc).__name__}: {exc}"
                cur.remove(n)
                live.remove(n)
                continue
            out[n].append(Point(sweeps[n][i], recall_at_k(ids, gt, k), nq=nq))
        for r in range(repeats):
            for n in order(cur, r):
                t0 = clock()
                searchers[n](**sweeps[n][i])
                out[n][-1].times.append(clock() - t0)
        for n in cur:
            p = out[n][-1]
            log(f"    {n} {p.params}: recall={p.recall:.4f} q/s={p.qps:,.0f}")
            if p.recall >= stop_recall or p.qps < min_qps:
                live.remove(n)
    return out
