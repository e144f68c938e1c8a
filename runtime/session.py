"""The one place that creates inference sessions: onnxruntime's (threads, providers,
optimisation level) or, with backend="openvino", OpenVINO's (`openvino_session`), which
offers the same `get_inputs` / `get_outputs` / `run` the encoder uses.

Keeping this apart from the encoder means every caller (encoder, benchmarks, server) gets
the same tuned settings, and every onnxruntime failure is turned into an edgembed error.
"""

from __future__ import annotations

import ctypes
import os
import reprlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .errors import EdgembedError, ModelLoadError, reason

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
BACKENDS = ("onnxruntime", "openvino")
# onnxruntime would try to start that many threads; more than this is a mistake, not a plan.
MAX_THREADS = 1024
# Where the exporter could not fold the attention scale into the query weights
# (`edgembed.export.attention_scale`), packages hold it as a constant (`simplify`). This
# fusion would move it into the attention MatMul: rounded differently from the graph the
# exporter validated, which flips per-token int8 codes and moves the vectors away from the
# package's quality card.
DISABLED_OPTIMIZERS = ("MatMulScaleFusion",)


def default_threads() -> int:
    """Physical cores are the sweet spot for transformer inference; hyper-threads rarely help."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, available or 1)


def resolve_providers(providers: Sequence[Any] | str | None) -> list[Any]:
    """Provider names, or (name, options) pairs for providers that take options (QNN's
    backend_type, the OpenVINO provider's device_type), as onnxruntime accepts them."""
    if providers is None:
        return list(DEFAULT_PROVIDERS)
    if isinstance(providers, str) or _is_provider_pair(providers):
        providers = [providers]
    if not isinstance(providers, (list, tuple)) or not providers \
            or not all(isinstance(item, str) or _is_provider_pair(item) for item in providers):
        raise EdgembedError("providers must be a provider name, a (name, options dict) pair, "
                            f"or a non-empty list of them, got {reprlib.repr(providers)}")
    available = ort.get_available_providers()
    unknown = [name for name in provider_names(providers) if name not in available]
    if unknown:
        raise EdgembedError(
            f"execution provider(s) {', '.join(unknown)} not available in this onnxruntime build; "
            f"available: {', '.join(available)}"
        )
    return list(providers)


def provider_names(providers: Sequence[Any]) -> list[str]:
    """The names of resolved providers (names, or (name, options) pairs)."""
    return [item if isinstance(item, str) else item[0] for item in providers]


def cpu_only(providers: Sequence[Any]) -> bool:
    """Whether resolved providers are onnxruntime's CPU one only."""
    return provider_names(providers) == ["CPUExecutionProvider"]


def _is_provider_pair(item: object) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) \
        and isinstance(item[1], dict)


def check_threads(threads: object) -> int | None:
    """None (use the default) or an int in 1..MAX_THREADS; numpy integers count, bools don't."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) \
            or not 1 <= threads <= MAX_THREADS:
        raise EdgembedError(f"threads must be an integer in 1..{MAX_THREADS}, "
                            f"got {reprlib.repr(threads)}")
    return int(threads)


def session_options(threads: int | None = None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise
    return options


def create_session(
    model_path: Path | bytes, threads: int | None = None,
    providers: Sequence[Any] | str | None = None
) -> ort.InferenceSession:
    """A session on a model file (or serialised model bytes, as the exporter's search uses)."""
    threads = check_threads(threads)
    chosen = resolve_providers(providers)
    options = session_options(threads)
    if "DmlExecutionProvider" in provider_names(chosen):
        options.enable_mem_pattern = False  # DirectML runs without memory patterns only
    try:
        session = ort_session(model_path, options, chosen)
    except Exception as exc:  # onnxruntime raises several private exception types
        name = "the in-memory model" if isinstance(model_path, bytes) else model_path
        raise ModelLoadError(f"cannot load {name} with onnxruntime: {reason(exc)}") from None
    return_freed_memory()
    return session


def return_freed_memory() -> bool:
    """Give the heap pages that are free back to the operating system; True if it could.

    Building a session parses the whole protobuf and runs the graph optimisers, then frees
    those temporaries; glibc keeps the freed pages resident, about 7 MB for MiniLM (a tenth
    of what the session itself holds). Returning them lowers the process's footprint and
    the peak it reaches once activations are allocated. Costs about a millisecond, once per
    session. Other C libraries (macOS, musl, Windows) have no malloc_trim: nothing to do."""
    trim = getattr(_c_library(), "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


def _c_library() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the symbols already loaded into this process, libc's too
    except (OSError, TypeError):  # Windows has no such handle
        return None


def ort_session(model_path: Path | bytes, options: ort.SessionOptions,
                providers: Sequence[Any]) -> ort.InferenceSession:
    """onnxruntime's session with edgembed's graph optimisations, for callers (profilers)
    that need their own options; errors are onnxruntime's own."""
    return ort.InferenceSession(model_path if isinstance(model_path, bytes) else str(model_path),
                                sess_options=options, providers=list(providers),
                                disabled_optimizers=list(DISABLED_OPTIMIZERS))


def open_session(model_path: Path, threads: int | None = None,
                 providers: Sequence[str] | None = None, backend: str = "onnxruntime",
                 device: str | None = None, static_buckets: object = None) -> Any:
    """A session of the chosen backend. `providers` are onnxruntime's way to pick hardware,
    `device` (and `static_buckets`) OpenVINO's: asking one backend for the other's is an
    error, not silently ignored."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise EdgembedError(f"backend must be one of {', '.join(BACKENDS)}, "
                            f"got {reprlib.repr(backend)}")
    threads = check_threads(threads)
    if backend == "onnxruntime":
        if device is not None or static_buckets is not None:
            raise EdgembedError("device= and static_buckets= are for backend='openvino'; "
                                "onnxruntime picks its hardware with providers=[...]")
        return create_session(model_path, threads=threads, providers=providers)
    if providers is not None:
        raise EdgembedError("providers= is for backend='onnxruntime'; OpenVINO picks its "
                            "hardware with device='CPU', 'GPU', 'NPU' or 'AUTO'")
    from .openvino_session import OpenVINOSession

    return OpenVINOSession(model_path, device="CPU" if device is None else device, threads=threads,
                           static_buckets=static_buckets)


def run_session(session: Any, output: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """One forward pass; a backend failure (a token id the model has no embedding for,
    a sequence longer than its position table, memory) becomes one EdgembedError line.
    Both backends' `run` are thread-safe, so concurrent callers need no lock."""
    try:
        return session.run([output], feeds)[0]
    except EdgembedError:
        raise
    except Exception as exc:
        shapes = ", ".join(f"{name} {list(array.shape)}" for name, array in feeds.items())
        name = getattr(session, "backend_name", "onnxruntime")
        raise EdgembedError(f"{name} failed to run the model on {shapes}: "
                            f"{reason(exc)}") from None
