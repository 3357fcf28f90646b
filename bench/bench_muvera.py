"""MUVERA benchmark: FDE encoding vs muvera-python, MultiVectorIndex vs exact Chamfer,
and the candidates MUVERA needs against the single-vector heuristic.

Usage:
    python bench/bench_muvera.py [--data FILE.hdf5] [--repeats 3] [--md out.md]
        [--json out.jsonl]

Data: ``../shared/data/minilm-mv-5000-384-chamfer.hdf5`` (5,000 documents, 300 queries,
exact top-100 by Chamfer). Everything runs on one thread (``annx.set_num_threads(1)``;
BLAS limited to one thread too); each timing is the median of ``--repeats`` runs. k = 10.

1. **Encoding**: annx ``FDE`` vs ``muvera-python`` (``Muvera``, AMS projection) with the
   same parameters (k_sim 5, d_proj 16, 20 repetitions, fill_empty, 10,240 dimensions):
   documents/s and queries/s, and the recall@10 of the exact FDE top-N (N = 50, 100,
   200) against exact Chamfer for both encoders (their random matrices differ, so the
   quality is compared, not the bits).
2. **Exact Chamfer** over all documents with ``annx.chamfer`` (all 300 query sets in one
   call) and with numpy (a few queries), queries/s.
3. **MultiVectorIndex** end to end (query encoding, inner search, exact re-rank):
   recall@10 and queries/s over ``candidates`` x ``ef_search``, for a few FDE settings
   and inner specs; the ratio is against (2).
4. **Single-vector heuristic**: every document token in an HNSW32 inner-product index;
   each query token retrieves its top ``k'`` tokens, their documents are unioned and
   re-ranked exactly. Recall@10 against the mean number of candidate documents, next
   to MUVERA's candidates at equal recall.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # before numpy loads BLAS: one thread, as annx here
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import annx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hnsw import median_seconds as median_time  # noqa: E402

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "minilm-mv-5000-384-chamfer.hdf5"
)

# (label, FDE parameters, inner spec)
INDEX_CONFIGS = [
    ("fde-k5r20 HNSW32", dict(k_sim=5, d_proj=16, reps=20), "HNSW32"),
    ("fde-k5r20 HNSW32,SQ8", dict(k_sim=5, d_proj=16, reps=20), "HNSW32,SQ8"),
    ("fde-k3r20 HNSW32", dict(k_sim=3, d_proj=16, reps=20), "HNSW32"),
    ("fde-k3r20 HNSW32,SQ8", dict(k_sim=3, d_proj=16, reps=20), "HNSW32,SQ8"),
    ("fde-k3r20 Flat", dict(k_sim=3, d_proj=16, reps=20), "Flat"),
]
CANDIDATES = [50, 100, 150, 200, 300]


def recall_at(I: np.ndarray, gt: np.ndarray) -> float:
    k = gt.shape[1]
    return float(np.mean([len(set(gt[i]) & set(I[i, :k])) / k for i in range(len(gt))]))


def topn_recall(S: np.ndarray, gt: np.ndarray, ns: list[int]) -> dict[int, float]:
    order = np.argsort(-S, axis=1)[:, : max(ns)]
    return {
        n: float(
            np.mean([len(set(gt[i]) & set(order[i, :n])) / gt.shape[1] for i in range(len(gt))])
        )
        for n in ns
    }


# ---- configurations for bench/run.py (the "multivector" family) -----------------------
# name -> (FDE parameters, inner spec) for annx's MultiVectorIndex
MV_INDEX = {
    "annx-mv-k3-hnsw32-sq8": (dict(k_sim=3, d_proj=16, reps=20), "HNSW32,SQ8"),
    "annx-mv-k5-hnsw32-sq8": (dict(k_sim=5, d_proj=16, reps=20), "HNSW32,SQ8"),
    "annx-mv-k3-flat": (dict(k_sim=3, d_proj=16, reps=20), "Flat"),
}
# exact Chamfer over all documents; muvera-python's encoder (k5, AMS 16, 20 reps) with an
# exact FDE scan and annx's exact re-rank; the single-vector heuristic
MV_OTHER = ("annx-chamfer", "muvera-python-flat", "annx-token-heuristic")
MV_ALGOS = (*MV_INDEX, *MV_OTHER)
MV_CANDIDATES = (20, 50, 100, 150, 200, 300, 500)


def token_heuristic(
    tok_index: Any,
    tok_doc: np.ndarray,
    qv: np.ndarray,
    qo: np.ndarray,
    queries: list[np.ndarray],
    docs: list[np.ndarray],
    kp: int,
    k: int,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The single-vector heuristic: every query token's top ``kp`` tokens (``tok_index``
    over all document tokens, ``tok_doc`` maps a token to its document), their documents
    unioned and re-ranked by exact Chamfer. Returns per query (candidates, top k ids).
    """
    _, It = tok_index.search(qv, kp, ef_search=max(128, kp))
    cands, found = [], []
    for i in range(len(queries)):
        c = np.unique(tok_doc[It[qo[i] : qo[i + 1]].ravel()])
        s = annx.chamfer(queries[i], [docs[j] for j in c])
        cands.append(c)
        found.append(c[np.argsort(-s, kind="stable")[:k]])
    return cands, found


def is_multivector_file(path: str) -> bool:
    """True for the ``*-chamfer.hdf5`` layout (doc_vectors / doc_offsets)."""
    import h5py

    with h5py.File(path, "r") as f:
        return "doc_vectors" in f


def load_mv(path: str, nq: int | None) -> Any:
    """Documents, queries and ground truth of a multi-vector HDF5 file."""
    import types

    import h5py

    with h5py.File(path, "r") as f:
        do = f["doc_offsets"][:].astype(np.int64)
        qo = f["query_offsets"][:].astype(np.int64)
        if nq is not None:
            qo = qo[: nq + 1]
        dv = f["doc_vectors"][:]
        qv = f["query_vectors"][: qo[-1]]
        gt = f["neighbors"][: len(qo) - 1].astype(np.int64)
    return types.SimpleNamespace(
        name=Path(path).name.removesuffix(".hdf5"), dv=dv, do=do, qv=qv, qo=qo,
        neighbors=gt, d=dv.shape[1], n=len(do) - 1, nq=len(qo) - 1,
    )  # fmt: skip


def run_config(
    name: str, data: Any, k: int, repeats: int, build_threads: int, threads: int
) -> dict:
    """One runner configuration: build, sweep, return the runner's result dict."""
    gt = data.neighbors[:, :k]
    docs = [data.dv[data.do[i] : data.do[i + 1]] for i in range(data.n)]
    queries = [data.qv[data.qo[i] : data.qo[i + 1]] for i in range(data.nq)]
    token_bytes = data.d * 4 * len(data.dv) / data.n
    annx.set_num_threads(build_threads)
    points = []
    if name == "annx-chamfer":
        build_s = 0.0
        annx.set_num_threads(threads)
        t = median_time(lambda: annx.chamfer((data.qv, data.qo), (data.dv, data.do)), repeats)
        M = annx.chamfer((data.qv, data.qo), (data.dv, data.do))
        I = np.argsort(-M, axis=1, kind="stable")[:, :k]
        points.append({"search_params": {}, "recall": recall_at(I, gt), "qps": data.nq / t})
        return {"library": "annx", "version": annx.__version__, "build_params": {},
                "build_s": build_s, "bytes_per_vector": token_bytes + 8,
                "points": points}  # fmt: skip
    if name in MV_INDEX:
        params, spec = MV_INDEX[name]
        mv = annx.MultiVectorIndex(data.d, spec, annx.FDE(**params))
        t0 = time.perf_counter()
        if not mv.is_trained:
            mv.train((data.dv, data.do))
        mv.add((data.dv, data.do))
        build_s = time.perf_counter() - t0
        annx.set_num_threads(threads)
        for c in MV_CANDIDATES:
            for ef in [None] if "HNSW" not in spec else [c, 2 * c]:

                def run(c: int = c, ef: int | None = ef) -> Any:
                    return mv.search((data.qv, data.qo), k, candidates=c, ef_search=ef)

                t = median_time(run, repeats)
                points.append({"search_params": {"candidates": c, "ef_search": ef},
                               "recall": recall_at(run()[1], gt), "qps": data.nq / t})  # fmt: skip
        b = mv.bytes_per_doc()
        return {"library": "annx", "version": annx.__version__,
                "build_params": {"fde": params, "spec": spec}, "build_s": build_s,
                "bytes_per_vector": b["total"], "points": points}  # fmt: skip
    if name == "muvera-python-flat":
        try:
            from muvera import Muvera
        except ImportError as exc:
            raise _skip()("muvera-python is not installed") from exc
        enc = Muvera(num_repetitions=20, num_simhash_projections=5, dimension=data.d,
                     projection_type="ams_sketch", projection_dimension=16,
                     fill_empty_partitions=True, seed=0)  # fmt: skip
        t0 = time.perf_counter()
        F = np.ascontiguousarray(enc.encode_documents(docs), dtype=np.float32)
        flat = annx.index_factory(F.shape[1], "Flat", metric="ip")
        flat.add(F)
        build_s = time.perf_counter() - t0
        annx.set_num_threads(threads)
        for c in MV_CANDIDATES:

            def run(c: int = c) -> np.ndarray:
                Q = np.ascontiguousarray(enc.encode_queries(queries), dtype=np.float32)
                _, C = flat.search(Q, c)
                out = np.empty((data.nq, k), np.int64)
                for i in range(data.nq):
                    s = annx.chamfer(queries[i], [docs[j] for j in C[i]])
                    out[i] = C[i][np.argsort(-s, kind="stable")[:k]]
                return out

            t = median_time(run, repeats)
            points.append({"search_params": {"candidates": c}, "recall": recall_at(run(), gt),
                           "qps": data.nq / t})  # fmt: skip
        return {"library": "muvera-python", "version": _dist_version("muvera-python"),
                "build_params": {"k_sim": 5, "d_proj": 16, "reps": 20, "index": "annx Flat"},
                "build_s": build_s, "bytes_per_vector": 4.0 * F.shape[1] + 8 + token_bytes,
                "points": points}  # fmt: skip
    if name == "annx-token-heuristic":
        tok = annx.index_factory(data.d, "HNSW32", metric="ip")
        t0 = time.perf_counter()
        tok.add(data.dv)
        build_s = time.perf_counter() - t0
        tok_doc = np.repeat(np.arange(data.n), np.diff(data.do))
        annx.set_num_threads(threads)
        for kp in (1, 2, 5, 10, 20, 50):

            def run(kp: int = kp) -> np.ndarray:
                _, found = token_heuristic(tok, tok_doc, data.qv, data.qo, queries, docs, kp, k)
                out = np.full((data.nq, k), -1, np.int64)
                for i, top in enumerate(found):
                    out[i, : len(top)] = top
                return out

            t = median_time(run, repeats)
            points.append({"search_params": {"k_prime": kp}, "recall": recall_at(run(), gt),
                           "qps": data.nq / t})  # fmt: skip
        return {"library": "annx", "version": annx.__version__,
                "build_params": {"tokens": "HNSW32 ip", "ef_search": 128}, "build_s": build_s,
                "bytes_per_vector": tok.bytes_per_vector * len(data.dv) / data.n,
                "points": points}  # fmt: skip
    raise SystemExit(f"unknown multi-vector configuration {name!r}")


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def _skip() -> type:
    from bench_hnsw import Skip

    return Skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--md", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import h5py

    annx.set_num_threads(1)
    with h5py.File(args.data, "r") as f:
        dv, do = f["doc_vectors"][:], f["doc_offsets"][:].astype(np.int64)
        qv, qo = f["query_vectors"][:], f["query_offsets"][:].astype(np.int64)
        gt = f["neighbors"][:, :10]
    docs = [dv[do[i] : do[i + 1]] for i in range(len(do) - 1)]
    queries = [qv[qo[i] : qo[i + 1]] for i in range(len(qo) - 1)]
    nd, nq = len(docs), len(queries)
    rows: list[dict[str, Any]] = []
    md: list[str] = []
    md.append(f"# MUVERA on {Path(args.data).name}\n")
    md.append(
        f"Machine: {annx.config()['cpu']}, annx {annx.__version__}, ISA {annx.get_isa()}, "
        f"1 thread, median of {args.repeats}. {nd:,} documents ({len(dv):,} tokens), "
        f"{nq} queries ({len(qv):,} tokens), k = 10.\n"
    )

    # 1. encoding -------------------------------------------------------------------
    fde = annx.FDE(k_sim=5, d_proj=16, reps=20, seed=0)
    t_doc = median_time(lambda: fde.encode_docs((dv, do)), args.repeats)
    t_q = median_time(lambda: fde.encode_queries((qv, qo)), args.repeats)
    F, Q = fde.encode_docs((dv, do)), fde.encode_queries((qv, qo))
    ns = [50, 100, 200]
    q_annx = topn_recall(Q @ F.T, gt, ns)
    enc = {
        "annx": dict(
            docs_per_s=nd / t_doc,
            queries_per_s=nq / t_q,
            **{f"top{n}": v for n, v in q_annx.items()},
        )
    }
    try:
        from muvera import Muvera
    except ImportError:
        print("muvera-python not installed: skipping the encoder comparison", file=sys.stderr)
    else:
        mu = Muvera(
            num_repetitions=20,
            num_simhash_projections=5,
            dimension=dv.shape[1],
            projection_type="ams_sketch",
            projection_dimension=16,
            fill_empty_partitions=True,
            seed=0,
        )
        tm_doc = median_time(lambda: mu.encode_documents(docs), args.repeats)
        tm_q = median_time(lambda: mu.encode_queries(queries), args.repeats)
        Fm, Qm = mu.encode_documents(docs), mu.encode_queries(queries)
        q_mu = topn_recall(Qm @ Fm.T, gt, ns)
        enc["muvera-python"] = dict(
            docs_per_s=nd / tm_doc,
            queries_per_s=nq / tm_q,
            **{f"top{n}": v for n, v in q_mu.items()},
        )
    md.append("## 1. FDE encoding (k_sim 5, d_proj 16 AMS, 20 repetitions, 10,240 dimensions)\n")
    md.append("| encoder | documents/s | queries/s | recall@10 of FDE top-50 | top-100 | top-200 |")
    md.append("|---|---:|---:|---:|---:|---:|")
    for name, e in enc.items():
        md.append(
            f"| {name} | {e['docs_per_s']:,.0f} | {e['queries_per_s']:,.0f} | {e['top50']:.3f} | "
            f"{e['top100']:.3f} | {e['top200']:.3f} |"
        )
        rows.append(dict(part="encoding", encoder=name, **e))
    if "muvera-python" in enc:
        a, m = enc["annx"], enc["muvera-python"]
        md.append(
            f"\nannx / muvera-python: {a['docs_per_s'] / m['docs_per_s']:.1f}x documents/s, "
            f"{a['queries_per_s'] / m['queries_per_s']:.1f}x queries/s.\n"
        )
    del F, Q

    # 2. exact Chamfer ------------------------------------------------------------------
    t_exact = median_time(lambda: annx.chamfer((qv, qo), (dv, do)), args.repeats)
    M = annx.chamfer((qv, qo), (dv, do))
    exact_qps = nq / t_exact
    exact_I = np.argsort(-M, axis=1, kind="stable")[:, :10]
    n_np = 10
    t_np_full = median_time(
        lambda: [
            np.maximum.reduceat(queries[i] @ dv.T, do[:-1], axis=1).sum(0) for i in range(n_np)
        ],
        1,
    )
    md.append("## 2. Exact Chamfer over all documents\n")
    md.append("| method | queries/s | ms/query | recall@10 |")
    md.append("|---|---:|---:|---:|")
    md.append(
        f"| annx.chamfer (300 query sets, one call) | {exact_qps:,.1f} | "
        f"{1e3 / exact_qps:.2f} | {recall_at(exact_I, gt):.3f} |"
    )
    md.append(
        f"| numpy (matmul + maximum.reduceat, {n_np} queries) | {n_np / t_np_full:,.1f} | "
        f"{1e3 * t_np_full / n_np:.2f} | - |"
    )
    md.append("")
    rows.append(dict(part="exact", method="annx.chamfer", qps=exact_qps))
    rows.append(dict(part="exact", method="numpy", qps=n_np / t_np_full))

    # 3. MultiVectorIndex -------------------------------------------------------------
    md.append("## 3. MultiVectorIndex end to end (encode + inner search + exact re-rank)\n")
    md.append(
        "| configuration | FDE dim | build s | bytes/doc (FDE + tokens) | candidates | "
        "ef_search | recall@10 | queries/s | vs exact |"
    )
    md.append("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    best_at: dict[str, tuple[float, str]] = {}
    for label, params, spec in INDEX_CONFIGS:
        mv = annx.MultiVectorIndex(dv.shape[1], spec, annx.FDE(**params))
        t0 = time.perf_counter()
        annx.set_num_threads(2)
        if not mv.is_trained:
            mv.train((dv, do))
        mv.add((dv, do))
        annx.set_num_threads(1)
        build = time.perf_counter() - t0
        b = mv.bytes_per_doc()
        for c in CANDIDATES:
            efs = [None] if "HNSW" not in spec else [c, 2 * c]
            for ef in efs:

                def run(mv: Any = mv, c: int = c, ef: int | None = ef) -> Any:
                    return mv.search((qv, qo), 10, candidates=c, ef_search=ef)

                t = median_time(run, args.repeats)
                _, I = mv.search((qv, qo), 10, candidates=c, ef_search=ef)
                r = recall_at(I, gt)
                qps = nq / t
                md.append(
                    f"| `{label}` | {mv.output_dim:,} | {build:.1f} | "
                    f"{b['fde']:,.0f} + {b['tokens']:,.0f} | "
                    f"{c} | {ef or '-'} | {r:.3f} | {qps:,.0f} | {qps / exact_qps:.1f}x |"
                )
                rows.append(
                    dict(
                        part="index",
                        config=label,
                        fde=params,
                        spec=spec,
                        build_s=build,
                        bytes_per_doc=b,
                        candidates=c,
                        ef_search=ef,
                        recall=r,
                        qps=qps,
                        vs_exact=qps / exact_qps,
                    )
                )
                for level in (0.90, 0.95):
                    if r >= level and qps > best_at.get(str(level), (0.0, ""))[0]:
                        best_at[str(level)] = (qps, f"`{label}`, candidates {c}, ef {ef or '-'}")
        del mv
    md.append("")
    for level, (qps, what) in sorted(best_at.items()):
        md.append(
            f"- Fastest at recall@10 >= {level}: {what}: {qps:,.0f} queries/s = "
            f"**{qps / exact_qps:.1f}x** exact Chamfer."
        )
    md.append("")

    # 4. candidates: MUVERA (exact FDE ranking) vs single-vector heuristic ---------------
    tok_index = annx.index_factory(dv.shape[1], "HNSW32", metric="ip")
    annx.set_num_threads(2)
    tok_index.add(dv)
    annx.set_num_threads(1)
    tok_doc = np.repeat(np.arange(nd), np.diff(do))
    md.append("## 4. Candidates needed: MUVERA vs the single-vector heuristic\n")
    md.append(
        "Heuristic: each query token retrieves its top k' tokens (HNSW32 over all 60k "
        "tokens, ef 128), their documents are unioned and re-ranked exactly. MUVERA: the "
        "exact FDE top-N (default FDE), re-ranked exactly.\n"
    )
    heur = []
    md_rows = []
    for kp in (1, 2, 5, 10, 20, 50):

        def heuristic(kp: int = kp) -> tuple[list[np.ndarray], list[np.ndarray]]:
            return token_heuristic(tok_index, tok_doc, qv, qo, queries, docs, kp, 10)

        t = median_time(heuristic, args.repeats)
        cands, found = heuristic()
        r = float(np.mean([len(set(gt[i]) & set(found[i])) / 10 for i in range(nq)]))
        mc = float(np.mean([len(c) for c in cands]))
        heur.append((mc, r))
        md_rows.append(
            f"| single-vector heuristic | k' = {kp} | {mc:,.0f} | {r:.3f} | {nq / t:,.0f} |"
        )
        rows.append(dict(part="heuristic", k_prime=kp, mean_candidates=mc, recall=r, qps=nq / t))
    md.append("| method | parameter | mean candidates | recall@10 | queries/s |")
    md.append("|---|---|---:|---:|---:|")
    md.extend(md_rows)
    Fd = fde.encode_docs((dv, do))
    Sf = fde.encode_queries((qv, qo)) @ Fd.T
    order = np.argsort(-Sf, axis=1)
    mu_curve = []
    for n in (10, 20, 50, 100, 150, 200, 300, 500):
        found = [
            order[i, :n][np.argsort(-M[i, order[i, :n]], kind="stable")[:10]] for i in range(nq)
        ]
        r = float(np.mean([len(set(gt[i]) & set(found[i])) / 10 for i in range(nq)]))
        mu_curve.append((n, r))
        md.append(f"| MUVERA (exact FDE top-N) | N = {n} | {n} | {r:.3f} | - |")
        rows.append(dict(part="muvera-candidates", candidates=n, recall=r))
    md.append("")

    def needed(curve: list[tuple[float, float]], level: float) -> float | None:
        for i, (c, r) in enumerate(curve):
            if r >= level:
                if i == 0:
                    return c
                c0, r0 = curve[i - 1]
                return c0 + (c - c0) * (level - r0) / (r - r0)
        return None

    for level in (0.8, 0.9, 0.95):
        h, m = needed(heur, level), needed(mu_curve, level)
        if h and m:
            md.append(
                f"- Recall {level}: heuristic ~{h:,.0f} candidates, MUVERA ~{m:,.0f} "
                f"(heuristic / MUVERA = **{h / m:.2f}**)."
            )
        else:
            md.append(
                f"- Recall {level}: heuristic {h and f'{h:,.0f}'}, MUVERA "
                f"{m and f'{m:,.0f}'} (not reached by one of them)."
            )
    md.append("")
    md.append(
        "Command: `PYTHONPATH=python python bench/bench_muvera.py "
        f"--md {args.md or 'OUT.md'}` (Python {platform.python_version()})."
    )

    text = "\n".join(md) + "\n"
    print(text)
    if args.md:
        Path(args.md).write_text(text)
    if args.json:
        with open(args.json, "w") as fh:
            for r in rows:
                fh.write(json.dumps(r, default=str) + "\n")


if __name__ == "__main__":
    main()
