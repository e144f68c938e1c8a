"""Exact Hamming search at memory speed: blocks of the stored sign codes, each scored by
one SIMD kernel call.

usearch's exact search calls its distance function once per stored code, through a
pointer, and keeps a sorted top list, whatever its version, thread count or entry point:
several times slower than FAISS's flat binary index (`benchmarks/results/hamming_1m.json`
measures them side by side). The scan here hands a whole block of codes to the Hamming
kernel of simsimd (usearch's own SIMD library, installed with it: AVX-512 VPOPCNTDQ,
AVX2 or NEON, chosen at run time), then keeps the rows within the best distance seen so
far. Every distance is computed, so the `count` nearest come out with all their ties and
in row order among equals: exact, and independent of the order codes were added in. It
reads the codes where they are (the index's own array, or a memory map of its file):
no second copy.

usearch stays the index: it stores the codes, walks the HNSW graph of ``mode="hnsw"``
indexes and owns the file format; this scan is how an exact-mode index answers.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import simsimd

# Codes per kernel call: at most 3 MB of 48-byte codes (128 KB of distances); smaller
# scans use blocks down to a 1/8 of their codes, so two threads share them evenly.
BLOCK = 1 << 16
MIN_BLOCK = 1 << 14
# below this many codes a second thread costs more than it saves
PARALLEL_MIN = 1 << 15
THREADS = min(2, os.cpu_count() or 1)  # threads one search scans with (above PARALLEL_MIN)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The second scanning thread is edgembed's own, not simsimd's OpenMP team: OpenMP
    workers spin after each call and would steal the cores onnxruntime encodes on."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="edgembed-scan")
        return _pool


class CodeScan:
    """Exact Hamming search over packed sign codes (rows of ceil(dim / 8) bytes)."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = np.ascontiguousarray(codes, np.uint8)  # no copy for the index's arrays
        self.count = len(self.codes)

    def distances(self, code: np.ndarray) -> np.ndarray:
        """Hamming distance from one packed code to every stored code (uint16)."""
        query = self._query(code)
        out = np.empty(self.count, np.uint16)
        for first, last in _Blocks(self.count):
            out[first:last] = self._block(query, first, last)
        return out

    def _query(self, code: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(code, np.uint8).reshape(1, self.codes.shape[1])

    def _block(self, query: np.ndarray, first: int, last: int) -> np.ndarray:
        """Distances of rows [first, last). The kernel releases the GIL, so two threads scan
        two blocks at once. (simsimd's `out=` is not used: in 6.x it corrupts the reference
        count of None and crashes the interpreter after a few thousand calls.)"""
        found = simsimd.cdist(query, self.codes[first:last], metric="hamming", dtype="bin8",
                              out_dtype="uint16", threads=1)
        return np.asarray(found).reshape(-1)

    def nearest(self, code: np.ndarray, count: int,
                threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the `count` codes nearest to `code`, plus every code tied with the last
        of them, sorted by distance (row order among equals); and their distances.

        With two threads, each takes the next unscanned block until none is left, rather
        than a fixed half: when one core is slower (an efficiency core, a busy hyper-thread
        sibling, a virtual CPU the host is short of) the other scans more, and a search
        whose helper thread is still busy with another search scans alone, without waiting
        for it."""
        query = self._query(code)
        blocks = _Blocks(self.count)
        if threads > 1 and self.count >= PARALLEL_MIN:
            other = _executor().submit(self._nearest_in, query, count, blocks)
            mine = self._nearest_in(query, count, blocks)
            parts = [mine] if other.cancel() else [other.result(), mine]
            rows, distances = (np.concatenate(pair) for pair in zip(*parts, strict=True))
        else:
            rows, distances = self._nearest_in(query, count, blocks)
        return nearest_rows(distances, count, rows)

    def _nearest_in(self, query: np.ndarray, count: int,
                    blocks: _Blocks) -> tuple[np.ndarray, np.ndarray]:
        """Candidates among the blocks this thread takes: every row within the `count`-th
        smallest distance it has seen so far, a bound that only tightens, so no row of the
        true `count` nearest (or their ties) is ever dropped; few blocks' worth survive."""
        rows, distances = [], []
        bound = None
        kept = 0
        for first, last in blocks:
            total = self._block(query, first, last)
            if bound is None:
                if kept + len(total) < count:  # too few yet: keep them all
                    rows.append(np.arange(first, last))
                    distances.append(total)
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


class _Blocks:
    """The row ranges [first, last) of one scan, handed out one at a time to whichever
    thread asks next."""

    def __init__(self, count: int) -> None:
        self.size = min(BLOCK, max(MIN_BLOCK, -(-count // 8)))
        self._starts = iter(range(0, count, self.size))
        self._count = count
        self._lock = threading.Lock()

    def __iter__(self) -> _Blocks:
        return self

    def __next__(self) -> tuple[int, int]:
        with self._lock:
            first = next(self._starts)
        return first, min(self._count, first + self.size)


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
