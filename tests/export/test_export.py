"""The first exporter: real MiniLM in, a valid package out; bad sources refused clearly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import cosines
from edgembed import Encoder
from edgembed.errors import ExportError
from edgembed.export import ExportOptions, export_model
from edgembed.export.source import read_source


def test_source_reading(minilm_source):
    source = read_source(minilm_source)
    assert (source.pooling, source.normalize, source.max_seq_length) == ("mean", True, 256)
    assert source.hidden_size == 384 and source.is_sentence_transformers
    assert source.weights_sha256 == (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")


@pytest.mark.slow
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
    modules.append({"idx": 3, "name": "3", "path": "3_LayerNorm",
                    "type": "sentence_transformers.models.LayerNorm"})
    (source_copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ExportError, match="unsupported sentence-transformers module 'LayerNorm'"):
        read_source(source_copy)


def test_output_that_is_a_file_refused(minilm_source, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    with pytest.raises(ExportError, match="not a directory"):
        export_model(minilm_source, target)
    assert target.read_text() == "keep me"


def test_non_empty_foreign_folder_refused(minilm_source, tmp_path):
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


@pytest.mark.slow
def test_fixed_shape_export_runs(minilm_source, tmp_path, fp32_package):
    manifest = export_model(minilm_source, tmp_path / "static",
                            ExportOptions(quantize="none", static_shape="2x32", validate=False))
    assert manifest.static_shape == (2, 32) and manifest.max_seq_length == 32
    encoder = Encoder.load(tmp_path / "static")
    assert encoder.session.get_inputs()[0].shape == [2, 32]
    texts = ["one", "two words", "three more words", "a b c d", "five"]  # 5: odd, > batch
    vectors = encoder.encode(texts)
    assert vectors.shape == (5, 384)
    expected = Encoder.load(fp32_package).encode(texts)  # short texts: 32 tokens is no cut
    assert cosines(vectors, expected).min() >= 0.9999


@pytest.mark.slow
def test_quick_int8_static_with_few_calibration_texts(minilm_source, tmp_path, sentences,
                                                      fp32_package):
    manifest = export_model(minilm_source, tmp_path / "qdq", ExportOptions(
        quantize="int8-static", calibration_texts=sentences[:16], validate=False))
    assert manifest.quantization["format"].startswith("QDQ")
    vectors = Encoder.load(tmp_path / "qdq").encode(sentences[:40])
    reference = Encoder.load(fp32_package).encode(sentences[:40])
    # 16 texts calibrate, rank and stop the 16-bit search (the held-out loss is measured on
    # the calibration texts themselves), so unseen texts may lose more than --max-loss;
    # uint8 everywhere gives ~0.93 (test_npu_target.py checks the full export)
    assert 0.97 <= cosines(vectors, reference).mean() < 0.9999


@pytest.mark.slow
def test_keep_nodes_stay_out_of_dynamic_int8(minilm_source, tmp_path):
    import onnx

    manifest = export_model(minilm_source, tmp_path / "kept", ExportOptions(
        quantize="int8-dynamic", keep_nodes=["/encoder/layer.0/output/dense/MatMul"],
        validate=False))
    assert manifest.quantization["kept_in_float"] == ("/encoder/layer.0/output/dense/MatMul",)
    graph = onnx.load(str(tmp_path / "kept" / "model.onnx")).graph
    kinds = {node.op_type for node in graph.node}
    assert "MatMulNBits" in kinds and {"MatMulInteger", "DynamicQuantizeLinear"} & kinds


@pytest.mark.slow
def test_export_stores_calibration(fp32_package):
    """The pipeline's calibrate step fills the manifest section the runtime reads."""
    calibration = json.loads((fp32_package / "manifest.json").read_text())["calibration"]
    assert calibration["n_texts"] == 400 and calibration["texts"].startswith("edgembed built-in")
    lo, hi = np.asarray(calibration["int8"]["lo"]), np.asarray(calibration["int8"]["hi"])
    assert lo.shape == hi.shape == (384,) and np.all(lo <= hi)
    assert np.asarray(calibration["residual"]["scales"]).shape == (4, 384)
    encoder = Encoder.load(fp32_package)
    assert encoder.int8_ranges.source == "calibrated"
    assert np.array_equal(encoder.int8_ranges.lo, lo.astype(np.float32))
