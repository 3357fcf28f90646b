"""Plots and tables from bench/run.py's JSON lines.

Usage:
    python bench/plot.py RESULTS.jsonl [--out-dir DIR]

Per dataset: ``<dataset>.png`` (recall@k vs queries/second, log scale, the Pareto
frontier of each configuration as a line and every measured point as a faint dot, as
ann-benchmarks draws them) and ``<dataset>.md`` (machine, command, and per configuration
build seconds, bytes per vector, peak RSS, and queries/second at recall 0.90, 0.95 and
0.99, then the best annx configuration against the best peer at each level).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hnsw import fmt_qps, plot, qps_at  # noqa: E402

TARGETS = (0.90, 0.95, 0.99)


@dataclass
class Run:
    """One configuration on one dataset (the shape bench_hnsw.plot draws)."""

    name: str
    library: str
    version: str
    build_s: float
    bytes_per_vector: float | None
    peak_rss_mb: float
    data_rss_mb: float
    points: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_annx(self) -> bool:
        return self.library == "annx"


def load(path: Path) -> tuple[dict[str, list[Run]], dict[str, list[str]], dict[str, Any]]:
    runs: dict[str, dict[str, Run]] = defaultdict(dict)
    skipped: dict[str, list[str]] = defaultdict(list)
    machine: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        ds = rec["dataset"]
        if "skipped" in rec:
            skipped[ds].append(f"{rec['algorithm']}: {rec['skipped']}")
            continue
        machine = {k: rec[k] for k in ("cpu", "machine", "isa", "annx_commit", "threads",
                                       "build_threads", "k", "nq")}  # fmt: skip
        r = runs[ds].get(rec["algorithm"])
        if r is None:
            r = runs[ds][rec["algorithm"]] = Run(
                rec["algorithm"], rec["library"], rec["version"], rec["build_s"],
                rec["bytes_per_vector"], rec["peak_rss_mb"], rec["data_rss_mb"],
            )  # fmt: skip
        r.points.append({"recall": rec["recall"], "qps": rec["qps"], **rec["search_params"]})
    return {ds: list(v.values()) for ds, v in runs.items()}, skipped, machine


def table(ds: str, runs: list[Run], skipped: list[str], machine: dict[str, Any],
          command: str) -> str:  # fmt: skip
    k = machine.get("k", 10)
    out = [
        f"# {ds}",
        "",
        f"Command: `{command}` at annx commit {machine.get('annx_commit', '?')}.",
        "",
        f"Machine: {machine.get('cpu', '?')} ({machine.get('machine', '?')}), annx ISA "
        f"{machine.get('isa', '?')}; build {machine.get('build_threads', '?')} threads, search "
        f"{machine.get('threads', '?')} thread(s), batches of {machine.get('nq', '?')} queries, "
        f"k = {k}. Each configuration ran in its own process; peak RSS is that process's, "
        "data RSS its size after loading the dataset.",
        "",
        "| configuration | library | build s | bytes/vector | peak RSS MB (data) | max recall | "
        + " | ".join(f"q/s @{t:.2f}" for t in TARGETS)
        + " |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * len(TARGETS),
    ]
    for r in sorted(runs, key=lambda r: (not r.is_annx, r.name)):
        bpv = "?" if r.bytes_per_vector is None else f"{r.bytes_per_vector:,.0f}"
        out.append(
            f"| {r.name} | {r.library} {r.version} | {r.build_s:.1f} | {bpv} | "
            f"{r.peak_rss_mb:,.0f} ({r.data_rss_mb:,.0f}) | "
            f"{max(p['recall'] for p in r.points):.4f} | "
            + " | ".join(fmt_qps(qps_at(r.points, t)) for t in TARGETS)
            + " |"
        )
    out += ["", "| recall | best annx | q/s | best peer | q/s | annx / peer |",
            "|---:|---|---:|---|---:|---:|"]  # fmt: skip
    for t in TARGETS:
        best = {}
        for side in (True, False):
            cands = [(qps_at(r.points, t), r.name) for r in runs if r.is_annx == side]
            cands = [c for c in cands if c[0] is not None]
            best[side] = max(cands) if cands else None
        a, p = best[True], best[False]
        ratio = f"{a[0] / p[0]:.2f}x" if a and p else "-"
        out.append(
            f"| {t:.2f} | {a[1] if a else '-'} | {fmt_qps(a[0] if a else None)} | "
            f"{p[1] if p else '-'} | {fmt_qps(p[0] if p else None)} | {ratio} |"
        )
    if skipped:
        out += ["", "Skipped: " + "; ".join(skipped) + "."]
    return "\n".join(out) + "\n"


def report(jsonl: Path, out_dir: Path, command: str = "python bench/run.py") -> None:
    runs, skipped, machine = load(Path(jsonl))
    out_dir.mkdir(parents=True, exist_ok=True)
    for ds, rs in runs.items():
        (out_dir / f"{ds}.md").write_text(table(ds, rs, skipped.get(ds, []), machine, command))
        title = f"{ds}: recall@{machine.get('k', 10)} vs q/s ({machine.get('threads', 1)} thread)"
        plot(rs, str(out_dir / f"{ds}.png"), title, machine.get("k", 10), frontier=True, xmin=0.5)
        print(f"# table written to {out_dir / (ds + '.md')}")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("jsonl")
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()
    out = Path(args.out_dir) if args.out_dir else Path(args.jsonl).parent
    report(Path(args.jsonl), out, command=f"python bench/plot.py {args.jsonl}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
