"""Loading verifies every file; damage gives a clear error naming the file."""

from __future__ import annotations

import json
import shutil

import pytest

from edgembed import ChecksumError, Encoder, PackageError, default_package_path, open_package


@pytest.fixture
def package_copy(tmp_path):
    target = tmp_path / "pkg"
    shutil.copytree(default_package_path(), target)
    return target


def test_default_package_verifies():
    package = open_package()
    assert package.path == default_package_path().resolve()
    assert set(package.manifest.files) >= {"model.onnx", "tokenizer.json"}
    assert package.package_id.startswith("all-minilm-l6-v2@")


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json"])
def test_tampered_file_is_named(package_copy, name):
    path = package_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=name):
        Encoder.load(package_copy)


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json", "manifest.json"])
def test_missing_file_is_named(package_copy, name):
    (package_copy / name).unlink()
    with pytest.raises(PackageError, match=name):
        Encoder.load(package_copy)


def test_unknown_format_version(package_copy):
    manifest = json.loads((package_copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (package_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="format_version 99"):
        open_package(package_copy)


def test_corrupt_manifest(package_copy):
    (package_copy / "manifest.json").write_text("{not json")
    with pytest.raises(PackageError, match="manifest"):
        open_package(package_copy)


def test_not_a_directory(tmp_path):
    with pytest.raises(PackageError, match="not a directory"):
        open_package(tmp_path / "nothing-here")


def test_truncated_model_without_verification_gives_clean_error(package_copy):
    """Even with checksums skipped, onnxruntime's failure is an edgembed error."""
    path = package_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(PackageError, match="model.onnx"):
        Encoder.load(package_copy, verify=False)
