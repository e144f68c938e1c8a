"""Prompts: `kind`, `prompt_name` and `prompt` choose the text put before every input, as
sentence-transformers' prompts do; every encode entry point takes them alike."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import PROMPTS, prompted_package
from edgembed import EdgembedError, Encoder

TEXTS = ["cats sleep most of the day", "the stock market fell", ""]


def test_prompt_name_and_prompt_prepend_their_text(prompted_encoder):
    encoder = prompted_encoder
    assert encoder.prompts == PROMPTS and encoder.default_prompt_name is None
    for name, text in PROMPTS.items():
        expected = encoder.encode([text + t for t in TEXTS], prompt="")
        assert np.allclose(encoder.encode(TEXTS, prompt_name=name), expected, atol=1e-6)
        assert np.allclose(encoder.encode(TEXTS, prompt=text), expected, atol=1e-6)
    # kind keeps choosing the prefixes; without a kind the document prefix applies
    assert np.allclose(encoder.encode(TEXTS, kind="query"),
                       encoder.encode(TEXTS, prompt_name="query"), atol=1e-6)
    assert np.allclose(encoder.encode(TEXTS), encoder.encode(TEXTS, prompt="passage: "),
                       atol=1e-6)
    assert not np.allclose(encoder.encode(TEXTS, prompt_name="classification"),
                           encoder.encode(TEXTS, prompt=""), atol=1e-3)


def test_every_entry_point_takes_prompts(prompted_encoder):
    encoder = prompted_encoder
    expected = encoder.encode(TEXTS, prompt="classify: ")
    streamed = np.concatenate(list(encoder.encode_iter(TEXTS, prompt_name="classification")))
    assert np.allclose(streamed, expected, atol=1e-6)
    vectors, tokens = encoder.encode_with_usage(TEXTS, prompt_name="classification")
    assert np.allclose(vectors, expected, atol=1e-6)
    assert np.array_equal(tokens, encoder.count_tokens(TEXTS, prompt="classify: "))
    # "classify: " is two WordPiece tokens: "classify" and ":"
    assert np.array_equal(tokens - encoder.count_tokens(TEXTS, prompt=""), [2, 2, 2])
    # sentence-transformers' keywords still work beside prompts
    assert np.allclose(encoder.encode(TEXTS, prompt_name="classification",
                                      normalize_embeddings=True, show_progress_bar=False),
                       expected, atol=1e-6)


def test_default_prompt_name_applies_when_nothing_is_chosen(tmp_path, default_encoder):
    encoder = Encoder.load(prompted_package(default_encoder.path, tmp_path / "pkg",
                                            default_prompt_name="classification"))
    assert encoder.default_prompt_name == "classification"
    assert np.allclose(encoder.encode(TEXTS), encoder.encode(TEXTS, prompt="classify: "),
                       atol=1e-6)
    # an explicit kind or prompt still wins over the default
    assert np.allclose(encoder.encode(TEXTS, kind="document"),
                       encoder.encode(TEXTS, prompt="passage: "), atol=1e-6)
    assert np.array_equal(encoder.count_tokens(TEXTS),
                          encoder.count_tokens(TEXTS, prompt_name="classification"))


def test_bad_prompt_arguments_are_clear_errors(prompted_encoder, default_encoder):
    with pytest.raises(EdgembedError, match=r"unknown prompt_name 'qeury': this package's "
                       r"prompts are 'query', 'passage', 'classification'"):
        prompted_encoder.encode(TEXTS, prompt_name="qeury")
    with pytest.raises(EdgembedError, match="this package has no named prompts"):
        default_encoder.encode(TEXTS, prompt_name="query")
    with pytest.raises(EdgembedError, match="pass one of prompt_name or prompt, not both"):
        prompted_encoder.encode(TEXTS, prompt_name="query", prompt="query: ")
    with pytest.raises(EdgembedError, match="pass one of kind or prompt_name"):
        prompted_encoder.count_tokens(TEXTS, kind="query", prompt_name="query")
    with pytest.raises(EdgembedError, match="prompt must be a string"):
        prompted_encoder.encode_iter(TEXTS, prompt=3)
    with pytest.raises(EdgembedError, match="unknown prompt_name"):
        prompted_encoder.encode_with_usage(TEXTS, prompt_name=["query"])


def test_framework_adapters_take_a_prompt_instead_of_the_kind(prompted_encoder):
    """LangChain / LlamaIndex adapters: query_encode_kwargs={"prompt_name": ...} replaces the
    query prefix; documents keep the document prefix."""
    from edgembed.integrations.embedder import Embedder

    embedder = Embedder.build(encoder=prompted_encoder,
                              query_encode_kwargs={"prompt_name": "classification"})
    assert np.allclose(embedder.encode(TEXTS, "query"),
                       prompted_encoder.encode(TEXTS, prompt="classify: "), atol=1e-6)
    assert np.allclose(embedder.encode(TEXTS, "document"),
                       prompted_encoder.encode(TEXTS, kind="document"), atol=1e-6)
    with pytest.raises(EdgembedError, match="unknown prompt_name"):
        Embedder.build(encoder=prompted_encoder, query_encode_kwargs={"prompt_name": "x"})
