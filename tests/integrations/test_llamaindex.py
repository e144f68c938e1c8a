"""`EdgembedEmbedding` against the real llama-index-core: equality with `Encoder.encode`, the
query prefix, empty input, errors, threads and asyncio, and a real `VectorStoreIndex`."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document, VectorStoreIndex  # noqa: E402

from edgembed import EdgembedError  # noqa: E402
from edgembed.integrations.llamaindex import EMBED_BATCH_SIZE, EdgembedEmbedding  # noqa: E402

TEXTS = ["Feed a sourdough starter flour and water every day.",
         "Restart the router when the wifi keeps dropping.",
         "Cool a burn under running water for twenty minutes.",
         "", "The cat sleeps on the warm laptop keyboard."]


def test_vectors_equal_encoder_encode(prefixed_encoder):
    """Up to `embed_batch_size` texts reach the encoder in one call, so the batches (and, for
    dynamic int8, the vectors) are exactly `encode`'s; queries get the "query: " prefix."""
    model = EdgembedEmbedding(encoder=prefixed_encoder)
    texts = [f"{text} ({i})" for i in range(40) for text in TEXTS][:EMBED_BATCH_SIZE]
    assert np.array_equal(np.asarray(model.get_text_embedding_batch(texts), np.float32),
                          prefixed_encoder.encode(texts))
    assert np.array_equal(np.asarray(model.get_text_embedding(TEXTS[0]), np.float32),
                          prefixed_encoder.encode(TEXTS[0]))
    query = np.asarray(model.get_query_embedding("cats"), np.float32)
    assert np.array_equal(query, prefixed_encoder.encode("cats", kind="query"))
    assert np.array_equal(query, prefixed_encoder.encode("query: cats"))
    assert not np.allclose(query, model.get_text_embedding("cats"))


def test_async_methods_equal_sync(default_encoder):
    model = EdgembedEmbedding(encoder=default_encoder)

    async def run():
        return (await model.aget_text_embedding_batch(TEXTS),
                await model.aget_query_embedding("cats"),
                await model.aget_text_embedding(TEXTS[1]))

    batch, query, single = asyncio.run(run())
    assert batch == model.get_text_embedding_batch(TEXTS)
    assert query == model.get_query_embedding("cats")
    assert single == model.get_text_embedding(TEXTS[1])


def test_empty_input(default_encoder):
    model = EdgembedEmbedding(encoder=default_encoder)
    assert model.get_text_embedding_batch([]) == []
    assert asyncio.run(model.aget_text_embedding_batch([])) == []
    assert len(model.get_query_embedding("")) == 384


def test_non_str_items_raise_type_error_with_edgembed_message(default_encoder):
    model = EdgembedEmbedding(encoder=default_encoder)
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType, expected str"):
        model.get_text_embedding_batch(["a", None])
    with pytest.raises(TypeError, match="text is int, expected str"):
        model.get_query_embedding(7)
    with pytest.raises(TypeError, match=r"texts\[0\] is bytes"):
        asyncio.run(model.aget_text_embedding_batch([b"raw"]))


def test_threads_and_asyncio_give_the_sequential_results(default_encoder):
    model = EdgembedEmbedding(encoder=default_encoder, embed_batch_size=2, num_workers=4)
    groups = [[f"{text} #{i}" for text in TEXTS] for i in range(8)]
    expected = [model.get_text_embedding_batch(group) for group in groups]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(model.get_text_embedding_batch, groups)) == expected

    async def together():
        return await asyncio.gather(*(model.aget_text_embedding_batch(g) for g in groups))

    assert asyncio.run(together()) == expected


def test_options_and_errors(default_encoder):
    model = EdgembedEmbedding(encoder=default_encoder, precision="ubinary", batch_size=4,
                              embed_batch_size=10)
    assert model.model_name == "all-minilm-l6-v2" and model.embed_batch_size == 10
    assert np.array_equal(np.asarray(model.get_text_embedding_batch(TEXTS)),
                          default_encoder.encode(TEXTS, precision="ubinary"))
    assert model.class_name() == "EdgembedEmbedding"
    short = EdgembedEmbedding(encoder=default_encoder, encode_kwargs={"dims": 64})
    assert len(short.get_query_embedding("q")) == len(short.get_text_embedding("d")) == 64
    with pytest.raises(EdgembedError, match="precision must be one of"):
        EdgembedEmbedding(encoder=default_encoder, precision="fp16")
    with pytest.raises(EdgembedError, match="either encoder= or package="):
        EdgembedEmbedding(default_encoder.path, encoder=default_encoder)


def test_in_a_llamaindex_vector_index(default_encoder):
    model = EdgembedEmbedding(encoder=default_encoder)
    index = VectorStoreIndex.from_documents([Document(text=t) for t in TEXTS if t],
                                            embed_model=model)
    (best,) = index.as_retriever(similarity_top_k=1).retrieve("my wifi keeps disconnecting")
    assert best.node.get_content() == TEXTS[1]
