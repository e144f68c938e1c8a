"""Append pooling, the Dense modules and L2 normalisation to the transformer graph, so the
ONNX file's only output is the final sentence embedding and no caller can pool it
differently."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgembed.errors import ExportError

from .st_modules import Dense

HIDDEN = "last_hidden_state"
OUTPUT = "sentence_embedding"


def _const(graph: onnx.GraphProto, name: str, value: np.ndarray) -> str:
    graph.initializer.append(numpy_helper.from_array(value, name))
    return name


def _dense_nodes(graph: onnx.GraphProto, pooled: str,
                 dense: Sequence[Dense]) -> tuple[list[onnx.NodeProto], str]:
    """x W + b and the activation of each Dense module, in order. The MatMuls are named,
    weight MatMuls like the transformer's, so quantization treats them alike."""
    nodes: list[onnx.NodeProto] = []
    for index, module in enumerate(dense):
        prefix = f"head/dense_{index}"
        weight, bias = module.weights()
        nodes.append(helper.make_node("MatMul", [pooled, _const(graph, f"{prefix}/weight", weight)],
                                      [f"{prefix}/matmul"], name=f"{prefix}/MatMul"))
        pooled = f"{prefix}/matmul"
        if bias is not None:
            nodes.append(helper.make_node("Add", [pooled, _const(graph, f"{prefix}/bias", bias)],
                                          [f"{prefix}/biased"], name=f"{prefix}/Add"))
            pooled = f"{prefix}/biased"
        if module.activation:
            nodes.append(helper.make_node(module.activation, [pooled], [f"{prefix}/out"],
                                          name=f"{prefix}/{module.activation}"))
            pooled = f"{prefix}/out"
    return nodes, pooled


def add_pooling_head(model: onnx.ModelProto, pooling: str, normalize: bool,
                     dim: int, keep_dims: int | None = None,
                     dense: Sequence[Dense] = ()) -> onnx.ModelProto:
    """Return a copy of `model` whose single output is `sentence_embedding` [batch, dim]
    (or [batch, keep_dims]); `dim` is the embedding's width (the last Dense module's).

    Pooling follows sentence-transformers exactly: mean over unmasked tokens (count clamped
    at 1e-9), CLS = first token, max with padded positions set to -1e9; then the `dense`
    modules; normalisation divides by max(L2 norm, 1e-12) like
    torch.nn.functional.normalize. `keep_dims` cuts the vector to its first dimensions
    before normalising (Matryoshka truncation), so the shipped vectors are unit length at
    their shipped size."""
    if keep_dims is not None and not 1 <= keep_dims <= dim:
        raise ExportError(f"cannot keep {keep_dims} of {dim} dimensions")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    if HIDDEN not in {output.name for output in graph.output}:
        raise ExportError(f"exported graph has no {HIDDEN!r} output to pool")
    one_axis = _const(graph, "head_axis_1", np.array([1], dtype=np.int64))
    last_axis = _const(graph, "head_axis_last", np.array([-1], dtype=np.int64))
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["head_mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["head_mask_f", last_axis], ["head_mask_3d"]),
    ]
    if pooling == "mean":
        nodes += [
            helper.make_node("Mul", [HIDDEN, "head_mask_3d"], ["head_masked"]),
            helper.make_node("ReduceSum", ["head_masked", one_axis], ["head_sum"], keepdims=0),
            helper.make_node("ReduceSum", ["head_mask_3d", one_axis], ["head_count"], keepdims=0),
            helper.make_node("Max", ["head_count", _const(graph, "head_min_count",
                                                          np.array(1e-9, np.float32))],
                             ["head_count_safe"]),
            helper.make_node("Div", ["head_sum", "head_count_safe"], ["head_pooled"]),
        ]
    elif pooling == "cls":
        nodes += [helper.make_node("Gather", [HIDDEN, _const(graph, "head_zero",
                                                             np.array(0, np.int64))],
                                   ["head_pooled"], axis=1)]
    elif pooling == "max":
        nodes += [
            helper.make_node("Sub", [_const(graph, "head_one", np.array(1.0, np.float32)),
                                     "head_mask_3d"], ["head_pad"]),
            helper.make_node("Mul", ["head_pad", _const(graph, "head_neg",
                                                        np.array(-1e9, np.float32))],
                             ["head_pad_neg"]),
            helper.make_node("Add", [HIDDEN, "head_pad_neg"], ["head_masked"]),
            helper.make_node("ReduceMax", ["head_masked", one_axis], ["head_pooled"], keepdims=0),
        ]
    else:
        raise ExportError(f"unknown pooling {pooling!r}")
    dense_nodes, pooled = _dense_nodes(graph, "head_pooled", dense)
    nodes += dense_nodes
    if keep_dims is not None and keep_dims < dim:
        nodes += [helper.make_node(
            "Slice", [pooled, _const(graph, "head_dims_start", np.array([0], np.int64)),
                      _const(graph, "head_dims_end", np.array([keep_dims], np.int64)),
                      last_axis], ["head_pooled_cut"])]
        pooled = "head_pooled_cut"
    if normalize:
        nodes += [
            helper.make_node("ReduceL2", [pooled, last_axis], ["head_norm"], keepdims=1),
            helper.make_node("Max", ["head_norm", _const(graph, "head_eps",
                                                         np.array(1e-12, np.float32))],
                             ["head_norm_safe"]),
            helper.make_node("Div", [pooled, "head_norm_safe"], [OUTPUT]),
        ]
    else:
        nodes += [helper.make_node("Identity", [pooled], [OUTPUT])]
    graph.node.extend(nodes)
    while graph.output:
        graph.output.pop()
    graph.output.append(helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT,
                                                      ["batch_size", keep_dims or dim]))
    onnx.checker.check_model(model)
    return model
