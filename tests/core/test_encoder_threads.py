"""One Encoder shared by threads: concurrent calls run in parallel and give each caller
exactly the rows it would get alone."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

THREADS = 6
ROUNDS = 3


def test_concurrent_encode_matches_single_threaded(default_encoder, sentences):
    """Each thread encodes its own texts, so its batches are the same as when encoded alone:
    even the batch-dependent dynamic int8 package must then give identical rows."""
    work = [[f"{sentences[(7 * t + i) % len(sentences)]} ({t})" for i in range(24 + 5 * t)]
            for t in range(THREADS)]
    expected = [default_encoder.encode(texts, batch_size=8) for texts in work]
    start = threading.Barrier(THREADS)

    def run(t: int) -> list[np.ndarray]:
        start.wait()
        results = []
        for round_ in range(ROUNDS):
            if (t + round_) % 2:
                results.append(default_encoder.encode(work[t], batch_size=8))
            else:
                chunks = default_encoder.encode_iter(iter(work[t]), batch_size=8)
                results.append(np.concatenate(list(chunks)))
        return results

    with ThreadPoolExecutor(THREADS) as pool:
        outputs = list(pool.map(run, range(THREADS)))
    for t, results in enumerate(outputs):
        for result in results:
            assert np.array_equal(result, expected[t]), t


def test_concurrent_single_texts_and_errors_do_not_interfere(default_encoder):
    """Threads mixing good calls and calls that fail on a bad item: failures stay with their
    caller and good calls keep their results."""
    texts = [f"query number {i}" for i in range(THREADS * 4)]
    expected = {text: default_encoder.encode(text) for text in texts}

    def run(i: int) -> tuple[str, np.ndarray | str]:
        text = texts[i]
        if i % 3 == 0:
            try:
                default_encoder.encode([text, None])
            except TypeError as exc:
                return text, str(exc)
        return text, default_encoder.encode(text)

    with ThreadPoolExecutor(THREADS) as pool:
        for i, (text, result) in enumerate(pool.map(run, range(len(texts)))):
            if i % 3 == 0:
                assert result == "texts[1] is NoneType, expected str"
            else:
                assert np.array_equal(result, expected[text])
