"""LangChain vector store backed by an annx index.

Needs ``langchain-core`` (``pip install "annx[langchain]"``); ``import annx`` does not
import it. Example::

    from annx.integrations.langchain import AnnxVectorStore

    store = AnnxVectorStore(embeddings, spec="HNSW32", metric="cos")
    store.add_texts(["annx is fast", "faiss is a library"], metadatas=[{"k": 1}, {"k": 2}])
    store.similarity_search("fast search", k=1, filter={"k": 1})
    store.save_local("my_store")
    store = AnnxVectorStore.load_local("my_store", embeddings)
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        'annx.integrations.langchain needs langchain-core: pip install "annx[langchain]"'
    ) from exc

from .._errors import FormatError, InvalidArgumentError
from .._surface import as_metric
from .._surface import load as _load_index
from ..factory import index_factory

__all__ = ["AnnxVectorStore"]

#: A metadata filter: ``{"key": value, ...}`` (every key equal; a list value means "one
#: of") or a callable ``(Document) -> bool``.
Filter = Union[dict[str, Any], Callable[[Document], bool], None]

_CURRENT = "CURRENT"
_FORMAT = "annx-langchain-1"


class AnnxVectorStore(VectorStore):
    """A :class:`langchain_core.vectorstores.VectorStore` over an annx index.

    Args:
        embedding: the LangChain ``Embeddings`` that turns texts into vectors.
        spec: annx factory string (:func:`annx.index_factory`), e.g. ``"HNSW32"``,
            ``"Flat"`` or ``"HNSW32,SQ8,Refine(F32)"``. Specs that need training
            (IVF, PQ, SQ8) are trained on the first batch added.
        metric: ``"cos"`` (default), ``"ip"`` or ``"l2"`` (faiss's constants accepted).
        **factory_kwargs: passed to :func:`annx.index_factory` (``ef_construction``,
            ``seed``, ...).

    The index is created on the first add, when the embedding dimension is known.
    Documents have string ids (a UUID when none is given); adding an id that exists
    replaces that document. Scores from ``*_with_score`` are annx's: the similarity
    for ``"cos"``/``"ip"`` (higher is closer), the Euclidean distance for ``"l2"``
    (lower is closer). Metadata filters are evaluated in Python into the set of
    allowed ids, which annx's ``filter=`` searches exactly. Search parameters
    (``ef_search=``, ``nprobe=``, ``rerank=``) may be passed to every search method.
    Calls on one store are serialised by a lock (the async methods run the sync ones
    in an executor), so a store may be shared between threads and tasks.

    """

    def __init__(
        self,
        embedding: Embeddings,
        spec: str = "HNSW32",
        metric: str | int = "cos",
        **factory_kwargs: Any,
    ) -> None:
        if not isinstance(spec, str):
            raise InvalidArgumentError(f"spec must be a factory string, got {spec!r}")
        self.embedding = embedding
        self.spec = spec
        self.metric = as_metric(metric)
        self.factory_kwargs = dict(factory_kwargs)
        index_factory(1, spec, self.metric, **self.factory_kwargs)  # check spec/kwargs now
        self.index: Any = None
        self._docs: dict[int, tuple[str, str, dict[str, Any]]] = {}  # key -> id, text, meta
        self._keys: dict[str, int] = {}  # document id -> annx id
        self._lock = threading.RLock()

    @property
    def embeddings(self) -> Embeddings:
        """The embedding model."""
        return self.embedding

    def __len__(self) -> int:
        return len(self._docs)

    # ---- adding and deleting ---------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and add texts; returns their ids (given or new UUIDs).

        An id already in the store replaces that document. Nothing is added when the
        arguments are inconsistent or embedding fails.
        """
        if kwargs:
            raise InvalidArgumentError(f"unexpected keyword arguments {sorted(kwargs)}")
        texts = list(texts)
        n = len(texts)
        if metadatas is not None and len(metadatas) != n:
            raise InvalidArgumentError(f"got {len(metadatas)} metadatas for {n} texts")
        if ids is not None and len(ids) != n:
            raise InvalidArgumentError(f"got {len(ids)} ids for {n} texts")
        keys = [str(i) if i is not None else str(uuid.uuid4()) for i in (ids or [None] * n)]
        if len(set(keys)) != n:
            raise InvalidArgumentError("ids contain repeats")
        metas = [dict(m) if m else {} for m in (metadatas or [{}] * n)]
        if n == 0:
            return []
        vectors = np.asarray(self.embedding.embed_documents(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != n:
            raise InvalidArgumentError(
                f"the embedding returned shape {vectors.shape} for {n} texts"
            )
        with self._lock:
            index = self.index
            if index is None:
                index = index_factory(
                    vectors.shape[1], self.spec, self.metric, **self.factory_kwargs
                )
                if not index.is_trained:
                    index.train(vectors)
            old = [self._keys[k] for k in keys if k in self._keys]
            new_ids = index.add(vectors)  # validates first: raises before any change
            if old:
                index.remove(old)
                for o in old:
                    del self._docs[o]
            for key, nid, text, meta in zip(keys, new_ids.tolist(), texts, metas, strict=False):
                self._docs[nid] = (key, text, meta)
                self._keys[key] = nid
            self.index = index
        return keys

    def delete(self, ids: Sequence[str] | None = None, **kwargs: Any) -> bool:
        """Delete documents by id (absent ids are ignored); ``ids=None`` deletes all."""
        if kwargs:
            raise InvalidArgumentError(f"unexpected keyword arguments {sorted(kwargs)}")
        with self._lock:
            if ids is None:
                keys = list(self._keys)
            else:
                if isinstance(ids, str):
                    raise InvalidArgumentError("ids must be a list of strings, got one string")
                keys = [str(i) for i in ids if str(i) in self._keys]
            gone = sorted({self._keys[k] for k in keys})
            if gone:
                self.index.remove(gone)
                for k in set(keys):
                    del self._docs[self._keys.pop(k)]
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the given order; absent ids are skipped."""
        with self._lock:
            return [self._document(self._keys[str(i)]) for i in ids if str(i) in self._keys]

    def _document(self, key: int) -> Document:
        doc_id, text, meta = self._docs[key]
        return Document(id=doc_id, page_content=text, metadata=dict(meta))

    # ---- searching -------------------------------------------------------------------
    def _allowed(self, filter: Filter) -> np.ndarray | None:
        if filter is None:
            return None
        if callable(filter):
            test = filter
        elif isinstance(filter, dict):

            def test(doc: Document) -> bool:
                for k, want in filter.items():
                    have = doc.metadata.get(k, _MISSING)
                    if isinstance(want, (list, tuple, set)):
                        if have not in want:
                            return False
                    elif have != want:
                        return False
                return True

        else:
            raise InvalidArgumentError(
                f"filter must be a dict of metadata values or a callable(Document) -> bool, "
                f"got {type(filter).__name__}"
            )
        keep = [k for k in self._docs if test(self._document(k))]
        return np.asarray(keep, dtype=np.int64)

    def _search(
        self, vector: Any, k: int, filter: Filter, params: dict[str, Any]
    ) -> tuple[list[int], list[float]]:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
        q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        with self._lock:
            if self.index is None or not self._docs:
                return [], []
            allowed = self._allowed(filter)
            if allowed is not None and allowed.size == 0:
                return [], []
            D, I = self.index.search(q, int(k), filter=allowed, **params)
        ok = I[0] >= 0
        scores = D[0][ok].astype(np.float64)
        if self.metric == "l2":
            scores = np.sqrt(np.maximum(scores, 0.0))
        return I[0][ok].tolist(), scores.tolist()

    def similarity_search_with_score_by_vector(
        self, embedding: Sequence[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents nearest ``embedding`` with their scores, best first."""
        keys, scores = self._search(embedding, k, filter, kwargs)
        with self._lock:
            return [
                (self._document(i), s)
                for i, s in zip(keys, scores, strict=False)
                if i in self._docs
            ]

    def similarity_search_by_vector(
        self, embedding: Sequence[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest ``embedding``, best first."""
        pairs = self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)
        return [d for d, _ in pairs]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents nearest the query text with their scores, best first."""
        vector = self.embedding.embed_query(query)
        return self.similarity_search_with_score_by_vector(vector, k, filter, **kwargs)

    def similarity_search(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest the query text, best first."""
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self.metric == "l2":
            return self._euclidean_relevance_score_fn
        if self.metric == "cos":
            return lambda s: (1.0 + s) / 2.0  # similarity in [-1, 1] -> [0, 1]
        return lambda s: s

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: Sequence[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Maximal marginal relevance: ``k`` of the ``fetch_k`` nearest, relevant and diverse.

        ``lambda_mult`` in [0, 1]: 1 is pure relevance, 0 pure diversity.
        """
        if not 0.0 <= float(lambda_mult) <= 1.0:
            raise InvalidArgumentError(f"lambda_mult must be in [0, 1], got {lambda_mult!r}")
        keys, _ = self._search(embedding, max(int(fetch_k), int(k)), filter, kwargs)
        if not keys:
            return []
        with self._lock:
            vectors = self.index.reconstruct(np.asarray(keys, dtype=np.int64))
        picked = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float32), vectors, lambda_mult=lambda_mult, k=k
        )
        with self._lock:
            return [self._document(keys[i]) for i in picked if keys[i] in self._docs]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Filter = None,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search_by_vector` for a query text."""
        vector = self.embedding.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter, **kwargs
        )

    # ---- construction and persistence ------------------------------------------------
    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        spec: str = "HNSW32",
        metric: str | int = "cos",
        **factory_kwargs: Any,
    ) -> AnnxVectorStore:
        """A new store holding ``texts``."""
        store = cls(embedding, spec=spec, metric=metric, **factory_kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def save_local(self, folder_path: str | os.PathLike[str]) -> None:
        """Save to a folder, atomically.

        The index and a JSON document store are written under a new name, then the
        folder's ``CURRENT`` file is replaced (``os.replace``) to point at them, and
        the previous pair is deleted: a reader sees the old store or the new one,
        never a mix. Metadata must be JSON-serialisable (``TypeError`` otherwise,
        before anything is written).
        """
        folder = Path(folder_path)
        with self._lock:
            store = {
                "format": _FORMAT,
                "spec": self.spec,
                "metric": self.metric,
                "factory_kwargs": self.factory_kwargs,
                "docs": [[k, *v] for k, v in self._docs.items()],
            }
            payload = json.dumps(store).encode()  # TypeError for non-JSON metadata
            folder.mkdir(parents=True, exist_ok=True)
            gen = uuid.uuid4().hex
            old = _read_current(folder)
            if self.index is not None:
                self.index.save(folder / f"{gen}.annx")
            _atomic_write(folder / f"{gen}.json", payload)
            _atomic_write(folder / _CURRENT, gen.encode())
        if old:
            for suffix in (".annx", ".json"):
                (folder / f"{old}{suffix}").unlink(missing_ok=True)

    @classmethod
    def load_local(
        cls, folder_path: str | os.PathLike[str], embeddings: Embeddings, **kwargs: Any
    ) -> AnnxVectorStore:
        """Load a store written by :meth:`save_local`.

        The document store is JSON (no pickle), so loading a folder runs no code;
        ``allow_dangerous_deserialization`` (FAISS's flag) is accepted and ignored.
        A missing or corrupt folder raises :class:`annx.FormatError` or ``OSError``.
        """
        kwargs.pop("allow_dangerous_deserialization", None)
        if kwargs:
            raise InvalidArgumentError(f"unexpected keyword arguments {sorted(kwargs)}")
        folder = Path(folder_path)
        gen = _read_current(folder)
        if gen is None:
            raise FormatError(f"{folder}: no {_CURRENT} file; not a saved AnnxVectorStore")
        try:
            store = json.loads((folder / f"{gen}.json").read_text())
            if store.get("format") != _FORMAT:
                raise ValueError(f"format {store.get('format')!r}")
            out = cls(
                embeddings, spec=store["spec"], metric=store["metric"], **store["factory_kwargs"]
            )
            docs = {int(k): (str(i), str(t), dict(m)) for k, i, t, m in store["docs"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"{folder}: corrupt document store ({exc})") from None
        index_path = folder / f"{gen}.annx"
        if docs or index_path.exists():
            out.index = _load_index(index_path)
            live = set(out.index.ids().tolist())
            if live != set(docs):
                raise FormatError(
                    f"{folder}: the index holds {len(live)} ids, the document store "
                    f"{len(docs)}, and they differ"
                )
        out._docs = docs
        out._keys = {v[0]: k for k, v in docs.items()}
        return out


class _Missing:
    pass


_MISSING = _Missing()


def _read_current(folder: Path) -> str | None:
    try:
        gen = (folder / _CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    if not gen or not all(c in "0123456789abcdef" for c in gen):
        raise FormatError(f"{folder}: corrupt {_CURRENT} file")
    return gen


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
