"""Exact Hamming search at memory speed: a scan of the sign codes stored column by column.

usearch's exact search calls its distance function once per stored code, through a
pointer, and keeps a sorted top list, whatever its version, thread count or entry point:
several times slower than FAISS's flat binary index (`benchmarks/results/hamming_1m.json`
measures them side by side). The scan here keeps the codes as 64-bit words, word j of
every code in one contiguous column, so each step is one vectorised numpy operation over
thousands of codes at once (XOR with the query's word, popcount, add), in blocks that stay
in cache. Every distance is computed, so the `count` nearest come out with all their ties
and in row order among equals: exact, and independent of the order codes were added in.

usearch stays the index: it stores the codes, walks the HNSW graph of ``mode="hnsw"``
indexes and owns the file format; this scan is how an exact-mode index answers.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

BLOCK = 1 << 17  # codes per step: 1 MB of one word column, a few MB of temporaries
# below this many codes a second thread costs more than it saves
PARALLEL_MIN = 1 << 18
THREADS = min(2, os.cpu_count() or 1)  # threads one search scans with (above PARALLEL_MIN)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="edgembed-scan")
        return _pool


class CodeColumns:
    """Packed sign codes (rows of ceil(dim / 8) bytes) as columns of uint64 words."""

    def __init__(self, codes: np.ndarray) -> None:
        codes = np.asarray(codes, np.uint8)
        self.nbytes = codes.shape[1]
        self.words = -(-self.nbytes // 8)
        padded = np.zeros((len(codes), self.words * 8), np.uint8)
        padded[:, :self.nbytes] = codes
        self.columns = np.ascontiguousarray(padded.view(np.uint64).T)  # (words, n)
        self.count = len(codes)

    def query_words(self, code: np.ndarray) -> np.ndarray:
        padded = np.zeros(self.words * 8, np.uint8)
        padded[:self.nbytes] = code
        return padded.view(np.uint64)

    def distances(self, code: np.ndarray, threads: int = 1) -> np.ndarray:
        """Hamming distance from one packed code to every stored code (uint16)."""
        query = self.query_words(code)
        out = np.empty(self.count, np.uint16)
        if threads > 1 and self.count >= PARALLEL_MIN:
            half = self.count // 2
            other = _executor().submit(self._scan, query, out, 0, half)
            self._scan(query, out, half, self.count)
            other.result()
        else:
            self._scan(query, out, 0, self.count)
        return out

    def _scan(self, query: np.ndarray, out: np.ndarray, start: int, end: int) -> None:
        """Distances of rows [start, end) into `out`. numpy releases the GIL in each step,
        so two threads scan two halves at once."""
        size = min(BLOCK, max(end - start, 1))
        xor = np.empty(size, np.uint64)
        bits = np.empty(size, np.uint8)
        for first in range(start, end, BLOCK):
            last = min(end, first + BLOCK)
            n = last - first
            total = out[first:last]
            for word in range(self.words):
                np.bitwise_xor(self.columns[word, first:last], query[word], out=xor[:n])
                np.bitwise_count(xor[:n], out=bits[:n])
                if word == 0:
                    np.copyto(total, bits[:n])
                else:
                    np.add(total, bits[:n], out=total)

    def nearest(self, code: np.ndarray, count: int,
                threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the `count` codes nearest to `code`, plus every code tied with the last
        of them, sorted by distance (row order among equals); and their distances."""
        distances = self.distances(code, threads)
        return nearest_rows(distances, count)


def nearest_rows(distances: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The `count` smallest of integer `distances` with all ties of the last, by distance
    then row. A histogram of the distances finds the cut-off in one pass: no sort of all."""
    if len(distances) == 0:
        return np.empty(0, np.int64), np.empty(0, np.uint16)
    histogram = np.bincount(distances)
    cutoff = int(np.searchsorted(np.cumsum(histogram), min(count, len(distances))))
    rows = np.flatnonzero(distances <= cutoff)
    order = np.argsort(distances[rows], kind="stable")
    return rows[order], distances[rows[order]]
