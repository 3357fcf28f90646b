"""Every kernel on every ISA level available here, against numpy (float64) references."""

from __future__ import annotations

import numpy as np
import pytest

import annx
from annx import _core

ISAS = annx.available_isas()

DIMS = [1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 97, 127, 128, 129, 384, 1000]


def f16_bits(x):
    with np.errstate(over="ignore"):
        return x.astype(np.float16).view(np.uint16)


def bf16_bits(x):
    """Round-to-nearest-even float32 -> bfloat16 bits (numpy reference)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return r.astype(np.uint16)


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def unaligned(a: np.ndarray) -> np.ndarray:
    """A copy of `a` whose data pointer is offset by one element from a 64-byte boundary."""
    flat = np.empty(a.size + 64 // a.itemsize + 1, dtype=a.dtype)
    base = (-flat.ctypes.data % 64) // a.itemsize
    out = flat[base + 1 : base + 1 + a.size].reshape(a.shape)
    out[...] = a
    return out


def check_close(got, ref, scale):
    got = np.asarray(got, dtype=np.float64)
    assert np.all(np.abs(got - ref) <= 1e-5 * scale + 1e-6), (got, ref)


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("storage", ["f32", "f16", "bf16"])
def test_float_kernels(isa, d, storage, rng):
    n = 9
    q = unaligned(rng.standard_normal(d).astype(np.float32))
    x = rng.standard_normal((n, d)).astype(np.float32)
    if storage == "f32":
        bits, xd = x, x.astype(np.float64)
    elif storage == "f16":
        bits = f16_bits(x)
        xd = bits.view(np.float16).astype(np.float64)
    else:
        bits = bf16_bits(x)
        xd = bf16_to_f32(bits).astype(np.float64)
    bits = unaligned(bits)
    qd = q.astype(np.float64)
    ref_l2 = ((xd - qd) ** 2).sum(1)
    ref_ip = xd @ qd
    scale_ip = np.abs(xd * qd).sum(1)
    for kind, ref, scale in (("l2", ref_l2, ref_l2), ("ip", ref_ip, scale_ip)):
        name = f"{kind}_{storage}"
        check_close(_core.kernel_many(name, q, bits), ref, scale)
        rows = np.array([8, 0, 3, 3, 7, 1, 2], dtype=np.uint32)
        check_close(_core.kernel_gather(name, q, bits, rows), ref[rows], scale[rows])
        check_close(_core.kernel_one(name, q, bits[2:3]), ref[2:3], scale[2:3])


@pytest.mark.parametrize("d", DIMS)
def test_sq8_kernels(isa, d, rng):
    codes = unaligned(rng.integers(0, 256, size=(11, d), dtype=np.uint8))
    q = rng.standard_normal(d).astype(np.float32) * 10
    w = rng.random(d).astype(np.float32)
    c = codes.astype(np.float64)
    ref_ip = c @ q.astype(np.float64)
    ref_wl2 = (w.astype(np.float64) * (q.astype(np.float64) - c) ** 2).sum(1)
    check_close(_core.kernel_many("ip_u8", q, codes), ref_ip, np.abs(c * q).sum(1))
    check_close(_core.kernel_many("wl2_u8", q, codes, w), ref_wl2, ref_wl2)
    rows = np.array([10, 0, 5], dtype=np.uint32)
    check_close(_core.kernel_gather("wl2_u8", q, codes, rows, w), ref_wl2[rows], ref_wl2[rows])


@pytest.mark.parametrize("d", DIMS)
def test_many_equals_one_bit_for_bit(isa, d, rng):
    """A row's score from a scan (`many`, any position) is `one`'s score exactly: batched
    flat scans re-score their candidates with `one` and must agree with one-query scans."""
    n = 13
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal(d).astype(np.float32)
    w = rng.random(d).astype(np.float32)
    codes = rng.integers(0, 256, size=(n, d), dtype=np.uint8)
    cases = [(f"{k}_f32", x, None) for k in ("l2", "ip")]
    cases += [(f"{k}_f16", f16_bits(x), None) for k in ("l2", "ip")]
    cases += [(f"{k}_bf16", bf16_bits(x), None) for k in ("l2", "ip")]
    cases += [("ip_u8", codes, None), ("wl2_u8", codes, w)]
    for name, rows, aux in cases:
        for start in (0, 1, 3):  # where the scan starts moves rows between code paths
            got = _core.kernel_many(name, q, np.ascontiguousarray(rows[start:]), aux)
            one = [_core.kernel_one(name, q, rows[i : i + 1], aux) for i in range(start, n)]
            np.testing.assert_array_equal(got, np.array(one, np.float32), err_msg=name)


@pytest.mark.parametrize("d", DIMS)
def test_int8_kernels_exact(isa, d, rng):
    a = unaligned(rng.integers(-128, 128, size=d, dtype=np.int8))
    b = rng.integers(-128, 128, size=d, dtype=np.int8)
    ai, bi = a.astype(np.int64), b.astype(np.int64)
    assert _core.kernel_i8("l2", a, b) == int(((ai - bi) ** 2).sum())
    assert _core.kernel_i8("ip", a, b) == int((ai * bi).sum())
    extreme = np.full(d, -128, np.int8)
    assert _core.kernel_i8("l2", extreme, np.full(d, 127, np.int8)) == 255 * 255 * d
    assert _core.kernel_i8("ip", extreme, extreme) == 128 * 128 * d


@pytest.mark.parametrize("nbytes", [1, 3, 7, 8, 9, 16, 31, 48, 64, 65, 127, 128, 200])
def test_hamming_exact(isa, nbytes, rng):
    q = unaligned(rng.integers(0, 256, size=nbytes, dtype=np.uint8))
    x = rng.integers(0, 256, size=(13, nbytes), dtype=np.uint8)
    ref = np.unpackbits(x ^ q, axis=1).sum(1)
    np.testing.assert_array_equal(_core.kernel_hamming_many(q, x), ref)
    assert _core.kernel_hamming(q, x[4]) == ref[4]
    assert _core.kernel_hamming(q, q) == 0
    np.testing.assert_array_equal(
        annx.distances.hamming(x[:3], x),
        np.unpackbits(x[:3, None, :] ^ x[None, :, :], axis=2).sum(2),
    )


@pytest.mark.parametrize("nq,nx,d", [(1, 1, 1), (3, 5, 7), (4, 4, 16), (8, 12, 33), (13, 29, 384)])
def test_dot_tile(isa, nq, nx, d, rng):
    q = rng.standard_normal((nq, d)).astype(np.float32)
    x = rng.standard_normal((nx, d)).astype(np.float32)
    ref = q.astype(np.float64) @ x.astype(np.float64).T
    scale = np.abs(q).astype(np.float64) @ np.abs(x).astype(np.float64).T
    check_close(_core.kernel_dot_tile(q, x), ref, scale)


def test_conversions_match_numpy(isa, rng):
    x = np.concatenate(
        [
            rng.standard_normal(1000).astype(np.float32) * 10.0 ** rng.integers(-8, 6, 1000),
            np.array(
                [0.0, -0.0, 65504, 65519.99, 65520, 1e-8, 6e-8, 2.98e-8, np.inf, -np.inf],
                np.float32,
            ),
        ]
    ).astype(np.float32)
    np.testing.assert_array_equal(_core.convert("f32_to_f16", x), f16_bits(x))
    np.testing.assert_array_equal(_core.convert("f32_to_bf16", x), bf16_bits(x))
    h = rng.integers(0, 1 << 16, size=4000, dtype=np.uint16)
    h = h[(h & 0x7C00) != 0x7C00]  # finite halves only (NaN payloads may differ)
    np.testing.assert_array_equal(
        _core.convert("f16_to_f32", h), h.view(np.float16).astype(np.float32)
    )
    np.testing.assert_array_equal(_core.convert("bf16_to_f32", h), bf16_to_f32(h))


@pytest.mark.parametrize("metric", ["l2", "ip", "cos"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_public_pairwise(metric, dtype, rng):
    x = rng.standard_normal((5, 23)).astype(np.float32)
    y = rng.standard_normal((17, 23)).astype(dtype)
    yd = y.astype(np.float64)
    xd = x.astype(np.float64)
    if metric == "l2":
        ref = ((xd[:, None, :] - yd[None]) ** 2).sum(2)
    elif metric == "ip":
        ref = xd @ yd.T
    else:
        ref = (xd @ yd.T) / np.outer(np.linalg.norm(xd, axis=1), np.linalg.norm(yd, axis=1))
    np.testing.assert_allclose(annx.distances.pairwise(x, y, metric), ref, rtol=1e-4, atol=1e-4)


def test_pairwise_int8(rng):
    x = rng.integers(-128, 128, size=(3, 40), dtype=np.int8)
    y = rng.integers(-128, 128, size=(4, 40), dtype=np.int8)
    xi, yi = x.astype(np.int64), y.astype(np.int64)
    np.testing.assert_array_equal(annx.distances.pairwise_int8(x, y, "ip"), xi @ yi.T)
    np.testing.assert_array_equal(
        annx.distances.pairwise_int8(x, y, "l2"), ((xi[:, None] - yi[None]) ** 2).sum(2)
    )


def test_isa_selection():
    assert "scalar" in ISAS
    assert annx.get_isa() in ISAS
    with pytest.raises(ValueError, match="unknown ISA"):
        annx.set_isa("sse9")
    cfg = annx.config()
    assert cfg["active_isa"] == annx.get_isa()
    assert cfg["detected_isa"] == ISAS[-1]


@pytest.mark.parametrize("n", [0, 1, 7, 16, 17, 100, 1000])
def test_select_le(isa, n, rng):
    v = rng.standard_normal(n).astype(np.float32)
    for thr in (-np.inf, -0.5, 0.0, 0.7, np.inf):
        np.testing.assert_array_equal(_core.kernel_select_le(v, thr), np.flatnonzero(v <= thr))


@pytest.mark.parametrize("nq,n,d", [(1, 1, 1), (1, 9, 50), (2, 5, 63), (3, 7, 64), (4, 4, 65),
                                    (5, 13, 384), (9, 3, 130)])  # fmt: skip
def test_dot_i8_gather_exact(isa, nq, n, d, rng):
    q = rng.integers(-128, 128, size=(nq, d), dtype=np.int8)
    x = rng.integers(-128, 128, size=(20, d), dtype=np.int8)
    x[0] = -128  # extreme rows: the VNNI level offsets rows by 128
    x[1] = 127
    q[0, : d // 2] = -128
    rows = rng.integers(0, 20, size=n).astype(np.uint32)
    rows[0] = 0
    ref = q.astype(np.int64) @ x[rows].astype(np.int64).T
    np.testing.assert_array_equal(_core.kernel_dot_i8_gather(q, x, rows), ref)
