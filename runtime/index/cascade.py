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
"""

from __future__ import annotations

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
