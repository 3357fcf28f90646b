"""HNSW ``insert_order="lid_desc"``: batches inserted by decreasing local intrinsic
dimensionality. Checked against a float64 reference: recall on fixed seeds, the order
itself (storage order follows it, and below 2,048 vectors the estimate uses the whole
batch, so numpy recomputes it exactly), the file round trip and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import brute_force, make_clustered, recall

import annx

K_LID = 20  # neighbours of the estimate (insert_order.h)


def lid_reference(x: np.ndarray, metric: str) -> np.ndarray:
    """MLE LID of every row from its 20 nearest other rows (float64)."""
    y = np.asarray(x, np.float64)
    if metric == "cos":
        y = y / np.linalg.norm(y, axis=1, keepdims=True)
    elif metric == "ip":  # the Mobius transform the ip graph is built on
        y = y / (y * y).sum(1, keepdims=True)
    d2 = (y * y).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * y @ y.T
    d2 = np.where(d2 > 1e-9, d2, np.inf)
    r = np.sqrt(np.sort(d2, axis=1)[:, :K_LID])
    return -1.0 / np.mean(np.log(r / r[:, -1:]), axis=1)


@pytest.mark.parametrize("metric", ["l2", "ip", "cos"])
def test_lid_desc_order_and_recall(metric: str) -> None:
    x = make_clustered(800, 12, seed=3)
    q = make_clustered(60, 12, seed=4)
    idx = annx.index_factory(
        12, "HNSW12", metric, insert_order="lid_desc", seed=5, ef_construction=64
    )
    ids = idx.add(x, threads=1)
    np.testing.assert_array_equal(ids, np.arange(len(x)))
    # Storage order is the insertion order: non-increasing LID (up to float32 rounding).
    lid = lid_reference(x, metric)[idx.ids()]
    assert np.all(np.diff(lid) <= 1e-3 * np.abs(lid[:-1]) + 1e-6)
    assert lid[0] > lid[-1]
    _, gt = brute_force(x, q, 10, metric)
    _, I = idx.search(q, 10, ef_search=64)
    assert recall(I, gt) >= 0.97
    assert idx._impl.hnsw_check_graph() == ""


def test_lid_desc_explicit_ids_second_batch_and_round_trip() -> None:
    x = make_clustered(1500, 8, seed=7)
    q = make_clustered(50, 8, seed=8)
    ids = np.arange(1500, dtype=np.int64)[::-1] * 3 + 11
    idx = annx.index_factory(
        8, "HNSW8,SQ8,Refine(F32)", "l2", insert_order="lid_desc", ef_construction=64
    )
    idx.train(x)
    idx.add(x[:1000], ids=ids[:1000], threads=2)
    copy = annx.from_bytes(idx.to_bytes())
    for ix in (idx, copy):  # the option survives the file: the second batch is ordered too
        ix.add(x[1000:], ids=ids[1000:], threads=1)
        rows = 1499 - (ix.ids()[1000:] - 11) // 3  # row numbers in x of the stored order
        lid = lid_reference(x[1000:], "l2")[rows - 1000]
        assert np.all(np.diff(lid) <= 1e-3 * np.abs(lid[:-1]) + 1e-6)
        _, gt = brute_force(x, q, 10, "l2", ids=ids)
        _, I = ix.search(q, 10, ef_search=64)
        assert recall(I, gt) >= 0.97
    np.testing.assert_array_equal(idx.ids(), copy.ids())


def test_lid_desc_in_file_manifest(tmp_path) -> None:
    x = make_clustered(300, 4, seed=1)
    for order, key in (("lid_desc", "lid_desc"), ("random", None), (None, None)):
        idx = annx.index_factory(4, "HNSW4", "l2", insert_order=order)
        idx.add(x)
        path = tmp_path / f"{order}.annx"
        idx.save(path)
        info = annx.read_info(path)
        assert info.get("hnsw_insert_order") == key
        assert info["hnsw_shuffle"] is (order != "lid_desc")
        assert annx.load(path).ids().tolist() == idx.ids().tolist()


@pytest.mark.parametrize(
    ("spec", "metric", "kw"),
    [
        ("HNSW8", "l2", {"insert_order": "lid"}),
        ("HNSW8", "l2", {"insert_order": "LID_DESC"}),
        ("HNSW8", "l2", {"insert_order": 1}),
        ("HNSW8", "l2", {"insert_order": "lid_desc", "shuffle": True}),
        ("Flat", "l2", {"insert_order": "lid_desc"}),
        ("IVF4,Flat", "l2", {"insert_order": "random"}),
        ("HNSW8,BIN", "hamming", {"insert_order": "lid_desc"}),
    ],
)
def test_insert_order_bad_arguments(spec: str, metric: str, kw: dict) -> None:
    with pytest.raises(annx.InvalidArgumentError) as e:
        annx.index_factory(8, spec, metric, **kw)
    assert isinstance(e.value, ValueError)
    assert "insert_order" in str(e.value)


def test_lid_desc_with_shuffle_false_is_accepted_and_matches() -> None:
    x = make_clustered(400, 6, seed=2)
    a = annx.index_factory(6, "HNSW6", "l2", insert_order="lid_desc", shuffle=False)
    b = annx.index_factory(6, "HNSW6", "l2", insert_order="lid_desc")
    a.add(x, threads=1)
    b.add(x, threads=1)
    assert a.to_bytes() == b.to_bytes()
