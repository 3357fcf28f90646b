"""BinaryIndex (metric "hamming" over packed codes) and Index.add_codes."""

from __future__ import annotations

import numpy as np
import pytest

import annx


def hamming(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.unpackbits(q[:, None, :] ^ x[None, :, :], axis=2).sum(2)


def codes(n: int, nbytes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, nbytes), dtype=np.uint8)


@pytest.mark.parametrize("nbits", [8, 64, 136, 256, 512, 1024])
def test_flat_equals_numpy_hamming(nbits):
    x, q = codes(700, nbits // 8, 1), codes(20, nbits // 8, 2)
    idx = annx.index_factory(nbits, "BIN", metric="hamming")
    idx.add(x)
    D, I = idx.search(q, 15)
    H = hamming(q, x)
    assert D.dtype == np.int32
    np.testing.assert_array_equal(D, np.take_along_axis(H, I, axis=1))
    np.testing.assert_array_equal(D, np.sort(H, axis=1)[:, :15])  # the true top-15 distances


@pytest.mark.parametrize(
    "spec, params", [("HNSW16,BIN", {"ef_search": 64}), ("IVF8,BIN", {"nprobe": 4})]
)
def test_graph_and_ivf_recall(spec, params):
    # clustered codes: flip a few bits of 30 prototypes
    rng = np.random.default_rng(3)
    protos = rng.integers(0, 2, (30, 128), dtype=np.uint8)
    bits = protos[rng.integers(0, 30, 3000)] ^ (rng.random((3000, 128)) < 0.1)
    x = np.packbits(bits.astype(np.uint8), axis=1)
    q = np.packbits(
        (protos[rng.integers(0, 30, 50)] ^ (rng.random((50, 128)) < 0.1)).astype(np.uint8), axis=1
    )
    idx = annx.index_factory(128, spec, metric="hamming")
    if not idx.is_trained:
        idx.train(x)
    idx.add(x)
    D, I = idx.search(q, 10, **params)
    H = hamming(q, x)
    np.testing.assert_array_equal(D, np.take_along_axis(H, I, axis=1))  # exact distances
    kth = np.sort(H, axis=1)[:, 9]
    assert np.mean(D[:, 9] <= kth) >= 0.9  # the 10th result as close as the true 10th


def test_ids_remove_reconstruct_padding():
    x = codes(200, 16, 4)
    idx = annx.index_factory(128, "BIN", metric="hamming")
    ids = np.arange(200) * 3 + 1
    idx.add(x, ids=ids)
    np.testing.assert_array_equal(idx.reconstruct(ids[:7]), x[:7])  # packing round trip
    idx.remove(ids[:100])
    assert len(idx) == 100 and ids[150] in idx and ids[0] not in idx
    D, I = idx.search(x[150:151], 300)
    assert I[0, 0] == ids[150] and D[0, 0] == 0
    assert (I[0, 100:] == -1).all() and (D[0, 100:] == annx.binary.MISSING_DISTANCE).all()
    _, I = idx.search(x[150:160], 3, filter=ids[150:155])
    assert set(I.ravel()) <= set(ids[150:155]) | {-1}


def test_bad_input_adds_nothing():
    idx = annx.index_factory(64, "BIN", metric="hamming")
    idx.add(codes(10, 8, 5))
    with pytest.raises(annx.InvalidArgumentError, match="uint8"):
        idx.add(np.zeros((2, 8), np.float32))
    with pytest.raises(annx.InvalidArgumentError, match="shape"):
        idx.add(codes(2, 7, 6))
    with pytest.raises(annx.InvalidArgumentError, match="duplicate"):
        idx.add(codes(2, 8, 6), ids=[100, 100])
    big = codes(annx.binary.CHUNK_ROWS + 5, 8, 7)  # the chunked path checks ids up front
    with pytest.raises(annx.InvalidArgumentError, match="repeats"):
        idx.add(big, ids=np.r_[np.arange(len(big) - 1) + 1000, 1000])
    with pytest.raises(annx.InvalidArgumentError, match="already"):
        idx.add(big, ids=np.arange(len(big)))
    with pytest.raises(annx.InvalidArgumentError, match="already"):
        idx.add(codes(2, 8, 6), ids=[100, 3])
    with pytest.raises(annx.InvalidArgumentError, match="uint8"):
        idx.search(np.zeros((1, 64), np.float32), 3)
    assert len(idx) == 10
    with pytest.raises(annx.InvalidArgumentError, match="multiple of 8"):
        annx.index_factory(63, "BIN", metric="hamming")
    for bad in ("Flat", "HNSW32", "Flat,SQ8", "HNSW32,BEBR2", "BIN,BIN"):
        with pytest.raises(annx.InvalidArgumentError, match="binary spec"):
            annx.index_factory(64, bad, metric="hamming")


def test_persistence(tmp_path):
    x, q = codes(500, 32, 7), codes(10, 32, 8)
    idx = annx.index_factory(256, "HNSW16,BIN", metric="hamming")
    idx.add(x)
    want = idx.search(q, 5)
    idx.save(tmp_path / "b.annx")
    for loaded in (
        annx.BinaryIndex.load(tmp_path / "b.annx"),
        annx.BinaryIndex.load(tmp_path / "b.annx", mmap=True),
        annx.BinaryIndex.from_bytes(idx.to_bytes()),
    ):
        assert loaded.spec == "HNSW16,BIN" and loaded.nbits == 256
        got = loaded.search(q, 5)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    other = annx.index_factory(8, "Flat")
    other.save(tmp_path / "f.annx")
    with pytest.raises(annx.FormatError, match="not a binary index"):
        annx.BinaryIndex.load(tmp_path / "f.annx")


@pytest.mark.parametrize("metric", ["ip", "cos", "l2"])
def test_add_codes_equals_adding_signs(metric):
    x = codes(300, 8, 9)
    signs = np.unpackbits(x, axis=1).astype(np.float32) * 2 - 1
    a = annx.index_factory(64, "Flat,BIN", metric=metric)
    b = annx.index_factory(64, "Flat,BIN", metric=metric)
    a.add_codes(x, ids=np.arange(300) + 5)
    b.add(signs, ids=np.arange(300) + 5)
    q = np.random.default_rng(10).standard_normal((5, 64)).astype(np.float32)
    for ra, rb in zip(a.search(q, 10), b.search(q, 10), strict=False):
        np.testing.assert_array_equal(ra, rb)
    np.testing.assert_array_equal(np.packbits(a.reconstruct(np.arange(5) + 5) > 0, axis=1), x[:5])
    with pytest.raises(annx.InvalidArgumentError, match="BIN codec"):
        annx.index_factory(64, "Flat,BEBR2").add_codes(x)
    with pytest.raises(annx.InvalidArgumentError, match="Refine"):
        annx.index_factory(64, "HNSW16,BIN,Refine(F32)").add_codes(x)


def test_hamming_hdf5_dataset(tmp_path):
    """An ann-benchmarks Hamming file (bool per bit) read, packed and searched exactly."""
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(11)
    train = rng.random((400, 96)) < 0.5
    test = rng.random((20, 96)) < 0.5
    H = (test[:, None, :] != train[None, :, :]).sum(2)
    nn = np.argsort(H, axis=1, kind="stable")[:, :10]
    path = tmp_path / "tiny-96-hamming.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "hamming"
        f["train"], f["test"] = train, test
        f["neighbors"] = nn.astype(np.int32)
        f["distances"] = np.take_along_axis(H, nn, axis=1).astype(np.float32)
    ds = annx.datasets.load_hdf5(path)
    assert ds.metric == "hamming" and ds.train.dtype == np.uint8 and ds.train.shape == (400, 12)
    idx = annx.index_factory(96, "BIN", metric="hamming")
    idx.add(ds.train)
    D, _ = idx.search(ds.test, 10)
    np.testing.assert_array_equal(D, np.take_along_axis(H, nn, axis=1))


def test_batched_hamming_scan_on_every_isa_ties_by_id():
    """The tiled scan (query batches) equals numpy Hamming on every ISA level, batch
    sizes 1..40, with equal distances ordered by id."""
    x = codes(600, 17, 3)  # 136 bits: not a multiple of 64
    x[200:260] = x[7]  # ties
    q = codes(40, 17, 4)
    q[3] = x[7]
    H = hamming(q, x)
    want_i = np.argsort(H, axis=1, kind="stable")[:, :25]
    before = annx.get_isa()
    try:
        for isa in annx.available_isas():
            annx.set_isa(isa)
            idx = annx.index_factory(136, "BIN", metric="hamming")
            idx.add(x)
            for nq in (1, 2, 40):
                D, I = idx.search(q[:nq], 25)
                np.testing.assert_array_equal(I, want_i[:nq], err_msg=isa)
                np.testing.assert_array_equal(D, np.take_along_axis(H[:nq], want_i[:nq], 1))
    finally:
        annx.set_isa(before)
