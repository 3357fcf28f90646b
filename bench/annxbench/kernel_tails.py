"""Nanoseconds per row of ``_core.kernel_gather`` for F32, F16 and SQ8 kinds at a few
dimensions around the SIMD width (tails), per ISA level: 4,096 random rows of 4,096 (in
cache), best of 5 x 20 calls. Used for bench/results/graph-lowd.md.

Usage: ``PYTHONPATH=python python bench/annxbench/kernel_tails.py``
"""

from __future__ import annotations

import time

import numpy as np

import annx
from annx import _core


def main() -> None:
    g = np.random.default_rng(0)
    before = annx.get_isa()
    for isa in annx.available_isas()[1:]:
        annx.set_isa(isa)
        for d in (48, 50, 52, 56, 63, 64, 100):
            x = g.standard_normal((4096, d)).astype(np.float32)
            q = g.standard_normal(d).astype(np.float32)
            rows = g.integers(0, 4096, size=4096).astype(np.uint32)
            u8 = g.integers(0, 256, (4096, d), dtype=np.uint8)
            kinds = {"l2_f32": x, "l2_f16": x.astype(np.float16).view(np.uint16),
                     "wl2_u8": u8, "ip_u8": u8}  # fmt: skip
            out = []
            for kind, xx in kinds.items():
                aux = np.ones(d, np.float32) if kind == "wl2_u8" else None
                best = 1e9
                for _ in range(5):
                    t = time.perf_counter()
                    for _ in range(20):
                        _core.kernel_gather(kind, q, xx, rows, aux)
                    best = min(best, time.perf_counter() - t)
                out.append(f"{kind} {best / 20 / len(rows) * 1e9:.1f} ns")
            print(isa, d, ", ".join(out), flush=True)
    annx.set_isa(before)


if __name__ == "__main__":
    main()
