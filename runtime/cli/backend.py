"""`--backend`, `--device` and `--passes`: which runtime runs the model and how, shared by
every command that loads one (embed, index, search, eval, serve)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..encoder import Encoder
from ..errors import EdgembedError
from ..session import BACKENDS

# --passes → Encoder.load's parallel_passes: "auto" leaves the choice to the package.
PASSES = {"auto": None, "parallel": True, "serial": False}


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="onnxruntime",
                        help="onnxruntime (default) or openvino (the openvino extra)")
    parser.add_argument("--device", metavar="NAME",
                        help="OpenVINO device: CPU (default), GPU, NPU or AUTO")
    parser.add_argument("--passes", choices=PASSES, default="auto",
                        help="how a call's forward passes use the threads: parallel (side by "
                        "side, one thread each: faster bulk encoding, a lone long text on "
                        "one thread), serial (one at a time, each operator split over all "
                        "threads), auto (default: parallel for int8 packages on "
                        "onnxruntime's CPU provider with 2+ threads)")


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """Encoder.load's keyword arguments for the chosen backend; --device without
    --backend openvino is refused (onnxruntime has no devices, only providers)."""
    backend = args.backend
    if args.device is not None and backend == "onnxruntime":
        raise EdgembedError("--device is for --backend openvino")
    options: dict[str, Any] = {"threads": args.threads, "backend": backend,
                               "parallel_passes": PASSES[args.passes]}
    if backend == "openvino":
        options["device"] = args.device or "CPU"
    return options


def chosen(args: argparse.Namespace) -> bool:
    """Whether a backend other than the default was asked for."""
    return args.backend != "onnxruntime" or args.device is not None


def tuned(args: argparse.Namespace) -> bool:
    """Whether any way of loading the model other than the default was asked for."""
    return chosen(args) or args.threads is not None or args.passes != "auto"


def load_encoder(args: argparse.Namespace, model: str | Path | None = None) -> Encoder:
    return Encoder.load(model, **load_options(args))


def index_encoder(args: argparse.Namespace) -> Encoder | None:
    """The encoder for a command on an existing index: --model if given; else, with a
    backend, --threads or --passes chosen, the index's own model loaded so; else None (the
    index loads its model itself)."""
    if args.model:
        return load_encoder(args, args.model)
    if not tuned(args):
        return None
    from ..index.index import META_FILE, index_model

    where = getattr(args, "index", None)
    if where is None or not (Path(where) / META_FILE).is_file():
        if chosen(args):
            raise EdgembedError("--backend/--device on an index other than an edgembed index "
                                "folder need --model (the package to load)")
        return None
    return load_encoder(args, index_model(where))
