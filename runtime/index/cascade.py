"""The search cascade as pure functions over arrays, so that the `Index`, `edgembed eval`
and the tests run the very same steps.

For `k` results with ``rescore=m`` (see the `edgembed.index.index` docstring for why):

1. **Hamming**: the ``OVERFETCH * k * max(m, 1)`` nearest sign codes (`pool_sizes`), found by
   usearch, plus every code tied with the last of them (`with_ties`);
2. **asymmetric refinement** (`refine`): those candidates re-ranked by the float query
   against their ±1 sign bits, the best ``k * max(m, 1)`` kept;
3. **int8 rescoring** (`rescore_int8`): the survivors re-ranked by the float query against
   their int8 vectors, the top `k` returned (skipped when ``m == 0``).

Rows are positions in the index's aligned arrays (codes, int8 vectors, keys).

Hybrid search ranks twice, by this cascade and by keywords (BM25), and `fuse`s the two
rankings by their ranks. Every function here is pure, so a search over several indexes
(shards) can rank each, then merge with the same steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import codes as C

OVERFETCH = 8  # Hamming candidates per int8-rescored candidate


def pool_sizes(k: int, rescore: int) -> tuple[int, int]:
    """(survivors of the refinement, Hamming candidates) for `k` results at `rescore`."""
    keep = k * max(rescore, 1)
    return keep, OVERFETCH * keep


def fetch_size(count: int, total: int) -> int:
    """How many neighbours to ask usearch for, so that codes tied with the `count`-th are
    usually among them (half as many again), never more than the index holds."""
    return min(total, count + count // 2)


def with_ties(keys: np.ndarray, distances: np.ndarray, found: int, count: int) -> np.ndarray:
    """The first `count` of `found` neighbours sorted by distance, plus every one tied with
    the last of them: integer distances tie often, and which tied document makes the cut
    must not depend on the order usearch breaks ties in."""
    if found > count:
        found = int(np.searchsorted(distances[:found], distances[count - 1], side="right"))
    return keys[:found].astype(np.uint64)


def top(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` highest scores, best first (ties keep their order)."""
    if count < len(scores):
        part = np.argpartition(-scores, count - 1)[:count]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")


def refine(query: np.ndarray, codes: np.ndarray, rows: np.ndarray,
           keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Step 2: the `keep` best of `rows` by the cosine between the float query and the unit
    sign vector sign(d) / sqrt(dim); (rows, scores) best first."""
    scores = C.asymmetric_scores(query, codes[rows]) / np.sqrt(len(query))
    best = top(scores, keep)
    return rows[best], scores[best]


def rescore_int8(query: np.ndarray, int8: np.ndarray, rows: np.ndarray, ranges: C.Int8Ranges,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """Step 3: the `k` best of `rows` by the float query against their dequantized int8
    vectors (≈ cosine); (rows, scores) best first."""
    scores = C.int8_scores(query, int8[rows], ranges)
    best = top(scores, k)
    return rows[best], scores[best]


# ------------------------------------------------------------ hybrid ranking

# The k of reciprocal-rank fusion. Small values trust the top of each ranking most; chosen
# on SciFact's train split (benchmarks/results/eval_scifact_train.json), where 1 to 5 were
# within 0.002 nDCG@10 of each other and 60, the constant usually quoted, 0.012 lower.
RRF_CONSTANT = 1
FUSION_DEPTH = 100  # results of each ranking that take part in the fusion


def fusion_depth(k: int, rescore: int) -> tuple[int, int]:
    """(results, rescore) of the dense ranking that hybrid search fuses for `k` results:
    FUSION_DEPTH results (or k, if more), their int8 vectors read for at least ``k *
    rescore`` documents, as a dense search would (rescore 0: none)."""
    depth = max(k, FUSION_DEPTH)
    return depth, (0 if rescore == 0 else -(-k * rescore // depth))


def fuse(rankings: Sequence[np.ndarray], count: int, constant: float = RRF_CONSTANT,
         ) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal-rank fusion: each document scores ``sum(1 / (constant + rank))`` over the
    rankings it is in (rank 1 is the best), and the `count` best come back as (keys,
    scores). It needs only ranks, so rankings whose scores are not comparable (cosines,
    BM25; shards of one collection) combine without calibration. Ties go to the smaller
    key, so the order never depends on the order of the rankings."""
    keys = [np.asarray(ranking, dtype=np.uint64) for ranking in rankings]
    if not any(len(k) for k in keys):
        return np.empty(0, np.uint64), np.empty(0, np.float32)
    every = np.concatenate(keys)
    contributions = np.concatenate([1.0 / (constant + np.arange(1, len(k) + 1)) for k in keys])
    unique, position = np.unique(every, return_inverse=True)
    scores = np.bincount(position, weights=contributions, minlength=len(unique))
    best = top(scores, count)  # unique is sorted: stable ties keep the smaller key first
    return unique[best], scores[best].astype(np.float32)
