"""`edgembed serve`: the local HTTP server (the `serve` extra, imported only when run)."""

from __future__ import annotations

import argparse

from ..errors import EdgembedError
from .backend import add_backend_options, load_options

SERVE_LIMITS = ("max_body_bytes", "max_inputs", "max_batch", "batch_wait_ms", "max_queue",
                "max_connections")


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from ..serve.app import Limits, serve
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("starlette", "uvicorn"):
            raise
        raise EdgembedError("edgembed serve needs the serve extra: "
                            "pip install 'edgembed[serve]'") from None
    options = load_options(args)  # --device without --backend openvino: refused here
    chosen = {name: getattr(args, name) for name in SERVE_LIMITS
              if getattr(args, name) is not None}
    serve(model=args.model, index=args.index, host=args.host, port=args.port,
          threads=args.threads, limits=Limits(**chosen), log_level=args.log_level,
          backend=args.backend, device=args.device,
          parallel_passes=options["parallel_passes"])
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    server = commands.add_parser("serve", help="local HTTP server: OpenAI-compatible "
                                 "/v1/embeddings, /health; with --index, /v1/search and a "
                                 "search page at /")
    server.add_argument("--model", help="model package (default: the index's, or bundled)")
    server.add_argument("--index", metavar="DIR", help="index served by /v1/search and the "
                        "search page at / (read-only)")
    server.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; others warn: no auth)")
    server.add_argument("--port", type=int, default=8000, help="default 8000; 0 picks one")
    server.add_argument("--threads", type=int, help="inference threads (default: all cores)")
    add_backend_options(server)
    server.add_argument("--max-body-bytes", type=int, metavar="N",
                        help="larger request bodies get 413 (default 4194304)")
    server.add_argument("--max-inputs", type=int, metavar="N",
                        help="texts per request (default 2048)")
    server.add_argument("--max-batch", type=int, metavar="N",
                        help="texts gathered from concurrent requests into one encode "
                        "(default 64)")
    server.add_argument("--batch-wait-ms", type=float, metavar="MS",
                        help="how long to wait for more texts before encoding (default 2)")
    server.add_argument("--max-queue", type=int, metavar="N",
                        help="texts waiting to be encoded before requests get 503 "
                        "(default 16384)")
    server.add_argument("--max-connections", type=int, metavar="N",
                        help="open connections before requests get 503 (default 512)")
    server.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"),
                        help="debug also logs every request")
    server.set_defaults(func=cmd_serve)
