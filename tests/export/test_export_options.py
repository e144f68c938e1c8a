"""ExportOptions: the command line, recipes and the Python API refuse the same option values
with the same one-line message, before any export work."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgembed import default_package_path
from edgembed.cli import main
from edgembed.errors import ExportError
from edgembed.export import Compression, ExportOptions, build_from_recipe, export_model
from edgembed.export.recipe import recipe_options

RECIPE = default_package_path().parent / "recipes" / "all-minilm-l6-v2.toml"

# (ExportOptions keywords, the same on the command line, the same in a recipe, message)
BAD_OPTIONS = [
    ({"quantize": "int4"}, ["--quantize", "int4"], 'quantize = "int4"',
     "quantize must be one of none, fp16, int8, int8-dynamic, int8-static, auto, got 'int4'"),
    ({"static_shape": "big"}, ["--static-shape", "big"], 'static_shape = "big"',
     "BATCHxSEQUENCE"),
    ({"static_shape": "0x128"}, ["--static-shape", "0x128"], 'static_shape = "0x128"',
     "batch ≥ 1"),
    ({"max_loss": 2.0}, ["--max-loss", "2"], "max_loss = 2.0",
     "max_loss must be between 0 and 1, got 2.0"),
    ({"optimize": 7}, ["--optimize", "7"], "optimize = 7",
     "optimize level must be one of (0, 1, 2), got 7"),
    ({"pooling": "sum"}, ["--pooling", "sum"], 'pooling = "sum"',
     "pooling must be cls, mean or max, got 'sum'"),
    ({"optimize": 1}, ["--optimize", "1"], "optimize = 1",  # with the default quantize, auto
     "quantize auto works on plain MatMuls: the fused Attention and EmbedLayerNormalization "
     "of optimize level 1 would stay float32"),
    ({"target": "npu", "quantize": "int8"}, ["--target", "npu", "--quantize", "int8"],
     'target = "npu"\nquantize = "int8"',
     "target npu makes a static int8 (QDQ) package; it takes quantize int8-static"),
    ({"quantize": "int8-static", "optimize": 1}, ["--quantize", "int8-static", "--optimize", "1"],
     'quantize = "int8-static"\noptimize = 1', "the fused com.microsoft operators of optimize"),
]


def recipe_with(tmp_path: Path, export_table: str) -> Path:
    """The default package's recipe with another [export] table."""
    text = RECIPE.read_text(encoding="utf-8")
    path = tmp_path / "recipe.toml"
    path.write_text(text[:text.index("[export]")] + "[export]\n" + export_table + "\n",
                    encoding="utf-8")
    return path


@pytest.mark.parametrize(("options", "argv", "toml", "message"), BAD_OPTIONS,
                         ids=[case[2] for case in BAD_OPTIONS])
def test_api_cli_and_recipe_refuse_alike(minilm_source, tmp_path, capsys, options, argv,
                                         toml, message):
    out = tmp_path / "out"
    with pytest.raises(ExportError) as api:
        export_model(minilm_source, out, ExportOptions(validate=False, **options))
    assert message in str(api.value)

    assert main(["export", str(minilm_source), "-o", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1

    recipe = recipe_with(tmp_path, toml)
    with pytest.raises(ExportError) as built:
        build_from_recipe(recipe, out)
    assert str(built.value) == f"recipe {recipe} [export]: {api.value}"
    assert not out.exists()


def test_recipe_names_an_unknown_option_and_the_valid_ones(tmp_path, capsys):
    recipe = recipe_with(tmp_path, 'quantise = "auto"')
    with pytest.raises(ExportError) as caught:
        build_from_recipe(recipe, tmp_path / "out")
    message = str(caught.value)
    assert "unknown option 'quantise'" in message and "valid options: quantize, optimize" in message
    assert "\n" not in message and "name," not in message  # name comes from the top level
    assert main(["export", "--recipe", str(recipe), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_recipe_tables_become_options(tmp_path):
    recipe = recipe_with(tmp_path, 'quantize = "auto"\nmax_loss = 0.01\nkeep_nodes = ["*/a"]\n'
                                   "[export.compression]\nprune_vocab = \"latin\"\n"
                                   'keep_scripts = ["cyrillic"]\ntable_bits = 4')
    from edgembed.export.recipe import load_recipe

    options = recipe_options(load_recipe(recipe), str(recipe))
    assert options == ExportOptions(quantize="auto", max_loss=0.01, keep_nodes=("*/a",),
                                    name="all-minilm-l6-v2",
                                    source_name="sentence-transformers/all-MiniLM-L6-v2",
                                    compression=Compression(prune_vocab="latin",
                                                            keep_scripts=["cyrillic"],
                                                            table_bits=4))
    bad = recipe_with(tmp_path, "[export.compression]\nprune_vocabulary = true")
    with pytest.raises(ExportError, match="unknown option 'compression.prune_vocabulary'"):
        recipe_options(load_recipe(bad), str(bad))


@pytest.mark.parametrize(("options", "message"), [
    ({"max_loss": "small"}, "max_loss must be a number"),
    ({"validate": "yes"}, "validate must be true or false"),
    ({"keep_nodes": "*/a"}, "keep_nodes must be a list of node-name globs"),
    ({"optimize": True}, "optimize level"),
    ({"compression": {"layers": 4}}, "compression must be a Compression"),
])
def test_option_types_are_checked(options, message):
    with pytest.raises(ExportError, match=message):
        ExportOptions(**options)


def test_options_are_frozen():
    options = ExportOptions(keep_nodes=["*/a"], prefixes={"query": "q: "})
    assert options.keep_nodes == ("*/a",) and options.shape is None
    with pytest.raises(TypeError):
        options.prefixes["query"] = "x"  # type: ignore[index]
    assert ExportOptions(static_shape="2x32").shape == (2, 32)
