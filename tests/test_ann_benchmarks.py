"""bench/ann_benchmarks/annx: driven exactly as ann-benchmarks' runner drives an algorithm.

The runner (ann_benchmarks/runner.py) builds the class named in config.yml with
``base_args`` (the metric) and one ``arg_groups`` entry, calls ``fit(X_train)``, then for
each query-argument group ``set_query_arguments(*args)`` and either ``query(v, k)`` per
test vector or ``batch_query(X_test, k)`` + ``get_batch_results()``; memory comes from
``get_memory_usage()`` before and after ``fit``; ``done()`` ends the run. A small HDF5
file in ann-benchmarks' layout stands in for a dataset.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import brute_force, make_clustered

h5py = pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parents[1] / "bench" / "ann_benchmarks" / "annx"


def load_module() -> Any:
    spec = importlib.util.spec_from_file_location("annx_ann_benchmarks", ROOT / "module.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_dataset(path: Path, distance: str) -> None:
    x = make_clustered(3000, 32, seed=41)
    q = make_clustered(60, 32, seed=42)
    metric = {"angular": "cos", "euclidean": "l2"}[distance]
    D, I = brute_force(x, q, 100, metric)
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = distance
        f.attrs["point_type"] = "float"
        f.create_dataset("train", data=x)
        f.create_dataset("test", data=q)
        f.create_dataset("neighbors", data=I.astype(np.int32))
        f.create_dataset("distances", data=D.astype(np.float32))


def run_like_ann_benchmarks(
    algo: Any, path: Path, query_groups: list[list[Any]], k: int = 10
) -> list[float]:
    with h5py.File(path, "r") as f:
        X_train, X_test = np.array(f["train"]), np.array(f["test"])
        gt = np.array(f["neighbors"])[:, :k]
    before = algo.get_memory_usage()
    algo.fit(X_train)
    after = algo.get_memory_usage()
    if before is not None:
        assert after is not None and after >= 0
    recalls = []
    for args in query_groups:
        algo.set_query_arguments(*args)
        for batch in (False, True):
            if batch:
                algo.batch_query(X_test, k)
                results = algo.get_batch_results()
            else:
                results = [algo.query(v, k) for v in X_test]
            assert len(results) == len(X_test)
            for row in results:
                ids = [int(i) for i in row]  # the runner casts each id with int()
                assert len(ids) <= k and len(set(ids)) == len(ids)
                assert all(0 <= i < len(X_train) for i in ids)
            recalls.append(
                float(
                    np.mean(
                        [
                            len(set(map(int, r)) & set(g)) / k
                            for r, g in zip(results, gt, strict=False)
                        ]
                    )
                )
            )
        assert isinstance(str(algo), str) and str(algo).startswith("annx(")
        assert isinstance(algo.get_additional(), dict)
    algo.done()
    return recalls


def config_groups(name: str) -> list[tuple[str, dict[str, Any], list[list[Any]]]]:
    """(constructor, build args, query-argument groups) of each run group in config.yml."""
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "config.yml").read_text())
    out = []
    for entry in config["float"]["any"]:
        if entry["name"] != name:
            continue
        assert entry["module"] == "ann_benchmarks.algorithms.annx"
        assert entry["base_args"] == ["@metric"]
        for group in entry["run_groups"].values():
            qa = group["query_args"]
            combos = [list(c) for c in itertools.product(*qa)] if qa else [[]]
            for build in group["arg_groups"]:
                out.append((entry["constructor"], build, combos))
    assert out, f"{name} not in config.yml"
    return out


@pytest.mark.parametrize("distance", ["angular", "euclidean"])
@pytest.mark.parametrize(
    ("name", "floor"), [("annx-hnsw", 0.95), ("annx-ivfpqfs", 0.9), ("annx-leanvec", 0.9)]
)
def test_runner_protocol(tmp_path: Path, distance: str, name: str, floor: float) -> None:
    mod = load_module()
    path = tmp_path / f"small-{distance}.hdf5"
    write_dataset(path, distance)
    for constructor, build, combos in config_groups(name):
        build = dict(build)
        if "nlist" in build:
            build["nlist"] = 32  # 3,000 vectors: keep ~100 per list
        algo = getattr(mod, constructor)(distance, build)
        # The sweep's ends (fast and accurate) keep the test short.
        recalls = run_like_ann_benchmarks(algo, path, [combos[0], combos[-1]])
        assert max(recalls) >= floor, (constructor, build, recalls)


def test_unsupported_distance() -> None:
    mod = load_module()
    with pytest.raises(NotImplementedError, match="hamming"):
        mod.AnnxHNSW("hamming", {"M": 16})


def test_never_returns_padding(tmp_path: Path) -> None:
    """k larger than the index: the runner gets the real ids only."""
    mod = load_module()
    algo = mod.AnnxHNSW("euclidean", {"M": 8, "efConstruction": 40})
    x = make_clustered(7, 4, seed=43)
    algo.fit(x)
    algo.set_query_arguments(16)
    res = algo.query(x[0], 10)
    assert sorted(res) == list(range(7))
    algo.batch_query(x[:3], 10)
    assert all(sorted(r) == list(range(7)) for r in algo.get_batch_results())
