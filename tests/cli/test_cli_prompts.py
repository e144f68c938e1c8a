"""`edgembed embed`, `search` and `info` with a package's named prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, edgembed
from edgembed import Index

TEXTS = ["cats sleep most of the day", "the stock market fell"]
DOCUMENTS = ["Cats sleep for most of the day.", "Stock markets fell sharply on Monday.",
             "Rain forms when water vapour condenses.", "Bicycles need their chains oiled."]


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


def embed(model, texts_file, *options: str) -> np.ndarray:
    result = edgembed("embed", str(texts_file), "--model", str(model), *options)
    assert result.returncode == 0, result.stderr
    return np.array([json.loads(line)["embedding"] for line in result.stdout.splitlines()])


def test_embed_takes_a_prompt_name_or_a_prompt(prompted_encoder, texts_file):
    model = prompted_encoder.path
    named = embed(model, texts_file, "--prompt-name", "classification")
    assert np.allclose(named, prompted_encoder.encode(TEXTS, prompt_name="classification"),
                       atol=1e-5)
    assert np.allclose(embed(model, texts_file, "--prompt", "classify: "), named, atol=1e-6)
    assert np.allclose(embed(model, texts_file, "--kind", "query"),
                       prompted_encoder.encode(TEXTS, kind="query"), atol=1e-5)


def test_embed_refuses_unknown_or_conflicting_prompts(prompted_encoder, texts_file):
    model = str(prompted_encoder.path)
    assert_one_line_error(edgembed("embed", str(texts_file), "--model", model,
                                   "--prompt-name", "qeury"),
                          "unknown prompt_name 'qeury'", "'query', 'passage', 'classification'")
    assert_one_line_error(edgembed("embed", str(texts_file), "--model", model, "--kind",
                                   "query", "--prompt", "x: "), "pass one of kind or prompt")
    assert_one_line_error(edgembed("embed", str(texts_file), "--prompt-name", "query"),
                          "this package has no named prompts")


def test_info_lists_the_prompts(prompted_encoder):
    result = edgembed("info", str(prompted_encoder.path))
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("prompts"))
    assert '"classification": "classify: "' in line


def test_search_embeds_the_query_with_the_chosen_prompt(prompted_encoder, tmp_path):
    index_dir = tmp_path / "index"
    with Index.create(index_dir, prompted_encoder) as index:
        index.add(DOCUMENTS)

    def search(*options: str) -> list[dict]:
        result = edgembed("search", "sleepy cats", "--index", str(index_dir), "--mode",
                          "dense", "--json", *options)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    named = search("--prompt-name", "classification")
    assert named == search("--prompt", "classify: ")
    with Index.open(index_dir, view=True) as index:
        vector = prompted_encoder.encode(["sleepy cats"], prompt_name="classification")
        expected = index.search("sleepy cats", mode="dense", vectors=vector)
    assert [hit["text"] for hit in named] == [hit.text for hit in expected]
    assert [hit["score"] for hit in named] == [round(hit.score, 4) for hit in expected]
    # without a prompt the query gets the query prefix, which scores differently
    assert [hit["score"] for hit in search()] != [hit["score"] for hit in named]
    assert_one_line_error(edgembed("search", "cats", "--index", str(index_dir), "--mode",
                                   "keyword", "--prompt", "x: "), "--mode keyword embeds nothing")
