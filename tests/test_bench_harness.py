"""bench/annxbench on its own: the dataset reader (every layout and metric), the
interleaving order and early stop, Pareto fronts, interpolation, ratio spreads and the
report pages. No peer library is needed."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from bench_files import write_multi, write_single

pytest.importorskip("h5py")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from annxbench import datasets, families, report, timing  # noqa: E402


@pytest.mark.parametrize("metric", ["l2", "ip", "cos"])
def test_reader_single_vector(tmp_path: Path, metric: str) -> None:
    path = tmp_path / f"s-{metric}.hdf5"
    write_single(path, metric, learn=metric == "cos")
    ds = datasets.load(path, nq=7)
    assert ds.metric == metric and not ds.multivector
    assert ds.train.shape == (600, 16) and ds.test.shape == (7, 16) and ds.nq == 7
    assert ds.neighbors.dtype == np.int64 and ds.neighbors.shape == (7, 100)
    assert ds.queries is ds.test and ds.n == 600 and ds.d == 16
    if metric == "cos":  # normalised, learn split read and normalised too
        for a in (ds.train, ds.test, ds.learn):
            np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, rtol=1e-5)
    else:
        assert ds.learn is None and np.linalg.norm(ds.train, axis=1).std() > 0.1
    assert datasets.load(path).nq == 20


def test_reader_multi_vector(tmp_path: Path) -> None:
    path = tmp_path / "mv-chamfer.hdf5"
    write_multi(path)
    ds = datasets.load(path, nq=5)
    assert ds.metric == "chamfer" and ds.multivector and ds.n == 150 and ds.nq == 5
    qv, qo = ds.queries
    assert len(qo) == 6 and qo[-1] == len(qv) == len(ds.test)
    assert len(ds.sets("train")) == 150 and len(ds.sets("test")) == 5
    assert all(len(s) >= 2 for s in ds.sets("test"))


def test_reader_rejects_unknown_metric(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "hamming-ish"
        f["train"] = f["test"] = np.zeros((3, 2), np.float32)
        f["neighbors"] = np.zeros((3, 1), np.int32)
    with pytest.raises(ValueError, match="unknown metric"):
        datasets.load(path)


def test_recall_counts_only_real_ids() -> None:
    gt = np.array([[0, 1, 2], [3, 4, 5]])
    ids = np.array([[2, -1, 9], [3, 4, 5]])
    assert datasets.recall_at_k(ids, gt, 3) == pytest.approx(4 / 6)


def test_interleaving_order_and_early_stop() -> None:
    calls: list[tuple[str, int]] = []
    gt = np.tile(np.arange(10), (4, 1))

    def searcher(name: str, good_from: int):
        def run(ef: int) -> np.ndarray:
            calls.append((name, ef))
            return gt if ef >= good_from else np.full_like(gt, -1)

        return run

    ticks = iter(range(10_000))
    out = timing.interleaved(
        {"A": searcher("A", 2), "B": searcher("B", 99), "C": searcher("C", 99)},
        {"A": [{"ef": 1}, {"ef": 2}, {"ef": 3}], "B": [{"ef": 1}, {"ef": 2}], "C": [{"ef": 1}]},
        gt, k=10, repeats=3, log=lambda s: None, clock=lambda: float(next(ticks)),
    )  # fmt: skip
    # point 0: untimed A B C, then repeats A B C / C B A / A B C
    assert calls[:12] == [("A", 1), ("B", 1), ("C", 1), ("A", 1), ("B", 1), ("C", 1),
                          ("C", 1), ("B", 1), ("A", 1), ("A", 1), ("B", 1), ("C", 1)]  # fmt: skip
    # point 1: C's sweep is over; A reaches recall 1.0 here and stops
    assert calls[12:] == [("A", 2), ("B", 2), ("A", 2), ("B", 2), ("B", 2), ("A", 2),
                          ("A", 2), ("B", 2)]  # fmt: skip
    assert [len(out[n]) for n in "ABC"] == [2, 2, 1]
    assert out["A"][1].recall == 1.0 and out["B"][1].recall == 0.0
    assert all(len(p.times) == 3 and p.times == [1.0] * 3 for pts in out.values() for p in pts)
    assert out["A"][0].qps == 4.0  # nq / median seconds


def test_interleaving_drops_a_failing_configuration() -> None:
    gt = np.zeros((2, 10), np.int64)

    def bad(**p):
        raise RuntimeError("boom")

    errors: dict[str, str] = {}
    out = timing.interleaved({"ok": lambda **p: gt, "bad": bad}, {"ok": [{}], "bad": [{}]}, gt,
                             k=10, repeats=5, log=lambda s: None, errors=errors)  # fmt: skip
    assert out["bad"] == [] and len(out["ok"][0].times) == 5 and "boom" in errors["bad"]


def test_timing_stops_below_min_qps() -> None:
    gt = np.zeros((2, 10), np.int64)
    ticks = iter(range(1000))
    out = timing.interleaved({"s": lambda ef: gt}, {"s": [{"ef": 1}, {"ef": 2}]}, gt, k=10,
                             repeats=2, min_qps=5.0, log=lambda s: None,
                             clock=lambda: float(next(ticks)))  # fmt: skip
    assert len(out["s"]) == 1  # 2 queries per 1 s < 5 q/s


def test_pareto_and_interpolation() -> None:
    pts = [(0.5, 1000.0), (0.8, 100.0), (0.7, 50.0), (0.9, 10.0), (0.6, 2000.0)]
    assert report.pareto(pts) == [(0.6, 2000.0), (0.8, 100.0), (0.9, 10.0)]
    assert report.qps_at(pts, 0.95) is None
    assert report.qps_at(pts, 0.6) == 2000.0 and report.qps_at(pts, 0.1) == 2000.0
    assert report.qps_at(pts, 0.85) == pytest.approx(math.sqrt(100.0 * 10.0))  # log-linear
    assert report.qps_at(pts, 0.9) == pytest.approx(10.0)


def run_of(name: str, library: str, curve: list[tuple[float, list[float]]], group: str = "g"):
    rows = [{"dataset": "s", "algorithm": name, "library": library, "family": "graph",
             "group": group, "bytes_per_vector": 100.0, "build_s": 1.0, "version": "1",
             "recall": r, "qps": float(np.median(q)), "qps_runs": q, "search_params": {"ef": i},
             "nq": 10} for i, (r, q) in enumerate(curve)]  # fmt: skip
    return report.Run(name, rows)


def test_ratio_is_median_ratio_with_per_repeat_spread() -> None:
    a = run_of("annx-x", "annx", [(0.9, [100.0, 200.0, 300.0]), (0.99, [10.0, 20.0, 30.0])])
    b = run_of("peer-y", "peer", [(0.9, [100.0, 100.0, 100.0]), (0.99, [10.0, 10.0, 10.0])])
    r, lo, hi = report.ratio(a, b, 0.9)
    assert (r, lo, hi) == pytest.approx((2.0, 1.0, 3.0))
    assert report.ratio(a, b, 0.999) is None
    hl = report.headline([a, b])
    assert hl[0][1] == "annx-x" and hl[0][3] == "peer-y" and "**2.00x** [1.00-3.00]" in hl[0][5]
    c = run_of("peer-z", "peer", [(0.95, [50.0, 50.0, 50.0])], group="other")
    assert "(unpaired)" in report.headline([a, c])[1][5]


def test_report_pages(tmp_path: Path) -> None:
    a = run_of("annx-x", "annx", [(0.9, [100.0] * 5), (0.99, [10.0] * 5)])
    b = run_of("peer-y", "peer", [(0.95, [50.0] * 5)])
    rows = a.rows + b.rows + [{"dataset": "s", "algorithm": "svs-z", "skipped": "not installed"}]
    page = report.write(rows, tmp_path, ["# results", "- machine: test"], floor=10, plots=False)
    text = page.read_text()
    assert "# results" in text and "| [s](s.md) | 0.90 | annx-x |" in text
    assert "svs-z: not installed" in text
    per_set = (tmp_path / "s.md").read_text()
    assert "| annx-x | graph |" in per_set and "q/s @0.95" in per_set
    assert "Memory budget" in per_set and "| peer-y | 100 | 0.9500 | - | 50 |" in per_set
    assert "| graph | 2.00x [2.00-2.00] annx-x / peer-y |" in per_set  # paired, same group


def test_every_family_has_configurations_and_sweeps(tmp_path: Path) -> None:
    path = tmp_path / "s.hdf5"
    write_single(path, "cos", d=128, learn=True)
    ds = datasets.load(path)
    fams = families.families()
    for f in ("flat", "graph", "ivf", "leanvec", "binary", "codecs", "multivector"):
        assert f in fams
    for c in families.all_configs().values():
        if c.needs(ds) is None:
            for quick in (True, False):
                sweep = c.sweep(ds, quick)
                assert sweep and all(isinstance(p, dict) for p in sweep)
    assert families.nlist(ds) == 64 and families.divisor(50, 12.5) == 10
    assert families.family_name("hnsw") == "graph"


def test_optional_family_module_adds_configurations(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    fake = types.ModuleType("annxbench.multitenant")
    cfg = families.Config("annx-mt-test", "multitenant", families.annx("Flat"), families.one,
                          families.single)  # fmt: skip
    fake.configs = lambda: [cfg]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "annxbench.multitenant", fake)
    assert families.all_configs()["annx-mt-test"] is cfg
    assert "multitenant" in families.families()
    monkeypatch.delitem(sys.modules, "annxbench.multitenant")
    if not (Path(families.__file__).parent / "multitenant.py").exists():
        assert "multitenant" not in families.families()
