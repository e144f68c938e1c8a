"""`/v1/embeddings` and `/v1/search` with named prompts (`prompt_name`) and literal ones
(`prompt`), against a package with e5-style prompts. The package is the default int8 one:
a text's vector equals its direct encode only up to float rounding (a pass's padded width
moves its last bits), so vectors are compared by cosine."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from http_calls import assert_error, call, embed, vectors_of  # noqa: E402

from edgembed import Index  # noqa: E402
from edgembed.serve.app import create_app  # noqa: E402
from edgembed.serve.app import running as serve_running  # noqa: E402

TEXTS = ["cats sleep most of the day", "the stock market fell"]
DOCS = ["Cats sleep for most of the day.", "Stock markets fell sharply on Monday.",
        "Rain forms when water vapour condenses.", "Bicycles need their chains oiled."]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def served(prompted_encoder, tmp_path_factory):
    with Index.create(tmp_path_factory.mktemp("index") / "idx", prompted_encoder) as index:
        index.add(DOCS)
    index = Index.open(index.path, encoder=prompted_encoder, view=True)
    with serve_running(create_app(prompted_encoder, index)) as url:
        yield int(url.rsplit(":", 1)[1]), index
    index.close()


@pytest.mark.parametrize("fields,expected", [
    ({"prompt_name": "classification"}, {"prompt": "classify: "}),
    ({"prompt": "classify: "}, {"prompt": "classify: "}),
    ({"kind": "query"}, {"prompt": "query: "}),
    ({}, {"prompt": "passage: "}),  # no choice: the document prefix
])
def test_embeddings_use_the_chosen_prompt(served, prompted_encoder, fields, expected):
    port, _ = served
    status, data = embed(port, input=TEXTS, **fields)
    assert status == 200, data
    direct = prompted_encoder.encode(TEXTS, **expected)
    assert cosines(vectors_of(data), direct).min() > 0.9999
    tokens = int(prompted_encoder.count_tokens(TEXTS, **expected).sum())
    assert data["usage"]["prompt_tokens"] == tokens


@pytest.mark.parametrize("fields,param,words", [
    ({"prompt_name": "qeury"}, "prompt_name",
     ["unknown prompt_name 'qeury'", "'query', 'passage', 'classification'"]),
    ({"prompt_name": "query", "prompt": "q: "}, "prompt_name", ["pass one of"]),
    ({"kind": "query", "prompt": "q: "}, "prompt", ["pass one of kind or prompt"]),
    ({"prompt": 3}, "prompt", ["must be a string"]),
])
def test_bad_prompts_are_400s(served, fields, param, words):
    port, _ = served
    status, data, _ = call(port, "POST", "/v1/embeddings", {"input": "x", **fields})
    assert assert_error(status, data, 400, *words)["param"] == param


def test_concurrent_requests_with_different_prompts_get_their_own(served, prompted_encoder):
    """The same text under four prompts, sent at once: the batcher must not put them in one
    batch under one prompt."""
    port, _ = served
    choices = [{"prompt_name": "classification"}, {"kind": "query"}, {"prompt": ""},
               {"prompt": "passage: "}] * 6
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda fields: embed(port, input=TEXTS[0], **fields),
                                choices))
    for fields, (status, data) in zip(choices, answers, strict=True):
        assert status == 200, data
        direct = prompted_encoder.encode([TEXTS[0]], **fields)
        assert cosines(vectors_of(data), direct).min() > 0.9999, fields


def test_search_takes_a_prompt(served, prompted_encoder):
    port, index = served
    status, data, _ = call(port, "POST", "/v1/search",
                           {"query": "sleepy cats", "k": 4, "mode": "dense",
                            "prompt_name": "classification"})
    assert status == 200, data
    vectors = prompted_encoder.encode(["sleepy cats"], prompt_name="classification")
    expected = index.search("sleepy cats", k=4, mode="dense", vectors=vectors)
    hits = data["data"][0]["hits"]
    assert [hit["id"] for hit in hits] == [hit.id for hit in expected]
    np.testing.assert_allclose([hit["score"] for hit in hits], [hit.score for hit in expected],
                               atol=1e-4)  # int8 package: rounding of the padded pass
    status, plain, _ = call(port, "POST", "/v1/search",
                            {"query": "sleepy cats", "k": 4, "mode": "dense"})
    assert [hit["score"] for hit in plain["data"][0]["hits"]] != \
        [hit["score"] for hit in hits]  # the query prefix by default
    status, data, _ = call(port, "POST", "/v1/search", {"query": "x", "prompt_name": "nope"})
    assert assert_error(status, data, 400, "unknown prompt_name")["param"] == "prompt_name"
