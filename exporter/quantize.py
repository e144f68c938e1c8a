"""Weight quantization of the exported graph with onnxruntime.quantization."""

from __future__ import annotations

import fnmatch
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import onnx

from edgembed.errors import ExportError

METHODS = ("none", "int8-dynamic")


def matching_nodes(model: onnx.ModelProto, patterns: Sequence[str]) -> list[str]:
    """Node names matching any glob pattern, e.g. '*/output/dense/MatMul' for FFN outputs."""
    return [node.name for node in model.graph.node
            if any(fnmatch.fnmatchcase(node.name, pattern) for pattern in patterns)]


def quantize(model: onnx.ModelProto, method: str,
             exclude: Sequence[str] = ()) -> tuple[onnx.ModelProto, dict]:
    """Return the quantized graph and a description of what was done, for the manifest.

    int8-dynamic is per-channel: one scale per output channel of each weight matrix keeps
    the few large-magnitude channels of MiniLM from crushing the resolution of the rest."""
    if method not in METHODS:
        raise ExportError(f"quantize must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "none":
        return model, {"method": "none", "weights": "float32"}
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = matching_nodes(model, exclude)
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs every skipped node
    with tempfile.TemporaryDirectory(prefix="edgembed-quant-") as workdir:
        output = Path(workdir) / "model.onnx"
        quantize_dynamic(model, output, per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gather"], nodes_to_exclude=excluded,
                         extra_options={"MatMulConstBOnly": True})
        quantized = onnx.load(str(output))
    details = {"method": method, "weights": "int8", "activations": "uint8 (dynamic)",
               "per_channel": True, "op_types": ["MatMul", "Gather"],
               "excluded_patterns": list(exclude), "excluded_nodes": excluded}
    return quantized, details
