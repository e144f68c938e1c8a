"""`EdgembedEmbeddings` against the real langchain-core: LangChain's own standard test suite,
then what the suite does not check (equality with `Encoder.encode`, the query prefix,
errors, concurrency, options)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("langchain_core")

from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402

from edgembed import EdgembedError  # noqa: E402
from edgembed.integrations.langchain import EdgembedEmbeddings  # noqa: E402

TEXTS = ["Feed a sourdough starter flour and water every day.",
         "Restart the router when the wifi keeps dropping.",
         "Cool a burn under running water for twenty minutes.",
         "", "The cat sleeps on the warm laptop keyboard."]

try:
    from langchain_tests.integration_tests import EmbeddingsIntegrationTests
except ImportError:  # the dev extra brings it
    EmbeddingsIntegrationTests = None


if EmbeddingsIntegrationTests is not None:
    class TestStandardSuite(EmbeddingsIntegrationTests):
        @property
        def embeddings_class(self) -> type[EdgembedEmbeddings]:
            return EdgembedEmbeddings

        @property
        def embedding_model_params(self) -> dict:
            return {"threads": 1}


def test_vectors_equal_encoder_encode(prefixed_encoder):
    """Documents: exactly `encode(texts)` (one call, same batches); queries: exactly
    `encode(text, kind="query")`, with this package's "query: " prefix."""
    embeddings = EdgembedEmbeddings(encoder=prefixed_encoder)
    documents = embeddings.embed_documents(TEXTS)
    assert np.array_equal(np.asarray(documents, np.float32), prefixed_encoder.encode(TEXTS))
    query = embeddings.embed_query("cats")
    assert np.array_equal(np.asarray(query, np.float32),
                          prefixed_encoder.encode("cats", kind="query"))
    assert np.array_equal(np.asarray(query, np.float32),
                          prefixed_encoder.encode("query: cats"))
    assert not np.allclose(query, embeddings.embed_documents(["cats"])[0])
    assert all(isinstance(value, float) for value in query)


def test_empty_input(default_encoder):
    embeddings = EdgembedEmbeddings(encoder=default_encoder)
    assert embeddings.embed_documents([]) == []
    assert asyncio.run(embeddings.aembed_documents([])) == []
    assert len(embeddings.embed_query("")) == 384


def test_non_str_items_raise_type_error_with_edgembed_message(default_encoder):
    embeddings = EdgembedEmbeddings(encoder=default_encoder)
    with pytest.raises(TypeError, match=r"texts\[2\] is NoneType, expected str"):
        embeddings.embed_documents(["a", "b", None])
    with pytest.raises(TypeError, match="text is int, expected str"):
        embeddings.embed_query(42)
    with pytest.raises(TypeError, match="got one str"):
        embeddings.embed_documents("one string")
    with pytest.raises(TypeError, match=r"texts\[0\] is bytes"):
        asyncio.run(embeddings.aembed_documents([b"bytes"]))


def test_threads_and_asyncio_give_the_sequential_results(default_encoder):
    embeddings = EdgembedEmbeddings(encoder=default_encoder)
    groups = [[f"{text} #{i}" for text in TEXTS] for i in range(8)]
    expected = [embeddings.embed_documents(group) for group in groups]
    expected_queries = [embeddings.embed_query(group[0]) for group in groups]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(embeddings.embed_documents, groups)) == expected

    async def together():
        documents = asyncio.gather(*(embeddings.aembed_documents(g) for g in groups))
        queries = asyncio.gather(*(embeddings.aembed_query(g[0]) for g in groups))
        return await documents, await queries

    assert asyncio.run(together()) == (expected, expected_queries)


def test_options(default_encoder):
    int8 = EdgembedEmbeddings(encoder=default_encoder, precision="int8", batch_size=2)
    assert np.array_equal(np.asarray(int8.embed_documents(TEXTS)),
                          default_encoder.encode(TEXTS, precision="int8", batch_size=2))
    short = EdgembedEmbeddings(encoder=default_encoder, encode_kwargs={"dims": 128})
    assert len(short.embed_query("q")) == len(short.embed_documents(["d"])[0]) == 128
    loaded = EdgembedEmbeddings(default_encoder.path, threads=1)
    assert loaded.encoder.path == default_encoder.path
    assert "batch_size=32" in repr(loaded)


@pytest.mark.parametrize(("options", "message"), [
    ({"precision": "float16"}, "precision must be one of"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"encode_kwargs": {"dims": 1000}}, "dims must be an integer"),
    ({"encode_kwargs": {"kind": "query"}}, "'kind' cannot be an encode keyword"),
    ({"query_encode_kwargs": {"truncate_dim": 64}}, "truncate_dim=64 is not supported"),
])
def test_bad_options_fail_when_made(default_encoder, options, message):
    with pytest.raises(EdgembedError, match=message):
        EdgembedEmbeddings(encoder=default_encoder, **options)


def test_encoder_and_package_together_are_refused(default_encoder):
    with pytest.raises(EdgembedError, match="either encoder= or package="):
        EdgembedEmbeddings(default_encoder.path, encoder=default_encoder)


def test_in_a_langchain_vector_store(default_encoder):
    """LangChain's own in-memory store, retrieving with these embeddings."""
    store = InMemoryVectorStore(embedding=EdgembedEmbeddings(encoder=default_encoder))
    store.add_texts(TEXTS)
    (best,) = store.similarity_search("my internet connection keeps disconnecting", k=1)
    assert best.page_content == TEXTS[1]
