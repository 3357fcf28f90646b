"""bench/run.py end to end on tiny files: JSON lines per sweep point, families kept apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import brute_force, make_clustered

h5py = pytest.importorskip("h5py")

RUN = Path(__file__).resolve().parents[1] / "bench" / "run.py"


def write_single(path: Path) -> None:
    x = make_clustered(2000, 16, seed=1)
    q = make_clustered(30, 16, seed=2)
    _, I = brute_force(x, q, 100, "l2")
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "euclidean"
        f["train"], f["test"], f["neighbors"] = x, q, I.astype(np.int32)


def write_multi(path: Path) -> None:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((30, 16)).astype(np.float32)

    def sets(n: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        lens = rng.integers(lo, hi + 1, size=n)
        toks = centres[rng.integers(0, 30, size=lens.sum())] + 0.1 * rng.standard_normal(
            (lens.sum(), 16)
        )
        toks = (toks / np.linalg.norm(toks, axis=1, keepdims=True)).astype(np.float32)
        return toks, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)

    dv, do = sets(300, 4, 12)
    qv, qo = sets(20, 2, 6)
    S = np.array(
        [
            [(qv[qo[i] : qo[i + 1]] @ dv[do[j] : do[j + 1]].T).max(1).sum() for j in range(300)]
            for i in range(20)
        ]
    )
    with h5py.File(path, "w") as f:
        f.attrs["similarity"] = "chamfer"
        f["doc_vectors"], f["doc_offsets"] = dv, do
        f["query_vectors"], f["query_offsets"] = qv, qo
        f["neighbors"] = np.argsort(-S, axis=1, kind="stable")[:, :100].astype(np.int32)


def test_runner_single_and_multi_vector(tmp_path):
    single, multi = tmp_path / "tiny-16-euclidean.hdf5", tmp_path / "tiny-mv-chamfer.hdf5"
    write_single(single)
    write_multi(multi)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, str(RUN), "--data", f"{single},{multi}", "--algos",
           "annx-flat,annx-mv-k3-flat,annx-chamfer", "--repeats", "1", "--out-dir", str(out),
           "--no-plot"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by = {(r["dataset"], r["algorithm"]) for r in rows}
    assert ("tiny-16-euclidean", "annx-flat") in by
    assert ("tiny-mv-chamfer", "annx-mv-k3-flat") in by
    assert ("tiny-mv-chamfer", "annx-chamfer") in by
    # single-vector configurations skip multi-vector files and the reverse
    assert ("tiny-mv-chamfer", "annx-flat") not in by
    assert ("tiny-16-euclidean", "annx-chamfer") not in by
    for r in rows:
        assert 0 <= r["recall"] <= 1 and r["qps"] > 0 and r["bytes_per_vector"] > 0
    exact = [r for r in rows if r["algorithm"] in ("annx-flat", "annx-chamfer")]
    assert all(r["recall"] == 1.0 for r in exact)
    mv = [r for r in rows if r["algorithm"] == "annx-mv-k3-flat"]
    assert len(mv) == 7 and max(r["recall"] for r in mv) == 1.0  # 500 candidates: all
    assert {r["search_params"]["candidates"] for r in mv} == {20, 50, 100, 150, 200, 300, 500}
