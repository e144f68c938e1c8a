"""Index saves survive SIGKILL at any moment: afterwards the index opens with the old or the
new content, and its documents and vectors agree."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from index_workload import CRASH_POINTS, apply_round, check_consistent

from edgembed import Index

WORKLOAD = Path(__file__).parents[1] / "index_workload.py"
KILLS = 24


def start_writer(path: Path, log: Path, *extra: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, str(WORKLOAD), str(path), str(log), *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        pytest.fail(f"writer did not start: {line!r} {process.stderr.read()}")
    return process


def last_logged(log: Path) -> int:
    lines = log.read_text().split() if log.exists() else []
    return int(lines[-1]) if lines else 0


def reopen_and_check(path: Path, encoder) -> int:
    """Open as a writer (the dead writer's lock must be gone), check, return the round."""
    index = Index.open(path, encoder=encoder)
    try:
        rounds = check_consistent(index)
        assert rounds is not None
        assert index.store.all_keys() == index._keys.tolist()
        if rounds:
            probe = f"r{rounds}-0"
            from index_workload import doc_vector
            assert index.search_vectors(doc_vector(probe), k=3)[0][0].id == probe
        index.begin_write()  # the lock of a killed writer is free
    finally:
        index.close()
    return rounds


@pytest.fixture
def empty_index(tmp_path, default_encoder) -> Path:
    path = tmp_path / "index"
    Index.create(path, default_encoder).close()
    return path


def test_sigkill_at_random_points_leaves_old_or_new_content(empty_index, tmp_path,
                                                            default_encoder):
    log = tmp_path / "rounds.log"
    rng = random.Random(20261127)
    outcomes = {"old": 0, "new": 0}
    for _ in range(KILLS):
        writer = start_writer(empty_index, log)
        time.sleep(rng.uniform(0.0, 0.35))
        writer.kill()
        writer.wait()
        logged = last_logged(log)
        rounds = reopen_and_check(empty_index, default_encoder)
        # the log is written after save() returns: a kill in between shows one round more
        assert rounds in (logged, logged + 1), (rounds, logged)
        outcomes["old" if rounds == logged else "new"] += 1
        if rounds == logged + 1:
            with open(log, "a") as handle:
                handle.write(f"{rounds}\n")
    assert last_logged(log) >= KILLS // 2  # the kills struck all through many saves
    print(f"\n{KILLS} kills, rounds saved: {last_logged(log)}, outcomes: {outcomes}")


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_at_each_step_of_save(empty_index, tmp_path, default_encoder, point):
    with Index.open(empty_index, encoder=default_encoder) as index:
        for r in (1, 2, 3):
            apply_round(index, r)
    writer = start_writer(empty_index, tmp_path / "log", point)
    assert writer.wait(timeout=60) == 9
    expected = 4 if point == "after-commit" else 3  # the commit is the switch
    assert reopen_and_check(empty_index, default_encoder) == expected
    with Index.open(empty_index, encoder=default_encoder) as index:  # the next save tidies
        apply_round(index, expected + 1, save=False)
    folders = sorted(p.name for p in empty_index.iterdir() if p.is_dir())
    index = Index.open(empty_index, encoder=default_encoder, view=True)
    assert folders == [f"gen-{index._state.generation}"]
    assert check_consistent(index) == expected + 1
