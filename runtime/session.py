"""The one place that creates onnxruntime sessions: threads, providers, optimisation level.

Keeping this apart from the encoder means every caller (encoder, benchmarks, server) gets
the same tuned settings, and every onnxruntime failure is turned into an edgembed error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from .errors import EdgembedError, ModelLoadError

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


def default_threads() -> int:
    """Physical cores are the sweet spot for transformer inference; hyper-threads rarely help."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, available or 1)


def resolve_providers(providers: Sequence[str] | None) -> list[str]:
    if providers is None:
        return list(DEFAULT_PROVIDERS)
    if isinstance(providers, str):
        providers = [providers]
    available = ort.get_available_providers()
    unknown = [name for name in providers if name not in available]
    if unknown:
        raise EdgembedError(
            f"execution provider(s) {', '.join(unknown)} not available in this onnxruntime build; "
            f"available: {', '.join(available)}"
        )
    return list(providers)


def session_options(threads: int | None = None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise
    return options


def create_session(
    model_path: Path | bytes, threads: int | None = None, providers: Sequence[str] | None = None
) -> ort.InferenceSession:
    """A session on a model file (or serialised model bytes, as the exporter's search uses)."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise EdgembedError(f"threads must be a positive integer, got {threads!r}")
    chosen = resolve_providers(providers)
    try:
        return ort.InferenceSession(
            model_path if isinstance(model_path, bytes) else str(model_path),
            sess_options=session_options(threads), providers=chosen
        )
    except Exception as exc:  # onnxruntime raises several private exception types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        name = "the in-memory model" if isinstance(model_path, bytes) else model_path
        raise ModelLoadError(f"cannot load {name} with onnxruntime: {first_line}") from None
