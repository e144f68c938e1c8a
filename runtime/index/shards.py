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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import codes as C
from ..encoder import Encoder
from ..errors import EdgembedError, IndexFileError, reason
from . import cascade
from .index import (
    CHANGED_RETRIES,
    Hit,
    Index,
    _check_k_rescore,
    _write_json_atomic,
    hit,
    query_vectors,
)

SHARDS_FILE = "shards.json"
SHARDS_FORMAT = "edgembed-shards"
ROWS_PER_SHARD = 1_000_000


def is_sharded(path: str | Path) -> bool:
    return (Path(path).expanduser() / SHARDS_FILE).is_file()


class ShardedIndex:
    """Shards (`Index` objects of one model) searched as one index: `search` and
    `search_vectors` return what `Index.search` would for all their documents."""

    def __init__(self, shards: Sequence[Index]) -> None:
        if not shards:
            raise EdgembedError("a sharded index needs at least one shard")
        first = shards[0]
        for shard in shards[1:]:
            if shard.encoder.package.package_id != first.encoder.package.package_id or \
                    shard.dim != first.dim or \
                    not (np.array_equal(shard.ranges.lo, first.ranges.lo)
                         and np.array_equal(shard.ranges.hi, first.ranges.hi)):
                raise EdgembedError(f"shard {shard.path} was built with another model or int8 "
                                    f"ranges than {first.path}")
        self.shards = list(shards)
        self.encoder = first.encoder
        self.dim = first.dim
        self.ranges = first.ranges

    @classmethod
    def open(cls, path: str | Path, encoder: Encoder | None = None,
             verify: bool = True) -> ShardedIndex:
        """Open the shards listed in PATH/shards.json, read-only (memory-mapped)."""
        root = Path(path).expanduser()
        names = _read_shards_file(root)
        shards: list[Index] = []
        try:
            for name in names:
                shard = Index.open(root / name, encoder=encoder, view=True, verify=verify)
                encoder = encoder or shard.encoder  # load the model once
                shards.append(shard)
            return cls(shards)
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

    def search(self, queries: str | Sequence[str], k: int = 10, *, rescore: int = 4,
               exact: bool | None = None) -> list[Hit] | list[list[Hit]]:
        """`Index.search` over all shards."""
        _check_k_rescore(k, rescore)
        vectors, single = query_vectors(self.encoder, queries)
        hits = self.search_vectors(vectors, k, rescore=rescore, exact=exact)
        return hits[0] if single else hits

    def search_vectors(self, vectors: np.ndarray, k: int = 10, *, rescore: int = 4,
                       exact: bool | None = None) -> list[list[Hit]]:
        """`Index.search_vectors` over all shards; each shard's documents are read from the
        committed state its vectors were searched in."""
        _check_k_rescore(k, rescore)
        q = self.shards[0]._query_matrix(vectors)
        for _ in range(CHANGED_RETRIES):
            results, generations = self._rank(q, k, rescore, exact)
            docs = []
            for number, shard in enumerate(self.shards):
                keys = [key for row in results for s, key, _ in row if s == number]
                seen, found = shard.store.fetch_at(keys)
                if seen is not None and seen != generations[number]:
                    break  # another process saved this shard meanwhile: search again
                docs.append(found)
            else:
                return [[hit(docs[s], key, score, self.shards[s].store.path)
                         for s, key, score in row] for row in results]
        raise EdgembedError("the shards kept changing during a search; try again")

    def _rank(self, q: np.ndarray, k: int, rescore: int, exact: bool | None,
              ) -> tuple[list[list[tuple[int, int, float]]], list[int]]:
        """Per query, (shard, key, score) best first; and the generation searched per shard."""
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
            out.append([(int(which[j]), int(keys[which[j]][rows[j]]), float(score))
                        for j, score in zip(kept, scores.astype(np.float32), strict=True)])
        return out, generations


def _gather(arrays: list[np.ndarray], which: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows `rows` of arrays[which], in order, as one matrix."""
    out = np.empty((len(rows), arrays[0].shape[1]), arrays[0].dtype)
    for number, array in enumerate(arrays):
        mask = which == number
        if mask.any():
            out[mask] = array[rows[mask]]
    return out


def _read_shards_file(root: Path) -> list[str]:
    path = root / SHARDS_FILE
    if not path.is_file():
        raise IndexFileError(f"no sharded index at {root} (missing {SHARDS_FILE})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != SHARDS_FORMAT or not isinstance(data.get("shards"), list) \
                or not data["shards"] or not all(isinstance(n, str) and "/" not in n
                                                  and n not in (".", "..")
                                                  for n in data["shards"]):
            raise ValueError("not an edgembed shards file")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise IndexFileError(f"unreadable {path}: {reason(exc)}") from None
    return data["shards"]


# ---------------------------------------------------------------- building

def build_shards(source: str | Path, out: str | Path, *, encoder: Encoder | None = None,
                 rows_per_shard: int = ROWS_PER_SHARD, mode: str = "exact",
                 show_progress: bool | None = None) -> list[Path]:
    """Turn the Parquet files of `edgembed embed --ray` into index shards of at most
    `rows_per_shard` rows each, in part order (needs the `ray` extra's pyarrow). Uses the
    files' ``ubinary`` and ``int8`` columns as they are, or their ``float32`` vectors;
    ids, texts and metadata come along. Returns the shard folders."""
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
            shard.add_codes(codes, int8, texts=batch.texts, ids=batch.ids,
                            metadata=batch.metadata)
            bar.update(1)
    if shard is not None:
        shard.save()
        shard.close()
    _write_json_atomic(root / SHARDS_FILE, {"format": SHARDS_FORMAT, "version": 1,
                                            "package_id": info.package_id, "shards": names})
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
