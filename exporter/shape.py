"""Fixed input shapes for accelerators (NPUs) that cannot run dynamic axes."""

from __future__ import annotations

import onnx
from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

from edgembed.errors import ExportError


def parse_static_shape(text: str) -> tuple[int, int]:
    """'8x128' → (8, 128)."""
    try:
        batch, length = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ExportError(f"static shape must look like BATCHxSEQUENCE (e.g. 1x128), "
                          f"got {text!r}") from None
    if batch < 1 or length < 2:
        raise ExportError(f"static shape needs batch ≥ 1 and sequence ≥ 2, got {text!r}")
    return batch, length


def fix_shape(model: onnx.ModelProto, batch: int, length: int) -> onnx.ModelProto:
    """Return a copy whose every input is [batch, length] and whose outputs follow."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for graph_input in model.graph.input:
        make_input_shape_fixed(model.graph, graph_input.name, [batch, length])
    fix_output_shapes(model)
    return model
