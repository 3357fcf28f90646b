"""Persistence: save/load/to_bytes/from_bytes/pickle, mmap, atomic save, corruption.

The corruption tests parse the container with a small independent reader/writer
(tests/container_format.py), so they can both damage files precisely and build
well-formed files with hostile contents.
"""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import os
import pickle
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FLAT_SPECS, METRICS, make_data
from container_format import (
    MAGIC,
    TOC_ENTRY,
    build_container,
    crc32c,
    manifest_of,
    parse,
    section_bytes,
    with_manifest,
    with_section,
)

import annx


def test_crc32c_reference() -> None:
    assert crc32c(b"123456789") == 0xE3069283


# -------------------------------------------------------------------------- helpers
Q = make_data(7, 12, seed=77)


def make_index(
    spec: str,
    metric: str,
    n: int = 120,
    d: int = 12,
    *,
    ids: bool = False,
    remove: bool = False,
    train: bool = True,
) -> annx.Index:
    x = make_data(n, d, seed=zlib.crc32(f"{spec}-{metric}-{n}".encode()))
    index = annx.index_factory(d, spec, metric)
    if train:
        index.train(x if n else make_data(10, d, seed=5))
    if n and index.is_trained:
        if ids:
            g = np.random.default_rng(3)
            id_arr = g.permutation(n).astype(np.int64) * 1009 + 10**12
            index.add(x[: n // 2], ids=id_arr[: n // 2])
            index.add(x[n // 2 :])
        else:
            index.add(x)
    if remove and index.ntotal:
        live = index.ids()
        index.remove(live[::3])
    return index


def assert_same(a: annx.Index, b: annx.Index) -> None:
    assert b.spec == a.spec and b.metric == a.metric and b.d == a.d
    assert b.ntotal == a.ntotal and len(b) == len(a)
    assert b.next_id == a.next_id and b.is_trained == a.is_trained
    np.testing.assert_array_equal(b.ids(), a.ids())
    assert b.bytes_per_vector == a.bytes_per_vector
    if not a.is_trained:
        return
    q = Q[:, : a.d]
    for k in (1, 5, 200):
        Da, Ia = a.search(q, k)
        Db, Ib = b.search(q, k)
        np.testing.assert_array_equal(Ib, Ia)
        np.testing.assert_array_equal(Db, Da)
    la, da, ia = a.range_search(q, 10.0 if a.metric == "l2" else 0.2)
    lb, db, ib = b.range_search(q, 10.0 if a.metric == "l2" else 0.2)
    np.testing.assert_array_equal(lb, la)
    np.testing.assert_array_equal(ib, ia)
    np.testing.assert_array_equal(db, da)
    if a.ntotal:
        ids = a.ids()
        np.testing.assert_array_equal(b.reconstruct(ids), a.reconstruct(ids))


CASES = [
    pytest.param(spec, metric, kw, id=f"{spec}-{metric}-{name}")
    for spec in FLAT_SPECS
    for metric in METRICS
    for name, kw in [
        ("plain", {}),
        ("ids+removed", {"ids": True, "remove": True}),
        ("empty", {"n": 0}),
    ]
] + [
    pytest.param("Flat,SQ8", m, {"n": 0, "train": False}, id=f"Flat,SQ8-{m}-untrained")
    for m in METRICS
]


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize(("spec", "metric", "kw"), CASES)
def test_round_trips(tmp_path: Path, spec: str, metric: str, kw: dict[str, Any]) -> None:
    index = make_index(spec, metric, **kw)
    data = index.to_bytes()
    assert isinstance(data, bytes)
    assert index.to_bytes() == data  # deterministic
    path = tmp_path / "i.annx"
    index.save(path)
    assert path.read_bytes() == data
    assert index.__reduce__()[1][0] == data  # pickle carries exactly to_bytes
    pickled = pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL)
    assert data in pickled
    loaded = [
        annx.load(path),
        annx.load(str(path), mmap=True),
        annx.load(path, mmap=False, verify=False),
        annx.from_bytes(data),
        annx.from_bytes(bytearray(data)),
        annx.from_bytes(memoryview(data)),
        pickle.loads(pickled),
        pickle.loads(pickle.dumps(index, protocol=2)),
    ]
    for other in loaded:
        assert isinstance(other, annx.Index)
        assert_same(index, other)
        assert other.to_bytes() == data
    info = annx.read_info(path)
    assert info["spec"] == index.spec and info["metric"] == metric
    assert int(info["d"]) == index.d and int(info["ntotal"]) == index.ntotal
    assert info["format_version"] == "1.0"


@pytest.mark.parametrize("metric", METRICS)
def test_untrained_sq8_round_trip_then_train(metric: str) -> None:
    index = annx.index_factory(12, "Flat,SQ8", metric)
    other = annx.from_bytes(index.to_bytes())
    assert not other.is_trained
    x = make_data(50, 12, seed=8)
    with pytest.raises(annx.NotTrainedError):
        other.add(x)
    other.train(x)
    other.add(x)
    index.train(x)
    index.add(x)
    assert_same(index, other)


@pytest.mark.parametrize("spec", FLAT_SPECS)
def test_loaded_index_keeps_working(tmp_path: Path, spec: str) -> None:
    a = make_index(spec, "l2", ids=True, remove=True)
    path = tmp_path / "a.annx"
    a.save(path)
    x = make_data(10, 12, seed=9)
    for b in (annx.load(path), annx.load(path, mmap=True), annx.from_bytes(a.to_bytes())):
        c = annx.from_bytes(a.to_bytes())  # fresh copy for the reference
        for ix in (b, c):
            ix.add(x)
            ix.add(x, ids=np.arange(10) + 5)
            ix.remove(ix.ids()[:7])
        assert_same(c, b)


def test_from_bytes_copies_mutable_buffers() -> None:
    index = make_index("Flat", "l2")
    buf = bytearray(index.to_bytes())
    other = annx.from_bytes(buf)
    expected = other.search(Q, 5)
    buf[:] = bytes(len(buf))
    got = other.search(Q, 5)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[0], expected[0])


def test_round_trip_large_ids(tmp_path: Path) -> None:
    index = annx.index_factory(4, "Flat")
    x = make_data(3, 4, seed=10)
    index.add(x, ids=[0, 2**62, 2**63 - 2])
    other = annx.from_bytes(index.to_bytes())
    assert_same_small(index, other, x)


def test_round_trip_max_id() -> None:
    """An index holding the largest int64 id must save and load."""
    index = annx.index_factory(4, "Flat")
    x = make_data(2, 4, seed=11)
    index.add(x, ids=[5, 2**63 - 1])
    other = annx.from_bytes(index.to_bytes())
    assert_same_small(index, other, x)


def assert_same_small(a: annx.Index, b: annx.Index, x: np.ndarray) -> None:
    np.testing.assert_array_equal(b.ids(), a.ids())
    Da, Ia = a.search(x, 3)
    Db, Ib = b.search(x, 3)
    np.testing.assert_array_equal(Ib, Ia)
    np.testing.assert_array_equal(Db, Da)


def test_pickle_in_containers() -> None:
    a = make_index("Flat,F16", "cos", ids=True)
    b = make_index("Flat,SQ8", "ip", remove=True)
    obj = {"a": a, "both": [a, b]}
    out = pickle.loads(pickle.dumps(obj))
    assert_same(a, out["a"])
    assert_same(b, out["both"][1])


# ----------------------------------------------------------------------------- mmap
@pytest.mark.parametrize("spec", FLAT_SPECS)
@pytest.mark.parametrize("metric", METRICS)
def test_mmap_copy_on_write(tmp_path: Path, spec: str, metric: str) -> None:
    ref = make_index(spec, metric, ids=True)
    path = tmp_path / "m.annx"
    ref.save(path)
    on_disk = path.read_bytes()
    mm = annx.load(path, mmap=True)
    assert_same(ref, mm)
    x = make_data(20, 12, seed=12)
    for ix in (ref, mm):
        ix.add(x)
        ix.remove(ix.ids()[:15])
        ix.add(x[:5], ids=[1, 2, 3, 4, 5])
    assert_same(ref, mm)
    assert path.read_bytes() == on_disk  # the mapped file is never written
    # Removing first (before any add) also copies.
    mm2 = annx.load(path, mmap=True)
    mm2.remove(mm2.ids()[-3:])
    assert path.read_bytes() == on_disk
    assert mm2.ntotal == annx.load(path).ntotal - 3
    # A mapped index can be saved to another file and over its own file.
    mm.save(tmp_path / "copy.annx")
    assert_same(ref, annx.load(tmp_path / "copy.annx"))
    mm.save(path)
    assert_same(ref, annx.load(path))
    assert_same(ref, mm)  # still valid after its file was replaced


def test_mmap_survives_file_replacement_and_deletion(tmp_path: Path) -> None:
    a = make_index("Flat", "l2", n=300)
    path = tmp_path / "x.annx"
    a.save(path)
    mm = annx.load(path, mmap=True)
    make_index("Flat,F16", "ip", n=10).save(path)  # atomic replace: old inode stays mapped
    assert_same(a, mm)
    path.unlink()
    assert_same(a, mm)
    del mm


def test_load_from_pathlike_and_str(tmp_path: Path) -> None:
    a = make_index("Flat", "cos")
    a.save(str(tmp_path / "s.annx"))
    assert_same(a, annx.load(os.fspath(tmp_path / "s.annx")))
    assert_same(a, annx.load(tmp_path / "s.annx", mmap=True))


# ---------------------------------------------------------------------- atomic save
def test_save_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "idx.annx"
    path.write_bytes(b"old contents that are not an index" * 100)
    a = make_index("Flat", "l2", n=50)
    a.save(path)
    assert path.read_bytes() == a.to_bytes()
    b = make_index("Flat,F16", "ip", n=10)
    b.save(path)
    assert path.read_bytes() == b.to_bytes()
    assert sorted(os.listdir(tmp_path)) == ["idx.annx"]


def test_save_into_missing_directory(tmp_path: Path) -> None:
    a = make_index("Flat", "l2", n=5)
    target = tmp_path / "missing" / "deeper" / "i.annx"
    with pytest.raises(OSError):
        a.save(target)
    assert not (tmp_path / "missing").exists()
    assert os.listdir(tmp_path) == []


def test_save_onto_directory_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    a = make_index("Flat", "l2", n=5)
    with pytest.raises(OSError):
        a.save(tmp_path / "d")
    assert sorted(os.listdir(tmp_path)) == ["d"]
    assert os.listdir(tmp_path / "d") == []


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="POSIX permissions, not as root"
)
def test_save_into_read_only_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "i.annx").write_bytes(b"keep")
    ro.chmod(0o500)
    try:
        with pytest.raises(OSError):
            make_index("Flat", "l2", n=5).save(ro / "i.annx")
        assert (ro / "i.annx").read_bytes() == b"keep"
        assert os.listdir(ro) == ["i.annx"]
    finally:
        ro.chmod(0o700)


def test_load_missing_file(tmp_path: Path) -> None:
    for mmap in (False, True):
        with pytest.raises(OSError):
            annx.load(tmp_path / "nope.annx", mmap=mmap)
    with pytest.raises(OSError):
        annx.read_info(tmp_path / "nope.annx")


# ----------------------------------------------------------------------- corruption
@pytest.fixture
def loaders(tmp_path: Path) -> Iterator[Callable[[bytes], list[str]]]:
    """Feed bytes to from_bytes, load(mmap=False) and load(mmap=True).

    Returns the loaders that did *not* raise FormatError (an empty list is success).
    Any other exception propagates and fails the test.
    """
    path = tmp_path / "bad.annx"

    def check(data: bytes) -> list[str]:
        path.write_bytes(data)
        accepted = []
        for name, fn in (
            ("from_bytes", lambda: annx.from_bytes(data)),
            ("load", lambda: annx.load(path)),
            ("load(mmap)", lambda: annx.load(path, mmap=True)),
        ):
            try:
                fn()
            except annx.FormatError:
                continue
            accepted.append(name)
        return accepted

    yield check


def reject(check: Callable[[bytes], list[str]], data: bytes, what: str) -> None:
    accepted = check(data)
    assert not accepted, f"{what}: accepted by {accepted}"


def test_format_error_hierarchy() -> None:
    assert issubclass(annx.FormatError, annx.AnnxError)
    assert not issubclass(annx.FormatError, MemoryError)


def test_empty_and_random_bytes(loaders: Callable[[bytes], list[str]]) -> None:
    reject(loaders, b"", "zero bytes")
    g = np.random.default_rng(20)
    for n in (1, 7, 63, 64, 65, 200, 4096, 10000):
        reject(loaders, g.bytes(n), f"{n} random bytes")
    reject(loaders, MAGIC, "magic only")
    reject(loaders, MAGIC + bytes(56), "magic + zero header")
    reject(loaders, MAGIC + g.bytes(1000), "magic + random")


def test_foreign_files(tmp_path: Path, loaders: Callable[[bytes], list[str]]) -> None:
    reject(loaders, b"hello, world\n" * 50, "text")
    reject(loaders, b"ANNXIDX", "prefix of magic")
    reject(loaders, pickle.dumps({"a": 1}), "a pickle")
    np.save(tmp_path / "a.npy", np.arange(100))
    reject(loaders, (tmp_path / "a.npy").read_bytes(), "npy")
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "f.hdf5", "w") as f:
        f["train"] = make_data(100, 8, seed=21)
        f.attrs["distance"] = "angular"
    reject(loaders, (tmp_path / "f.hdf5").read_bytes(), "hdf5")


def test_directory_is_not_an_index(tmp_path: Path) -> None:
    for mmap in (False, True):
        with pytest.raises((OSError, annx.FormatError)):
            annx.load(tmp_path, mmap=mmap)


@pytest.mark.parametrize("spec", ["Flat", "Flat,SQ8"])
def test_every_truncation_small(spec: str, loaders: Callable[[bytes], list[str]]) -> None:
    data = make_index(spec, "l2", n=3, d=5, ids=True).to_bytes()
    for n in range(len(data)):
        if n % 16 == 0 or n % 64 in (1, 63):
            reject(loaders, data[:n], f"truncated to {n} of {len(data)}")
        else:  # the in-memory path for all the rest (fast)
            with pytest.raises(annx.FormatError):
                annx.from_bytes(data[:n])
    reject(loaders, data + b"\0", "one extra byte")
    reject(loaders, data + data, "doubled")


@pytest.mark.parametrize("spec", FLAT_SPECS)
def test_truncation_at_section_boundaries(spec: str, loaders: Callable[[bytes], list[str]]) -> None:
    data = make_index(spec, "cos", n=200, ids=True, remove=True).to_bytes()
    info = parse(data)
    cuts = {0, 8, 16, 60, 64, info["toc"], len(data)}
    for _, off, length in info["sections"]:
        cuts |= {off, off + length, off + length // 2}
    for i in range(info["count"]):
        cuts.add(info["toc"] + 32 * i)
    points = sorted({c + e for c in cuts for e in (-1, 0, 1)} - {len(data)})
    for n in points:
        if 0 <= n < len(data):
            reject(loaders, data[:n], f"truncated to {n} of {len(data)}")
    reject(loaders, data[: info["toc"]] + data[info["toc"] + 1 :], "one TOC byte cut out")


def flip(data: bytes, pos: int, bit: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


@pytest.mark.parametrize("spec", FLAT_SPECS)
def test_every_bit_flip_small(spec: str, loaders: Callable[[bytes], list[str]]) -> None:
    data = make_index(spec, "ip", n=4, d=3, ids=True).to_bytes()
    for pos in range(len(data)):
        bad = flip(data, pos, pos % 8)
        if pos % 37 == 0:
            reject(loaders, bad, f"bit {pos % 8} of byte {pos} flipped")
        else:
            with pytest.raises(annx.FormatError):
                annx.from_bytes(bad)


@pytest.mark.parametrize("spec", FLAT_SPECS)
def test_bit_flips_spread(spec: str, loaders: Callable[[bytes], list[str]]) -> None:
    data = make_index(spec, "l2", n=500, d=24, ids=True, remove=True).to_bytes()
    g = np.random.default_rng(22)
    positions = np.unique(
        np.concatenate([np.linspace(0, len(data) - 1, 150).astype(int), g.integers(0, 64, 25)])
    )
    info = parse(data)
    positions = np.unique(np.concatenate([positions, np.arange(info["toc"], len(data), 7)]))
    for i, pos in enumerate(positions):
        bad = flip(data, int(pos), int(g.integers(0, 8)))
        if i % 10 == 0:
            reject(loaders, bad, f"byte {pos} flipped")
        else:
            with pytest.raises(annx.FormatError):
                annx.from_bytes(bad)


def test_verify_false_still_checks_structure(tmp_path: Path) -> None:
    data = make_index("Flat", "l2", n=50).to_bytes()
    path = tmp_path / "v.annx"
    for n in (0, 10, 64, len(data) - 1):
        path.write_bytes(data[:n])
        for mmap in (False, True):
            with pytest.raises(annx.FormatError):
                annx.load(path, mmap=mmap, verify=False)
    for pos in (3, 20, 40, len(data) - 5):  # header and TOC
        path.write_bytes(flip(data, pos, 1))
        with pytest.raises(annx.FormatError):
            annx.load(path, verify=False)


def test_independent_writer_matches_annx() -> None:
    """Sanity check of this file's container writer: it reproduces annx's bytes."""
    for spec in FLAT_SPECS:
        data = make_index(spec, "cos", n=30, ids=True).to_bytes()
        assert build_container(section_bytes(data)) == data
        assert parse(data)["file_size"] == len(data)


def test_future_major_version(loaders: Callable[[bytes], list[str]]) -> None:
    data = make_index("Flat", "l2", n=10).to_bytes()
    secs = section_bytes(data)
    future = build_container(secs, major=2)
    reject(loaders, future, "format 2.0")
    with pytest.raises(annx.FormatError) as info:
        annx.from_bytes(future)
    msg = str(info.value)
    assert "2.0" in msg and "1" in msg and "format" in msg.lower(), msg
    reject(loaders, build_container(secs, major=0), "format 0.0")
    reject(loaders, build_container(secs, major=2**32 - 1), "format 4294967295.0")
    # Same major, newer minor (and unknown sections, flags): readable.
    newer = build_container(secs + [("FUTURE_X", b"\1\2\3")], minor=7, flags=1)
    assert_same(annx.from_bytes(data), annx.from_bytes(newer))


@pytest.mark.parametrize(
    "changes",
    [
        {"ntotal": 10**15},
        {"ntotal": 2**40},
        {"ntotal": 2**63},
        {"ntotal": -1},
        {"ntotal": 11},
        {"ntotal": 9},
        {"ntotal": "ten"},
        {"ntotal": None},
        {"d": 10**9},
        {"d": 2**31},
        {"d": 0},
        {"d": -8},
        {"d": 13},
        {"d": 11},
        {"d": "1e3"},
        {"d": None},
        {"spec": "HNSW32"},
        {"spec": "Flat,F16"},
        {"spec": ""},
        {"spec": None},
        {"metric": "hamming"},
        {"metric": None},
        {"<id key>": -5},
        {"<id key>": -1},
        {"<id key>": 3},
        {"<id key>": "x"},
        {"<id key>": 2**64},
        {"<id key>": None},
        {"structure": "hnsw"},
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_hostile_manifest(changes: dict[str, Any], loaders: Callable[[bytes], list[str]]) -> None:
    data = make_index("Flat", "l2", n=10, d=12).to_bytes()
    # the key recording the id counter (next_id or max_id, depending on the version)
    id_key = next(k for k, _ in manifest_of(data) if k in ("next_id", "max_id"))
    changes = {id_key if k == "<id key>" else k: v for k, v in changes.items()}
    bad = with_manifest(data, **changes)
    reject(loaders, bad, f"manifest {changes}")


@pytest.mark.parametrize(
    "changes",
    [
        {"ntotal": 10**12},
        {"d": 2**24},
        {"trained": "false"},
        {"trained": "maybe"},
        {"trained": None},
        {"spec": "Flat"},
    ],
)
def test_hostile_manifest_sq8(
    changes: dict[str, Any], loaders: Callable[[bytes], list[str]]
) -> None:
    data = make_index("Flat,SQ8", "l2", n=10, d=12).to_bytes()
    reject(loaders, with_manifest(data, **changes), f"SQ8 manifest {changes}")


def test_hostile_sections(loaders: Callable[[bytes], list[str]]) -> None:
    index = make_index("Flat,SQ8", "l2", n=10, d=12, ids=True)
    data = index.to_bytes()
    secs = dict(section_bytes(data))
    for tag in secs:
        reject(loaders, with_section(data, tag, None), f"section {tag} missing")
        reject(loaders, with_section(data, tag, secs[tag][:-1]), f"section {tag} short")
        reject(loaders, with_section(data, tag, secs[tag] + bytes(8)), f"section {tag} long")
    ids = np.frombuffer(secs["IDS"], np.int64).copy()
    for bad_ids in (
        np.where(np.arange(10) == 3, -7, ids),  # negative id
        np.where(np.arange(10) == 3, ids[0], ids),  # duplicate id
        np.where(np.arange(10) == 3, 2**62, ids),  # id >= next_id
    ):
        reject(loaders, with_section(data, "IDS", bad_ids.astype(np.int64).tobytes()), "ids")
    nan_scale = np.full(12, np.nan, np.float32).tobytes()
    reject(loaders, with_section(data, "SQSCALE", nan_scale), "NaN SQ8 scale")
    zero_scale = np.zeros(12, np.float32).tobytes()
    reject(loaders, with_section(data, "SQSCALE", zero_scale), "zero SQ8 scale")
    # manifest garbage
    for text in (b"", b"spec=Flat", b"\0\0\0", b"spec=Flat\nspec=Flat\n", b"\xff\xfe=\n"):
        reject(loaders, with_section(data, "MANIFEST", text), f"manifest {text!r}")


def test_hostile_toc(loaders: Callable[[bytes], list[str]]) -> None:
    """TOC entries pointing out of the file or overlapping, with valid CRCs."""
    data = make_index("Flat", "l2", n=10, d=12).to_bytes()
    info = parse(data)

    def patched(i: int, off: int | None = None, length: int | None = None) -> bytes:
        b = bytearray(data)
        pos = info["toc"] + 32 * i
        tag, o, n, crc, r = TOC_ENTRY.unpack_from(b, pos)
        o = o if off is None else off
        n = n if length is None else length
        TOC_ENTRY.pack_into(b, pos, tag, o, n, crc, r)
        toc_bytes = bytes(b[info["toc"] : info["toc"] + 32 * info["count"]])
        struct.pack_into("<I", b, 44, crc32c(toc_bytes))
        struct.pack_into("<I", b, 60, crc32c(bytes(b[:60])))
        return bytes(b)

    big = 2**64 - 64
    last = info["count"] - 1
    for i in range(info["count"]):
        for off, length in ((big, None), (None, big), (None, 2**63), (0, None), (32, None)):
            reject(loaders, patched(i, off, length), f"toc entry {i} off={off} len={length}")
    _, off0, _ = info["sections"][0]
    reject(loaders, patched(last, off=off0), "overlapping sections")

    # header lies about the size / TOC / count
    for field, fmt, value in (
        (24, "<Q", len(data) + 64),
        (24, "<Q", 2**63),
        (32, "<Q", 0),
        (32, "<Q", 2**64 - 32),
        (40, "<I", 2**31),
        (40, "<I", 0),
    ):
        b = bytearray(data)
        struct.pack_into(fmt, b, field, value)
        struct.pack_into("<I", b, 60, crc32c(bytes(b[:60])))
        reject(loaders, bytes(b), f"header field {field} = {value}")
