"""edgembed: offline-first text embeddings. This package is the slim runtime
(numpy, onnxruntime, tokenizers, usearch); the exporter lives in `edgembed.export`."""

from .encoder import Encoder
from .errors import (
    ChecksumError,
    EdgembedError,
    ExportError,
    IndexFileError,
    IndexLockedError,
    IndexWriteError,
    ModelLoadError,
    PackageError,
)
from .index import Hit, Index
from .package import Package, default_package_path, open_package

__version__ = "0.1.0"

__all__ = [
    "ChecksumError",
    "EdgembedError",
    "Encoder",
    "ExportError",
    "Hit",
    "Index",
    "IndexFileError",
    "IndexLockedError",
    "IndexWriteError",
    "ModelLoadError",
    "Package",
    "PackageError",
    "__version__",
    "default_package_path",
    "open_package",
]
