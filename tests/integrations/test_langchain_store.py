"""`EdgembedVectorStore` against the real langchain-core: LangChain's standard vector-store
suite, then the round trip (add, persist, reopen, search, delete), filters, scores and
concurrency."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402

from edgembed import EdgembedError, Index  # noqa: E402
from edgembed.integrations.langchain import EdgembedEmbeddings  # noqa: E402
from edgembed.integrations.langchain_store import EdgembedVectorStore  # noqa: E402

DOCS = {
    "bread": ("Feed a sourdough starter flour and water every day.", {"topic": "baking",
                                                                       "year": 2021}),
    "crust": ("Bake the loaf in a hot oven with steam for a crisp crust.",
              {"topic": "baking", "year": 2023}),
    "wifi": ("Restart the router when the wifi keeps dropping.", {"topic": "network",
                                                                  "year": 2022}),
    "burn": ("Cool a burn under running water for twenty minutes.", {"topic": "health"}),
    "cat": ("The cat sleeps on the warm laptop keyboard.", {"topic": "pets", "year": 2020}),
}

try:
    from langchain_tests.integration_tests import VectorStoreIntegrationTests
except ImportError:  # the dev extra brings it
    VectorStoreIntegrationTests = None


if VectorStoreIntegrationTests is not None:
    class TestStandardSuite(VectorStoreIntegrationTests):
        """The suite's expectations ("bar" finds "bar" first, ...) hold for the real model."""

        @pytest.fixture
        def vectorstore(self, default_encoder, tmp_path):
            embeddings = EdgembedEmbeddings(encoder=default_encoder)
            store = EdgembedVectorStore.create(tmp_path / "store", embeddings)
            try:
                yield store
            finally:
                store.close()


@pytest.fixture
def embeddings(default_encoder):
    return EdgembedEmbeddings(encoder=default_encoder)


def add_docs(store: EdgembedVectorStore) -> list[str]:
    return store.add_texts([text for text, _ in DOCS.values()],
                           metadatas=[meta for _, meta in DOCS.values()], ids=list(DOCS))


def test_round_trip_add_persist_reopen_search_delete(embeddings, tmp_path):
    path = tmp_path / "notes"
    store = EdgembedVectorStore.create(path, embeddings)
    assert add_docs(store) == list(DOCS)
    store.close()

    reopened = EdgembedVectorStore.open(path, embeddings)
    hits = reopened.similarity_search_with_score("my internet keeps disconnecting", k=2)
    assert [doc.id for doc, _ in hits][0] == "wifi"
    best, score = hits[0]
    assert best == Document(id="wifi", page_content=DOCS["wifi"][0], metadata=DOCS["wifi"][1])
    assert 0.3 < score <= 1.0 and hits[1][1] <= score
    assert reopened.delete(["wifi", "no-such-id"]) is True
    reopened.close()

    again = EdgembedVectorStore.open(path, view=True)
    assert len(again.index) == len(DOCS) - 1
    assert "wifi" not in [doc.id for doc in again.similarity_search("wifi router", k=10)]
    assert again.get_by_ids(["cat", "wifi"])[0].metadata == DOCS["cat"][1]
    assert len(again.get_by_ids(["cat", "wifi"])) == 1
    again.close()


def test_search_matches_index_search(embeddings, tmp_path):
    """The adapter adds nothing to the index's ranking and scores."""
    store = EdgembedVectorStore.create(tmp_path / "s", embeddings)
    add_docs(store)
    query = "how do I keep bread dough alive"
    direct = store.index.search(query, k=3, mode="dense")  # the store ranks densely
    via = store.similarity_search_with_score(query, k=3)
    assert [(doc.id, score) for doc, score in via] == [(hit.id, hit.score) for hit in direct]
    vector = embeddings.embed_query(query)
    assert [doc.id for doc in store.similarity_search_by_vector(vector, k=3)] == \
        [hit.id for hit in direct]
    store.close()


@pytest.mark.parametrize(("spec", "expected"), [
    ({"topic": "baking"}, {"bread", "crust"}),
    ({"year": {"$gte": 2022}}, {"crust", "wifi"}),
    ({"year": {"$exists": False}}, {"burn"}),
    ({"$or": [{"topic": "pets"}, {"topic": "health"}]}, {"cat", "burn"}),
    ({"topic": {"$in": ["network", "pets"]}, "year": {"$lt": 2022}}, {"cat"}),
    ({"topic": {"$nin": ["baking"]}, "$and": [{"year": {"$ne": 2020}}]}, {"wifi", "burn"}),
    ({"topic": "no such topic"}, set()),
])
def test_metadata_filters(embeddings, tmp_path, spec, expected):
    store = EdgembedVectorStore.create(tmp_path / "f", embeddings)
    add_docs(store)
    found = store.similarity_search("anything at all", k=10, filter=spec)
    assert {doc.id for doc in found} == expected
    store.close()


def test_filter_fetches_more_until_k_pass(embeddings, tmp_path):
    """One match among many, ranked last: the filtered search still finds it."""
    store = EdgembedVectorStore.create(tmp_path / "many", embeddings, autosave=False)
    texts = [f"Notes about sourdough bread, loaf number {i}" for i in range(200)]
    store.add_texts(texts, metadatas=[{"kind": "bread"}] * 200)
    store.add_texts(["Quarterly tax returns and invoices"], metadatas=[{"kind": "tax"}],
                    ids=["tax"])
    store.save()
    (doc,) = store.similarity_search("sourdough bread loaf", k=1, filter={"kind": "tax"})
    assert doc.id == "tax"
    by_function = store.similarity_search("sourdough", k=3,
                                          filter=lambda d: d.metadata["kind"] == "tax")
    assert [d.id for d in by_function] == ["tax"]
    store.close()


def test_bad_filters_are_refused(embeddings, tmp_path):
    store = EdgembedVectorStore.create(tmp_path / "bad", embeddings)
    for spec, message in (({"topic": {"$like": "b%"}}, "unknown operator '\\$like'"),
                          ({"$nor": []}, "unknown filter operator"),
                          ({"$or": {}}, "non-empty list"),
                          ({"year": {"$in": 2020}}, "takes a list"),
                          ("topic=baking", "non-empty dict")):
        with pytest.raises(EdgembedError, match=message):
            store.similarity_search("q", filter=spec)
    store.close()


def test_relevance_scores_are_clipped_cosines(embeddings, tmp_path):
    store = EdgembedVectorStore.create(tmp_path / "r", embeddings)
    add_docs(store)
    raw = store.similarity_search_with_score("the cat on the keyboard", k=5)
    relevance = store.similarity_search_with_relevance_scores("the cat on the keyboard", k=5)
    assert [doc.id for doc, _ in relevance] == [doc.id for doc, _ in raw]
    assert [score for _, score in relevance] == [min(1.0, max(0.0, s)) for _, s in raw]
    retriever = store.as_retriever(search_kwargs={"k": 1})
    assert retriever.invoke("the cat on the keyboard")[0].id == "cat"
    store.close()


def test_empty_input_non_str_and_wrong_embeddings(embeddings, tmp_path):
    store = EdgembedVectorStore.create(tmp_path / "e", embeddings)
    assert store.add_texts([]) == []
    assert store.similarity_search("nothing stored", k=3) == []
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType, expected str"):
        store.add_texts(["fine", None])
    with pytest.raises(TypeError, match="query is int"):
        store.similarity_search(5)
    assert len(store.index) == 0
    with pytest.raises(EdgembedError, match="pass EdgembedEmbeddings"):
        EdgembedVectorStore(store.index, DeterministicFakeEmbedding(size=384))
    with pytest.raises(EdgembedError, match="needs path="):
        EdgembedVectorStore.from_texts(["a"], embeddings)
    store.close()


def test_failed_add_leaves_the_saved_store(embeddings, tmp_path):
    """An upsert whose new metadata cannot be stored keeps the old document."""
    store = EdgembedVectorStore.create(tmp_path / "u", embeddings)
    add_docs(store)
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        store.add_texts(["replacement"], metadatas=[{"when": object()}], ids=["cat"])
    assert store.get_by_ids(["cat"])[0].page_content == DOCS["cat"][0]
    store.close()


def test_autosave_false_keeps_changes_until_save(embeddings, tmp_path):
    path = tmp_path / "bulk"
    store = EdgembedVectorStore.from_texts(["first"], embeddings, ids=["1"], path=path,
                                           autosave=False)
    store.close()  # never saved
    store = EdgembedVectorStore.open(path, autosave=False)
    assert len(store.index) == 0
    store.add_texts(["second"], ids=["2"])
    store.save()
    store.close()
    with EdgembedVectorStore.open(path) as reopened:
        assert [doc.id for doc in reopened.get_by_ids(["1", "2"])] == ["2"]


def test_threads_and_asyncio(embeddings, tmp_path):
    """Writers from several threads (each add is remove + add + save, one at a time),
    searches in parallel, and LangChain's async methods."""
    store = EdgembedVectorStore.create(tmp_path / "c", embeddings)
    add_docs(store)

    def write(i: int) -> list[str]:
        return store.add_texts([f"Extra note {i} about houseplants"], ids=[f"note-{i % 4}"])

    def read(i: int) -> str:
        return store.similarity_search("wifi router keeps dropping", k=1)[0].id

    with ThreadPoolExecutor(max_workers=6) as pool:
        writes = [pool.submit(write, i) for i in range(12)]
        reads = [pool.submit(read, i) for i in range(12)]
        assert {tuple(w.result()) for w in writes} == {(f"note-{i}",) for i in range(4)}
        assert {r.result() for r in reads} == {"wifi"}
    assert len(store.index) == len(DOCS) + 4

    async def together():
        await store.aadd_texts(["Water houseplants when the soil is dry"], ids=["water"])
        return await asyncio.gather(*(store.asimilarity_search("dry soil houseplants", k=1)
                                      for _ in range(6)))

    assert {docs[0].id for docs in asyncio.run(together())} == {"water"}
    store.close()
    assert len(Index.open(tmp_path / "c", view=True)) == len(DOCS) + 5
