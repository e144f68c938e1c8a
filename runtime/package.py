"""The model package on disk: a directory with model.onnx, tokenizer.json and manifest.json.

Reading lives here, in the slim runtime; writing lives in the exporter. Loading always
verifies checksums, because a silently damaged model gives silently wrong vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import reprlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ChecksumError, PackageError, reason

FORMAT_NAME = "edgembed-package"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
REQUIRED_FILES = (MODEL_FILE, TOKENIZER_FILE)
DEFAULT_PACKAGE = "all-minilm-l6-v2"
REQUIRED_KEYS = ("name", "dim", "max_seq_length", "pooling", "normalized", "files")
# Longer than any position table a text encoder ships with; beyond it a typo, not a model.
MAX_SEQ_LENGTH = 1 << 16
_SHA256 = re.compile("[0-9a-f]{64}")


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
    """The manifest, checked field by field: whatever is on disk, a bad package gives one
    PackageError line here rather than a KeyError or TypeError later, deep in the encoder."""
    manifest_path = path / MANIFEST_FILE
    if not path.is_dir():
        raise PackageError(f"model package not found: {path} is not a directory")
    if not manifest_path.is_file():
        raise PackageError(f"missing file {manifest_path}: not an edgembed model package")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PackageError(f"cannot read {manifest_path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PackageError(f"unreadable manifest {manifest_path}: {reason(exc, 200)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise PackageError(
            f"{manifest_path} is not an edgembed manifest (format != {FORMAT_NAME!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise PackageError(
            f"{manifest_path} has format_version {_short(version)}; this edgembed reads "
            f"version {FORMAT_VERSION} (upgrade edgembed or re-export the package)"
        )
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise PackageError(f"{manifest_path} lacks required keys: {', '.join(missing)}")
    problem = manifest_problem(manifest)
    if problem:
        raise PackageError(f"{manifest_path}: {problem}")
    return manifest


def manifest_problem(manifest: dict[str, Any]) -> str | None:
    """The first field of a manifest with the wrong type or value, described; None if all
    the fields the runtime reads are well-formed."""
    def bad(key: str, expected: str) -> str:
        return f"field {key!r} must be {expected}, got {_short(manifest.get(key))}"

    if not isinstance(manifest["name"], str) or not manifest["name"].strip():
        return bad("name", "a non-empty string")
    if not _is_int(manifest["dim"], 1):
        return bad("dim", "a positive integer")
    if not _is_int(manifest["max_seq_length"], 1, MAX_SEQ_LENGTH):
        return bad("max_seq_length", f"an integer in 1..{MAX_SEQ_LENGTH}")
    if not isinstance(manifest["pooling"], str):
        return bad("pooling", "a string")
    if not isinstance(manifest["normalized"], bool):
        return bad("normalized", "true or false")
    if not isinstance(manifest.get("output", ""), str) or manifest.get("output") == "":
        return bad("output", "a non-empty string (the model's output name)")
    prefixes = manifest.get("prefixes")
    if prefixes is not None and not (
            isinstance(prefixes, dict)
            and all(isinstance(value, str) or value is None for value in prefixes.values())):
        return bad("prefixes", 'an object like {"query": "...", "document": "..."}')
    for key in ("calibration", "quantization", "quality", "source"):
        if manifest.get(key) is not None and not isinstance(manifest[key], dict):
            return bad(key, "an object")
    return _files_problem(manifest["files"])


def _files_problem(files: Any) -> str | None:
    if not isinstance(files, dict):
        return f"field 'files' must be an object of file name → {{sha256, bytes}}, " \
               f"got {_short(files)}"
    for name in REQUIRED_FILES:
        if name not in files:
            return f"field 'files' does not list required file {name}"
    for name, entry in files.items():
        if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
            return f"field 'files' lists {name!r}, which is not a plain file name"
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) \
                or not _SHA256.fullmatch(entry["sha256"]):
            return f"field 'files' entry {name!r} needs a 64-hex-digit sha256, " \
                   f"got {_short(entry)}"
        if "bytes" in entry and not _is_int(entry["bytes"], 0):
            return f"field 'files' entry {name!r} has bytes {_short(entry['bytes'])}"
    return None


def _is_int(value: Any, low: int, high: int | None = None) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high))


def _short(value: Any) -> str:
    """A bounded repr: a manifest may hold megabytes or deep nesting where a number belongs."""
    return reprlib.repr(value)


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    """Check that every listed file is present and matches its sha256."""
    for name, entry in manifest["files"].items():
        file_path = path / name
        if not file_path.is_file():
            raise PackageError(f"missing file {file_path} (listed in the manifest)")
        try:
            actual = sha256_file(file_path)
        except OSError as exc:
            raise PackageError(f"cannot read {file_path}: {exc.strerror or exc}") from None
        if actual != entry["sha256"]:
            raise ChecksumError(str(file_path), entry["sha256"], actual)


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
    return {name: (package.path / name).stat().st_size for name in package.manifest["files"]}
