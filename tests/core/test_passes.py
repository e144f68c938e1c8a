"""Batches are split into forward passes of bounded padded tokens, without changing results
beyond float rounding: the default package's int8 is per token, so a row never depends on
its pass-mates; only the padded width changes, which moves the last bits of a few sums.
With parallel passes, several passes run side by side on a single-thread session."""

from __future__ import annotations

import itertools
import multiprocessing
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


def _threads_of(session) -> int:
    return session.get_session_options().intra_op_num_threads


def test_int8_packages_run_passes_side_by_side(sentences):
    """The default (int8) package on two threads: its one session runs on one thread, and a
    call of several passes runs them on it from the encoder's two worker threads, each
    within one thread's budget, giving the serial path's vectors in input order. No second
    session is made for it (one copy of the model in memory)."""
    texts = _mixed_texts(sentences)
    parallel = Encoder.load(threads=2)
    assert parallel.parallel_passes and _threads_of(parallel.session) == 1
    sessions: list = []
    workers: set = set()
    shapes = _counting(parallel, sessions, workers)
    vectors = parallel.encode(texts, batch_size=32)
    assert sum(count for count, _ in shapes) == len(texts)
    assert all(count * width <= PASS_TOKENS_PER_THREAD or count == 1 for count, width in shapes)
    assert {id(session) for session in sessions} == {id(parallel.session)}
    assert len(workers) == 2 and threading.get_ident() not in workers
    serial = Encoder.load(threads=2, parallel_passes=False)
    assert _threads_of(serial.session) == 2
    agreement = cosines(vectors, serial.encode(texts, batch_size=32))
    assert agreement.min() > 0.9999, (agreement.min(), cpu_note())


def test_a_few_texts_make_a_pass_per_thread(sentences):
    """Texts that fit one pass's budget are still split over the threads: two short texts
    are two passes side by side, three threads' worth of texts three passes."""
    two = Encoder.load(threads=2)
    shapes = _counting(two)
    two.encode(sentences[:2])
    assert sorted(count for count, _ in shapes) == [1, 1]
    shapes.clear()
    two.encode(sentences[:5])
    assert sorted(count for count, _ in shapes) == [2, 3]
    three = Encoder.load(threads=3)
    shapes = _counting(three)
    three.encode(sentences[:6])
    assert [count for count, _ in shapes] == [2, 2, 2]


def test_a_lone_text_runs_on_the_one_session(sentences):
    """A lone text, short or long, is one pass on the encoder's single-thread session: no
    second session, so no second copy of the model, is ever made."""
    encoder = Encoder.load(threads=2)
    sessions: list = []
    _counting(encoder, sessions)
    short, long_text = sentences[0], " ".join(sentences[:30])
    assert encoder.count_tokens(long_text)[0] == encoder.max_seq_length
    encoder.encode(short)
    encoder.encode([long_text])
    assert sessions == [encoder.session, encoder.session]
    assert [name for name in vars(encoder) if "session" in name] == ["session"]
    serial = Encoder.load(threads=2, parallel_passes=False)
    agreement = cosines(encoder.encode([short, long_text]), serial.encode([short, long_text]))
    assert agreement.min() > 0.9999, (agreement.min(), cpu_note())


def _encode_in_child(queue) -> None:
    queue.put(_FORKED.encode(["one text", "another text", "a third"]).shape)


_FORKED: Encoder | None = None


def test_a_forked_process_runs_its_own_passes(sentences):
    """The worker threads do not survive fork: a child process that encodes with the
    parent's encoder gets threads of its own instead of waiting for ones that are gone."""
    global _FORKED
    _FORKED = Encoder.load(threads=2)
    _FORKED.encode(sentences[:8])  # the parent's worker threads exist
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_encode_in_child, args=(queue,))
    child.start()
    child.join(timeout=120)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, child.exitcode
    assert queue.get(timeout=5) == (3, _FORKED.dim)
    _FORKED = None


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
