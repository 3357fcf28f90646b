"""annx.integrations.langchain.AnnxVectorStore: LangChain's standard suite and more."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402
from langchain_tests.integration_tests import VectorStoreIntegrationTests  # noqa: E402

import annx  # noqa: E402
from annx.integrations.langchain import AnnxVectorStore  # noqa: E402

# The standard suite's async tests are plain coroutines: run them with anyio's plugin.
pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


class TestAnnxVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self) -> Generator[AnnxVectorStore, None, None]:  # type: ignore[override]
        yield AnnxVectorStore(self.get_embeddings())


class TestAnnxVectorStoreFlatL2(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self) -> Generator[AnnxVectorStore, None, None]:  # type: ignore[override]
        yield AnnxVectorStore(self.get_embeddings(), spec="Flat", metric="l2")


class Embed(DeterministicFakeEmbedding):
    """Texts "v<a>,<b>,..." embed to that vector; others as the fake embedding."""

    def embed_query(self, text: str) -> list[float]:
        if text.startswith("v"):
            return [float(t) for t in text[1:].split(",")]
        return super().embed_query(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


def test_filters_scores_and_mmr() -> None:
    store = AnnxVectorStore(Embed(size=3), spec="Flat", metric="l2")
    texts = ["v0,0,0", "v1,0,0", "v2,0,0", "v0,5,0", "v0,5.1,0"]
    ids = store.add_texts(texts, [{"g": "a"}, {"g": "b"}, {"g": "a"}, {"g": "b"}, {"g": "b"}])
    assert len(ids) == 5 and len(set(ids)) == 5
    got = store.similarity_search_with_score("v0.9,0,0", k=2)
    assert [d.page_content for d, _ in got] == ["v1,0,0", "v0,0,0"]
    assert got[0][1] == pytest.approx(0.1, abs=1e-5)  # Euclidean distance for l2
    a_only = store.similarity_search("v0.9,0,0", k=5, filter={"g": "a"})
    assert [d.page_content for d in a_only] == ["v0,0,0", "v2,0,0"]
    assert (
        store.similarity_search("v0,0,0", k=3, filter=lambda d: d.metadata["g"] == "b")[
            0
        ].page_content
        == "v1,0,0"
    )
    assert store.similarity_search("v0,0,0", k=2, filter={"g": ["x", "y"]}) == []
    # MMR prefers a diverse second result over the near-duplicate
    mmr = store.max_marginal_relevance_search("v0,5,0", k=2, fetch_k=5, lambda_mult=0.3)
    assert mmr[0].page_content == "v0,5,0" and mmr[1].page_content != "v0,5.1,0"
    rel = store.similarity_search_with_relevance_scores("v0,0,0", k=1)
    assert rel[0][1] == pytest.approx(1.0)
    with pytest.raises(annx.InvalidArgumentError, match="filter"):
        store.similarity_search("v0,0,0", filter="g == a")
    with pytest.raises(annx.InvalidArgumentError, match="k must"):
        store.similarity_search("v0,0,0", k=0)
    with pytest.raises(annx.InvalidArgumentError, match="ef_search"):
        store.similarity_search("v0,0,0", ef_search=10)  # Flat takes no ef_search
    hnsw = AnnxVectorStore(Embed(size=3), spec="HNSW16")
    hnsw.add_texts(texts[1:])  # cosine: no zero vector
    assert hnsw.similarity_search("v0,5,0", k=1, ef_search=32)[0].page_content == "v0,5,0"


def test_bad_input_changes_nothing() -> None:
    store = AnnxVectorStore(Embed(size=3), spec="Flat")
    store.add_texts(["v1,0,0"], ids=["x"])
    for call in (
        lambda: store.add_texts(["v1,0,0", "v0,1,0"], ids=["y"]),
        lambda: store.add_texts(["v1,0,0"], metadatas=[{}, {}]),
        lambda: store.add_texts(["v1,0,0", "v0,1,0"], ids=["y", "y"]),
        lambda: store.add_texts(["v1,0"], ids=["x"]),  # wrong dimension
        lambda: store.add_texts(["vnan,0,0"], ids=["x"]),  # NaN
    ):
        with pytest.raises(annx.InvalidArgumentError):
            call()
    assert len(store) == 1 and store.get_by_ids(["x"])[0].page_content == "v1,0,0"
    with pytest.raises(annx.InvalidArgumentError, match="spec|token"):
        AnnxVectorStore(Embed(size=3), spec="Nope")
    with pytest.raises(annx.InvalidArgumentError, match="metric"):
        AnnxVectorStore(Embed(size=3), metric="hamming")


def test_save_and_load_local(tmp_path: Path) -> None:
    emb = Embed(size=3)
    store = AnnxVectorStore.from_texts(
        ["v1,0,0", "v0,1,0", "v0,0,1"], emb, [{"n": 1}, {"n": 2}, {"n": 3}], ids=["a", "b", "c"],
        spec="HNSW16", metric=annx.METRIC_INNER_PRODUCT,
    )  # fmt: skip
    store.delete(["b"])
    store.save_local(tmp_path / "s")
    first = sorted(p.name for p in (tmp_path / "s").iterdir())
    store.add_texts(["v1,1,0"], ids=["d"])
    store.save_local(tmp_path / "s")  # replaces: the old pair is gone
    assert len(list((tmp_path / "s").iterdir())) == 3 and first != sorted(
        p.name for p in (tmp_path / "s").iterdir()
    )
    back = AnnxVectorStore.load_local(tmp_path / "s", emb, allow_dangerous_deserialization=True)
    assert back.metric == "ip" and len(back) == 3
    assert [d.id for d in back.get_by_ids(["a", "b", "c", "d"])] == ["a", "c", "d"]
    assert back.similarity_search("v1,1,0", k=1)[0].metadata == {}
    assert back.similarity_search("v0,0,1", k=1, filter={"n": 3})[0].id == "c"
    (tmp_path / "empty").mkdir()
    with pytest.raises(annx.FormatError, match="CURRENT"):
        AnnxVectorStore.load_local(tmp_path / "empty", emb)
    bad = AnnxVectorStore(emb)
    bad.add_texts(["v1,0,0"], metadatas=[{"x": object()}])
    with pytest.raises(TypeError):
        bad.save_local(tmp_path / "bad")
    assert not (tmp_path / "bad" / "CURRENT").exists()
    empty = AnnxVectorStore(emb)
    empty.save_local(tmp_path / "e")
    assert len(AnnxVectorStore.load_local(tmp_path / "e", emb)) == 0


def test_async_and_concurrent_use() -> None:
    store = AnnxVectorStore(Embed(size=3), spec="Flat")

    async def main() -> list[list[Document]]:
        await asyncio.gather(*(store.aadd_texts([f"v{i},1,0"], ids=[str(i)]) for i in range(20)))
        return await asyncio.gather(
            *(store.asimilarity_search(f"v{i},1,0", k=1) for i in range(20))
        )

    results = asyncio.run(main())
    assert [r[0].id for r in results] == [str(i) for i in range(20)]
    assert len(store) == 20


def test_import_annx_imports_no_integration() -> None:
    import subprocess
    import sys

    code = (
        "import sys, annx; bad = [m for m in sys.modules if m.split('.')[0] in "
        "('sklearn', 'langchain_core', 'langchain', 'scipy')]; print(bad); "
        "assert not bad"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_vectors_are_normalised_for_cos() -> None:
    store = AnnxVectorStore(Embed(size=2))
    store.add_texts(["v3,4", "v-1,0"])
    (doc, score), *_ = store.similarity_search_with_score("v6,8", k=1)
    assert doc.page_content == "v3,4" and score == pytest.approx(1.0, abs=1e-6)
    assert np.isfinite(score)
