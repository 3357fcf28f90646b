"""Per sweep point, each configuration's q/s over a base configuration's, from one
``bench/run.py`` results.jsonl: the median and [min-max] of the per-repeat ratios (the
repeats of one point ran interleaved, so repeat r of both ran back to back), with each
configuration's recall at that point. Markdown on stdout.

Usage::

    python bench/annxbench/paired_ratios.py RESULTS.jsonl BASE_CONFIGURATION
"""

from __future__ import annotations

import json
import statistics
import sys


def main(path: str, base: str) -> None:
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    by = {(r["algorithm"], json.dumps(r["search_params"], sort_keys=True)): r for r in rows}
    others = sorted({r["algorithm"] for r in rows} - {base})
    head = " | ".join(f"{o}: recall, q/s ratio [min-max]" for o in others)
    print(f"| ef_search | {base} recall | {head} |")
    print("|---:|---:|" + "---|" * len(others))
    points = sorted((json.loads(sp).get("ef_search", 0), sp) for a, sp in by if a == base)
    for ef, sp in points:
        r = by[(base, sp)]
        cells = []
        for o in others:
            q = by.get((o, sp))
            if q is None:
                cells.append("-")
                continue
            rat = [b / a for a, b in zip(r["qps_runs"], q["qps_runs"], strict=False)]
            med = statistics.median(rat)
            cells.append(f"{q['recall']:.3f}, {med:.2f}x [{min(rat):.2f}-{max(rat):.2f}]")
        print(f"| {ef} | {r['recall']:.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
