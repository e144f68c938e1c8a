"""`edgembed index --watch`: files added, changed, renamed and deleted reach the index, by
file-system events and by polling; Ctrl-C stops cleanly; a writer killed between two
saves leaves the last saved state, and the next run catches up."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgembed import Index
from edgembed.index.ingest import IngestReport
from edgembed.index.watch import watch_paths

TIMEOUT = 120


def files_in(index_path: Path, encoder) -> set[str]:
    with Index.open(index_path, encoder=encoder, view=True) as view:
        return {Path(path).name for path in view.files()}


def keyword_hits(index_path: Path, encoder, query: str) -> set[str]:
    with Index.open(index_path, encoder=encoder, view=True) as view:
        return {Path(hit.metadata["file"]).name for hit in
                view.search(query, k=10, mode="keyword")}


@pytest.mark.parametrize("poll", [True, None], ids=["polling", "events"])
def test_watch_follows_add_change_rename_delete(tmp_path, default_encoder, poll):
    if poll is None:
        pytest.importorskip("watchfiles")
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("Apricots ripen in July.\n")
    index = Index.create(tmp_path / "index", default_encoder)
    reports: queue.Queue[IngestReport] = queue.Queue()
    stop = threading.Event()
    watcher = threading.Thread(target=watch_paths, args=(index, [folder], reports.put),
                               kwargs={"stop": stop, "poll": poll, "interval": 0.2})
    watcher.start()

    def next_report() -> IngestReport:
        return reports.get(timeout=TIMEOUT)

    try:
        assert next_report().added_files == 1
        time.sleep(0.5)  # the event watcher is running
        (folder / "b.txt").write_text("Blueberries like acid soil.\n")
        assert next_report().added_files == 1
        assert keyword_hits(index.path, default_encoder, "blueberries") == {"b.txt"}
        (folder / "a.txt").write_text("Apricots ripen in late July or August.\n")
        assert next_report().updated_files == 1
        assert keyword_hits(index.path, default_encoder, "august") == {"a.txt"}
        (folder / "b.txt").rename(folder / "berries.txt")
        moved = next_report()
        assert (moved.added_files, moved.removed_files) == (1, 1)
        assert keyword_hits(index.path, default_encoder, "blueberries") == {"berries.txt"}
        (folder / "a.txt").unlink()
        assert next_report().removed_files == 1
        assert files_in(index.path, default_encoder) == {"berries.txt"}
    finally:
        stop.set()
        watcher.join(TIMEOUT)
        index.close()
    assert not watcher.is_alive()


class Watcher:
    """`edgembed index DIR --index INDEX --watch` in a subprocess, its stderr read by a
    thread, line by line."""

    def __init__(self, folder: Path, index: Path) -> None:
        # Ctrl-C's signal reaches it even when these tests run in a background job (whose
        # children start with SIGINT ignored)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgembed", "index", str(folder), "--index", str(index),
             "--watch"], stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))

    def summary(self) -> str:
        """The next update's summary line."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            line = self.lines.get(timeout=TIMEOUT)
            if " passages in the index" in line:
                return line
        raise AssertionError("no update")


def test_ctrl_c_stops_and_a_crash_between_saves_keeps_the_last_one(tmp_path,
                                                                   default_encoder):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("Apricots ripen in July.\n")
    index = tmp_path / "index"
    watcher = Watcher(folder, index)
    assert "1 new" in watcher.summary()
    time.sleep(1.0)
    (folder / "b.txt").write_text("Blueberries like acid soil.\n")
    assert "1 new" in watcher.summary()
    watcher.process.send_signal(signal.SIGINT)  # Ctrl-C
    assert watcher.process.wait(TIMEOUT) == 0
    rest = []
    while not watcher.lines.empty():
        rest.append(watcher.lines.get())
    assert any("stopped watching" in line for line in rest), rest
    assert files_in(index, default_encoder) == {"a.txt", "b.txt"}

    # killed while it indexes a change: the index keeps the last save
    watcher = Watcher(folder, index)
    assert "2 unchanged" in watcher.summary()
    time.sleep(1.0)
    (folder / "long.txt").write_text("Cherries need cross-pollination. " * 3000)
    deadline = time.monotonic() + TIMEOUT
    while not (index / "write.lock").exists() or os.stat(index / "write.lock").st_size == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.5)  # encoding the long file's passages
    watcher.process.kill()
    watcher.process.wait(TIMEOUT)
    saved = files_in(index, default_encoder)
    assert saved in ({"a.txt", "b.txt"}, {"a.txt", "b.txt", "long.txt"})  # old or new
    with Index.open(index, encoder=default_encoder) as reopened:  # consistent, writable
        assert len(reopened.store.all_keys()) == len(reopened)
    from edgembed.index import index_paths

    with Index.open(index, encoder=default_encoder) as catching_up:
        report = index_paths(catching_up, [folder])
    assert report.added_files == (1 if saved == {"a.txt", "b.txt"} else 0)
    assert keyword_hits(index, default_encoder, "cherries") == {"long.txt"}
