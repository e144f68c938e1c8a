"""Shape arithmetic decided once at export instead of at every forward pass.

The exported attention computes its reshape targets at run time (Shape → Gather →
Unsqueeze → Concat, for every query, key, value and output) and its 1/sqrt(head size) from
Shape → Slice → Cast → Sqrt. Each of these is a tiny operator that costs a short query a
dispatch (about a microsecond in onnxruntime) for no arithmetic. Where shape inference
proves the answer, it becomes a constant:
- a reshape target becomes a constant whose 0 entries copy the input's dimension at the
  same position (both are the same symbolic dimension, the batch say); one entry left
  unproven becomes -1, which the element count determines;
- a Gather or Slice of a Shape that picks only fixed-size dimensions (the head size) is
  that size; onnxruntime then folds the Cast, Sqrt and Div after it.
Nothing is changed that inference cannot prove. Outputs stay the same bit for bit under
`edgembed.session`, which keeps onnxruntime's MatMulScaleFusion off: that fusion would move
the now-constant attention scale into the MatMul, which rounds differently.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

Dim = int | str | None


def simplify_shapes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    """A copy of `model` with provable shape arithmetic made constant, and what changed."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    producers = {output: node for node in model.graph.node for output in node.output}
    reshapes = 0
    while True:  # each round lets inference name more dimensions
        dims, constants = inferred_dims(model), _constants(model.graph)
        changed = _constant_reshapes(model.graph, dims, constants, producers)
        if not changed:
            break
        reshapes += changed
    # the last round changed nothing: its inference still describes the graph
    picks = _fold_static_picks(model.graph, dims, constants, producers)
    remove_dead_nodes(model.graph)
    return model, {"reshape_targets": reshapes, "shape_picks": picks}


def inferred_dims(model: onnx.ModelProto,
                  tensors: Sequence[str] | None = None) -> dict[str, list[Dim]]:
    """Each tensor's dimensions as inference knows them: an int, a symbol, or None.
    onnxruntime's symbolic inference keeps the input's symbols (batch_size, ...) through
    the attention, where ONNX's own invents a new one at every op; the latter is the
    fallback for graphs the former cannot read. `tensors`: only these are needed, so the
    inference runs on the part of the graph that computes them (a pooling head after
    them can then not get in its way)."""
    if tensors is not None:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        del model.graph.output[:]
        model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name)
                                  for name in tensors)
        remove_dead_nodes(model.graph)
    try:
        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # noqa: BLE001 - any failure: fall back to ONNX's inference
        inferred = None
    if inferred is None:
        inferred = onnx.shape_inference.infer_shapes(model)
    dims = {}
    graph = inferred.graph
    for info in [*graph.value_info, *graph.input, *graph.output]:
        tensor = info.type.tensor_type
        if tensor.HasField("shape"):
            dims[info.name] = [d.dim_value if d.HasField("dim_value")
                               else (d.dim_param or None) for d in tensor.shape.dim]
    return dims


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if (value := constant_node_value(node)) is not None:
            values[node.output[0]] = value
    return values


def constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    """The tensor a Constant node holds as `value` (other forms, such as value_float, are
    not read: None)."""
    if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
        return numpy_helper.to_array(node.attribute[0].t)
    return None


def _fold_static_picks(graph: onnx.GraphProto, dims: dict[str, list[Dim]],
                       constants: dict[str, np.ndarray],
                       producers: dict[str, onnx.NodeProto]) -> int:
    """Gather(Shape(x), i) and Slice(Shape(x), ...) over fixed-size dimensions → constants."""
    folded = []
    outputs = {output.name for output in graph.output}
    for node in graph.node:
        shape = producers.get(node.input[0]) if node.op_type in ("Gather", "Slice") \
            and node.output[0] not in outputs else None
        if shape is None or shape.op_type != "Shape" or shape.attribute:
            continue
        known = dims.get(shape.input[0])
        positions = _picked_positions(node, constants, len(known)) if known else None
        if positions is None:
            continue
        values = [known[int(i)] for i in positions.reshape(-1)]
        if all(isinstance(value, int) and value > 0 for value in values):
            folded.append((node, np.array(values, np.int64).reshape(positions.shape)))
    for node, value in folded:
        graph.node.remove(node)
        graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
    return len(folded)


def _picked_positions(node: onnx.NodeProto, constants: dict[str, np.ndarray],
                      rank: int) -> np.ndarray | None:
    """Which entries of a rank-`rank` shape vector a Gather or Slice picks, if constant."""
    given = [constants.get(name) if name else np.array([], np.int64)
             for name in node.input[1:]]
    if any(value is None for value in given):
        return None
    positions = np.arange(rank)
    if node.op_type == "Gather":
        index = given[0]
        return positions[index] if np.all((-rank <= index) & (index < rank)) else None
    starts, ends, axes, steps = (given + [np.array([], np.int64)] * 4)[:4]
    step = int(steps.reshape(-1)[0]) if steps.size == 1 else 1
    if starts.size != 1 or ends.size != 1 or steps.size > 1 or step == 0 \
            or (axes.size and not np.all(np.isin(axes, (0, -1)))):
        return None
    return positions[int(starts.reshape(-1)[0]):int(ends.reshape(-1)[0]):step]


def _constant_reshapes(graph: onnx.GraphProto, dims: dict[str, list[Dim]],
                       constants: dict[str, np.ndarray],
                       producers: dict[str, onnx.NodeProto]) -> int:
    """Reshape targets Concat-ed from constants and dimensions of tensors that inference
    shows equal to the input's dimension at the same position → constant targets."""
    changed = 0
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        concat, source = producers.get(node.input[1]), dims.get(node.input[0])
        if concat is None or concat.op_type != "Concat" or not source \
                or any(a.name == "allowzero" and a.i for a in node.attribute):
            continue
        target = _target_entries(concat, source, dims, constants, producers)
        if target is None:
            continue
        if target.count(None) == 1 and -1 not in target:
            # the one unproven entry is what the element count leaves: -1 computes it
            target[target.index(None)] = -1
        if None in target:
            continue
        name = f"{node.name or node.output[0]}/constant_target"
        graph.initializer.append(numpy_helper.from_array(np.array(target, np.int64), name))
        node.input[1] = name
        changed += 1
    return changed


def _target_entries(concat: onnx.NodeProto, source: list[Dim],
                    dims: dict[str, list[Dim]], constants: dict[str, np.ndarray],
                    producers: dict[str, onnx.NodeProto]) -> list[int | None] | None:
    """Each entry of a Concat-ed reshape target as a constant (0: copy the input's
    dimension there), or None where that is not proven; no list at all when a piece may
    hold more than one entry (then pieces and positions no longer line up)."""
    entries: list[int | None] = []
    for position, name in enumerate(concat.input):
        value = constants.get(name)
        if value is not None:
            if value.size != 1:
                return None
            entries.append(int(value.reshape(-1)[0]))
        elif _one_dimension_of(name, producers, constants) is None:
            return None
        else:
            entries.append(0 if _copies_dimension(name, position, source, dims, constants,
                                                  producers) else None)
    return entries


def _one_dimension_of(name: str, producers: dict[str, onnx.NodeProto],
                      constants: dict[str, np.ndarray]) -> tuple[str, int] | None:
    """(x, i) when `name` is Unsqueeze(Gather(Shape(x), i)): one dimension of x."""
    unsqueeze = producers.get(name)
    gather = producers.get(unsqueeze.input[0]) if unsqueeze is not None \
        and unsqueeze.op_type == "Unsqueeze" else None
    shape = producers.get(gather.input[0]) if gather is not None \
        and gather.op_type == "Gather" else None
    index = constants.get(gather.input[1]) if shape is not None else None
    if shape is None or shape.op_type != "Shape" or shape.attribute or index is None \
            or index.ndim != 0:
        return None
    return shape.input[0], int(index.reshape(-1)[0])


def _copies_dimension(name: str, position: int, source: list[Dim],
                      dims: dict[str, list[Dim]], constants: dict[str, np.ndarray],
                      producers: dict[str, onnx.NodeProto]) -> bool:
    """Whether `name` is the dimension at `position` of a tensor whose dimension there is
    the same symbol as the reshaped input's."""
    tensor, index = _one_dimension_of(name, producers, constants) or ("", -1)
    other = dims.get(tensor) or []
    symbol = source[position] if position < len(source) else None
    return index == position and isinstance(symbol, str) and position < len(other) \
        and other[position] == symbol


def remove_dead_nodes(graph: onnx.GraphProto) -> None:
    """Drop the nodes and initializers no graph output depends on."""
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(output in needed for output in node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    used = {name for node in graph.node for name in node.input} | needed
    initializers = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
