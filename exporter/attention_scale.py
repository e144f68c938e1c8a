"""The attention's 1/sqrt(head size), moved into the query projection's weights and bias.

Exported encoders scale their attention scores at every forward pass: BERT-style graphs
multiply the queries and the keys by head_size^-1/4 each (two Muls per layer), MPNet divides
the scores by sqrt(head size) (one Div). Multiplying the query projection's weight columns
and bias by the same factor at export gives the same scores with those operators gone (on
MiniLM, 12 of 311 operators per forward pass, each one more dispatch for a short query).
The numbers change only by float rounding: the factor multiplies the weights once instead of
the activations at every pass.

Only what is proven is folded: a factor is a scalar constant (or computed from constants,
such as Sqrt(Cast(head size))); the scaled tensors feed nothing but the scores; and the
queries reach the scores from one MatMul of a stored weight plus a stored bias through
Reshape and Transpose only. Anything else stays as exported.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from .simplify import constant_node_value, remove_dead_nodes

# ops that move the query's values without changing them: a per-column factor passes through
_LAYOUT_OPS = ("Reshape", "Transpose")


def fold_attention_scales(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with each attention's score scaling folded into its query
    projection, and how many attention blocks were folded."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    opset = next((opset.version for opset in model.opset_import
                  if opset.domain in ("", "ai.onnx")), 21)
    graph = _Graph(model.graph, opset)
    folded = 0
    for scores in [node for node in model.graph.node if node.op_type == "MatMul"]:
        if graph.is_constant(scores.input[0]) or graph.is_constant(scores.input[1]):
            continue  # a projection, not the product of queries and keys
        plan = graph.scaling_of(scores)
        projection = graph.query_projection(plan.query) if plan else None
        if plan is None or projection is None:
            continue
        graph.scale_projection(*projection, plan.factor)
        graph.apply(scores, plan)
        folded += 1
    if folded:
        remove_dead_nodes(model.graph)
    return model, folded


class _Plan:
    """Where the factors of one score MatMul are, and the tensors it reads without them."""

    def __init__(self, query: str, key: str, factor: float,
                 removed: list[onnx.NodeProto], after: onnx.NodeProto | None) -> None:
        self.query, self.key, self.factor = query, key, factor
        self.removed, self.after = removed, after


class _Graph:
    """Lookups over one graph, and the edits of the fold."""

    def __init__(self, graph: onnx.GraphProto, opset: int) -> None:
        self.graph, self.opset = graph, opset
        self.initializers = {init.name: init for init in graph.initializer}
        self.producers = {output: node for node in graph.node for output in node.output}
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.outputs = {output.name for output in graph.output}
        # tensors computed from stored values only, in one pass over the (sorted) nodes
        self.constants = set(self.initializers)
        for node in graph.node:
            if node.op_type == "Constant" or node.input and all(
                    not given or given in self.constants for given in node.input):
                self.constants.update(node.output)
        self._values: dict[str, np.ndarray | None] = {}

    def is_constant(self, name: str) -> bool:
        return name in self.constants

    def value(self, name: str) -> np.ndarray | None:
        """The tensor's value when it is stored or computed from stored values only."""
        if name not in self.constants:
            return None
        if name not in self._values:
            self._values[name] = self._evaluate(name)
        return self._values[name]

    def _evaluate(self, name: str) -> np.ndarray | None:
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producers[name]
        if node.op_type == "Constant":
            return constant_node_value(node)
        inputs = {given: self.value(given) for given in node.input if given}
        if any(value is None for value in inputs.values()):
            return None
        try:
            model = _single_node_model(node, inputs, self.opset)
            results = ReferenceEvaluator(model).run(None, inputs)
        except Exception:  # noqa: BLE001 - an op the reference cannot run stays unfolded
            return None
        return np.asarray(results[list(node.output).index(name)])

    def scalar(self, name: str) -> float | None:
        value = self.value(name)
        if value is None or value.size != 1 or value.dtype.kind != "f":
            return None
        return float(value.reshape(-1)[0])

    def only_reader(self, name: str) -> onnx.NodeProto | None:
        found = self.readers.get(name, [])
        return found[0] if len(found) == 1 and name not in self.outputs else None

    def scaled_by(self, node: onnx.NodeProto | None) -> tuple[str, float] | None:
        """(x, f) when `node` is Mul(x, f), Mul(f, x) or Div(x, f) with a scalar f."""
        if node is None or node.op_type not in ("Mul", "Div") or len(node.input) != 2:
            return None
        for position, (tensor, factor) in enumerate((node.input, node.input[::-1])):
            if node.op_type == "Div" and position:
                break
            value = self.scalar(factor)
            if value is not None and not self.is_constant(tensor) and np.isfinite(value) \
                    and value != 0:
                return tensor, (1.0 / value if node.op_type == "Div" else value)
        return None

    def scaling_of(self, scores: onnx.NodeProto) -> _Plan | None:
        """The factors on the score MatMul's inputs and on its output, if any."""
        factor, removed, operands = 1.0, [], []
        for name in scores.input[:2]:
            producer = self.producers.get(name)
            found = self.scaled_by(producer) if self.only_reader(name) is scores else None
            if found:
                operands.append(found[0])
                factor *= found[1]
                removed.append(producer)
            else:
                operands.append(name)
        after = self.only_reader(scores.output[0])
        found = self.scaled_by(after)
        if found and found[0] == scores.output[0]:
            factor *= found[1]
            removed.append(after)
        else:
            after = None
        return _Plan(*operands, factor, removed, after) if removed else None

    def query_projection(self, query: str) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
        """(MatMul, Add) when `query` is Add(MatMul(x, W), b) moved by Reshape/Transpose
        only, with W a stored 2-D float weight and b a stored bias of W's width, each
        intermediate read by nothing else."""
        name = query
        if self.only_reader(name) is None:  # the queries themselves are read elsewhere too
            return None
        node = self.producers.get(name)
        while node is not None and node.op_type in _LAYOUT_OPS:
            name = node.input[0]
            if self.only_reader(name) is not node:
                return None
            node = self.producers.get(name)
        if node is None or node.op_type != "Add" or len(node.input) != 2:
            return None
        matmuls = [self.producers.get(given) for given in node.input]
        for position, matmul in enumerate(matmuls):
            if matmul is None or matmul.op_type != "MatMul" \
                    or self.only_reader(matmul.output[0]) is not node:
                continue
            weight, bias = self.value(matmul.input[1]), self.value(node.input[1 - position])
            if matmul.input[1] in self.initializers and weight is not None \
                    and weight.ndim == 2 and weight.dtype == np.float32 and bias is not None \
                    and bias.dtype == np.float32 and bias.shape == (weight.shape[1],):
                return matmul, node
        return None

    def scale_projection(self, matmul: onnx.NodeProto, add: onnx.NodeProto,
                         factor: float) -> None:
        """New weight and bias tensors (the old ones may be shared with other nodes)."""
        position = 0 if self.producers.get(add.input[1]) is matmul else 1
        weight = self.value(matmul.input[1])
        bias = self.value(add.input[position])
        scale = np.float32(factor)
        for node, index, array in ((matmul, 1, weight * scale), (add, position, bias * scale)):
            name = f"{node.output[0]}/attention_scaled"  # outputs are unique, inputs shared
            self.graph.initializer.append(numpy_helper.from_array(array.astype(np.float32), name))
            node.input[index] = name

    def apply(self, scores: onnx.NodeProto, plan: _Plan) -> None:
        scores.input[0], scores.input[1] = plan.query, plan.key
        if plan.after is not None:  # the scaled scores' name now belongs to the product
            scores.output[0] = plan.after.output[0]
        for node in plan.removed:
            self.graph.node.remove(node)


def _single_node_model(node: onnx.NodeProto, inputs: dict[str, np.ndarray],
                       opset: int) -> onnx.ModelProto:
    graph = onnx.helper.make_graph(
        [node], "constant",
        [onnx.helper.make_tensor_value_info(
            name, onnx.helper.np_dtype_to_tensor_dtype(value.dtype), value.shape)
         for name, value in inputs.items()],
        [onnx.helper.make_empty_tensor_value_info(output) for output in node.output])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
