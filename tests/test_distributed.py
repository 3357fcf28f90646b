"""annx.distributed: sharded indexes on a real Dask LocalCluster (processes, 127.0.0.1).

Sharded results are compared with one annx index holding every vector: identical for
Flat shards (ids and distances), within half a recall point for HNSW shards.
"""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import brute_force, make_clustered

distributed = pytest.importorskip("distributed")

import annx  # noqa: E402
from annx.distributed import SearchResult, ShardedIndex, ShardError, merge_topk  # noqa: E402


def local_cluster() -> tuple[Any, Any]:
    """The issue's cluster: 2 worker processes, 1 thread each, on 127.0.0.1."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
    )
    return cluster, distributed.Client(cluster)


@pytest.fixture(scope="module")
def client():
    cluster, c = local_cluster()
    yield c
    c.close()
    cluster.close()


def recall(I: np.ndarray, gt: np.ndarray) -> float:
    k = gt.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(I, gt, strict=False)]))


X = make_clustered(6000, 24, seed=3)
Q = make_clustered(80, 24, seed=4)


# ----------------------------------------------------------------------- merging
def test_merge_ties_padding_and_direction() -> None:
    D1 = np.array([[1.0, 2.0, np.inf]], np.float32)
    I1 = np.array([[7, 3, -1]])
    D2 = np.array([[1.0, 1.5, 9.0]], np.float32)
    I2 = np.array([[5, 9, 2]])
    D, I = merge_topk([(D1, I1), (D2, I2)], 4, similarity=False)
    np.testing.assert_array_equal(I, [[5, 7, 9, 3]])  # tie at 1.0 -> smaller id first
    np.testing.assert_array_equal(D, [[1.0, 1.0, 1.5, 2.0]])
    D, I = merge_topk([(-D1, I1), (-D2, I2)], 6, similarity=True)
    np.testing.assert_array_equal(I, [[5, 7, 9, 3, 2, -1]])  # similarities: descending
    assert D[0, -1] == -np.inf
    # Order of the shards does not matter.
    Da, Ia = merge_topk([(D2, I2), (D1, I1)], 4, similarity=False)
    np.testing.assert_array_equal(Ia, [[5, 7, 9, 3]])


def test_merge_rejects_nan() -> None:
    D = np.array([[np.nan, 1.0]], np.float32)
    with pytest.raises(annx.InvalidArgumentError, match="NaN"):
        merge_topk([(D, np.array([[1, 2]]))], 2, similarity=False)
    # NaN in padding slots (id -1) is ignored.
    merge_topk([(D, np.array([[-1, 2]]))], 2, similarity=False)


# ------------------------------------------------------------------------ shards
@pytest.mark.parametrize("partition", ["hash", "round_robin"])
@pytest.mark.parametrize("metric", ["l2", "ip", "cos"])
def test_flat_shards_equal_one_flat_index(client, partition: str, metric: str) -> None:
    si = ShardedIndex(client, 24, "Flat", metric, n_shards=3, partition=partition)
    si.train(X)
    si.add(X[:4000])
    si.add(X[4000:], ids=np.arange(4000, 6000) * 3)
    ids = np.concatenate([np.arange(4000), np.arange(4000, 6000) * 3])
    ref = annx.index_factory(24, "Flat", metric)
    ref.add(X, ids=ids)
    assert si.ntotal == 6000 and sum(s["ntotal"] for s in si.stats()) == 6000
    for k in (1, 10, 50):
        D, I = si.search(Q, k)
        Dr, Ir = ref.search(Q, k)
        np.testing.assert_array_equal(I, Ir)
        np.testing.assert_array_equal(D, Dr)
    gone = ids[::4]
    assert si.remove(gone) == len(gone)
    ref.remove(gone)
    D, I = si.search(Q, 10)
    Dr, Ir = ref.search(Q, 10)
    np.testing.assert_array_equal(I, Ir)
    np.testing.assert_array_equal(D, Dr)
    # k larger than the index: padded exactly like one index.
    small = ShardedIndex(client, 24, "Flat", metric, partition=partition)
    small.add(X[:5])
    D, I = small.search(Q[:2], 8)
    assert (I[:, 5:] == -1).all() and np.isinf(D[:, 5:]).all()


def test_hnsw_shards_recall_close_to_one_index(client) -> None:
    si = ShardedIndex(client, 24, "HNSW16", "l2", seed=1)
    si.train(X)
    si.add(X)
    ref = annx.index_factory(24, "HNSW16", "l2", seed=1)
    ref.add(X)
    _, gt = brute_force(X, Q, 10, "l2")
    for ef in (16, 64):
        r_one = recall(ref.search(Q, 10, ef_search=ef)[1], gt)
        r_sh = recall(si.search(Q, 10, ef_search=ef)[1], gt)
        assert r_sh >= r_one - 0.005, (ef, r_sh, r_one)


@pytest.mark.parametrize("spec", ["IVF16,Flat", "IVF16,PQ8x4fs,Refine(F32)"])
def test_ivf_routing_matches_one_index(client, spec: str, tmp_path: Path) -> None:
    """Routed shards hold each list whole, so the same nprobe scans the same lists.

    With Refine each shard re-ranks its own best candidates, so the merged answer
    re-scores more candidates than one index does: at least as good, not identical.
    """
    si = ShardedIndex(client, 24, spec, "l2", partition="ivf", n_shards=3)
    si.train(X)
    si.add(X)
    ref = annx.index_factory(24, spec, "l2")
    ref.train(X)
    ref.add(X)
    sizes = sorted(s["ntotal"] for s in si.stats())
    assert sum(sizes) == 6000 and sizes[0] > 0
    _, gt = brute_force(X, Q, 10, "l2")
    for nprobe in (1, 4, 16):
        D, I = si.search(Q, 10, nprobe=nprobe)
        Dr, Ir = ref.search(Q, 10, nprobe=nprobe)
        if "Refine" in spec:
            assert recall(I, gt) >= recall(Ir, gt)
        else:
            np.testing.assert_array_equal(I, Ir)
            np.testing.assert_allclose(D, Dr, rtol=1e-6)
    # The router (the trained state) is saved with the shards.
    si.save(tmp_path)
    loaded = ShardedIndex.load(tmp_path, client)
    D, I = si.search(Q, 10, nprobe=4)
    D2, I2 = loaded.search(Q, 10, nprobe=4)
    np.testing.assert_array_equal(I2, I)
    np.testing.assert_array_equal(D2, D)
    loaded.add(X[:100], ids=np.arange(100) + 10_000)  # routed by the loaded router
    assert loaded.ntotal == 6100


def test_ood_leanvec_shards_share_the_projection(client) -> None:
    spec = "LeanVec16_ood,HNSW16,Refine(F32)"
    q_train = make_clustered(300, 24, seed=5)
    si = ShardedIndex(client, 24, spec, "cos")
    si.train(X, queries=q_train)
    si.add(X)
    ref = annx.index_factory(24, spec, "cos")
    ref.train(X, queries=q_train)
    ref.add(X)
    _, gt = brute_force(X, Q, 10, "cos")
    r_sh = recall(si.search(Q, 10, ef_search=64, rerank=64)[1], gt)
    r_one = recall(ref.search(Q, 10, ef_search=64, rerank=64)[1], gt)
    assert r_sh >= r_one - 0.005, (r_sh, r_one)


def test_filters_and_k_shard(client) -> None:
    si = ShardedIndex(client, 24, "HNSW16", "l2")
    si.train(X)
    si.add(X)
    allowed = np.arange(0, 6000, 7)
    _, I = si.search(Q, 5, filter=allowed, ef_search=64)
    assert np.isin(I, allowed).all()
    _, gt = brute_force(X, Q, 10, "l2")
    r1 = recall(si.search(Q, 10, ef_search=16)[1], gt)
    r2 = recall(si.search(Q, 10, ef_search=16, k_shard=30)[1], gt)
    assert r2 >= r1
    with pytest.raises(annx.InvalidArgumentError, match="k_shard"):
        si.search(Q, 10, k_shard=5)


def test_errors(client) -> None:
    with pytest.raises(annx.InvalidArgumentError, match="partition"):
        ShardedIndex(client, 24, "Flat", partition="range")
    with pytest.raises(annx.InvalidArgumentError, match="not an IVF spec"):
        ShardedIndex(client, 24, "HNSW16", partition="ivf")
    with pytest.raises(annx.InvalidArgumentError, match="unknown structure"):
        ShardedIndex(client, 24, "Bogus")
    with pytest.raises(annx.InvalidArgumentError, match="client"):
        ShardedIndex("not a client", 24)  # type: ignore[arg-type]
    ivf = ShardedIndex(client, 24, "IVF8,Flat")
    with pytest.raises(annx.NotTrainedError):
        ivf.add(X)
    si = ShardedIndex(client, 24, "Flat")
    si.add(X[:100])
    with pytest.raises(annx.InvalidArgumentError, match="dimension"):
        si.add(X[:5, :10])
    bad = X[:5].copy()
    bad[2, 3] = np.nan
    with pytest.raises(annx.InvalidArgumentError, match="non-finite"):
        si.add(bad)
    with pytest.raises(annx.InvalidArgumentError, match="already in the index"):
        si.add(X[:3], ids=[200, 50, 201])
    with pytest.raises(annx.InvalidArgumentError, match="repeated"):
        si.add(X[:2], ids=[300, 300])
    with pytest.raises(annx.InvalidArgumentError, match="not in the index"):
        si.remove([1, 2, 999])
    assert si.ntotal == 100  # nothing was added or removed by the failed calls
    with pytest.raises(annx.InvalidArgumentError, match="shard .*ef_search"):
        si.search(Q, 3, ef_search=10)
    with pytest.raises(annx.InvalidArgumentError, match="trained once"):
        si.train(X)


def test_save_load_round_trip(client, tmp_path: Path) -> None:
    si = ShardedIndex(client, 24, "HNSW16,SQ8,Refine(F32)", "cos", partition="round_robin")
    si.train(X)
    si.add(X)
    si.remove(np.arange(10, 500))
    D, I = si.search(Q, 10)
    si.save(tmp_path)
    first = sorted(p.name for p in tmp_path.iterdir())
    loaded = ShardedIndex.load(tmp_path, client)
    assert loaded.spec == si.spec and loaded.n_shards == si.n_shards
    D2, I2 = loaded.search(Q, 10)
    np.testing.assert_array_equal(I2, I)
    np.testing.assert_array_equal(D2, D)
    # The loaded index continues: new ids follow the old ones, round-robin continues.
    loaded.add(X[:10])
    assert loaded.ntotal == si.ntotal + 10
    _, I = loaded.search(X[:10], 1, filter=np.arange(6000, 6010))
    np.testing.assert_array_equal(I[:, 0], np.arange(6000, 6010))
    # A second save replaces the files; the old generation is deleted.
    loaded.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == len(first) and set(names) != set(first)


def test_load_rejects_bad_directories(client, tmp_path: Path) -> None:
    with pytest.raises(annx.FormatError, match="no manifest"):
        ShardedIndex.load(tmp_path, client)
    si = ShardedIndex(client, 24, "Flat")
    si.add(X[:50])
    si.save(tmp_path)
    manifest = tmp_path / "annx-sharded.json"
    m = json.loads(manifest.read_text())
    shard_file = tmp_path / m["shards"][1]["file"]
    data = bytearray(shard_file.read_bytes())
    data[-3] ^= 0xFF
    shard_file.write_bytes(bytes(data))
    with pytest.raises(annx.FormatError, match="shard 1: .*checksum"):
        ShardedIndex.load(tmp_path, client)
    m["format_version"] = 99
    manifest.write_text(json.dumps(m))
    with pytest.raises(annx.FormatError, match="version"):
        ShardedIndex.load(tmp_path, client)
    manifest.write_text("{not json")
    with pytest.raises(annx.FormatError, match="unreadable"):
        ShardedIndex.load(tmp_path, client)


def test_threads_follow_workers_per_host(client) -> None:
    si = ShardedIndex(client, 24, "Flat")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for s in si.stats():
        assert s["threads"] == max(1, (cpus or 1) // 2)
    si = ShardedIndex(client, 24, "Flat", annx_threads=3)
    assert {s["threads"] for s in si.stats()} == {3}


def test_killed_worker_is_named_and_partial_results_flagged() -> None:
    """A separate cluster: one of its workers is killed."""
    cluster, c = local_cluster()
    try:
        si = ShardedIndex(c, 24, "Flat", "l2")
        si.add(X)
        victim = si.shard_workers[1]
        with pytest.raises(Exception):  # noqa: B017 - the connection to the dying worker
            c.run(os._exit, 1, workers=[victim])
        # Until the scheduler notices the loss, a call to the dead worker waits for
        # Dask's connect timeout (30 s by default); wait for the notice instead.
        deadline = time.monotonic() + 20
        while victim in c.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(ShardError, match="shard 1") as info:
            si.search(Q, 5)
        assert info.value.shard == 1 and info.value.worker == victim
        res = si.search(Q, 5, allow_partial=True)
        assert isinstance(res, SearchResult) and res.partial and res.failed_shards == (1,)
        D, I = res
        shard0 = X[np.isin(np.arange(6000), _ids_of_shard(si, 0, 6000))]
        _, gt = brute_force(shard0, Q, 5, "l2", ids=_ids_of_shard(si, 0, 6000))
        np.testing.assert_array_equal(I, gt)
    finally:
        c.close()
        cluster.close()


def _ids_of_shard(si: ShardedIndex, shard: int, n: int) -> np.ndarray:
    from annx.distributed import hash_owner

    ids = np.arange(n, dtype=np.int64)
    return ids[hash_owner(ids, si.n_shards) == shard]


def test_real_minilm_flat_shards_identical(client, shared_data: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = shared_data / "minilm-100000-384-angular.hdf5"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with h5py.File(path, "r") as f:
        x, q = f["train"][()], f["test"][:200]
    si = ShardedIndex(client, 384, "Flat", "cos")
    si.add(x)
    ref = annx.index_factory(384, "Flat", "cos")
    ref.add(x)
    D, I = si.search(q, 10)
    Dr, Ir = ref.search(q, 10)
    np.testing.assert_array_equal(I, Ir)
    np.testing.assert_array_equal(D, Dr)
