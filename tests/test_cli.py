"""The ``annx`` command line (run in a subprocess) and ``progress=`` on ``Index.add``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import brute_force, make_clustered

import annx
from annx import datasets

h5py = pytest.importorskip("h5py")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "annx", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=None if env is None else {**os.environ, **env},
    )


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "small-angular.hdf5"
    x = make_clustered(4000, 24, seed=51)
    q = make_clustered(100, 24, seed=52)
    D, I = brute_force(x, q, 100, "cos")
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "angular"
        f.attrs["point_type"] = "float"
        f.create_dataset("train", data=x)
        f.create_dataset("test", data=q)
        f.create_dataset("neighbors", data=I.astype(np.int32))
        f.create_dataset("distances", data=D.astype(np.float32))
    return path


@pytest.mark.parametrize("spec", ["HNSW16", "IVF32,PQ12x4fs,Refine(F32)"])
def test_build_search_info_end_to_end(tmp_path: Path, data_file: Path, spec: str) -> None:
    out = tmp_path / "idx.annx"
    r = run_cli("build", "--data", str(data_file), "--spec", spec, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"{spec} (cos), 4,000 x 24" in r.stdout
    assert "add" in r.stderr  # the progress bar (tqdm) or its text fallback
    if spec.startswith("IVF"):
        assert "train" in r.stderr and "610/610" in r.stderr  # 10 + 2 x 12 x 25 (both encodings)
    index = annx.load(out)
    assert index.ntotal == 4000 and index.metric == "cos" and index.spec == spec

    res = tmp_path / "res.npz"
    r = run_cli(
        "search", "--index", str(out), "--data", str(data_file), "--k", "10",
        *(["--ef-search", "64"] if spec.startswith("HNSW") else ["--nprobe", "32"]),
        "--out", str(res),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "100 queries, k=10" in r.stdout and "recall@10 = " in r.stdout
    recall = float(r.stdout.rsplit("= ", 1)[1])
    assert recall >= 0.9
    saved = np.load(res)
    assert saved["ids"].shape == (100, 10) and saved["distances"].shape == (100, 10)

    r = run_cli("info", str(out))
    assert r.returncode == 0 and spec in r.stdout and "format_version" in r.stdout


def test_other_input_formats(tmp_path: Path) -> None:
    x = make_clustered(1500, 16, seed=53)
    fbin, npy = tmp_path / "x.fbin", tmp_path / "x.npy"
    datasets.write_fbin(fbin, x)
    np.save(npy, x[:20])
    out = tmp_path / "flat.annx"
    r = run_cli("build", "--data", str(fbin), "--spec", "Flat", "--metric", "l2",
                "--out", str(out), "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # --quiet: no progress
    r = run_cli("search", "--index", str(out), "--data", str(fbin), "--queries", str(npy),
                "--k", "1", "--out", str(tmp_path / "r.npz"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "r.npz")["ids"][:, 0], np.arange(20))


def test_errors_exit_nonzero(tmp_path: Path, data_file: Path) -> None:
    r = run_cli("build", "--data", str(data_file), "--spec", "HNSW16,XX", "--out",
                str(tmp_path / "x.annx"))  # fmt: skip
    assert r.returncode == 2 and "unknown codec 'XX'" in r.stderr  # a bad spec is usage
    r = run_cli("build", "--data", str(tmp_path / "missing.hdf5"), "--spec", "Flat",
                "--out", str(tmp_path / "x.annx"))  # fmt: skip
    assert r.returncode == 1 and "error" in r.stderr
    bad = tmp_path / "bad.annx"
    bad.write_bytes(b"not an index")
    r = run_cli("search", "--index", str(bad), "--data", str(data_file))
    assert r.returncode == 1 and "error" in r.stderr
    r = run_cli("build", "--spec", "Flat")
    assert r.returncode == 2 and "--data" in r.stderr
    r = run_cli("build", "--data", str(tmp_path / "x.txt"), "--spec", "Flat", "--out", "o")
    assert r.returncode == 2 and "unknown data format" in r.stderr
    for res in (r,):
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_version_and_demo_routing() -> None:
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"annx {annx.__version__}"
    r = run_cli("--n", "300", "--nq", "5", "--specs", "Flat")
    assert r.returncode == 0 and "demo" in r.stdout and "synthetic-300-" in r.stdout, r.stderr
    r = run_cli("--no-such-option")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_reader_errors_are_one_line_exit_1(tmp_path: Path) -> None:
    """A corrupt .fvecs (a ValueError from the reader) gives no traceback."""
    bad = tmp_path / "bad.fvecs"
    bad.write_bytes(np.array([4], "<i4").tobytes() + b"\0" * 10)  # truncated record
    r = run_cli("build", "--data", str(bad), "--spec", "Flat", "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "bad.fvecs" in r.stderr
    assert not (tmp_path / "o").exists()
    r = run_cli("build", "--data", str(tmp_path / "none.fbin"), "--spec", "Flat", "--out", "o")
    assert r.returncode == 1 and "No such file" in r.stderr and r.stderr.count("\n") == 1


def test_search_with_queries_only_and_mmap_inputs(tmp_path: Path) -> None:
    x = make_clustered(2000, 16, seed=3)
    datasets.write_fvecs(tmp_path / "x.fvecs", x)
    datasets.write_u8bin(tmp_path / "u.u8bin", (np.abs(x) * 20).clip(0, 255).astype(np.uint8))
    np.save(tmp_path / "q.npy", x[:50].astype(np.float64))
    out = tmp_path / "i.annx"
    for data in ("x.fvecs", "u.u8bin"):
        r = run_cli("build", "--data", str(tmp_path / data), "--spec", "Flat", "--out", str(out),
                    "--quiet")  # fmt: skip
        assert r.returncode == 0, r.stderr
    res = tmp_path / "res.npz"
    r = run_cli("search", "--index", str(out), "--queries", str(tmp_path / "q.npy"), "--k", "3",
                "--out", str(res))  # fmt: skip
    assert r.returncode == 0 and "50 queries" in r.stdout, r.stderr
    assert np.load(res)["ids"].shape == (50, 3)
    r = run_cli("search", "--index", str(out))
    assert r.returncode == 2 and "--data or --queries" in r.stderr


def test_data_by_name_downloads_into_the_cache(tmp_path: Path, data_file: Path) -> None:
    """--data NAME fetches an ann-benchmarks set (here from a file:// mirror)."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    name = "fashion-mnist-784-euclidean"
    (mirror / f"{name}.hdf5").write_bytes(data_file.read_bytes())
    env = {"ANNX_DATASETS_URL": mirror.as_uri(), "ANNX_DATA_DIR": str(tmp_path / "cache")}
    out = tmp_path / "n.annx"
    r = run_cli("build", "--data", name, "--spec", "Flat", "--out", str(out), "--quiet", env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "cache" / f"{name}.hdf5").is_file()
    r = run_cli("search", "--index", str(out), "--data", name, env=env)
    assert r.returncode == 0 and "recall@10 = 1.0000" in r.stdout, r.stderr
    r = run_cli("build", "--data", "not-a-set", "--spec", "Flat", "--out", str(out), env=env)
    assert r.returncode == 2 and "ann-benchmarks" in r.stderr


def test_memory_mapped_readers(tmp_path: Path) -> None:
    x = make_clustered(300, 8, seed=4)
    for fmt, arr in (
        ("fvecs", x),
        ("fbin", x),
        ("ivecs", (x * 10).astype(np.int32)),
        ("bvecs", (np.abs(x) * 10).astype(np.uint8)),
        ("i8bin", (x * 10).clip(-128, 127).astype(np.int8)),
    ):
        path = tmp_path / f"a.{fmt}"
        getattr(datasets, f"write_{fmt}")(path, arr)
        full = getattr(datasets, f"read_{fmt}")(path)
        mapped = getattr(datasets, f"read_{fmt}")(path, mmap=True, offset=10, count=50)
        assert not mapped.flags.writeable
        np.testing.assert_array_equal(mapped, full[10:60])
        np.testing.assert_array_equal(datasets.read_vectors(path), full)
    np.save(tmp_path / "a.npy", x)
    m = datasets.read_vectors(tmp_path / "a.npy", mmap=True, count=5)
    assert isinstance(m.base, np.memmap) or isinstance(m, np.memmap)
    np.testing.assert_array_equal(m, x[:5])
    with pytest.raises(ValueError, match="unknown vector file format"):
        datasets.read_vectors(tmp_path / "a.txt")
    with pytest.raises(ValueError, match="mmap"):
        datasets.read_fvecs(tmp_path / "a.fvecs", mmap="yes")
    np.save(tmp_path / "b.npy", x[0])
    with pytest.raises(ValueError, match="2-D"):
        datasets.read_vectors(tmp_path / "b.npy")


def test_bench_runs_the_runner(tmp_path: Path, data_file: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, "-m", "annx", "bench", "--algos", "list"],
        capture_output=True, text=True, timeout=120, cwd=root,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "annx-hnsw32 (graph)" in r.stdout and "faiss-flat (flat)" in r.stdout
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "annx", "bench", "--data", str(data_file), "--algos",
         "annx-flat,annx-hnsw32", "--repeats", "1", "--out-dir", str(out)],
        capture_output=True, text=True, timeout=300, cwd=root,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    lines = (out / "results.jsonl").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    assert {r["algorithm"] for r in recs} == {"annx-flat", "annx-hnsw32"}
    for rec in recs:
        for key in ("build_s", "recall", "qps", "bytes_per_vector", "peak_rss_mb", "cpu",
                    "isa", "threads", "annx_commit", "search_params", "build_params"):  # fmt: skip
            assert key in rec
    assert max(r["recall"] for r in recs if r["algorithm"] == "annx-flat") == 1.0
    table = (out / "small-angular.md").read_text()
    assert "| annx-hnsw32 |" in table and "q/s @0.95" in table
    r = subprocess.run(
        [sys.executable, "-m", "annx", "bench", "--algos", "list"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
        )},
    )  # fmt: skip
    # Outside the source tree the package may still find it next to itself (a source
    # checkout on PYTHONPATH); an installed wheel says where to get it.
    assert r.returncode == 0 or "source tree" in r.stderr


# ----------------------------------------------------------------- progress=
@pytest.mark.parametrize("spec", ["Flat", "HNSW16", "IVF16,Flat", "LeanVec8,HNSW16,Refine(F32)"])
def test_progress_callback_and_cancel(spec: str) -> None:
    x = make_clustered(5000, 24, seed=54)
    index = annx.index_factory(24, spec, "l2")
    index.train(x)
    calls: list[tuple[int, int]] = []
    index.add(x, progress=lambda done, total: calls.append((done, total)))
    assert index.ntotal == 5000 and calls[-1] == (5000, 5000)
    assert [c[0] for c in calls] == sorted({c[0] for c in calls}) and len(calls) >= 4
    np.testing.assert_array_equal(np.sort(index.ids()), np.arange(5000))

    cancelled = annx.index_factory(24, spec, "l2")
    cancelled.train(x)
    cancelled.add(x[:10])
    with pytest.raises(annx.CancelledError, match="removed again"):
        cancelled.add(x, progress=lambda done, total: done < 2048)
    assert cancelled.ntotal == 10  # the cancelled add left nothing behind
    # A failure in a later step (a duplicate id there) also rolls back the earlier ones.
    ids = np.arange(5000) + 100
    ids[4500] = 5  # already present
    with pytest.raises(annx.InvalidArgumentError):
        cancelled.add(x, ids=ids, progress=lambda d, t: None)
    assert cancelled.ntotal == 10
    with pytest.raises(annx.InvalidArgumentError, match="progress"):
        cancelled.add(x, progress="yes")  # type: ignore[arg-type]


def test_progress_true_without_tqdm(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    index = annx.index_factory(8, "Flat")
    index.add(make_clustered(3000, 8, seed=55), progress=True)
    assert index.ntotal == 3000
    assert "add: 3,000/3,000" in capsys.readouterr().err
