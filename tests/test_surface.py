"""One surface for every index class: Index, BinaryIndex, MultiVectorIndex (issue 21)."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import annx
from annx._surface import IndexSurface, register_kind, registered_kinds

pytestmark = pytest.mark.filterwarnings("ignore:training .* fewer than 39:RuntimeWarning")
D = 16


def floats(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D), dtype=np.float32)


def codes(n: int, seed: int = 0, nbits: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, nbits // 8), dtype=np.uint8)


def docs(n: int, seed: int = 0) -> list[np.ndarray]:
    g = np.random.default_rng(seed)
    return [g.standard_normal((int(g.integers(1, 5)), 8), dtype=np.float32) for _ in range(n)]


# (factory, data maker, queries maker) per index kind
KINDS: dict[str, tuple[Callable[[], Any], Callable[[int, int], Any]]] = {
    "flat": (lambda: annx.index_factory(D, "Flat"), floats),
    "hnsw": (lambda: annx.index_factory(D, "HNSW8"), floats),
    "ivf": (lambda: annx.index_factory(D, "IVF4,Flat"), floats),
    "sq8": (lambda: annx.index_factory(D, "Flat,SQ8", annx.METRIC_INNER_PRODUCT), floats),
    "binary": (lambda: annx.index_factory(64, "BIN", "hamming"), codes),
    "binary-ivf": (lambda: annx.index_factory(64, "IVF4,BIN", "hamming"), codes),
    "multivector": (
        lambda: annx.MultiVectorIndex(8, "Flat", annx.FDE(k_sim=2, d_proj=4, reps=2)),
        docs,
    ),
}


def make(kind: str, n: int = 60) -> tuple[Any, Any]:
    factory, data = KINDS[kind]
    index = factory()
    x = data(n, 1)
    if not index.is_trained:
        index.train(x)
    return index, x


def first(x: Any, n: int) -> Any:
    return x[:n]


def search(index: Any, q: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    return index.search(q, k)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_common_surface(kind: str, tmp_path: Any) -> None:
    index, x = make(kind)
    assert isinstance(index, IndexSurface)
    assert isinstance(index.d, int) and index.d > 0
    assert isinstance(index.metric, str) and isinstance(index.spec, str)
    assert index.is_trained
    ids = index.add(x)
    assert ids.dtype == np.int64 and ids.tolist() == list(range(60))
    assert index.ntotal == len(index) == 60
    assert isinstance(index.bytes_per_vector, float) and index.bytes_per_vector > 0
    assert isinstance(index.memory_usage(), int) and index.memory_usage() > 0
    r = repr(index)
    assert r.startswith(f"annx.{type(index).__name__}(") and "ntotal=60" in r
    assert index.add(first(x, 3), ids=[100, 101, 102]).tolist() == [100, 101, 102]
    assert index.remove([100, 101]) == 2 and len(index) == 61
    want = search(index, first(x, 5), 3)
    for other in (
        annx.load(_saved(index, tmp_path / "a.annx")),
        annx.load(tmp_path / "a.annx", mmap=True),
        annx.load(tmp_path / "a.annx", verify=False),
        annx.from_bytes(index.to_bytes()),
        annx.from_bytes(bytearray(index.to_bytes())),
        pickle.loads(pickle.dumps(index)),
        type(index).load(tmp_path / "a.annx") if hasattr(type(index), "load") else index,
    ):
        assert type(other) is type(index)
        assert (other.d, other.metric, other.spec, len(other)) == (
            index.d,
            index.metric,
            index.spec,
            len(index),
        )
        got = search(other, first(x, 5), 3)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])
    info = annx.read_info(tmp_path / "a.annx")
    assert info["kind"] == {"binary": "binary", "binary-ivf": "binary"}.get(
        kind, "multivector" if kind == "multivector" else "index"
    )
    assert info["ntotal"] == 61 and isinstance(info["d"], int) and info["d"] == index.d
    assert kind == "multivector" or info["metric"] == index.metric
    # reset empties, keeps training, and ids continue
    index.reset()
    assert len(index) == 0 and index.is_trained
    again = index.add(first(x, 4))
    assert again.tolist() == list(range(103, 107)) and len(index) == 4
    assert search(index, first(x, 1), 1)[1][0, 0] == 103


def _saved(index: Any, path: Any) -> Any:
    index.save(path)
    return path


def test_load_of_a_binary_file_returns_binary_index(tmp_path: Any) -> None:
    """The bug of issue 21: annx.load returned a float Index with metric 'ip'."""
    b = annx.index_factory(64, "HNSW8,BIN", "hamming")
    c = codes(200)
    b.add(c)
    b.save(tmp_path / "b.annx")
    for loaded in (annx.load(tmp_path / "b.annx"), annx.load(tmp_path / "b.annx", mmap=True)):
        assert isinstance(loaded, annx.BinaryIndex) and loaded.metric == "hamming"
        D, I = loaded.search(c[:3], 1)
        assert I[:, 0].tolist() == [0, 1, 2] and (D[:, 0] == 0).all()
    # a float index with a BIN codec (no kind) stays a float Index, and BinaryIndex.load
    # still opens files written before the kind existed
    f = annx.index_factory(64, "Flat,BIN", "ip")
    f.add(np.where(np.unpackbits(c, axis=1) > 0, 1.0, -1.0).astype(np.float32))
    f.save(tmp_path / "f.annx")
    assert type(annx.load(tmp_path / "f.annx")) is annx.Index
    old = annx.BinaryIndex.load(tmp_path / "f.annx")
    assert isinstance(old, annx.BinaryIndex) and old.search(c[:1], 1)[1][0, 0] == 0
    with pytest.raises(annx.FormatError, match="not a BinaryIndex|not a binary"):
        annx.BinaryIndex.load(_saved(annx.MultiVectorIndex(8, "Flat"), tmp_path / "m.annx"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_progress_on_add_and_train(kind: str) -> None:
    factory, data = KINDS[kind]
    index = factory()
    x = data(3000, 2)
    calls: list[tuple[int, int]] = []
    index.train(x, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1]
    calls.clear()
    ids = index.add(x, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (3000, 3000) and len(ids) == 3000
    # a cancel removes what the call added and raises CancelledError
    before = len(index)
    with pytest.raises(annx.CancelledError):
        index.add(data(3000, 3), progress=lambda done, total: done < 1500)
    assert len(index) == before


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bad_calls_change_nothing(kind: str) -> None:
    index, x = make(kind)
    index.add(x)
    before = (len(index), index.ids().tolist())
    with pytest.raises(annx.InvalidArgumentError):
        index.add(first(x, 2), ids=[1, 500])  # 1 is present
    with pytest.raises(annx.InvalidArgumentError):
        index.remove([1, 10_000])
    with pytest.raises(annx.InvalidArgumentError, match="progress"):
        index.add(first(x, 2), progress="yes")
    assert (len(index), index.ids().tolist()) == before


def test_binary_range_search_matches_brute_force() -> None:
    b = annx.index_factory(64, "BIN", "hamming")
    c = codes(500, 4)
    b.add(c)
    q = codes(7, 5)
    ham = np.unpackbits(q[:, None, :] ^ c[None, :, :], axis=2).sum(axis=2)
    for radius in (0, 20, 28, 33, 65):
        lims, Dr, Ir = b.range_search(q, radius)
        assert Dr.dtype == np.int32 and Ir.dtype == np.int64 and len(lims) == 8
        for i in range(7):
            got = dict(
                zip(
                    Ir[lims[i] : lims[i + 1]].tolist(),
                    Dr[lims[i] : lims[i + 1]].tolist(),
                    strict=False,
                )
            )
            want = {int(j): int(ham[i, j]) for j in np.flatnonzero(ham[i] < radius)}
            assert got == want
            assert (np.diff(Dr[lims[i] : lims[i + 1]]) >= 0).all()
    for bad in (-1, 66, 2.5, True):
        with pytest.raises(annx.InvalidArgumentError, match="radius"):
            b.range_search(q, bad)


def test_multivector_has_no_range_search() -> None:
    mv = annx.MultiVectorIndex(8, "Flat")
    with pytest.raises(annx.UnsupportedError, match="range_search"):
        mv.range_search(docs(1), 1.0)


def test_deprecated_aliases_warn() -> None:
    mv = annx.MultiVectorIndex(8, "Flat")
    mv.add(docs(5))
    with pytest.warns(DeprecationWarning, match="MultiVectorIndex.d"):
        assert mv.dim == mv.d == 8
    with pytest.warns(DeprecationWarning, match="memory_usage"):
        assert mv.memory_bytes() == mv.memory_usage()
    with pytest.warns(DeprecationWarning, match="bytes_per_vector"):
        assert mv.bytes_per_doc()["total"] == pytest.approx(mv.bytes_per_vector)


def test_concurrent_adds_return_their_ids() -> None:
    index = annx.index_factory(D, "Flat")
    got: list[np.ndarray] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        for _ in range(20):
            ids = index.add(floats(7, seed))
            with lock:
                got.append(ids)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_ids = np.sort(np.concatenate(got))
    np.testing.assert_array_equal(all_ids, np.sort(index.ids()))
    assert len(np.unique(all_ids)) == 4 * 20 * 7


# ---------------------------------------------------------------------- faiss idioms
def test_faiss_metric_constants() -> None:
    assert (annx.METRIC_L2, annx.METRIC_INNER_PRODUCT) == (1, 0)
    assert annx.index_factory(8, "Flat", annx.METRIC_INNER_PRODUCT).metric == "ip"
    assert annx.index_factory(8, "HNSW16", annx.METRIC_L2).metric == "l2"
    assert annx.index_factory(8, "Flat", np.int64(1)).metric == "l2"
    assert annx.KMeans(8, 2, metric=annx.METRIC_INNER_PRODUCT).metric == "ip"
    assert annx.LeanVec(4, metric=annx.METRIC_L2).metric == "l2"
    for bad in (2, -1, True, 1.0, None):
        with pytest.raises(annx.InvalidArgumentError, match="metric"):
            annx.index_factory(8, "Flat", bad)


def test_faiss_attribute_idioms_name_the_annx_way() -> None:
    index = annx.index_factory(D, "IVF4,Flat")
    with pytest.raises(annx.FaissIdiomError, match=r"search\(q, k, nprobe=16\)"):
        index.nprobe = 8
    with pytest.raises(AttributeError, match="nprobe="):
        print(index.nprobe)
    h = annx.index_factory(D, "HNSW16")
    with pytest.raises(annx.UnsupportedError, match="ef_search=64"):
        h.hnsw.efSearch = 64
    assert not hasattr(h, "hnsw") and not hasattr(h, "no_such_thing")
    with pytest.raises(AttributeError, match="no_such_thing"):
        h.no_such_thing  # noqa: B018
    b = annx.index_factory(64, "BIN", "hamming")
    with pytest.raises(annx.FaissIdiomError):
        b.nprobe = 3
    mv = annx.MultiVectorIndex(8, "Flat")
    with pytest.raises(annx.FaissIdiomError):
        mv.efSearch = 3


def test_add_with_ids_and_remove_ids() -> None:
    index = annx.index_factory(D, "Flat")
    assert index.add_with_ids(floats(5), np.arange(10, 15)).tolist() == list(range(10, 15))
    assert index.remove_ids(np.array([10, 11, 99])) == 2  # absent ids are skipped, as faiss
    assert index.remove_ids([]) == 0 and sorted(index.ids().tolist()) == [12, 13, 14]
    with pytest.raises(annx.InvalidArgumentError, match="IDSelector"):
        index.remove_ids(object())


def test_kmeans_assign_before_train_is_not_trained_error() -> None:
    with pytest.raises(annx.NotTrainedError):
        annx.KMeans(4, 2).assign(floats(3)[:, :4])


# ---------------------------------------------------------------------- registry
def test_unknown_kind_is_a_format_error(tmp_path: Any) -> None:
    index = annx.index_factory(D, "Flat")
    index.add(floats(3))
    index._impl.file_kind = "from_the_future"
    index.save(tmp_path / "x.annx")
    with pytest.raises(annx.FormatError, match="from_the_future"):
        annx.load(tmp_path / "x.annx")
    with pytest.raises(annx.FormatError, match="from_the_future"):
        annx.from_bytes(index.to_bytes())
    assert annx.read_info(tmp_path / "x.annx")["kind"] == "from_the_future"


def test_register_kind_routes_load(tmp_path: Any) -> None:
    class Wrapped(annx.Index):
        __slots__ = ()

    register_kind("test_wrapped", Wrapped)
    try:
        index = annx.index_factory(D, "Flat")
        index.add(floats(3))
        index._impl.file_kind = "test_wrapped"
        assert type(annx.from_bytes(index.to_bytes())) is Wrapped
        assert type(annx.load(_saved(index, tmp_path / "w.annx"))) is Wrapped
        register_kind("test_wrapped", Wrapped)  # the same class again is fine
        with pytest.raises(annx.AnnxError, match="already registered"):
            register_kind("test_wrapped", annx.Index)
        with pytest.raises(annx.InvalidArgumentError, match="_open_file"):
            register_kind("other", object)
    finally:
        from annx import _surface

        _surface._KINDS.pop("test_wrapped", None)
    assert set(registered_kinds()) >= {"index", "binary", "multivector"}


def test_load_and_from_bytes_bad_arguments(tmp_path: Any) -> None:
    with pytest.raises(annx.InvalidArgumentError, match="path"):
        annx.load(12)
    with pytest.raises(annx.InvalidArgumentError, match="mmap"):
        annx.load(tmp_path / "x", mmap="yes")
    with pytest.raises(annx.InvalidArgumentError, match="from_bytes"):
        annx.from_bytes("text")
    with pytest.raises(annx.FormatError):
        annx.from_bytes(b"not an annx file at all")
    (tmp_path / "junk").write_bytes(b"\0" * 100)
    with pytest.raises(annx.FormatError):
        annx.load(tmp_path / "junk")
    with pytest.raises(annx.FormatError):
        annx.read_info(tmp_path / "junk")


# ------------------------------------------------------------------ hypothesis

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 9), st.booleans()),
        st.tuples(st.just("remove"), st.integers(0, 5), st.booleans()),
        st.tuples(st.just("reset"), st.just(0), st.just(False)),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(ops=_OPS, kind=st.sampled_from(["flat", "binary", "multivector"]))
def test_ids_follow_a_model(ops: list[tuple[str, int, bool]], kind: str) -> None:
    """add returns the ids a dict model predicts; remove/reset/remove_ids agree with it."""
    factory, data = KINDS[kind]
    index = factory()
    live: set[int] = set()
    next_id = 0
    seed = 0
    for op, n, flag in ops:
        seed += 1
        if op == "add":
            x = data(n, seed)
            if flag:  # explicit ids, above everything used so far
                ids = np.arange(next_id + 5, next_id + 5 + n, dtype=np.int64)[::-1].copy()
                got = index.add(x, ids=ids)
                np.testing.assert_array_equal(got, ids)
            else:
                got = index.add(x)
                assert got.tolist() == list(range(next_id, next_id + n))
            live |= set(got.tolist())
            if n:
                next_id = max(next_id, int(got.max()) + 1)
        elif op == "remove":
            pick = sorted(live)[:n]
            if flag:  # faiss's remove_ids skips absent ids
                assert index.remove_ids(np.array(pick + [10**9], np.int64)) == len(pick)
            elif pick:
                assert index.remove(pick) == len(pick)
            live -= set(pick)
        else:
            index.reset()
            live.clear()
        assert len(index) == len(live) and set(index.ids().tolist()) == live


@settings(max_examples=30, deadline=None)
@given(
    nbytes=st.sampled_from([1, 2, 8, 16]),
    n=st.integers(1, 150),
    nq=st.integers(1, 4),
    radius=st.integers(0, 130),
    seed=st.integers(0, 2**16),
)
def test_binary_range_search_hypothesis(
    nbytes: int, n: int, nq: int, radius: int, seed: int
) -> None:
    nbits = 8 * nbytes
    radius = min(radius, nbits + 1)
    g = np.random.default_rng(seed)
    c = g.integers(0, 256, (n, nbytes), dtype=np.uint8)
    c[n // 2 :] = c[: n - n // 2]  # duplicates
    q = np.concatenate([c[:1], g.integers(0, 256, (nq, nbytes), dtype=np.uint8)])
    b = annx.index_factory(nbits, "BIN", "hamming")
    b.add(c)
    lims, Dr, Ir = b.range_search(q, radius)
    ham = np.unpackbits(q[:, None, :] ^ c[None, :, :], axis=2).sum(axis=2)
    for i in range(len(q)):
        got = sorted(
            zip(
                Dr[lims[i] : lims[i + 1]].tolist(), Ir[lims[i] : lims[i + 1]].tolist(), strict=False
            )
        )
        want = sorted((int(ham[i, j]), j) for j in np.flatnonzero(ham[i] < radius))
        assert got == want
