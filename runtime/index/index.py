"""A persistent local search index: usearch Hamming codes, int8 rescoring, SQLite documents.

Search is a cascade that touches the big data last:

1. **Hamming** (usearch, ``metric="hamming"``, ``dtype="b1"``): the 48-byte sign codes of
   all documents (exact scan, or the HNSW graph in ``mode="hnsw"``) give the nearest
   ``OVERFETCH * k * max(rescore, 1)`` codes to the query's code (``cascade.OVERFETCH`` is
   8), and any code tied with the last of them (so results never depend on the order
   usearch breaks ties in).
2. **Asymmetric refinement**: those candidates are re-ranked by the float query against
   their ±1 sign bits (``q . sign(d)``) and the best ``k * rescore`` are kept. It reads only
   the same 48-byte codes, and recovers most of what Hamming loses by also binarising the
   query (SciFact, `benchmarks/results/eval_scifact.json`: nDCG@10 0.584 → 0.615 alone).
3. **int8 rescoring**: the ``k * rescore`` survivors are re-ranked by the float query
   against their stored int8 vectors (a dequantized dot product ≈ cosine), and the top
   ``k`` are returned.

So ``rescore=m`` means: *m·k documents get their int8 vectors read and scored*; the first
stage (steps 1–2) uses only the sign codes. ``rescore=0`` returns the first stage alone,
scored by the cosine between the query and the document's sign vector. The steps are the
pure functions of `edgembed.index.cascade`.

Searching, by what comes back: `search` (texts → hits), `search_vectors` (query vectors →
hits), `rank_vectors` (query vectors → keys and scores, for evaluation), `candidates` (the
first stage's keys) and `hamming_neighbours` (step 1's keys alone).

On disk (``DIR``): ``index.json`` (format, model package id, dimensions, mode, int8 ranges;
written once, when the index is created), ``docs.sqlite`` (ids, texts, metadata, the table
of indexed files, and the commit record), ``gen-N/`` (``codes.usearch``, and aligned
``keys.npy`` / ``codes.npy`` / ``int8.npy`` for the rescoring stages) and ``write.lock``.
Exact and HNSW modes store the same files: usearch always builds a graph on add; exact
mode makes it the cheapest one (it only scans) and refuses ``exact=False`` searches.

**Saving.** The commit record (a one-row table in ``docs.sqlite``: generation N, next key,
count, and the size and sha256 of every file of ``gen-N/``) is the one source of truth,
and it changes in the same SQLite transaction as the documents. `save()`:

1. writes the vector files into a staging folder ``.gen-N.*``, fsyncs them and the folder,
   renames it to ``gen-N`` and fsyncs ``DIR`` (a ``gen-N`` left by an earlier crash was
   never committed, so nothing reads it: it is replaced);
2. writes the record for N and commits it with the documents (WAL, full fsync): this
   commit is the instant the index changes from old to new content;
3. removes older generations and staging leftovers.

A crash before the commit leaves the old record, whose folder is still there (old
content; the uncommitted folder is garbage for the next save to remove); a crash after it
leaves the new record, whose folder was durable before the commit (new content). SQLite
itself rolls back a half-done transaction from its WAL. Opening reads the record and the
number of documents in one snapshot and loads that generation, checking that the files
have the recorded sizes (and sha256, with ``verify=True``) and that documents and vectors
agree in number; so there is no state in which they disagree and nothing to reconcile.
Indexes of format version 1 (generation in ``index.json``) are read as before and move to
this protocol at their first save.

**Concurrency.** One writer, many readers. Threads may share an `Index`: searches run in
parallel and each sees the arrays and documents of one moment (a read-write lock; `add`
encodes outside it and takes it only to put the new rows in); changes from several
threads run one at a time. Across processes, an index's first change (`add`, `remove`,
`begin_write`, ...) takes ``write.lock`` (flock) until `save()` or `close()`: a second
writer, in another process or another `Index` object, gets `IndexLockedError` instead of
corrupting anything. Readers never take it: opening loads one committed generation
(retrying if a concurrent save deleted its folder meanwhile), and every search first checks
the commit record, loads a newer generation if another process saved one, and reads the
documents in the same snapshot, so results always come from one committed state (old or
new). A writer's unsaved changes are seen only by its own `Index` object.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import Index as UsearchIndex

from .. import codes as C
from ..encoder import Encoder, check_texts, progress_bar
from ..errors import (
    EdgembedError,
    IndexFileError,
    IndexLockedError,
    IndexWriteError,
    reason,
)
from ..package import default_package_path, open_package, sha256_file
from ..tokenizer import replace_lone_surrogates
from . import cascade, keyword, scan
from .locks import ReadWriteLock, WriterLock
from .scan import CodeScan
from .store import DocStore, FileState, IndexState, check_tokenizer, encode_id

FORMAT_NAME = "edgembed-index"
FORMAT_VERSION = 3
# 1: generation in index.json (upgraded at the first save); 2: no keyword table (built when
# first opened for writing)
READABLE_VERSIONS = (1, 2, 3)
META_FILE = "index.json"
DOCS_FILE = "docs.sqlite"
LOCK_FILE = "write.lock"
VECTOR_FILES = ("codes.usearch", "keys.npy", "codes.npy", "int8.npy")
MODES = ("exact", "hnsw")
SEARCH_MODES = ("hybrid", "dense", "keyword")
SNIPPET_CHARS = 240  # a hit with no keyword match shows its text's beginning, this long
ADD_BLOCK = 1024  # texts encoded per step of `add`: bounds memory, drives the progress bar
PROGRESS_MIN_TEXTS = 256
# how often opening or searching starts over because a concurrent save replaced the
# generation being read; each retry needs another save in between, so this is never reached
# unless something other than saves keeps changing the files
CHANGED_RETRIES = 20


@dataclass(frozen=True)
class Hit:
    """One search result: the caller's id, its score, the text and metadata. Scores are
    comparable within one search mode: a cosine (dense), BM25 (keyword), or the fused
    reciprocal-rank score (hybrid). `snippet` (asked for with ``snippets=True``) is the
    passage around the query's words as alternating plain and matched segments (even
    positions plain, odd positions matched)."""

    id: Any
    score: float
    text: str | None
    metadata: dict[str, Any] | None
    snippet: tuple[str, ...] | None = None


@dataclass(frozen=True)
class _Plan:
    """How to search: see `Index.search`."""

    mode: str = "hybrid"
    rescore: int = 4
    exact: bool | None = None
    keyword_syntax: bool = False
    folder: str | None = None
    file_types: tuple[str, ...] | None = None


def hit(docs: Mapping[int, tuple[Any, str | None, dict[str, Any] | None]], key: Any,
        score: float, store: Path) -> Hit:
    """The hit of document `key` (from `DocStore.fetch_at`), or IndexFileError: documents
    are never removed before their vectors, so a missing one means a damaged store."""
    if int(key) not in docs:
        raise IndexFileError(f"document store {store} is damaged: no document for vector "
                             f"{int(key)}")
    doc_id, text, meta = docs[int(key)]
    return Hit(doc_id, float(score), text, meta)


def query_vectors(encoder: Encoder, queries: str | Sequence[str]) -> tuple[np.ndarray, bool]:
    """Text queries as the model's query vectors (with its query prefix), and whether a
    single str was given (its searches return one list of hits, not a list of lists)."""
    texts = check_texts(queries)
    vectors = encoder.encode(texts, kind="query") if texts else \
        np.empty((0, encoder.dim), np.float32)
    return vectors, isinstance(queries, str)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Temp file, fsync, rename, fsync the directory: readers see the old or the new file."""
    temp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class Index:
    """Documents, their binary codes and int8 vectors, searchable by text query.

    Create with `Index.create(path, encoder)`, reopen with `Index.open(path)`. Changes
    (`add`, `remove`) are in memory until `save()`; `with Index.open(...) as index:` saves
    on a clean exit. One writer, many readers (threads or processes): see the module
    docstring for what each sees."""

    def __init__(self, path: Path, encoder: Encoder, meta: dict[str, Any], view: bool,
                 verify: bool = True) -> None:
        self.path = path
        self.encoder = encoder
        self.meta = meta
        self.view = view
        self.verify = verify
        self.dim = int(meta["dim"])
        self.mode = meta["mode"]
        self.ranges = C.Int8Ranges.from_json(meta["int8"])
        self.keyword_tokenizer = str(meta.get("keyword_tokenizer") or keyword.TOKENIZERS[
            keyword.default_tokenizer(encoder.tokenizer.get_vocab())])
        # keyword queries leave out words in more than this share of the documents
        self.common_term_share = keyword.COMMON_TERM_SHARE
        self._rw = ReadWriteLock()  # arrays and usearch: searches share, changes exclude
        self._changing = threading.RLock()  # one change (add/remove/save) at a time
        self._writer = WriterLock(path / LOCK_FILE)
        self._dirty = False  # unsaved changes: the store's write transaction is open
        self._vectors_changed = False
        self._seen_version = -1  # the store's data_version when `_sync` last looked
        self.store = DocStore(path / DOCS_FILE, readonly=view)
        try:
            if verify:
                self.store.check_integrity()
            self._load_committed()
        except BaseException:
            self.store.close()
            raise

    # ------------------------------------------------------------ opening

    @classmethod
    def create(cls, path: str | Path, encoder: Encoder | None = None, mode: str = "exact",
               connectivity: int = 16, keyword_tokenizer: str | None = None) -> Index:
        """A new, empty index in directory `path` (created; must not hold an index yet).
        `keyword_tokenizer` is how keyword search cuts text into words: "english" (Porter
        stemming), "unicode" (any language, no stemming), "trigram" (substrings), or an
        FTS5 tokenize string; None picks "english" for an English-only model and
        "unicode" for any other (see `edgembed.index.keyword`)."""
        if mode not in MODES:
            raise EdgembedError(f"mode must be one of {MODES}, got {mode!r}")
        encoder = encoder or Encoder.load()
        if keyword_tokenizer is None:
            keyword_tokenizer = keyword.default_tokenizer(encoder.tokenizer.get_vocab())
        try:
            tokenize = keyword.tokenizer_spec(keyword_tokenizer)
        except ValueError as exc:
            raise EdgembedError(str(exc)) from None
        check_tokenizer(tokenize)
        root = Path(path).expanduser()
        if (root / META_FILE).exists():
            raise EdgembedError(f"{root} already holds an index; open it with Index.open")
        if root.exists() and not root.is_dir():
            raise EdgembedError(f"{root} exists and is not a directory")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexWriteError(f"cannot create index directory {root}: {reason(exc)}") \
                from None
        meta = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "package_id": encoder.package.package_id, "package_path": str(encoder.path),
            "dim": encoder.dim, "mode": mode, "connectivity": connectivity,
            "int8": encoder.int8_ranges.to_json(), "keyword_tokenizer": tokenize,
        }
        writer = WriterLock(root / LOCK_FILE)
        writer.acquire()
        try:  # the store first, index.json last: a crash in between leaves no index
            if (root / META_FILE).exists():
                raise EdgembedError(f"{root} already holds an index; open it with Index.open")
            store = DocStore(root / DOCS_FILE)
            try:
                if store.count() or store.state() not in (None, IndexState(0, 0, 0, {})):
                    raise IndexFileError(
                        f"{root / DOCS_FILE} holds documents but there is no {META_FILE}: a "
                        "damaged index or another program's file; remove it or use another "
                        "directory")
                store.begin()
                if not store.has_keyword_table():
                    store.create_keyword_table(tokenize)
                store.set_state(IndexState(0, 0, 0, {}))
                store.commit()
            finally:
                store.close()
            _write_json_atomic(root / META_FILE, meta)
        except OSError as exc:
            raise IndexWriteError(f"cannot create index in {root}: {reason(exc)}") from None
        finally:
            writer.release()
        return cls(root, encoder, meta, view=False)

    @classmethod
    def open(cls, path: str | Path, encoder: Encoder | None = None, view: bool = False,
             verify: bool = True) -> Index:
        """Open a saved index. `encoder=None` loads the model package it was built with (its
        recorded path, else the bundled default); a different model is refused. `view=True`
        memory-maps the files read-only: fast to open, shares pages between processes.
        `verify=True` checks the vector files' sha256 against the commit record and runs
        SQLite's quick_check, so damage shows at once, as an `IndexFileError`; it reads every
        file once. `verify=False` keeps only the size and shape checks: a damaged usearch
        file can then crash the process, so use it only for files you trust."""
        root = Path(path).expanduser()
        meta = _read_meta(root)
        encoder = encoder or _encoder_for(meta)
        if encoder.package.package_id != meta["package_id"]:
            raise IndexFileError(
                f"index {root} was built with model {meta['package_id']}, but the encoder is "
                f"{encoder.package.package_id}; open it with that model or re-index")
        if int(meta["dim"]) != encoder.dim:
            raise IndexFileError(f"{root / META_FILE} says {meta['dim']} dimensions, the model "
                                 f"has {encoder.dim} (damaged index metadata)")
        index = cls(root, encoder, meta, view=view, verify=verify)
        if not view and not index.store.has_keyword_table():
            index._add_keyword_table()
        return index

    def _add_keyword_table(self) -> None:
        """Build the keyword table of an index of format version 2, unless another writer
        is busy with it (then its writer does, at its next change)."""
        try:
            self.begin_write()
            self.save()
        except IndexLockedError:
            pass
        except BaseException:
            self.close()
            raise

    def _gen_dir(self, generation: int) -> Path:
        return self.path / f"gen-{generation}"

    def _set_arrays(self, keys: np.ndarray, codes: np.ndarray, int8: np.ndarray) -> None:
        """The aligned arrays of the current state. Caller holds the write side of `_rw`
        (or owns the object, while it is being opened)."""
        self._keys, self._codes, self._int8 = keys, codes, int8
        self._scan = CodeScan(codes)

    def _new_usearch(self) -> UsearchIndex:
        """usearch builds a graph on every add, even when only its exact scan is used; in
        exact mode that graph is the cheapest one (connectivity 2, one candidate per add),
        which builds ~100× faster (0.23 s vs 24 s per 100k codes in the bench) and scans
        the same."""
        if self.mode == "exact":
            return UsearchIndex(ndim=self.dim, metric="hamming", dtype="b1",
                                connectivity=2, expansion_add=1)
        return UsearchIndex(ndim=self.dim, metric="hamming", dtype="b1",
                            connectivity=int(self.meta.get("connectivity", 16)))

    def _legacy_state(self) -> IndexState:
        """The commit state of a format-1 index, kept in its index.json."""
        try:
            return IndexState(int(self.meta["generation"]), int(self.meta["next_key"]),
                              int(self.meta["count"]), None)
        except (KeyError, TypeError, ValueError):
            raise IndexFileError(f"{self.path / META_FILE} lacks the generation of the index, "
                                 "and docs.sqlite has no commit record (damaged index)") from None

    def _load_committed(self) -> None:
        """Load the committed generation. A save by another process may delete its folder
        while we read it: then the commit record has moved on, and we start over."""
        for _ in range(CHANGED_RETRIES):
            state, documents = self.store.snapshot()
            state = state or self._legacy_state()
            try:
                arrays = self._read_generation(state)
                if not len(arrays[0]) == state.count == documents:
                    raise IndexFileError(
                        f"index {self.path} is damaged: {len(arrays[0])} vectors, {documents} "
                        f"documents, commit record says {state.count}")
            except IndexFileError:
                now = self.store.state()
                if now is not None and now.generation != state.generation:
                    continue  # a save replaced the generation while we read it
                raise
            self._set_arrays(*arrays[:3])
            self._usearch = arrays[3]
            self._state = state
            return
        raise IndexFileError(f"index {self.path} kept changing while being opened; try again")

    def _read_generation(self, state: IndexState,
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, UsearchIndex]:
        nbytes = C.code_bytes(self.dim)
        if state.generation == 0:
            return (np.empty(0, np.uint64), np.empty((0, nbytes), np.uint8),
                    np.empty((0, self.dim), np.int8), self._new_usearch())
        folder = self._gen_dir(state.generation)
        if not folder.is_dir():
            raise IndexFileError(f"index {self.path} is damaged: {folder.name}/ is missing")
        try:
            self._check_files(folder, state)
            mmap = "r" if self.view else None
            keys = np.load(folder / "keys.npy", mmap_mode=mmap, allow_pickle=False)
            codes = np.load(folder / "codes.npy", mmap_mode=mmap, allow_pickle=False)
            int8 = np.load(folder / "int8.npy", mmap_mode=mmap, allow_pickle=False)
            usearch = UsearchIndex.restore(str(folder / "codes.usearch"), view=self.view)
        except (OSError, ValueError, RuntimeError) as exc:
            raise IndexFileError(f"cannot read index files in {folder} (damaged): "
                                 f"{reason(exc)}") from None
        shapes_ok = (keys.dtype == np.uint64 and keys.ndim == 1
                     and codes.dtype == np.uint8 and codes.shape == (len(keys), nbytes)
                     and int8.dtype == np.int8 and int8.shape == (len(keys), self.dim)
                     and usearch is not None and len(usearch) == len(keys)
                     and usearch.ndim == self.dim)
        if not shapes_ok or not bool(np.all(keys[1:] > keys[:-1])):
            raise IndexFileError(f"index files in {folder} disagree in size or order "
                                 "(damaged index)")
        return keys, codes, int8, usearch

    def _check_files(self, folder: Path, state: IndexState) -> None:
        """Sizes always (a truncated file is caught before it is mapped), sha256 with
        `verify` (usearch trusts its file: a flipped byte can crash it)."""
        for name in VECTOR_FILES:
            path = folder / name
            size = path.stat().st_size
            expected = (state.files or {}).get(name)
            if expected is None:
                if state.files is not None:
                    raise IndexFileError(f"the commit record of {folder} lacks {name}")
                continue
            if size != expected["bytes"]:
                raise IndexFileError(f"{path} has {size} bytes, the commit record says "
                                     f"{expected['bytes']} (truncated or damaged index file)")
            if self.verify and sha256_file(path) != expected["sha256"]:
                raise IndexFileError(f"checksum mismatch for {path}: the file was modified "
                                     "or damaged (restore the index or re-index)")

    def _sync(self) -> None:
        """Follow saves made by other processes: load the committed generation if it moved
        on. A writer with unsaved changes holds the writer lock, so nobody else saved."""
        if self._dirty:
            return
        version = self.store.data_version()
        if version == self._seen_version:
            return  # nobody committed since we last looked: the common case, ~10 µs
        state = self.store.state()
        self._seen_version = version
        if state is None or state.generation == self._state.generation:
            return
        with self._rw.writing():
            now = self.store.state()
            if not self._dirty and now is not None and now.generation != self._state.generation:
                self._load_committed()

    # ------------------------------------------------------------ writing

    def _writable(self) -> None:
        if self.view:
            raise EdgembedError("this index was opened with view=True and is read-only")

    def begin_write(self) -> None:
        """Become the index's writer now: take the writer lock (`IndexLockedError` if
        another writer holds it) and load whatever another process saved before. `add`,
        `remove` and `save` do this themselves; call it first when what you will change
        depends on what you read (as `edgembed index` does). Ends at `save()` or `close()`."""
        self._writable()
        with self._changing, self._rw.writing():
            self._begin_write()

    def _begin_write(self) -> None:
        """Caller holds `_changing` and the write side of `_rw`."""
        if self._dirty:
            return
        self._writer.acquire()
        try:
            self.store.begin()
            if not self.store.has_keyword_table():  # format version 2
                self.store.create_keyword_table(self.keyword_tokenizer)
            state = self.store.state()
            if state is not None and state.generation != self._state.generation:
                self._load_committed()  # inside the write transaction: the latest state
        except BaseException:
            self.store.rollback()
            self._writer.release()
            raise
        self._dirty = True

    def add(self, texts: str | Sequence[str], ids: Sequence[Any] | None = None,
            metadata: Sequence[dict[str, Any] | None] | None = None, batch_size: int = 32,
            show_progress: bool | None = None) -> list[Any]:
        """Encode and add documents; returns their ids (default: new integer ids).

        Texts are encoded in blocks of ADD_BLOCK, so memory stays bounded; a progress bar
        shows on a terminal for large inputs. Searches in other threads go on meanwhile."""
        self._writable()
        items = check_texts(texts)  # add_vectors stores them as embedded (lone surrogates → U+FFFD)
        with self._changing:
            self.begin_write()
            ids, metadata = self._check_ids_metadata(len(items), ids, metadata)
            with progress_bar(len(items), show_progress, PROGRESS_MIN_TEXTS, unit="text",
                              desc="indexing") as bar:
                for start in range(0, len(items), ADD_BLOCK):
                    block = slice(start, start + ADD_BLOCK)
                    vectors = self.encoder.encode(items[block], batch_size=batch_size,
                                                  kind="document", show_progress=False)
                    self.add_vectors(vectors, texts=items[block], ids=ids[block],
                                     metadata=metadata[block])
                    bar.update(len(vectors))
        return ids

    def add_vectors(self, vectors: np.ndarray, texts: Sequence[str | None] | None = None,
                    ids: Sequence[Any] | None = None,
                    metadata: Sequence[dict[str, Any] | None] | None = None) -> list[Any]:
        """Add precomputed float vectors (from this index's model, kind="document")."""
        self._writable()
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise EdgembedError(f"vectors must have shape (n, {self.dim}), got {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise EdgembedError("vectors contain NaN or infinity")
        return self._add_rows(C.pack_signs(vectors), C.quantize_int8(vectors, self.ranges),
                              texts, ids, metadata)

    def add_codes(self, codes: np.ndarray, int8: np.ndarray,
                  texts: Sequence[str | None] | None = None, ids: Sequence[Any] | None = None,
                  metadata: Sequence[dict[str, Any] | None] | None = None) -> list[Any]:
        """Add documents by their packed sign codes (`precision="ubinary"`) and int8 vectors
        (`precision="int8"`) from this index's model: what `add_vectors` stores for their
        float vectors, without needing them (Parquet shards of `edgembed embed --ray`)."""
        self._writable()
        codes = np.asarray(codes)
        int8 = np.asarray(int8)
        nbytes = C.code_bytes(self.dim)
        if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != nbytes:
            raise EdgembedError(f"codes must be uint8 of shape (n, {nbytes}), got "
                                f"{codes.dtype} {codes.shape}")
        if int8.dtype != np.int8 or int8.shape != (len(codes), self.dim):
            raise EdgembedError(f"int8 vectors must be int8 of shape ({len(codes)}, {self.dim}), "
                                f"got {int8.dtype} {int8.shape}")
        return self._add_rows(codes, int8, texts, ids, metadata)

    def _add_rows(self, packed: np.ndarray, quantized: np.ndarray,
                  texts: Sequence[str | None] | None, ids: Sequence[Any] | None,
                  metadata: Sequence[dict[str, Any] | None] | None) -> list[Any]:
        count = len(packed)
        if texts is None:
            texts = [None] * count
        else:
            if isinstance(texts, (str, bytes)) or len(texts) != count:
                raise EdgembedError(f"texts must be a sequence of {count} str (one per vector)")
            for position, text in enumerate(texts):
                if text is not None and not isinstance(text, str):
                    raise TypeError(f"texts[{position}] is {type(text).__name__}, expected str")
            texts = [None if text is None else replace_lone_surrogates(text) for text in texts]
        with self._changing, self._rw.writing():
            self._begin_write()
            ids, metadata = self._check_ids_metadata(count, ids, metadata)
            if count == 0:
                return ids
            start = self._state.next_key
            keys = np.arange(start, start + count, dtype=np.uint64)
            new_keys = np.concatenate([self._keys, keys])
            new_codes = np.concatenate([self._codes, packed])
            new_int8 = np.concatenate([self._int8, quantized])
            with self.store.savepoint():  # the rows go if usearch fails
                self.store.insert(keys.tolist(), ids, texts, metadata)  # raises on duplicates
                self._usearch.add(keys, packed)
            self._set_arrays(new_keys, new_codes, new_int8)
            self._state = IndexState(self._state.generation, start + count, len(new_keys),
                                     self._state.files)
            self._vectors_changed = True
        return ids

    def _check_ids_metadata(self, count: int, ids: Sequence[Any] | None,
                            metadata: Sequence[dict[str, Any] | None] | None,
                            ) -> tuple[list[Any], list[dict[str, Any] | None]]:
        if ids is None:
            start = self._state.next_key
            ids = list(range(start, start + count))
            taken = self.store.existing_ids(ids)
            if taken:  # caller-chosen integer ids may collide with automatic ones
                raise EdgembedError(f"automatic id {taken[0]} is taken; pass ids explicitly")
        else:
            if isinstance(ids, (str, bytes)):
                raise TypeError("ids must be a sequence of str or int, not a single string")
            ids = list(ids)
            if len(ids) != count:
                raise EdgembedError(f"{len(ids)} ids for {count} texts")
            encoded = [encode_id(i) for i in ids]
            if len(set(encoded)) != len(encoded):
                raise EdgembedError("ids must be unique within one call")
        if metadata is None:
            metadata = [None] * count
        else:
            if isinstance(metadata, Mapping):
                raise TypeError("metadata must be a sequence of dicts (one per text)")
            metadata = list(metadata)
            if len(metadata) != count:
                raise EdgembedError(f"{len(metadata)} metadata entries for {count} texts")
            for position, meta in enumerate(metadata):
                if meta is not None and not isinstance(meta, Mapping):
                    raise TypeError(f"metadata[{position}] must be a dict or None")
            metadata = [None if m is None else dict(m) for m in metadata]
            for position, meta in enumerate(metadata):
                try:
                    json.dumps(meta, ensure_ascii=False)
                except (TypeError, ValueError) as exc:
                    raise TypeError(f"metadata[{position}] is not JSON-serialisable: "
                                    f"{exc}") from None
        return ids, metadata

    def remove(self, ids: Any | Sequence[Any]) -> int:
        """Remove documents by id; unknown ids are ignored. Returns how many were removed."""
        self._writable()
        ids = _id_list(ids)
        with self._changing, self._rw.writing():
            self._begin_write()
            keys = self.store.keys_for(ids)
            if not keys:
                return 0
            key_array = np.asarray(sorted(keys), dtype=np.uint64)
            keep = ~np.isin(self._keys, key_array)
            self.store.delete_keys(keys)
            self._usearch.remove(key_array)
            self._set_arrays(self._keys[keep], self._codes[keep], self._int8[keep])
            self._state = IndexState(self._state.generation, self._state.next_key,
                                     len(self._keys), self._state.files)
            self._vectors_changed = True
            return len(keys)

    def get(self, ids: Any | Sequence[Any]) -> list[tuple[Any, str | None, dict | None]]:
        """(id, text, metadata) of the stored documents with these ids, in the order asked;
        unknown ids are skipped. A writer sees its unsaved changes, as `search` does."""
        ids = _id_list(ids)
        self._sync()
        with self._rw.reading():
            keys = self.store.keys_for(ids)
            docs = self.store.fetch(keys)
        return [docs[key] for key in keys]

    def files(self) -> dict[str, FileState]:
        """The table of indexed files (`edgembed index`): path → size, mtime, sha256."""
        return self.store.files()

    def set_file(self, state: FileState) -> None:
        self._writable()
        with self._changing, self._rw.writing():
            self._begin_write()
            self.store.set_file(state)

    def drop_file(self, path: str) -> None:
        self._writable()
        with self._changing, self._rw.writing():
            self._begin_write()
            self.store.drop_file(path)

    def save(self) -> None:
        """Make the changes durable: see "Saving" in the module docstring. A crash at any
        point leaves the old or the new index; a failure (say, a full disk) raises
        `IndexWriteError`, leaves the saved index as it was and keeps the changes in memory,
        so `save()` can be tried again."""
        self._writable()
        with self._changing:
            if not self._dirty:
                return
            state = self._state
            if self._vectors_changed or state.files is None:  # format 1: no checksums yet
                committed = self.store.state()  # the truth, if a commit went unnoticed
                generation = max(state.generation, committed.generation if committed else 0) + 1
                try:
                    files = self._write_generation(generation)
                except (OSError, RuntimeError) as exc:
                    raise IndexWriteError(
                        f"cannot save index {self.path}: {reason(exc)}; the saved index is "
                        "unchanged (free space or fix the cause, then save again)") from None
                state = IndexState(generation, state.next_key, len(self._keys), files)
            with self._rw.writing():
                try:
                    self.store.set_state(state)
                    self.store.commit()
                    self.store.checkpoint()
                except IndexWriteError:
                    if not self.store.in_transaction:  # SQLite gave the transaction up
                        self._abandon_changes()
                        raise IndexWriteError(
                            f"cannot save index {self.path}: SQLite failed to commit and "
                            "rolled back; the saved index is unchanged, the unsaved changes "
                            "are lost") from None
                    raise
                self._state = state
                self._dirty = self._vectors_changed = False
            try:
                self._remove_stale()
                if self.meta.get("format_version") != FORMAT_VERSION:
                    self.meta = {key: value for key, value in self.meta.items()
                                 if key not in ("generation", "next_key", "count")}
                    self.meta["format_version"] = FORMAT_VERSION
                    self.meta["keyword_tokenizer"] = self.keyword_tokenizer
                    _write_json_atomic(self.path / META_FILE, self.meta)
            except OSError:
                pass  # the commit stands; leftovers are removed by the next save
            finally:
                self._writer.release()

    def _write_generation(self, generation: int) -> dict[str, dict[str, Any]]:
        """Vector files of `generation`, durable in gen-N before anything points to it;
        returns their sizes and checksums for the commit record."""
        staging = self.path / f".gen-{generation}.{os.getpid()}.{secrets.token_hex(4)}"
        staging.mkdir()  # not tempfile.mkdtemp: its mode 0700 would shut out other users
        try:
            self._usearch.save(str(staging / "codes.usearch"))
            for name, array in (("keys", self._keys), ("codes", self._codes),
                                ("int8", self._int8)):
                np.save(staging / f"{name}.npy", np.ascontiguousarray(array))
            files = {}
            for name in VECTOR_FILES:
                _fsync_file(staging / name)
                files[name] = {"bytes": (staging / name).stat().st_size,
                               "sha256": sha256_file(staging / name)}
            _fsync_dir(staging)
            final = self._gen_dir(generation)
            shutil.rmtree(final, ignore_errors=True)  # never committed: nobody reads it
            os.replace(staging, final)
            _fsync_dir(self.path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return files

    def _remove_stale(self) -> None:
        """Older generations and leftovers of interrupted saves. Only the writer runs
        this; readers that still use an old generation keep their open files."""
        current = self._gen_dir(self._state.generation)
        for old in [*self.path.glob("gen-*"), *self.path.glob(".gen-*")]:
            if old != current:
                shutil.rmtree(old, ignore_errors=True)

    def _abandon_changes(self) -> None:
        """Back to the committed state: the transaction is gone, so are the changes."""
        self.store.rollback()
        self._dirty = self._vectors_changed = False
        self._writer.release()
        self._load_committed()

    def close(self) -> None:
        """Close the document store, dropping unsaved changes."""
        with self._changing, self._rw.writing():
            try:
                if self._dirty:
                    self.store.rollback()
            finally:
                self._dirty = False
                self.store.close()
                self._writer.release()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and not self.view:
                self.save()
        finally:
            self.close()

    def __len__(self) -> int:
        """The documents a search sees now: the last committed state, or a writer's own
        unsaved changes."""
        self._sync()
        return len(self._keys)

    # ------------------------------------------------------------ searching

    def search(self, queries: str | Sequence[str], k: int = 10, *, mode: str = "hybrid",
               rescore: int = 4, exact: bool | None = None, keyword_syntax: bool = False,
               folder: str | Path | None = None, file_types: Sequence[str] | None = None,
               snippets: bool = False, vectors: np.ndarray | None = None,
               ) -> list[Hit] | list[list[Hit]]:
        """Search by text: a list of hits for one query (a str), a list of lists for several.

        `mode`: "hybrid" (the default) fuses the dense and the keyword ranking (see
        `cascade.fuse`); "dense" ranks by the embedding cascade (queries get the model's
        query prefix; see the module docstring for `rescore` and `exact`); "keyword" ranks
        documents holding any of the query's words by BM25. `keyword_syntax=True` reads
        the query as an FTS5 query (phrases, AND, OR, NOT, prefix*) instead of plain
        words. `folder` and `file_types` (suffixes such as ".pdf") keep only passages of
        files indexed by `edgembed index` there. `snippets=True` adds each hit's
        highlighted passage (`Hit.snippet`). `vectors`: the queries' vectors
        (kind="query"), if they are encoded already."""
        single = isinstance(queries, str)
        texts = check_texts(queries)
        plan = self._plan(k, mode, rescore, exact, keyword_syntax, folder, file_types)
        hits = self._search(texts, self._given_or_encoded(texts, vectors, plan), k, plan,
                            snippets)
        return hits[0] if single else hits

    def search_vectors(self, vectors: np.ndarray, k: int = 10, *, rescore: int = 4,
                       exact: bool | None = None) -> list[list[Hit]]:
        """Dense `search` for float query vectors (the model's, kind="query"): per query, its
        hits. The hits' documents are read from the same committed state as the vectors
        searched."""
        plan = self._plan(k, "dense", rescore, exact)
        return self._search(None, self._query_matrix(vectors), k, plan, snippets=False)

    def rank(self, queries: Sequence[str], k: int = 10, *, mode: str = "hybrid",
             vectors: np.ndarray | None = None, rescore: int = 4, exact: bool | None = None,
             keyword_syntax: bool = False, folder: str | Path | None = None,
             file_types: Sequence[str] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """The low-level form of `search`, for evaluation: per query, the internal keys
        (uint64, in the order documents were added) and float32 scores of its results,
        best first, without reading any document. `vectors` are the queries' vectors
        (kind="query") if they are encoded already."""
        texts = check_texts(list(queries))
        plan = self._plan(k, mode, rescore, exact, keyword_syntax, folder, file_types)
        return self._ranked(texts, self._given_or_encoded(texts, vectors, plan), k, plan,
                            fetch=False)[0]

    def rank_vectors(self, vectors: np.ndarray, k: int = 10, *, rescore: int = 4,
                     exact: bool | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """`rank` by the dense cascade alone, for query vectors."""
        q = self._check_search(vectors, k, rescore)
        self._sync()
        with self._rw.reading():
            return self._rank(q, k, rescore, exact)

    def indexed_file(self, path: str | Path) -> FileState | None:
        """The indexed file at `path` (as `edgembed index` recorded it), or None."""
        return self.store.file(str(path))

    def facets(self) -> dict[str, list[str]]:
        """The folders holding files indexed by `edgembed index` and their file types: what
        `search(folder=..., file_types=...)` can filter by."""
        folders, types = self.store.file_facets()
        return {"folders": folders, "file_types": types}

    def _plan(self, k: int, mode: str, rescore: int, exact: bool | None,
              keyword_syntax: bool = False, folder: str | Path | None = None,
              file_types: Sequence[str] | None = None) -> _Plan:
        _check_k_rescore(k, rescore)
        if mode not in SEARCH_MODES:
            raise EdgembedError(f"search mode must be one of {', '.join(SEARCH_MODES)}, "
                                f"got {mode!r}")
        if file_types is not None:
            if isinstance(file_types, str):
                file_types = [file_types]
            file_types = tuple(t if t.startswith(".") else "." + t for t in file_types)
        if folder is not None:
            folder = str(Path(folder).expanduser().resolve())
        if mode != "dense" or keyword_syntax:
            self._check_keyword_table()
        self._exact(exact)  # refuse exact=False on an exact index before encoding anything
        return _Plan(mode, rescore, exact, bool(keyword_syntax), folder, file_types)

    def _check_keyword_table(self) -> None:
        if not self.store.has_keyword_table():
            raise IndexFileError(
                f"index {self.path} has no keyword table yet (index format version 2): open "
                "it once for writing (run `edgembed index` on it again, or Index.open(path) "
                "without view=True) to build it, or search with mode='dense'")

    def _given_or_encoded(self, texts: list[str], vectors: np.ndarray | None,
                          plan: _Plan) -> np.ndarray | None:
        """The queries' vectors: as given (checked), or encoded; None for keyword search."""
        if plan.mode == "keyword":
            return None
        if vectors is not None:
            vectors = self._query_matrix(vectors)
            if len(vectors) != len(texts):
                raise EdgembedError(f"{len(vectors)} query vectors for {len(texts)} queries")
            return vectors
        if not texts:
            return np.empty((0, self.dim), np.float32)
        return self.encoder.encode(texts, kind="query")

    def _search(self, texts: list[str] | None, q: np.ndarray | None, k: int, plan: _Plan,
                snippets: bool) -> list[list[Hit]]:
        results, docs, marked = self._ranked(texts, q, k, plan, fetch=True, snippets=snippets)
        hits = []
        for position, (keys, scores) in enumerate(results):
            row = []
            for key, score in zip(keys, scores, strict=True):
                if int(key) not in docs:  # documents are never removed before their vectors
                    raise IndexFileError(f"document store {self.store.path} is damaged: no "
                                         f"document for vector {int(key)}")
                doc_id, text, meta = docs[int(key)]
                snippet = None
                if snippets:
                    snippet = tuple(marked[position].get(int(key)) or
                                    [_leading(text or "", SNIPPET_CHARS)])
                row.append(Hit(doc_id, float(score), text, meta, snippet))
            hits.append(row)
        return hits

    def _ranked(self, texts: list[str] | None, q: np.ndarray | None, k: int, plan: _Plan,
                fetch: bool, snippets: bool = False,
                ) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict, list[dict]]:
        """Rankings per query and, with `fetch`, their documents (and snippets), all from
        one committed state: the vectors searched, the keyword table, the documents. The
        dense ranking runs between the two SQLite reads, so concurrent searches share the
        connection only for those."""
        for _ in range(CHANGED_RETRIES):
            self._sync()
            with self._rw.reading():
                generation = self._state.generation
                with self.store.reading():
                    seen = [self.store.generation()]
                    expressions = self._expressions(texts, plan)
                    allowed, keyword_side = self._keyword_side(expressions, k, plan)
                results = self._fused(self._dense_side(q, k, plan, allowed), keyword_side, k)
                docs: dict = {}
                marked: list[dict] = []
                if fetch or snippets:
                    with self.store.reading():
                        seen.append(self.store.generation())
                        docs = self.store.fetch([key for keys, _ in results for key in keys])
                        if snippets:
                            marked = [self.store.snippets(expression, keys) if expression
                                      else {} for expression, (keys, _)
                                      in zip(expressions, results, strict=True)]
            if self._dirty or all(value in (None, generation) for value in seen):
                return results, docs, marked
            # else another process saved in between: search its generation
        raise EdgembedError(f"index {self.path} kept changing during a search; try again")

    def _expressions(self, texts: list[str] | None, plan: _Plan) -> list[str | None]:
        """Per query, its FTS5 query (None: no keyword side, or no informative word)."""
        if texts is None:
            return []
        if plan.keyword_syntax:
            return [text if text.strip() else None for text in texts]
        if plan.mode == "dense" or not self.store.has_keyword_table():
            return [None] * len(texts)
        total = len(self._keys)
        return [self.store.keyword_expression(keyword.words(text), self.keyword_tokenizer,
                                              total, self.common_term_share)
                for text in texts]

    def _keyword_side(self, expressions: list[str | None], k: int, plan: _Plan,
                      ) -> tuple[np.ndarray | None, list[tuple[np.ndarray, np.ndarray]] | None]:
        """The keys the filters allow (None: all) and the keyword rankings (None: dense
        search). Caller holds a snapshot of the store."""
        allowed = None
        if plan.folder is not None or plan.file_types is not None:
            allowed = np.asarray(self.store.keys_in_files(plan.folder, plan.file_types),
                                 dtype=np.uint64)
        if plan.mode == "dense":
            return allowed, None
        depth = max(k, cascade.FUSION_DEPTH) if plan.mode == "hybrid" else k
        within = None if allowed is None else allowed.tolist()
        return allowed, [self.store.keyword_ranks(expression, depth, plan.keyword_syntax,
                                                  within) for expression in expressions]

    def _dense_side(self, q: np.ndarray | None, k: int, plan: _Plan,
                    allowed: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """The dense rankings (None: keyword search). Caller holds the read side of `_rw`."""
        if plan.mode == "keyword":
            return None
        depth, rescore = k, plan.rescore
        if plan.mode == "hybrid":
            depth, rescore = cascade.fusion_depth(k, plan.rescore)
        return self._rank(q, depth, rescore, plan.exact, self._rows_of(allowed))

    @staticmethod
    def _fused(dense: list | None, keyword_side: list | None,
               k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        if dense is None or keyword_side is None:
            return dense if keyword_side is None else keyword_side
        return [cascade.fuse([dense_keys, keyword_keys], k)
                for (dense_keys, _), (keyword_keys, _) in zip(dense, keyword_side,
                                                              strict=True)]

    def _rows_of(self, keys: np.ndarray | None) -> np.ndarray | None:
        """Rows of these keys in the arrays (keys not there are left out)."""
        if keys is None:
            return None
        rows = np.searchsorted(self._keys, keys)
        inside = rows < len(self._keys)
        rows = rows[inside]
        return rows[self._keys[rows] == keys[inside]]

    def candidates(self, vectors: np.ndarray, k: int = 10, *, rescore: int = 4,
                   exact: bool | None = None) -> list[np.ndarray]:
        """Per query, the keys of the first stage's candidates (steps 1-2 of the cascade,
        best first): the documents whose int8 vectors a search with these arguments reads.
        What `edgembed eval` measures as first-stage recall."""
        q = self._check_search(vectors, k, rescore)
        self._sync()
        with self._rw.reading():
            return [np.asarray(self._keys[rows]) for rows, _ in
                    self._first_stage(q, k, rescore, exact)]

    def hamming_neighbours(self, vectors: np.ndarray, count: int, *,
                           exact: bool | None = None) -> list[np.ndarray]:
        """Per query, the keys of the `count` stored sign codes nearest to the query's sign
        code by Hamming distance, plus any tied with the last (step 1 alone, as usearch
        runs it): what `edgembed eval` times as binary Hamming search."""
        _check_count("count", count)
        q = self._query_matrix(vectors)
        self._sync()
        with self._rw.reading():
            if len(self._keys) == 0:
                return [np.empty(0, np.uint64) for _ in q]
            return self._hamming(q, count, self._exact(exact))

    def _rank(self, q: np.ndarray, k: int, rescore: int, exact: bool | None,
              within: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """The whole cascade; keys and scores per query. Caller holds the read side of `_rw`.
        `within` restricts the search to these rows: the first stage then scans them all."""
        out = []
        for vector, (rows, scores) in zip(q, self._first_stage(q, k, rescore, exact, within),
                                          strict=True):
            if rescore:
                rows, scores = cascade.rescore_int8(vector, self._int8, rows, self.ranges, k)
            out.append((np.asarray(self._keys[rows]), scores.astype(np.float32)))
        return out

    def _check_search(self, vectors: np.ndarray, k: int, rescore: int) -> np.ndarray:
        _check_k_rescore(k, rescore)
        return self._query_matrix(vectors)

    def _query_matrix(self, vectors: np.ndarray) -> np.ndarray:
        """Query vectors as a finite float32 (queries, dim) matrix, or a clear error."""
        try:
            q = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError):
            raise EdgembedError("query vectors must be a float array") from None
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise EdgembedError(f"query vectors must have {self.dim} dimensions")
        if not np.isfinite(q).all():
            raise EdgembedError("query vectors contain NaN or infinity")
        return q

    def _exact(self, exact: bool | None) -> bool:
        """Whether to scan exactly: the index's mode unless asked otherwise; an exact-mode
        index has no usable graph to walk."""
        exact = self.mode == "exact" if exact is None else exact
        if not exact and self.mode == "exact":
            raise EdgembedError("this index was created with mode='exact', which keeps no "
                                "usable HNSW graph; search it exactly or re-create it with "
                                "mode='hnsw'")
        return exact

    def _first_stage(self, q: np.ndarray, k: int, rescore: int, exact: bool | None,
                     rows: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Steps 1-2: Hamming candidates, refined by the asymmetric score; (rows, scores).
        Given `rows`, they are the candidates (no Hamming step)."""
        if len(self._keys) == 0 or len(q) == 0 or (rows is not None and len(rows) == 0):
            return [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in q]
        keep, pool = cascade.pool_sizes(k, rescore)
        if rows is not None:
            return [cascade.refine(vector, self._codes, rows, keep) for vector in q]
        return [cascade.refine(vector, self._codes, found, keep) for vector, (found, _) in
                zip(q, self._hamming_rows(q, pool, self._exact(exact)), strict=True)]

    def _hamming(self, q: np.ndarray, count: int, exact: bool) -> list[np.ndarray]:
        """Keys of the `count` nearest sign codes per query, with ties."""
        return [np.asarray(self._keys[rows]) for rows, _ in self._hamming_rows(q, count, exact)]

    def _hamming_rows(self, q: np.ndarray, count: int, exact: bool,
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, the rows (positions in the aligned arrays) and Hamming distances of the
        `count` nearest sign codes, plus any tied with the last, nearest first: the exact
        scan of `edgembed.index.scan`, or usearch's HNSW graph. Caller holds the read side
        of `_rw`."""
        codes = C.pack_signs(q)
        if exact:
            return [self._scan.nearest(code, count, threads=scan.THREADS) for code in codes]
        fetch = cascade.fetch_size(count, len(self._keys))
        self._usearch.expansion_search = max(64, fetch)
        # one query: no thread pool (its start-up costs more than the walk); a batch: all cores
        matches = self._usearch.search(codes, fetch, exact=False,
                                       threads=1 if len(q) == 1 else 0)
        keys = np.atleast_2d(matches.keys)
        distances = np.atleast_2d(matches.distances)
        counts = np.atleast_1d(matches.counts) if hasattr(matches, "counts") else \
            np.full(len(q), keys.shape[1])
        out = []
        for i in range(len(q)):
            found = cascade.with_ties(keys[i], distances[i], int(counts[i]), count)
            out.append((np.searchsorted(self._keys, found),
                        distances[i][:len(found)].astype(np.uint16)))
        return out


def _id_list(ids: Any) -> list[Any]:
    """One id (str or int) or an iterable of them, as a list."""
    if isinstance(ids, (str, int, np.integer)):
        return [ids]
    if isinstance(ids, (bytes, Mapping)) or not isinstance(ids, Iterable):
        raise TypeError(f"ids must be an id (str or int) or a sequence of ids, got "
                        f"{type(ids).__name__}")
    return list(ids)


def _leading(text: str, limit: int) -> str:
    """The beginning of `text`, whitespace runs made one space, cut at a word."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat.rfind(" ", 0, limit)
    return flat[:cut if cut > limit // 2 else limit] + " …"


def _check_count(name: str, value: int, low: int = 1) -> None:
    """`k`, `count` (positive) or `rescore` (low=0): an int or numpy integer, not a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        expected = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise EdgembedError(f"{name} must be {expected}, got {value!r}")


def _check_k_rescore(k: int, rescore: int) -> None:
    _check_count("k", k)
    _check_count("rescore", rescore, low=0)


def _read_meta(root: Path) -> dict[str, Any]:
    """index.json, checked: format, a version this code reads, the keys it needs."""
    meta_path = root / META_FILE
    if not meta_path.is_file():
        raise IndexFileError(f"no edgembed index at {root} (missing {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFileError(f"unreadable index metadata {meta_path}: {reason(exc)}") \
            from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise IndexFileError(f"{meta_path} is not edgembed index metadata "
                             f"(format != {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS:
        raise IndexFileError(
            f"{meta_path} has format_version {version!r}; this edgembed reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} (upgrade edgembed or re-index)")
    try:
        if not isinstance(meta["package_id"], str) or meta["mode"] not in MODES or \
                int(meta["dim"]) < 1:
            raise ValueError
        ranges = C.Int8Ranges.from_json(meta["int8"])
        if ranges.lo.shape != (int(meta["dim"]),) or ranges.hi.shape != ranges.lo.shape:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise IndexFileError(f"{meta_path} lacks required fields or has invalid ones "
                             "(package_id, dim, mode, int8)") from None
    return meta


def _encoder_for(meta: dict[str, Any]) -> Encoder:
    """The encoder an index was built with: its recorded package, else the bundled one."""
    return Encoder.load(_package_for(meta))


def index_model(path: str | Path) -> Path:
    """The model package an index was built with (its recorded path, else the bundled
    package if it is the same model): what to load with other options, such as another
    backend, before `Index.open(path, encoder=...)`."""
    return _package_for(_read_meta(Path(path).expanduser()))


def _package_for(meta: dict[str, Any]) -> Path:
    for candidate in (meta.get("package_path"), default_package_path()):
        if candidate and Path(candidate).is_dir():
            try:
                package = open_package(candidate, verify=False)
            except EdgembedError:
                continue
            if package.package_id == meta["package_id"]:
                return Path(candidate)
    raise IndexFileError(f"the index was built with model {meta['package_id']}, which is not "
                         f"at {meta.get('package_path')}; pass encoder=Encoder.load(PATH_TO_IT)")
