"""`edgembed serve`: a real HTTP client (the standard library's) against servers on loopback.

Most tests run the app in-process (uvicorn in a thread, on a port the kernel picks); one runs
the real CLI in a subprocess. Exact comparisons use the fp32 package; with the default
int8 package a text's vector equals its direct encode only up to float rounding (a pass's
padded width moves its last bits), so there the check is a cosine."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from http_calls import assert_error, call, embed, vectors_of  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgembed import Encoder, Index  # noqa: E402
from edgembed.serve.app import create_app, is_loopback  # noqa: E402
from edgembed.serve.app import running as serve_running  # noqa: E402
from edgembed.serve.requests import Limits  # noqa: E402

DOCS = ["Sourdough starter needs flour and water every day.",
        "Restart the router when the wifi keeps dropping.",
        "Cool a burn under running water for twenty minutes.",
        "The cat sleeps on the warm laptop keyboard.",
        "Tax returns are due at the end of April."]
SMALL = Limits(max_body_bytes=64 * 1024, max_inputs=16, max_k=20)


# ---------------------------------------------------------------- helpers

@contextmanager
def running(app, limits: Limits | None = None):
    """Serve `app` on a free loopback port in this process; yields the port."""
    with serve_running(app, limits=limits) as url:
        yield int(url.rsplit(":", 1)[1])


# ---------------------------------------------------------------- servers

@pytest.fixture(scope="module")
def app(default_encoder):
    return create_app(default_encoder, limits=SMALL)


@pytest.fixture(scope="module")
def port(app):
    with running(app, SMALL) as bound:
        yield bound


@pytest.fixture(scope="module")
def fp32_encoder(fp32_package) -> Encoder:
    return Encoder.load(fp32_package)


@pytest.fixture(scope="module")
def fp32_index(fp32_encoder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("server-index") / "index"
    with Index.create(folder, fp32_encoder) as index:
        index.add(DOCS, ids=[f"doc-{i}" for i in range(len(DOCS))],
                  metadata=[{"n": i} for i in range(len(DOCS))])
    opened = Index.open(folder, encoder=fp32_encoder, view=True)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def fp32_app(fp32_encoder, fp32_index):
    return create_app(fp32_encoder, fp32_index)


@pytest.fixture(scope="module")
def fp32_port(fp32_app):
    with running(fp32_app) as bound:
        yield bound


# ---------------------------------------------------------------- the OpenAI shape

def test_health(port, default_encoder):
    status, data, _ = call(port, "GET", "/health")
    assert status == 200
    assert data["status"] == "ok" and data["model"] == default_encoder.manifest.name
    assert data["dim"] == 384 and data["index"] is None
    assert data["queue_depth"] == 0 and data["uptime_s"] >= 0


def test_models_lists_the_served_model(port):
    status, data, _ = call(port, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in data["data"]] == ["all-minilm-l6-v2"]
    assert 0 < data["data"][0]["created"] <= time.time()


def test_embeddings_shape_and_usage(port, default_encoder):
    status, data = embed(port, input=["hello world", "a second, longer text"], model="any")
    assert status == 200
    assert data["object"] == "list" and data["model"] == "all-minilm-l6-v2"
    assert [row["index"] for row in data["data"]] == [0, 1]
    assert all(row["object"] == "embedding" for row in data["data"])
    expected = default_encoder.encode(["hello world", "a second, longer text"])
    got = vectors_of(data)
    assert got.shape == (2, 384)
    assert np.all(np.sum(got * expected, axis=1) > 0.99)
    tokens = sum(len(default_encoder.tokenizer.encode(t).ids)
                 for t in ["hello world", "a second, longer text"])
    assert data["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_single_string_input(port, default_encoder):
    status, data = embed(port, input="just one")
    assert status == 200 and len(data["data"]) == 1
    assert float(vectors_of(data)[0] @ default_encoder.encode("just one")) > 0.99


@pytest.mark.slow
def test_base64_round_trip(fp32_port):
    texts = ["base64 keeps every bit", "and is smaller"]
    _, floats = embed(fp32_port, input=texts)
    status, packed = embed(fp32_port, input=texts, encoding_format="base64")
    assert status == 200
    decoded = np.stack([np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4")
                        for row in packed["data"]])
    np.testing.assert_array_equal(decoded, vectors_of(floats))


@pytest.mark.slow
@pytest.mark.parametrize("dims", [1, 64, 384])
def test_dimensions(fp32_port, fp32_encoder, dims):
    status, data = embed(fp32_port, input=["matryoshka", "truncation"], dimensions=dims)
    assert status == 200
    got = vectors_of(data)
    assert got.shape == (2, dims)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, fp32_encoder.encode(["matryoshka", "truncation"],
                                                        dims=dims), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("precision,dtype", [("int8", np.int8), ("binary", np.int8),
                                             ("ubinary", np.uint8)])
def test_precisions_as_integers_and_bytes(fp32_port, fp32_encoder, precision, dtype):
    texts = ["codes, not floats", "for compact storage"]
    expected = fp32_encoder.encode(texts, precision=precision, dims=128)
    status, data = embed(fp32_port, input=texts, precision=precision, dimensions=128)
    assert status == 200
    np.testing.assert_array_equal(np.asarray([r["embedding"] for r in data["data"]]), expected)
    status, data = embed(fp32_port, input=texts, precision=precision, dimensions=128,
                         encoding_format="base64")
    decoded = np.stack([np.frombuffer(base64.b64decode(r["embedding"]), dtype=dtype)
                        for r in data["data"]])
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.filterwarnings("ignore:.*were cut before tokenizing")
def test_long_and_odd_texts(port, default_encoder):
    """A text far past the model's window, a lone surrogate, NUL and emoji: all embed."""
    texts = ["word " * 10_000, "\ud800 lone surrogate", "nul\x00byte", "🙂 emoji", ""]
    status, data = embed(port, input=texts)
    assert status == 200 and len(data["data"]) == len(texts)
    assert np.isfinite(vectors_of(data)).all()
    assert data["usage"]["prompt_tokens"] >= default_encoder.max_seq_length


# ---------------------------------------------------------------- coalescing

@pytest.mark.slow
def test_200_concurrent_requests_equal_direct_encoding(fp32_port, fp32_app, fp32_encoder):
    """Requests of 1-3 texts, float and base64, all at once: every row equals what
    Encoder.encode gives, and the worker served them in fewer encode calls than requests."""
    texts = [f"request {i}: {DOCS[i % len(DOCS)]}" + " and more" * (i % 5) for i in range(300)]
    requests, start = [], 0
    for i in range(200):
        requests.append((texts[start:start + 1 + i % 2], "base64" if i % 3 == 0 else "float"))
        start += 1 + i % 2
    barrier = threading.Barrier(len(requests))
    batches_before = fp32_app.state.batcher.batches

    def send(request: tuple[list[str], str]) -> np.ndarray:
        batch, encoding = request
        barrier.wait(timeout=60)
        status, data = embed(fp32_port, input=batch, encoding_format=encoding)
        assert status == 200, data
        if encoding == "float":
            return vectors_of(data)
        return np.stack([np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4")
                         for row in data["data"]])

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        results = list(pool.map(send, requests))
    batches = fp32_app.state.batcher.batches - batches_before
    assert batches < len(requests) / 2, f"{batches} encode calls for {len(requests)} requests"
    expected = dict(zip(texts, fp32_encoder.encode(texts), strict=True))
    for (batch, _), got in zip(requests, results, strict=True):
        np.testing.assert_allclose(got, [expected[text] for text in batch], atol=2e-6)


# ---------------------------------------------------------------- bad requests

@pytest.mark.parametrize("body,param,words", [
    ({}, "input", ["required"]),
    ({"input": []}, "input", ["empty"]),
    ({"input": 42}, "input", ["string or a list"]),
    ({"input": None}, "input", ["required"]),
    ({"input": ["ok", 7]}, "input[1]", ["input[1]", "token arrays"]),
    ({"input": ["ok", "fine", None]}, "input[2]", ["null"]),
    ({"input": [[1, 2, 3]]}, "input[0]", ["token arrays"]),
    ({"input": ["x"] * 17}, "input", ["17", "at most 16"]),
    ({"input": "x", "dimensions": 0}, "dimensions", ["between 1 and 384"]),
    ({"input": "x", "dimensions": 385}, "dimensions", ["between 1 and 384"]),
    ({"input": "x", "dimensions": "64"}, "dimensions", ["integer"]),
    ({"input": "x", "dimensions": True}, "dimensions", ["integer"]),
    ({"input": "x", "dimensions": 64.0}, "dimensions", ["integer"]),
    ({"input": "x", "dimensions": 10 ** 30}, "dimensions", ["between"]),
    ({"input": "x", "encoding_format": "float16"}, "encoding_format", ["float, base64"]),
    ({"input": "x", "encoding_format": 1}, "encoding_format", ["a number"]),
    ({"input": "x", "precision": "int4"}, "precision", ["ubinary"]),
    ({"input": "x", "kind": "passage"}, "kind", ["query"]),
    ({"input": "x", "model": 3}, "model", ["string"]),
    ({"input": "x", "dimension": 3}, "dimension", ["unknown field"]),
])
def test_bad_embedding_requests(port, body, param, words):
    status, data, _ = call(port, "POST", "/v1/embeddings", body)
    error = assert_error(status, data, 400, *words)
    assert error["param"] == param


@pytest.mark.parametrize("raw,words", [
    (b"", ["empty"]),
    (b"{not json", ["not valid JSON"]),
    (b'{"input": "x"', ["not valid JSON"]),
    (b'["input"]', ["JSON object", "array"]),
    (b'"hello"', ["JSON object"]),
    (b'{"input": "x", "dimensions": NaN}', ["not valid JSON"]),
    (b'{"input": "\xff\xfe broken utf-8"}', ["not valid JSON"]),
    (b"[" * 50_000, ["nests too deeply"]),
    (b'{"input": "x", "dimensions": ' + b"9" * 5000 + b"}", ["not valid JSON"]),
])
def test_bad_json(port, raw, words):
    status, data, _ = call(port, "POST", "/v1/embeddings", raw,
                           {"Content-Type": "application/json"})
    assert_error(status, data, 400, *words)


def test_body_too_large(port):
    body = json.dumps({"input": "a" * (SMALL.max_body_bytes + 1)})
    status, data, _ = call(port, "POST", "/v1/embeddings", body)
    assert_error(status, data, 413, str(SMALL.max_body_bytes))
    # chunked, without Content-Length: refused while streaming
    chunks = iter([b'{"input": "'] + [b"a" * 16384] * 8 + [b'"}'])
    status, data, _ = call(port, "POST", "/v1/embeddings", chunks)
    assert_error(status, data, 413, "exceeds the limit")


def test_unknown_route_and_method(port):
    status, data, _ = call(port, "GET", "/v1/nothing")
    assert_error(status, data, 404, "/v1/nothing")
    status, data, response = call(port, "GET", "/v1/embeddings")
    assert_error(status, data, 405, "GET")
    assert "POST" in response.headers["allow"]


def test_encoder_failure_is_a_500_and_the_server_lives_on(port, default_encoder, monkeypatch):
    real = default_encoder.encode_with_usage

    def failing(texts, **kwargs):
        if "explode" in texts:
            raise RuntimeError("onnxruntime fell over")
        return real(texts, **kwargs)

    monkeypatch.setattr(default_encoder, "encode_with_usage", failing)
    status, data = embed(port, input=["explode"])
    error = assert_error(status, data, 500, "internal error")
    assert "onnxruntime" not in error["message"]  # internals stay in the server log
    status, _ = embed(port, input=["still alive"])
    assert status == 200


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(
    st.sampled_from(["input", "model", "encoding_format", "dimensions", "precision", "kind",
                     "extra"]),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                 | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                 max_leaves=8)))
def test_any_json_gets_200_or_a_400_in_openai_shape(port, body):
    status, data, _ = call(port, "POST", "/v1/embeddings", body)
    if status == 200:
        assert len(data["data"]) >= 1
    else:
        assert_error(status, data, 400)


# ---------------------------------------------------------------- search

@pytest.mark.slow
def test_search_matches_the_index(fp32_port, fp32_index):
    status, data, _ = call(fp32_port, "POST", "/v1/search",
                           {"query": "my wifi keeps disconnecting", "k": 3})
    assert status == 200 and data["object"] == "list" and len(data["data"]) == 1
    hits = data["data"][0]["hits"]
    expected = fp32_index.search("my wifi keeps disconnecting", k=3)
    assert [h["id"] for h in hits] == [h.id for h in expected] and hits[0]["id"] == "doc-1"
    np.testing.assert_allclose([h["score"] for h in hits], [h.score for h in expected],
                               atol=1e-5)
    assert hits[0]["text"] == DOCS[1] and hits[0]["metadata"] == {"n": 1}
    assert data["usage"]["prompt_tokens"] > 0


@pytest.mark.slow
def test_search_several_queries_and_bad_ones(fp32_port):
    status, data, _ = call(fp32_port, "POST", "/v1/search",
                           {"query": ["burned my hand", "bread"], "k": 1, "rescore": 0})
    assert status == 200
    assert [row["hits"][0]["id"] for row in data["data"]] == ["doc-2", "doc-0"]
    for body, param in [({"query": "x", "k": 0}, "k"), ({"query": "x", "rescore": 1000},
                                                         "rescore"),
                        ({"query": []}, "query"), ({"q": "x"}, "q")]:
        status, data, _ = call(fp32_port, "POST", "/v1/search", body)
        assert assert_error(status, data, 400)["param"] == param


def test_search_without_index_is_404(port):
    status, data, _ = call(port, "POST", "/v1/search", {"query": "anything"})
    assert_error(status, data, 404, "--index")


# ---------------------------------------------------------------- the CLI and packaging

def test_cli_serve_in_a_subprocess(default_encoder):
    """The real command: port 0, the bound address printed, requests served, a clean stop."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgembed", "serve", "--port", "0", "--max-inputs", "4"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = process.stderr.readline()
        assert "serving all-minilm-l6-v2" in line and "http://127.0.0.1:" in line, line
        bound = int(line.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while True:
            try:
                status, data, _ = call(bound, "GET", "/health")
                break
            except ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert status == 200 and data["status"] == "ok"
        status, data = embed(bound, input=["served by the CLI"])
        assert status == 200
        assert float(vectors_of(data)[0] @ default_encoder.encode("served by the CLI")) > 0.99
        status, data = embed(bound, input=["a"] * 5)
        assert_error(status, data, 400, "at most 4")
        status, data, _ = call(bound, "POST", "/v1/search", {"query": "x"})
        assert_error(status, data, 404)
        process.send_signal(signal.SIGINT)  # a graceful shutdown is a normal stop
        assert process.wait(30) == 0
        rest = process.stderr.read()
        assert "Finished server process" in rest and "Traceback" not in rest, rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()


def test_cli_serve_taken_port_is_one_line(capsys):
    from edgembed.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgembed: error: cannot listen on 127.0.0.1:") and err.count("\n") == 1


def test_cli_serve_bad_limit(capsys):
    from edgembed.cli import main

    assert main(["serve", "--max-inputs", "0"]) == 2
    assert "max_inputs" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    assert "port must be in 0..65535" in capsys.readouterr().err


def test_serve_without_the_extra_says_what_to_install(monkeypatch, capsys):
    from edgembed.cli import main

    monkeypatch.delitem(sys.modules, "edgembed.serve.app", raising=False)
    for name in [n for n in sys.modules if n.split(".")[0] in ("starlette", "uvicorn")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if never installed
    monkeypatch.setitem(sys.modules, "starlette", None)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "edgembed[serve]" in err and err.count("\n") == 1


def test_importing_edgembed_does_not_import_the_server_stack():
    code = ("import sys, edgembed, edgembed.cli; "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'edgembed.serve.app') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parent)
    assert out.stdout.strip() == "[]"


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert is_loopback("127.3.4.5") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    assert not is_loopback("::") and not is_loopback("example.org")
