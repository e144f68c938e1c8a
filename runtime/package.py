"""The model package on disk: a directory with model.onnx, tokenizer.json and manifest.json.

Reading lives here, in the slim runtime (the manifest's fields are checked by
`edgembed.manifest.Manifest`); writing lives in the exporter. Loading always
verifies checksums, because a silently damaged model gives silently wrong vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import reprlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import ChecksumError, PackageError, reason
from .manifest import MODEL_FILE, TOKENIZER_FILE, Manifest

MANIFEST_FILE = "manifest.json"
DEFAULT_PACKAGE = "all-minilm-l6-v2"


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
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_FILE

    @property
    def package_id(self) -> str:
        """Identifies the exact weights: an index built with one package refuses another."""
        return f"{self.manifest.name}@{self.manifest.model_sha256[:16]}"


def read_manifest(path: Path) -> Manifest:
    """The manifest, checked field by field (`Manifest.from_dict`): whatever is on disk, a
    bad package gives one PackageError line here rather than a KeyError or TypeError later,
    deep in the encoder."""
    manifest_path = path / MANIFEST_FILE
    if not path.is_dir():
        raise PackageError(f"model package not found: {path} is not a directory")
    if not manifest_path.is_file():
        raise PackageError(f"missing file {manifest_path}: not an edgembed model package")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PackageError(f"cannot read {manifest_path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PackageError(f"unreadable manifest {manifest_path}: {reason(exc, 200)}") from None
    return Manifest.from_dict(data, manifest_path)


def verify_files(path: Path, manifest: Manifest) -> None:
    """Check that every listed file is present and matches its sha256."""
    for name, entry in manifest.files.items():
        file_path = path / name
        if not file_path.is_file():
            raise PackageError(f"missing file {file_path} (listed in the manifest)")
        try:
            actual = sha256_file(file_path)
        except OSError as exc:
            raise PackageError(f"cannot read {file_path}: {exc.strerror or exc}") from None
        if actual != entry.sha256:
            raise ChecksumError(str(file_path), entry.sha256, actual)


def open_package(path: str | Path | None = None, verify: bool = True) -> Package:
    """Read and (by default) verify a package; `None` means the bundled default model."""
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"package path must be a str or os.PathLike, got {type(path).__name__}")
    if isinstance(path, str) and not path.strip():
        raise PackageError("package path is empty")
    try:
        package_path = Path(path).expanduser() if path is not None else default_package_path()
    except RuntimeError as exc:  # "~nobody/pkg": no such home directory
        raise PackageError(f"bad package path {path!r}: {exc}") from None
    try:
        manifest = read_manifest(package_path)
        if verify:
            verify_files(package_path, manifest)
        return Package(package_path.resolve(), manifest)
    except OSError as exc:  # a name too long, a permission denied on the folder, ...
        reason = exc.strerror or type(exc).__name__
        raise PackageError(f"cannot open model package {reprlib.repr(str(package_path))}: "
                           f"{reason}") from None


def package_sizes(package: Package) -> dict[str, int]:
    return {name: (package.path / name).stat().st_size for name in package.manifest.files}
