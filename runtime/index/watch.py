"""`edgembed index --watch`: keep an index current while files are added, changed, moved
or deleted.

Every update is an ordinary incremental `index_paths` run, saved with the index's
crash-safe save, so a crash between two updates leaves the last saved state and the next
run catches up. Changes are noticed by file-system events (watchfiles, the `watch`
extra), which arrive in bursts while files are written and are gathered until the folder
has been quiet for a moment; where that library or the events are unavailable, the
folders are polled: a change of any indexable file's size or modification time starts an
update.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .index import Index
from .ingest import IngestReport, index_paths, walk

POLL_SECONDS = 2.0
QUIET_MS = 500  # events are gathered until none came for this long
GATHER_MS = 5000  # and for at most this long


def watch_paths(index: Index, paths: Sequence[str | Path],
                on_update: Callable[[IngestReport], None], *,
                stop: threading.Event | None = None, poll: bool | None = None,
                interval: float = POLL_SECONDS,
                on_error: Callable[[Exception], None] | None = None) -> None:
    """Bring the index up to date with `paths`, then again after every change, until
    `stop` is set or Ctrl-C (KeyboardInterrupt, left to the caller). `poll=None` uses
    file-system events when watchfiles is installed; True always polls. An update that
    fails with an edgembed error (another writer holds the index, a full disk) goes to
    `on_error` and is tried again at the next change."""
    stop = stop or threading.Event()
    on_update(index_paths(index, paths))  # a progress bar on a terminal, for a first run
    for _ in changes(paths, stop, index.path, poll, interval):
        try:
            on_update(index_paths(index, paths, show_progress=False))
        except Exception as exc:
            from ..errors import EdgembedError

            if on_error is None or not isinstance(exc, EdgembedError):
                raise
            on_error(exc)


def changes(paths: Sequence[str | Path], stop: threading.Event, ignore: Path,
            poll: bool | None = None, interval: float = POLL_SECONDS) -> Iterator[None]:
    """Yields once per burst of changes under `paths` (never for files under `ignore`, the
    index's own folder), until `stop` is set."""
    if not poll:
        try:
            import watchfiles
        except ImportError:
            if poll is False:
                raise
            print("edgembed: watching by polling every "
                  f"{interval:g} s (pip install 'edgembed[watch]' for file-system events)",
                  file=sys.stderr)
        else:
            yield from _events(watchfiles, paths, stop, ignore)
            return
    yield from _polls(paths, stop, interval)


def _events(watchfiles, paths: Sequence[str | Path], stop: threading.Event,
            ignore: Path) -> Iterator[None]:
    ignore = ignore.resolve()
    roots = [Path(p).expanduser().resolve() for p in paths]

    def relevant(change, path: str) -> bool:
        """Not the index's own files, nor hidden ones (as `walk` skips them: .git, ...)."""
        changed = Path(path)
        if changed.is_relative_to(ignore):
            return False
        for root in roots:
            if changed.is_relative_to(root):
                return not any(part.startswith(".") for part in
                               changed.relative_to(root).parts)
        return True

    for _ in watchfiles.watch(*map(str, roots), watch_filter=relevant, stop_event=stop,
                              debounce=GATHER_MS, step=QUIET_MS, raise_interrupt=True):
        yield


def _polls(paths: Sequence[str | Path], stop: threading.Event,
           interval: float) -> Iterator[None]:
    before = snapshot(paths)
    while not stop.wait(interval):
        now = snapshot(paths)
        if now != before:
            before = now
            yield


def snapshot(paths: Sequence[str | Path]) -> dict[str, tuple[int, int]]:
    """Size and modification time of every indexable file under `paths`."""
    seen = {}
    for path in walk(paths):
        try:
            stat = path.stat()
        except OSError:
            continue
        seen[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return seen
