"""Pareto fronts, q/s at recall targets, ratios with their spread, Markdown tables, plots
and the memory-budget view, all from the JSON lines a run writes (one per sweep point)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGETS = (0.90, 0.95, 0.99)
QPS_FLOOR = 100.0  # memory view: best recall among points at least this fast
MEMORY_RECALL = 0.95


@dataclass
class Run:
    """One configuration on one dataset: its rows (sweep points) from the JSON lines."""

    name: str
    rows: list[dict[str, Any]]

    def __getattr__(self, key: str) -> Any:
        if key in ("library", "family", "bytes_per_vector", "build_s", "group", "version"):
            return self.rows[0].get(key)
        raise AttributeError(key)

    @property
    def is_annx(self) -> bool:
        return self.library == "annx"

    @property
    def repeats(self) -> int:
        return min(len(r.get("qps_runs") or [r["qps"]]) for r in self.rows)

    def points(self, run: int | None = None) -> list[tuple[float, float]]:
        """(recall, q/s) per point: medians, or repeat ``run``'s own speeds."""
        return [(r["recall"], r["qps"] if run is None else r["qps_runs"][run]) for r in self.rows]


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (recall, q/s) points no other point beats on both, by increasing recall."""
    front, best = [], -math.inf
    for rec, qps in sorted(points, key=lambda p: (-p[0], -p[1])):
        if qps > best:
            front.append((rec, qps))
            best = qps
    return front[::-1]


def qps_at(points: list[tuple[float, float]], target: float) -> float | None:
    """q/s at recall ``target`` on the Pareto front, interpolated linearly in recall and
    logarithmically in q/s; the fastest point's q/s when every point is above the target;
    None when no point reaches it."""
    front = pareto(points)
    above = [p for p in front if p[0] >= target]
    if not above:
        return None
    below = [p for p in front if p[0] < target]
    (r1, q1), lo = above[0], below[-1] if below else None
    if lo is None or r1 == lo[0]:
        return q1
    t = (target - lo[0]) / (r1 - lo[0])
    return math.exp(math.log(lo[1]) + t * (math.log(q1) - math.log(lo[1])))


def ratio(a: Run, b: Run, target: float) -> tuple[float, float, float] | None:
    """q/s of ``a`` over ``b`` at ``target``: (median, min, max) of the per-repeat ratios
    (repeat r of each curve against repeat r of the other; they ran back to back when both
    come from the same family run, ``group``). Falls back to the ratio of the median
    curves when a repeat's curve does not reach the target."""
    qa, qb = qps_at(a.points(), target), qps_at(b.points(), target)
    if qa is None or qb is None:
        return None
    per = []
    for r in range(min(a.repeats, b.repeats)):
        ra, rb = qps_at(a.points(r), target), qps_at(b.points(r), target)
        if ra is not None and rb is not None:
            per.append(ra / rb)
    if not per:
        return qa / qb, qa / qb, qa / qb
    return statistics.median(per), min(per), max(per)


def best(runs: list[Run], target: float) -> tuple[Run, float] | None:
    scored = [(r, q) for r in runs if (q := qps_at(r.points(), target)) is not None]
    return max(scored, key=lambda c: c[1]) if scored else None


def by_dataset(rows: list[dict[str, Any]]) -> dict[str, list[Run]]:
    """Rows grouped into runs per dataset (skipped/failed rows left out)."""
    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if "recall" in r:
            groups[r["dataset"]][r["algorithm"]].append(r)
    return {ds: [Run(n, rs) for n, rs in runs.items()] for ds, runs in groups.items()}


def fmt(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def headline(runs: list[Run]) -> list[list[str]]:
    """Per recall target: best annx, best peer, their q/s, the ratio [min-max]."""
    annx, peers = [r for r in runs if r.is_annx], [r for r in runs if not r.is_annx]
    out = []
    for t in TARGETS:
        a, p = best(annx, t), best(peers, t)
        if a is None or p is None:
            out.append([f"{t:.2f}", a[0].name if a else "not reached", fmt(a and a[1]),
                        p[0].name if p else "not reached", fmt(p and p[1]), "-"])  # fmt: skip
            continue
        rt = ratio(a[0], p[0], t)
        paired = "" if a[0].group == p[0].group else " (unpaired)"
        cell = f"**{rt[0]:.2f}x** [{rt[1]:.2f}-{rt[2]:.2f}]{paired}" if rt else "-"
        out.append([f"{t:.2f}", a[0].name, fmt(a[1]), p[0].name, fmt(p[1]), cell])
    return out


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    num = ("q/s", "build", "bytes", "recall", "max")
    align = ["---:" if i and h.startswith(num) else "---" for i, h in enumerate(head)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def memory_rows(
    runs: list[Run], floor: float = QPS_FLOOR
) -> list[tuple[Run, float, float, float | None]]:
    """(run, best recall at q/s >= floor, the same at 10x floor, q/s at recall
    MEMORY_RECALL), by bytes/vector; recall nan where no point is fast enough."""
    out = []
    for r in sorted(runs, key=lambda r: r.bytes_per_vector or 0):
        rec = [
            max((x for x, q in r.points() if q >= f), default=math.nan) for f in (floor, 10 * floor)
        ]
        out.append((r, rec[0], rec[1], qps_at(r.points(), MEMORY_RECALL)))
    return out


def family_rows(runs: list[Run]) -> list[list[str]]:
    """Per family holding both: best annx / best peer at each target, paired repeats."""
    out = []
    for fam in dict.fromkeys(r.family for r in runs):
        mine = [r for r in runs if r.family == fam]
        if not any(r.is_annx for r in mine) or all(r.is_annx for r in mine):
            continue
        cells = []
        for t in TARGETS:
            a, p = (
                best([r for r in mine if r.is_annx], t),
                best([r for r in mine if not r.is_annx], t),
            )
            rt = ratio(a[0], p[0], t) if a and p else None
            cells.append(f"{rt[0]:.2f}x [{rt[1]:.2f}-{rt[2]:.2f}] {a[0].name} / {p[0].name}"
                         if rt else "-")  # fmt: skip
        if any(c != "-" for c in cells):
            out.append([fam, *cells])
    return out


def dataset_section(ds: str, runs: list[Run], k: int, floor: float) -> list[str]:
    """Markdown for one dataset: headline, every configuration, memory view, sweeps."""
    meta = runs[0].rows[0]
    out = [f"## {ds}", "", f"n={meta.get('n', '?')} d={meta.get('d', '?')} "
           f"metric={meta.get('metric', '?')} queries={meta['nq']} k={k}; "
           f"plots: [{ds}.png]({ds}.png), [{ds}-memory.png]({ds}-memory.png)", ""]  # fmt: skip
    out += table(["recall", "best annx", "q/s", "best peer", "q/s", "annx / peer [min-max]"],
                 headline(runs))  # fmt: skip
    rows = []
    for r in sorted(runs, key=lambda r: (r.family, not r.is_annx, r.name)):
        rows.append([r.name, r.family, f"{r.library} {r.version}", fmt(r.build_s, 1),
                     fmt(r.bytes_per_vector), f"{max(p[0] for p in r.points()):.4f}",
                     *(fmt(qps_at(r.points(), t)) for t in TARGETS)])  # fmt: skip
    out += ["", *table(["configuration", "family", "library", "build s", "bytes/vector",
                        "max recall", *(f"q/s @{t:.2f}" for t in TARGETS)], rows)]  # fmt: skip
    fam = family_rows(runs)
    if fam:
        out += ["", "Within each family (the configurations ran interleaved, so the repeats are "
                "paired): best annx / best peer [min-max over repeats].", "",
                *table(["family", *(f"@{t:.2f}" for t in TARGETS)], fam)]  # fmt: skip
    rc = lambda x: "-" if math.isnan(x) else f"{x:.4f}"  # noqa: E731
    mem = [[r.name, fmt(r.bytes_per_vector), rc(r1), rc(r2), fmt(q)]
           for r, r1, r2, q in memory_rows(runs, floor)]  # fmt: skip
    f1, f2 = f"{floor:,.0f}", f"{10 * floor:,.0f}"
    out += ["", f"Memory budget: best recall@{k} among points at least {f1} and {f2} q/s, "
            f"and q/s at recall {MEMORY_RECALL}, by bytes per vector:", "",
            *table(["configuration", "bytes/vector", f"recall @>={f1} q/s",
                    f"recall @>={f2} q/s", f"q/s @{MEMORY_RECALL}"], mem), ""]  # fmt: skip
    out += ["<details><summary>sweep points (recall / q/s, median)</summary>", ""]
    for r in runs:
        pts = ", ".join(
            f"{_params(row)}: {row['recall']:.4f} / {row['qps']:,.0f}" for row in r.rows
        )
        out.append(f"- {r.name}: {pts}")
    return out + ["", "</details>", ""]


def _params(row: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in row["search_params"].items()) or "-"


def plot(ds: str, runs: list[Run], out_dir: Path, k: int, floor: float) -> list[Path]:
    """Recall vs q/s (Pareto fronts) and the memory view (two panels), as PNGs."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for r in sorted(runs, key=lambda r: r.name):
        front = pareto(r.points())
        ax.plot([p[0] for p in front], [p[1] for p in front], "-" if r.is_annx else "--",
                marker="o" if r.is_annx else "s", ms=3, lw=1.6 if r.is_annx else 1.1,
                label=r.name)  # fmt: skip
    ax.set(yscale="log", xlabel=f"recall@{k}", ylabel="queries/s (log)", title=ds)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    paths = [out_dir / f"{ds}.png"]
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for r, rec, rec10, q in memory_rows(runs, floor):
        bpv, c = r.bytes_per_vector or math.nan, "C0" if r.is_annx else "C3"
        if not math.isnan(rec10):
            a1.scatter(bpv, rec10, color=c, s=14, marker="^")
        if not math.isnan(rec):
            a1.scatter(bpv, rec, color=c, s=14)
            a1.annotate(r.name, (bpv, rec), fontsize=5)
        if q is not None:
            a2.scatter(bpv, q, color=c, s=14)
            a2.annotate(r.name, (bpv, q), fontsize=5)
    a1.set(xscale="log", xlabel="bytes/vector (log)", ylabel=f"recall@{k}",
           title=f"{ds}: recall at >= {floor:,.0f} q/s (o), {10 * floor:,.0f} (^)")  # fmt: skip
    a2.set(xscale="log", yscale="log", xlabel="bytes/vector (log)", ylabel="q/s (log)",
           title=f"q/s at recall {MEMORY_RECALL} (annx blue, peers red)")  # fmt: skip
    for a in (a1, a2):
        a.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    paths.append(out_dir / f"{ds}-memory.png")
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths


def write(rows: list[dict[str, Any]], out_dir: Path, header: list[str], k: int = 10,
          floor: float = QPS_FLOOR, plots: bool = True) -> Path:  # fmt: skip
    """README.md (machine, command, headline per set and target, skipped configurations)
    and ``<dataset>.md`` / ``.png`` / ``-memory.png`` per dataset, into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = by_dataset(rows)
    lines = [*header, "", "## Best annx vs best peer", "",
             "q/s of the fastest configuration at each recall@10 target (Pareto front, "
             "interpolated, from the median times); the ratio is the median of the per-repeat "
             "ratios (repeat r against repeat r), [min-max] their range; (unpaired): the two "
             "configurations ran in different family runs, so their repeats were not back to "
             "back.", ""]  # fmt: skip
    hl, fam = [], []
    for ds, runs in sets.items():
        for row in headline(runs):
            hl.append([f"[{ds}]({ds}.md)", *row])
        fam += [[f"[{ds}]({ds}.md)", *row] for row in family_rows(runs)]
        section = dataset_section(ds, runs, k, floor)
        (out_dir / f"{ds}.md").write_text("\n".join([*header, "", *section]) + "\n")
        if plots:
            plot(ds, runs, out_dir, k, floor)
    lines += table(["set", "recall", "best annx", "q/s", "best peer", "q/s",
                    "annx / peer [min-max]"], hl)  # fmt: skip
    if fam:
        lines += ["", "## Within each family (paired)", "",
                  "The configurations of a family ran interleaved, point by point, so these "
                  "ratios compare repeats that ran back to back: best annx / best peer of the "
                  "family, [min-max over repeats], the two configurations.", "",
                  *table(["set", "family", *(f"@{t:.2f}" for t in TARGETS)], fam)]  # fmt: skip
    if plots:
        lines += ["", "## Plots", ""]
        for ds in sets:
            lines += [
                f"### {ds}",
                "",
                f"![{ds}]({ds}.png)",
                "",
                f"![{ds} memory]({ds}-memory.png)",
                "",
            ]
    skipped = sorted({(r["dataset"], r["algorithm"], r.get("skipped") or r.get("failed"))
                      for r in rows if "recall" not in r})  # fmt: skip
    if skipped:
        lines += ["", "Not run:", ""] + [f"- {d}: {a}: {why}" for d, a, why in skipped]
    path = out_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
