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

BLOCK = 1 << 16  # codes per step: their words and temporaries stay in the core's cache
GROUP = 3  # words summed in uint8 (3 × 64 bits ≤ 255) before widening
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

    def distances(self, code: np.ndarray) -> np.ndarray:
        """Hamming distance from one packed code to every stored code (uint16)."""
        query = self.query_words(code)
        out = np.empty(self.count, np.uint16)
        buffers = _Buffers(min(BLOCK, max(self.count, 1)))
        for first in range(0, self.count, BLOCK):
            last = min(self.count, first + BLOCK)
            out[first:last] = self._block(query, first, last, buffers)
        return out

    def _block(self, query: np.ndarray, first: int, last: int,
               buffers: _Buffers) -> np.ndarray:
        """Distances of rows [first, last): per word XOR with the query's word and popcount,
        summed in uint8 by groups of GROUP words, the groups in uint16. Each step is one numpy
        call that releases the GIL, so two threads scan two halves at once."""
        n = last - first
        xor, bits, group = buffers.xor[:n], buffers.bits[:n], buffers.group[:n]
        total = buffers.total[:n]
        for start in range(0, self.words, GROUP):
            for word in range(start, min(start + GROUP, self.words)):
                np.bitwise_xor(self.columns[word, first:last], query[word], out=xor)
                np.bitwise_count(xor, out=bits if word > start else group)
                if word > start:
                    np.add(group, bits, out=group)
            if start == 0:
                np.copyto(total, group)
            else:
                np.add(total, group, out=total)
        return total

    def nearest(self, code: np.ndarray, count: int,
                threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the `count` codes nearest to `code`, plus every code tied with the last
        of them, sorted by distance (row order among equals); and their distances."""
        query = self.query_words(code)
        if threads > 1 and self.count >= PARALLEL_MIN:
            half = self.count // 2
            other = _executor().submit(self._nearest_in, query, count, 0, half)
            mine = self._nearest_in(query, count, half, self.count)
            rows, distances = (np.concatenate(pair) for pair in zip(other.result(), mine,
                                                                     strict=True))
        else:
            rows, distances = self._nearest_in(query, count, 0, self.count)
        return nearest_rows(distances, count, rows)

    def _nearest_in(self, query: np.ndarray, count: int, start: int,
                    end: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidates among rows [start, end): every row within the `count`-th smallest
        distance seen so far, a bound that only tightens, so no row of the true `count`
        nearest (or their ties) is ever dropped; only a few blocks' worth survive."""
        buffers = _Buffers(min(BLOCK, max(end - start, 1)))
        rows, distances = [], []
        bound = None
        kept = 0
        for first in range(start, end, BLOCK):
            last = min(end, first + BLOCK)
            total = self._block(query, first, last, buffers)
            if bound is None:
                if kept + len(total) < count:  # too few yet: keep them all
                    rows.append(np.arange(first, last))
                    distances.append(total.copy())
                    kept += len(total)
                    continue
                pool = np.concatenate([*distances, total])
                bound = int(np.partition(pool, count - 1)[count - 1])
            near = np.flatnonzero(total <= bound)
            rows.append(near + first)
            distances.append(total[near])
            kept += len(near)
            if kept > 4 * count:  # tighten the bound and drop what it excludes
                merged_rows, merged = np.concatenate(rows), np.concatenate(distances)
                bound = int(np.partition(merged, count - 1)[count - 1])
                keep = merged <= bound
                rows, distances, kept = [merged_rows[keep]], [merged[keep]], int(keep.sum())
        if not rows:
            return np.empty(0, np.int64), np.empty(0, np.uint16)
        return np.concatenate(rows), np.concatenate(distances)


class _Buffers:
    """Scratch arrays for one scan of blocks of `size` codes."""

    def __init__(self, size: int) -> None:
        self.xor = np.empty(size, np.uint64)
        self.bits = np.empty(size, np.uint8)
        self.group = np.empty(size, np.uint8)
        self.total = np.empty(size, np.uint16)


def nearest_rows(distances: np.ndarray, count: int,
                 rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The `count` smallest of integer `distances` with all ties of the last, by distance
    then row (`rows`: the row of each distance, ascending; default 0, 1, ...)."""
    if rows is None:
        rows = np.arange(len(distances))
    if len(distances) == 0:
        return np.empty(0, np.int64), np.empty(0, np.uint16)
    if count < len(distances):
        cutoff = np.partition(distances, count - 1)[count - 1]
        keep = np.flatnonzero(distances <= cutoff)
        rows, distances = rows[keep], distances[keep]
    order = np.lexsort((rows, distances))
    return rows[order].astype(np.int64), distances[order].astype(np.uint16)
