"""Structure-aware fuzzer for annx index files (helper module of tests/test_file_fuzz.py).

annx files are containers of named, CRC-32C-checksummed sections (docs/file-format.md).
Flipping bits below the checksums only ever tests the checksum, so this fuzzer parses a
file into its sections, mutates them *semantically* (ids out of range, duplicated and
negative; counts inflated/deflated; NaN/inf planted in float sections; manifest integers
at their extremes; sections swapped between index kinds; nested files nested in
themselves; random byte flips) and writes the file back with valid checksums, so every
case reaches the loader's semantic checks.

Each case runs in a child process (many cases per child), so a crash is a reported failure
naming the case rather than the end of the test run. A case passes when loading raises an
``annx.AnnxError`` (e.g. ``FormatError``), or when the load succeeds and searches (single
and batched, k below and above ``ntotal``), range searches, ``reconstruct``, ``add`` and
``remove`` return valid ids (stored ids; ``-1`` only as trailing padding) and finite
distances (``inf`` only as padding). Children have capped memory (``RLIMIT_AS``) and a
per-case alarm, so allocation bombs and hangs are reported too.

Long runs::

    PYTHONPATH=python python -m tests.annx_fuzz --cases 200000 --seed 7 --jobs 2

prints every failing case (kind, mutation, outcome) and exits 1 if there is any.
``--save-failures DIR`` keeps the failing files for reproduction.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HEADER = struct.Struct("<8sIIQQQII12sI")  # 64 bytes
TOC_ENTRY = struct.Struct("<8sQQII")  # 32 bytes
MAGIC = b"ANNXIDX\0"
ALIGN = 64

# ------------------------------------------------------------------------ CRC-32C
# CRC-32C (Castagnoli, reflected); for large inputs vectorised: the data is cut into chunks
# whose raw CRCs are computed side by side with numpy; they are then combined with the
# linear "append _CHUNK zero bytes" map, tabulated per byte of the register.
_POLY = 0x82F63B78


def _make_table() -> np.ndarray:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(_POLY), t >> 1).astype(np.uint32)
    return t


_TABLE = _make_table()
_TABLE_LIST = [int(v) for v in _TABLE]


def _shift_tables(n: int) -> list[list[int]]:
    """tab[i][b]: register (b << 8i) after n zero bytes (a linear map of the register)."""
    r = np.array([b << (8 * i) for i in range(4) for b in range(256)], dtype=np.uint32)
    for _ in range(n):
        r = _TABLE[r & 0xFF] ^ (r >> 8)
    return [[int(v) for v in r[i * 256 : (i + 1) * 256]] for i in range(4)]


_SHIFT: dict[int, list[list[int]]] = {}


def _raw_scalar(r: int, data: bytes) -> int:
    t = _TABLE_LIST
    for b in data:
        r = t[(r ^ b) & 0xFF] ^ (r >> 8)
    return r


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """Standard CRC-32C of ``data`` (crc32c(b"123456789") == 0xE3069283)."""
    data = bytes(data)
    n = len(data)
    if n < 32768:
        return _raw_scalar(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    chunk = 256 if n < (1 << 20) else 2048
    if chunk not in _SHIFT:
        _SHIFT[chunk] = _shift_tables(chunk)
    k = n // chunk
    a = np.frombuffer(data, dtype=np.uint8, count=k * chunk).reshape(k, chunk)
    cols = np.ascontiguousarray(a.T).astype(np.uint32)
    regs = np.zeros(k, dtype=np.uint32)
    for j in range(chunk):
        regs = _TABLE[(regs ^ cols[j]) & 0xFF] ^ (regs >> 8)
    s0, s1, s2, s3 = _SHIFT[chunk]
    r = 0xFFFFFFFF
    for c in regs.tolist():
        r = s0[r & 0xFF] ^ s1[(r >> 8) & 0xFF] ^ s2[(r >> 16) & 0xFF] ^ s3[r >> 24] ^ c
    return _raw_scalar(r, data[k * chunk :]) ^ 0xFFFFFFFF


# ----------------------------------------------------------- container read / write
Sections = list  # list[tuple[str, bytes]] in file order


def parse(data: bytes) -> list[tuple[str, bytes]]:
    """Sections (tag, bytes) of a well-formed annx file, in TOC order (no CRC checks)."""
    magic, _major, _minor, _flags, _size, toc, count, _tcrc, _res, _hcrc = HEADER.unpack_from(
        data, 0
    )
    if magic != MAGIC:
        raise ValueError("not an annx file")
    out = []
    for i in range(count):
        tag, off, length, _crc, _r = TOC_ENTRY.unpack_from(data, toc + TOC_ENTRY.size * i)
        out.append((tag.rstrip(b"\0").decode(), bytes(data[off : off + length])))
    return out


def _align(x: int) -> int:
    return (x + ALIGN - 1) // ALIGN * ALIGN


def build(sections: Sequence[tuple[str, bytes]], major: int = 1, minor: int = 0) -> bytes:
    """An annx file holding ``sections`` with valid CRCs (tags are not validated)."""
    out = bytearray(ALIGN)
    toc = bytearray()
    for tag, payload in sections:
        off = _align(len(out))
        out += bytes(off - len(out))
        out += payload
        toc += TOC_ENTRY.pack(tag.encode()[:8], off, len(payload), crc32c(payload), 0)
    toc_off = _align(len(out))
    out += bytes(toc_off - len(out))
    out += toc
    hdr = HEADER.pack(
        MAGIC, major, minor, 0, len(out), toc_off, len(sections), crc32c(toc), bytes(12), 0
    )
    hdr = hdr[:60] + struct.pack("<I", crc32c(hdr[:60]))
    out[:64] = hdr
    return bytes(out)


def parse_manifest(b: bytes) -> list[list[str]]:
    """Manifest key/value pairs, in order."""
    return [line.split("=", 1) for line in b.decode().splitlines()]


def format_manifest(kv: Sequence[Sequence[str]]) -> bytes:
    """The manifest bytes of key/value pairs."""
    return "".join(f"{k}={v}\n" for k, v in kv).encode()


def manifest_dict(sections: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """The MANIFEST section of ``sections`` as a dict ({} if absent or unparsable)."""
    for tag, b in sections:
        if tag == "MANIFEST":
            try:
                return dict(parse_manifest(b))
            except (ValueError, UnicodeDecodeError):
                return {}
    return {}


def get(sections: Sequence[tuple[str, bytes]], tag: str) -> bytes | None:
    """The bytes of section ``tag`` or None."""
    for t, b in sections:
        if t == tag:
            return b
    return None


def replace(sections: Sequence[tuple[str, bytes]], tag: str, payload: bytes) -> list:
    """``sections`` with section ``tag`` replaced (or appended when absent)."""
    out = [(t, payload if t == tag else b) for t, b in sections]
    if not any(t == tag for t, _ in sections):
        out.append((tag, payload))
    return out


# ---------------------------------------------------------------- seeds (index kinds)
@dataclass
class Seed:
    """One well-formed file to mutate: its kind (spec, metric), loader and bytes."""

    kind: str  # e.g. "IVF4_HNSW4,PQ4x4fs/l2"
    loader: str  # "index", "binary" or "mv"
    data: bytes


NESTED = ("IVFHNSW", "LVINNER", "MVINNER")


def build_seeds(quick: bool = False) -> list[Seed]:
    """Small, quickly built files of every index kind annx can save."""
    import annx

    d, n = 8, 40
    g = np.random.default_rng(20240601)
    x = g.standard_normal((n, d)).astype(np.float32)
    xt = g.standard_normal((300, d)).astype(np.float32)
    q_ood = (g.standard_normal((60, d)) + 0.5).astype(np.float32)
    out: list[Seed] = []

    def float_index(spec: str, metric: str = "l2", remove: bool = False, **kw) -> None:
        idx = annx.index_factory(d, spec, metric, **kw)
        if spec.startswith("LeanVec") and "_ood" in spec:
            idx.train(xt, q_ood)
        elif not idx.is_trained:
            idx.train(xt)
        idx.add(x, threads=1)  # one thread: the same graph on every machine
        if remove:
            idx.remove([3, 17])
        out.append(Seed(f"{spec}/{metric}{'/holes' if remove else ''}", "index", idx.to_bytes()))

    float_specs = [
        ("Flat", "l2", False),
        ("Flat", "ip", False),
        ("Flat", "cos", True),
        ("Flat,F16", "l2", False),
        ("Flat,BF16", "cos", False),
        ("Flat,SQ8", "l2", False),
        ("Flat,SQ8,Refine(F32)", "l2", False),
        ("Flat,BIN", "ip", False),
        ("Flat,BEBR2", "l2", False),
        ("HNSW4", "l2", True),
        ("HNSW4,F16", "cos", False),
        ("HNSW4,BF16", "ip", False),
        ("HNSW4,SQ8", "l2", False),
        ("HNSW4,SQ8,Refine(F32)", "l2", True),
        ("HNSW4,SQ8,Refine(F16)", "ip", False),
        ("HNSW4,BIN", "l2", False),
        ("HNSW4,BEBR2,Refine(F32)", "cos", False),
        ("IVF4,Flat", "l2", True),
        ("IVF4,F16", "ip", False),
        ("IVF4,SQ8", "cos", False),
        ("IVF4,PQ4", "l2", False),
        ("IVF4,PQ4x4fs", "l2", False),
        ("IVF4,PQ4x4fs,Refine(F32)", "ip", True),
        ("IVF4,BIN", "l2", False),
        ("IVF4_HNSW4,Flat", "l2", False),
        ("IVF4_HNSW4,PQ4x4fs", "l2", False),
        ("IVF4_HNSW4,SQ8,Refine(F16)", "cos", False),
        ("PQ4", "l2", False),
        ("PQ4x4fs,Refine(F32)", "ip", False),
        ("LeanVec4,Refine(F32)", "l2", False),
        ("LeanVec4_ood,HNSW4,Refine(F16)", "l2", True),
        ("LeanVec4,IVF2,SQ8,Refine(F32)", "ip", False),
        ("LeanVec4_ood,Flat,Refine(F32)", "cos", False),
    ]
    if quick:
        float_specs = float_specs[::4]
    for spec, metric, remove in float_specs:
        float_index(spec, metric, remove)
    # Empty and untrained files.
    out.append(Seed("Flat/l2/empty", "index", annx.index_factory(d, "Flat").to_bytes()))
    out.append(Seed("IVF4,Flat/l2/untrained", "index", annx.index_factory(d, "IVF4").to_bytes()))
    out.append(
        Seed(
            "LeanVec4,Refine(F32)/l2/untrained",
            "index",
            annx.index_factory(d, "LeanVec4,Refine(F32)").to_bytes(),
        )
    )
    # Binary (Hamming) indexes.
    codes = g.integers(0, 256, (n, 8), dtype=np.uint8)
    for spec in ("BIN", "HNSW4,BIN"):
        b = annx.index_factory(64, spec, metric="hamming")
        b.add(codes, threads=1)
        out.append(Seed(f"Binary:{spec}", "binary", b.to_bytes()))
    # Multi-vector indexes.
    docs = [g.standard_normal((int(g.integers(1, 5)), d)).astype(np.float32) for _ in range(20)]
    fde = annx.FDE(k_sim=2, d_proj=4, reps=2)
    mv_specs = [("Flat", "F32"), ("HNSW4", "F16")]
    if not quick:
        mv_specs.append(("IVF2,SQ8", "F32"))
    for spec, tokens in mv_specs:
        mv = annx.MultiVectorIndex(d, spec, fde=fde, tokens=tokens)
        if not mv.is_trained:
            mv.train(docs)
        mv.add(docs, threads=1)
        out.append(Seed(f"MultiVector:{spec}/{tokens}", "mv", mv.to_bytes()))
    # Multi-tenant indexes (annx.load dispatches on their kind).
    x = g.standard_normal((n, d)).astype(np.float32)
    tenants = [[int(t) for t in g.choice(6, size=int(g.integers(0, 3)), replace=False)] for _ in x]
    for metric in ("l2", "cos"):
        mt = annx.MultiTenantIndex(d, metric, branching=2, leaf_size=8, seed=0)
        mt.train(x, threads=1)
        mt.add(x, tenants=tenants)
        mt.remove([0, 1])
        out.append(Seed(f"MultiTenant/{metric}", "index", mt.to_bytes()))
    return out


# ---------------------------------------------------------------- section semantics
def _codec_of(man: dict[str, str]) -> str:
    """The vector codec of a float index: F32, F16, BF16, SQ8, PQ, BIN, BEBR<L> or ''."""
    if "codec" in man:
        return man["codec"]
    spec = man.get("spec", "")
    toks = spec.split(",")
    for t in toks[1:]:
        if t in ("Flat", "F32"):
            return "F32"
        if t in ("F16", "BF16", "SQ8", "BIN") or t.startswith("BEBR"):
            return t.replace("_adc", "")
        if t.startswith("PQ"):
            return "PQ"
    if toks and toks[0].startswith("PQ"):
        return "PQ"
    if toks and toks[0].startswith("IVF"):
        return "F32"
    return ""


def _refine_of(man: dict[str, str]) -> str:
    m = re.search(r"Refine\((\w+)\)", man.get("spec", ""))
    return m.group(1) if m else ""


def _dtype_for_codec(codec: str) -> str:
    return {"F32": "f32", "F16": "f16", "BF16": "bf16"}.get(codec, "")


def _binary_levels(codec: str) -> int:
    if codec == "BIN":
        return 1
    m = re.match(r"BEBR(\d*)", codec)
    if m:
        return int(m.group(1) or 1)
    return 0


def float_slots(tag: str, payload: bytes, man: dict[str, str]) -> tuple[str, list[int]]:
    """(dtype, byte offsets) of float values in a section; ('', []) when it has none."""
    n = len(payload)
    if tag in ("NORMS", "SQMIN", "SQSCALE", "IVFCENT", "PQCB", "LVMEAN", "LVDATA", "LVQUERY"):
        return "f32", list(range(0, n - 3, 4))
    if tag in ("REFINE", "LVSECOND"):
        dt = "f16" if _refine_of(man) == "F16" else "f32"
        return dt, list(range(0, n - (3 if dt == "f32" else 1), 4 if dt == "f32" else 2))
    if tag == "MVTOKENS":
        dt = "f16" if man.get("tokens") == "F16" else "f32"
        return dt, list(range(0, n - (3 if dt == "f32" else 1), 4 if dt == "f32" else 2))
    codec = _codec_of(man)
    if tag in ("CODES", "IVFCODES", "HNSWL0"):
        dt = _dtype_for_codec(codec)
        levels = _binary_levels(codec)
        if tag == "HNSWL0":
            block = int(man.get("hnsw_block", "0") or 0)
            m = int(man.get("hnsw_m", "0") or 0)
            base = 4 + 8 * m
            if block <= 0 or n % block:
                return "", []
            starts = range(base, n, block)
            if dt:
                w = 4 if dt == "f32" else 2
                d = int(man.get("d", "0") or 0)
                return dt, [s + w * j for s in starts for j in range(d)]
            if levels:
                return "f32", [s + 4 * j for s in starts for j in range(levels + 1)]
            return "", []
        if dt:
            w = 4 if dt == "f32" else 2
            return dt, list(range(0, n - w + 1, w))
        if levels and tag == "CODES":
            d = int(man.get("d", "0") or 0)
            head = (4 * (levels + 1) + 7) // 8 * 8
            size = head + levels * ((d + 63) // 64) * 8
            return "f32", [s + 4 * j for s in range(0, n, size) for j in range(levels + 1)]
        if levels and tag == "IVFCODES":
            d = int(man.get("d", "0") or 0)
            head = (4 * (levels + 1) + 7) // 8 * 8
            size = head + levels * ((d + 63) // 64) * 8
            return "f32", [s + 4 * j for s in range(0, n, size) for j in range(levels + 1)]
    return "", []


BAD_FLOATS = {
    "f32": {"nan": b"\x00\x00\xc0\x7f", "inf": b"\x00\x00\x80\x7f", "-inf": b"\x00\x00\x80\xff"},
    "f16": {"nan": b"\x00\x7e", "inf": b"\x00\x7c", "-inf": b"\x00\xfc"},
    "bf16": {"nan": b"\xc0\x7f", "inf": b"\x80\x7f", "-inf": b"\x80\xff"},
}

# Integer sections: (struct format, item size).
INT_SECTIONS = {
    "IDS": "q",
    "MVIDS": "q",
    "MVOFFS": "q",
    "IVFSIZES": "Q",
    "IVFSLOTS": "I",
    "HNSWUOFF": "I",
    "HNSWUP": "I",
    "HNSWLVL": "B",
    "HNSWDEL": "B",
}
ITEM = {
    "IDS": 8,
    "MVIDS": 8,
    "MVOFFS": 8,
    "IVFSIZES": 8,
    "IVFSLOTS": 4,
    "HNSWUOFF": 4,
    "HNSWUP": 4,
    "HNSWLVL": 1,
    "HNSWDEL": 1,
    "NORMS": 4,
    "SQMIN": 4,
    "SQSCALE": 4,
    "IVFCENT": 4,
    "PQCB": 4,
    "LVMEAN": 4,
}

EXTREMES_I64 = [0, -1, -2, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, -(2**63)]
EXTREME_STR = [
    "0",
    "-1",
    "1",
    "2",
    "255",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "16777216",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e9",
    "",
    " 1",
    "+1",
    "0x10",
]


# Manifest keys that size allocations.
BOMB_KEYS = (
    "d", "ntotal", "nslots", "max_id", "nlist", "hnsw_m", "hnsw_block", "hnsw_max_level",
    "hnsw_entry", "target_dim", "fde_k_sim", "fde_d_proj", "fde_reps", "fde_final_dim",
    "ntokens",
)  # fmt: skip


def _pack_int(fmt: str, v: int) -> bytes:
    lim = {"q": (-(2**63), 2**63 - 1), "Q": (0, 2**64 - 1), "I": (0, 2**32 - 1), "B": (0, 255)}
    lo, hi = lim[fmt]
    return struct.pack("<" + fmt, min(max(v, lo), hi))


# ------------------------------------------------------------------------ mutations
@dataclass
class Case:
    """One fuzz case: the file, how to load it and what was done to which seed."""

    kind: str
    mutation: str
    loader: str
    data: bytes
    opener: str = "bytes"  # "bytes", "load" or "mmap"


class Mutator:
    """Section-level mutations of seed files (deterministic for a given rng)."""

    def __init__(self, seeds: Sequence[Seed]) -> None:
        self.seeds = list(seeds)
        self.parsed = [parse(s.data) for s in seeds]
        self._deep: dict[tuple[bytes, str, int], bytes] = {}

    # helpers ---------------------------------------------------------------------
    def _other(self, rng: np.random.Generator) -> int:
        return int(rng.integers(len(self.seeds)))

    def families(self, secs: Sequence[tuple[str, bytes]]) -> list[str]:
        """Mutation families that apply to a parsed file."""
        tags = {t for t, _ in secs}
        man = manifest_dict(secs)
        fam = ["manifest_int", "manifest_bomb", "manifest_value", "count", "swap", "flip"]
        fam.append("container")
        if tags & {"IDS", "MVIDS"}:
            fam.append("ids")
        if any(float_slots(t, b, man)[1] for t, b in secs):
            fam.append("float")
        if tags & (set(INT_SECTIONS) - {"IDS", "MVIDS"}) or "HNSWL0" in tags:
            fam.append("structure_int")
        if tags & set(NESTED):
            fam += ["nested", "nested_ids", "nest_self", "nest_deep", "nest_foreign"]
            if "IVFHNSW" in tags:  # coarse-graph ids are list numbers: weigh them up
                fam += ["nested_ids", "nested_ids"]
        return fam

    def mutate(
        self, secs: list[tuple[str, bytes]], family: str, rng: np.random.Generator, depth: int = 0
    ) -> tuple[list[tuple[str, bytes]] | bytes, str]:
        """Apply one mutation of ``family``; returns (sections or raw file bytes, label)."""
        return getattr(self, "_m_" + family)(secs, rng, depth)

    # families --------------------------------------------------------------------
    def _m_manifest_int(self, secs, rng, depth):
        kv = parse_manifest(get(secs, "MANIFEST") or b"")
        ints = [i for i, (_k, v) in enumerate(kv) if re.fullmatch(r"-?\d+", v)]
        if not ints:
            return self._m_manifest_value(secs, rng, depth)
        i = ints[int(rng.integers(len(ints)))]
        v = int(kv[i][1])
        choices = EXTREME_STR + [str(v + 1), str(v - 1), str(2 * v + 1), str(v * 1000)]
        new = choices[int(rng.integers(len(choices)))]
        key = kv[i][0]
        kv[i] = [key, new]
        return replace(secs, "MANIFEST", format_manifest(kv)), f"manifest {key}={new}"

    def _m_manifest_bomb(self, secs, rng, depth):
        """Sizes that pass a plain range check but would allocate far beyond the file."""
        kv = parse_manifest(get(secs, "MANIFEST") or b"")
        keys = [k for k, _ in kv]
        big = ["65536", "1048576", "16777216", "2147483647", "1099511627776"]
        cands = [k for k in BOMB_KEYS if k in keys]
        if "spec" in keys:
            cands.append("spec")
        key = cands[int(rng.integers(len(cands)))]
        v = big[int(rng.integers(len(big)))]
        i = keys.index(key)
        if key == "spec":
            spec = kv[i][1]
            nums = list(re.finditer(r"(IVF|HNSW|PQ|LeanVec|BEBR)(\d+)", spec))
            if not nums:
                return self._m_manifest_int(secs, rng, depth)
            m = nums[int(rng.integers(len(nums)))]
            kv[i][1] = spec[: m.start(2)] + v + spec[m.end(2) :]
        else:
            kv[i][1] = v
        return replace(secs, "MANIFEST", format_manifest(kv)), f"manifest {key}={kv[i][1]}"

    def _m_manifest_value(self, secs, rng, depth):
        kv = parse_manifest(get(secs, "MANIFEST") or b"")
        r = int(rng.integers(7))
        keys = [k for k, _ in kv]
        if r == 0 and "spec" in keys:  # numbers in the spec at extremes
            i = keys.index("spec")
            spec = kv[i][1]
            nums = list(re.finditer(r"\d+", spec))
            if nums:
                m = nums[int(rng.integers(len(nums)))]
                vals = ["0", "1", "3", "7", "1000", "65536", "16777216", "2147483648",
                        "4294967296", "99999999999999999999"]  # fmt: skip
                v = vals[int(rng.integers(len(vals)))]
                kv[i][1] = spec[: m.start()] + v + spec[m.end() :]
                return replace(secs, "MANIFEST", format_manifest(kv)), f"spec {kv[i][1]!r}"
        if r == 1 and "spec" in keys:  # spec of another kind (codec / structure swap)
            i = keys.index("spec")
            other = manifest_dict(self.parsed[self._other(rng)]).get("spec", "Flat")
            kv[i][1] = other
            return replace(secs, "MANIFEST", format_manifest(kv)), f"spec {other!r}"
        if r == 2:  # a string key set to another legal-looking value
            swaps = {
                "metric": ["l2", "ip", "cos", "hamming", "L2", ""],
                "codec": ["F32", "F16", "BF16", "SQ8", "BIN", "BEBR2", "PQ4", "x"],
                "structure": ["flat", "hnsw", "ivf", "leanvec", "multivector", ""],
                "refine": ["none", "F32", "F16", "SQ8"],
                "tokens": ["F32", "F16", "BF16"],
                "inner_spec": ["Flat", "HNSW4", "IVF2,SQ8", "MultiVector", "LeanVec4,Refine(F32)"],
                "kind": ["multivector", "index", ""],
            }
            cand = [j for j, k in enumerate(keys) if k in swaps]
            if cand:
                j = cand[int(rng.integers(len(cand)))]
                opts = swaps[keys[j]]
                kv[j][1] = opts[int(rng.integers(len(opts)))]
                return replace(
                    secs, "MANIFEST", format_manifest(kv)
                ), f"manifest {keys[j]}={kv[j][1]}"
        if r == 3:  # boolean flipped or invalid
            cand = [j for j, (_k, v) in enumerate(kv) if v in ("true", "false", "0", "1")]
            if cand:
                j = cand[int(rng.integers(len(cand)))]
                v = ["true", "false", "2", "yes"][int(rng.integers(4))]
                kv[j][1] = v
                return replace(secs, "MANIFEST", format_manifest(kv)), f"manifest {kv[j][0]}={v}"
        if r == 4 and kv:  # a key deleted
            j = int(rng.integers(len(kv)))
            k = kv.pop(j)[0]
            return replace(secs, "MANIFEST", format_manifest(kv)), f"manifest key {k} deleted"
        if r == 5:  # the whole manifest of another kind
            o = self._other(rng)
            m = get(self.parsed[o], "MANIFEST") or b""
            return replace(secs, "MANIFEST", m), f"manifest of {self.seeds[o].kind}"
        kv.append(["zz_unknown", "1"])  # unknown key: must be ignored
        return replace(secs, "MANIFEST", format_manifest(kv)), "unknown manifest key"

    def _m_ids(self, secs, rng, depth):
        tags = [t for t in ("IDS", "MVIDS") if get(secs, t) is not None]
        tag = tags[int(rng.integers(len(tags)))]
        a = np.frombuffer(get(secs, tag), dtype="<i8").copy()
        if a.size == 0:
            return self._m_count(secs, rng, depth)
        j = int(rng.integers(a.size))
        r = int(rng.integers(8))
        if r == 0 and a.size > 1:
            o = int(rng.integers(a.size - 1))
            o += o >= j
            a[j] = a[o]
            what = f"{tag}[{j}] duplicates [{o}]"
        elif r == 1:
            a[j] = -1
            what = f"{tag}[{j}]=-1"
            if tag == "IDS" and rng.random() < 0.6:  # a hole with a matching live count
                kv = parse_manifest(get(secs, "MANIFEST") or b"")
                for e in kv:
                    if e[0] == "ntotal" and re.fullmatch(r"\d+", e[1]):
                        e[1] = str(max(int(e[1]) - 1, 0))
                secs = replace(secs, "MANIFEST", format_manifest(kv))
                what += " and ntotal-1"
        elif r == 2:
            a[j] = int(a.max()) + 1
            what = f"{tag}[{j}]=max+1"
        else:
            v = [-2, -(2**63), 2**63 - 1, 2**62, 2**31, 2**32][r - 3]
            a[j] = v
            what = f"{tag}[{j}]={v}"
        return replace(secs, tag, a.tobytes()), what

    def _m_count(self, secs, rng, depth):
        cand = [i for i, (t, _b) in enumerate(secs) if t != "MANIFEST"]
        if not cand:
            return self._m_manifest_int(secs, rng, depth)
        i = cand[int(rng.integers(len(cand)))]
        tag, b = secs[i]
        item = ITEM.get(tag, 4 if len(b) % 4 == 0 else 1)
        r = int(rng.integers(6))
        out = list(secs)
        if r == 0:
            out[i] = (tag, b[:-item] if len(b) >= item else b + bytes(item))
            what = f"{tag} one item shorter"
        elif r == 1:
            out[i] = (tag, b + b[-item:] if b else bytes(item))
            what = f"{tag} one item longer"
        elif r == 2:
            out[i] = (tag, b"")
            what = f"{tag} empty"
        elif r == 3:
            out.pop(i)
            what = f"{tag} missing"
        elif r == 4:
            out[i] = (tag, b + b)
            what = f"{tag} doubled"
        else:
            out[i] = (tag, b[: len(b) // 2 // item * item])
            what = f"{tag} halved"
        return out, what

    def _m_float(self, secs, rng, depth):
        man = manifest_dict(secs)
        cand = [(i, *float_slots(t, b, man)) for i, (t, b) in enumerate(secs)]
        cand = [c for c in cand if c[2]]
        i, dt, offs = cand[int(rng.integers(len(cand)))]
        tag, b = secs[i]
        which = ["nan", "inf", "-inf"][int(rng.integers(3))]
        pos = offs[int(rng.integers(len(offs)))] if rng.random() < 0.7 else offs[0]
        v = BAD_FLOATS[dt][which]
        nb = bytearray(b)
        nb[pos : pos + len(v)] = v
        out = list(secs)
        out[i] = (tag, bytes(nb))
        return out, f"{which} in {tag}@{pos} ({dt})"

    def _m_structure_int(self, secs, rng, depth):
        man = manifest_dict(secs)
        cand = [t for t, _ in secs if t in INT_SECTIONS and t not in ("IDS", "MVIDS")]
        if get(secs, "HNSWL0") is not None:
            cand.append("HNSWL0")
        tag = cand[int(rng.integers(len(cand)))]
        b = bytearray(get(secs, tag))
        if tag == "HNSWL0":
            block = int(man.get("hnsw_block", "0") or 0)
            m = int(man.get("hnsw_m", "0") or 0)
            if block <= 0 or not b:
                return self._m_flip(secs, rng, depth)
            nodes = len(b) // block
            node = int(rng.integers(nodes))
            off = node * block
            r = int(rng.integers(6))
            if r == 0:
                v = [2 * m + 1, 2**32 - 1, 2**31, 0][int(rng.integers(4))]
                struct.pack_into("<I", b, off, v)
                what = f"HNSWL0 node {node} link count={v}"
            else:
                cnt = struct.unpack_from("<I", b, off)[0]
                j = int(rng.integers(max(1, min(cnt, 2 * m))))
                v = [nodes, nodes + 1, 2**32 - 1, 2**31, node, 0][int(rng.integers(6))]
                struct.pack_into("<I", b, off + 4 + 4 * j, v)
                what = f"HNSWL0 node {node} link[{j}]={v}"
            return replace(secs, tag, bytes(b)), what
        fmt = INT_SECTIONS[tag]
        size = struct.calcsize(fmt)
        n = len(b) // size
        if n == 0:
            return self._m_count(secs, rng, depth)
        j = int(rng.integers(n))
        cur = struct.unpack_from("<" + fmt, b, j * size)[0]
        r = int(rng.integers(8))
        if r == 0 and n > 1:  # swap two items
            o = int(rng.integers(n))
            vo = struct.unpack_from("<" + fmt, b, o * size)[0]
            struct.pack_into("<" + fmt, b, j * size, vo)
            struct.pack_into("<" + fmt, b, o * size, cur)
            return replace(secs, tag, bytes(b)), f"{tag}[{j}]<->[{o}]"
        if r == 1 and n > 1 and tag == "IVFSIZES":  # move one vector between lists
            o = (j + 1) % n
            if cur > 0:
                struct.pack_into("<Q", b, j * size, cur - 1)
                vo = struct.unpack_from("<Q", b, o * size)[0]
                struct.pack_into("<Q", b, o * size, vo + 1)
                return replace(secs, tag, bytes(b)), f"IVFSIZES[{j}]-1, [{o}]+1"
        vals = {
            "B": [0, 1, 2, 16, 255, cur + 1],
            "I": [n, n - 1, n + 1, 2**31, 2**32 - 1, cur + 1, 0],
            "Q": [cur + 1, max(cur - 1, 0), 2**32, 2**63, 2**64 - 1, 0],
            "q": [-1, cur + 1, max(cur - 1, 0), 2**62, 2**63 - 1, -(2**63), 0],
        }[fmt]
        v = vals[int(rng.integers(len(vals)))]
        b[j * size : (j + 1) * size] = _pack_int(fmt, v)
        return replace(secs, tag, bytes(b)), f"{tag}[{j}]={v}"

    def _m_swap(self, secs, rng, depth):
        r = int(rng.integers(3))
        mine = {t for t, _ in secs}
        for _ in range(8):
            o = self._other(rng)
            osecs = self.parsed[o]
            if r == 0:  # a same-tag section of another kind
                common = sorted(mine & {t for t, _ in osecs} - {"MANIFEST"})
                if common:
                    t = common[int(rng.integers(len(common)))]
                    return replace(secs, t, get(osecs, t)), f"{t} from {self.seeds[o].kind}"
            elif r == 1:  # a section this kind does not have
                extra = sorted({t for t, _ in osecs} - mine)
                if extra:
                    t = extra[int(rng.integers(len(extra)))]
                    return list(secs) + [(t, get(osecs, t))], f"+{t} from {self.seeds[o].kind}"
            else:  # every section but the manifest from another kind
                man = get(secs, "MANIFEST") or b""
                out = [("MANIFEST", man)] + [(t, b) for t, b in osecs if t != "MANIFEST"]
                return out, f"sections of {self.seeds[o].kind}"
        return self._m_flip(secs, rng, depth)

    def _m_flip(self, secs, rng, depth):
        cand = [i for i, (_t, b) in enumerate(secs) if b]
        if not cand:
            return self._m_manifest_int(secs, rng, depth)
        i = cand[int(rng.integers(len(cand)))]
        tag, b = secs[i]
        nb = bytearray(b)
        nflip = int(rng.integers(1, 9))
        for _ in range(nflip):
            p = int(rng.integers(len(nb)))
            if rng.random() < 0.5:
                nb[p] ^= 1 << int(rng.integers(8))
            else:
                nb[p] = int(rng.integers(256))
        out = list(secs)
        out[i] = (tag, bytes(nb))
        return out, f"{nflip} random bytes in {tag}"

    def _m_container(self, secs, rng, depth):
        r = int(rng.integers(5))
        if r == 0:
            data = build(secs)
            cut = int(rng.integers(len(data)))
            return data[:cut], f"truncated to {cut} bytes"
        if r == 1 and len(secs) > 1:
            out = list(secs)
            perm = rng.permutation(len(out))
            return [out[p] for p in perm], "sections reordered"
        if r == 2:
            i = int(rng.integers(len(secs)))
            return list(secs) + [secs[i]], f"duplicate tag {secs[i][0]}"
        if r == 3:
            return build(secs, minor=7), "minor version 7"
        return list(secs) + [("ZZEXTRA", bytes(int(rng.integers(0, 200))))], "unknown section"

    def _nested_tag(self, secs) -> str:
        return next(t for t in NESTED if get(secs, t) is not None)

    def _m_nested(self, secs, rng, depth):
        tag = self._nested_tag(secs)
        inner = get(secs, tag)
        try:
            isecs = parse(inner)
        except (ValueError, struct.error):
            return self._m_flip(secs, rng, depth)
        fams = [f for f in self.families(isecs) if f != "nest_deep"]
        fam = fams[int(rng.integers(len(fams)))]
        new, what = self.mutate(isecs, fam, rng, depth + 1)
        data = new if isinstance(new, bytes) else build(new)
        return replace(secs, tag, data), f"{tag}: {what}"

    def _m_nested_ids(self, secs, rng, depth):
        """Ids of the nested index (IVF coarse graph: list numbers) out of range etc."""
        tag = self._nested_tag(secs)
        try:
            isecs = parse(get(secs, tag))
        except (ValueError, struct.error):
            return self._m_flip(secs, rng, depth)
        ids = get(isecs, "IDS")
        if not ids:
            return self._m_nested(secs, rng, depth)
        a = np.frombuffer(ids, dtype="<i8").copy()
        j = int(rng.integers(a.size))
        n = a.size
        vals = [n, n + 1, n + 1000, 2**31, 2**32, -1, -2, 2**63 - 1, int(a[(j + 1) % n])]
        v = vals[int(rng.integers(len(vals)))]
        a[j] = v
        new = replace(isecs, "IDS", a.tobytes())
        if rng.random() < 0.5:  # keep the inner manifest's max_id consistent with the ids
            kv = parse_manifest(get(isecs, "MANIFEST") or b"")
            for e in kv:
                if e[0] == "max_id":
                    e[1] = str(max(int(a.max()), int(e[1])))
            new = replace(new, "MANIFEST", format_manifest(kv))
        return replace(secs, tag, build(new)), f"{tag}: inner IDS[{j}]={v}"

    def _m_nest_self(self, secs, rng, depth):
        tag = self._nested_tag(secs)
        return replace(secs, tag, build(secs)), f"{tag} holds the file itself"

    def _m_nest_deep(self, secs, rng, depth):
        tag = self._nested_tag(secs)
        levels = [3, 16, 64, 256][int(rng.integers(4))]
        if levels > 16:  # keep the chain small: only the manifest, small sections, the nest
            secs = [(t, b) for t, b in secs if t in ("MANIFEST", tag) or len(b) <= 512]
        key = (build(secs), tag, levels)
        if key not in self._deep:
            data = get(secs, tag)
            for _ in range(levels):
                data = build(replace(secs, tag, data))
            self._deep[key] = data
        return self._deep[key], f"{tag} nested {levels} deep"

    def _m_nest_foreign(self, secs, rng, depth):
        tag = self._nested_tag(secs)
        o = self._other(rng)
        return replace(secs, tag, self.seeds[o].data), f"{tag} holds {self.seeds[o].kind}"


def generate(mutator: Mutator, seed: int, start: int, count: int) -> Iterator[tuple[int, Case]]:
    """Cases ``start .. start + count - 1`` of run ``seed`` (each reproducible on its own).

    Case i mutates seed file i mod S with family (i // S) mod F of that file, so every
    (kind, family) pair is visited within the first S * F cases.
    """
    seeds = mutator.seeds
    for i in range(start, start + count):
        s = i % len(seeds)
        secs = mutator.parsed[s]
        fams = mutator.families(secs)
        fam = fams[(i // len(seeds)) % len(fams)]
        rng = np.random.default_rng([seed, i])
        new, what = mutator.mutate(list(secs), fam, rng)
        data = new if isinstance(new, bytes) else build(new)
        opener = ("bytes", "load", "mmap")[int(rng.integers(3))]
        yield i, Case(seeds[s].kind, f"{fam}: {what}", seeds[s].loader, data, opener)


# -------------------------------------------------------------------------- children
CASE_TIMEOUT_S = 10
MEMORY_LIMIT = 2 << 30
RSS_JUMP_MB = 256


def _under_sanitizer() -> bool:
    return "asan" in os.environ.get("LD_PRELOAD", "") or "ASAN_OPTIONS" in os.environ


def _check_results(D, I, stored: set, pad: float, k: int, nq: int, name: str) -> str | None:
    D = np.asarray(D)
    I = np.asarray(I)
    if D.shape != (nq, k) or I.shape != (nq, k):
        return f"{name}: shapes {D.shape} {I.shape}, expected {(nq, k)}"
    for r in range(nq):
        ids, dist = I[r], D[r]
        valid = ids >= 0
        nv = int(valid.sum())
        if not valid[:nv].all():
            return f"{name}: -1 before a valid id in row {r}: {ids.tolist()}"
        if (ids < -1).any():
            return f"{name}: negative id {ids[ids < -1][0]}"
        bad = [int(v) for v in ids[:nv] if int(v) not in stored]
        if bad:
            return f"{name}: id {bad[0]} not stored"
        if len(set(ids[:nv].tolist())) != nv:
            return f"{name}: duplicate ids in row {r}"
        if not np.isfinite(dist[:nv]).all():
            v = dist[:nv][~np.isfinite(dist[:nv])][0]
            return f"{name}: non-finite distance {v} for a valid id"
        if nv < k and not (dist[nv:] == pad).all():
            return f"{name}: padding distance {dist[nv:][0]} (expected {pad})"
    return None


def _exercise_index(idx, rng: np.random.Generator) -> str | None:
    """Searches etc. on a loaded annx.Index; a message when a result is invalid."""
    import annx

    ids = np.asarray(idx.ids())
    stored = set(ids.tolist())
    if len(stored) != ids.size or ids.size != idx.ntotal:
        return f"ids(): {ids.size} ids, {len(stored)} distinct, ntotal {idx.ntotal}"
    if (ids < 0).any():
        return f"ids(): negative id {ids[ids < 0][0]}"
    d, metric = idx.d, idx.metric
    pad = np.inf if metric == "l2" else -np.inf
    if not idx.is_trained:
        if idx.ntotal:
            return f"untrained but holds {idx.ntotal} vectors"
        if d > 4096:
            return None
        try:  # an untrained file must train and fill like a new index
            idx.train(rng.standard_normal((300, d)).astype(np.float32))
        except annx.AnnxError:
            return None
    params = {}
    spec = idx.spec
    if "IVF" in spec.split(",")[0] or "IVF" in spec:
        try:
            if idx.nlist > 0:
                params["nprobe"] = int(idx.nlist)
        except (AttributeError, annx.AnnxError):
            pass
    for nq, k in ((1, 5), (17, 5), (3, idx.ntotal + 3), (40, 3)):
        if nq * k > 10**6 or nq * d > 10**7:
            continue
        q = rng.standard_normal((nq, d)).astype(np.float32)
        D, I = idx.search(q, k, **params)
        msg = _check_results(D, I, stored, pad, k, nq, f"search(nq={nq},k={k})")
        if msg:
            return msg
    if d > 65536:
        return None
    q = rng.standard_normal((9, d)).astype(np.float32)
    D, _I = idx.search(q, 1, **params)
    radius = float(np.median(D[:, 0])) if np.isfinite(D[:, 0]).all() and D.size else 1.0
    lims, RD, RI = idx.range_search(q, radius, **params)
    lims = np.asarray(lims)
    if lims.shape != (10,) or lims[0] != 0 or (np.diff(lims) < 0).any() or lims[-1] != len(RI):
        return f"range_search: bad lims {lims.tolist()}"
    if not np.isfinite(RD).all():
        return "range_search: non-finite distance"
    if any(int(v) not in stored for v in np.asarray(RI).tolist()):
        return "range_search: id not stored"
    if ids.size:
        rec = idx.reconstruct(ids[: min(5, ids.size)])
        if not np.isfinite(rec).all():
            return "reconstruct: non-finite values"
    # Mutations on the loaded index: add (AnnxError allowed: e.g. not trained), remove.
    try:
        idx.add(rng.standard_normal((3, d)).astype(np.float32))
    except annx.AnnxError:
        pass
    ids = np.asarray(idx.ids())
    stored = set(ids.tolist())
    if len(stored) != ids.size:
        return "after add: duplicate ids"
    if ids.size:
        idx.remove(ids[:1])
        stored.discard(int(ids[0]))
    q = rng.standard_normal((20, d)).astype(np.float32)
    D, I = idx.search(q, 4, **params)
    return _check_results(D, I, stored, pad, 4, 20, "search after add/remove")


def _exercise_binary(idx, rng: np.random.Generator) -> str | None:
    ids = np.asarray(idx.ids())
    stored = set(ids.tolist())
    if len(stored) != ids.size:
        return "ids(): duplicates"
    nb = idx.code_size
    for nq, k in ((1, 5), (17, idx.ntotal + 2)):
        q = rng.integers(0, 256, (nq, nb), dtype=np.uint8)
        D, I = idx.search(q, k)
        Df = np.where(np.asarray(I) >= 0, np.asarray(D, dtype=np.float64), np.inf)
        msg = _check_results(Df, I, stored, np.inf, k, nq, f"binary search(nq={nq},k={k})")
        if msg:
            return msg
        valid = np.asarray(I) >= 0
        if ((np.asarray(D)[valid] < 0) | (np.asarray(D)[valid] > idx.d)).any():
            return "binary search: Hamming distance out of [0, nbits]"
    return None


def _exercise_mv(mv, rng: np.random.Generator) -> str | None:
    ids = np.asarray(mv.ids())
    stored = set(ids.tolist())
    if len(stored) != ids.size or ids.size != mv.ntotal:
        return "ids(): duplicates or count mismatch"
    qs = [
        rng.standard_normal((int(rng.integers(1, 4)), mv.dim)).astype(np.float32) for _ in range(5)
    ]
    for k in (3, mv.ntotal + 2):
        S, I = mv.search(qs, k)
        msg = _check_results(S, I, stored, -np.inf, k, len(qs), f"mv search(k={k})")
        if msg:
            return msg
    if ids.size:
        t = mv.get_tokens(int(ids[0]))
        if not np.isfinite(t).all():
            return "get_tokens: non-finite values"
    return None


def _exercise_mt(mt, rng: np.random.Generator) -> str | None:
    ids = np.asarray(mt.ids())
    stored = set(ids.tolist())
    if len(stored) != ids.size or ids.size != mt.ntotal:
        return "ids(): duplicates or count mismatch"
    pad = np.inf if mt.metric == "l2" else -np.inf
    q = rng.standard_normal((7, mt.d)).astype(np.float32)
    for tenant in [int(t) for t in np.asarray(mt.tenants())[:3]] + [10**6]:
        for k in (3, mt.ntotal + 2):
            D, I = mt.search(q, k, tenant=tenant)
            msg = _check_results(D, I, stored, pad, k, len(q), f"mt search(tenant={tenant}, k={k})")
            if msg:
                return msg
    if ids.size:
        if not np.isfinite(mt.reconstruct(ids[:3])).all():
            return "reconstruct: non-finite values"
        for i in ids[:3].tolist():
            mt.tenants_of(int(i))
        mt.remove(ids[:1])
    return None


def _load_and_check(
    loader: str, opener: str, path: str, data: bytes, rng: np.random.Generator
) -> tuple[str, str]:
    """(status, detail) of loading one file one way: 'refused', 'ok' or 'FAIL'."""
    import annx

    try:
        if loader == "mv":
            obj = (
                annx.MultiVectorIndex.load(path)
                if opener != "bytes"
                else annx.MultiVectorIndex.from_bytes(data)
            )
        elif loader == "binary":
            obj = (
                annx.BinaryIndex.load(path, mmap=opener == "mmap")
                if opener != "bytes"
                else annx.BinaryIndex.from_bytes(data)
            )
        else:
            obj = (
                annx.load(path, mmap=opener == "mmap")
                if opener != "bytes"
                else annx.from_bytes(data)
            )
    except annx.AnnxError as e:
        return "refused", f"{type(e).__name__}: {str(e)[:160]}"
    except MemoryError as e:
        return "FAIL", f"load raised MemoryError (allocation beyond the memory cap) {e}"[:200]
    except BaseException as e:  # noqa: BLE001 - every other exception is a finding
        return "FAIL", f"load raised {type(e).__name__}: {str(e)[:160]}"
    try:
        # annx.load / annx.from_bytes open every kind and return the class that saved it.
        if isinstance(obj, annx.MultiVectorIndex):
            msg = _exercise_mv(obj, rng)
        elif isinstance(obj, annx.MultiTenantIndex):
            msg = _exercise_mt(obj, rng)
        elif isinstance(obj, annx.BinaryIndex):
            msg = _exercise_binary(obj, rng)
        else:
            msg = _exercise_index(obj, rng)
    except MemoryError as e:
        return "FAIL", f"loaded; then MemoryError {e}"[:200]
    except BaseException as e:  # noqa: BLE001
        return "FAIL", f"loaded; then {type(e).__name__}: {str(e)[:160]}"
    if msg:
        return "FAIL", f"loaded; {msg}"
    return "ok", ""


def _run_one(entry: dict, rng: np.random.Generator) -> tuple[str, str]:
    """Load the case with its own loader, then with the other kind's loader.

    ``annx.load`` opens every kind (the result is exercised as the class it returns);
    ``MultiVectorIndex.load`` must refuse a single-vector file (or load a sound index).
    """
    path, loader, opener = entry["path"], entry["loader"], entry["opener"]
    data = Path(path).read_bytes()
    status, detail = _load_and_check(loader, opener, path, data, rng)
    if status == "FAIL":
        return status, detail
    other = "index" if loader == "mv" else "mv"
    s2, d2 = _load_and_check(other, "bytes", path, data, rng)
    if s2 == "FAIL":
        name = "annx.from_bytes" if other == "index" else "MultiVectorIndex.from_bytes"
        return s2, f"{name}: {d2}"
    return status, detail


def child_main(case_file: str) -> int:
    """Run the cases listed in ``case_file`` (JSON), reporting on stdout line by line."""
    import faulthandler
    import resource

    faulthandler.enable()  # a crash prints the Python stack to stderr
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    import annx

    annx.set_num_threads(2)
    # The cap comes after the imports and the thread pool: only the cases run under it.
    if not _under_sanitizer():
        try:
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
        except (ValueError, OSError):
            pass
    entries = json.loads(Path(case_file).read_text())
    timeout = int(entries["timeout"])
    out = sys.stdout
    for entry in entries["cases"]:
        i = entry["i"]
        out.write(f"S {i}\n")
        out.flush()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        signal.alarm(timeout)
        status, detail = _run_one(entry, np.random.default_rng(i))
        signal.alarm(0)
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
        if status != "FAIL" and grown > RSS_JUMP_MB:
            status, detail = "FAIL", f"{status}; peak memory grew by {grown} MB"
        out.write(f"R {i} {status} {json.dumps(detail)}\n")
        out.flush()
        if grown > RSS_JUMP_MB:
            return 3  # a fresh child measures the next case's memory from a clean baseline
    return 0


@dataclass
class Outcome:
    """What happened to one case."""

    i: int
    kind: str
    mutation: str
    status: str  # ok, refused, FAIL
    detail: str

    def line(self) -> str:
        """Compact one-line description."""
        return f"#{self.i} [{self.kind}] {self.mutation} -> {self.detail}"


@dataclass
class Report:
    """Outcomes of a run."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        """The failing cases."""
        return [o for o in self.outcomes if o.status == "FAIL"]

    def counts(self) -> dict[str, int]:
        """Number of cases per status."""
        c: dict[str, int] = {}
        for o in self.outcomes:
            c[o.status] = c.get(o.status, 0) + 1
        return c


def _child_env() -> dict[str, str]:
    import annx

    env = dict(os.environ)
    pkg_parent = str(Path(annx.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in [env.get("PYTHONPATH")] if p])
    env.setdefault("OMP_NUM_THREADS", "2")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except (ValueError, AttributeError):
        return f"signal {-rc}"


def run_batch(
    batch: list[tuple[int, Case]], workdir: Path, timeout: int = CASE_TIMEOUT_S
) -> list[Outcome]:
    """Run cases in child processes; a crashing case is recorded and the rest go on."""
    if _under_sanitizer():
        timeout *= 4
    files = {}
    for i, case in batch:
        p = workdir / f"case{i}.annx"
        p.write_bytes(case.data)
        files[i] = p
    by_i = dict(batch)
    todo = [i for i, _ in batch]
    results: dict[int, Outcome] = {}
    env = _child_env()
    while todo:
        spec = {
            "timeout": timeout,
            "cases": [
                {"i": i, "path": str(files[i]), "loader": by_i[i].loader, "opener": by_i[i].opener}
                for i in todo
            ],
        }
        jf = workdir / f"batch{todo[0]}.json"
        jf.write_text(json.dumps(spec))
        try:
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", str(jf)],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout * len(todo) + 120,
            )
        except subprocess.TimeoutExpired as e:  # the alarm did not fire: a hard hang
            so = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            proc = subprocess.CompletedProcess(e.cmd, -signal.SIGALRM, so, "")
        started = None
        for line in proc.stdout.splitlines():
            parts = line.split(" ", 3)
            if parts[0] == "S":
                started = int(parts[1])
            elif parts[0] == "R" and len(parts) == 4:
                i = int(parts[1])
                c = by_i[i]
                results[i] = Outcome(i, c.kind, c.mutation, parts[2], json.loads(parts[3]))
                started = None
        if started is not None:
            c = by_i[started]
            rc = proc.returncode
            if rc == -signal.SIGALRM:
                what = f"hang: no result within {timeout} s"
            elif rc < 0:
                what = f"crash: {_signal_name(rc)}"
            else:
                what = f"child exited with status {rc}"
            err = [
                ln
                for ln in proc.stderr.splitlines()
                if ln.strip() and ("ERROR" in ln or "error" in ln.lower() or "Fatal" in ln)
            ]
            if err:
                what += f" ({err[0].strip()[:150]})"
            fatal = [ln for ln in proc.stderr.splitlines() if "Fatal Python error" in ln]
            if fatal and not err:
                what += f" ({fatal[0].strip()[:150]})"
            results[started] = Outcome(started, c.kind, c.mutation, "FAIL", what)
        elif proc.returncode not in (0, 3):
            # Died between cases (should not happen): report the whole remainder once.
            i = next((j for j in todo if j not in results), None)
            if i is not None:
                c = by_i[i]
                tail = " | ".join(proc.stderr.strip().splitlines()[-6:])
                results[i] = Outcome(
                    i, c.kind, c.mutation, "FAIL",
                    f"child died before starting this case (status {proc.returncode}): {tail}",
                )  # fmt: skip
        todo = [i for i in todo if i not in results]
    for p in files.values():
        p.unlink(missing_ok=True)
    return [results[i] for i, _ in batch]


def run(
    nseeds_cases: int,
    seed: int,
    *,
    start: int = 0,
    batch: int = 200,
    jobs: int = 2,
    seeds: Sequence[Seed] | None = None,
    save_failures: Path | None = None,
    progress: bool = False,
) -> Report:
    """Generate and run cases ``start .. start + nseeds_cases - 1`` of run ``seed``."""
    mutator = Mutator(seeds if seeds is not None else build_seeds())
    report = Report()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="annx_fuzz_") as tmp:
        workdir = Path(tmp)

        def batches() -> Iterator[list[tuple[int, Case]]]:
            for b0 in range(start, start + nseeds_cases, batch):
                n = min(batch, start + nseeds_cases - b0)
                yield list(generate(mutator, seed, b0, n))

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            pending = []
            it = batches()
            for b in it:
                pending.append((b, pool.submit(run_batch, b, workdir)))
                while len(pending) >= 2 * max(1, jobs):
                    bb, fut = pending.pop(0)
                    _collect(report, bb, fut.result(), save_failures)
                    if progress:
                        _progress(report, t0)
            for bb, fut in pending:
                _collect(report, bb, fut.result(), save_failures)
                if progress:
                    _progress(report, t0)
    return report


def _collect(report: Report, batch, outcomes: list[Outcome], save: Path | None) -> None:
    report.outcomes.extend(outcomes)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        cases = dict(batch)
        for o in outcomes:
            if o.status == "FAIL":
                (save / f"case{o.i}.annx").write_bytes(cases[o.i].data)


def _progress(report: Report, t0: float) -> None:
    c = report.counts()
    print(f"{len(report.outcomes)} cases, {c}, {time.time() - t0:.0f} s", file=sys.stderr)


def summarize(failures: Sequence[Outcome], limit: int = 400) -> str:
    """Failing cases, one per line (grouped by kind order of appearance)."""
    lines = [o.line() for o in failures[:limit]]
    if len(failures) > limit:
        lines.append(f"... and {len(failures) - limit} more")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: a long fuzz run (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="python -m tests.annx_fuzz", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first case number (to resume)")
    ap.add_argument("--batch", type=int, default=200, help="cases per child process")
    ap.add_argument("--jobs", type=int, default=2, help="child processes at a time")
    ap.add_argument("--save-failures", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child_main(a.child)
    rep = run(
        a.cases, a.seed, start=a.start, batch=a.batch, jobs=a.jobs,
        save_failures=a.save_failures, progress=True,
    )  # fmt: skip
    fails = rep.failures
    print(f"{len(rep.outcomes)} cases: {rep.counts()}")
    if fails:
        print(summarize(fails, limit=10**9))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
