"""The model package on disk: a directory with model.onnx, tokenizer.json and manifest.json.

Reading lives here, in the slim runtime; writing lives in the exporter. Loading always
verifies checksums, because a silently damaged model gives silently wrong vectors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ChecksumError, PackageError

FORMAT_NAME = "edgembed-package"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
REQUIRED_FILES = (MODEL_FILE, TOKENIZER_FILE)
DEFAULT_PACKAGE = "all-minilm-l6-v2"
REQUIRED_KEYS = ("name", "dim", "max_seq_length", "pooling", "normalized", "files")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_package_path() -> Path:
    """The bundled package, found through the installed `edgembed.models` package so that
    it works the same from a wheel, an editable install and a source checkout."""
    root = Path(str(resources.files("edgembed.models")))
    return root / DEFAULT_PACKAGE


@dataclass(frozen=True)
class Package:
    """A verified package: its directory and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_FILE

    @property
    def package_id(self) -> str:
        """Identifies the exact weights: an index built with one package refuses another."""
        return f"{self.manifest['name']}@{self.manifest['files'][MODEL_FILE]['sha256'][:16]}"


def read_manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / MANIFEST_FILE
    if not path.is_dir():
        raise PackageError(f"model package not found: {path} is not a directory")
    if not manifest_path.is_file():
        raise PackageError(f"missing file {manifest_path}: not an edgembed model package")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"unreadable manifest {manifest_path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise PackageError(
            f"{manifest_path} is not an edgembed manifest (format != {FORMAT_NAME!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise PackageError(
            f"{manifest_path} has format_version {version!r}; this edgembed reads version "
            f"{FORMAT_VERSION} (upgrade edgembed or re-export the package)"
        )
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise PackageError(f"{manifest_path} lacks required keys: {', '.join(missing)}")
    return manifest


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    """Check that every required file is present and every listed file matches its sha256."""
    files = manifest["files"]
    for name in REQUIRED_FILES:
        if name not in files:
            raise PackageError(f"{path / MANIFEST_FILE} does not list required file {name}")
    for name, entry in files.items():
        file_path = path / name
        if not file_path.is_file():
            raise PackageError(f"missing file {file_path} (listed in the manifest)")
        actual = sha256_file(file_path)
        if actual != entry["sha256"]:
            raise ChecksumError(str(file_path), entry["sha256"], actual)


def open_package(path: str | Path | None = None, verify: bool = True) -> Package:
    """Read and (by default) verify a package; `None` means the bundled default model."""
    package_path = Path(path).expanduser() if path is not None else default_package_path()
    manifest = read_manifest(package_path)
    if verify:
        verify_files(package_path, manifest)
    return Package(package_path.resolve(), manifest)


def package_sizes(package: Package) -> dict[str, int]:
    return {name: (package.path / name).stat().st_size for name in package.manifest["files"]}
