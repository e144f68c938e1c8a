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

The `docs_fts` table (SQLite FTS5) indexes the documents' texts for keyword search. It is
an external-content table over `docs`, kept up to date by triggers, so every change to
`docs` changes it in the same transaction: keyword search sees exactly the committed
documents, and crash safety needs nothing more.

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

import numpy as np

from ..errors import EdgembedError, IndexFileError, IndexWriteError, QueryError, reason
from .bm25 import varint
from .keyword import (
    COMMON_TERM_SHARE,
    informative_words,
    quoted,
    snippet_segments,
    sql_string,
)

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
# the keyword table: an FTS5 index of docs.text, external content (the text is stored once,
# in docs), kept in step with docs by triggers
KEYWORD_SCHEMA = (
    """CREATE VIRTUAL TABLE docs_fts USING fts5(
        text, content='docs', content_rowid='key', tokenize={tokenize})""",
    """CREATE TRIGGER docs_fts_insert AFTER INSERT ON docs BEGIN
        INSERT INTO docs_fts (rowid, text) VALUES (new.key, new.text);
    END""",
    """CREATE TRIGGER docs_fts_delete AFTER DELETE ON docs BEGIN
        INSERT INTO docs_fts (docs_fts, rowid, text) VALUES ('delete', old.key, old.text);
    END""",
    """CREATE TRIGGER docs_fts_update AFTER UPDATE ON docs BEGIN
        INSERT INTO docs_fts (docs_fts, rowid, text) VALUES ('delete', old.key, old.text);
        INSERT INTO docs_fts (rowid, text) VALUES (new.key, new.text);
    END""",
)
# per connection, in its temp schema (never written to the file): the query's words run
# through the index's own tokenizer, and the number of documents holding each term
QUERY_TERMS_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_words USING fts5(text, content='', "
    "tokenize={tokenize})",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms USING fts5vocab(temp, query_words, "
    "'instance')",
)
DOCUMENT_COUNTS_SCHEMA = \
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.docs_terms USING fts5vocab(main, docs_fts, 'row')"
COUNT_CACHE_TERMS = 100_000  # remembered document counts, at most
SNIPPET_MARKS = ("\x02", "\x03")  # around matched words in FTS5 snippets
SNIPPET_TOKENS = 40
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


def check_tokenizer(tokenize: str) -> None:
    """Refuse an FTS5 tokenizer SQLite does not know, before any file is touched."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize={sql_string(tokenize)})")
    except sqlite3.Error as exc:
        raise EdgembedError(f"invalid keyword tokenizer {tokenize!r}: {reason(exc)}") from None
    finally:
        db.close()


def _query_error(exc: sqlite3.Error) -> bool:
    """An error in an FTS5 query the user wrote (syntax, unknown column), not in the file."""
    name = getattr(exc, "sqlite_errorname", None)  # Python >= 3.11
    if name is not None:
        return name == "SQLITE_ERROR"
    return isinstance(exc, sqlite3.OperationalError) and not str(exc).startswith(
        ("disk I/O", "database disk image", "unable to open", "database is locked"))


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
        self._query_terms_ready = self._document_counts_ready = False
        self._has_keyword_table = False
        self._counts: dict[str, int] = {}  # term → documents holding it (read-only stores)
        self._counts_version = -1
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
            # tables made in the transaction are gone
            self._query_terms_ready = self._document_counts_ready = False
            self._has_keyword_table = False

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
    def reading(self) -> Iterator[None]:
        """Every read inside sees the same committed state (nests: inner reads join it)."""
        with self._read():
            yield

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

    def generation(self) -> int | None:
        """The committed generation (None for format version 1), in the current snapshot
        when called inside `reading()`."""
        with self._read():
            state = self._state()
        return None if state is None else state.generation

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

    # -------------------------------------------------------------- keyword search

    def has_keyword_table(self) -> bool:
        """Whether the keyword table exists (it is never dropped: once seen, known)."""
        if not self._has_keyword_table:
            with self._read():
                self._has_keyword_table = self.db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'docs_fts'"
                ).fetchone() is not None
        return self._has_keyword_table

    def create_keyword_table(self, tokenize: str) -> None:
        """Create the keyword table with this FTS5 tokenizer and fill it from `docs`, in the
        writer's transaction (committed with the next `commit`)."""
        with self._guard(writing=True):
            for statement in KEYWORD_SCHEMA:
                self.db.execute(statement.format(tokenize=sql_string(tokenize)))
            self.db.execute("INSERT INTO docs_fts (docs_fts) VALUES ('rebuild')")

    def query_terms(self, words: Sequence[str], tokenize: str) -> list[tuple[int, str]]:
        """(position of the word, term) for every term the index's tokenizer makes of
        `words`; a word may give several terms (trigrams) or none."""
        with self._read():
            if not self._query_terms_ready:
                for statement in QUERY_TERMS_SCHEMA:
                    self.db.execute(statement.format(tokenize=sql_string(tokenize)))
                self._query_terms_ready = True
            self.db.execute("SAVEPOINT query_words")  # undone below: nothing is ever written
            try:
                self.db.executemany("INSERT INTO temp.query_words (rowid, text) VALUES (?, ?)",
                                    list(enumerate(words)))
                return [(int(position), term) for position, term in
                        self.db.execute("SELECT doc, term FROM temp.query_terms")]
            finally:
                self.db.execute("ROLLBACK TO query_words")
                self.db.execute("RELEASE query_words")

    def document_counts(self, terms: Sequence[str]) -> dict[str, int]:
        """How many documents hold each term (absent: none). Counting walks the term's list
        of documents, so a read-only store remembers counts until another connection
        commits."""
        terms = sorted(set(terms))
        if not terms:
            return {}
        with self._read():
            if not self.readonly:
                return self._count_documents(terms)
            version = int(self.db.execute("PRAGMA data_version").fetchone()[0])
            if version != self._counts_version or len(self._counts) > COUNT_CACHE_TERMS:
                self._counts, self._counts_version = {}, version
            missing = [term for term in terms if term not in self._counts]
            if missing:
                found = self._count_documents(missing)
                self._counts.update({term: found.get(term, 0) for term in missing})
            return {term: self._counts[term] for term in terms}

    def _count_documents(self, terms: list[str]) -> dict[str, int]:
        if not self._document_counts_ready:
            self.db.execute(DOCUMENT_COUNTS_SCHEMA)
            self._document_counts_ready = True
        marks = ",".join("?" * len(terms))
        return dict(self.db.execute(
            f"SELECT term, doc FROM temp.docs_terms WHERE term IN ({marks})", terms))

    def keyword_expression(self, words: Sequence[str], tokenize: str, total: int,
                           share: float = COMMON_TERM_SHARE) -> str | None:
        """The FTS5 query for a person's words: any of its informative words
        (`keyword.informative_words`), quoted."""
        if not words:
            return None
        with self._read():
            terms = self.query_terms(words, tokenize)
            counts = self.document_counts([term for _, term in terms])
        return quoted(informative_words(words, terms, counts, total, share))

    def keyword_ranks(self, expression: str | None, limit: int, user_syntax: bool = False,
                      allowed: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Keys and BM25 scores (higher is better) of the `limit` best documents for an FTS5
        query (`user_syntax`: as a person wrote it, so errors in it are theirs to fix).
        `allowed` restricts the search to these keys."""
        if expression is None:
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        raw = expression if user_syntax else None
        with self._read():
            # bm25() once per row: "ORDER BY rank" would compute it a second time
            sql = "SELECT rowid, bm25(docs_fts) AS score FROM docs_fts WHERE docs_fts MATCH ?"
            params: list[Any] = [expression]
            if allowed is not None:
                sql += " AND rowid IN (SELECT value FROM json_each(?))"
                params.append(json.dumps([int(key) for key in allowed]))
            try:
                rows = self.db.execute(sql + " ORDER BY score LIMIT ?",
                                       [*params, limit]).fetchall()
            except sqlite3.Error as exc:
                if raw is not None and _query_error(exc):
                    raise QueryError(f"invalid keyword query {raw[:100]!r}: "
                                        f"{reason(exc, 200)}") from None
                raise
        keys = np.array([row[0] for row in rows], dtype=np.uint64)
        return keys, -np.array([row[1] for row in rows], dtype=np.float32)  # higher: better

    # the statistics FTS5's bm25() reads, for scoring several keyword tables as one
    # (`edgembed.index.bm25`); read them inside `reading()` to get one committed state

    def keyword_totals(self) -> tuple[int, int]:
        """(rows, tokens) of the keyword table: the document count and total length that
        bm25() takes its average document length from, as FTS5 keeps them (its
        "averages" record: varints, rows then tokens per column)."""
        with self._read():
            row = self.db.execute("SELECT block FROM docs_fts_data WHERE id = 1").fetchone()
        if row is None or not row[0]:
            return 0, 0
        rows, position = varint(row[0])
        tokens, _ = varint(row[0], position)
        return rows, tokens

    def phrase_matches(self, phrase: str) -> tuple[np.ndarray, np.ndarray]:
        """Keys (ascending) and bm25() values (lower is better, as FTS5 returns them) of
        every document matching one FTS5 phrase."""
        with self._read():
            rows = self.db.execute("SELECT rowid, bm25(docs_fts) FROM docs_fts "
                                   "WHERE docs_fts MATCH ? ORDER BY rowid", (phrase,)).fetchall()
        return (np.array([row[0] for row in rows], dtype=np.int64),
                np.array([row[1] for row in rows], dtype=np.float64))

    def token_counts(self, keys: Sequence[int]) -> np.ndarray:
        """The length in tokens of these documents' texts, as bm25() reads it (FTS5's
        "docsize" table: one varint per column)."""
        sizes: dict[int, int] = {}
        unique = list(dict.fromkeys(int(k) for k in keys))
        with self._read():
            for start in range(0, len(unique), 10_000):
                sizes.update((int(key), varint(blob)[0]) for key, blob in self.db.execute(
                    "SELECT id, sz FROM docs_fts_docsize WHERE id IN "
                    "(SELECT value FROM json_each(?))",
                    (json.dumps(unique[start:start + 10_000]),)))
        if len(sizes) < len(unique):
            raise IndexFileError(f"document store {self.path} is damaged: the keyword table "
                                 "lacks the length of a document it matches")
        return np.array([sizes[int(key)] for key in keys], dtype=np.float64)

    def snippets(self, expression: str, keys: Sequence[int]) -> dict[int, list[str]]:
        """key → the passage around the best matches of `expression` (an FTS5 query) as
        alternating plain and matched segments, for the keys whose text matches."""
        start, end = SNIPPET_MARKS
        unique = list(dict.fromkeys(int(k) for k in keys))
        if not unique:
            return {}
        with self._read():
            rows = self.db.execute(
                "SELECT rowid, snippet(docs_fts, 0, ?, ?, '…', ?) FROM docs_fts "
                "WHERE docs_fts MATCH ? AND rowid IN (SELECT value FROM json_each(?))",
                (start, end, SNIPPET_TOKENS, expression, json.dumps(unique))).fetchall()
        return {int(key): snippet_segments(text, start, end) for key, text in rows}

    def keys_in_files(self, folder: str | None, suffixes: Sequence[str] | None) -> list[int]:
        """Keys of the passages of indexed files under `folder` whose names end with one of
        `suffixes` (case-insensitive); None means any."""
        sql = "SELECT path, n_passages FROM files WHERE n_passages > 0"
        params: list[Any] = []
        if folder is not None:
            prefix = folder.rstrip("/\\") + "/"
            sql += " AND substr(path, 1, ?) = ?"
            params += [len(prefix), prefix]
        with self._read():
            files = self.db.execute(sql, params).fetchall()
            if suffixes is not None:
                wanted = tuple(s.lower() for s in suffixes)
                files = [(path, n) for path, n in files if path.lower().endswith(wanted)]
            ids = [encode_id(f"{path}#{i}") for path, n in files for i in range(n)]
            keys: list[int] = []
            for start in range(0, len(ids), 500):
                part = ids[start:start + 500]
                marks = ",".join("?" * len(part))
                keys += [int(row[0]) for row in self.db.execute(
                    f"SELECT key FROM docs WHERE id IN ({marks})", part)]
        return sorted(keys)

    def file(self, path: str) -> FileState | None:
        with self._read():
            row = self.db.execute("SELECT path, size, mtime_ns, sha256, n_passages FROM files "
                                  "WHERE path = ?", (path,)).fetchone()
        return FileState(*row) if row else None

    def file_facets(self) -> tuple[list[str], list[str]]:
        """The folders holding indexed files, and their file types (lower-case suffixes)."""
        with self._read():
            paths = [row[0] for row in self.db.execute(
                "SELECT path FROM files WHERE n_passages > 0")]
        folders = sorted({str(Path(path).parent) for path in paths})
        suffixes = sorted({Path(path).suffix.lower() for path in paths if Path(path).suffix})
        return folders, suffixes
