"""Several indexes searched as one, and building them from the Parquet files of
`edgembed embed --ray`.

A sharded index is a folder: ``shards.json`` (format, model package id, the shard folders
in order) and one ordinary edgembed index per shard (``shard-00000/``, ...). Each shard
can be opened, searched and copied on its own; `ShardedIndex` searches them together.

**Same results as one index.** A search runs the cascade of `edgembed.index.index` once
over all shards, with the same functions (`edgembed.index.cascade`): every shard gives
its Hamming candidates with their distances, the merged list is cut at the pool size
with every tie kept (`cascade.with_ties`), exactly where one index holding all the codes
would cut it; the asymmetric refinement and the int8 rescoring then run over the merged
candidates. So with exact search the results (ids, order and scores) are those of a
single index built from the same vectors in shard order. (HNSW-mode shards each walk
their own graph: close to, not equal to, one graph.)

**Keywords and hybrid search** likewise. BM25 depends on statistics of the whole table
(documents, their average length, how many hold each word), so each shard's own ranking
would not be one index's. Instead the query's words are chosen with document counts summed
over the shards (`keyword.informative_words`), every shard gives the documents matching
each word with what FTS5's BM25 reads, and the scores are computed with the statistics
of all shards together (`edgembed.index.bm25`): the BM25 scores, to the bit, and the
ranking (ties in shard order, then key order) of one index. Hybrid search fuses that
ranking with the dense one by `cascade.fuse`, on keys ordered as one index orders them.
Shards need texts for this: built from Parquet files without a text column, they search
densely only.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import codes as C
from ..encoder import Encoder, check_texts
from ..errors import EdgembedError, IndexFileError, reason
from . import bm25, cascade, keyword
from .index import (
    CHANGED_RETRIES,
    Hit,
    Index,
    _check_k_rescore,
    _Plan,
    _write_json_atomic,
    hit,
)

SHARDS_FILE = "shards.json"
SHARDS_FORMAT = "edgembed-shards"
ROWS_PER_SHARD = 1_000_000
# a global key: the shard's number above SHARD_SHIFT bits, its key below
SHARD_SHIFT = 40
KEY_MASK = (1 << SHARD_SHIFT) - 1
MAX_SHARDS = 1 << (64 - SHARD_SHIFT)


def is_sharded(path: str | Path) -> bool:
    return (Path(path).expanduser() / SHARDS_FILE).is_file()


def has_texts(path: str | Path) -> bool:
    """Whether the shards at `path` hold their documents' texts, so keyword and hybrid
    search work (shards built from Parquet files without a text column do not)."""
    return _read_shards_file(Path(path).expanduser())[1]


class ShardedIndex:
    """Shards (`Index` objects of one model) searched as one index: `search` and
    `search_vectors` return what `Index.search` would for all their documents, in every
    search mode. `texts=False` says the shards hold no texts (built from Parquet files
    without a text column): keyword and hybrid search are then refused."""

    def __init__(self, shards: Sequence[Index], texts: bool = True) -> None:
        if not shards:
            raise EdgembedError("a sharded index needs at least one shard")
        if len(shards) > MAX_SHARDS:
            raise EdgembedError(f"a sharded index holds at most {MAX_SHARDS} shards")
        first = shards[0]
        for shard in shards[1:]:
            if shard.encoder.package.package_id != first.encoder.package.package_id or \
                    shard.dim != first.dim or \
                    not (np.array_equal(shard.ranges.lo, first.ranges.lo)
                         and np.array_equal(shard.ranges.hi, first.ranges.hi)):
                raise EdgembedError(f"shard {shard.path} was built with another model or int8 "
                                    f"ranges than {first.path}")
            if shard.keyword_tokenizer != first.keyword_tokenizer:
                raise EdgembedError(f"shard {shard.path} cuts keywords with another tokenizer "
                                    f"({shard.keyword_tokenizer!r}) than {first.path} "
                                    f"({first.keyword_tokenizer!r})")
        self.shards = list(shards)
        self.texts = bool(texts)
        self.encoder = first.encoder
        self.dim = first.dim
        self.ranges = first.ranges

    @classmethod
    def open(cls, path: str | Path, encoder: Encoder | None = None,
             verify: bool = True) -> ShardedIndex:
        """Open the shards listed in PATH/shards.json, read-only (memory-mapped)."""
        root = Path(path).expanduser()
        names, texts = _read_shards_file(root)
        shards: list[Index] = []
        try:
            for name in names:
                shard = Index.open(root / name, encoder=encoder, view=True, verify=verify)
                encoder = encoder or shard.encoder  # load the model once
                shards.append(shard)
            return cls(shards, texts=texts)
        except BaseException:
            for shard in shards:
                shard.close()
            raise

    def __len__(self) -> int:
        return sum(len(shard) for shard in self.shards)

    def close(self) -> None:
        for shard in self.shards:
            shard.close()

    def __enter__(self) -> ShardedIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def search(self, queries: str | Sequence[str], k: int = 10, *, mode: str = "hybrid",
               rescore: int = 4, exact: bool | None = None, vectors: np.ndarray | None = None,
               ) -> list[Hit] | list[list[Hit]]:
        """`Index.search` over all shards: "hybrid" (the default), "dense" or "keyword", as
        one index holding the shards' documents in order would rank them (see the module
        docstring). `vectors`: the queries' vectors (kind="query"), if encoded already."""
        single = isinstance(queries, str)
        texts = check_texts(queries)
        plan = self._plan(k, mode, rescore, exact)
        hits = self._search(texts, self.shards[0]._given_or_encoded(texts, vectors, plan), k,
                            mode, rescore, exact)
        return hits[0] if single else hits

    def search_vectors(self, vectors: np.ndarray, k: int = 10, *, rescore: int = 4,
                       exact: bool | None = None) -> list[list[Hit]]:
        """`Index.search_vectors` over all shards (dense search of query vectors)."""
        _check_k_rescore(k, rescore)
        return self._search(None, self.shards[0]._query_matrix(vectors), k, "dense", rescore,
                            exact)

    def _plan(self, k: int, mode: str, rescore: int, exact: bool | None) -> _Plan:
        """Every shard's checks of `Index.search` (arguments, keyword table, exact), and
        the shards' own: texts, and no unsaved changes (FTS5 writes its statistics when
        a change is committed)."""
        for shard in self.shards:
            plan = shard._plan(k, mode, rescore, exact)
        if mode == "dense":
            return plan
        if not self.texts:
            raise EdgembedError(
                f"the shards at {self.shards[0].path.parent} hold no texts (the Parquet files "
                "they were built from have no text column), so they have no keyword search: "
                "search with mode='dense' (--mode dense), or embed without --no-text and "
                "build the shards again")
        for shard in self.shards:
            if shard._dirty:
                raise EdgembedError(f"shard {shard.path} has unsaved changes: save it before a "
                                    f"{mode} search over the shards")
        return plan

    def _search(self, texts: list[str] | None, q: np.ndarray | None, k: int, mode: str,
                rescore: int, exact: bool | None) -> list[list[Hit]]:
        """Rank, then read each shard's documents from the committed state it was ranked
        in; if a shard changed meanwhile (another process saved it), search again."""
        for _ in range(CHANGED_RETRIES):
            results, generations = self._ranked(texts, q, k, mode, rescore, exact)
            if results is None:
                continue
            docs = []
            for number, shard in enumerate(self.shards):
                keys = [int(key) & KEY_MASK for keys, _ in results for key in keys
                        if int(key) >> SHARD_SHIFT == number]
                seen, found = shard.store.fetch_at(keys)
                if seen is not None and seen != generations[number]:
                    break  # another process saved this shard meanwhile: search again
                docs.append(found)
            else:
                return [[hit(docs[int(key) >> SHARD_SHIFT], int(key) & KEY_MASK, score,
                             self.shards[int(key) >> SHARD_SHIFT].store.path)
                         for key, score in zip(keys, scores, strict=True)]
                        for keys, scores in results]
        raise EdgembedError("the shards kept changing during a search; try again")

    def _ranked(self, texts: list[str] | None, q: np.ndarray | None, k: int, mode: str,
                rescore: int, exact: bool | None,
                ) -> tuple[list[tuple[np.ndarray, np.ndarray]] | None, list[int]]:
        """Per query, the global keys (shard number and key, `SHARD_SHIFT`) and scores of
        its results, best first, as `Index._ranked` gives them for one index; and the
        generation ranked per shard. None if a shard changed between the dense and the
        keyword ranking."""
        dense = keyword_side = None
        generations: list[int | None] = []
        if mode != "keyword":
            depth, dense_rescore = k, rescore
            if mode == "hybrid":
                depth, dense_rescore = cascade.fusion_depth(k, rescore)
            dense, generations = self._rank(q, depth, dense_rescore, exact)
        if mode != "dense":
            depth = max(k, cascade.FUSION_DEPTH) if mode == "hybrid" else k
            keyword_side, seen = self._keyword_rank(texts or [], depth)
            if generations and any(a is not None and a != b
                                   for a, b in zip(seen, generations, strict=True)):
                return None, generations
            generations = generations or seen
        return Index._fused(dense, keyword_side, k), generations

    def _rank(self, q: np.ndarray, k: int, rescore: int, exact: bool | None,
              ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[int]]:
        """The dense cascade over all shards: per query, global keys and scores best first;
        and the generation searched per shard."""
        keep, pool = cascade.pool_sizes(k, rescore)
        candidates, codes, int8, keys, generations = [], [], [], [], []
        for shard in self.shards:
            shard._sync()
            with shard._rw.reading():  # this shard's arrays, of one committed state
                generations.append(shard._state.generation)
                if len(shard) == 0 or len(q) == 0:
                    found = [(np.empty(0, np.int64), np.empty(0, np.uint16)) for _ in q]
                else:
                    found = shard._hamming_rows(q, pool, shard._exact(exact))
                candidates.append(found)
                codes.append(shard._codes)
                int8.append(shard._int8)
                keys.append(shard._keys)
        out = []
        for i, vector in enumerate(q):
            which = np.concatenate([np.full(len(c[i][0]), s, np.int64)
                                    for s, c in enumerate(candidates)])
            rows = np.concatenate([c[i][0] for c in candidates]).astype(np.int64)
            distances = np.concatenate([c[i][1] for c in candidates])
            order = np.argsort(distances, kind="stable")  # shard order, then row order
            order = cascade.with_ties(order, distances[order], len(order), pool).astype(np.int64)
            which, rows = which[order], rows[order]
            merged_codes = _gather(codes, which, rows)
            kept, scores = cascade.refine(vector, merged_codes, np.arange(len(rows)), keep)
            if rescore:
                best, scores = cascade.rescore_int8(vector, _gather(int8, which[kept], rows[kept]),
                                                    np.arange(len(kept)), self.ranges, k)
                kept = kept[best]
            local = np.array([keys[which[j]][rows[j]] for j in kept], dtype=np.uint64)
            out.append((_global_keys(which[kept], local), scores.astype(np.float32)))
        return out, generations

    def _keyword_rank(self, texts: list[str], depth: int,
                      ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[int | None]]:
        """Per query, the `depth` best documents of all shards by BM25 with the statistics
        of one table holding them all (`edgembed.index.bm25`): global keys and scores
        (higher is better), ties in key order as SQLite returns them; and the generation
        read per shard. The query's words are chosen as `Index` chooses them
        (`keyword.informative_words`), with document counts summed over the shards."""
        first = self.shards[0]
        words = [keyword.words(text) for text in texts]
        terms = [first.store.query_terms(w, first.keyword_tokenizer) if w else [] for w in words]
        wanted = sorted({term for found in terms for _, term in found})
        counts: Counter[str] = Counter()
        total = 0
        seen: list[set[int | None]] = [set() for _ in self.shards]
        for number, shard in enumerate(self.shards):
            with shard.store.reading():
                seen[number].add(shard.store.generation())
                total += shard.store.count()
                counts.update(shard.store.document_counts(wanted))
        phrases = [[keyword.quoted([word]) for word in keyword.informative_words(
            w, found, counts, total, first.common_term_share)] for w, found in zip(
            words, terms, strict=True)]
        unique = sorted({phrase for query in phrases for phrase in query})
        tables = []
        for number, shard in enumerate(self.shards):
            with shard.store.reading():
                seen[number].add(shard.store.generation())
                tables.append(_keyword_table(shard.store, unique))
        rows = sum(table.rows for table in tables)
        avgdl = bm25.average_length(rows, sum(table.tokens for table in tables))
        hits = {phrase: sum(len(table.matches[phrase][0]) for table in tables)
                for phrase in unique}
        out = []
        for query in phrases:
            idfs = [bm25.idf(rows, hits[phrase]) for phrase in query]
            keys, values = [], []
            for number, table in enumerate(tables):
                found, frequencies, lengths = table.frequencies(query)
                keys.append(_global_keys(np.full(len(found), number), found))
                values.append(bm25.scores(frequencies, idfs, lengths, avgdl))
            every_key, every_value = np.concatenate(keys), np.concatenate(values)
            order = np.lexsort((every_key, every_value))[:depth]  # SQLite: ORDER BY bm25
            out.append((every_key[order], -every_value[order].astype(np.float32)))
        generations = [next(iter(g)) if len(g) == 1 else -1 for g in seen]
        return out, generations


@dataclass
class _KeywordTable:
    """What FTS5's bm25() reads from one shard's keyword table, for some phrases."""

    rows: int
    tokens: int
    matches: dict[str, tuple[np.ndarray, np.ndarray]]  # phrase → keys, bm25() alone
    keys: np.ndarray  # every matched key, ascending
    lengths: np.ndarray  # their lengths in tokens

    def frequencies(self, phrases: Sequence[str],
                    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """The keys matching any of `phrases` (ascending), each phrase's frequency in them
        (recovered from its single-phrase bm25() with this table's statistics), and their
        lengths."""
        if not phrases:
            return np.empty(0, np.uint64), [], np.empty(0)
        keys = np.unique(np.concatenate([self.matches[p][0] for p in phrases]))
        lengths = self.lengths[np.searchsorted(self.keys, keys)]
        avgdl = bm25.average_length(self.rows, self.tokens)
        out = []
        for phrase in phrases:
            found, values = self.matches[phrase]
            frequency = np.zeros(len(keys))
            if len(found):
                position = np.searchsorted(keys, found)
                frequency[position] = bm25.frequencies(
                    values, bm25.idf(self.rows, len(found)), lengths[position], avgdl)
            out.append(frequency)
        return keys.astype(np.uint64), out, lengths


def _keyword_table(store: Any, phrases: Sequence[str]) -> _KeywordTable:
    """Caller holds a snapshot of `store` (`store.reading()`)."""
    rows, tokens = store.keyword_totals()
    matches = {phrase: store.phrase_matches(phrase) for phrase in phrases}
    keys = np.unique(np.concatenate([np.empty(0, np.int64)]
                                    + [found for found, _ in matches.values()]))
    return _KeywordTable(rows, tokens, matches, keys, store.token_counts(keys.tolist()))


def _global_keys(shards: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(shard number, key) as one uint64 whose order is shard order, then key order: the
    order of the keys one index holding the shards' documents in order gives them, which
    is the order ties are broken in."""
    return (np.asarray(shards, np.uint64) << np.uint64(SHARD_SHIFT)) | \
        np.asarray(keys, np.uint64)


def _gather(arrays: list[np.ndarray], which: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows `rows` of arrays[which], in order, as one matrix."""
    out = np.empty((len(rows), arrays[0].shape[1]), arrays[0].dtype)
    for number, array in enumerate(arrays):
        mask = which == number
        if mask.any():
            out[mask] = array[rows[mask]]
    return out


def _read_shards_file(root: Path) -> tuple[list[str], bool]:
    """The shard folders in order, and whether the shards hold texts (files written before
    that was recorded: assumed so)."""
    path = root / SHARDS_FILE
    if not path.is_file():
        raise IndexFileError(f"no sharded index at {root} (missing {SHARDS_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != SHARDS_FORMAT or not isinstance(data.get("shards"), list) \
                or not data["shards"] or not all(isinstance(n, str) and "/" not in n
                                                  and n not in (".", "..")
                                                  for n in data["shards"]) or \
                not isinstance(data.get("texts", True), bool):
            raise ValueError("not an edgembed shards file")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise IndexFileError(f"unreadable {path}: {reason(exc)}") from None
    return data["shards"], data.get("texts", True)


# ---------------------------------------------------------------- building

def build_shards(source: str | Path, out: str | Path, *, encoder: Encoder | None = None,
                 rows_per_shard: int = ROWS_PER_SHARD, mode: str = "exact",
                 show_progress: bool | None = None) -> list[Path]:
    """Turn the Parquet files of `edgembed embed --ray` into index shards of at most
    `rows_per_shard` rows each, in part order (needs the `ray` extra's pyarrow). Uses the
    files' ``ubinary`` and ``int8`` columns as they are, or their ``float32`` vectors;
    ids, texts and metadata come along, the texts into each shard's keyword table. Files
    without a text column (``embed --no-text``) give shards that search densely only
    (``shards.json`` says ``"texts": false``). Returns the shard folders."""
    from ..distributed.parquet import model_info, parquet_files, read_batches
    from ..encoder import progress_bar
    from ..extras import require

    require("pyarrow.parquet", "ray")  # before anything else can fail

    if isinstance(rows_per_shard, bool) or not isinstance(rows_per_shard, int) or \
            rows_per_shard < 1:
        raise EdgembedError(f"rows per shard must be a positive integer, got {rows_per_shard!r}")
    files = parquet_files(source)
    info = model_info(files[0])
    if encoder is None:
        path = info.package_path if info.package_path and Path(info.package_path).is_dir() \
            else None
        encoder = Encoder.load(path)
    if encoder.package.package_id != info.package_id:
        raise EdgembedError(f"{files[0]} holds vectors of model {info.package_id}, the encoder "
                            f"is {encoder.package.package_id}; pass --model with that package")
    root = Path(out).expanduser()
    if root.exists() and any(root.iterdir()):
        raise EdgembedError(f"{root} exists and is not empty; build shards into a new folder")
    names: list[str] = []
    shard: Index | None = None
    texts = True  # every file has a text column: the keyword tables hold every text
    with progress_bar(len(files), show_progress, min_total=2, unit="file",
                      desc="shards") as bar:
        for _, batch in read_batches(files):
            codes, int8 = codes_of(batch, encoder.int8_ranges)
            if shard is None or (len(shard) and len(shard) + len(batch) > rows_per_shard):
                if shard is not None:
                    shard.save()
                    shard.close()
                names.append(f"shard-{len(names):05d}")
                shard = Index.create(root / names[-1], encoder, mode=mode)
            texts = texts and batch.texts is not None
            shard.add_codes(codes, int8, texts=batch.texts, ids=batch.ids,
                            metadata=batch.metadata)
            bar.update(1)
    if shard is not None:
        shard.save()
        shard.close()
    _write_json_atomic(root / SHARDS_FILE, {"format": SHARDS_FORMAT, "version": 1,
                                            "package_id": info.package_id, "shards": names,
                                            "texts": texts})
    return [root / name for name in names]


def codes_of(batch: Any, ranges: C.Int8Ranges) -> tuple[np.ndarray, np.ndarray]:
    """Sign codes and int8 vectors of a Parquet batch: stored, or made from float32."""
    codes, int8 = batch.ubinary, batch.int8
    if codes is None or int8 is None:
        if batch.float32 is None:
            raise EdgembedError("building shards needs the ubinary and int8 columns, or "
                                "float32 (embed with --columns including them)")
        codes = C.pack_signs(batch.float32) if codes is None else codes
        int8 = C.quantize_int8(batch.float32, ranges) if int8 is None else int8
    return codes, int8
