"""Batches are split into forward passes of bounded padded tokens, without changing results
beyond float rounding: the default package's int8 is per token, so a row never depends on
its pass-mates; only the padded width changes, which moves the last bits of a few sums.
With parallel passes, several passes run side by side on a single-thread session."""

from __future__ import annotations

import itertools
import shutil
import threading
import time

import numpy as np
import pytest

from conftest import cosines, cpu_note, set_manifest
from edgembed import EdgembedError, Encoder
from edgembed.encoder import PASS_TOKENS_PER_THREAD


def _counting(encoder: Encoder, sessions: list | None = None,
              threads: set | None = None) -> list[tuple[int, int]]:
    """Record (texts, padded width) of every forward pass the encoder makes, and optionally
    the session and the thread that ran it."""
    shapes: list[tuple[int, int]] = []
    run = encoder._run

    def counted(ids: list[list[int]], session) -> np.ndarray:
        shapes.append((len(ids), max(map(len, ids))))
        if sessions is not None:
            sessions.append(session)
        if threads is not None:
            threads.add(threading.get_ident())
        return run(ids, session)

    encoder._run = counted
    return shapes


def test_passes_hold_at_most_the_token_budget(sentences):
    encoder = Encoder.load(threads=1)
    assert encoder._pass_tokens == PASS_TOKENS_PER_THREAD
    encoder._pass_tokens = 64
    shapes = _counting(encoder)
    long_texts = [" ".join(sentences[i:i + 6]) for i in range(0, 60, 6)]
    texts = sentences[:40] + long_texts
    vectors = encoder.encode(texts, batch_size=32)
    assert sum(count for count, _ in shapes) == len(texts)
    assert all(count * width <= 64 or count == 1 for count, width in shapes)
    assert any(count == 1 and width > 64 for count, width in shapes)  # one text over budget
    whole = Encoder.load(threads=1)
    whole._pass_tokens = 10**9
    agreement = cosines(vectors, whole.encode(texts, batch_size=32))
    assert agreement.min() > 0.9999, (agreement.min(), cpu_note())


def test_budget_scales_with_threads():
    assert Encoder.load(threads=2)._pass_tokens == 2 * PASS_TOKENS_PER_THREAD


def _mixed_texts(sentences: list[str]) -> list[str]:
    return sentences[:40] + [" ".join(sentences[i:i + 6]) for i in range(0, 60, 6)]


def test_int8_packages_run_passes_side_by_side(sentences):
    """The default (int8) package on two threads: a call of several passes runs them on the
    single-thread session, from more than one thread, each within one thread's budget, and
    gives the serial path's vectors in input order."""
    texts = _mixed_texts(sentences)
    parallel = Encoder.load(threads=2)
    assert parallel.parallel_passes and parallel._pass_session is None  # made when needed
    sessions: list = []
    workers: set = set()
    shapes = _counting(parallel, sessions, workers)
    vectors = parallel.encode(texts, batch_size=32)
    assert sum(count for count, _ in shapes) == len(texts)
    assert all(count * width <= PASS_TOKENS_PER_THREAD or count == 1 for count, width in shapes)
    assert {id(session) for session in sessions} == {id(parallel._pass_session)}
    assert len(workers) == 2 and threading.get_ident() not in workers
    serial = Encoder.load(threads=2, parallel_passes=False)
    agreement = cosines(vectors, serial.encode(texts, batch_size=32))
    assert agreement.min() > 0.9999, (agreement.min(), cpu_note())


def test_one_pass_runs_on_all_threads(sentences):
    """A single text (one pass) keeps the session with every thread: its latency is what
    intra-op threads help; no single-thread session is made for it."""
    encoder = Encoder.load(threads=2)
    sessions: list = []
    _counting(encoder, sessions)
    encoder.encode(sentences[0])
    encoder.encode(sentences[:2])
    assert sessions == [encoder.session, encoder.session]
    assert encoder._pass_session is None


def test_parallel_passes_default_follows_the_graph(tmp_path):
    """On for int8 graphs with two or more threads; off with one thread and for float graphs
    (whose operators split well over threads); an explicit choice wins where possible."""
    assert not Encoder.load(threads=1).parallel_passes
    float_graph = tmp_path / "float-manifest"
    shutil.copytree(Encoder.load().path, float_graph)
    set_manifest(float_graph, quantization={"method": "none", "weights": "float32"})
    assert not Encoder.load(float_graph, threads=2).parallel_passes
    assert Encoder.load(float_graph, threads=2, parallel_passes=True).parallel_passes
    assert not Encoder.load(threads=2, parallel_passes=False).parallel_passes


@pytest.mark.parametrize("options, message", [
    ({"threads": 1, "parallel_passes": True}, "threads of 2 or more (threads=1)"),
    ({"threads": 2, "parallel_passes": "yes"}, "parallel_passes must be True, False or None"),
])
def test_parallel_passes_refuses_what_it_cannot_do(options, message):
    with pytest.raises(EdgembedError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Encoder.load(**options)


def test_a_failing_pass_stops_the_call_and_drops_the_passes_not_started(sentences):
    """An error in one of the passes side by side reaches the caller as itself; the passes
    not yet started are dropped (not run to the end first), and the encoder still works."""
    encoder = Encoder.load(threads=2)
    texts = [f"{sentence} ({i})" for i, sentence in enumerate(sentences[:40])] * 4
    run, calls, started = encoder._run, [], itertools.count(1)

    def failing(ids, session):
        number = next(started)  # atomic: each pass gets its own number
        calls.append(number)
        time.sleep(0.005)  # passes take time, as on a slow machine
        if number == 3:
            raise EdgembedError("pass three failed")
        return run(ids, session)

    encoder._run = failing
    with pytest.raises(EdgembedError, match="pass three failed"):
        encoder.encode(texts, batch_size=8)
    at_least = len(texts) // 8  # passes of at most 8 texts
    assert len(calls) < at_least, (len(calls), at_least)
    encoder._run = run
    assert encoder.encode(texts[:4]).shape == (4, encoder.dim)
