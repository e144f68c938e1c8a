"""Building catalog recipes: options checked, weights verified when pinned and named when
not, and a [model] table that disagrees with the weights refused."""

from __future__ import annotations

import json

import pytest
from hub_server import build_tiny_model

from edgembed.catalog import catalog, recipes_dir
from edgembed.errors import ExportError
from edgembed.export import build_from_recipe, load_recipe
from edgembed.export.recipe import recipe_options


def test_every_recipe_has_valid_export_options():
    for recipe in catalog():
        options = recipe_options(load_recipe(recipe.name), recipe.name)
        assert options.name == recipe.name and options.source_name == recipe.source["hub_id"]
        assert options.quantize == "auto"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-bert",
                            {"query": "query: ", "passage": "passage: "})


def tiny_recipe(tmp_path, **model: object) -> str:
    """gte-small's recipe, made to describe the tiny model (or not, with `model`)."""
    values = {"dim": 32, "max_seq_length": 64, "pooling": "mean", **model}
    text = (recipes_dir() / "gte-small.toml").read_text(encoding="utf-8")
    text = text.replace("dim = 384", f"dim = {values['dim']}") \
        .replace("max_seq_length = 512", f"max_seq_length = {values['max_seq_length']}") \
        .replace('pooling = "mean"', f'pooling = "{values["pooling"]}"') \
        .replace('quantize = "auto"', 'quantize = "none"\nvalidate = false') \
        .replace('prefixes = { query = "", document = "" }',
                 'prefixes = { query = "q: ", document = "d: " }')
    path = tmp_path / "tiny.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.slow
def test_an_unpinned_recipe_builds_from_a_folder_and_names_the_sha256(tiny, tmp_path):
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=r"recipe gte-small does not pin its weights "
                      r"\(verified = false\): building from model.safetensors with sha256 "
                      r"[0-9a-f]{64}"):
        manifest = build_from_recipe(tiny_recipe(tmp_path), out, folder=tiny)
    assert manifest.name == "gte-small" and manifest.source["model"] == "thenlper/gte-small"
    assert "revision" not in manifest.source  # a local folder: no commit to record
    written = json.loads((out / "manifest.json").read_text())
    assert written["prefixes"] == {"query": "q: ", "document": "d: "}
    assert written["prompts"] == {"query": "query: ", "passage": "passage: "}


@pytest.mark.slow
def test_a_folder_that_is_not_the_recipes_model_is_refused(tiny, tmp_path):
    with pytest.raises(ExportError, match=r"recipe gte-small says dim 384 but the weights have "
                                          r"32; pooling 'cls' but the weights have 'mean'"):
        build_from_recipe(tiny_recipe(tmp_path, dim=384, pooling="cls"), tmp_path / "a",
                          folder=tiny)
    with pytest.raises(ExportError, match="refusing to build from other weights"):
        build_from_recipe("all-minilm-l6-v2", tmp_path / "b", folder=tiny)
    with pytest.raises(ExportError, match="source model folder not found"):
        build_from_recipe("gte-small", tmp_path / "c", folder=tmp_path / "missing")
    assert not any((tmp_path / name).exists() for name in "abc")
