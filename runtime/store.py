"""The document store of an index: texts, metadata, ids and indexed files, in SQLite.

Vectors live in numpy/usearch files beside it; rows here are joined to them by an integer
`key`. Changes stay in an open SQLite transaction until `commit`, which `Index.save` calls,
so an index that is never saved leaves the store as it was."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EdgembedError

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,      -- JSON of the caller's id (str or int), so types round-trip
    text TEXT,
    metadata TEXT                 -- JSON object or NULL
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,        -- as given to `edgembed index`, resolved
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    n_passages INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class FileState:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    n_passages: int


def encode_id(doc_id: Any) -> str:
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        raise TypeError(f"ids must be str or int, got {type(doc_id).__name__}")
    return json.dumps(doc_id)


class DocStore:
    """SQLite rows of (key, id, text, metadata) and the index's file table."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        try:
            if readonly:
                self.db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                          check_same_thread=False)
            else:
                self.db = sqlite3.connect(path, check_same_thread=False)
                self.db.executescript(SCHEMA)
                self.db.commit()
            self.db.execute("SELECT count(*) FROM docs").fetchone()
        except sqlite3.DatabaseError as exc:
            raise EdgembedError(f"cannot open document store {path}: {exc}") from None

    def commit(self) -> None:
        self.db.commit()

    def rollback(self) -> None:
        self.db.rollback()

    def close(self) -> None:
        self.db.close()

    def insert(self, keys: Sequence[int], ids: Sequence[Any], texts: Sequence[str | None],
               metadata: Sequence[dict | None]) -> None:
        rows = [(int(key), encode_id(doc_id), text,
                 None if meta is None else json.dumps(meta, ensure_ascii=False))
                for key, doc_id, text, meta in zip(keys, ids, texts, metadata, strict=True)]
        try:
            self.db.executemany("INSERT INTO docs (key, id, text, metadata) VALUES (?, ?, ?, ?)",
                                rows)
        except sqlite3.IntegrityError:
            raise EdgembedError("an id being added is already in the index; remove it first "
                                "(ids must be unique)") from None

    def key_of(self, doc_id: Any) -> int | None:
        row = self.db.execute("SELECT key FROM docs WHERE id = ?", (encode_id(doc_id),)).fetchone()
        return int(row[0]) if row else None

    def existing_ids(self, ids: Iterable[Any]) -> list[Any]:
        return [doc_id for doc_id in ids if self.key_of(doc_id) is not None]

    def keys_for(self, ids: Iterable[Any]) -> list[int]:
        return [key for key in map(self.key_of, ids) if key is not None]

    def delete_keys(self, keys: Sequence[int]) -> None:
        self.db.executemany("DELETE FROM docs WHERE key = ?", [(int(k),) for k in keys])

    def fetch(self, keys: Sequence[int]) -> dict[int, tuple[Any, str | None, dict | None]]:
        """key → (id, text, metadata) for the keys that exist."""
        found: dict[int, tuple[Any, str | None, dict | None]] = {}
        unique = list(dict.fromkeys(int(k) for k in keys))
        for start in range(0, len(unique), 500):
            part = unique[start:start + 500]
            marks = ",".join("?" * len(part))
            for key, doc_id, text, meta in self.db.execute(
                    f"SELECT key, id, text, metadata FROM docs WHERE key IN ({marks})", part):
                found[int(key)] = (json.loads(doc_id), text, None if meta is None
                                   else json.loads(meta))
        return found

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM docs").fetchone()[0])

    # -------------------------------------------------------------- indexed files

    def files(self) -> dict[str, FileState]:
        return {row[0]: FileState(*row) for row in self.db.execute(
            "SELECT path, size, mtime_ns, sha256, n_passages FROM files")}

    def set_file(self, state: FileState) -> None:
        self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                        (state.path, state.size, state.mtime_ns, state.sha256, state.n_passages))

    def drop_file(self, path: str) -> None:
        self.db.execute("DELETE FROM files WHERE path = ?", (path,))
