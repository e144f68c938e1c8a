"""Export to LanceDB, and searching the exported table with edgembed's rescoring (the
`lancedb` extra, imported only here).

`export_index` copies an edgembed index, a sharded index or the Parquet output of
`edgembed embed --ray` into a LanceDB table, one row per passage:

* ``key`` (int64, row number), ``id``, ``text``, ``metadata`` (JSON string);
* ``code``: the packed sign code, a fixed-size list of uint8 (LanceDB's binary vector,
  searched with ``distance_type("hamming")``: a flat scan, or an IVF_FLAT index);
* ``int8``: the int8 vector, for rescoring.

The table's schema metadata names the model package and its int8 ranges, so a reader
refuses a different model and rescores with the right ranges.

LanceDB searches the codes by Hamming distance but has no int8 rescoring of binary
candidates, so `LanceIndex.search` does the round trip: the `Encoder` embeds the query,
LanceDB returns the Hamming pool (with each candidate's code and int8 vector), and the
cascade's own refinement and rescoring (`edgembed.index.cascade`) rank them, as an edgembed
index would.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from .. import codes as C
from ..encoder import Encoder, progress_bar
from ..errors import EdgembedError
from ..extras import require
from . import cascade
from .index import META_FILE, Hit, Index, _check_k_rescore, query_vectors
from .shards import ShardedIndex, codes_of, is_sharded

SCHEME = "lancedb"
DEFAULT_TABLE = "passages"
META_KEY = b"edgembed"
BATCH_ROWS = 50_000


def parse_uri(uri: str) -> tuple[str, str]:
    """``lancedb:PATH[?table=NAME]`` (or ``lancedb://PATH``) → (database path, table)."""
    parsed = urlparse(uri)
    if parsed.scheme != SCHEME:
        raise EdgembedError(f"unsupported engine URI {uri!r}; give lancedb:PATH[?table=NAME] "
                            "(a LanceDB database folder)")
    path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
    if not path:
        raise EdgembedError(f"{uri!r} names no database folder: lancedb:PATH[?table=NAME]")
    table = parse_qs(parsed.query).get("table", [DEFAULT_TABLE])[0]
    return str(Path(path).expanduser()), table


def _lancedb() -> Any:
    return require("lancedb", "lancedb")


# ---------------------------------------------------------------- sources

Rows = tuple[list[Any], list[str | None], list[Any], np.ndarray, np.ndarray]


def _index_rows(index: Index, batch: int) -> Iterator[Rows]:
    """(ids, texts, metadata, codes, int8) of an index, `batch` rows at a time."""
    with index._rw.reading():
        keys, codes, int8 = index._keys, index._codes, index._int8
    for start in range(0, len(keys), batch):
        part = keys[start:start + batch]
        docs = index.store.fetch(part.tolist())
        rows = [docs[int(key)] for key in part]
        yield ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
               np.asarray(codes[start:start + batch]), np.asarray(int8[start:start + batch]))


def source_rows(source: str | Path, batch: int = BATCH_ROWS,
                ) -> tuple[dict[str, Any], int, Iterator[Rows]]:
    """The model (package id, dim, int8 ranges), the row count and the rows of an edgembed
    index, a sharded index or a folder of Parquet parts."""
    root = Path(source).expanduser()
    if (root / META_FILE).is_file() or is_sharded(root):
        opened = ShardedIndex.open(root) if is_sharded(root) else None
        shards = opened.shards if opened else [Index.open(root, view=True)]
        first = shards[0]
        model = {"package_id": first.encoder.package.package_id, "dim": first.dim,
                 "int8": first.ranges.to_json()}

        def rows() -> Iterator[Rows]:
            try:
                for shard in shards:
                    yield from _index_rows(shard, batch)
            finally:
                for shard in shards:
                    shard.close()

        return model, sum(len(s) for s in shards), rows()
    from ..distributed.parquet import parquet_files, read_batches

    files = parquet_files(root)
    pq = require("pyarrow.parquet", "ray")
    total = sum(pq.read_metadata(path).num_rows for path in files)
    batches = read_batches(files)
    first_info, first_batch = next(batches)
    model = {"package_id": first_info.package_id, "dim": first_info.dim,
             "int8": first_info.int8}

    def parquet_rows() -> Iterator[Rows]:
        for _, part in itertools.chain([(first_info, first_batch)], batches):
            codes, int8 = codes_of(part, first_info.ranges)
            n = len(part)
            yield (part.ids, part.texts or [None] * n, part.metadata or [None] * n, codes, int8)

    return model, total, parquet_rows()


# ---------------------------------------------------------------- export

def export_index(source: str | Path, uri: str, *, overwrite: bool = False,
                 ivf_partitions: int | None = None,
                 show_progress: bool | None = None) -> dict[str, Any]:
    """Load `source` (index, sharded index or Parquet folder) into the LanceDB table of
    `uri`; with `ivf_partitions`, also build an IVF_FLAT Hamming index on the codes.
    Returns what was done (rows, seconds, table)."""
    import time

    lancedb = _lancedb()
    pa = require("pyarrow", "lancedb")
    path, name = parse_uri(uri)
    started = time.perf_counter()
    model, total, rows = source_rows(source)
    db = lancedb.connect(path)
    if name in _table_names(db):
        if not overwrite:
            raise EdgembedError(f"table {name!r} exists in {path}; pass --overwrite to "
                                "replace it")
        db.drop_table(name)
    dim, nbytes = int(model["dim"]), C.code_bytes(int(model["dim"]))
    schema = pa.schema([("key", pa.int64()), ("id", pa.string()), ("text", pa.string()),
                        ("metadata", pa.string()), ("code", pa.list_(pa.uint8(), nbytes)),
                        ("int8", pa.list_(pa.int8(), dim))],
                       metadata={META_KEY: json.dumps(model).encode()})
    table = db.create_table(name, schema=schema)
    written = 0
    with progress_bar(total, show_progress, min_total=BATCH_ROWS, unit="row",
                      desc="export") as bar:
        for ids, texts, metadata, codes, int8 in rows:
            n = len(ids)
            table.add(pa.table({
                "key": np.arange(written, written + n, dtype=np.int64),
                "id": pa.array([str(i) for i in ids], pa.string()),
                "text": pa.array(list(texts), pa.string()),
                "metadata": pa.array([None if m is None else json.dumps(m, ensure_ascii=False)
                                      for m in metadata], pa.string()),
                "code": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.ascontiguousarray(codes, np.uint8).ravel()), nbytes),
                "int8": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.ascontiguousarray(int8, np.int8).ravel()), dim),
            }, schema=schema))
            written += n
            bar.update(n)
    if ivf_partitions:
        from lancedb.index import IvfFlat

        table.create_index("code", config=IvfFlat(distance_type="hamming",
                                                  num_partitions=int(ivf_partitions)))
    return {"uri": uri, "database": path, "table": name, "rows": written,
            "package_id": model["package_id"], "ivf_partitions": ivf_partitions,
            "seconds": round(time.perf_counter() - started, 3)}


def _table_names(db: Any) -> list[str]:
    listing = db.list_tables() if hasattr(db, "list_tables") else db.table_names()
    return list(getattr(listing, "tables", listing))


# ---------------------------------------------------------------- searching

class LanceIndex:
    """A LanceDB table written by `export_index`, searched like an edgembed `Index`: LanceDB
    finds the Hamming candidates, edgembed refines and rescores them."""

    def __init__(self, uri: str, encoder: Encoder | None = None) -> None:
        lancedb = _lancedb()
        path, name = parse_uri(uri)
        if not Path(path).is_dir() or name not in _table_names(lancedb.connect(path)):
            raise EdgembedError(f"no LanceDB table {name!r} in {path}; export one with "
                                f"edgembed export-index SOURCE --to {uri}")
        self.table = lancedb.connect(path).open_table(name)
        raw = (self.table.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise EdgembedError(f"table {name!r} in {path} was not written by edgembed")
        model = json.loads(raw)
        self.encoder = encoder or Encoder.load()
        if self.encoder.package.package_id != model["package_id"]:
            raise EdgembedError(f"table {name!r} holds vectors of model {model['package_id']}, "
                                f"the encoder is {self.encoder.package.package_id}; pass that "
                                "model's package")
        self.ranges = C.Int8Ranges.from_json(model["int8"])
        self.dim = int(model["dim"])

    def __len__(self) -> int:
        return int(self.table.count_rows())

    def search(self, queries: str | Sequence[str], k: int = 10, *, rescore: int = 4,
               nprobes: int | None = None) -> list[Hit] | list[list[Hit]]:
        """Text queries → hits, as `Index.search`. `nprobes`: IVF partitions to visit when
        the table has an IVF index (LanceDB's default otherwise)."""
        _check_k_rescore(k, rescore)
        vectors, single = query_vectors(self.encoder, queries)
        hits = self.search_vectors(vectors, k, rescore=rescore, nprobes=nprobes)
        return hits[0] if single else hits

    def search_vectors(self, vectors: np.ndarray, k: int = 10, *, rescore: int = 4,
                       nprobes: int | None = None) -> list[list[Hit]]:
        _check_k_rescore(k, rescore)
        q = np.atleast_2d(np.asarray(vectors, np.float32))
        if q.shape[1] != self.dim or not np.isfinite(q).all():
            raise EdgembedError(f"query vectors must be finite with {self.dim} dimensions")
        keep, pool = cascade.pool_sizes(k, rescore)
        fetch = cascade.fetch_size(pool, len(self))
        out = []
        for vector in q:
            query = self.table.search(C.pack_signs(vector), vector_column_name="code") \
                .distance_type("hamming").limit(max(fetch, 1))
            if nprobes:
                query = query.nprobes(int(nprobes))
            found = query.to_arrow()
            if found.num_rows == 0:
                out.append([])
                continue
            distances = found.column("_distance").to_numpy()
            order = np.argsort(distances, kind="stable")
            order = cascade.with_ties(order, distances[order], len(order), pool).astype(np.int64)
            codes = _fixed(found, "code", np.uint8)[order]
            rows, scores = cascade.refine(vector, codes, np.arange(len(order)), keep)
            if rescore:
                int8 = _fixed(found, "int8", np.int8)[order]
                best, scores = cascade.rescore_int8(vector, int8, rows, self.ranges, k)
                rows = best
            picked = order[rows]
            ids = found.column("id").to_pylist()
            texts = found.column("text").to_pylist()
            metadata = found.column("metadata").to_pylist()
            out.append([Hit(ids[i], float(s), texts[i], None if metadata[i] is None
                            else json.loads(metadata[i]))
                        for i, s in zip(picked, scores.astype(np.float32), strict=True)])
        return out


def _fixed(table: Any, column: str, dtype: type) -> np.ndarray:
    array = table.column(column).combine_chunks()
    width = array.type.list_size
    return array.flatten().to_numpy(zero_copy_only=False).astype(dtype).reshape(-1, width)
