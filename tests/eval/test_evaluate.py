"""A deterministic stream of index changes, shared by the crash and concurrency tests.

Round r adds documents "r{r}-0" … "r{r}-7" (seeded unit vectors, texts made from the ids)
and removes the odd-numbered documents of round r - 2, then saves. So the content after
any number of rounds is known, and `check_consistent` can tell which round an index holds
and whether its documents and vectors agree. Even-numbered documents are never removed.

Run as a script it is the writer process that the tests kill:
`python index_workload.py INDEX LOG [CRASH_POINT]` opens INDEX, prints "ready", then runs
rounds forever, appending each saved round's number to LOG. With CRASH_POINT the process
dies by `os._exit` at that point of its first save instead (see CRASH_POINTS).
"""

from __future__ import annotations

import os
import sys
import zlib

import numpy as np

PER_ROUND = 8
DIM = 384
# where a save can be cut short, in order: while writing the staging folder; after the new
# generation folder is in place but before the commit; after the commit, before clean-up
CRASH_POINTS = ("staging", "before-commit", "after-commit")


def doc_vector(doc_id: str) -> np.ndarray:
    vector = np.random.default_rng(zlib.crc32(doc_id.encode())).standard_normal(DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def doc_text(doc_id: str) -> str:
    return f"text of {doc_id}"


def added(r: int) -> list[str]:
    return [f"r{r}-{i}" for i in range(PER_ROUND)]


def removed(r: int) -> list[str]:
    return [f"r{r - 2}-{i}" for i in range(1, PER_ROUND, 2)] if r > 2 else []


def expected_ids(rounds: int) -> set[str]:
    ids: set[str] = set()
    for r in range(1, rounds + 1):
        ids = (ids | set(added(r))) - set(removed(r))
    return ids


def round_of(ids: set[str]) -> int:
    return max((int(doc_id[1:].split("-")[0]) for doc_id in ids), default=0)


def apply_round(index, r: int, save: bool = True) -> None:
    ids = added(r)
    index.add_vectors(np.stack([doc_vector(i) for i in ids]), texts=[doc_text(i) for i in ids],
                      ids=ids, metadata=[{"round": r} for _ in ids])
    index.remove(removed(r))
    if save:
        index.save()


def check_consistent(index) -> int | None:
    """Assert that the index's vectors and documents agree and hold the content of a whole
    number of rounds; return that number. None if a concurrent writer saved a newer
    generation before the documents could be read (nothing to compare then)."""
    from edgembed import codes as C

    keys = [int(key) for key in index._keys]
    generation, docs = index.store.fetch_at(keys)
    if generation != index._state.generation:
        return None
    assert len(docs) == len(keys) == index._state.count, "documents and vectors disagree"
    ids = {docs[key][0] for key in keys}
    assert len(ids) == len(keys)
    rounds = round_of(ids)
    assert ids == expected_ids(rounds), f"content is not that of round {rounds}"
    vectors = np.stack([doc_vector(docs[key][0]) for key in keys]) if keys else \
        np.empty((0, DIM), np.float32)
    assert np.array_equal(index._codes, C.pack_signs(vectors))
    assert np.array_equal(index._int8, C.quantize_int8(vectors, index.ranges))
    for key in keys:
        doc_id, text, meta = docs[key]
        assert text == doc_text(doc_id) and meta == {"round": round_of({doc_id})}
    check_keyword_table(index, keys, docs)
    return rounds


def check_keyword_table(index, keys: list[int], docs: dict) -> None:
    """The keyword table holds exactly the committed documents' texts: FTS5's own check
    against its content table, and a keyword search for each round's documents."""
    import sqlite3

    with sqlite3.connect(index.store.path) as db:
        db.execute("INSERT INTO docs_fts (docs_fts, rank) VALUES ('integrity-check', 1)")
        indexed = {row[0] for row in db.execute("SELECT rowid FROM docs_fts")}
        assert indexed == set(keys), "keyword table and documents disagree"
    for r in {round_of({doc_id}) for doc_id, _, _ in docs.values()}:
        found = {hit.id for hit in index.search(f"r{r}", k=PER_ROUND, mode="keyword")}
        assert found == {d for d in expected_ids(r) if d.startswith(f"r{r}-")}


def _crash_at(point: str) -> None:
    """Make the first save die at `point`, as a SIGKILL there would."""
    from edgembed.index import index as index_module
    from edgembed.index.store import DocStore

    def die(*args, **kwargs):
        os._exit(9)

    if point == "staging":
        original = np.save

        def save_then_die(path, array, *args, **kwargs):
            original(path, array, *args, **kwargs)
            if str(path).endswith("codes.npy"):
                os._exit(9)

        index_module.np.save = save_then_die
    elif point == "before-commit":
        DocStore.set_state = die
    elif point == "after-commit":
        index_module.Index._remove_stale = die
    else:
        raise SystemExit(f"unknown crash point {point}")


def main(path: str, log: str, crash_point: str | None = None) -> None:
    from edgembed import Encoder, Index

    index = Index.open(path, encoder=Encoder.load(verify=False))
    docs = index.store.fetch(index._keys.tolist())
    r = round_of({doc_id for doc_id, _, _ in docs.values()})
    if crash_point:
        _crash_at(crash_point)
    print("ready", flush=True)
    while True:
        r += 1
        apply_round(index, r)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{r}\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
