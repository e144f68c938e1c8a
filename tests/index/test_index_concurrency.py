"""One writer, many readers: threads sharing an Index, processes sharing its directory."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from index_workload import (
    added,
    apply_round,
    check_consistent,
    doc_text,
    doc_vector,
    round_of,
)

from edgembed import Index
from edgembed.errors import IndexLockedError

WORKLOAD = Path(__file__).parents[1] / "index_workload.py"
BASE_ROUNDS = 6
SECONDS = 3.0


@pytest.fixture
def base_index(tmp_path, default_encoder) -> Path:
    path = tmp_path / "index"
    with Index.create(path, default_encoder) as index:
        for r in range(1, BASE_ROUNDS + 1):
            apply_round(index, r)
    return path


def stable_ids() -> list[str]:
    """Documents of the base rounds that no later round removes (even-numbered ones)."""
    return [doc_id for r in range(1, BASE_ROUNDS + 1) for doc_id in added(r)[::2]]


def check_hits(hits, probe: str) -> None:
    assert hits[0].id == probe and hits[0].score > 0.95, hits[0]
    assert len({hit.id for hit in hits}) == len(hits)
    for hit in hits:  # every hit has its own document: vectors and documents agree
        assert hit.text == doc_text(hit.id) and hit.metadata == {"round": round_of({hit.id})}


def run_threads(targets, seconds: float) -> list[BaseException]:
    """Run each target(stop) in a thread for `seconds`; the exceptions they raised."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def guarded(target):
        try:
            target(stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_four_reader_threads_and_a_writer(base_index, default_encoder):
    index = Index.open(base_index, encoder=default_encoder)
    probes = stable_ids()
    searches = [0] * 4
    rounds = [BASE_ROUNDS]

    def reader(number: int):
        def run(stop):
            rng = random.Random(number)
            while not stop.is_set():
                probe = rng.choice(probes)
                if number == 3:  # one reader searches by text, through the encoder
                    hits = index.search(doc_text(probe), k=5)
                    assert all(hit.text == doc_text(hit.id) for hit in hits)
                else:
                    check_hits(index.search_vectors(doc_vector(probe), k=5)[0], probe)
                    keys, _ = index.rank_vectors(doc_vector(probe), k=5)[0]
                    assert len(keys) == 5
                searches[number] += 1
        return run

    def writer(stop):
        while not stop.is_set():
            rounds[0] += 1
            apply_round(index, rounds[0], save=rounds[0] % 3 != 0)  # some rounds stay unsaved

    errors = run_threads([reader(i) for i in range(4)] + [writer], SECONDS)
    assert not errors, errors
    assert min(searches) > 0 and rounds[0] > BASE_ROUNDS + 2, (searches, rounds)
    index.save()
    assert check_consistent(index) == rounds[0]
    index.close()
    reopened = Index.open(base_index, encoder=default_encoder, view=True)
    assert check_consistent(reopened) == rounds[0]
    print(f"\nsearches per reader: {searches}, writer rounds: {rounds[0] - BASE_ROUNDS}")


def test_reader_processes_see_old_or_new_while_a_process_writes(base_index, tmp_path,
                                                                default_encoder):
    """Another process saves in a loop; here, fresh opens and a long-lived reader."""
    writer = subprocess.Popen([sys.executable, str(WORKLOAD), str(base_index),
                               str(tmp_path / "log")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
    long_lived = Index.open(base_index, encoder=default_encoder, view=True)
    opened, compared, seen_rounds = 0, 0, set()
    try:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            fresh = Index.open(base_index, encoder=default_encoder, view=opened % 2 == 0)
            rounds = check_consistent(fresh)
            fresh.close()
            opened += 1
            if rounds is not None:
                compared += 1
                seen_rounds.add(rounds)
            probe = random.choice(stable_ids())
            check_hits(long_lived.search_vectors(doc_vector(probe), k=5)[0], probe)
    finally:
        writer.kill()
        writer.wait()
    assert compared >= 3 and len(seen_rounds) > 1, (opened, compared, seen_rounds)
    newest = long_lived.search_vectors(doc_vector(f"r{max(seen_rounds)}-0"), k=1)[0][0]
    assert newest.id == f"r{max(seen_rounds)}-0"  # the long-lived reader followed the saves


def test_a_second_writer_is_refused_until_the_first_saves(base_index, tmp_path,
                                                          default_encoder):
    first = Index.open(base_index, encoder=default_encoder)
    second = Index.open(base_index, encoder=default_encoder)
    reader = Index.open(base_index, encoder=default_encoder, view=True)
    apply_round(first, BASE_ROUNDS + 1, save=False)
    with pytest.raises(IndexLockedError, match="another writer"):
        apply_round(second, BASE_ROUNDS + 2)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "note.txt").write_text("a note", encoding="utf-8")
    other_process = subprocess.run([sys.executable, "-m", "edgembed", "index", str(folder),
                                    "--index", str(base_index)],
                                   capture_output=True, text=True, timeout=300)
    assert other_process.returncode == 2, other_process.stderr
    assert other_process.stderr.count("\n") == 1 and "another writer (pid " in \
        other_process.stderr
    assert len(reader) == len(second)  # readers see only saved content...
    first.save()
    probe = added(BASE_ROUNDS + 1)[1]
    assert reader.search_vectors(doc_vector(probe), k=1)[0][0].id == probe  # ...now
    apply_round(second, BASE_ROUNDS + 2)  # the lock is free; second starts from first's save
    first.close()
    second.close()
    assert check_consistent(Index.open(base_index, encoder=default_encoder)) == BASE_ROUNDS + 2
    probe = added(BASE_ROUNDS + 2)[0]
    assert reader.search_vectors(doc_vector(probe), k=1)[0][0].id == probe
