"""The exact Hamming scan: every distance right for any code width, the nearest `count`
with all their ties in row order, the same with one thread or two."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from edgembed import codes as C
from edgembed.index import scan
from edgembed.index.scan import CodeScan, nearest_rows


def expected(codes: np.ndarray, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: distances bit by bit, all rows within the count-th, by distance then row."""
    bits = np.unpackbits(codes, axis=1) != np.unpackbits(query[None], axis=1)
    distances = bits.sum(axis=1)
    cutoff = np.sort(distances)[min(count, len(codes)) - 1]
    rows = np.flatnonzero(distances <= cutoff)
    rows = rows[np.lexsort((rows, distances[rows]))]
    return rows, distances[rows]


@pytest.mark.parametrize("nbytes", [1, 7, 8, 13, 48, 128])
def test_distances_for_any_code_width(nbytes):
    rng = np.random.default_rng(nbytes)
    codes = rng.integers(0, 256, (300, nbytes), dtype=np.uint8)
    query = rng.integers(0, 256, nbytes, dtype=np.uint8)
    assert np.array_equal(CodeScan(codes).distances(query),
                          C.hamming_distances(query, codes))


@pytest.mark.parametrize("count", [1, 10, 99, 5000])
@pytest.mark.parametrize("threads", [1, 2])
def test_nearest_keeps_every_tie_in_row_order(monkeypatch, count, threads):
    """Few distinct codes, so ties are everywhere; small blocks and a low parallel threshold
    so the per-block bound, its tightening and the two halves all run."""
    monkeypatch.setattr(scan, "BLOCK", 64)
    monkeypatch.setattr(scan, "PARALLEL_MIN", 100)
    rng = np.random.default_rng(count)
    distinct = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    codes = distinct[rng.integers(0, 40, 3000)]
    exact = CodeScan(codes)
    for query in rng.integers(0, 256, (4, 48), dtype=np.uint8):
        rows, distances = exact.nearest(query, count, threads=threads)
        want_rows, want = expected(codes, query, count)
        assert np.array_equal(rows, want_rows) and np.array_equal(distances, want)


def test_nearest_rows_of_nothing_and_of_few():
    rows, distances = nearest_rows(np.array([5, 1, 5, 3], np.uint16), 2)
    assert rows.tolist() == [1, 3] and distances.tolist() == [1, 3]
    rows, _ = nearest_rows(np.array([5, 1, 5, 3], np.uint16), 3)
    assert rows.tolist() == [1, 3, 0, 2]  # the tie at 5 comes whole
    assert len(nearest_rows(np.empty(0, np.uint16), 3)[0]) == 0
    assert len(CodeScan(np.empty((0, 48), np.uint8)).nearest(np.zeros(48, np.uint8), 3)[0]) \
        == 0


def test_a_memory_mapped_file_is_scanned_in_place(tmp_path):
    """A view-mode index scans its codes.npy where it lies: no second copy in memory."""
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 256, (500, 48), dtype=np.uint8)
    np.save(tmp_path / "codes.npy", codes)
    mapped = np.load(tmp_path / "codes.npy", mmap_mode="r")
    exact = CodeScan(mapped)
    assert np.shares_memory(exact.codes, mapped)
    query = rng.integers(0, 256, 48, dtype=np.uint8)
    rows, distances = exact.nearest(query, 5)
    want_rows, want = expected(codes, query, 5)
    assert np.array_equal(rows, want_rows) and np.array_equal(distances, want)


def test_scans_leave_the_interpreter_intact(monkeypatch):
    """simsimd's `out=` argument drops a reference to None on every call, which crashes the
    interpreter after a few thousand scans (before Python 3.12 made None immortal); a
    thousand kernel calls here must leave None's reference count where it was."""
    monkeypatch.setattr(scan, "BLOCK", 4)
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, (4_000, 6), dtype=np.uint8)
    query = rng.integers(0, 256, 6, dtype=np.uint8)
    exact = CodeScan(codes)
    before = sys.getrefcount(None)
    distances = exact.distances(query)
    assert sys.getrefcount(None) > before - 100  # the leak would take 1,000
    assert np.array_equal(distances, C.hamming_distances(query, codes))


def test_a_search_does_not_wait_for_a_busy_helper(monkeypatch):
    """With both helper threads busy (other searches), a search scans every block itself
    and returns without waiting for a helper to free up."""
    monkeypatch.setattr(scan, "BLOCK", 64)
    monkeypatch.setattr(scan, "PARALLEL_MIN", 100)
    release = threading.Event()
    timer = threading.Timer(60, release.set)  # frees the helpers even if the test fails
    timer.start()
    busy = [scan._executor().submit(release.wait) for _ in range(2)]
    try:
        rng = np.random.default_rng(5)
        codes = rng.integers(0, 256, (3000, 48), dtype=np.uint8)
        query = rng.integers(0, 256, 48, dtype=np.uint8)
        rows, distances = CodeScan(codes).nearest(query, 10, threads=2)
        assert not release.is_set()  # returned while the helpers were still blocked
        want_rows, want = expected(codes, query, 10)
        assert np.array_equal(rows, want_rows) and np.array_equal(distances, want)
    finally:
        release.set()
        timer.cancel()
        for future in busy:
            future.result()
