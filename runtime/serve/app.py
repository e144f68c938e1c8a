"""`edgembed serve`: a local HTTP server with OpenAI's embeddings API, and search over an index
(an API, and a search page at `/` whose static files ship in the package).

Starlette + uvicorn (the `serve` extra), imported only here, so `import edgembed` stays slim.
Requests are parsed and checked by the pure functions of requests.py, which raise
`ApiError`; every error, ours or the framework's (404, 405), is answered in OpenAI's error
shape, and anything unexpected becomes a 500 with that shape, never a dead process.
Encoding goes through one `Batcher` worker thread, so concurrent requests share batches and
the event loop never waits on the model; parsing, quantization and JSON rendering run in
the thread pool.

Limits (all `edgembed serve` options): request body bytes (413), inputs per request (400),
texts waiting to be encoded (503 with Retry-After), open connections (503, by uvicorn),
seconds to receive a body (408). Texts longer than the model reads are truncated to its
`max_seq_length` tokens, as `Encoder.encode` does; `usage` counts the tokens it read.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import logging
import socket
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..encoder import Encoder
from ..errors import EdgembedError, QueryError
from ..index import Hit, Index
from ..index.index import index_model
from .batcher import Batcher, BatcherClosed, EncodeFn, QueueFull
from .requests import (
    ApiError,
    EmbeddingRequest,
    Limits,
    SearchRequest,
    parse_embedding_request,
    parse_json,
    parse_search_request,
    short,
)

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
STARTUP_TIMEOUT_S = 30.0  # to start `running`'s server, and to stop it
STATIC = Path(__file__).parent / "static"
# the page loads its own script and style only: nothing from elsewhere, no inline code
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
               "img-src 'self' data:; form-action 'self'; base-uri 'none'; "
               "frame-ancestors 'none'")
# indexed files the page links to: shown by the browser where it can, inert where it could
# run scripts (sandboxed, so a page from the index never runs as this server's origin)
INLINE_TYPES = {".pdf": "application/pdf", ".html": "text/html", ".htm": "text/html",
                ".xhtml": "text/html"}
DOWNLOAD_TYPES = {".docx": "application/vnd.openxmlformats-officedocument."
                           "wordprocessingml.document",
                  ".odt": "application/vnd.oasis.opendocument.text",
                  ".eml": "message/rfc822", ".mbox": "application/mbox"}


# ---------------------------------------------------------------- responses (pure)

def render(content: Any) -> bytes:
    """Compact JSON; non-ASCII stays readable unless a lone surrogate forces escapes."""
    try:
        return json.dumps(content, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_body(status: int, message: str, param: str | None = None,
               code: str | None = None) -> bytes:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return render({"error": {"message": message, "type": kind, "param": param, "code": code}})


def _usage(tokens: np.ndarray) -> dict[str, int]:
    total = int(np.sum(tokens))
    return {"prompt_tokens": total, "total_tokens": total}


def embedding_payload(vectors: np.ndarray, tokens: np.ndarray, request: EmbeddingRequest,
                      model: str) -> bytes:
    """OpenAI's embeddings response. float32 rows are JSON numbers (exact float32 values) or
    base64 of little-endian float32 bytes; other precisions are their integer codes, or
    base64 of the code bytes (int8/binary: signed bytes, ubinary: packed sign bits)."""
    if request.encoding_format == "base64":
        little = vectors.astype(vectors.dtype.newbyteorder("<"), copy=False)
        rows = [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    else:
        rows = vectors.tolist()
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    return render({"object": "list", "data": data, "model": model, "usage": _usage(tokens)})


def hits_payload(results: list[list[dict[str, Any]]], tokens: np.ndarray, model: str) -> bytes:
    data = [{"object": "search_result", "index": i, "hits": hits}
            for i, hits in enumerate(results)]
    return render({"object": "list", "data": data, "model": model, "usage": _usage(tokens)})


# ---------------------------------------------------------------- the encoder and the index

def encode_fn(encoder: Encoder) -> EncodeFn:
    """The batcher's work: float32 rows, and the tokens the model read per text (for usage)."""

    def encode(texts: list[str], prompt: str) -> tuple[np.ndarray, np.ndarray]:
        return encoder.encode_with_usage(texts, prompt=prompt)

    return encode


def quantize(encoder: Encoder, vectors: np.ndarray, precision: str,
             dims: int | None) -> np.ndarray:
    """What `encoder.encode(texts, precision=..., dims=...)` would give for these rows."""
    try:
        return encoder.convert(vectors, precision, dims)
    except EdgembedError as exc:  # e.g. int8 for a package without calibrated ranges
        raise ApiError(400, str(exc), param="precision") from None


def hit_json(hit: Hit) -> dict[str, Any]:
    row = {"id": hit.id, "score": hit.score, "text": hit.text, "metadata": hit.metadata}
    if hit.snippet is not None:
        row["snippet"] = list(hit.snippet)
    return row


def search_hits(index: Index, query: SearchRequest,
                vectors: np.ndarray | None) -> list[list[dict[str, Any]]]:
    """Hits per query, documents read from the same saved state as the vectors and keyword
    table searched (the index is safe for concurrent readers; the server never writes it)."""
    try:
        results = index.search(query.queries, query.k, mode=query.mode, rescore=query.rescore,
                               keyword_syntax=query.keyword_syntax, folder=query.folder,
                               file_types=query.file_types, snippets=query.snippets,
                               vectors=vectors)
    except QueryError as exc:
        raise ApiError(400, str(exc), param="query", code="invalid_query") from None
    return [[hit_json(hit) for hit in hits] for hits in results]


def indexed_file(index: Index, path: str) -> Response:
    """An indexed file, for the search page's links: only files in the index's table of
    indexed files, never any other path."""
    if not path or index.indexed_file(path) is None or not Path(path).is_file():
        raise ApiError(404, "no such indexed file", param="path", code="no_file")
    suffix = Path(path).suffix.lower()
    headers = {"X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; "
                                          "style-src 'unsafe-inline'"}
    if suffix == ".pdf":
        headers.pop("Content-Security-Policy")  # the browser's PDF viewer runs no page script
    if suffix in DOWNLOAD_TYPES:
        return FileResponse(path, media_type=DOWNLOAD_TYPES[suffix], headers=headers,
                            filename=Path(path).name)
    media = INLINE_TYPES.get(suffix, "text/plain; charset=utf-8")
    return FileResponse(path, media_type=media, headers=headers, content_disposition_type=
                        "inline", filename=Path(path).name)


# ---------------------------------------------------------------- the app

def _json_response(body: bytes, status: int = 200,
                   headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def read_body(request: Request, limits: Limits) -> bytes:
    """The body, refused with 413 as soon as it is known to be too large (by Content-Length,
    or while streaming a chunked body), and with 408 if it takes too long to arrive."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of "
                       f"{limits.max_body_bytes} bytes", code="request_too_large")
    chunks: list[bytes] = []
    size = 0

    async def receive() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise ApiError(413, f"request body exceeds the limit of "
                               f"{limits.max_body_bytes} bytes", code="request_too_large")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(receive(), limits.body_timeout)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {limits.body_timeout:g} s",
                       code="timeout") from None
    return b"".join(chunks)


def create_app(encoder: Encoder, index: Index | None = None,
               limits: Limits | None = None) -> Starlette:
    """The ASGI app. It starts the batcher's worker thread; the app's shutdown stops it."""
    limits = limits or Limits()
    model = encoder.manifest.name
    batcher = Batcher(encode_fn(encoder), max_batch=limits.max_batch,
                      max_wait=limits.batch_wait_ms / 1000, max_queue=limits.max_queue)
    started, loaded_at = time.monotonic(), int(time.time())

    async def encode(texts: list[str], prompt: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            future = batcher.submit(texts, prompt)
        except QueueFull as exc:
            retry = {"Retry-After": "1"}
            raise ApiError(503, str(exc), code="queue_full", headers=retry) from None
        except BatcherClosed as exc:
            raise ApiError(503, str(exc), code="shutting_down") from None
        return await asyncio.wrap_future(future)

    async def parsed(request: Request, parse: Callable[[dict[str, Any]], Any]) -> Any:
        raw = await read_body(request, limits)
        return await run_in_threadpool(lambda: parse(parse_json(raw)))

    async def embeddings(request: Request) -> Response:
        query = await parsed(request, lambda b: parse_embedding_request(
            b, encoder.dim, limits, encoder.resolve_prompt))
        vectors, tokens = await encode(query.texts, query.prompt)

        def build() -> bytes:
            rows = quantize(encoder, vectors, query.precision, query.dimensions)
            return embedding_payload(rows, tokens, query, model)

        return _json_response(await run_in_threadpool(build))

    async def search(request: Request) -> Response:
        if index is None:
            raise ApiError(404, "this server has no index; start it with "
                           "`edgembed serve --index DIR`", code="no_index")
        query = await parsed(request, lambda b: parse_search_request(
            b, limits, encoder.resolve_prompt))
        if query.mode == "keyword":
            vectors, tokens = None, np.zeros(len(query.queries), np.int64)
        else:
            vectors, tokens = await encode(query.queries, query.prompt)
        results = await run_in_threadpool(search_hits, index, query, vectors)
        return _json_response(await run_in_threadpool(hits_payload, results, tokens, model))

    def need_index() -> Index:
        if index is None:
            raise ApiError(404, "this server has no index; start it with "
                           "`edgembed serve --index DIR`", code="no_index")
        return index

    async def facets(request: Request) -> Response:
        found = await run_in_threadpool(need_index().facets)
        return _json_response(render({"object": "facets", "documents": len(need_index()),
                                      **found}))

    async def file(request: Request) -> Response:
        return await run_in_threadpool(indexed_file, need_index(),
                                       request.query_params.get("path", ""))

    async def page(request: Request) -> Response:
        need_index()
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": PAGE_POLICY})

    async def health(request: Request) -> Response:
        alive = batcher.alive
        # len follows saves by other processes (it may load a new generation): off the loop
        documents = None if index is None else await run_in_threadpool(len, index)
        body = {"status": "ok" if alive else "unavailable", "model": model,
                "package_id": encoder.package.package_id, "dim": encoder.dim,
                "max_seq_length": encoder.max_seq_length,
                "uptime_s": round(time.monotonic() - started, 3),
                "queue_depth": batcher.queue_depth, "batches": batcher.batches,
                "index": None if index is None else {"path": str(index.path),
                                                     "documents": documents}}
        return _json_response(render(body), 200 if alive else 503)

    async def models(request: Request) -> Response:
        entry = {"id": model, "object": "model", "created": loaded_at, "owned_by": "edgembed"}
        return _json_response(render({"object": "list", "data": [entry]}))

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _json_response(error_body(exc.status, exc.message, exc.param, exc.code),
                              exc.status, exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = {404: f"no such endpoint: {request.method} {short(request.url.path, 100)}",
                   405: f"method {request.method} is not allowed on {request.url.path}"}
        return _json_response(error_body(exc.status_code, message.get(exc.status_code,
                                                                      str(exc.detail))),
                              exc.status_code, exc.headers)

    async def disconnected(request: Request, exc: Exception) -> Response:
        return Response(status_code=400)  # nobody is listening; uvicorn drops it

    async def server_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, EdgembedError):  # one of ours: its message is meant to be read
            message = f"the request failed: {exc}"
        else:
            message = f"internal error ({type(exc).__name__}); see the server log"
        return _json_response(error_body(500, message), 500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(batcher.close)

    app = Starlette(
        routes=[Route("/", page, methods=["GET"]),
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
                Route("/v1/embeddings", embeddings, methods=["POST"]),
                Route("/v1/search", search, methods=["POST"]),
                Route("/v1/facets", facets, methods=["GET"]),
                Route("/v1/file", file, methods=["GET"]),
                Route("/v1/models", models, methods=["GET"]),
                Route("/health", health, methods=["GET"])],
        exception_handlers={ApiError: api_error, HTTPException: http_error,
                            ClientDisconnect: disconnected, Exception: server_error},
        lifespan=lifespan)
    app.state.batcher = batcher
    return app


# ---------------------------------------------------------------- running it

def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts, so a taken port is one clear error, not a log and exit 1."""
    if not 0 <= port <= 65535:
        raise EdgembedError(f"port must be in 0..65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise EdgembedError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise EdgembedError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def make_server(app: Starlette, limits: Limits | None = None,
                log_level: str = "info") -> uvicorn.Server:
    limits = limits or Limits()
    config = uvicorn.Config(app, log_level=log_level, access_log=log_level == "debug",
                            limit_concurrency=limits.max_connections, proxy_headers=False,
                            timeout_graceful_shutdown=10, lifespan="on")
    return uvicorn.Server(config)


@contextlib.contextmanager
def running(app: Starlette, host: str = DEFAULT_HOST, port: int = 0,
            limits: Limits | None = None) -> Iterator[str]:
    """Serve `app` from a background thread of this process until the block ends, and
    yield its base URL (`http://127.0.0.1:PORT`; port 0 lets the kernel pick a free one):
    for tests, notebooks and programs that talk to their own endpoint."""
    sock = bind_socket(host, port)
    server = make_server(app, limits, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="edgembed-serve")
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise EdgembedError(f"the server on {host}:{port} did not start")
            time.sleep(0.01)
        bound = sock.getsockname()
        shown = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
        yield f"http://{shown}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_S)
        sock.close()


def load(model: str | None = None, index: str | None = None, threads: int | None = None,
         backend: str = "onnxruntime", device: str | None = None,
         parallel_passes: bool | None = None) -> tuple[Encoder, Index | None]:
    """The encoder and the (read-only) index. Without --model an index brings its own
    model, loaded with the chosen backend, threads and passes."""
    options: dict[str, Any] = {"threads": threads, "backend": backend,
                               "parallel_passes": parallel_passes}
    if device is not None:
        options["device"] = device
    if index is None:
        return Encoder.load(model, **options), None
    encoder = Encoder.load(model or index_model(index), **options)
    opened = Index.open(index, encoder=encoder, view=True)
    return opened.encoder, opened


def serve(model: str | None = None, index: str | None = None, host: str = DEFAULT_HOST,
          port: int = DEFAULT_PORT, threads: int | None = None, limits: Limits | None = None,
          log_level: str = "info", backend: str = "onnxruntime",
          device: str | None = None, parallel_passes: bool | None = None) -> None:
    """Load, bind and serve until interrupted (Ctrl-C or SIGTERM shut down gracefully).
    `backend`, `device` and `parallel_passes` as for `Encoder.load`."""
    limits = limits or Limits()
    encoder, opened = load(model, index, threads, backend, device, parallel_passes)
    sock = bind_socket(host, port)
    if not is_loopback(host):
        print(f"edgembed: warning: listening on {host}, reachable from other machines; the "
              "server has no authentication", file=sys.stderr)
    # a cut megabyte paste is expected input here, not news worth a line per request
    warnings.filterwarnings("ignore", message=r".*were cut before tokenizing")
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if sock.family == socket.AF_INET6 else bound[0]
    print(f"edgembed: serving {encoder.manifest.name} ({encoder.dim} dims) on "
          f"http://{shown}:{bound[1]}" + (f" with index {index}" if opened is not None else ""),
          file=sys.stderr, flush=True)
    try:
        make_server(create_app(encoder, opened, limits), limits, log_level).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises Ctrl-C after its graceful shutdown: that is a normal stop
    finally:
        sock.close()
        if opened is not None:
            opened.close()
