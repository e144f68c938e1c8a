"""What the written graph asks of a backend, for the manifest's `quantization.graph`: opset,
non-standard operators, whether activation scales are computed at run time, and per
quantized node its weight and activation bit widths.

The runtime has no `onnx` to read graphs with, so `edgembed info` reads this record to say
which backends and devices a package suits (edgembed.targets). It is taken from the
final graph, after quantization and shape fixing, so it describes what is shipped."""

from __future__ import annotations

from collections import Counter
from typing import Any

import onnx

STANDARD_DOMAINS = ("", "ai.onnx")
_BITS = {onnx.TensorProto.UINT8: (8, False), onnx.TensorProto.INT8: (8, True),
         onnx.TensorProto.UINT16: (16, False), onnx.TensorProto.INT16: (16, True),
         onnx.TensorProto.UINT4: (4, False), onnx.TensorProto.INT4: (4, True)}
# the compute operators quantization applies to; Add, Shape, ... reading a dequantized
# value compute in float
COMPUTE_OPS = ("MatMul", "Gemm", "Conv", "Gather")


def _label(record: dict[str, Any]) -> str:
    """'a8 w8', 'a16 w8', 'a8 a16' (two activations), 'w8' (weight-only, e.g. a Gather)."""
    parts = [f"a{bits}" for bits in record.get("activation_bits", [])]
    if "weight_bits" in record:
        parts.append(f"w{record['weight_bits']}")
    return " ".join(parts)


def quantized_nodes(model: onnx.ModelProto) -> list[dict[str, Any]]:
    """Per compute node (COMPUTE_OPS) that reads a DequantizeLinear output: its weight bits
    and per-channel flag, and its activation inputs' bits."""
    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    constants = {init.name: init for init in graph.initializer}
    records = []
    for node in graph.node:
        if node.op_type not in COMPUTE_OPS:
            continue
        record: dict[str, Any] = {"node": node.name, "op": node.op_type}
        for name in node.input:
            dequantize = producers.get(name)
            if dequantize is None or dequantize.op_type != "DequantizeLinear":
                continue
            codes = dequantize.input[0]
            zero_point = constants.get(dequantize.input[2]) if len(dequantize.input) > 2 else None
            if codes in constants:
                bits, _ = _BITS.get(constants[codes].data_type, (32, True))
                scale = constants.get(dequantize.input[1])
                per_channel = scale is not None and len(scale.dims) > 0 and scale.dims[0] > 1
                record.update(weight_bits=bits, weight_per_channel=per_channel)
            else:
                dtype = zero_point.data_type if zero_point is not None else onnx.TensorProto.UINT8
                record.setdefault("activation_bits", []).append(_BITS.get(dtype, (8, False))[0])
        if len(record) > 2:
            records.append(record)
    return records


def _dynamic_scales(model: onnx.ModelProto) -> bool:
    """True when some activation scale is computed while running (DynamicQuantizeLinear, or
    a QuantizeLinear whose scale is not a stored constant)."""
    constants = {init.name for init in model.graph.initializer}
    constants |= {output for node in model.graph.node if node.op_type == "Constant"
                  for output in node.output}
    return any(node.op_type == "DynamicQuantizeLinear"
               or (node.op_type == "QuantizeLinear" and node.input[1] not in constants)
               for node in model.graph.node)


def graph_record(model: onnx.ModelProto) -> dict[str, Any]:
    """The manifest's `quantization.graph` record of `model`."""
    nodes = quantized_nodes(model)
    activation_bits = sorted({bits for record in nodes
                              for bits in record.get("activation_bits", [])})
    return {
        "opset": next((opset.version for opset in model.opset_import
                       if opset.domain in STANDARD_DOMAINS), None),
        "non_standard_ops": sorted({f"{node.domain}:{node.op_type}" for node in model.graph.node
                                    if node.domain not in STANDARD_DOMAINS}),
        "dynamic_activation_scales": _dynamic_scales(model),
        "qdq": {"static_activation_bits": activation_bits,
                "counts": dict(sorted(Counter(f"{record['op']} {_label(record)}"
                                              for record in nodes).items())),
                "nodes": nodes},
    }
