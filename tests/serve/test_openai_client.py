"""`edgembed serve` with the real clients people point at it: the official `openai` package
(float and base64 responses) and LangChain's `OpenAIEmbeddings`, against a server this
test starts on 127.0.0.1."""

from __future__ import annotations

import base64

import numpy as np
import pytest

pytest.importorskip("starlette")
openai = pytest.importorskip("openai")

from edgembed.serve.app import create_app, running  # noqa: E402

TEXTS = ["Feed a sourdough starter flour and water every day.",
         "Restart the router when the wifi keeps dropping.",
         "", "The cat sleeps on the warm laptop keyboard."]


@pytest.fixture(scope="module")
def base_url(default_encoder):
    with running(create_app(default_encoder)) as url:
        yield f"{url}/v1"


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)


def rows(response) -> np.ndarray:
    """Float rows; base64 strings (what the client returns when base64 was asked for
    explicitly) decoded as OpenAI defines them, little-endian float32."""
    return np.asarray([np.frombuffer(base64.b64decode(item.embedding), "<f4")
                       if isinstance(item.embedding, str) else item.embedding
                       for item in response.data], dtype=np.float32)


def test_float_and_base64_give_the_encoder_vectors(client, default_encoder):
    """One request is one batch of the server's encoder, so the rows are exactly
    `encode(texts)`'s. Asked for nothing, the client requests base64 and decodes it itself;
    asked for base64, it hands the strings over."""
    model = default_encoder.manifest.name
    as_float = client.embeddings.create(model=model, input=TEXTS, encoding_format="float")
    as_base64 = client.embeddings.create(model=model, input=TEXTS, encoding_format="base64")
    by_default = client.embeddings.create(model=model, input=TEXTS)
    expected = default_encoder.encode(TEXTS)
    for response in (as_float, as_base64, by_default):
        assert [item.index for item in response.data] == list(range(len(TEXTS)))
        assert isinstance(response.data[0].embedding, str) == (response is as_base64)
        assert np.array_equal(rows(response), expected)
        assert response.model == model
        assert response.usage.prompt_tokens == int(default_encoder.count_tokens(TEXTS).sum())


def test_single_string_and_dimensions(client, default_encoder):
    response = client.embeddings.create(model="any", input="just one text", dimensions=128)
    (vector,) = rows(response)
    assert np.array_equal(vector, default_encoder.encode("just one text", dims=128))


@pytest.mark.parametrize("tokens", [[[101, 7592, 102]], [7592, 2088]])
def test_token_arrays_are_refused_naming_the_langchain_setting(client, tokens):
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="any", input=tokens)
    assert caught.value.status_code == 400
    assert "check_embedding_ctx_length=False" in caught.value.message
    assert caught.value.code == "token_arrays_unsupported"


def test_langchain_openai_embeddings_with_text_input(base_url, default_encoder):
    """LangChain's OpenAIEmbeddings sends tiktoken ids unless told to send text; with
    check_embedding_ctx_length=False it works as any client."""
    lc_openai = pytest.importorskip("langchain_openai")
    embeddings = lc_openai.OpenAIEmbeddings(model="all-minilm-l6-v2", base_url=base_url,
                                            api_key="unused", max_retries=0,
                                            check_embedding_ctx_length=False)
    documents = np.asarray(embeddings.embed_documents(TEXTS[:2]), np.float32)
    assert np.array_equal(documents, default_encoder.encode(TEXTS[:2]))
    assert len(embeddings.embed_query("a question")) == 384
