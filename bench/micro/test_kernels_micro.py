"""pytest-benchmark micro-benchmarks of annx's kernels, per ISA level.

Run (not part of the test suite; needs ``pip install "annx[bench]"``)::

    python -m pytest bench/micro -p no:cacheprovider --benchmark-columns=median,ops
    python -m pytest bench/micro --benchmark-json out.json   # machine-readable

Each benchmark runs once per ISA level this CPU supports (``annx.available_isas()``), so
the scalar/AVX2/AVX-512 speed-ups of one kernel read off one table. Sizes are those of
the real workloads: 384-d MiniLM rows (distance and gather kernels over 4,096 rows), a
4,096-score top-k filter, a 1,024-vector fast-scan list of 192 sub-quantizers, and
Hamming distances over 48-byte (384-bit) codes.
"""

from __future__ import annotations

import numpy as np
import pytest

import annx
from annx import _core

D = 384
N = 4096


@pytest.fixture(params=annx.available_isas())
def isa(request: pytest.FixtureRequest):
    before = annx.get_isa()
    annx.set_isa(request.param)
    yield request.param
    annx.set_isa(before)


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    g = np.random.default_rng(0)
    x = g.standard_normal((N, D)).astype(np.float32)
    return {
        "q": g.standard_normal(D).astype(np.float32),
        "f32": x,
        "f16": x.astype(np.float16).view(np.uint16),
        "rows": g.permutation(N).astype(np.uint32),
        "scores": g.standard_normal(N).astype(np.float32),
        "codes": g.integers(0, 256, size=(32 * 192 // 2) * (1024 // 32), dtype=np.uint8),
        "lut": g.integers(0, 16, size=96 * 32, dtype=np.uint8),
        "bits_q": g.integers(0, 256, size=48, dtype=np.uint8),
        "bits_x": g.integers(0, 256, size=(N, 48), dtype=np.uint8),
    }


@pytest.mark.parametrize("kind", ["l2_f32", "ip_f32", "l2_f16", "ip_f16"])
def test_distance_many(benchmark, isa, data, kind: str) -> None:
    """One query against 4,096 contiguous 384-d rows."""
    x = data["f32"] if kind.endswith("f32") else data["f16"]
    benchmark(_core.kernel_many, kind, data["q"], x)


@pytest.mark.parametrize("kind", ["l2_f32", "l2_f16"])
def test_distance_gather(benchmark, isa, data, kind: str) -> None:
    """One query against 4,096 rows in random order (graph walks, re-ranking)."""
    x = data["f32"] if kind.endswith("f32") else data["f16"]
    benchmark(_core.kernel_gather, kind, data["q"], x, data["rows"])


def test_topk_filter(benchmark, isa, data) -> None:
    """select_le over 4,096 scores with ~1 % passing (the top-k filter of every scan)."""
    thr = float(np.quantile(data["scores"], 0.01))
    benchmark(_core.kernel_select_le, data["scores"], thr)


def test_fastscan_list(benchmark, isa, data) -> None:
    """4-bit fast-scan accumulation over 32 blocks (1,024 vectors) of 192 sub-quantizers."""
    benchmark(_core.kernel_pq4_accumulate, data["codes"], 32, 96, data["lut"])


def test_popcount_hamming(benchmark, isa, data) -> None:
    """Hamming distance of one 384-bit code to 4,096 codes."""
    benchmark(_core.kernel_hamming_many, data["bits_q"], data["bits_x"])
