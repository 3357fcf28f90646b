"""bench/run.py end to end on tiny generated files: the --quick matrix over every family
(single- and multi-vector sets, each metric), JSON lines per sweep point with every
repeat, the summary page and per-set pages. Peers that are not installed are skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench_files import write_multi, write_single

pytest.importorskip("h5py")

RUN = Path(__file__).resolve().parents[1] / "bench" / "run.py"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip


def test_quick_matrix(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_single(data / "tiny-16-euclidean.hdf5", "l2")
    write_single(data / "tiny-128-angular.hdf5", "cos", n=400, d=128, learn=True)
    write_multi(data / "tiny-mv-chamfer.hdf5")
    out = tmp_path / "out"
    # annx and faiss only (when faiss is installed), to keep CI short
    proc = run("--matrix", "--quick", "--data-dir", str(data), "--out-dir", str(out),
               "--libraries", "annx,faiss", "--repeats", "5", "--no-plot")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ran = [r for r in rows if "recall" in r]
    by = {(r["dataset"], r["algorithm"]) for r in ran}
    for fam_cfg in ("annx-flat", "annx-hnsw32", "annx-ivfpqfs-refine", "annx-bebr2-refine",
                    "annx-flat-sq8"):  # fmt: skip
        assert ("tiny-16-euclidean", fam_cfg) in by
    assert ("tiny-128-angular", "annx-lv-d4-ood-sq8-refine") in by  # the set has 'learn'
    assert ("tiny-16-euclidean", "annx-lv-d4-sq8-refine") not in by  # LeanVec: d >= 128
    for cfg in ("annx-mv-k3-flat", "annx-chamfer", "annx-token-heuristic"):
        assert ("tiny-mv-chamfer", cfg) in by
    assert ("tiny-mv-chamfer", "annx-flat") not in by
    for r in ran:
        assert 0 <= r["recall"] <= 1 and r["qps"] > 0 and r["bytes_per_vector"] > 0
        assert len(r["qps_runs"]) == 5 and min(r["qps_runs"]) <= r["qps"] <= max(r["qps_runs"])
        for key in ("build_s", "search_params", "build_params", "peak_rss_mb", "cpu", "isa",
                    "threads", "annx_commit", "group", "family", "nq"):  # fmt: skip
            assert key in r
    assert all(r["recall"] == 1.0 for r in ran if r["algorithm"] in ("annx-flat", "annx-chamfer"))
    assert not [r for r in rows if "failed" in r], [r for r in rows if "failed" in r]
    page = (out / "README.md").read_text()
    assert "## Best annx vs best peer" in page and "Command: `python bench/run.py --matrix" in page
    per_set = (out / "tiny-16-euclidean.md").read_text()
    assert "| annx-hnsw32 | graph |" in per_set and "Memory budget" in per_set
    # --report-only rewrites the pages from the JSON lines alone
    (out / "README.md").unlink()
    assert run("--report-only", "--out-dir", str(out), "--no-plot").returncode == 0
    assert (out / "README.md").read_text() == page


def test_algos_list_and_errors(tmp_path: Path) -> None:
    proc = run("--algos", "list")
    assert proc.returncode == 0 and "annx-hnsw32 (graph)" in proc.stdout
    assert "muvera-python-flat (multivector)" in proc.stdout
    proc = run("--algos", "annx-nope", "--data", str(tmp_path / "x.hdf5"), "--out-dir",
               str(tmp_path / "out"))  # fmt: skip
    assert proc.returncode != 0 and "unknown configuration" in proc.stderr
    assert not (tmp_path / "out").exists()
    proc = run("--repeats", "0")
    assert proc.returncode == 2 and "must be >= 1" in proc.stderr
