"""`edgembed models` and `edgembed export --recipe NAME` when the weights are not here."""

from __future__ import annotations

import json
import os

from conftest import assert_one_line_error, edgembed
from edgembed.catalog import catalog


def test_models_lists_every_recipe_and_what_was_checked(tmp_path):
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path)}
    result = edgembed("models", env=env)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:-1]}
    assert set(lines) == {recipe.name for recipe in catalog()}
    assert "python package" in lines["all-minilm-l6-v2"]
    assert "built, cosine 0.998371 to torch" in lines["all-minilm-l6-v2"]
    assert "built, cosine 0.996983 to torch" in lines["all-mpnet-base-v2"]
    assert lines["bge-small-en-v1.5"].split()[-6:] == [
        "no", "not", "built;", "weights", "sha256", "unverified"]
    assert "93 languages" in lines["multilingual-e5-small"]

    rows = {row["name"]: row for row in json.loads(edgembed("models", "--json", env=env).stdout)}
    bge = rows["bge-small-en-v1.5"]
    assert bge["verified"] is False and bge["weights_sha256"] is None and bge["built"] is None
    assert bge["pooling"] == "cls" and bge["dim"] == 384
    cached = tmp_path / "models--BAAI--bge-small-en-v1.5" / "snapshots" / bge["revision"]
    cached.mkdir(parents=True)
    (cached / "model.safetensors").write_bytes(b"weights")
    rows = {row["name"]: row for row in json.loads(edgembed("models", "--json", env=env).stdout)}
    assert rows["bge-small-en-v1.5"]["weights_here"] == "hub cache"


def test_a_recipe_without_weights_here_says_so_in_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
    result = edgembed("export", "--recipe", "bge-small-en-v1.5", "-o", str(tmp_path / "out"),
                      env=env)
    assert_one_line_error(result, "recipe bge-small-en-v1.5: its weights are not on this "
                          "machine", "HF_HUB_OFFLINE=1 is set",
                          "edgembed export --recipe bge-small-en-v1.5 FOLDER -o OUT")
    assert not (tmp_path / "out").exists()
    unknown = edgembed("export", "--recipe", "bge-small", "-o", str(tmp_path / "out"), env=env)
    assert_one_line_error(unknown, "no recipe named 'bge-small'", "bge-small-en-v1.5")
