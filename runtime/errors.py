"""One small exception hierarchy, so callers (and the CLI) can catch `EdgembedError`
and show one clear line instead of a traceback from deep inside onnxruntime."""

from __future__ import annotations


def reason(exc: BaseException, limit: int = 300) -> str:
    """What went wrong, for one error line: an OSError's strerror ("No space left on
    device"), else the first line of the message, bounded (a library may quote a whole
    damaged value), else the exception's type name."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class EdgembedError(Exception):
    """Base class of every error edgembed raises on purpose."""


class PackageError(EdgembedError):
    """A model package is missing, incomplete, tampered with or of an unknown format."""


class ChecksumError(PackageError):
    """A file's sha256 differs from the one recorded in the manifest."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(
            f"checksum mismatch for {path}: manifest says {expected[:12]}…, "
            f"file has {actual[:12]}… "
            "(the file was modified or damaged; re-export or re-download the package)"
        )
        self.path = path


class ModelLoadError(PackageError):
    """onnxruntime or tokenizers could not load a file of the package."""


class ExportError(EdgembedError):
    """The exporter cannot turn this source folder into a package."""


class IndexFileError(EdgembedError):
    """An index cannot be opened: missing or damaged files, an unknown format version, or
    built with another model."""


class IndexWriteError(EdgembedError):
    """An index could not be changed or saved (disk full, no permission, ...). What was
    saved before is intact."""


class IndexLockedError(IndexWriteError):
    """Another writer (process or Index object) has unsaved changes to this index."""


class QueryError(EdgembedError):
    """A search query that cannot be run as written (an FTS5 query with a syntax error)."""
