"""The first exporter: real MiniLM in, a valid package out; bad sources refused clearly."""

from __future__ import annotations

import json
import shutil

import pytest

from edgembed import Encoder
from edgembed.errors import ExportError
from edgembed.export.source import read_source


def test_source_reading(minilm_source):
    source = read_source(minilm_source)
    assert (source.pooling, source.normalize, source.max_seq_length) == ("mean", True, 256)
    assert source.hidden_size == 384 and source.is_sentence_transformers
    assert source.weights_sha256 == (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")


def test_fp32_manifest(fp32_package):
    manifest = json.loads((fp32_package / "manifest.json").read_text())
    assert manifest["output"] == "sentence_embedding"
    assert manifest["quantization"]["method"] == "none"
    assert manifest["source"]["weights_sha256"].startswith("53aa5117")
    encoder = Encoder.load(fp32_package)
    output = encoder.session.get_outputs()
    assert [o.name for o in output] == ["sentence_embedding"] and output[0].shape[1] == 384


@pytest.fixture
def source_copy(tmp_path, minilm_source):
    """A light copy: symlinked weights, real config files we can break."""
    target = tmp_path / "src"
    target.mkdir()
    for item in minilm_source.iterdir():
        if item.is_dir():
            shutil.copytree(item, target / item.name)
        elif item.name == "model.safetensors":
            (target / item.name).symlink_to(item)
        else:
            shutil.copy(item, target / item.name)
    return target


def test_missing_tokenizer_refused(source_copy, tmp_path):
    (source_copy / "tokenizer.json").unlink()
    with pytest.raises(ExportError, match="tokenizer.json"):
        read_source(source_copy)


def test_unsupported_architecture_refused(source_copy):
    config = json.loads((source_copy / "config.json").read_text())
    config["model_type"] = "gpt2"
    (source_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="unsupported architecture 'gpt2'"):
        read_source(source_copy)


def test_unsupported_module_refused(source_copy):
    modules = json.loads((source_copy / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense",
                    "type": "sentence_transformers.models.Dense"})
    (source_copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ExportError, match="Dense"):
        read_source(source_copy)


def test_output_that_is_a_file_refused(minilm_source, tmp_path):
    from edgembed.export import export_model

    target = tmp_path / "a-file"
    target.write_text("keep me")
    with pytest.raises(ExportError, match="not a directory"):
        export_model(minilm_source, target)
    assert target.read_text() == "keep me"


def test_non_empty_foreign_folder_refused(minilm_source, tmp_path):
    from edgembed.export import export_model

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an edgembed package"):
        export_model(minilm_source, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_export_error_is_one_line(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "edgembed", "export", str(tmp_path / "none"),
                             "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "source model folder not found" in result.stderr and "Traceback" not in result.stderr
