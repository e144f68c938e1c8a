"""Coalescing of concurrent encode requests into batches, for the HTTP server.

One worker thread owns the encoder: requests put (texts, prompt, future) on a queue and the
worker takes what is waiting (up to `max_batch` texts, after at most `max_wait` seconds for
more), encodes each prompt's texts in one call (texts with different prompts never share
one) and splits the rows back to the requests. One
encode at a time keeps all cores on one batch instead of many small ones fighting over
them, and a batch of 32 costs far less than 32 batches of one.

A failing batch is retried request by request, so one bad request fails alone, never its
batch-mates. A full queue refuses new work (`QueueFull`) instead of growing without bound.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import EdgembedError

log = logging.getLogger(__name__)

# (texts, prompt) -> (rows aligned with texts, token count per text); the prompt is the text
# put before every input
EncodeFn = Callable[[list[str], str], tuple[np.ndarray, np.ndarray]]
_STOP = object()


class QueueFull(EdgembedError):
    """More texts are waiting than the batcher accepts; the caller should retry later."""


class BatcherClosed(EdgembedError):
    """The batcher was closed (the server is shutting down)."""


@dataclass
class _Request:
    texts: list[str]
    prompt: str
    future: Future = field(default_factory=Future)


class Batcher:
    """A background worker that encodes the texts of many requests in shared batches."""

    def __init__(self, encode: EncodeFn, max_batch: int = 64, max_wait: float = 0.002,
                 max_queue: int = 8192) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait < 0:
            raise ValueError("max_batch and max_queue must be >= 1, max_wait >= 0")
        self._encode = encode
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_queue = max_queue
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0  # texts submitted and not yet taken by the worker
        self._closed = False
        self.batches = 0  # encode calls made, for /health and tests
        self._worker = threading.Thread(target=self._loop, name="edgembed-batcher", daemon=True)
        self._worker.start()

    @property
    def queue_depth(self) -> int:
        """Texts waiting for the worker (not counting the batch being encoded)."""
        return self._pending

    @property
    def alive(self) -> bool:
        return self._worker.is_alive()

    def submit(self, texts: Sequence[str], prompt: str = "") -> Future:
        """Queue texts, to be encoded after `prompt`; the future gives (rows, token counts)
        in the order of `texts`."""
        request = _Request(list(texts), prompt)
        with self._lock:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            # an empty queue takes any request, so a request larger than max_queue still runs
            if self._pending and self._pending + len(request.texts) > self.max_queue:
                raise QueueFull(f"{self._pending} texts are waiting to be encoded "
                                f"(limit {self.max_queue}); retry later")
            self._pending += len(request.texts)
            self._queue.put(request)
        return request.future

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop taking work, finish the batch in progress, fail what is still queued."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._worker.join(timeout)

    # ------------------------------------------------------------ worker

    def _take(self) -> tuple[list[_Request], bool]:
        """Block for one request, then gather more until max_batch texts or max_wait."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch, count = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait
        stop = False
        while count < self.max_batch:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            batch.append(item)
            count += len(item.texts)
        with self._lock:
            self._pending -= count
        return batch, stop

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._take()
            try:
                self._run(batch)
            except BaseException as exc:  # never let the worker die with futures unanswered
                log.exception("batcher: unexpected failure")
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
        self._fail_remaining()

    def _fail_remaining(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and item.future.set_running_or_notify_cancel():
                item.future.set_exception(BatcherClosed("the server is shutting down"))

    def _run(self, batch: list[_Request]) -> None:
        # requests whose caller gave up (client disconnected) are skipped
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        for prompt in dict.fromkeys(r.prompt for r in live):
            group = [r for r in live if r.prompt == prompt]
            try:
                self._encode_group(group, prompt)
            except BaseException as exc:  # tokenizers' Rust panics are BaseExceptions
                if len(group) == 1:
                    group[0].future.set_exception(exc)
                    continue
                for request in group:  # isolate the request that fails
                    if request.future.done():
                        continue
                    try:
                        self._encode_group([request], prompt)
                    except BaseException as single_exc:
                        request.future.set_exception(single_exc)

    def _encode_group(self, group: list[_Request], prompt: str) -> None:
        texts = [text for request in group for text in request.texts]
        rows, tokens = self._encode(texts, prompt)
        self.batches += 1
        start = 0
        for request in group:
            end = start + len(request.texts)
            request.future.set_result((rows[start:end], tokens[start:end]))
            start = end
