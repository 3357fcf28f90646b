"""Structure-aware fuzzing of index files, and loads of hostile paths and buffers.

The fuzzer (tests/annx_fuzz.py) mutates small files of every index kind at the section
level and rewrites them with valid checksums; every case runs in a child process and must
end in an ``annx.AnnxError`` or in a load whose searches return stored ids and finite
distances. CI runs a fixed-seed sample (``ANNX_FUZZ_CASES``, default 2,000 cases); a long
run is ``python -m tests.annx_fuzz --cases 200000 --seed N`` (docs/file-format.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import annx_fuzz as F
import numpy as np
import pytest

CI_CASES = int(os.environ.get("ANNX_FUZZ_CASES", "2000"))
CI_SEED = 17
CHILD_TIMEOUT_S = 30 if not F._under_sanitizer() else 120


@pytest.fixture(scope="module")
def seeds() -> list[F.Seed]:
    return F.build_seeds()


def test_crc32c_reference() -> None:
    assert F.crc32c(b"123456789") == 0xE3069283
    g = np.random.default_rng(0)
    for n in (0, 1, 63, 40_000, 1 << 20):
        b = g.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert F.crc32c(b) == F._raw_scalar(0xFFFFFFFF, b) ^ 0xFFFFFFFF


def test_seeds_cover_every_kind_and_round_trip(seeds: list[F.Seed]) -> None:
    kinds = " ".join(s.kind for s in seeds)
    for token in ("Flat/", "Flat,F16", "Flat,BF16", "Flat,SQ8", "HNSW4,F16", "HNSW4,BF16",
                  "HNSW4,SQ8", "Refine(F32)", "Refine(F16)", "HNSW4,BIN", "BEBR2",
                  "IVF4,Flat", "IVF4,SQ8", "IVF4,PQ4/", "PQ4x4fs", "IVF4_HNSW4", "PQ4/",
                  "LeanVec4,", "LeanVec4_ood", "Binary:", "MultiVector:"):  # fmt: skip
        assert token in kinds, token
    for s in seeds:
        secs = F.parse(s.data)
        assert F.build(secs) == s.data, s.kind  # the writer reproduces annx's bytes
    # Unmutated seeds pass the child's checks (the harness itself has no false alarms).
    cases = [(i, F.Case(s.kind, "none", s.loader, s.data, "bytes")) for i, s in enumerate(seeds)]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = F.run_batch(cases, Path(tmp))
    assert all(o.status == "ok" for o in out), F.summarize([o for o in out if o.status != "ok"])


def test_every_kind_meets_every_family(seeds: list[F.Seed]) -> None:
    m = F.Mutator(seeds)
    visited = set()
    S = len(seeds)
    for i in range(CI_CASES):
        fams = m.families(m.parsed[i % S])
        visited.add((i % S, fams[(i // S) % len(fams)]))
    for s in range(S):
        for fam in m.families(m.parsed[s]):
            assert (s, fam) in visited, (seeds[s].kind, fam, "raise ANNX_FUZZ_CASES")


def test_fuzz_fixed_seed(seeds: list[F.Seed]) -> None:
    """Every mutated file is refused with an AnnxError or loads into a sound index."""
    report = F.run(CI_CASES, CI_SEED, seeds=seeds, jobs=2)
    assert len(report.outcomes) == CI_CASES
    counts = report.counts()
    assert counts.get("refused", 0) > CI_CASES // 4, counts  # mutations reach the checks
    fails = report.failures
    assert not fails, (
        f"{len(fails)} of {CI_CASES} fuzz cases failed ({counts}); reproduce one with "
        f"`python -m tests.annx_fuzz --seed {CI_SEED} --start I --cases 1`:\n" + F.summarize(fails)
    )


# ------------------------------------------------------------------ hostile paths
_LOAD_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    if sys.argv[3] == "1":  # reading /dev/zero forever must not take the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    import annx
    try:
        annx.load(sys.argv[1], mmap=sys.argv[2] == "1")
    except (annx.AnnxError, OSError) as e:
        print("RAISED", type(e).__name__, e)
    else:
        print("LOADED")
    """
)


def _run_child(script: str, *args: str, timeout: float = CHILD_TIMEOUT_S) -> tuple[str, str]:
    """(status, output): status 'ok', 'hang' or 'crash'."""
    return _run_children([(script, args)], timeout)[0]


def _run_children(jobs: list[tuple[str, tuple[str, ...]]], timeout: float) -> list[tuple[str, str]]:
    """Run ``python -c script args`` children at once; (status, output) of each."""
    env = F._child_env()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for script, args in jobs
    ]
    out = []
    deadline = time.monotonic() + timeout  # the children run at the same time
    for p in procs:
        try:
            so, se = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            out.append(("hang", f"no answer within {timeout} s"))
            continue
        if p.returncode != 0:
            err = " | ".join(se.strip().splitlines()[-2:])
            out.append(("crash", f"status {p.returncode}; stdout: {so[-300:]}; stderr: {err}"))
        else:
            out.append(("ok", so))
    return out


def test_load_non_regular_files_raises(tmp_path: Path) -> None:
    """annx.load of a directory, FIFO or device raises (OSError or FormatError), never hangs."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    paths = {"directory": str(tmp_path), "fifo": str(fifo)}
    for dev in ("/dev/zero", "/dev/null", "/dev/urandom"):
        if os.path.exists(dev):
            paths[dev] = dev
    cap = "0" if F._under_sanitizer() else "1"
    jobs = [(name, mm) for name in paths for mm in ("0", "1")]
    results = _run_children([(_LOAD_SCRIPT, (paths[n], mm, cap)) for n, mm in jobs], 15)
    bad = [
        f"annx.load({name}, mmap={mm == '1'}): {status}: {out.strip()[:200]}"
        for (name, mm), (status, out) in zip(jobs, results, strict=False)
        if status != "ok" or not out.startswith("RAISED")
    ]
    assert not bad, "\n".join(bad)


_BUFFER_SCRIPT = textwrap.dedent(
    """
    import ctypes, mmap, sys
    import numpy as np, annx

    g = np.random.default_rng(0)
    idx = annx.index_factory(8, "Flat")
    idx.add(g.standard_normal((50, 8)).astype(np.float32))
    b = idx.to_bytes()
    q = g.standard_normal((4, 8)).astype(np.float32)
    ref = idx.search(q, 5)
    page = mmap.PAGESIZE

    def guarded(data):
        # data placed just before a PROT_NONE page: reading past its end faults.
        n = (len(data) + page - 1) // page * page
        m = mmap.mmap(-1, n + page)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        libc = ctypes.CDLL(None)
        assert libc.mprotect(ctypes.c_void_p(addr + n), page, 0) == 0
        off = n - len(data)
        m[off:n] = data
        return memoryview(m)[off:n]

    doubled = np.zeros(2 * len(b), np.uint8)
    doubled[::2] = np.frombuffer(b, np.uint8)
    rev = np.frombuffer(b[::-1], np.uint8)
    cases = {
        "memoryview(b)[::-1]": lambda: memoryview(b)[::-1],
        "guarded memoryview[::-1]": lambda: guarded(b)[::-1],
        "guarded reversed file [::-1]": lambda: guarded(b[::-1])[::-1],
        "numpy [::2] of a doubled buffer": lambda: doubled[::2],
        "memoryview [::2] of a doubled buffer": lambda: memoryview(doubled.tobytes())[::2],
        "numpy reversed view of the reversed file": lambda: rev[::-1],
        "Fortran-order 2-D uint8": lambda: np.asfortranarray(
            np.frombuffer(b, np.uint8).reshape(-1, 32)),
        "memoryview cast to uint32": lambda: memoryview(b).cast("I"),
        "float32 array over the bytes": lambda: np.frombuffer(b, np.float32),
        "guarded contiguous": lambda: guarded(b),
    }
    if sys.argv[1] == "list":
        print("\\n".join(cases))
        sys.exit(0)
    name = sys.argv[1]
    buf = cases[name]()
    try:
        got = annx.from_bytes(buf)
    except (annx.AnnxError, ValueError, TypeError, BufferError) as e:
        print("RAISED", type(e).__name__, e)
        sys.exit(0)
    D, I = got.search(q, 5)
    same = (np.array_equal(I, ref[1]) and np.array_equal(D, ref[0])
            and np.array_equal(got.ids(), idx.ids()))
    print("LOADED" if same else "WRONG")
    """
)


def test_from_bytes_non_contiguous_buffers() -> None:
    """Non-contiguous buffers raise or load the file they show; never read out of bounds.

    Each buffer runs in its own child; the "guarded" ones end just before a PROT_NONE
    page, so a read past the buffer faults instead of passing unnoticed.
    """
    status, out = _run_child(_BUFFER_SCRIPT, "list")
    assert status == "ok", out
    names = out.split("\n")[:-1] if out.endswith("\n") else out.split("\n")
    results = _run_children([(_BUFFER_SCRIPT, (n,)) for n in names], CHILD_TIMEOUT_S)
    bad = []
    for name, (st, text) in zip(names, results, strict=False):
        text = text.strip()
        # A reversed view of the file shows reversed bytes: not an annx file, must raise.
        shows_file = "[::-1]" not in name or "reversed file" in name
        if st != "ok" or text.startswith("WRONG") or (text == "LOADED" and not shows_file):
            bad.append(f"annx.from_bytes({name}): {st}: {text[:200]}")
    assert not bad, "\n".join(bad)
