"""The document store of an index: texts, metadata, ids, indexed files and the commit
record, in SQLite.

Vectors live in numpy/usearch files beside it; rows here are joined to them by an integer
`key`. The one-row `state` table is the index's commit record: which generation folder of
vector files goes with these rows, and those files' sizes and sha256. It changes in the
same transaction as the documents, so documents and vectors switch together (the protocol
is in `edgembed.index`).

Transactions are explicit. A writer's changes stay in one open transaction (`begin`, at its
first change) until `commit`, which `Index.save` calls, so an index that is never saved
leaves the store as it was. Readers read in short snapshots (`snapshot`, `fetch_at`). The
database runs in WAL mode with full fsync: readers in other processes never wait for the
writer, see only committed states, and a commit survives a crash.

One connection serves all threads of an `Index`, serialised by a lock; every SQLite failure
becomes an edgembed error that names the file.
"""

from __future__ import annotations

import json
import numbers
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EdgembedError, IndexFileError, IndexWriteError, reason

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
CREATE TABLE IF NOT EXISTS state (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    generation INTEGER NOT NULL,  -- the gen-N folder holding these documents' vectors
    next_key INTEGER NOT NULL,
    count INTEGER NOT NULL,       -- documents = vectors
    files TEXT NOT NULL           -- JSON {file name in gen-N: {"bytes": n, "sha256": hex}}
);
"""
BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class FileState:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    n_passages: int


@dataclass(frozen=True)
class IndexState:
    """A commit record: generation `generation` of the vector files holds `count` vectors
    whose files have these sizes and checksums (None for indexes of format version 1)."""

    generation: int
    next_key: int
    count: int
    files: dict[str, dict[str, Any]] | None


def encode_id(doc_id: Any) -> str:
    if isinstance(doc_id, numbers.Integral) and not isinstance(doc_id, bool):
        doc_id = int(doc_id)  # numpy integers too
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
        raise TypeError(f"ids must be str or int, got {type(doc_id).__name__}")
    return json.dumps(doc_id)


def _readonly_uri(path: Path) -> str:
    """A read-only connection to a WAL database needs its -shm file, or the right to create
    it; in a folder we cannot write to (read-only media, another user's index) and with no
    writer around (none could write there either), SQLite must be told the file is
    immutable instead."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    shm = path.with_name(path.name + "-shm")
    if not _writable_dir(path.parent) and not shm.exists():
        uri += "&immutable=1"
    return uri


def _writable_dir(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


def _kind_of_trouble(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", "")  # Python >= 3.11
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return "damaged"
    if name.startswith(("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_BUSY",
                        "SQLITE_PERM", "SQLITE_READONLY")):
        return "I/O error, disk full, no permission or locked"
    return "damaged or unreadable"


class DocStore:
    """SQLite rows of (key, id, text, metadata), the index's file table and commit record."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._lock = threading.RLock()
        self._closed = False
        try:
            if readonly:
                self.db = sqlite3.connect(_readonly_uri(path), uri=True,
                                          timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                          check_same_thread=False)
            else:
                self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                          check_same_thread=False)
        except sqlite3.Error as exc:
            raise IndexFileError(f"cannot open document store {path}: {exc}") from None
        try:
            with self._guard():
                if not readonly:
                    self.db.execute("PRAGMA journal_mode=WAL")
                    self.db.executescript(SCHEMA)
                self.db.execute("PRAGMA synchronous=FULL")
                self.db.execute("SELECT count(*) FROM docs").fetchone()
        except EdgembedError:
            self.db.close()
            raise

    @contextmanager
    def _guard(self, writing: bool = False, begin: bool = True) -> Iterator[None]:
        """Serialise use of the connection; SQLite failures become edgembed errors. A change
        opens the write transaction if it is not open, so changes never autocommit."""
        with self._lock:
            if self._closed:
                raise EdgembedError(f"the index at {self.path.parent} is closed")
            try:
                if writing and begin and not self.db.in_transaction:
                    self.db.execute("BEGIN IMMEDIATE")
                yield
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                why = reason(exc, 200)  # SQLite may quote a whole damaged value
                if writing:
                    raise IndexWriteError(f"cannot write document store {self.path}: "
                                          f"{why}; the saved index is unchanged") from None
                raise IndexFileError(f"cannot read document store {self.path} "
                                     f"({_kind_of_trouble(exc)}): {why}") from None
            except (ValueError, TypeError) as exc:  # a damaged value: JSON, an integer
                raise IndexFileError(f"document store {self.path} holds a damaged value: "
                                     f"{str(exc)[:200]}") from None

    # -------------------------------------------------------------- transactions

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def begin(self) -> None:
        """Open the write transaction (a no-op if it is open): later changes stay in it until
        `commit`. IMMEDIATE takes SQLite's write lock now, not at the first change."""
        with self._guard(writing=True):
            pass

    def commit(self) -> None:
        with self._guard(writing=True, begin=False):
            if self.db.in_transaction:
                self.db.execute("COMMIT")

    def rollback(self) -> None:
        with self._guard(writing=True, begin=False):
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")

    def checkpoint(self) -> None:
        """Copy committed pages from the WAL into docs.sqlite, without waiting for readers,
        so the file alone is usually complete. Best effort: the WAL is still valid."""
        with self._lock, suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.db.close()

    @contextmanager
    def _read(self) -> Iterator[None]:
        """Reads that see one committed state: a snapshot transaction, unless the writer's
        own transaction is open (then its uncommitted changes are what it should see)."""
        with self._guard():
            if self.db.in_transaction:
                yield
                return
            self.db.execute("BEGIN")
            try:
                yield
            finally:
                self.db.execute("COMMIT")

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Changes inside are undone if the block fails (the outer transaction goes on)."""
        with self._guard(writing=True):
            self.db.execute("SAVEPOINT change")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK TO change")
                self.db.execute("RELEASE change")
                raise
            self.db.execute("RELEASE change")

    def check_integrity(self) -> None:
        """SQLite's quick_check: reads every page, so damage anywhere is found now rather
        than by the search that happens to touch it."""
        with self._guard():
            problems = [row[0] for row in self.db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            found = " ".join(" ".join(problems).split())  # SQLite's report spans lines
            raise IndexFileError(f"document store {self.path} is damaged: {found[:200]}")

    # -------------------------------------------------------------- commit record

    def _state(self) -> IndexState | None:
        try:
            row = self.db.execute(
                "SELECT generation, next_key, count, files FROM state").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # format version 1, opened read-only
                return None
            raise
        if row is None:
            return None
        return IndexState(int(row[0]), int(row[1]), int(row[2]), json.loads(row[3]))

    def data_version(self) -> int:
        """Changes when another connection commits: a check far cheaper than a read."""
        with self._guard():
            return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def state(self) -> IndexState | None:
        """The commit record, or None for an index of format version 1 not yet re-saved."""
        with self._read():
            return self._state()

    def snapshot(self) -> tuple[IndexState | None, int]:
        """The commit record and the number of documents, read from one committed state."""
        with self._read():
            return self._state(), int(self.db.execute("SELECT count(*) FROM docs").fetchone()[0])

    def set_state(self, state: IndexState) -> None:
        with self._guard(writing=True):
            self.db.execute("INSERT OR REPLACE INTO state VALUES (1, ?, ?, ?, ?)",
                            (state.generation, state.next_key, state.count,
                             json.dumps(state.files or {})))

    # -------------------------------------------------------------- documents

    def insert(self, keys: Sequence[int], ids: Sequence[Any], texts: Sequence[str | None],
               metadata: Sequence[dict | None]) -> None:
        rows = [(int(key), encode_id(doc_id), text,
                 None if meta is None else json.dumps(meta, ensure_ascii=False))
                for key, doc_id, text, meta in zip(keys, ids, texts, metadata, strict=True)]
        try:
            with self._guard(writing=True):
                self.db.executemany(
                    "INSERT INTO docs (key, id, text, metadata) VALUES (?, ?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            raise EdgembedError("an id being added is already in the index; remove it first "
                                "(ids must be unique)") from None

    def key_of(self, doc_id: Any) -> int | None:
        with self._guard():
            row = self.db.execute("SELECT key FROM docs WHERE id = ?",
                                  (encode_id(doc_id),)).fetchone()
        return int(row[0]) if row else None

    def existing_ids(self, ids: Iterable[Any]) -> list[Any]:
        return [doc_id for doc_id in ids if self.key_of(doc_id) is not None]

    def keys_for(self, ids: Iterable[Any]) -> list[int]:
        return [key for key in map(self.key_of, ids) if key is not None]

    def delete_keys(self, keys: Sequence[int]) -> None:
        with self._guard(writing=True):
            self.db.executemany("DELETE FROM docs WHERE key = ?", [(int(k),) for k in keys])

    def fetch(self, keys: Sequence[int]) -> dict[int, tuple[Any, str | None, dict | None]]:
        """key → (id, text, metadata) for the keys that exist."""
        return self.fetch_at(keys)[1]

    def fetch_at(self, keys: Sequence[int],
                 ) -> tuple[int | None, dict[int, tuple[Any, str | None, dict | None]]]:
        """The committed generation and `fetch(keys)`, read from one state, so a reader can
        tell whether the documents belong to the vectors it searched."""
        found: dict[int, tuple[Any, str | None, dict | None]] = {}
        unique = list(dict.fromkeys(int(k) for k in keys))
        with self._read():
            state = self._state()
            for start in range(0, len(unique), 500):
                part = unique[start:start + 500]
                marks = ",".join("?" * len(part))
                for key, doc_id, text, meta in self.db.execute(
                        f"SELECT key, id, text, metadata FROM docs WHERE key IN ({marks})",
                        part):
                    found[int(key)] = (json.loads(doc_id), text, None if meta is None
                                       else json.loads(meta))
        return (None if state is None else state.generation), found

    def count(self) -> int:
        with self._guard():
            return int(self.db.execute("SELECT count(*) FROM docs").fetchone()[0])

    def all_keys(self) -> list[int]:
        """Every document's key, ascending (for consistency checks)."""
        with self._read():
            return [int(row[0]) for row in self.db.execute("SELECT key FROM docs ORDER BY key")]

    # -------------------------------------------------------------- indexed files

    def files(self) -> dict[str, FileState]:
        with self._read():
            return {row[0]: FileState(*row) for row in self.db.execute(
                "SELECT path, size, mtime_ns, sha256, n_passages FROM files")}

    def set_file(self, state: FileState) -> None:
        with self._guard(writing=True):
            self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                            (state.path, state.size, state.mtime_ns, state.sha256,
                             state.n_passages))

    def drop_file(self, path: str) -> None:
        with self._guard(writing=True):
            self.db.execute("DELETE FROM files WHERE path = ?", (path,))
