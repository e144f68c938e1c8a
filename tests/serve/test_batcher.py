"""The server's batcher: concurrent requests coalesced into batches and split back in
order, a failing request isolated, a full queue and a closed batcher refused."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgembed.serve.batcher import Batcher, BatcherClosed, QueueFull


def test_batcher_coalesces_and_splits_in_order():
    calls: list[int] = []
    release = threading.Event()

    def encode(texts: list[str], kind: str) -> tuple[np.ndarray, np.ndarray]:
        release.wait(10)  # hold the first batch so the rest pile up
        calls.append(len(texts))
        return np.asarray([[float(t)] for t in texts]), np.ones(len(texts), np.int64)

    batcher = Batcher(encode, max_batch=100, max_wait=0.01)
    try:
        futures = [batcher.submit([str(i), str(i + 0.5)]) for i in range(30)]
        release.set()
        for i, future in enumerate(futures):
            rows, tokens = future.result(10)
            assert rows[:, 0].tolist() == [i, i + 0.5] and tokens.tolist() == [1, 1]
        assert sum(calls) == 60 and len(calls) < 30
    finally:
        batcher.close()


def test_batcher_isolates_a_failing_request():
    def encode(texts: list[str], kind: str) -> tuple[np.ndarray, np.ndarray]:
        if "poison" in texts:
            raise ValueError("cannot encode poison")
        return np.zeros((len(texts), 2)), np.ones(len(texts), np.int64)

    batcher = Batcher(encode, max_batch=100, max_wait=0.05)
    try:
        futures = [batcher.submit(["fine"]), batcher.submit(["poison"]), batcher.submit(["ok"])]
        assert futures[0].result(10)[0].shape == (1, 2)
        with pytest.raises(ValueError, match="poison"):
            futures[1].result(10)
        assert futures[2].result(10)[0].shape == (1, 2)
        assert batcher.alive
    finally:
        batcher.close()


def test_batcher_refuses_when_full_and_after_close():
    release = threading.Event()

    def encode(texts: list[str], kind: str) -> tuple[np.ndarray, np.ndarray]:
        release.wait(10)
        return np.zeros((len(texts), 1)), np.ones(len(texts), np.int64)

    batcher = Batcher(encode, max_batch=1, max_wait=0, max_queue=3)
    try:
        running_now = batcher.submit(["a"])  # taken by the worker, blocked in encode
        deadline = time.monotonic() + 10
        while batcher.queue_depth and time.monotonic() < deadline:
            time.sleep(0.005)
        queued = batcher.submit(["b", "c"])
        with pytest.raises(QueueFull):
            batcher.submit(["d", "e"])
        release.set()
        assert running_now.result(10)[0].shape == (1, 1)
        assert queued.result(10)[0].shape == (2, 1)
    finally:
        batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit(["late"])


def test_batcher_never_mixes_prompts_in_one_batch():
    """Texts queued with different prompts are encoded in separate calls, each call with
    its own prompt; requests with the same prompt still share one."""
    calls: list[tuple[str, list[str]]] = []
    release = threading.Event()

    def encode(texts: list[str], prompt: str) -> tuple[np.ndarray, np.ndarray]:
        release.wait(10)
        calls.append((prompt, list(texts)))
        return np.asarray([[len(prompt + t)] for t in texts], float), np.ones(len(texts),
                                                                                np.int64)

    batcher = Batcher(encode, max_batch=100, max_wait=0.05)
    try:
        first = batcher.submit(["hold"], "")  # blocks the worker while the rest queue up
        prompts = ["query: ", "passage: ", "", "query: ", "classify: ", "passage: "]
        futures = [batcher.submit([f"text {i}", "x"], prompt) for i, prompt in
                   enumerate(prompts)]
        release.set()
        assert first.result(10)[0].tolist() == [[4]]
        for i, (future, prompt) in enumerate(zip(futures, prompts, strict=True)):
            assert future.result(10)[0][:, 0].tolist() == [len(prompt + f"text {i}"),
                                                           len(prompt + "x")]
        owner = {"hold": "", "x": None, **{f"text {i}": p for i, p in enumerate(prompts)}}
        for prompt, texts in calls:  # every call holds texts queued with its prompt only
            assert all(owner[text] in (prompt, None) for text in texts), (prompt, texts)
        assert len(calls) >= len(set(prompts))
    finally:
        batcher.close()
