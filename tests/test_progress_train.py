"""``progress=`` on ``Index.train``, ``KMeans.train`` and ``annx.kmeans``.

Units are k-means iterations: an IVF index counts its coarse quantizer's (10) plus,
for PQ codecs, every sub-quantizer's (M x 25); training without k-means counts one
unit, reported once as (1, 1). Cancelling (False) or raising from the callback leaves
the index exactly as it was.
"""

# ruff: noqa: E741  (D, I: faiss's names for distances and ids)

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import make_clustered

import annx

D = 16
# spec -> progress units (k-means iterations; 1 without k-means)
UNITS = {
    "IVF16,PQ8": 10 + 8 * 25,
    "IVF16,PQ8x4fs": 10 + 2 * 8 * 25,  # trains both encodings to choose one
    "IVF16,Flat": 10,
    "IVF16,SQ8": 10,
    "IVF16_HNSW8,Flat": 10,
    "PQ4": 4 * 25,
    "Flat": 1,
    "Flat,SQ8": 1,
    "HNSW8,SQ8": 1,
}
TRAINED_SPECS = ["IVF16,PQ8", "IVF16,SQ8", "IVF16_HNSW8,Flat", "PQ4", "Flat,SQ8"]


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return make_clustered(3000, D, seed=81)


@pytest.fixture
def threads4():
    # More pool threads than this machine may have cores: PQ sub-quantizers then train
    # on workers while the caller waits, the case where only polling reports progress.
    previous = annx.get_num_threads()
    annx.set_num_threads(4)
    yield
    annx.set_num_threads(previous)


def trained_state(index: annx.Index) -> tuple[np.ndarray, ...]:
    """Everything training decides, as arrays (compared between indexes)."""
    out: list[np.ndarray] = []
    if index.spec.startswith(("IVF", "PQ")):
        out += [index.centroids, index._impl.ivf_pq_codebooks()]
    probe = make_clustered(200, D, seed=82)
    copy = annx.from_bytes(index.to_bytes())  # an add would block retraining this one
    copy.add(probe)
    out += list(copy.search(probe[:20], 5))
    return tuple(out)


def fresh(spec: str, x: np.ndarray) -> annx.Index:
    index = annx.index_factory(D, spec)
    index.train(x)
    return index


# ------------------------------------------------------------------ reported values
@pytest.mark.parametrize("spec", list(UNITS))
def test_callback_sees_increasing_units_ending_at_total(
    spec: str, x: np.ndarray, threads4: None
) -> None:
    index = annx.index_factory(D, spec)
    assert index._impl.train_units() == UNITS[spec]
    calls: list[tuple[int, int]] = []
    index.train(x, progress=lambda done, total: calls.append((done, total)))
    assert index.is_trained
    total = UNITS[spec]
    assert calls[-1] == (total, total) and {t for _, t in calls} == {total}
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and done[0] >= 1  # strictly increasing
    if spec.startswith("IVF"):
        # The coarse quantizer trains on the calling thread: every iteration is seen.
        assert done[:10] == list(range(1, 11))


@pytest.mark.parametrize("spec", ["Flat", "HNSW8", "Flat,SQ8"])
def test_no_kmeans_reports_one_unit(spec: str, x: np.ndarray) -> None:
    # Documented choice: one unit, reported once as (1, 1) when training is done.
    calls: list[tuple[int, int]] = []
    annx.index_factory(D, spec).train(x, progress=lambda *a: calls.append(a))
    assert calls == [(1, 1)]


def test_progress_does_not_change_training(x: np.ndarray) -> None:
    with_progress = annx.index_factory(D, "IVF16,PQ8")
    with_progress.train(x, progress=lambda d, t: True)
    for a, b in zip(
        trained_state(with_progress), trained_state(fresh("IVF16,PQ8", x)), strict=False
    ):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------- cancelling
@pytest.mark.parametrize("spec", TRAINED_SPECS)
@pytest.mark.parametrize("when", ["first", "last"])
def test_cancel_leaves_index_untrained_and_retrainable(spec: str, when: str, x: np.ndarray) -> None:
    index = annx.index_factory(D, spec)
    calls: list[int] = []

    def cancel(done: int, total: int) -> bool:
        calls.append(done)
        return done < total if when == "last" else False

    with pytest.raises(annx.CancelledError, match="cancelled by its progress callback"):
        index.train(x, progress=cancel)
    assert not index.is_trained and index.ntotal == 0
    assert calls[-1] == (UNITS[spec] if when == "last" else calls[0])
    if when == "first":
        assert len(calls) == 1  # nothing is reported after the cancel
    with pytest.raises(annx.NotTrainedError):
        index.add(x[:5])
    if spec.startswith("IVF"):
        assert index.centroids.size == 0
    # Trained again (same seed), it equals a freshly trained index.
    index.train(x)
    for a, b in zip(trained_state(index), trained_state(fresh(spec, x)), strict=False):
        np.testing.assert_array_equal(a, b)


def test_cancelled_retrain_keeps_previous_training(x: np.ndarray) -> None:
    index = fresh("IVF16,PQ8", x)
    before = trained_state(index)
    other = make_clustered(3000, D, seed=83)
    with pytest.raises(annx.CancelledError):
        index.train(other, progress=lambda done, total: done < 50)
    assert index.is_trained
    for a, b in zip(trained_state(index), before, strict=False):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spec", ["IVF16,PQ8", "PQ8x4fs"])
def test_cancel_or_raise_while_workers_train_pq(spec: str, x: np.ndarray, threads4: None) -> None:
    # The cancel lands while sub-quantizers train on pool workers; the caller still
    # gets the callback's own exception (never a stand-in raised by a worker).
    for _ in range(3):
        index = annx.index_factory(D, spec)
        with pytest.raises(annx.CancelledError):
            index.train(x, progress=lambda done, total: done <= 20)
        assert not index.is_trained

        def boom(done: int, total: int) -> None:
            if done > 20:
                raise KeyError("stop here")

        with pytest.raises(KeyError, match="stop here"):
            index.train(x, progress=boom)
        assert not index.is_trained
    index.train(x)
    for a, b in zip(trained_state(index), trained_state(fresh(spec, x)), strict=False):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spec", ["IVF16,PQ8", "Flat,SQ8"])
def test_callback_exception_propagates(spec: str, x: np.ndarray) -> None:
    class Boom(Exception):
        pass

    def callback(done: int, total: int) -> None:
        raise Boom(f"at {done}/{total}")

    index = annx.index_factory(D, spec)
    with pytest.raises(Boom, match=r"at 1/"):
        index.train(x, progress=callback)
    assert not index.is_trained
    index.train(x)
    assert index.is_trained


def test_callback_may_read_the_index(x: np.ndarray) -> None:
    # No lock is held while the callback runs: reading (or searching) does not deadlock.
    index = annx.index_factory(D, "IVF16,Flat")
    seen: list[tuple[bool, int]] = []
    index.train(x, progress=lambda d, t: seen.append((index.is_trained, index.ntotal)))
    assert seen and all(s == (False, 0) for s in seen)
    index.train(x, progress=lambda d, t: index.search(x[:3], 2))  # trained, empty: no error


# --------------------------------------------------------------------- progress=True
def test_progress_true_without_tqdm(monkeypatch: pytest.MonkeyPatch, capsys, x) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    index = annx.index_factory(D, "IVF16,PQ4")
    index.train(x, progress=True)
    assert index.is_trained
    assert "train: 110/110 it" in capsys.readouterr().err


def test_progress_true_with_tqdm(capsys, x: np.ndarray) -> None:
    pytest.importorskip("tqdm")
    index = annx.index_factory(D, "IVF16,Flat")
    index.train(x, progress=True)
    err = capsys.readouterr().err
    assert index.is_trained and "train" in err and "10/10" in err


@pytest.mark.parametrize("progress", [None, False])
def test_no_progress(progress: bool | None, capsys, x: np.ndarray) -> None:
    index = annx.index_factory(D, "IVF16,Flat")
    index.train(x, progress=progress)
    assert index.is_trained and capsys.readouterr().err == ""


@pytest.mark.parametrize("bad", ["yes", 1, 0, object()])
def test_bad_progress_value(bad: object, x: np.ndarray) -> None:
    index = annx.index_factory(D, "IVF16,Flat")
    with pytest.raises(annx.InvalidArgumentError, match="progress"):
        index.train(x, progress=bad)  # type: ignore[arg-type]
    with pytest.raises(annx.InvalidArgumentError, match="progress"):
        annx.KMeans(D, 8).train(x, progress=bad)  # type: ignore[arg-type]
    assert not index.is_trained
    with pytest.raises(annx.InvalidArgumentError, match="progress"):
        index._impl.train(x, "not callable")  # the core checks too


# ---------------------------------------------------------------------------- LeanVec
def test_leanvec_counts_the_fit_then_the_inner_training(x: np.ndarray) -> None:
    spec = "LeanVec8,IVF16,Flat,Refine(F32)"
    index = annx.index_factory(D, spec)
    calls: list[tuple[int, int]] = []
    index.train(x, progress=lambda *a: calls.append(a))
    assert calls == [(i, 11) for i in range(1, 12)]  # the fit, then 10 iterations

    for stop in (1, 5, 11):  # after the fit, inside k-means, at the very end
        cancelled = annx.index_factory(D, spec)
        with pytest.raises(annx.CancelledError):
            cancelled.train(x, progress=lambda done, total, s=stop: done < s)
        assert not cancelled.is_trained
        with pytest.raises(annx.NotTrainedError):
            cancelled.leanvec  # noqa: B018  (the transform was not kept either)
    cancelled.train(x)
    q = make_clustered(20, D, seed=84)
    index.add(x)
    cancelled.add(x)
    for a, b in zip(index.search(q, 5), cancelled.search(q, 5), strict=False):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- KMeans
def test_kmeans_progress(x: np.ndarray) -> None:
    calls: list[tuple[int, int]] = []
    km = annx.KMeans(D, 16, niter=7, nredo=2).train(x, progress=lambda *a: calls.append(a))
    assert calls == [(i, 14) for i in range(1, 15)]  # every iteration of both runs
    reference = annx.KMeans(D, 16, niter=7, nredo=2).train(x)
    np.testing.assert_array_equal(km.centroids, reference.centroids)

    calls.clear()
    annx.KMeans(D, 16, niter=0).train(x, progress=lambda *a: calls.append(a))
    assert calls == [(1, 1)]

    calls.clear()
    centroids, labels = annx.kmeans(x, 8, niter=5, progress=lambda *a: calls.append(a))
    assert calls[-1] == (5, 5) and centroids.shape == (8, D) and labels.shape == (len(x),)


def test_kmeans_cancel_and_raise(x: np.ndarray) -> None:
    km = annx.KMeans(D, 16, niter=10)
    with pytest.raises(annx.CancelledError, match="k-means cancelled"):
        km.train(x, progress=lambda done, total: done < 3)
    assert km.centroids is None and km.objective == []

    def boom(done: int, total: int) -> bool:
        raise RuntimeError("no more")

    with pytest.raises(RuntimeError, match="no more"):
        km.train(x, progress=boom)
    assert km.centroids is None
    km.train(x)
    assert km.centroids is not None and len(km.objective) == 10


def test_kmeans_progress_true_without_tqdm(monkeypatch: pytest.MonkeyPatch, capsys, x) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    annx.KMeans(D, 8, niter=4).train(x, progress=True)
    assert "k-means: 4/4 it" in capsys.readouterr().err
