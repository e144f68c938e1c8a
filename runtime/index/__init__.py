"""edgembed.index: a persistent local search index over sign codes and int8 vectors, with
documents in SQLite. `Index` and `Hit` (index.py) are the API; `cascade` holds the search
steps as pure functions; `ingest` turns folders of files into passages (`edgembed index`);
`store` and `locks` are the documents and the locking underneath."""

from .index import META_FILE, Hit, Index
from .ingest import IngestReport, index_paths

__all__ = ["META_FILE", "Hit", "Index", "IngestReport", "index_paths"]
