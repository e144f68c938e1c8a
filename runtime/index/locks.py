"""The two locks behind `Index`'s one-writer, many-readers rule.

`ReadWriteLock` orders the threads of one process: searches share it, changes to the
in-memory arrays take it alone. `WriterLock` orders processes: an advisory `flock` on a file
in the index directory, held by the one process that has unsaved changes. The kernel drops
it when that process dies, even by SIGKILL, so a crashed writer never leaves the index
locked.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import IndexLockedError, IndexWriteError

try:
    import fcntl
except ImportError:  # Windows: no flock; one writer per index is then up to the caller
    fcntl = None  # type: ignore[assignment]


class ReadWriteLock:
    """Many readers or one writer. A waiting writer stops new readers from entering, so a
    stream of searches cannot starve it. Not re-entrant: hold it in one place per call."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class WriterLock:
    """An exclusive, non-blocking `flock` on `path`; the file records the holder's pid.

    flock locks belong to an open file, so a second `WriterLock` on the same path is refused
    even inside the same process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None  # a file object: garbage collection unlocks too

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        if self._file is not None:
            return
        try:
            handle = open(self.path, "a+b")  # noqa: SIM115 - held until release()
        except OSError as exc:
            raise IndexWriteError(f"cannot create the lock file {self.path}: "
                                  f"{exc.strerror or exc}") from None
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(handle.fileno())
                handle.close()
                raise IndexLockedError(
                    f"{self.path.parent} is being changed by another writer"
                    f"{f' (pid {holder})' if holder else ''}; one writer at a time: wait for "
                    "it to save or close, or open with view=True to only read") from None
        try:  # informational only: the lock is the flock, not this content
            os.ftruncate(handle.fileno(), 0)
            os.pwrite(handle.fileno(), f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        self._file = handle

    def release(self) -> None:
        if self._file is None:
            return
        handle, self._file = self._file, None
        handle.close()  # closing the file drops the flock


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
