"""Damaged or missing package files through the CLI: one line `edgembed: error: …` and
status 2, even when onnxruntime itself fails (tests/core/test_loaders_fuzz.py covers many
more package faults through the Python API)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import assert_one_line_error, edgembed, flip_bytes, set_manifest, truncate
from edgembed import default_package_path


def rehash(package: Path, name: str) -> None:
    """Record a file's current sha256 in the manifest: the damage gets past verification."""
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["files"][name]["sha256"] = hashlib.sha256((package / name).read_bytes()).hexdigest()
    (package / "manifest.json").write_text(json.dumps(manifest))


PACKAGE_FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated onnx": (lambda p: truncate(p / "model.onnx"), "checksum mismatch"),
    "truncated onnx, checksum updated": (
        lambda p: (truncate(p / "model.onnx"), rehash(p, "model.onnx")), "onnxruntime"),
    "checksum mismatch": (lambda p: flip_bytes(p / "tokenizer.json", count=3),
                          "checksum mismatch"),
    "missing tokenizer": (lambda p: (p / "tokenizer.json").unlink(), "tokenizer.json"),
    "unknown manifest format_version": (lambda p: set_manifest(p, format_version=99),
                                        "format_version 99"),
}


@pytest.mark.parametrize("fault", PACKAGE_FAULTS)
def test_damaged_package(tmp_path, fault):
    package = tmp_path / "pkg"
    shutil.copytree(default_package_path(), package)
    damage, message = PACKAGE_FAULTS[fault]
    damage(package)
    assert_one_line_error(edgembed("embed", "--model", str(package), stdin="hello\n"),
                          message)
