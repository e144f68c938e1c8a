"""Shape arithmetic made constant at export (`edgembed.export.simplify`): on attention
blocks built the way the exporters write them, the simplified graph gives the same outputs,
bit for bit, for every batch and length, with the run-time shape operators gone; what
inference cannot prove stays as it was."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgembed.export.simplify import simplify_shapes
from edgembed.session import DISABLED_OPTIMIZERS, create_session, session_options

HEADS, HEAD_SIZE = 2, 4
HIDDEN = HEADS * HEAD_SIZE


def _attention_like() -> onnx.ModelProto:
    """x [batch, seq, 8] → MatMul → Reshape to [batch, -1, heads, head size], the target
    assembled from Shape(x) → Transpose → scaled by 1/sqrt(Shape(q)[-1]) → Reshape back to
    [batch, seq, 8], the target assembled from Shape(x) again; plus a reshape whose target
    comes from an unrelated tensor's shape (`other`), which must stay dynamic."""
    def const(name: str, value: list[int] | float) -> onnx.TensorProto:
        dtype = np.float32 if isinstance(value, float) else np.int64
        return numpy_helper.from_array(np.array(value, dtype), name)

    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["q"]),
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Gather", ["x_shape", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes0"], ["batch_1d"]),
        helper.make_node("Concat", ["batch_1d", "minus_one", "heads", "head_size"], ["split"],
                         axis=0),
        helper.make_node("Reshape", ["q", "split"], ["q_heads"]),
        helper.make_node("Transpose", ["q_heads"], ["q_t"], perm=[0, 2, 1, 3]),
        helper.make_node("Shape", ["q_t"], ["q_shape"]),
        helper.make_node("Slice", ["q_shape", "last", "end"], ["size"]),
        helper.make_node("Cast", ["size"], ["size_f"], to=TensorProto.FLOAT),
        helper.make_node("Sqrt", ["size_f"], ["root"]),
        helper.make_node("Div", ["q_t", "root"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["back"], perm=[0, 2, 1, 3]),
        helper.make_node("Gather", ["x_shape", "one"], ["seq"], axis=0),
        helper.make_node("Unsqueeze", ["seq", "axes0"], ["seq_1d"]),
        helper.make_node("Concat", ["batch_1d", "seq_1d", "hidden"], ["merge"], axis=0),
        helper.make_node("Reshape", ["back", "merge"], ["y"]),
        helper.make_node("Shape", ["other"], ["other_shape"]),
        helper.make_node("Gather", ["other_shape", "zero"], ["other_0"], axis=0),
        helper.make_node("Unsqueeze", ["other_0", "axes0"], ["other_0_1d"]),
        helper.make_node("Gather", ["other_shape", "one"], ["other_1"], axis=0),
        helper.make_node("Unsqueeze", ["other_1", "axes0"], ["other_1_1d"]),
        helper.make_node("Concat", ["other_0_1d", "other_1_1d", "hidden"], ["foreign"], axis=0),
        helper.make_node("Reshape", ["y", "foreign"], ["z"]),
    ]
    weight = np.random.default_rng(0).standard_normal((HIDDEN, HIDDEN)).astype(np.float32)
    graph = helper.make_graph(
        nodes, "attention_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", HIDDEN]),
         helper.make_tensor_value_info("other", TensorProto.FLOAT, ["rows", "cols"])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", "seq", HIDDEN])],
        [numpy_helper.from_array(weight, "w"), const("zero", 0), const("one", 1),
         const("axes0", [0]), const("minus_one", [-1]), const("heads", [HEADS]),
         const("head_size", [HEAD_SIZE]), const("hidden", [HIDDEN]), const("last", [-1]),
         const("end", [2**62])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: onnx.ModelProto, batch: int, seq: int) -> np.ndarray:
    x = np.random.default_rng(batch * 100 + seq).standard_normal((batch, seq, HIDDEN))
    other = np.zeros((batch, seq), np.float32)  # same sizes: the foreign reshape is valid
    session = create_session(model.SerializeToString(), threads=1)
    return session.run(["z"], {"x": x.astype(np.float32), "other": other})[0]


def test_constant_targets_compute_the_same_for_every_shape():
    model = _attention_like()
    simple, changed = simplify_shapes(model)
    assert changed == {"reshape_targets": 2, "shape_picks": 1}
    onnx.checker.check_model(simple)
    for batch, seq in ((1, 1), (3, 7), (2, 33)):
        np.testing.assert_array_equal(_run(simple, batch, seq), _run(model, batch, seq))
    kinds = [node.op_type for node in simple.graph.node]
    # neither x's shape nor the head size's is read any more; the unrelated tensor's still is
    assert kinds.count("Shape") == 1 and "Slice" not in kinds and kinds.count("Concat") == 1
    targets = {numpy_helper.to_array(init).tolist() == [0, -1, HEADS, HEAD_SIZE]
               or numpy_helper.to_array(init).tolist() == [0, 0, HIDDEN]
               for init in simple.graph.initializer if init.name.endswith("constant_target")}
    assert targets == {True}


def test_an_unproven_target_stays_dynamic():
    """The target read from `other` equals x's sizes only because this test feeds it so:
    nothing proves it, so it keeps its Shape, Gather and Concat."""
    simple, _ = simplify_shapes(_attention_like())
    reshape = next(node for node in simple.graph.node
                   if node.op_type == "Reshape" and node.output[0] == "z")
    assert reshape.input[1] == "foreign"


def test_a_piece_of_several_entries_is_left_alone():
    """A target whose first piece is Slice(Shape(x), 0, 2), two entries at once: pieces
    and positions no longer line up, so nothing is proven and nothing changes."""
    def const(name: str, value: list[int]) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(value, np.int64), name)

    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["shape"]),
         helper.make_node("Slice", ["shape", "zero", "two"], ["batch_and_seq"]),
         helper.make_node("Concat", ["batch_and_seq", "heads", "head_size"], ["target"],
                          axis=0),
         helper.make_node("Reshape", ["x", "target"], ["y"])],
        "several", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                  ["batch", "seq", HIDDEN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       ["batch", "seq", HEADS, HEAD_SIZE])],
        [const("zero", [0]), const("two", [2]), const("heads", [HEADS]),
         const("head_size", [HEAD_SIZE])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    simple, changed = simplify_shapes(model)
    assert changed == {"reshape_targets": 0, "shape_picks": 0}
    assert [node.op_type for node in simple.graph.node] == ["Shape", "Slice", "Concat",
                                                             "Reshape"]


def _scaled_scores() -> onnx.ModelProto:
    """q [batch, heads, seq, 4] · k [batch, heads, 4, seq], each first multiplied by
    sqrt(1/sqrt(head size)), the head size read from Shape(q): how the exported attention
    scales its scores."""
    def const(name: str, value: list[int] | float) -> onnx.TensorProto:
        dtype = np.float32 if isinstance(value, float) else np.int64
        return numpy_helper.from_array(np.array(value, dtype), name)

    nodes = [
        helper.make_node("Shape", ["q"], ["q_shape"]),
        helper.make_node("Slice", ["q_shape", "last", "end"], ["size"]),
        helper.make_node("Cast", ["size"], ["size_f"], to=TensorProto.FLOAT),
        helper.make_node("Sqrt", ["size_f"], ["root"]),
        helper.make_node("Div", ["one", "root"], ["scale"]),
        helper.make_node("Sqrt", ["scale"], ["half_scale"]),
        helper.make_node("Mul", ["q", "half_scale"], ["q_scaled"]),
        helper.make_node("Mul", ["k", "half_scale"], ["k_scaled"]),
        helper.make_node("MatMul", ["q_scaled", "k_scaled"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "scaled_scores",
        [helper.make_tensor_value_info("q", TensorProto.FLOAT, ["batch", HEADS, "seq", HEAD_SIZE]),
         helper.make_tensor_value_info("k", TensorProto.FLOAT, ["batch", HEADS, HEAD_SIZE, "seq"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT,
                                       ["batch", HEADS, "seq", "seq"])],
        [const("last", [-1]), const("end", [2**62]), const("one", 1.0)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _optimized_kinds(model: onnx.ModelProto, disabled: list[str], folder) -> list[str]:
    options = session_options(1)
    options.optimized_model_filepath = str(folder / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=disabled)
    return [node.op_type for node in onnx.load(folder / "optimized.onnx").graph.node]


def test_a_constant_attention_scale_computes_the_same(tmp_path):
    """The head size becomes a constant and onnxruntime folds the scale; edgembed's sessions
    keep it out of the MatMul (MatMulScaleFusion), so the scores stay the same bit for bit.
    The control shows the fusion does happen on the simplified graph in a plain session,
    which is what the disabled optimizer guards against."""
    model = _scaled_scores()
    simple, changed = simplify_shapes(model)
    assert changed == {"reshape_targets": 0, "shape_picks": 1}
    assert {"Shape", "Slice"}.isdisjoint(node.op_type for node in simple.graph.node)
    rng = np.random.default_rng(1)
    for batch, seq in ((1, 1), (2, 9), (3, 40)):
        feeds = {"q": rng.standard_normal((batch, HEADS, seq, HEAD_SIZE)).astype(np.float32),
                 "k": rng.standard_normal((batch, HEADS, HEAD_SIZE, seq)).astype(np.float32)}
        scores = [create_session(graph.SerializeToString(), threads=1).run(["scores"], feeds)[0]
                  for graph in (model, simple)]
        np.testing.assert_array_equal(scores[1], scores[0])
    assert "FusedMatMul" not in _optimized_kinds(simple, list(DISABLED_OPTIMIZERS), tmp_path)
    assert "FusedMatMul" in _optimized_kinds(simple, [], tmp_path)
