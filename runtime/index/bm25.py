"""SQLite FTS5's BM25, computed for several keyword tables as if they were one.

FTS5's ``bm25()`` scores a document for a query of phrases p_1 … p_n as

    -sum_i idf_i * f_i * (k1 + 1) / (f_i + k1 * (1 - b + b * D / avgdl))

with k1 = 1.2 and b = 0.75; f_i is how often p_i occurs in the document, D the document's
length in tokens, avgdl the table's total tokens over its rows (N), and
idf_i = log((N - n_i + 0.5) / (n_i + 0.5)), at least 1e-6, where n_i documents hold p_i.
N, avgdl and n_i belong to the table: the same document scores differently in a shard
than in one table holding every shard's documents.

So a search over shards reads from each shard what ``bm25()`` reads (N, the total tokens,
and per phrase the documents matching it alone, with their ``bm25()`` for that phrase and
their lengths), recovers f_i from that single-phrase score and the shard's own
statistics, and computes the score with the statistics summed over the shards, by the
same operations in the same order as FTS5 (``fts5Bm25Function`` in SQLite's
``fts5_aux.c``). The scores are then those of one table holding all the documents, down to
the last bit (the tests compare them exactly).

Pure functions; the SQL lives in `edgembed.index.store`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

K1 = 1.2
B = 0.75
IDF_FLOOR = 1e-6  # FTS5's: a term in more than half of the documents still counts a little


def varint(data: bytes, position: int = 0) -> tuple[int, int]:
    """The SQLite varint at `position` of `data` (big-endian, 7 bits a byte while the
    high bit is set, a 9th byte of 8 bits) and the position after it: how FTS5 stores its
    row count, token totals and document lengths."""
    value = 0
    for offset in range(8):
        byte = data[position + offset]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, position + offset + 1
    return (value << 8) | data[position + 8], position + 9


def idf(rows: int, hits: int) -> float:
    """FTS5's inverse document frequency of a phrase held by `hits` of `rows` documents
    (math.log: the C library's log, as SQLite calls it)."""
    value = math.log((rows - hits + 0.5) / (hits + 0.5))
    return value if value > 0.0 else IDF_FLOOR


def average_length(rows: int, tokens: int) -> float:
    return tokens / rows if rows else 0.0


def frequencies(scores: np.ndarray, phrase_idf: float, lengths: np.ndarray,
                avgdl: float) -> np.ndarray:
    """How often a phrase occurs in each document, from the ``bm25()`` values of a query of
    that phrase alone (`scores`, negative) in a table whose IDF for it is `phrase_idf` and
    whose average length is `avgdl`: the count that ``bm25()`` weighs, an integer."""
    s = -np.asarray(scores, np.float64) / phrase_idf  # f (k1 + 1) / (f + k1 L)
    length_norm = K1 * (1 - B + B * np.asarray(lengths, np.float64) / avgdl)
    return np.rint(s * length_norm / (K1 + 1.0 - s))


def scores(phrase_frequencies: Sequence[np.ndarray], idfs: Sequence[float],
           lengths: np.ndarray, avgdl: float) -> np.ndarray:
    """``bm25()`` (negative: lower is better) of documents of `lengths` tokens holding each
    phrase as often as `phrase_frequencies` says (one array per phrase, in query order),
    for a table of average length `avgdl` with these phrase IDFs. The operations are
    FTS5's, in its order, so the doubles are the ones it computes."""
    lengths = np.asarray(lengths, np.float64)
    total = np.zeros(len(lengths), np.float64)
    for frequency, phrase_idf in zip(phrase_frequencies, idfs, strict=True):
        frequency = np.asarray(frequency, np.float64)
        total += phrase_idf * ((frequency * (K1 + 1.0))
                               / (frequency + K1 * (1 - B + B * lengths / avgdl)))
    return -1.0 * total
