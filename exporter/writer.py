"""Write a model package directory: model.onnx, tokenizer.json and manifest.json.

The package is assembled in a temporary sibling directory and renamed into place, so an
interrupted export never leaves a half-written package where a good one used to be."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx

from edgembed.errors import ExportError, PackageError
from edgembed.manifest import MODEL_FILE, TOKENIZER_FILE, Manifest
from edgembed.package import MANIFEST_FILE, sha256_file


def check_output_dir(output: Path) -> None:
    """Refuse outputs we could damage: a file, or a non-empty folder that is not a package."""
    if output.exists() and not output.is_dir():
        raise ExportError(f"output {output} exists and is not a directory")
    if output.is_dir() and any(output.iterdir()) and not (output / MANIFEST_FILE).is_file():
        raise ExportError(f"output {output} is a non-empty folder that is not an edgembed "
                          "package; choose an empty or new folder")


def write_manifest(package_dir: Path, manifest: Manifest) -> None:
    text = json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n"
    (package_dir / MANIFEST_FILE).write_text(text, encoding="utf-8")


def build_manifest(fields: Mapping[str, Any]) -> Manifest:
    """The runtime's own checks on what the exporter is about to write: a field the runtime
    would refuse stops the export here, as an ExportError, before any package is replaced."""
    try:
        return Manifest(**fields)
    except PackageError as exc:
        raise ExportError(f"the exporter made an invalid manifest: {exc}") from None


def write_package(output: Path, model: onnx.ModelProto, tokenizer_file: Path,
                  fields: Mapping[str, Any]) -> Manifest:
    """Write the package and return its manifest: `fields` (Manifest's, less `files`) plus
    the files' checksums."""
    output = output.expanduser().resolve()
    check_output_dir(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a package is meant to be shared
    try:
        onnx.save(model, str(staging / MODEL_FILE))
        shutil.copyfile(tokenizer_file, staging / TOKENIZER_FILE)
        files = {name: {"sha256": sha256_file(staging / name),
                        "bytes": (staging / name).stat().st_size}
                 for name in (MODEL_FILE, TOKENIZER_FILE)}
        manifest = build_manifest({**fields, "files": files})
        write_manifest(staging, manifest)
        if output.exists():
            retired = output.with_name(f".{output.name}.old")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(output, retired)
            os.replace(staging, output)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest
