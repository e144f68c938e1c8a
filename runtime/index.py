"""A persistent local search index: usearch Hamming codes, int8 rescoring, SQLite documents.

Search is a cascade that touches the big data last:

1. **Hamming** (usearch, ``metric="hamming"``, ``dtype="b1"``): the 48-byte sign codes of
   all documents (exact scan, or the HNSW graph in ``mode="hnsw"``) give the nearest
   ``OVERFETCH * k * max(rescore, 1)`` codes to the query's code, and any code tied with
   the last of them (so results never depend on the order usearch breaks ties in).
2. **Asymmetric refinement**: those candidates are re-ranked by the float query against
   their ±1 sign bits (``q . sign(d)``) and the best ``k * rescore`` are kept. It reads only
   the same 48-byte codes, and recovers most of what Hamming loses by also binarising the
   query (SciFact: nDCG@10 0.588 → 0.623 on its own).
3. **int8 rescoring**: the ``k * rescore`` survivors are re-ranked by the float query
   against their stored int8 vectors (a dequantized dot product ≈ cosine), and the top
   ``k`` are returned.

So ``rescore=m`` means: *m·k documents get their int8 vectors read and scored*; the first
stage (steps 1–2) uses only the sign codes. ``rescore=0`` returns the first stage alone,
scored by the cosine between the query and the document's sign vector.

On disk (``DIR``): ``index.json`` (format, model package id, int8 ranges, current
generation), ``gen-N/`` (``codes.usearch``, and aligned ``keys.npy`` / ``codes.npy`` /
``int8.npy`` for the rescoring stages) and ``docs.sqlite`` (ids, texts, metadata).
Exact and HNSW modes store the same files: usearch always builds its graph on add, and
the mode only picks how it is searched.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm
from usearch.index import Index as UsearchIndex

from . import codes as C
from .encoder import Encoder, check_texts
from .errors import EdgembedError
from .package import default_package_path, open_package
from .store import DocStore, encode_id
from .tokenizer import replace_lone_surrogates

FORMAT_NAME = "edgembed-index"
FORMAT_VERSION = 1
META_FILE = "index.json"
DOCS_FILE = "docs.sqlite"
MODES = ("exact", "hnsw")
OVERFETCH = 8  # Hamming candidates per int8-rescored candidate (see module docstring)
ADD_BLOCK = 1024  # texts encoded per step of `add`: bounds memory, drives the progress bar
PROGRESS_MIN_TEXTS = 256


@dataclass(frozen=True)
class Hit:
    """One search result: the caller's id, a cosine-like score, the text and metadata."""

    id: Any
    score: float
    text: str | None
    metadata: dict[str, Any] | None


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
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class Index:
    """Documents, their binary codes and int8 vectors, searchable by text query.

    Create with `Index.create(path, encoder)`, reopen with `Index.open(path)`. Changes
    (`add`, `remove`) are in memory until `save()`; `with Index.open(...) as index:` saves
    on a clean exit. One writer at a time."""

    def __init__(self, path: Path, encoder: Encoder, meta: dict[str, Any], view: bool) -> None:
        self.path = path
        self.encoder = encoder
        self.meta = meta
        self.view = view
        self.dim = int(meta["dim"])
        self.mode = meta["mode"]
        self.ranges = C.Int8Ranges.from_json(meta["int8"])
        self.store = DocStore(path / DOCS_FILE, readonly=view)
        self._load_arrays()

    # ------------------------------------------------------------ opening

    @classmethod
    def create(cls, path: str | Path, encoder: Encoder | None = None, mode: str = "exact",
               connectivity: int = 16) -> Index:
        """A new, empty index in directory `path` (created; must not hold an index yet)."""
        if mode not in MODES:
            raise EdgembedError(f"mode must be one of {MODES}, got {mode!r}")
        root = Path(path).expanduser()
        if (root / META_FILE).exists():
            raise EdgembedError(f"{root} already holds an index; open it with Index.open")
        if root.exists() and not root.is_dir():
            raise EdgembedError(f"{root} exists and is not a directory")
        encoder = encoder or Encoder.load()
        root.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "package_id": encoder.package.package_id, "package_path": str(encoder.path),
            "dim": encoder.dim, "mode": mode, "connectivity": connectivity,
            "int8": encoder.int8_ranges.to_json(), "generation": 0, "next_key": 0, "count": 0,
        }
        index = cls(root, encoder, meta, view=False)
        index.save()
        return index

    @classmethod
    def open(cls, path: str | Path, encoder: Encoder | None = None, view: bool = False) -> Index:
        """Open a saved index. `encoder=None` loads the model package it was built with (its
        recorded path, else the bundled default); a different model is refused. `view=True`
        memory-maps the files read-only: fast to open, shares pages between processes."""
        root = Path(path).expanduser()
        meta_path = root / META_FILE
        if not meta_path.is_file():
            raise EdgembedError(f"no edgembed index at {root} (missing {META_FILE})")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EdgembedError(f"unreadable index metadata {meta_path}: {exc}") from None
        if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
            raise EdgembedError(f"{meta_path} is not an edgembed index of format version "
                                f"{FORMAT_VERSION}")
        encoder = encoder or _encoder_for(meta)
        if encoder.package.package_id != meta["package_id"]:
            raise EdgembedError(
                f"index {root} was built with model {meta['package_id']}, but the encoder is "
                f"{encoder.package.package_id}; open it with that model or re-index")
        return cls(root, encoder, meta, view=view)

    def _gen_dir(self, generation: int) -> Path:
        return self.path / f"gen-{generation}"

    def _new_usearch(self) -> UsearchIndex:
        return UsearchIndex(ndim=self.dim, metric="hamming", dtype="b1",
                            connectivity=int(self.meta.get("connectivity", 16)))

    def _load_arrays(self) -> None:
        generation = int(self.meta["generation"])
        folder = self._gen_dir(generation)
        nbytes = C.code_bytes(self.dim)
        if generation == 0 or not folder.is_dir():
            if generation != 0:
                raise EdgembedError(f"index {self.path} is missing {folder.name}/ (damaged)")
            self._keys = np.empty(0, np.uint64)
            self._codes = np.empty((0, nbytes), np.uint8)
            self._int8 = np.empty((0, self.dim), np.int8)
            self._usearch = self._new_usearch()
            return
        mmap = "r" if self.view else None
        try:
            self._keys = np.load(folder / "keys.npy", mmap_mode=mmap)
            self._codes = np.load(folder / "codes.npy", mmap_mode=mmap)
            self._int8 = np.load(folder / "int8.npy", mmap_mode=mmap)
            self._usearch = UsearchIndex.restore(str(folder / "codes.usearch"), view=self.view)
        except (OSError, ValueError, RuntimeError) as exc:
            raise EdgembedError(f"cannot read index files in {folder}: {exc}") from None
        if self._usearch is None or not (len(self._keys) == len(self._codes) == len(self._int8)
                                         == len(self._usearch)):
            raise EdgembedError(f"index files in {folder} disagree in size (damaged index)")

    # ------------------------------------------------------------ writing

    def _writable(self) -> None:
        if self.view:
            raise EdgembedError("this index was opened with view=True and is read-only")

    def add(self, texts: str | Sequence[str], ids: Sequence[Any] | None = None,
            metadata: Sequence[dict[str, Any] | None] | None = None, batch_size: int = 32,
            show_progress: bool | None = None) -> list[Any]:
        """Encode and add documents; returns their ids (default: new integer ids).

        Texts are encoded in blocks of ADD_BLOCK, so memory stays bounded; a progress bar
        shows on a terminal for large inputs."""
        items = [texts] if isinstance(texts, str) else check_texts(texts)
        items = [replace_lone_surrogates(text) for text in items]  # stored as embedded
        ids, metadata = self._check_ids_metadata(len(items), ids, metadata)
        if show_progress is None:
            show_progress = len(items) >= PROGRESS_MIN_TEXTS and sys.stderr.isatty()
        with tqdm(total=len(items), disable=not show_progress, unit="text",
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
        count = len(vectors)
        ids, metadata = self._check_ids_metadata(count, ids, metadata)
        if texts is None:
            texts = [None] * count
        elif len(texts) != count:
            raise EdgembedError(f"{len(texts)} texts for {count} vectors")
        if count == 0:
            return ids
        start = int(self.meta["next_key"])
        keys = np.arange(start, start + count, dtype=np.uint64)
        self.store.insert(keys.tolist(), ids, texts, metadata)  # raises on duplicate ids
        packed = C.pack_signs(vectors)
        self._usearch.add(keys, packed)
        self._keys = np.concatenate([self._keys, keys])
        self._codes = np.concatenate([self._codes, packed])
        self._int8 = np.concatenate([self._int8, C.quantize_int8(vectors, self.ranges)])
        self.meta["next_key"] = start + count
        return ids

    def _check_ids_metadata(self, count: int, ids: Sequence[Any] | None,
                            metadata: Sequence[dict[str, Any] | None] | None,
                            ) -> tuple[list[Any], list[dict[str, Any] | None]]:
        if ids is None:
            start = int(self.meta["next_key"])
            ids = list(range(start, start + count))
            taken = self.store.existing_ids(ids)
            if taken:  # caller-chosen integer ids may collide with automatic ones
                raise EdgembedError(f"automatic id {taken[0]} is taken; pass ids explicitly")
        else:
            ids = list(ids)
            if len(ids) != count:
                raise EdgembedError(f"{len(ids)} ids for {count} texts")
            encoded = [encode_id(i) for i in ids]
            if len(set(encoded)) != len(encoded):
                raise EdgembedError("ids must be unique within one call")
        if metadata is None:
            metadata = [None] * count
        else:
            metadata = list(metadata)
            if len(metadata) != count:
                raise EdgembedError(f"{len(metadata)} metadata entries for {count} texts")
            for position, meta in enumerate(metadata):
                if meta is not None and not isinstance(meta, Mapping):
                    raise TypeError(f"metadata[{position}] must be a dict or None")
            metadata = [None if m is None else dict(m) for m in metadata]
        return ids, metadata

    def remove(self, ids: Any | Sequence[Any]) -> int:
        """Remove documents by id; unknown ids are ignored. Returns how many were removed."""
        self._writable()
        if isinstance(ids, (str, int)):
            ids = [ids]
        keys = self.store.keys_for(ids)
        if not keys:
            return 0
        key_array = np.asarray(sorted(keys), dtype=np.uint64)
        self._usearch.remove(key_array)
        keep = ~np.isin(self._keys, key_array)
        self._keys, self._codes, self._int8 = self._keys[keep], self._codes[keep], self._int8[keep]
        self.store.delete_keys(keys)
        return len(keys)

    def save(self) -> None:
        """Write a new generation of the vector files, commit the documents, then switch
        `index.json` to it atomically. A crash at any point leaves the previous index."""
        self._writable()
        generation = int(self.meta["generation"]) + 1
        staging = Path(tempfile.mkdtemp(prefix=f".gen-{generation}.", dir=self.path))
        try:
            self._usearch.save(str(staging / "codes.usearch"))
            for name, array in (("keys", self._keys), ("codes", self._codes),
                                ("int8", self._int8)):
                np.save(staging / f"{name}.npy", np.ascontiguousarray(array))
            for file in staging.iterdir():
                _fsync_file(file)
            _fsync_dir(staging)
            final = self._gen_dir(generation)
            shutil.rmtree(final, ignore_errors=True)  # leftover of an interrupted save
            os.replace(staging, final)
            _fsync_dir(self.path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.store.commit()
        self.meta.update(generation=generation, count=len(self._keys))
        _write_json_atomic(self.path / META_FILE, self.meta)
        for old in [*self.path.glob("gen-*"), *self.path.glob(".gen-*")]:
            if old != final:  # older generations and leftovers of interrupted saves
                shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        """Close the document store, dropping unsaved document changes."""
        if not self.view:
            self.store.rollback()
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and not self.view:
            self.save()
        self.close()

    def __len__(self) -> int:
        return len(self._keys)

    # ------------------------------------------------------------ searching

    def search(self, query_or_queries: str | Sequence[str], k: int = 10, rescore: int = 4,
               exact: bool | None = None) -> list[Hit] | list[list[Hit]]:
        """Search by text: a list of hits for one query, a list of lists for several.
        Queries get the model's query prefix. See the module docstring for `rescore`."""
        single = isinstance(query_or_queries, str)
        queries = [query_or_queries] if single else list(query_or_queries)
        vectors = self.encoder.encode(queries, kind="query") if queries else \
            np.empty((0, self.dim), np.float32)
        results = self.search_vectors(vectors, k=k, rescore=rescore, exact=exact)
        docs = self.store.fetch([key for keys, _ in results for key in keys])
        hits = []
        for keys, scores in results:
            row = []
            for key, score in zip(keys, scores, strict=True):
                doc_id, text, meta = docs.get(int(key), (None, None, None))
                row.append(Hit(doc_id, float(score), text, meta))
            hits.append(row)
        return hits[0] if single else hits

    def search_vectors(self, queries: np.ndarray, k: int = 10, rescore: int = 4,
                       exact: bool | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Search by float query vectors: per query, (keys, scores) best first."""
        q = self._check_search(queries, k, rescore)
        out = []
        for vector, (rows, scores) in zip(q, self._first_stage(q, k, rescore, exact),
                                          strict=True):
            if rescore:
                scores = C.int8_scores(vector, self._int8[rows], self.ranges)
                top = _top(scores, k)
                rows, scores = rows[top], scores[top]
            out.append((np.asarray(self._keys[rows]), scores.astype(np.float32)))
        return out

    def first_stage(self, queries: np.ndarray, k: int = 10, rescore: int = 4,
                    exact: bool | None = None) -> list[np.ndarray]:
        """Keys of the candidates that int8 rescoring would see (best first): what
        `edgembed eval` measures as first-stage recall."""
        q = self._check_search(queries, k, rescore)
        return [np.asarray(self._keys[rows]) for rows, _ in
                self._first_stage(q, k, rescore, exact)]

    def _check_search(self, queries: np.ndarray, k: int, rescore: int) -> np.ndarray:
        if not isinstance(k, int) or k < 1:
            raise EdgembedError(f"k must be a positive integer, got {k!r}")
        if not isinstance(rescore, int) or rescore < 0:
            raise EdgembedError(f"rescore must be an integer >= 0, got {rescore!r}")
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise EdgembedError(f"query vectors must have {self.dim} dimensions")
        return q

    def _first_stage(self, q: np.ndarray, k: int, rescore: int, exact: bool | None,
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Steps 1-2: Hamming candidates, refined by the asymmetric score; (rows, scores)."""
        if len(self._keys) == 0 or len(q) == 0:
            return [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in q]
        keep = k * max(rescore, 1)
        exact = self.mode == "exact" if exact is None else exact
        out = []
        for vector, candidates in zip(q, self._hamming(q, OVERFETCH * keep, exact),
                                      strict=True):
            rows = np.searchsorted(self._keys, candidates)
            # cosine between the query and the unit sign vector sign(d) / sqrt(dim)
            scores = C.asymmetric_scores(vector, self._codes[rows]) / np.sqrt(self.dim)
            top = _top(scores, keep)
            out.append((rows[top], scores[top]))
        return out

    def _hamming(self, q: np.ndarray, count: int, exact: bool) -> list[np.ndarray]:
        """Keys of the `count` nearest sign codes per query (usearch, Hamming), plus every
        code tied with the last of them: integer distances tie often, and which tied
        document makes the cut must not depend on usearch's internal order."""
        total = len(self._keys)
        fetch = min(total, count + count // 2)
        if not exact:
            self._usearch.expansion_search = max(64, fetch)
        # one query: no thread pool (its start-up costs more than the scan); a batch: all cores
        matches = self._usearch.search(C.pack_signs(q), fetch, exact=exact,
                                       threads=1 if len(q) == 1 else 0)
        keys = np.atleast_2d(matches.keys)
        distances = np.atleast_2d(matches.distances)
        counts = np.atleast_1d(matches.counts) if hasattr(matches, "counts") else \
            np.full(len(q), keys.shape[1])
        out = []
        for i in range(len(q)):
            found = int(counts[i])
            if found > count:
                found = int(np.searchsorted(distances[i, :found], distances[i, count - 1],
                                            side="right"))
            out.append(keys[i, :found].astype(np.uint64))
        return out


def _top(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` highest scores, best first (ties keep their order)."""
    if count < len(scores):
        part = np.argpartition(-scores, count - 1)[:count]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")


def _encoder_for(meta: dict[str, Any]) -> Encoder:
    """The encoder an index was built with: its recorded package, else the bundled one."""
    for candidate in (meta.get("package_path"), default_package_path()):
        if candidate and Path(candidate).is_dir():
            try:
                package = open_package(candidate, verify=False)
            except EdgembedError:
                continue
            if package.package_id == meta["package_id"]:
                return Encoder.load(candidate)
    raise EdgembedError(f"the index was built with model {meta['package_id']}, which is not at "
                        f"{meta.get('package_path')}; pass encoder=Encoder.load(PATH_TO_IT)")
