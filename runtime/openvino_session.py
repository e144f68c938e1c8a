"""The OpenVINO backend: a package's model.onnx run by the `openvino` package (the
`openvino` extra), behind the small interface the encoder uses of an onnxruntime session
(`get_inputs`, `get_outputs`, `run`).

OpenVINO reads ONNX itself, so a package needs no conversion. What it adds over
onnxruntime is devices (Intel CPUs, GPUs and NPUs) and its own CPU kernels. NPUs compile
for fixed input shapes only: a package with dynamic axes is then padded to a few length
buckets (`static_buckets`), each compiled the first time a batch needs it and kept in
OpenVINO's model cache on disk, so the next process loads it instead of compiling again.
"""

from __future__ import annotations

import os
import queue
import re
import reprlib
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EdgembedError, ModelLoadError, reason
from .extras import require

# devices that compile for fixed input shapes only: dynamic packages get length buckets
STATIC_DEVICES = ("NPU",)
# sequence lengths a dynamic package is padded to when buckets are on: few enough that
# compiling each once stays cheap, close enough that padding wastes at most half a pass
DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512)
# the variants `edgembed export` makes that OpenVINO reads (checked by tests/core/test_openvino.py)
READABLE_VARIANTS = "--quantize none (fp32), fp16, int8-dynamic or int8-static (QDQ)"
# OpenVINO's ONNX element types, as onnxruntime names them (the encoder checks these)
_TYPES = {"i64": "tensor(int64)", "i32": "tensor(int32)", "f32": "tensor(float)",
          "f16": "tensor(float16)"}
_core: Any = None
_core_lock = threading.Lock()


def cache_dir() -> Path:
    """Where OpenVINO keeps compiled models: $XDG_CACHE_HOME/edgembed/openvino (default
    ~/.cache/edgembed/openvino); $EDGEMBED_OPENVINO_CACHE overrides it."""
    if os.environ.get("EDGEMBED_OPENVINO_CACHE"):
        return Path(os.environ["EDGEMBED_OPENVINO_CACHE"]).expanduser()
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "edgembed" / "openvino"


def core() -> Any:
    """The process's one `openvino.Core` (it loads the device plugins once)."""
    global _core
    with _core_lock:
        if _core is None:
            _core = _import_openvino().Core()
        return _core


def _import_openvino() -> Any:
    """`import openvino`, without its usage telemetry. Importing openvino starts
    openvino-telemetry, which sends events to Google Analytics unless the user has opted
    out: an offline tool must not reach the network behind its user's back. With
    openvino_telemetry unimportable during the import, OpenVINO falls back to the no-op
    stub it ships for that case."""
    if "openvino" in sys.modules or "openvino_telemetry" in sys.modules:
        return require("openvino", "openvino")  # imported by the application already
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # import → ImportError
    try:
        return require("openvino", "openvino")
    finally:
        del sys.modules["openvino_telemetry"]


def available_devices() -> list[str]:
    return list(core().available_devices)


def check_device(device: object) -> str:
    """The device name, or an EdgembedError listing those this machine has."""
    available = available_devices()
    if not isinstance(device, str):
        raise EdgembedError(f"device must be a string, got {reprlib.repr(device)}; "
                            f"available: {', '.join(available)}, AUTO")
    family = device.split(":")[0]
    if device in available or device == "AUTO" or family in ("AUTO", "HETERO", "MULTI"):
        return device
    raise EdgembedError(f"OpenVINO device {device!r} is not available on this machine; "
                        f"available: {', '.join(available)}, AUTO")


def check_buckets(buckets: object) -> tuple[int, ...] | None:
    """None (buckets off), True (DEFAULT_BUCKETS) or a sequence of positive lengths."""
    if buckets is None or buckets is False:
        return None
    if buckets is True:
        return DEFAULT_BUCKETS
    if isinstance(buckets, (list, tuple)) and buckets and all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and 1 <= n <= 8192
            for n in buckets):
        return tuple(sorted({int(n) for n in buckets}))
    raise EdgembedError("static_buckets must be True, False or a list of sequence lengths in "
                        f"1..8192, got {reprlib.repr(buckets)}")


@dataclass(frozen=True)
class Port:
    """An input or output as the encoder reads it from an onnxruntime session."""

    name: str
    type: str
    shape: list[int | str | None]


def _port(node: Any) -> Port:
    shape = [dim.get_length() if dim.is_static else None for dim in node.get_partial_shape()]
    kind = node.get_element_type().get_type_name()
    return Port(node.get_any_name(), _TYPES.get(kind, f"tensor({kind})"), shape)


def _read(model_path: Path) -> Any:
    """The ONNX graph as an `openvino.Model`, or a ModelLoadError saying which operators
    OpenVINO could not convert and which package variants it reads."""
    try:
        return core().read_model(str(model_path))
    except Exception as exc:  # openvino raises RuntimeError with a multi-line report
        raise _unreadable(model_path, exc) from None


def _unreadable(model_path: Path, exc: Exception) -> ModelLoadError:
    failed = re.search(r"Conversion is failed for: (.*)", str(exc))
    what = f"it has no conversion for {failed.group(1).strip()}" if failed else reason(exc)
    return ModelLoadError(
        f"OpenVINO cannot read {model_path}: {what}. The default package's per-token int8 "
        f"(computed in the graph) is onnxruntime-only; OpenVINO reads packages exported "
        f"with {READABLE_VARIANTS}, or load this one with backend='onnxruntime'")


class OpenVINOSession:
    """A compiled model.onnx with the methods of an onnxruntime session the encoder calls.

    Thread-safe: each `run` takes an idle infer request (or makes one), so concurrent
    callers run in parallel on the compiled model's streams."""

    backend_name = "OpenVINO"  # for run_session's error line

    def __init__(self, model_path: Path, device: str = "CPU", threads: int | None = None,
                 static_buckets: object = None) -> None:
        self.model_path = Path(model_path)
        self.device = check_device(device)
        buckets = check_buckets(static_buckets)
        static = self.device.split(":")[0] in STATIC_DEVICES and static_buckets is not False
        self.config = self._config(threads)
        self._compiled: dict[tuple[int, int] | None, Any] = {}
        self._idle: dict[tuple[int, int] | None, queue.SimpleQueue] = {}
        self._lock = threading.Lock()
        self._model: Any = None  # the read graph, kept only to compile more buckets
        if buckets is None and not static:
            # one compiled model serves every shape; compiled from the file, so that with a
            # warm cache OpenVINO loads the compiled blob without reading the ONNX graph
            graph, self.buckets = self._compile(None), None
        else:
            graph = self._model = _read(self.model_path)
            dynamic = not graph.inputs[0].get_partial_shape().is_static
            self.buckets = (buckets or DEFAULT_BUCKETS) if dynamic else None
            if self.buckets is None:  # fixed shapes: compiled once
                self._compile(None)
                self._model = None
        self._inputs = [_port(node) for node in graph.inputs]
        self._outputs = [_port(node) for node in graph.outputs]

    def _config(self, threads: int | None) -> dict[str, Any]:
        """CPU: the encoder's thread count and float32 arithmetic (OpenVINO would pick
        bfloat16 on CPUs that have it, which moves vectors further than the package's
        quantisation does). Other devices run in their own precision."""
        cache = cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgembedError(f"cannot create the OpenVINO cache folder {cache}: "
                                f"{reason(exc)}") from None
        config: dict[str, Any] = {"CACHE_DIR": str(cache), "PERFORMANCE_HINT": "LATENCY"}
        if self.device == "CPU":
            from .session import default_threads

            config["INFERENCE_NUM_THREADS"] = threads or default_threads()
            config["INFERENCE_PRECISION_HINT"] = "f32"
        return config

    def _compile(self, shape: tuple[int, int] | None) -> Any:
        """The compiled model for one padded shape (None: the package's own shapes)."""
        with self._lock:
            if shape in self._compiled:
                return self._compiled[shape]
            model = str(self.model_path) if self._model is None else self._model
            if shape is not None:
                model = self._model.clone()
                model.reshape({node.get_any_name(): list(shape) for node in model.inputs})
            try:
                compiled = core().compile_model(model, self.device, self.config)
            except Exception as exc:
                if "Conversion is failed" in str(exc):
                    raise _unreadable(self.model_path, exc) from None
                where = "" if shape is None else f" for shape {list(shape)}"
                raise ModelLoadError(f"OpenVINO cannot compile {self.model_path} on "
                                     f"{self.device}{where}: {reason(exc)}") from None
            self._compiled[shape] = compiled
            self._idle[shape] = queue.SimpleQueue()
            return compiled

    @property
    def compiled_shapes(self) -> list[tuple[int, int]]:
        """The bucket shapes compiled so far (batch, sequence), in the order compiled."""
        return [shape for shape in self._compiled if shape is not None]

    def get_inputs(self) -> list[Port]:
        return self._inputs

    def get_outputs(self) -> list[Port]:
        return self._outputs

    def _bucket(self, batch: int, length: int) -> tuple[int, int]:
        """The smallest bucket holding a pass: the next power of two of rows, the next
        listed length (or the length itself beyond the largest)."""
        assert self.buckets is not None
        rows = 1 << max(0, batch - 1).bit_length()
        return rows, next((size for size in self.buckets if size >= length), length)

    def run(self, output_names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Like `InferenceSession.run`: a list with the named outputs."""
        batch, length = next(iter(feeds.values())).shape
        shape = None if self.buckets is None else self._bucket(batch, length)
        if shape is not None and shape != (batch, length):
            feeds = {name: _pad(array, shape, name == "attention_mask")
                     for name, array in feeds.items()}
        compiled = self._compiled.get(shape) or self._compile(shape)
        idle = self._idle[shape]
        try:
            request = idle.get_nowait()
        except queue.Empty:
            request = compiled.create_infer_request()
        try:
            request.infer(feeds)
            results = [request.get_tensor(name).data[:batch].copy() for name in output_names]
        finally:
            idle.put(request)
        return results


def _pad(array: np.ndarray, shape: tuple[int, int], is_mask: bool) -> np.ndarray:
    """Zeros to the bucket's shape; a padding row's mask keeps its first token, so that
    its (discarded) mean-pooled row divides by one, not zero."""
    out = np.zeros(shape, dtype=array.dtype)
    out[:array.shape[0], :array.shape[1]] = array
    if is_mask:
        out[array.shape[0]:, 0] = 1
    return out
