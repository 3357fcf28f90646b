"""Tests for :mod:`annx.datasets` (file formats, HDF5, recall, ground truth, download)."""

from __future__ import annotations

import collections
import functools
import http.server
import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annx import datasets as ds

FILE_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

VECS = {
    "fvecs": (ds.read_fvecs, ds.write_fvecs, np.float32),
    "ivecs": (ds.read_ivecs, ds.write_ivecs, np.int32),
    "bvecs": (ds.read_bvecs, ds.write_bvecs, np.uint8),
}
BINS = {
    "fbin": (ds.read_fbin, ds.write_fbin, np.float32),
    "ibin": (ds.read_ibin, ds.write_ibin, np.int32),
    "u8bin": (ds.read_u8bin, ds.write_u8bin, np.uint8),
    "i8bin": (ds.read_i8bin, ds.write_i8bin, np.int8),
}


def _random(rng: np.random.Generator, shape: tuple[int, int], dtype: Any) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)


def _vecs_bytes(rows: list[np.ndarray]) -> bytes:
    """Encode rows (each with its own dimension) in the TEXMEX layout."""
    out = b""
    for r in rows:
        out += np.array([r.shape[0]], dtype="<i4").tobytes() + r.tobytes()
    return out


# --------------------------------------------------------------------------
# TEXMEX vecs
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(VECS))
@FILE_SETTINGS
@given(n=st.integers(0, 12), d=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_vecs_round_trip(tmp_path: pathlib.Path, fmt: str, n: int, d: int, seed: int) -> None:
    read, write, dtype = VECS[fmt]
    a = _random(np.random.default_rng(seed), (n, d), dtype)
    path = tmp_path / f"x.{fmt}"
    write(path, a)
    assert path.stat().st_size == n * (4 + d * np.dtype(dtype).itemsize)
    b = read(path)
    assert b.dtype == np.dtype(dtype)
    if n == 0:
        assert b.shape == (0, 0)  # an empty file does not record d
    else:
        np.testing.assert_array_equal(b, a)
        off = seed % (n + 1)
        cnt = (seed // 7) % (n - off + 1)
        np.testing.assert_array_equal(read(path, count=cnt, offset=off), a[off : off + cnt])
        np.testing.assert_array_equal(read(path, offset=off), a[off:])


def test_vecs_known_bytes(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "k.fvecs"
    p.write_bytes(_vecs_bytes([np.array([1.5, -2.0], "<f4"), np.array([3, 4], "<f4")]))
    np.testing.assert_array_equal(ds.read_fvecs(p), [[1.5, -2.0], [3.0, 4.0]])
    p = tmp_path / "k.bvecs"
    p.write_bytes(_vecs_bytes([np.array([1, 2, 255], "u1")]))
    np.testing.assert_array_equal(ds.read_bvecs(p), [[1, 2, 255]])
    ds.write_ivecs(p, np.array([[7, -8]], dtype=np.int64))
    assert p.read_bytes() == _vecs_bytes([np.array([7, -8], "<i4")])


def test_vecs_empty_file(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "e.fvecs"
    p.write_bytes(b"")
    a = ds.read_fvecs(p)
    assert a.shape == (0, 0) and a.dtype == np.float32
    assert ds.read_fvecs(p, count=0).shape == (0, 0)
    with pytest.raises(ValueError, match="e.fvecs"):
        ds.read_fvecs(p, count=1)


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        (b"\x01\x00", r"byte offset 0"),
        (np.array([0], "<i4").tobytes(), r"invalid dimension 0 at byte offset 0"),
        (np.array([-3, 1, 2, 3], "<i4").tobytes(), r"invalid dimension -3"),
        (np.array([2**31 - 1, 0], "<i4").tobytes(), r"dimension 2147483647"),
        (
            _vecs_bytes([np.ones(3, "<f4"), np.ones(3, "<f4")]) + b"\x03\x00\x00\x00\x00",
            r"truncated last record at byte offset 32",
        ),
        (
            _vecs_bytes([np.ones(3, "<f4"), np.ones(2, "<f4"), np.ones(3, "<f4")]),
            r"inconsistent dimension 2 at byte offset 16",
        ),
    ],
)
def test_vecs_malformed(tmp_path: pathlib.Path, payload: bytes, pattern: str) -> None:
    p = tmp_path / "bad.fvecs"
    p.write_bytes(payload)
    with pytest.raises(ValueError, match=pattern) as info:
        ds.read_fvecs(p)
    assert "bad.fvecs" in str(info.value)


def test_vecs_inconsistent_dims_same_size(tmp_path: pathlib.Path) -> None:
    # Records of dims (2, 4, 2, 0): the total size is a multiple of the
    # 12-byte record, so only the header check can catch it.
    rows = [np.ones(2, "<f4"), np.ones(4, "<f4"), np.ones(2, "<f4")]
    p = tmp_path / "mixed.fvecs"
    p.write_bytes(_vecs_bytes(rows) + np.array([0], "<i4").tobytes())
    assert p.stat().st_size % 12 == 0
    with pytest.raises(ValueError, match=r"inconsistent dimension 4 at byte offset 12"):
        ds.read_fvecs(p)
    np.testing.assert_array_equal(ds.read_fvecs(p, count=1), [[1.0, 1.0]])


def test_vecs_bad_range_and_writes(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "r.ivecs"
    ds.write_ivecs(p, np.arange(12).reshape(4, 3))
    for kwargs in (
        {"offset": 5},
        {"offset": -1},
        {"count": 5},
        {"count": 2, "offset": 3},
        {"count": -1},
    ):
        with pytest.raises(ValueError, match="r.ivecs"):
            ds.read_ivecs(p, **kwargs)
    assert ds.read_ivecs(p, offset=4).shape == (0, 3)
    with pytest.raises(ValueError):
        ds.write_ivecs(p, np.arange(3))  # 1-D
    with pytest.raises(ValueError):
        ds.write_ivecs(p, np.array([[2**31]]))
    with pytest.raises(ValueError):
        ds.write_ivecs(p, np.array([[1.5]]))
    with pytest.raises(ValueError):
        ds.write_bvecs(p, np.array([[256]]))
    with pytest.raises(ValueError):
        ds.write_bvecs(p, np.array([[-1]]))
    with pytest.raises(ValueError):
        ds.write_fvecs(p, np.zeros((2, 0)))
    with pytest.raises(ValueError):
        ds.write_fvecs(p, np.array([["a"]]))


# --------------------------------------------------------------------------
# big-ann-benchmarks bin
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(BINS))
@FILE_SETTINGS
@given(n=st.integers(0, 12), d=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_bin_round_trip(tmp_path: pathlib.Path, fmt: str, n: int, d: int, seed: int) -> None:
    read, write, dtype = BINS[fmt]
    a = _random(np.random.default_rng(seed), (n, d), dtype)
    path = tmp_path / f"x.{fmt}"
    write(path, a)
    raw = path.read_bytes()
    assert np.frombuffer(raw[:8], "<u4").tolist() == [n, d]
    assert len(raw) == 8 + n * d * np.dtype(dtype).itemsize
    b = read(path)
    assert b.dtype == np.dtype(dtype) and b.shape == (n, d)
    np.testing.assert_array_equal(b, a)
    off = seed % (n + 1)
    cnt = (seed // 7) % (n - off + 1)
    np.testing.assert_array_equal(read(path, count=cnt, offset=off), a[off : off + cnt])


def _bin(n: int, d: int, body: bytes) -> bytes:
    return np.array([n, d], "<u4").tobytes() + body


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        (b"\x01\x00\x00", r"too short for the 8-byte header"),
        (_bin(3, 2, np.zeros(5, "<f4").tobytes()), r"header claims 3 x 2 .*byte offset 28"),
        (_bin(2**32 - 1, 2**32 - 1, b""), r"header claims 4294967295 x 4294967295"),
        (_bin(1, 2, np.zeros(3, "<f4").tobytes()), r"unexpected bytes .*byte offset 16"),
        (_bin(4, 0, b""), r"dimension 0"),
    ],
)
def test_bin_malformed(tmp_path: pathlib.Path, payload: bytes, pattern: str) -> None:
    p = tmp_path / "bad.fbin"
    p.write_bytes(payload)
    with pytest.raises(ValueError, match=pattern) as info:
        ds.read_fbin(p)
    assert "bad.fbin" in str(info.value)


def test_bin_wrong_type_and_range(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "v.fbin"
    ds.write_fbin(p, np.ones((3, 4)))
    with pytest.raises(ValueError, match="unexpected bytes"):
        ds.read_u8bin(p)  # float data read as bytes: size does not match
    with pytest.raises(ValueError, match="cannot read 4 vectors from offset 0"):
        ds.read_fbin(p, count=4)
    with pytest.raises(ValueError, match="offset 4"):
        ds.read_fbin(p, offset=4)
    q = tmp_path / "z.fbin"
    q.write_bytes(_bin(0, 0, b""))
    assert ds.read_fbin(q).shape == (0, 0)
    with pytest.raises(ValueError):
        ds.write_i8bin(q, np.array([[128]]))
    with pytest.raises(ValueError):
        ds.write_u8bin(q, np.array([[0.5]]))


# --------------------------------------------------------------------------
# HDF5
# --------------------------------------------------------------------------


def _write_h5(path: pathlib.Path, datasets: dict[str, Any], attrs: dict[str, Any]) -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value)
        for key, value in attrs.items():
            f.attrs[key] = value


def _dense_file(
    path: pathlib.Path, distance: Any = "angular", *, drop: str | None = None, **over: Any
) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    data: dict[str, Any] = {
        "train": rng.standard_normal((30, 6)).astype(np.float32),
        "test": rng.standard_normal((4, 6)).astype(np.float32),
        "neighbors": rng.integers(0, 30, (4, 5)).astype(np.int32),
        "distances": rng.random((4, 5)).astype(np.float32),
    }
    data.update(over)
    if drop:
        del data[drop]
    _write_h5(path, data, {"distance": distance, "point_type": "float"})
    return data


def test_load_hdf5_angular(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "tiny-6-angular.hdf5"
    data = _dense_file(
        p,
        learn=np.ones((3, 6), np.float32),
        test_texts=np.array([b"a", b"b", b"c", b"d"], dtype=object),
        ids=np.arange(4, dtype=np.int64),
    )
    got = ds.load_hdf5(p)
    assert got.name == "tiny-6-angular"
    assert (got.metric, got.distance) == ("cos", "angular")
    assert (got.n, got.d, got.nq) == (30, 6, 4)
    np.testing.assert_array_equal(got.train, data["train"])
    assert got.neighbors is not None and got.neighbors.dtype == np.int64
    np.testing.assert_array_equal(got.neighbors, data["neighbors"])
    assert got.distances is not None and got.distances.dtype == np.float32
    assert sorted(got.extra) == ["ids", "learn"]  # text skipped
    assert "tiny-6-angular" in repr(got)
    assert ds.load_hdf5(p, load_extra=False).extra == {}
    with pytest.raises(AttributeError):
        got.name = "x"  # type: ignore[misc]


def test_load_hdf5_euclidean_bytes_attr_and_casts(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "e.hdf5"
    _dense_file(
        p,
        np.bytes_(b"euclidean"),
        train=np.arange(60, dtype=np.float64).reshape(10, 6),
        neighbors=np.zeros((4, 5), np.int64),
        distances=np.zeros((4, 5), np.float64),
    )
    got = ds.load_hdf5(p)
    assert got.metric == "l2" and got.distance == "euclidean"
    assert got.train.dtype == np.float32 and got.train.flags.c_contiguous
    assert got.distances is not None and got.distances.dtype == np.float32
    p2 = tmp_path / "dot.hdf5"
    _dense_file(p2, "dot", drop="neighbors")
    got = ds.load_hdf5(p2)
    assert got.metric == "ip" and got.neighbors is None


def test_load_hdf5_hamming_packs_bits(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(3)
    train = rng.random((20, 13)) > 0.5
    test = rng.random((3, 13)) > 0.5
    p = tmp_path / "h.hdf5"
    _write_h5(
        p,
        {"train": train, "test": test, "neighbors": np.zeros((3, 2), np.int32)},
        {"distance": "hamming", "point_type": "bit"},
    )
    got = ds.load_hdf5(p)
    assert got.metric == "hamming" and got.bits == 13
    assert got.train.dtype == np.uint8 and got.train.shape == (20, 2)
    np.testing.assert_array_equal(got.train, np.packbits(train, axis=1))
    np.testing.assert_array_equal(np.unpackbits(got.test, axis=1)[:, :13], test)
    # 0/1 stored as uint8 is packed the same way
    p2 = tmp_path / "h8.hdf5"
    _write_h5(
        p2,
        {"train": train.astype(np.uint8), "test": test.astype(np.uint8)},
        {"distance": "hamming"},
    )
    np.testing.assert_array_equal(ds.load_hdf5(p2).train, np.packbits(train, axis=1))
    p3 = tmp_path / "h2.hdf5"
    _write_h5(
        p3,
        {"train": np.full((2, 8), 2, np.uint8), "test": np.zeros((1, 8), np.uint8)},
        {"distance": "hamming"},
    )
    with pytest.raises(ValueError, match="0/1"):
        ds.load_hdf5(p3)


def test_load_hdf5_sparse_jaccard(tmp_path: pathlib.Path) -> None:
    sets_train = [[0, 3, 9], [1], [2, 3, 4, 5, 6, 7, 8, 9]]
    sets_test = [[9], [0, 1]]
    p = tmp_path / "j.hdf5"
    _write_h5(
        p,
        {
            "train": np.concatenate([np.array(s) for s in sets_train]),
            "test": np.concatenate([np.array(s) for s in sets_test]),
            "size_train": [len(s) for s in sets_train],
            "size_test": [len(s) for s in sets_test],
            "neighbors": np.zeros((2, 3), np.int64),
            "distances": np.zeros((2, 3)),
        },
        {"distance": "jaccard", "type": "sparse", "dimension": 10, "point_type": "bit"},
    )
    got = ds.load_hdf5(p)
    assert got.metric == "jaccard" and got.bits == 10 and got.extra == {}
    dense = np.zeros((3, 10), bool)
    for i, s in enumerate(sets_train):
        dense[i, s] = True
    np.testing.assert_array_equal(got.train, np.packbits(dense, axis=1))
    assert got.test.shape == (2, 2)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"drop": "train"}, r"missing required dataset 'train'"),
        ({"drop": "test"}, r"missing required dataset 'test'"),
        ({"distance": "manhattan"}, r"unknown distance 'manhattan'"),
        ({"test": np.zeros((4, 5), np.float32)}, r"train has dimension 6 but test has 5"),
        ({"neighbors": np.zeros((3, 5), np.int32)}, r"'neighbors' has 3 rows but 'test' has 4"),
        ({"distances": np.zeros((4, 4), np.float32)}, r"'distances' has shape \(4, 4\)"),
        ({"neighbors": np.zeros((4, 5), np.float32)}, r"'neighbors' must be a 2-D integer"),
    ],
)
def test_load_hdf5_errors(tmp_path: pathlib.Path, kwargs: dict[str, Any], pattern: str) -> None:
    p = tmp_path / "broken.hdf5"
    _dense_file(p, **kwargs)
    with pytest.raises(ValueError, match=pattern) as info:
        ds.load_hdf5(p)
    assert "broken.hdf5" in str(info.value)


def test_load_hdf5_missing_distance_attr(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "noattr.hdf5"
    _write_h5(p, {"train": np.zeros((2, 2)), "test": np.zeros((1, 2))}, {})
    with pytest.raises(ValueError, match="noattr.hdf5: missing the 'distance' attribute"):
        ds.load_hdf5(p)


def test_h5py_missing_message(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r'pip install "annx\[hdf5\]"'):
        ds.load_hdf5(tmp_path / "x.hdf5")


def test_import_is_numpy_only() -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('annx_ds', {ds.__file__!r})\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "sys.modules[spec.name] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "assert 'h5py' not in sys.modules, 'h5py imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_load_dispatch(tmp_path: pathlib.Path) -> None:
    p = tmp_path / "x.h5"
    _dense_file(p)
    assert ds.load(p).metric == "cos"
    assert ds.load(str(p), load_extra=False).n == 30
    with pytest.raises(FileNotFoundError):
        ds.load(tmp_path / "missing.hdf5")
    txt = tmp_path / "x.fvecs"
    ds.write_fvecs(txt, np.ones((1, 2)))
    with pytest.raises(ValueError, match="expected .hdf5"):
        ds.load(txt)
    s = ds.load("synthetic-500-8-ip")
    assert (s.name, s.n, s.d, s.metric) == ("synthetic-500-8-ip", 500, 8, "ip")
    with pytest.raises(ValueError, match="glove-100-angular"):
        ds.load("glove-100-angualr")


# --------------------------------------------------------------------------
# recall_at_k
# --------------------------------------------------------------------------


def test_recall_hand_computed() -> None:
    gt = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert ds.recall_at_k(gt, gt, 4) == 1.0
    ids = np.array([[1, 9, 3, 0], [8, 7, 6, 5]])
    assert ds.recall_at_k(ids, gt, 4) == pytest.approx((2 / 4 + 4 / 4) / 2)
    assert ds.recall_at_k(ids, gt, 2) == pytest.approx((1 / 2 + 0 / 2) / 2)
    assert ds.recall_at_k(ids, gt, 1) == pytest.approx(0.5)
    # -1 never counts, even against a padded ground truth; repeats count once
    assert ds.recall_at_k([[-1, -1]], [[-1, -1]], 2) == 0.0
    assert ds.recall_at_k([[1, -1, 2]], [[1, 2, 3]], 3) == pytest.approx(2 / 3)
    assert ds.recall_at_k([[1, 1, 1]], [[1, 2, 3]], 3) == pytest.approx(1 / 3)
    # extra columns beyond k are ignored on both sides
    assert ds.recall_at_k([[1, 2, 3]], [[2, 1]], 2) == 1.0
    assert ds.recall_at_k(np.array([[4, 3]], np.uint32), np.array([[3, 4]], np.int64), 2) == 1.0


@pytest.mark.parametrize(
    ("res", "gt", "k"),
    [
        ([[1, 2]], [[1, 2], [3, 4]], 2),
        ([[1]], [[1, 2]], 2),
        ([[1, 2]], [[1]], 2),
        ([[1, 2]], [[1, 2]], 0),
        ([1, 2], [1, 2], 1),
        ([[1.0, 2.0]], [[1, 2]], 1),
        (np.zeros((0, 3), int), np.zeros((0, 3), int), 2),
    ],
)
def test_recall_bad_input(res: Any, gt: Any, k: int) -> None:
    with pytest.raises(ValueError):
        ds.recall_at_k(res, gt, k)


@settings(max_examples=60, deadline=None)
@given(
    nq=st.integers(1, 20),
    k=st.integers(1, 12),
    extra=st.integers(0, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_recall_properties(nq: int, k: int, extra: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    universe = k + extra + 5
    gt = np.argsort(rng.random((nq, universe)), axis=1)[:, : k + extra]
    assert ds.recall_at_k(gt, gt, k) == 1.0
    res = rng.integers(-1, universe, size=(nq, k + extra))
    expected = np.mean(
        [
            len({int(v) for v in res[q, :k] if v != -1} & {int(v) for v in gt[q, :k]}) / k
            for q in range(nq)
        ]
    )
    assert ds.recall_at_k(res, gt, k) == pytest.approx(expected)


# --------------------------------------------------------------------------
# ground_truth
# --------------------------------------------------------------------------


def _reference(x: np.ndarray, q: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    x = x.astype(np.float64)
    q = q.astype(np.float64)
    if metric == "l2":
        key = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    elif metric == "ip":
        key = -(q @ x.T)
    else:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        key = -(qn @ xn.T)
    ids = np.argsort(key, axis=1, kind="stable")[:, :k]
    vals = np.take_along_axis(key, ids, axis=1)
    return (vals if metric == "l2" else -vals), ids


@pytest.mark.parametrize("metric", ["l2", "ip", "cos"])
def test_ground_truth_matches_reference(metric: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, 12)).astype(np.float32)
    q = rng.standard_normal((17, 12)).astype(np.float32)
    D, ids = ds.ground_truth(x, q, 10, metric, batch=5)
    _, rI = ds.ground_truth(x, q, 10, metric)
    eD, eI = _reference(x, q, 10, metric)
    assert D.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (17, 10)
    np.testing.assert_array_equal(ids, eI)
    np.testing.assert_array_equal(rI, eI)
    np.testing.assert_allclose(D, eD, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["l2", "ip", "cos"])
@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 40),
    nq=st.integers(1, 6),
    d=st.integers(1, 4),
    k=st.integers(1, 45),
    seed=st.integers(0, 2**32 - 1),
    tiny_blocks=st.booleans(),
)
def test_ground_truth_ties_property(
    metric: str, n: int, nq: int, d: int, k: int, seed: int, tiny_blocks: bool
) -> None:
    # Small integers make every float64 sum exact, so ties are real ties and
    # must come out ordered by id, across base blocks too.
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(n, d)).astype(np.float32)
    q = rng.integers(-2, 3, size=(nq, d)).astype(np.float32)
    if metric == "cos":
        x[np.abs(x).sum(1) == 0, 0] = 1
        q[np.abs(q).sum(1) == 0, 0] = 1
    old = ds._BLOCK_ELEMS
    try:
        if tiny_blocks:
            ds._BLOCK_ELEMS = 7
        D, ids = ds.ground_truth(x, q, k, metric, batch=2)
    finally:
        ds._BLOCK_ELEMS = old
    kk = min(k, n)
    eD, eI = _reference(x, q, kk, metric)
    if metric == "cos":  # normalising rounds, so ties need not be exact
        np.testing.assert_allclose(D[:, :kk], eD, atol=1e-6)
        full, _ = _reference(x, q, n, metric)
        sims = np.sort(full, axis=1)  # ascending similarities, for lookup
        for row in range(nq):
            got = -np.sort(-sims[row])[:kk]
            np.testing.assert_allclose(D[row, :kk], got, atol=1e-6)
    else:
        np.testing.assert_array_equal(ids[:, :kk], eI)
        np.testing.assert_array_equal(D[:, :kk], eD.astype(np.float32))
    assert (ids[:, kk:] == -1).all()
    assert np.isinf(D[:, kk:]).all()


def test_ground_truth_ties_lower_id_and_padding() -> None:
    x = np.array([[1, 0], [0, 0], [0, 1], [1, 0], [-1, 0], [0, 1]], np.float32)
    q = np.zeros((1, 2), np.float32)
    D, ids = ds.ground_truth(x, q, 8)
    assert ids.tolist() == [[1, 0, 2, 3, 4, 5, -1, -1]]
    assert D[0, :6].tolist() == [0, 1, 1, 1, 1, 1]
    assert np.isposinf(D[0, 6:]).all()
    D, ids = ds.ground_truth(x, np.array([[1, 0]], np.float32), 8, "ip")
    assert ids[0].tolist() == [0, 3, 1, 2, 5, 4, -1, -1]
    assert np.isneginf(D[0, 6:]).all()
    xc = x.copy()
    xc[1] = [3, 0]
    D, ids = ds.ground_truth(xc, np.array([[2, 0]], np.float32), 4, "cos")
    assert ids[0].tolist() == [0, 1, 3, 2] and D[0, :3].tolist() == [1.0, 1.0, 1.0]
    D, ids = ds.ground_truth(np.zeros((0, 2)), q, 2)
    assert ids.tolist() == [[-1, -1]]


def test_ground_truth_errors() -> None:
    x = np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match="zero vector"):
        ds.ground_truth(np.vstack([x, np.zeros((1, 3))]), x, 2, "cos")
    with pytest.raises(ValueError, match="zero vector test"):
        ds.ground_truth(x, np.zeros((1, 3)), 2, "cos")
    with pytest.raises(ValueError, match="dimension"):
        ds.ground_truth(x, np.ones((2, 4)), 2)
    with pytest.raises(ValueError, match="metric"):
        ds.ground_truth(x, x, 2, "hamming")
    with pytest.raises(ValueError):
        ds.ground_truth(x, x, 0)
    with pytest.raises(ValueError):
        ds.ground_truth(x, x, 1, batch=0)
    with pytest.raises(ValueError, match="NaN"):
        ds.ground_truth(np.full((2, 3), np.nan), x, 1)
    _, ids = ds.ground_truth(x, x, 2, "euclidean")  # alias accepted
    assert ids.tolist() == [[0, 1]] * 5


# --------------------------------------------------------------------------
# synthetic
# --------------------------------------------------------------------------


def test_synthetic_default_is_deterministic_and_exact() -> None:
    t0 = time.perf_counter()
    a = ds.synthetic()
    elapsed = time.perf_counter() - t0
    b = ds.synthetic()
    assert elapsed < 3.0  # ~0.1-0.3 s normally; generous for slow CI machines
    assert a.name == "synthetic-20000-64-l2" and a.metric == "l2"
    assert (a.n, a.d, a.nq) == (20000, 64, 200)
    assert a.train.dtype == np.float32 and a.distance == "euclidean"
    for field in ("train", "test", "neighbors", "distances"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    D, ids = ds.ground_truth(a.train, a.test, 10, "l2")
    np.testing.assert_array_equal(a.neighbors, ids)
    np.testing.assert_array_equal(a.distances, D)
    assert not np.array_equal(ds.synthetic(n=500, seed=1).train, ds.synthetic(n=500).train)


@pytest.mark.parametrize("metric", ["ip", "cos"])
def test_synthetic_metrics(metric: str) -> None:
    s = ds.synthetic(n=2000, d=16, nq=20, k=5, metric=metric, clusters=8, seed=3)
    assert s.name == f"synthetic-2000-16-{metric}" and s.neighbors is not None
    _, ids = ds.ground_truth(s.train, s.test, 5, metric)
    np.testing.assert_array_equal(s.neighbors, ids)
    assert ds.recall_at_k(s.neighbors, ids, 5) == 1.0
    with pytest.raises(ValueError):
        ds.synthetic(n=0)


# --------------------------------------------------------------------------
# download (local HTTP server only)
# --------------------------------------------------------------------------

GOOD = "glove-25-angular"  # served as a small valid HDF5 file
NOT_HDF5 = "sift-128-euclidean"  # served as a text body
MISSING = "mnist-784-euclidean"  # not served: 404
SHORT = "fashion-mnist-784-euclidean"  # body shorter than Content-Length


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.counts[self.path] += 1  # type: ignore[attr-defined]
        if self.path == f"/{SHORT}.hdf5":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(ds.HDF5_SIGNATURE + b"short")
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Server:
    url: str
    counts: collections.Counter[str]
    root: pathlib.Path


@pytest.fixture
def server(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("www")
    _dense_file(root / f"{GOOD}.hdf5")
    (root / f"{NOT_HDF5}.hdf5").write_bytes(b"<html>not a data set</html>" * 10)
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.counts = collections.Counter()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    for var in ("ANNX_DATA_DIR", "ANNX_DATASETS_URL"):
        monkeypatch.delenv(var, raising=False)
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_port}", httpd.counts, root)  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _cache_files(cache: pathlib.Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_download_and_cache(server: Server, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "cache"
    seen: list[tuple[int, int | None]] = []
    path = ds.download(
        GOOD,
        cache_dir=cache,
        base_url=server.url + "/",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert path == cache / f"{GOOD}.hdf5"
    assert _cache_files(cache) == [f"{GOOD}.hdf5"]
    size = path.stat().st_size
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    assert ds.load_hdf5(path).metric == "cos"
    assert server.counts[f"/{GOOD}.hdf5"] == 1
    assert ds.download(GOOD, cache_dir=cache, base_url=server.url) == path
    assert server.counts[f"/{GOOD}.hdf5"] == 1  # cached: no second request
    ds.download(GOOD, cache_dir=cache, base_url=server.url, force=True)
    assert server.counts[f"/{GOOD}.hdf5"] == 2
    # a corrupt cached file is fetched again
    path.write_bytes(b"garbage")
    ds.download(GOOD, cache_dir=cache, base_url=server.url)
    assert server.counts[f"/{GOOD}.hdf5"] == 3
    assert ds.load(GOOD, cache_dir=cache, base_url=server.url).n == 30
    assert _cache_files(cache) == [f"{GOOD}.hdf5"]


def test_download_env_defaults(
    server: Server, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANNX_DATA_DIR", str(tmp_path / "envcache"))
    monkeypatch.setenv("ANNX_DATASETS_URL", server.url)
    assert ds.download(GOOD) == tmp_path / "envcache" / f"{GOOD}.hdf5"
    assert server.counts[f"/{GOOD}.hdf5"] == 1


@pytest.mark.parametrize(
    ("name", "exc", "pattern"),
    [
        (MISSING, OSError, r"HTTP 404"),
        (NOT_HDF5, ValueError, r"did not return an HDF5 file"),
        (SHORT, OSError, r"got 13 of 1000 bytes"),
    ],
)
def test_download_failures_leave_nothing(
    server: Server, tmp_path: pathlib.Path, name: str, exc: type[Exception], pattern: str
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(exc, match=pattern):
        ds.download(name, cache_dir=cache, base_url=server.url)
    assert _cache_files(cache) == []
    assert server.counts[f"/{name}.hdf5"] == 1


def test_download_unreachable_and_unknown(tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"did you mean .*glove-100-angular"):
        ds.download("glove-100-angualr", cache_dir=cache)
    with pytest.raises(ValueError, match="unknown"):
        ds.download("../../etc/passwd", cache_dir=cache)
    assert not cache.exists()
    # port 9 on 127.0.0.1: nothing listens there (connection refused)
    with pytest.raises(OSError, match="could not download"):
        ds.download(GOOD, cache_dir=cache, base_url="http://127.0.0.1:9", timeout=5)
    assert _cache_files(cache) == []


def test_dataset_names() -> None:
    names = ds.ANN_BENCHMARKS_DATASETS
    assert len(set(names)) == len(names)
    for must in (
        "deep-image-96-angular",
        "glove-200-angular",
        "kosarak-jaccard",
        "movielens10m-jaccard",
        "lastfm-64-dot",
        "coco-t2i-512-angular",
        "sift-128-euclidean",
        "nytimes-256-angular",
        "gist-960-euclidean",
    ):
        assert must in names


# --------------------------------------------------------------------------
# real benchmark data (only where the shared data folder exists)
# --------------------------------------------------------------------------


def _shared_file(folder: pathlib.Path, name: str) -> pathlib.Path:
    path = folder / name
    if not path.is_file():
        pytest.skip(f"real benchmark data not available ({path} not found)")
    pytest.importorskip("h5py")
    return path


def test_real_glove(shared_data: pathlib.Path) -> None:
    data = ds.load(_shared_file(shared_data, "glove6b-50000-50-angular.hdf5"))
    assert (data.n, data.d, data.nq) == (50000, 50, 1000)
    assert data.metric == "cos" and data.distance == "angular"
    assert data.neighbors is not None and data.neighbors.shape == (1000, 100)
    assert data.distances is not None and data.distances.dtype == np.float32
    assert "train_glove_ids" in data.extra and "train_words" not in data.extra
    assert ds.recall_at_k(data.neighbors, data.neighbors, 10) == 1.0
    D, ids = ds.ground_truth(data.train, data.test[:20], 10, "cos")
    np.testing.assert_array_equal(ids, data.neighbors[:20, :10])
    np.testing.assert_allclose(1.0 - D, data.distances[:20, :10], atol=1e-5)


def test_real_ood_has_learn(shared_data: pathlib.Path) -> None:
    data = ds.load_hdf5(_shared_file(shared_data, "minilm-ood-10000-384-angular.hdf5"))
    assert data.extra["learn"].shape == (5000, 384)
    assert "test_texts" not in data.extra
