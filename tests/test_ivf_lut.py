"""PQ lookup tables (ProductQuantizer::compute_lut) against float64 scores of the
decoded codes, including a padded last sub-space (d not a multiple of M, here a whole
sub-space past d) and offset, scaled data, for 8-bit (float tables) and 4-bit fast-scan
(quantised tables) with per-list L2 residual tables and shared inner-product tables."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import scores

import annx


@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("codec", ["PQ6", "PQ6x4fs"])
@pytest.mark.parametrize("residual", [True, False])
def test_lut_scores_match_decoded_codes(metric: str, codec: str, residual: bool) -> None:
    g = np.random.default_rng(21)
    x = (g.standard_normal((1500, 9)) * [1, 2, 3, 1, 1, 5, 1, 1, 2] + 40.0).astype(np.float32)
    q = (g.standard_normal((12, 9)) + 40.0).astype(np.float32)
    index = annx.index_factory(9, f"IVF4,{codec}", metric, by_residual=residual)
    index.train(x)
    index.add(x)
    D, I = index.search(q, 30, nprobe=4)
    ids = index.ids()
    s = scores(index.reconstruct(ids).astype(np.float64), q.astype(np.float64), metric)
    key = s if metric == "l2" else -s
    for r in range(len(q)):
        got = key[r, np.searchsorted(ids, I[r])]
        kth = np.sort(key[r])[29]
        span = np.ptp(key[r])
        if codec == "PQ6":  # float tables: the code distance itself
            np.testing.assert_allclose(D[r], s[r, np.searchsorted(ids, I[r])], rtol=1e-4,
                                       atol=1e-3 * span)  # fmt: skip
            assert (got <= kth + 1e-4 * span).all()
        else:  # 8-bit quantised tables: near the exact k-th
            assert (got <= kth + 0.02 * span).all()
