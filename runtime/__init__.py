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
    QueryError,
)
from .package import Package, default_package_path, open_package

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`Index` and `Hit` load usearch and SQLite on first use, not at `import edgembed`:
    a process that only encodes starts faster."""
    if name in ("Hit", "Index"):
        from . import index

        return getattr(index, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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
    "QueryError",
    "__version__",
    "default_package_path",
    "open_package",
]
