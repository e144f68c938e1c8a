"""`edgembed serve` as a real process on 127.0.0.1, for what is about the network and the
process: a slow body (408), a full queue (503), `--max-connections`, `--host 0.0.0.0`,
SIGTERM with a request in flight, `--index` without `--model`, `"kind": "query"`, and the
batching options.

Requests are held in flight deterministically with `--batch-wait-ms`: the worker waits that
long for company before encoding, whatever the CPU's speed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from http_calls import assert_error, call, embed, vectors_of  # noqa: E402

from conftest import cosines, set_manifest  # noqa: E402
from edgembed import Encoder, Index  # noqa: E402

DOCS = ["Water the basil when the top of the soil is dry.",
        "The router needs a restart when the wifi keeps dropping.",
        "Change the bicycle chain every few thousand kilometres.",
        "Keep receipts for tax returns for five years.",
        "A sourdough starter wants flour and water every day."]


class Server:
    """A server subprocess, its stderr collected line by line by a thread."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self._serving = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self._serving.wait(120) and self.process.poll() is None, self.stderr
        line = next(line for line in self.lines if "serving" in line)
        self.port = int(re.search(r"http://\S+:(\d+)", line).group(1))
        wait_for(lambda: self.health() is not None, "the server answers /health")

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            if line.startswith("edgembed: serving"):
                self._serving.set()
        self._serving.set()  # the process ended before serving: the caller sees why

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def health(self) -> dict | None:
        try:
            status, data, _ = call(self.port, "GET", "/health")
        except ConnectionError:
            return None
        assert status == 200, data
        return data

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(10)


@contextmanager
def serving(*args: str, code: str | None = None) -> Iterator[Server]:
    """`edgembed serve --port 0 ARGS`, or a Python snippet that serves; stopped on exit."""
    command = [sys.executable, "-c", code] if code else \
        [sys.executable, "-m", "edgembed", "serve", "--port", "0", *args]
    server = Server(command)
    try:
        yield server
    finally:
        server.stop()


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


class Background:
    """An HTTP call in a thread: `.result` once it has answered."""

    def __init__(self, function: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = function()
            except BaseException as exc:  # noqa: BLE001 -- re-raised by join()
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self, timeout: float = 60) -> object:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the request did not finish"
        if self.error is not None:
            raise self.error
        return self.result


# ---------------------------------------------------------------- start-up

def test_host_all_interfaces_warns_and_loopback_does_not():
    with serving("--host", "0.0.0.0") as server:
        warning, serving_line = server.lines[0], server.lines[1]
        assert warning.startswith("edgembed: warning: listening on 0.0.0.0, reachable from "
                                  "other machines") and "no authentication" in warning
        assert "on http://0.0.0.0:" in serving_line
        assert server.health()["status"] == "ok"  # reachable on loopback too
    with serving() as server:
        assert server.lines[0].startswith("edgembed: serving") and "warning" not in server.stderr


# ---------------------------------------------------------------- status codes and limits

def test_slow_body_gets_408_and_other_requests_go_on():
    """A client that sends half its body and stalls gets 408 after the body timeout (30 s by
    default; 1 s here, through the same `serve` function the command calls)."""
    from edgembed.serve.requests import Limits

    assert Limits().body_timeout == 30  # what docs/server.md promises
    code = ("from edgembed.serve.app import serve\n"
            "from edgembed.serve.requests import Limits\n"
            "serve(port=0, limits=Limits(body_timeout=1.0), log_level='warning')\n")
    with serving(code=code) as server, socket.create_connection(
            ("127.0.0.1", server.port), timeout=30) as slow:
        body = json.dumps({"input": ["a text that never fully arrives"]}).encode()
        slow.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        started = time.monotonic()
        assert embed(server.port, input=["meanwhile"])[0] == 200  # the stall blocks nobody
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = slow.recv(65536)
            if not chunk:
                break
            answer += chunk
        waited = time.monotonic() - started
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        error = assert_error(408, json.loads(payload), 408, "did not arrive within 1 s")
        assert error["code"] == "timeout"
        assert 0.5 < waited < 20


def test_full_queue_gets_503_with_retry_after_over_http():
    """--max-queue 4: while a 3-text request waits for the worker (held by a long
    --batch-wait-ms), 2 more texts would make 5 waiting: 503, and the first still succeeds."""
    with serving("--max-queue", "4", "--batch-wait-ms", "3000") as server:
        first = Background(lambda: embed(server.port, input=["one", "two", "three"]))
        wait_for(lambda: server.health()["queue_depth"] == 3, "three texts are waiting")
        status, data, response = call(server.port, "POST", "/v1/embeddings",
                                      {"input": ["four", "five"]})
        error = assert_error(status, data, 503, "texts are waiting", "limit 4")
        assert error["code"] == "queue_full" and response.getheader("Retry-After") == "1"
        status, data = first.join()
        assert status == 200 and len(data["data"]) == 3
        assert server.health()["queue_depth"] == 0


def test_max_connections_counts_open_connections():
    """--max-connections 3: with two idle connections open, the third connection's request
    gets uvicorn's plain 503; once one closes, requests are served again."""
    with serving("--max-connections", "3") as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]

        try:
            wait_for(lambda: _plain_status(server.port) == 503, "the limit is reached", 20)
            assert _plain_status(server.port) == 503
            idle.pop().close()
            wait_for(lambda: _plain_status(server.port) == 200, "a connection is free", 20)
        finally:
            for sock in idle:
                sock.close()


def _plain_status(port: int) -> int:
    """The status of GET /health, whatever the body (uvicorn's 503 is plain text)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        body = response.read()
        if response.status == 503:
            assert body == b"Service Unavailable", body  # uvicorn's, not the OpenAI shape
        return response.status
    finally:
        conn.close()


# ---------------------------------------------------------------- shutdown

def test_sigterm_finishes_the_request_in_flight(default_encoder):
    """SIGTERM while a request waits in the batcher (--batch-wait-ms 5000): new connections
    are refused at once, the request in flight still gets its vectors, then the process
    exits."""
    text = "answered after the signal"
    with serving("--batch-wait-ms", "5000") as server:  # within the 10 s of grace
        in_flight = Background(lambda: embed(server.port, input=[text]))
        wait_for(lambda: server.health()["queue_depth"] == 1, "the request is in flight")
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: _refused(server.port), "the server stops taking connections", 10)
        assert in_flight.thread.is_alive()  # refused while the request is still in flight
        status, data = in_flight.join()
        assert status == 200
        assert cosines(vectors_of(data), default_encoder.encode([text]))[0] > 0.9999
        # uvicorn re-raises SIGTERM once it has finished: the status says which signal ended
        # the process (0 if a future version exits normally)
        assert server.process.wait(30) in (0, -signal.SIGTERM)
        server._reader.join(10)
        assert "Finished server process" in server.stderr and "Traceback" not in server.stderr


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


# ---------------------------------------------------------------- index and fields

@pytest.fixture(scope="module")
def notes_index(tmp_path_factory, default_encoder) -> tuple[Path, Encoder]:
    """An index built with a package of its own (another name, a query prefix), so a server
    that served the bundled package instead would show it."""
    root = tmp_path_factory.mktemp("served-index")
    package = root / "notes-model"
    shutil.copytree(default_encoder.path, package)
    set_manifest(package, name="notes-model", prefixes={"query": "query: ", "document": ""})
    encoder = Encoder.load(package)
    with Index.create(root / "index", encoder) as index:
        index.add(DOCS, ids=[f"doc-{i}" for i in range(len(DOCS))])
    return root / "index", encoder


def test_index_without_model_serves_the_index_model(notes_index):
    folder, encoder = notes_index
    with serving("--index", str(folder)) as server:
        assert f"with index {folder}" in server.lines[0]
        health = server.health()
        assert (health["model"], health["package_id"]) == ("notes-model",
                                                           encoder.package.package_id)
        assert Path(health["index"]["path"]).resolve() == folder.resolve()
        assert health["index"]["documents"] == len(DOCS)
        status, data, _ = call(server.port, "POST", "/v1/search",
                               {"query": "my internet keeps disconnecting", "k": 3})
        assert status == 200 and data["model"] == "notes-model"
        with Index.open(folder, encoder=encoder, view=True) as index:
            expected = index.search("my internet keeps disconnecting", k=3)
        assert [hit["id"] for hit in data["data"][0]["hits"]] == [hit.id for hit in expected]
        assert [hit["score"] for hit in data["data"][0]["hits"]] == \
            pytest.approx([hit.score for hit in expected], abs=1e-5)


def test_health_counts_documents_another_process_saved(notes_index, tmp_path):
    """The index is opened read-only and another process may write it: /health reports the
    documents of the last committed state, as searches see it."""
    folder, encoder = notes_index
    copy = tmp_path / "index"
    shutil.copytree(folder, copy)
    with serving("--index", str(copy)) as server:
        assert server.health()["index"]["documents"] == len(DOCS)
        with Index.open(copy, encoder=encoder) as writer:
            writer.add(["A new note about bicycles."], ids=["bike"])
        assert server.health()["index"]["documents"] == len(DOCS) + 1


def test_an_empty_index_is_served(tmp_path, default_encoder):
    with Index.create(tmp_path / "empty", default_encoder):
        pass
    with serving("--index", str(tmp_path / "empty")) as server:
        assert f"with index {tmp_path / 'empty'}" in server.lines[0]
        assert server.health()["index"]["documents"] == 0
        status, data, _ = call(server.port, "POST", "/v1/search", {"query": "anything"})
        assert status == 200 and data["data"][0]["hits"] == []


def test_kind_query_uses_the_query_prefix(notes_index):
    _, encoder = notes_index
    text = "where did the cat sleep"
    with serving("--model", str(encoder.path)) as server:
        rows = {}
        for kind in ("query", "document"):
            status, data = embed(server.port, input=[text], kind=kind)
            assert status == 200
            rows[kind] = vectors_of(data)
    for kind in ("query", "document"):
        assert cosines(rows[kind], encoder.encode([text], kind=kind))[0] > 0.9999, kind
    assert cosines(rows["query"], rows["document"])[0] < 0.99  # "query: " changes the vector


# ---------------------------------------------------------------- batching options

def test_max_batch_and_batch_wait_shape_the_batches(default_encoder):
    """--max-batch 2 --batch-wait-ms 2000: four one-text requests 200 ms apart make two
    batches (without the wait, four; without the cap, one), and a five-text request is one
    batch of its own, served whole."""
    texts = ["first text", "second text", "third text", "fourth text"]
    with serving("--max-batch", "2", "--batch-wait-ms", "2000") as server:
        before = server.health()["batches"]
        calls = []
        for text in texts:
            calls.append(Background(lambda text=text: embed(server.port, input=[text])))
            time.sleep(0.2)
        answers = [request.join() for request in calls]
        assert server.health()["batches"] - before == 2
        for text, (status, data) in zip(texts, answers, strict=True):
            assert status == 200
            assert cosines(vectors_of(data), default_encoder.encode([text]))[0] > 0.9999
        before = server.health()["batches"]
        status, data = embed(server.port, input=["a", "b", "c", "d", "e"])
        assert status == 200 and len(data["data"]) == 5
        assert server.health()["batches"] - before == 1
