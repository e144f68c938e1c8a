"""The attention scale moved into the query projection (`edgembed.export.attention_scale`):
on attention blocks built the way the exporters write them (BERT-style factors on queries
and keys, MPNet-style division of the scores), the folded graph has no scaling operators
left and gives the same scores up to float rounding; what is not proven stays as it was."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgembed.export.attention_scale import fold_attention_scales

HEADS, HEAD_SIZE = 2, 4
HIDDEN = HEADS * HEAD_SIZE


def _attention(form: str, *, shared_bias: bool = False, factor_from_input: bool = False,
               query_also_output: bool = False, query_bias: bool = True,
               depth: int = 0) -> onnx.ModelProto:
    """x [batch, seq, 8] → query and key projections (MatMul + bias Add) → heads → scores
    → Softmax. `form`: "query_and_key" scales both by head_size^-1/4, computed from the head
    size the way exported graphs do (Cast, Sqrt, Div, Sqrt); "scores" divides the scores by
    sqrt(head size). `shared_bias`: the key projection reads the query's bias tensor too.
    `depth`: that many operators before the attention, as in a deep encoder."""
    rng = np.random.default_rng(0)
    initializers = {
        "w_q": rng.standard_normal((HIDDEN, HIDDEN)), "w_k": rng.standard_normal((HIDDEN, HIDDEN)),
        "b_q": rng.standard_normal(HIDDEN), "b_k": rng.standard_normal(HIDDEN),
        "heads_target": np.array([0, 0, HEADS, HEAD_SIZE], np.int64),
        "head_size": np.array(HEAD_SIZE, np.int64), "one": np.array(1.0),
    }
    initializers = {name: value.astype(np.float32) if value.dtype == np.float64 else value
                    for name, value in initializers.items()}
    key_bias = "b_q" if shared_bias else "b_k"
    query = "q_lin" if query_bias else "q_mm"
    nodes = [helper.make_node("Relu", [f"x{step}" if step else "given"], [f"x{step + 1}"])
             for step in range(depth)]
    nodes.append(helper.make_node("Identity", [f"x{depth}" if depth else "given"], ["x"]))
    nodes += [
        helper.make_node("MatMul", ["x", "w_q"], ["q_mm"]),
        *([helper.make_node("Add", ["q_mm", "b_q"], ["q_lin"])] if query_bias else []),
        helper.make_node("Reshape", [query, "heads_target"], ["q_heads"]),
        helper.make_node("Transpose", ["q_heads"], ["q_t"], perm=[0, 2, 1, 3]),
        helper.make_node("MatMul", ["x", "w_k"], ["k_mm"]),
        helper.make_node("Add", [key_bias, "k_mm"], ["k_lin"]),
        helper.make_node("Reshape", ["k_lin", "heads_target"], ["k_heads"]),
        helper.make_node("Transpose", ["k_heads"], ["k_t"], perm=[0, 2, 3, 1]),
        helper.make_node("Cast", ["head_size"], ["size_f"], to=TensorProto.FLOAT),
        helper.make_node("Sqrt", ["size_f"], ["root"]),
    ]
    inputs = [helper.make_tensor_value_info("given", TensorProto.FLOAT, ["batch", "seq", HIDDEN])]
    if form == "query_and_key":
        factor = "factor"
        nodes += [helper.make_node("Div", ["one", "root"], ["inverse_root"]),
                  helper.make_node("Sqrt", ["inverse_root"], ["factor"])]
        if factor_from_input:
            factor = "given_factor"
            inputs.append(helper.make_tensor_value_info(factor, TensorProto.FLOAT, []))
        nodes += [helper.make_node("Mul", ["q_t", factor], ["q_scaled"]),
                  helper.make_node("Mul", [factor, "k_t"], ["k_scaled"]),
                  helper.make_node("MatMul", ["q_scaled", "k_scaled"], ["scores"])]
    else:
        nodes += [helper.make_node("MatMul", ["q_t", "k_t"], ["raw_scores"]),
                  helper.make_node("Div", ["raw_scores", "root"], ["scores"])]
    nodes.append(helper.make_node("Softmax", ["scores"], ["y"], axis=-1))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if query_also_output:
        outputs.append(helper.make_tensor_value_info("q_t", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "attention", inputs, outputs,
                              [numpy_helper.from_array(value, name)
                               for name, value in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _scores(model: onnx.ModelProto, x: np.ndarray, outputs: tuple[str, ...] = ("y",)
            ) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.stack(session.run(list(outputs), {"given": x}))


def _ops(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


@pytest.mark.parametrize(("form", "depth"), [("query_and_key", 0), ("scores", 0),
                                             ("query_and_key", 3000)])
def test_scaling_folded_into_the_query_projection(form, depth):
    """Both forms; and behind 3,000 operators (deeper than Python's recursion limit)."""
    model = _attention(form, depth=depth)
    folded, count = fold_attention_scales(model)
    assert count == 1
    ops = _ops(folded)
    assert ops["Mul"] == ops["Div"] == ops["Sqrt"] == ops["Cast"] == 0, ops
    assert ops["MatMul"] == 3 and ops["Add"] == 2 and ops["Relu"] == depth
    x = np.random.default_rng(1).standard_normal((2, 5, HIDDEN)).astype(np.float32)
    np.testing.assert_allclose(_scores(folded, x), _scores(model, x), rtol=1e-5, atol=1e-6)
    assert len(model.graph.node) > len(folded.graph.node)  # the input is not changed


def test_a_shared_bias_is_copied_not_changed():
    """The key projection reads the query's bias (exporters share equal tensors): the
    query gets its own scaled copy, the key keeps the original."""
    model = _attention("query_and_key", shared_bias=True)
    folded, count = fold_attention_scales(model)
    assert count == 1
    x = np.random.default_rng(2).standard_normal((1, 3, HIDDEN)).astype(np.float32)
    np.testing.assert_allclose(_scores(folded, x), _scores(model, x), rtol=1e-5, atol=1e-6)
    stored = {init.name: numpy_helper.to_array(init) for init in folded.graph.initializer}
    reads = {name for node in folded.graph.node for name in node.input}
    assert "b_q" in reads and "b_q" in stored
    np.testing.assert_array_equal(stored["b_q"], numpy_helper.to_array(
        next(init for init in model.graph.initializer if init.name == "b_q")))


def _twice(model: onnx.ModelProto) -> onnx.ModelProto:
    """Two attention blocks on the same input, sharing every stored tensor (exporters
    share equal tensors between layers), with outputs y and y_2."""
    stored = {init.name for init in model.graph.initializer} | {"given"}
    graph = model.graph
    copies = []
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [name if name in stored else f"{name}_2" for name in node.input]
        copy.output[:] = [f"{name}_2" for name in node.output]
        copies.append(copy)
    graph.node.extend(copies)
    graph.output.append(helper.make_tensor_value_info("y_2", TensorProto.FLOAT, None))
    return model


def test_blocks_sharing_their_weights_get_their_own_scaled_copies():
    model = _twice(_attention("query_and_key"))
    folded, count = fold_attention_scales(model)
    assert count == 2
    names = [init.name for init in folded.graph.initializer]
    assert len(names) == len(set(names))
    x = np.random.default_rng(3).standard_normal((2, 4, HIDDEN)).astype(np.float32)
    np.testing.assert_allclose(_scores(folded, x, ("y", "y_2")), _scores(model, x, ("y", "y_2")),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["factor_from_input", "query_also_output", "no_query_bias"])
def test_what_is_not_proven_stays(case):
    """A factor the graph receives, queries read elsewhere, a projection without its bias
    Add: nothing changes."""
    model = _attention("query_and_key", factor_from_input=case == "factor_from_input",
                       query_also_output=case == "query_also_output",
                       query_bias=case != "no_query_bias")
    folded, count = fold_attention_scales(model)
    assert count == 0
    assert folded.SerializeToString() == model.SerializeToString()
