"""MultiTenantIndex against exact per-tenant brute force (float64)."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

import annx_fuzz  # tests/ helper module
import numpy as np
import pytest
from conftest import METRICS, brute_force, make_clustered, make_data, pad_value, recall, scores
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import annx

# ---- helpers --------------------------------------------------------------------------


class Model:
    """The reference: every vector with its tenant set, searched exactly in float64."""

    def __init__(self, d: int, metric: str) -> None:
        self.d, self.metric = d, metric
        self.vecs: dict[int, np.ndarray] = {}
        self.ten: dict[int, set[int]] = {}

    def add(self, x: np.ndarray, ids: np.ndarray, tenants: list[list[int]]) -> None:
        for v, i, t in zip(x, ids.tolist(), tenants, strict=False):
            self.vecs[i] = v
            self.ten[i] = set(t)

    def members(self, tenant: int) -> np.ndarray:
        return np.array(sorted(i for i, t in self.ten.items() if tenant in t), np.int64)

    def search(self, q: np.ndarray, k: int, tenant: int) -> tuple[np.ndarray, np.ndarray]:
        ids = self.members(tenant)
        x = np.array([self.vecs[i] for i in ids.tolist()]).reshape(-1, self.d)
        return brute_force(x, q, k, self.metric, ids)


def layout(n: int, ntenants: int, seed: int, max_per: int = 3) -> list[list[int]]:
    """Skewed tenant lists: tenant t is picked with probability ~ 1 / (t + 1)."""
    g = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, ntenants + 1)
    p /= p.sum()
    out = []
    for _ in range(n):
        m = int(g.integers(0, max_per + 1))
        out.append(sorted(set(g.choice(ntenants, size=m, p=p).tolist())))
    return out


def check_valid(mt: annx.MultiTenantIndex, model: Model, q: np.ndarray, k: int, tenant: int,
                D: np.ndarray, I: np.ndarray) -> None:  # fmt: skip
    """Results of an approximate search: right tenant, right scores, sorted, padded."""
    members = set(model.members(tenant).tolist())
    expect = min(k, len(members))
    for row in range(len(q)):
        got = I[row][I[row] >= 0]
        assert len(got) == expect, (len(got), expect)
        assert np.all(I[row][expect:] == -1)
        assert np.all(D[row][expect:] == pad_value(model.metric))
        assert len(set(got.tolist())) == len(got)
        assert set(got.tolist()) <= members
        if len(got):
            x = np.array([model.vecs[i] for i in got.tolist()])
            ref = scores(x, q[row : row + 1], model.metric)[0]
            np.testing.assert_allclose(D[row][:expect], ref, rtol=1e-4, atol=1e-3)
            d = D[row][:expect]
            assert np.all(np.diff(d) >= 0) if model.metric == "l2" else np.all(np.diff(d) <= 0)


def check_exact(model: Model, q: np.ndarray, k: int, tenant: int, D: np.ndarray,
                I: np.ndarray) -> None:  # fmt: skip
    """Results of an exact search: the reference's, ids differing only on float32 ties."""
    Dr, Ir = model.search(q, k, tenant)
    np.testing.assert_allclose(D, Dr, rtol=1e-4, atol=1e-3)
    members = set(model.members(tenant).tolist())
    for row, (a, b) in enumerate(zip(I, Ir, strict=False)):
        assert len(set(a[a >= 0].tolist())) == int(np.sum(a >= 0))
        for j in np.nonzero(a != b)[0].tolist():
            assert a[j] in members, (a[j], b[j])
            true = scores(model.vecs[int(a[j])][None], q[row : row + 1], model.metric)[0, 0]
            np.testing.assert_allclose(true, Dr[row, j], rtol=1e-4, atol=1e-3)


def build(x: np.ndarray, tenants: list[list[int]], metric: str = "l2", **kw: Any):
    mt = annx.MultiTenantIndex(x.shape[1], metric, **kw)
    mt.train(x)
    ids = mt.add(x, tenants=tenants)
    model = Model(x.shape[1], metric)
    model.add(x, ids, tenants)
    return mt, model


# ---- basics ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_exact_small_tenants(metric: str) -> None:
    x = make_clustered(600, 16, seed=1)
    tenants = layout(600, 12, seed=2)
    mt, model = build(x, tenants, metric, exact_threshold=10**6, leaf_size=8)
    q = make_data(9, 16, seed=3)
    for t in range(12):
        D, I = mt.search(q, 7, tenant=t)
        check_exact(model, q, 7, t, D, I)
        assert mt.tenant_size(t) == len(model.members(t))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("shape", ["plain", "offset", "scaled", "duplicated"])
def test_block_scans_are_exact(metric: str, shape: str) -> None:
    # Batches of >= 8 queries for a tenant of >= 64 Ki floats are scanned together (one
    # packed dot tile per chunk of the tenant's rows); L2 ranks by |x|^2 - 2<q,x> and
    # must fall back to direct scans where that cancels (data far from the origin).
    g = np.random.default_rng(11)
    n, d = 2600, 64
    x = make_clustered(n, d, seed=4)
    if shape == "offset":
        x = x + np.float32(1000.0)
    elif shape == "scaled":
        x = x * np.float32(1e4)
    elif shape == "duplicated":
        x[1::2] = x[::2][: len(x[1::2])]
    tenants = [[0, 1] if i % 5 else [0] for i in range(n)]  # 0: all rows, 1: 80 %
    mt, model = build(x, tenants, metric, exact_threshold=100)  # blocks up to 400 rows: walks
    mt2, _ = build(x, tenants, metric, exact_threshold=4000)
    q = x[g.choice(n, 40, replace=False)] + g.standard_normal((40, d)).astype(np.float32)
    for index in (mt2,):
        for t in (0, 1):
            for nq in (1, 8, 33, 40):
                D, I = index.search(q[:nq], 10, tenant=t)
                check_exact(model, q[:nq], 10, t, D, I)
    # Above kBlockFactor x the exact size, batches take the tree walk: still valid.
    D, I = mt.search(q, 10, tenant=0, ef_search=64)
    check_valid(mt, model, q, 10, 0, D, I)


@pytest.mark.parametrize("metric", METRICS)
def test_tree_walk_is_valid_and_near_exact(metric: str) -> None:
    x = make_clustered(3000, 24, seed=4, clusters=20)
    tenants = layout(3000, 8, seed=5, max_per=4)
    mt, model = build(x, tenants, metric, exact_threshold=0, leaf_size=8, split=16)
    assert mt.tree_shape["depth"] >= 2
    q = make_clustered(40, 24, seed=6, clusters=20)
    for t in range(8):
        size = mt.tenant_size(t)
        for ef in (10, 64):
            D, I = mt.search(q, 10, tenant=t, ef_search=ef)
            check_valid(mt, model, q, 10, t, D, I)
        D, I = mt.search(q, 10, tenant=t, ef_search=max(size - 1, 1))
        check_valid(mt, model, q, 10, t, D, I)
        assert recall(I, model.search(q, 10, t)[1]) >= 0.97


@pytest.mark.parametrize("metric", METRICS)
def test_recall_fixed_seed(metric: str) -> None:
    # Offset and scaled data: the tree must not depend on the data's origin or scale.
    x = make_clustered(6000, 32, seed=7, clusters=40) * 50.0 + 1000.0
    tenants = layout(6000, 30, seed=8, max_per=3)
    mt, model = build(x, tenants, metric, exact_threshold=240)
    q = make_clustered(50, 32, seed=9, clusters=40) * 50.0 + 1000.0
    rec = []
    for t in range(30):
        if mt.tenant_size(t) <= 240:
            continue
        D, I = mt.search(q, 10, tenant=t, ef_search=mt.tenant_size(t) // 4)
        check_valid(mt, model, q, 10, t, D, I)
        rec.append(recall(I, model.search(q, 10, t)[1]))
    assert len(rec) >= 5
    assert np.mean(rec) >= 0.95 and min(rec) >= 0.85, rec


def test_unknown_tenant_and_untenanted_vectors() -> None:
    x = make_data(50, 4, seed=1)
    mt = annx.MultiTenantIndex(4)
    mt.train(x)
    ids = mt.add(x[:40], tenants=[[1]] * 20 + [[]] * 20)
    mt.add(x[40:])  # no tenants at all
    assert len(mt) == 50 and mt.ntotal == 50
    np.testing.assert_array_equal(ids, np.arange(40))
    D, I = mt.search(x[:3], 5, tenant=99)
    assert np.all(I == -1) and np.all(np.isinf(D)) and np.all(D > 0)
    D, I = mt.search(x[20:30], 30, tenant=1)
    assert set(I[I >= 0].tolist()) <= set(range(20))
    assert np.all(I[:, 20:] == -1)
    assert mt.tenant_size(1) == 20 and mt.tenant_size(2) == 0
    assert mt.tenants_of(0).tolist() == [1] and mt.tenants_of(45).tolist() == []
    np.testing.assert_array_equal(mt.tenants(), [1])
    np.testing.assert_array_equal(mt.tenant_ids(1), np.arange(20))


def test_ip_padding_and_per_query_tenants() -> None:
    x = make_data(100, 8, seed=2)
    tenants = [[i % 3] for i in range(100)]
    mt, model = build(x, tenants, "ip")
    q = make_data(6, 8, seed=3)
    t = np.array([0, 1, 2, 0, 7, 1])
    D, I = mt.search(q, 50, tenant=t)
    for row, tt in enumerate(t.tolist()):
        Dr, Ir = model.search(q[row : row + 1], 50, tt)
        np.testing.assert_allclose(D[row], Dr[0], rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(I[row], Ir[0])
    assert np.all(D[4] == -np.inf)


def test_grant_revoke_remove_tenants_of() -> None:
    x = make_data(80, 6, seed=4)
    mt, model = build(x, [[0]] * 80, "l2", leaf_size=4)
    mt.grant([3, 5, 5, 7], 9)  # repeats are fine
    mt.grant([3], 9)  # already granted: no-op
    assert mt.tenants_of(5).tolist() == [0, 9]
    assert mt.tenant_size(9) == 3 and mt.num_grants == 83
    mt.revoke([5, 6], 9)  # 6 was not granted: no-op
    assert mt.tenant_ids(9).tolist() == [3, 7]
    assert mt.remove([3, 10]) == 2
    assert 3 not in mt and 10 not in mt and 11 in mt
    assert mt.tenant_ids(9).tolist() == [7]
    assert mt.tenant_size(0) == 78
    D, I = mt.search(x[:5], 100, tenant=0)
    assert not ({3, 10} & set(I.ravel().tolist()))
    assert np.sum(I[0] >= 0) == 78
    mt.revoke([7], 9)
    assert mt.tenant_size(9) == 0 and 9 not in mt.tenants().tolist()
    with pytest.raises(annx.InvalidArgumentError):
        mt.tenants_of(3)


# ---- hypothesis: interleaved mutations and searches ------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 30), st.integers(0, 2**31)),
        st.tuples(st.just("grant"), st.integers(0, 5), st.integers(0, 2**31)),
        st.tuples(st.just("revoke"), st.integers(0, 5), st.integers(0, 2**31)),
        st.tuples(st.just("remove"), st.integers(1, 8), st.integers(0, 2**31)),
        st.tuples(st.just("search"), st.integers(1, 12), st.integers(0, 2**31)),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=OPS,
    metric=st.sampled_from(METRICS),
    exact=st.booleans(),
    d=st.integers(1, 9),
    ntenants=st.integers(1, 6),
    leaf=st.integers(1, 6),
    branching=st.integers(2, 5),
)
def test_hypothesis_interleaved(ops: list, metric: str, exact: bool, d: int, ntenants: int,
                                leaf: int, branching: int) -> None:  # fmt: skip
    g = np.random.default_rng(0)
    train = g.standard_normal((120, d)).astype(np.float32) * 3 + 1
    mt = annx.MultiTenantIndex(
        d, metric, exact_threshold=10**6 if exact else 0, leaf_size=leaf, branching=branching,
        split=leaf,
    )  # fmt: skip
    mt.train(train)
    model = Model(d, metric)
    for op, a, seed in ops:
        r = np.random.default_rng(seed)
        live = np.array(sorted(model.vecs), np.int64)
        if op == "add":
            x = (r.standard_normal((a, d)) * 3 + 1).astype(np.float32)
            if r.random() < 0.3:  # duplicates of stored vectors
                x[: a // 2 + 1] = train[: a // 2 + 1]
            tl = [r.choice(ntenants + 1, size=r.integers(0, 3)).tolist() for _ in range(a)]
            ids = mt.add(x, tenants=tl)
            model.add(x, ids, tl)
        elif op in ("grant", "revoke") and len(live):
            sel = r.choice(live, size=min(len(live), int(r.integers(1, 10))))
            getattr(mt, op)(sel, a)
            for i in sel.tolist():
                (model.ten[i].add if op == "grant" else model.ten[i].discard)(a)
        elif op == "remove" and len(live):
            sel = r.choice(live, size=min(len(live), a), replace=False)
            mt.remove(sel)
            for i in sel.tolist():
                del model.vecs[i], model.ten[i]
        elif op == "search":
            q = (r.standard_normal((3, d)) * 3 + 1).astype(np.float32)
            t = int(r.integers(0, ntenants + 1))
            D, I = mt.search(q, a, tenant=t, ef_search=int(r.integers(1, 20)))
            if exact:
                check_exact(model, q, a, t, D, I)
            else:
                check_valid(mt, model, q, a, t, D, I)
    assert mt.ntotal == len(model.vecs)
    for t in range(ntenants + 1):
        assert mt.tenant_size(t) == len(model.members(t))
        np.testing.assert_array_equal(mt.tenant_ids(t), model.members(t))
    for i in list(model.vecs)[:5]:
        assert mt.tenants_of(i).tolist() == sorted(model.ten[i])
    # A round trip keeps everything.
    mt2 = annx.MultiTenantIndex.from_bytes(mt.to_bytes())
    np.testing.assert_array_equal(mt2.ids(), mt.ids())
    for t in range(ntenants + 1):
        np.testing.assert_array_equal(mt2.tenant_ids(t), mt.tenant_ids(t))


# ---- errors ---------------------------------------------------------------------------


def test_errors_change_nothing() -> None:
    x = make_data(60, 5, seed=5)
    mt = annx.MultiTenantIndex(5)
    with pytest.raises(annx.NotTrainedError):
        mt.add(x, tenants=[[0]] * 60)
    mt.train(x)
    mt.add(x[:10], tenants=[[0]] * 10)
    bad_calls = [
        lambda: mt.add(x[:2], tenants=[[0], [-1]]),
        lambda: mt.add(x[:2], tenants=[[0]]),
        lambda: mt.add(x[:2], tenants=[[0], ["a"]]),
        lambda: mt.add(x[:2], ids=[3, 50], tenants=[[0], [1]]),  # 3 exists
        lambda: mt.add(x[:2], ids=[50, 50]),
        lambda: mt.add(np.full((1, 5), np.nan, np.float32), tenants=[[0]]),
        lambda: mt.add(x[:2, :4]),
        lambda: mt.grant([1, 99], 0),
        lambda: mt.grant([1], -1),
        lambda: mt.revoke([99], 0),
        lambda: mt.remove([1, 1]),
        lambda: mt.remove([99]),
        lambda: mt.search(x[:1], 0, tenant=0),
        lambda: mt.search(x[:1], 3, tenant=-2),
        lambda: mt.search(x[:1], 3, tenant=0.5),
        lambda: mt.search(x[:1], 3, tenant=[0, 1]),
        lambda: mt.search(x[:1], 3, tenant=0, ef_search=0),
        lambda: mt.search(np.full((1, 5), np.inf, np.float32), 3, tenant=0),
        lambda: mt.add(np.full((1, 5), 3e18, np.float32), tenants=[[0]]),  # norm > 2^62
        lambda: mt.search(np.full((1, 5), 3e18, np.float32), 3, tenant=0),
        lambda: mt.train(x),  # holds vectors
        lambda: mt.tenant_size(-1),
    ]
    before = (mt.to_bytes(), mt.ntotal)
    for call in bad_calls:
        with pytest.raises(ValueError) as e:
            call()
        assert isinstance(e.value, annx.AnnxError)
    assert (mt.to_bytes(), mt.ntotal) == before
    for bad in ("hamming", [1], None, True):
        with pytest.raises(annx.InvalidArgumentError):
            annx.MultiTenantIndex(5, bad)  # type: ignore[arg-type]
    with pytest.raises(annx.InvalidArgumentError):
        annx.MultiTenantIndex(0)
    with pytest.raises(annx.InvalidArgumentError):
        annx.MultiTenantIndex(5, branching=1)
    with pytest.raises(annx.InvalidArgumentError):
        annx.MultiTenantIndex(5, "cos").train(np.zeros((3, 5), np.float32))


def test_faiss_metric_constants_and_surface() -> None:
    x = make_data(64, 6, seed=6)
    mt = annx.MultiTenantIndex(6, 0)
    assert mt.metric == "ip" and annx.MultiTenantIndex(6, 1).metric == "l2"
    assert not mt.is_trained and mt.memory_usage() >= 0 and mt.bytes_per_vector == 0
    mt.train(x)
    assert mt.is_trained and mt.spec == "MultiTenant"
    ids = mt.add(x, ids=np.arange(100, 164), tenants=np.arange(64) % 4)
    np.testing.assert_array_equal(ids, np.arange(100, 164))
    assert mt.tenants_of(101).tolist() == [1]
    assert 0 < mt.bytes_per_vector < mt.memory_usage()
    assert "MultiTenantIndex(d=6" in repr(mt)
    np.testing.assert_array_equal(mt.reconstruct([100]), x[:1])
    mt.reset()
    assert len(mt) == 0 and mt.is_trained and mt.tenant_size(1) == 0
    mt.add(x[:3], tenants=5)
    assert mt.tenant_size(5) == 3


def test_progress_and_cancel() -> None:
    x = make_data(500, 4, seed=7)
    mt = annx.MultiTenantIndex(4, leaf_size=4)
    seen: list[tuple[int, int]] = []
    mt.train(x, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (500, 500)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))
    mt2 = annx.MultiTenantIndex(4, leaf_size=4)
    with pytest.raises(annx.CancelledError):
        mt2.train(x, progress=lambda done, total: False)
    assert not mt2.is_trained
    with pytest.raises(annx.CancelledError):
        mt.add(np.tile(x, (5, 1)), tenants=1, progress=lambda done, total: done < 2000)
    assert len(mt) == 0 and mt.tenant_size(1) == 0


# ---- persistence ----------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_round_trips(tmp_path: Path, metric: str) -> None:
    x = make_clustered(400, 10, seed=8)
    mt, model = build(x, layout(400, 7, seed=9), metric, leaf_size=8, exact_threshold=0)
    mt.remove([5, 6])
    mt.grant([7, 8], 42)
    q = make_data(5, 10, seed=10)
    path = tmp_path / "mt.annx"
    mt.save(path)
    copies = [
        annx.MultiTenantIndex.load(path),
        annx.MultiTenantIndex.from_bytes(mt.to_bytes()),
        pickle.loads(pickle.dumps(mt)),
    ]
    for c in copies:
        assert (c.d, c.metric, c.ntotal, c.config, c.tree_shape) == (
            mt.d, mt.metric, mt.ntotal, mt.config, mt.tree_shape,
        )  # fmt: skip
        assert c.next_id == mt.next_id
        for t in (0, 3, 42, 77):
            a, b = mt.search(q, 6, tenant=t, ef_search=20), c.search(q, 6, tenant=t, ef_search=20)
            np.testing.assert_array_equal(a[1], b[1])
            np.testing.assert_array_equal(a[0], b[0])
        assert c.to_bytes() == mt.to_bytes()
    assert isinstance(annx.load(path), annx.MultiTenantIndex)  # dispatched on the file kind
    idx = annx.index_factory(10, "Flat")
    with pytest.raises(annx.FormatError, match="not a multi-tenant"):
        annx.MultiTenantIndex.from_bytes(idx.to_bytes())
    empty = annx.MultiTenantIndex(3)
    assert annx.MultiTenantIndex.from_bytes(empty.to_bytes()).is_trained is False


# Files whose checksums are right but whose contents are not: the fuzzer's container
# reader and writer (tests/annx_fuzz.py).
_sections, _container = annx_fuzz.parse, annx_fuzz.build


def _patched(data: bytes, tag: str, fn: Any) -> bytes:
    return _container([(t, fn(b) if t == tag else b) for t, b in _sections(data)])


def _manifest(**changes: Any) -> Any:
    def fn(b: bytes) -> bytes:
        kv = dict(line.split("=", 1) for line in b.decode().splitlines())
        kv.update({k: str(v) for k, v in changes.items()})
        return "".join(f"{k}={v}\n" for k, v in kv.items()).encode()

    return fn


def _array(dtype: Any, edit: Any) -> Any:
    def fn(b: bytes) -> bytes:
        a = np.frombuffer(b, dtype).copy()
        edit(a)
        return a.tobytes()

    return fn


def test_corrupt_files_raise_format_error(tmp_path: Path) -> None:
    x = make_clustered(120, 4, seed=11)
    mt, _ = build(x, layout(120, 4, seed=12), "cos", leaf_size=4)
    good = mt.to_bytes()
    assert _container(_sections(good)) == good  # the writer above is faithful
    cases = {
        "truncated": good[: len(good) // 2],
        "bit flip": good[:200] + bytes([good[200] ^ 1]) + good[201:],
        "empty": b"",
        "kind": _patched(good, "MANIFEST", _manifest(kind="flat")),
        "ntotal": _patched(good, "MANIFEST", _manifest(ntotal=10**9)),
        "nnodes": _patched(good, "MANIFEST", _manifest(nnodes=3)),
        "npairs": _patched(good, "MANIFEST", _manifest(npairs=2**40)),
        "untrained with vectors": _patched(good, "MANIFEST", _manifest(trained=0)),
        "children": _patched(good, "MTCHILD", _array(np.uint32, lambda a: a.__setitem__(0, 1))),
        "cycle": _patched(good, "MTCHILD", _array(np.uint32, lambda a: a.__setitem__(-1, 2))),
        "centroid nan": _patched(good, "MTCENT", _array(np.float32, lambda a: a.fill(np.nan))),
        "vector nan": _patched(good, "MTVECS", _array(np.float32, lambda a: a.fill(np.nan))),
        "not unit": _patched(good, "MTVECS", _array(np.float32, lambda a: a.__setitem__(0, 7.0))),
        "leaf": _patched(good, "MTLEAF", _array(np.uint32, lambda a: a.__setitem__(0, 10**6))),
        "dup id": _patched(good, "MTIDS", _array(np.int64, lambda a: a.__setitem__(1, a[0]))),
        "neg id": _patched(good, "MTIDS", _array(np.int64, lambda a: a.__setitem__(1, -5))),
        "offsets": _patched(good, "MTTOFF", _array(np.int64, lambda a: a.__setitem__(1, 10**6))),
        "tenant neg": _patched(good, "MTTEN", _array(np.int64, lambda a: a.__setitem__(0, -1))),
        "sq8 step": _patched(good, "MTSQ", _array(np.float32, lambda a: a.fill(0.0))),
        "sq8 size": _patched(good, "MTSQ", lambda b: b[:8]),
        "missing": _container([(t, b) for t, b in _sections(good) if t != "MTLEAF"]),
        "short": _patched(good, "MTVECS", lambda b: b[:-4]),
    }  # fmt: skip
    for name, data in cases.items():
        with pytest.raises(annx.FormatError):
            annx.MultiTenantIndex.from_bytes(data)
        p = tmp_path / f"{name}.annx"
        p.write_bytes(data)
        with pytest.raises(annx.FormatError):
            annx.MultiTenantIndex.load(p)
    with pytest.raises(annx.FormatError, match="MTLEAF"):
        annx.MultiTenantIndex.from_bytes(cases["leaf"])


# ---- concurrency ----------------------------------------------------------------------


def test_searches_alongside_adds_and_grants() -> None:
    x = make_clustered(4000, 16, seed=13)
    mt = annx.MultiTenantIndex(16, exact_threshold=50)
    mt.train(x)
    mt.add(x[:1000], tenants=[[i % 5] for i in range(1000)])
    q = make_clustered(8, 16, seed=14)
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher(t: int) -> None:
        try:
            while not stop.is_set():
                D, I = mt.search(q, 10, tenant=t, ef_search=64)
                got = I[I >= 0]
                # Tenant t only ever gains vectors: each result is one of its ids.
                assert np.all((got % 5 == t) | (got >= 1000)), got
                assert np.all(np.isfinite(D[I >= 0]))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=searcher, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    for b in range(1000, 4000, 250):
        mt.add(x[b : b + 250], tenants=[[i % 5] for i in range(b, b + 250)])
        mt.grant(np.arange(b, b + 50), (b // 250) % 5)
    stop.set()
    for th in threads:
        th.join()
    assert not errors, errors[0]
    assert mt.ntotal == 4000


# ---- real data ------------------------------------------------------------------------


def test_real_data_recall(shared_data: Path) -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(shared_data / "glove6b-50000-50-angular.hdf5", "r") as f:
        x = f["train"][:20000]
        q = f["test"][:100]
    g = np.random.default_rng(0)
    tenants = [g.choice(40, size=g.integers(1, 4), replace=False).tolist() for _ in range(20000)]
    mt, model = build(x, tenants, "cos", exact_threshold=200)
    rec = []
    for t in (0, 7, 21):
        D, I = mt.search(q, 10, tenant=t, ef_search=400)
        check_valid(mt, model, q, 10, t, D, I)
        rec.append(recall(I, model.search(q, 10, t)[1]))
    assert min(rec) >= 0.85, rec
