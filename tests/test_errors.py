"""Bad input gives a clear ValueError subclass and leaves the index unchanged.

Every rejected call must raise :class:`annx.InvalidArgumentError` (a ``ValueError``)
whose message names what was received and what was expected, and the index must be
exactly as before (same ids, same search results). Legitimately short results (k larger
than the index, empty or all-removed indexes) are padded, never raised.
"""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from conftest import FLAT_SPECS, METRICS, make_data, pad_value

import annx

D = 6


# ---------------------------------------------------------------------------- helpers
def snapshot(index: annx.Index) -> tuple[Any, ...]:
    q = make_data(4, index.d, seed=999)
    if not index.is_trained:
        return (index.ntotal, index.next_id, False)
    Dq, Iq = index.search(q, 5)
    return (
        index.ntotal,
        index.next_id,
        tuple(np.sort(index.ids()).tolist()),
        Dq.tobytes(),
        Iq.tobytes(),
    )


def expect_invalid(
    index: annx.Index | None, fn: Callable[[], Any], *patterns: str
) -> annx.InvalidArgumentError:
    """fn() raises InvalidArgumentError matching every pattern; index unchanged."""
    before = snapshot(index) if index is not None else None
    with pytest.raises(annx.InvalidArgumentError) as info:
        fn()
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, annx.AnnxError)
    msg = str(err)
    for p in patterns:
        assert re.search(p, msg, re.IGNORECASE), f"{p!r} not in message {msg!r}"
    if index is not None:
        assert snapshot(index) == before, f"index changed by a rejected call ({msg})"
    return err


@pytest.fixture(params=[(s, m) for s in FLAT_SPECS for m in METRICS], ids=lambda p: "-".join(p))
def index(request: pytest.FixtureRequest) -> Iterator[annx.Index]:
    spec, metric = request.param
    x = make_data(50, D, seed=1)
    ix = annx.index_factory(D, spec, metric)
    ix.train(x)
    ix.add(x[:30])
    ix.add(x[30:], ids=np.arange(20) + 1000)
    ix.remove([3, 1005])
    yield ix


@pytest.fixture
def flat() -> annx.Index:
    ix = annx.index_factory(D, "Flat", "cos")
    ix.add(make_data(20, D, seed=2))
    return ix


Q = make_data(3, D, seed=3)


# ----------------------------------------------------------------------- hierarchy
def test_exception_hierarchy() -> None:
    assert issubclass(annx.AnnxError, Exception)
    assert issubclass(annx.InvalidArgumentError, annx.AnnxError)
    assert issubclass(annx.InvalidArgumentError, ValueError)
    assert issubclass(annx.FormatError, annx.AnnxError)
    assert issubclass(annx.NotTrainedError, annx.AnnxError)
    assert issubclass(annx.UnsupportedError, annx.AnnxError)
    for name in ("AnnxError", "InvalidArgumentError", "FormatError", "NotTrainedError"):
        assert name in annx.__all__
    assert annx.FormatError is not annx.InvalidArgumentError


# ------------------------------------------------------------------- shapes, dtypes
def test_wrong_dimension(index: annx.Index) -> None:
    x = make_data(3, D + 1, seed=4)
    expect_invalid(index, lambda: index.add(x), r"\b7\b", r"\b6\b")
    expect_invalid(index, lambda: index.search(x, 2), r"\b7\b", r"\b6\b")
    expect_invalid(index, lambda: index.range_search(x, 1.0), r"\b7\b", r"\b6\b")
    expect_invalid(index, lambda: index.train(x), r"\b7\b", r"\b6\b")
    expect_invalid(index, lambda: index.add(np.zeros((0, D - 1), np.float32)), "dimension")


def test_wrong_ndim(index: annx.Index) -> None:
    v = make_data(1, D, seed=5)[0]
    expect_invalid(index, lambda: index.add(v), "2-D", "1-D", "reshape")
    expect_invalid(index, lambda: index.search(v, 1), "2-D", "1-D")
    expect_invalid(index, lambda: index.add(np.ones((2, 2, D), np.float32)), "2-D", "3-D")
    expect_invalid(index, lambda: index.search(np.ones((1, 1, D), np.float32), 1), "3-D")
    expect_invalid(index, lambda: index.search(np.float32(1.0), 1), "0-D")


@pytest.mark.parametrize(
    "dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64, object, "U3"]
)
def test_wrong_dtype(index: annx.Index, dtype: Any) -> None:
    x = np.ones((2, D)).astype(dtype)
    name = np.dtype(dtype).name if dtype != "U3" else "<U3"
    expect_invalid(index, lambda: index.add(x), re.escape(name), "float32")
    expect_invalid(index, lambda: index.search(x, 1), re.escape(name), "float32")
    expect_invalid(index, lambda: index.train(x), re.escape(name))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_non_finite(index: annx.Index, bad: float, dtype: Any) -> None:
    x = make_data(5, D, seed=6).astype(dtype)
    x[3, 2] = bad
    word = {"nan": "nan", "inf": r"(?<!-)inf", "-inf": "-inf"}[str(bad)]
    pats = (word, r"row 3", r"column 2")
    expect_invalid(index, lambda: index.add(x), *pats)
    expect_invalid(index, lambda: index.add(x, ids=np.arange(5) + 5000), *pats)
    expect_invalid(index, lambda: index.search(x, 2), *pats)
    expect_invalid(index, lambda: index.range_search(x, 1.0), *pats)
    expect_invalid(index, lambda: index.train(x), *pats)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_float64_out_of_float32_range(flat: annx.Index) -> None:
    x = make_data(2, D, seed=7).astype(np.float64)
    x[1, 4] = 1e300
    expect_invalid(flat, lambda: flat.add(x), "row 1", "column 4")


def test_zero_vector_cosine() -> None:
    ix = annx.index_factory(D, "Flat", "cos")
    ix.add(make_data(5, D, seed=8))
    x = make_data(4, D, seed=9)
    x[2] = 0.0
    expect_invalid(ix, lambda: ix.add(x), "row 2", "zero")
    expect_invalid(ix, lambda: ix.search(x, 1), "row 2", "zero")
    expect_invalid(ix, lambda: ix.range_search(x, 0.5), "row 2", "zero")
    # zero vectors are fine for l2 and ip
    for metric in ("l2", "ip"):
        other = annx.index_factory(D, "Flat", metric)
        other.add(x)
        other.search(x, 2)


@pytest.mark.parametrize("spec", ["Flat,F16", "Flat,BF16"])
@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_values_beyond_codec_range(spec: str, metric: str) -> None:
    """A finite float32 beyond the 16-bit format's range must not be stored as inf."""
    big = 1e5 if spec == "Flat,F16" else 3.4e38
    ix = annx.index_factory(2, spec, metric)
    x = np.array([[big, 1.0], [1.0, 1.0]], np.float32)
    try:
        ix.add(x)
    except annx.InvalidArgumentError as err:  # rejecting is fine ...
        assert ix.ntotal == 0
        assert "row 0" in str(err)
        return
    # ... and so is saturating, but never inf
    assert np.isfinite(ix.reconstruct([0, 1])).all(), ix.reconstruct([0, 1])
    Dq, _ = ix.search(np.array([[1.0, 1.0]], np.float32), 2)
    assert np.isfinite(Dq).all(), Dq


# ------------------------------------------------------------------------------- k
@pytest.mark.parametrize(
    ("k", "pats"),
    [
        (0, [r"\b0\b", ">= 1|positive"]),
        (-1, [r"-1", ">= 1|positive"]),
        (1.5, [r"1\.5", "integer"]),
        (True, ["True", "integer"]),
        (None, ["None", "integer"]),
        ("3", ["'3'", "integer"]),
        (np.float64(2.0), ["2", "integer"]),
    ],
)
def test_bad_k(index: annx.Index, k: Any, pats: list[str]) -> None:
    expect_invalid(index, lambda: index.search(Q, k), r"\bk\b", *pats)


def test_numpy_integer_k(flat: annx.Index) -> None:
    D1, I1 = flat.search(Q, np.int64(4))
    D2, I2 = flat.search(Q, 4)
    np.testing.assert_array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)


def test_absurd_k(flat: annx.Index) -> None:
    """A k whose result arrays cannot exist is a clear InvalidArgumentError."""
    expect_invalid(flat, lambda: flat.search(Q, 2**62), r"\bk\b")


# ----------------------------------------------------------------------------- ids
def test_bad_ids_in_add(index: annx.Index) -> None:
    x = make_data(3, D, seed=10)
    expect_invalid(index, lambda: index.add(x, ids=[1, 2]), "length 2", r"\b3\b")
    expect_invalid(index, lambda: index.add(x, ids=[1, 2, 3, 4]), "length 4", r"\b3\b")
    expect_invalid(index, lambda: index.add(x, ids=[7000, -4, 7001]), "-4", ">= 0")
    expect_invalid(index, lambda: index.add(x, ids=[7000, 7001, 7000]), "duplicate", "7000")
    expect_invalid(index, lambda: index.add(x, ids=[7000, 1001, 7002]), "1001", "already")
    expect_invalid(
        index, lambda: index.add(x, ids=np.array([7000.0, 7001.0, 7002.0])), "float64", "int"
    )
    expect_invalid(index, lambda: index.add(x, ids=np.array([True, False, True])), "bool")
    expect_invalid(index, lambda: index.add(x, ids=np.arange(3).reshape(3, 1)), "1-D")
    expect_invalid(index, lambda: index.add(x, ids=np.array([2**63, 1, 2], np.uint64)), "int64")


def test_removed_id_can_be_reused_but_present_cannot(index: annx.Index) -> None:
    x = make_data(1, D, seed=11)
    expect_invalid(index, lambda: index.add(x, ids=[0]), r"\b0\b", "already")
    index.add(x, ids=[3])  # 3 was removed in the fixture
    assert 3 in index


def test_id_space_exhaustion() -> None:
    """next_id must never wrap around to negative ids."""
    ix = annx.index_factory(2, "Flat")
    top = np.iinfo(np.int64).max
    ix.add(np.ones((1, 2), np.float32), ids=[top - 1])
    x = np.ones((2, 2), np.float32)
    try:
        ix.add(x)  # would need ids top and top + 1
    except annx.InvalidArgumentError:
        pass
    ids = ix.ids()
    assert (ids >= 0).all(), f"negative ids assigned: {ids}"
    assert len(set(ids.tolist())) == len(ids), f"repeated ids: {ids}"
    ix2 = annx.index_factory(2, "Flat")
    try:
        ix2.add(np.ones((1, 2), np.float32), ids=[top])
        ix2.add(np.ones((1, 2), np.float32))
    except annx.InvalidArgumentError:
        pass
    assert (ix2.ids() >= 0).all(), f"negative ids assigned: {ix2.ids()}"
    assert ix2.next_id >= 0, f"next_id wrapped to {ix2.next_id}"


def test_bad_remove(index: annx.Index) -> None:
    expect_invalid(index, lambda: index.remove([0, 2, 777]), "777", "unknown|not in")
    expect_invalid(index, lambda: index.remove([0, 3]), r"\b3\b", "unknown|not in")
    expect_invalid(index, lambda: index.remove([2, 0, 2]), "duplicate", r"\b2\b")
    expect_invalid(index, lambda: index.remove([-1]), "-1")
    expect_invalid(index, lambda: index.remove(np.array([1.0])), "float64")
    expect_invalid(index, lambda: index.remove([[1], [2]]), "1-D")
    assert index.remove([]) == 0


def test_bad_reconstruct(index: annx.Index) -> None:
    expect_invalid(index, lambda: index.reconstruct([0, 999]), "999")
    expect_invalid(index, lambda: index.reconstruct([3]), r"\b3\b")  # removed
    expect_invalid(index, lambda: index.reconstruct(np.array([0.0])), "float64")


# ------------------------------------------------------------------- specs, metrics
@pytest.mark.parametrize(
    ("spec", "token"),
    [
        ("", "''"),
        ("Flt", "Flt"),
        ("Flat,F17", "F17"),
        ("Flat,F16,X", "'X'"),
        ("LeanVec64,Flat", "LeanVec64"),
        ("IVF1024,Flat,F16", "F16"),
        ("HNSWx", "HNSWx"),
        ("Flat,", "''"),
        ("Flat,f16", "f16"),
        ("flat", "flat"),
        (",Flat", ""),
    ],
)
def test_bad_spec(spec: str, token: str) -> None:
    expect_invalid(None, lambda: annx.index_factory(8, spec), re.escape(token))


@pytest.mark.parametrize("metric", ["", "jaccard", "l1", "Cos", "l2 "])
def test_unknown_metric(metric: str) -> None:
    expect_invalid(
        None, lambda: annx.index_factory(8, "Flat", metric), re.escape(repr(metric)), "l2"
    )


def test_hamming_needs_a_binary_spec() -> None:
    # "hamming" builds an annx.BinaryIndex over packed codes (tests/test_binary_index.py)
    expect_invalid(None, lambda: annx.index_factory(8, "Flat", "hamming"), "binary spec")


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("euclidean", "l2"), ("L2", "l2"), ("dot", "ip"), ("IP", "ip"), ("angular", "cos")],
)
def test_metric_aliases(alias: str, canonical: str) -> None:
    assert annx.index_factory(8, "Flat", alias).metric == canonical


@pytest.mark.parametrize("d", [0, -3, 2.0, True, "8", None])
def test_bad_dimension(d: Any) -> None:
    expect_invalid(None, lambda: annx.index_factory(d, "Flat"), r"\bd\b")


def test_non_string_spec_and_metric() -> None:
    expect_invalid(None, lambda: annx.index_factory(4, None), "spec")
    expect_invalid(None, lambda: annx.index_factory(4, "Flat", None), "metric")


# ------------------------------------------------------------------ search keywords
@pytest.mark.parametrize("name", ["ef_search", "nprobe", "rerank"])
def test_params_not_applying_to_flat(index: annx.Index, name: str) -> None:
    expect_invalid(index, lambda: index.search(Q, 2, **{name: 8}), name, "Flat")


def test_unknown_search_keyword(index: annx.Index) -> None:
    expect_invalid(index, lambda: index.search(Q, 2, efsearch=8), "efsearch", "unknown")
    expect_invalid(index, lambda: index.search(Q, 2, radius=3.0), "radius", "unknown")


@pytest.mark.parametrize("name", ["ef_search", "nprobe"])
def test_range_search_params_not_applying(flat: annx.Index, name: str) -> None:
    expect_invalid(flat, lambda: flat.range_search(Q, 0.5, **{name: 8}), name)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_threads(index: annx.Index, threads: Any) -> None:
    expect_invalid(index, lambda: index.search(Q, 2, threads=threads), "threads")
    expect_invalid(index, lambda: index.range_search(Q, 0.5, threads=threads), "threads")


@pytest.mark.parametrize(
    "filt",
    [
        np.array([1.0, 2.0]),
        np.array(["a"]),
        np.array([None, 1], dtype=object),
        np.ones((2, 2), dtype=bool),
        np.ones((2, 2), dtype=np.int64),
        np.array([1 + 2j]),
    ],
    ids=["float", "str", "object", "mask2d", "ids2d", "complex"],
)
def test_bad_filter(index: annx.Index, filt: Any) -> None:
    expect_invalid(index, lambda: index.search(Q, 2, filter=filt), "filter")
    expect_invalid(index, lambda: index.range_search(Q, 0.5, filter=filt), "filter")


@pytest.mark.parametrize("radius", [np.nan, np.inf, -np.inf])
def test_non_finite_radius(index: annx.Index, radius: float) -> None:
    expect_invalid(index, lambda: index.range_search(Q, radius), "radius", str(radius))


def test_train_with_no_vectors(index: annx.Index) -> None:
    expect_invalid(index, lambda: index.train(np.zeros((0, D), np.float32)), r"\b0\b")


# ---------------------------------------------------------------- padding, no raise
@pytest.mark.parametrize("spec", FLAT_SPECS)
@pytest.mark.parametrize("metric", METRICS)
def test_padding_never_raises(spec: str, metric: str) -> None:
    x = make_data(5, D, seed=12)
    ix = annx.index_factory(D, spec, metric)
    ix.train(x)
    pad = pad_value(metric)
    # empty index
    Dq, Iq = ix.search(Q, 4)
    assert Dq.shape == (3, 4) and (Iq == -1).all() and (Dq == pad).all()
    lims, Dr, Ir = ix.range_search(Q, 1.0)
    assert lims.tolist() == [0, 0, 0, 0] and len(Dr) == len(Ir) == 0
    # k > ntotal
    ix.add(x)
    Dq, Iq = ix.search(Q, 9)
    assert (Iq[:, :5] >= 0).all() and (Iq[:, 5:] == -1).all()
    assert np.isfinite(Dq[:, :5]).all() and (Dq[:, 5:] == pad).all()
    # all removed
    ix.remove(np.arange(5))
    Dq, Iq = ix.search(Q, 3)
    assert (Iq == -1).all() and (Dq == pad).all()
    # no queries
    Dq, Iq = ix.search(np.zeros((0, D), np.float32), 3)
    assert Dq.shape == (0, 3) and Iq.shape == (0, 3)


def test_empty_add_is_noop(index: annx.Index) -> None:
    before = snapshot(index)
    index.add(np.zeros((0, D), np.float32))
    index.add(np.zeros((0, D), np.float32), ids=np.zeros(0, np.int64))
    assert snapshot(index) == before


# ----------------------------------------------------------------- configuration
def test_set_isa_nonsense() -> None:
    before = annx.get_isa()
    with pytest.raises(ValueError, match="nonsense"):
        annx.set_isa("nonsense")
    assert annx.get_isa() == before


@pytest.mark.parametrize("n", [0, -1, 1.0, True, None])
def test_set_num_threads_bad(n: Any) -> None:
    before = annx.get_num_threads()
    with pytest.raises(ValueError, match="thread"):
        annx.set_num_threads(n)
    assert annx.get_num_threads() == before


def test_sq8_not_trained_errors() -> None:
    ix = annx.index_factory(D, "Flat,SQ8")
    with pytest.raises(annx.NotTrainedError, match="train"):
        ix.add(make_data(2, D, seed=13))
    with pytest.raises(annx.NotTrainedError, match="train"):
        ix.search(Q, 1)
    with pytest.raises(annx.NotTrainedError, match="train"):
        ix.range_search(Q, 1.0)
    assert ix.ntotal == 0 and not ix.is_trained


def test_misaligned_arrays_are_copied_not_misread() -> None:
    """numpy arrays over a byte buffer at an odd offset (what a network deserialiser can
    produce) are misaligned: the Python layer copies them, _core refuses them."""
    g = np.random.default_rng(9)
    x = g.standard_normal((40, 6)).astype(np.float32)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    raw[1:] = x.view(np.uint8).ravel()
    mis = np.frombuffer(raw.data, dtype=np.float32, offset=1, count=x.size).reshape(x.shape)
    assert not mis.flags.aligned
    raw_ids = np.zeros(40 * 8 + 1, np.uint8)
    raw_ids[1:] = (np.arange(40, dtype=np.int64) + 5).view(np.uint8)
    mis_ids = np.frombuffer(raw_ids.data, dtype=np.int64, offset=1, count=40)
    assert not mis_ids.flags.aligned
    index = annx.index_factory(6, "Flat")
    index.add(mis, ids=mis_ids)
    D, I = index.search(mis[:3], 1)
    np.testing.assert_array_equal(I[:, 0], [5, 6, 7])
    np.testing.assert_array_equal(index.reconstruct([5, 6]), x[:2])
    with pytest.raises(annx.InvalidArgumentError, match="aligned"):
        index._impl.search(mis, 1)


@pytest.mark.parametrize("spec", ["Flat,SQ8", "HNSW16,SQ8", "HNSW16,SQ8,Refine(F32)"])
def test_sq8_retrain_after_add_is_refused(spec: str) -> None:
    """New SQ8 ranges would silently invalidate the stored codes (as IVF already refuses)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    idx = annx.index_factory(8, spec)
    idx.train(x)
    idx.add(x[:50])
    before = idx.search(x[:5], 3)
    expect_invalid(idx, lambda: idx.train(x * 10), "already holds vectors")
    after = idx.search(x[:5], 3)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[0], after[0])
    plain = annx.index_factory(8, spec.replace("SQ8", "F16").replace(",Refine(F32)", ""))
    plain.add(x[:50])
    plain.train(x)  # no trained parameters: still a no-op
