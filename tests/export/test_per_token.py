"""Per-token int8 on small random graphs: the graph computes what `per_token.simulate` says,
a row's result never depends on the other rows, and the weights keep the AVX2 pair limit."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import cpu_note
from edgembed.export.per_token import (
    PAIR_LIMIT,
    pair_limited_int8,
    plan_smoothing,
    quantize_per_token,
    simulate,
    smoothed_inputs,
    smoothing_factors,
)
from edgembed.session import create_session

HIDDEN, FFN = 64, 96


def _layer_model(seed: int = 0) -> onnx.ModelProto:
    """x → LayerNorm → MatMul+bias (two readers of the same input) → Add → MatMul: the shapes
    of an encoder layer, with an outlier channel in x and a stored weight per MatMul."""
    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32),
                                       name)

    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"], axis=-1),
        helper.make_node("MatMul", ["ln", "w_up"], ["up"], name="up/MatMul"),
        helper.make_node("Add", ["up", "b_up"], ["up_b"]),
        helper.make_node("MatMul", ["ln", "w_side"], ["side"], name="side/MatMul"),
        helper.make_node("MatMul", ["up_b", "w_down"], ["down"], name="down/MatMul"),
        helper.make_node("Concat", ["down", "side"], ["y"], axis=-1),
    ]
    gamma = np.ones(HIDDEN, np.float32)
    gamma[3] = 20.0  # an outlier channel, as LayerNorm outputs of real encoders have
    graph = helper.make_graph(
        nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", HIDDEN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", HIDDEN + HIDDEN])],
        [numpy_helper.from_array(gamma, "gamma"),
         numpy_helper.from_array(np.zeros(HIDDEN, np.float32), "beta"),
         weight("w_up", HIDDEN, FFN), weight("b_up", FFN), weight("w_side", HIDDEN, HIDDEN),
         weight("w_down", FFN, HIDDEN)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: onnx.ModelProto, outputs: list[str], x: np.ndarray) -> list[np.ndarray]:
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    for name in outputs:
        if name not in {o.name for o in probe.graph.output}:
            probe.graph.output.append(helper.make_value_info(name, onnx.TypeProto()))
    return create_session(probe.SerializeToString(), threads=1).run(outputs, {"x": x})


def _inputs(rows: int = 7, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, rows, HIDDEN)).astype(np.float32)


@pytest.mark.parametrize("rows", [64, 65])
def test_pair_limited_weights(rows):
    rng = np.random.default_rng(rows)
    weight = rng.standard_normal((rows, 40))
    weight[::7] *= 8  # large neighbours: the pair limit binds in many columns
    q, scale = pair_limited_int8(weight)
    assert q.dtype == np.int8 and scale.dtype == np.float32
    magnitude = np.abs(q.astype(int))
    padded = np.vstack([magnitude, np.zeros((1, 40), int)]) if rows % 2 else magnitude
    assert (padded[0::2] + padded[1::2]).max() <= PAIR_LIMIT
    assert magnitude.max() <= 127
    error = np.abs(q * scale - weight).max(axis=0) / np.abs(weight).max(axis=0)
    assert error.max() < 0.02  # at worst a coarser grid in columns where the limit binds


def test_smoothing_factors_are_powers_of_two():
    factors = smoothing_factors(np.array([0.01, 1.0, 30.0, 0.0]), np.array([0.5, 0.5, 0.1, 1.0]))
    assert np.all(np.log2(factors) == np.round(np.log2(factors)))
    assert factors[2] > factors[1] > factors[0]  # wider activations move more into the weights


@pytest.mark.parametrize("smooth", [False, True])
def test_graph_computes_what_simulate_says(smooth):
    model = _layer_model()
    x = _inputs()
    ln, up_b = _run(model, ["ln", "up_b"], x)
    factors = plan_smoothing(model, {"ln": np.abs(ln).reshape(-1, HIDDEN).max(0)}) \
        if smooth else {}
    assert smoothed_inputs(model) == ["ln"]
    quantized, described = quantize_per_token(model, factors=factors)
    assert described["int8_matmuls"] == 3
    assert described["smoothed_inputs"] == (1 if smooth else 0)
    assert {n.op_type for n in quantized.graph.node} >= {"MatMulIntegerToFloat", "QuantizeLinear"}
    assert "MatMul" not in {n.op_type for n in quantized.graph.node}
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    up, side = _run(quantized, ["up", "side"], x)
    for got, name in ((up, "w_up"), (side, "w_side")):
        expected = simulate(ln.reshape(-1, HIDDEN), weights[name], factors.get("ln"))
        np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-4,
                                   atol=1e-4 * np.abs(expected).max(), err_msg=cpu_note())
    # the second layer reads the float output of the first: compare against its own input
    (down,) = _run(quantized, ["down"], x)
    up_b_quantized = _run(quantized, ["up_b"], x)[0].reshape(-1, FFN)
    expected = simulate(up_b_quantized, weights["w_down"])
    np.testing.assert_allclose(down.reshape(expected.shape), expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max(), err_msg=cpu_note())
    assert np.abs(up_b - _run(quantized, ["up_b"], x)[0]).max() < 0.05 * np.abs(up_b).max()


def test_smoothing_lowers_the_error_on_outlier_channels():
    model = _layer_model()
    x = _inputs(rows=32)
    exact, ln = _run(model, ["up", "ln"], x)
    factors = plan_smoothing(model, {"ln": np.abs(ln).reshape(-1, HIDDEN).max(0)})
    errors = {}
    for name, chosen in (("plain", {}), ("smoothed", factors)):
        (up,) = _run(quantize_per_token(model, factors=chosen)[0], ["up"], x)
        errors[name] = np.sum((up - exact) ** 2) / np.sum(exact ** 2)
    assert errors["smoothed"] < 0.5 * errors["plain"], errors


def test_rows_do_not_depend_on_their_batch():
    model, _ = quantize_per_token(_layer_model())
    x = _inputs(rows=9)
    (together,) = _run(model, ["y"], x)
    crowd = np.concatenate([x, 50 * _inputs(rows=9, seed=5)], axis=0)  # louder batch-mates
    (crowded,) = _run(model, ["y"], crowd)
    np.testing.assert_array_equal(crowded[:2], together)
    (alone,) = _run(model, ["y"], x[:1, :4])
    np.testing.assert_array_equal(alone[0], together[0, :4])


@pytest.mark.parametrize("smooth", [False, True])
def test_a_row_of_zeros_comes_out_zero(smooth):
    """A row of zeros gets activation scale 0 (no guard operator): whatever its codes, the
    kernel multiplies them by that 0, so the row's products are exactly 0, never NaN, and
    its batch-mates are untouched."""
    model = _layer_model()
    x = _inputs()
    factors = plan_smoothing(model, {"ln": np.abs(_run(model, ["ln"], x)[0]).reshape(
        -1, HIDDEN).max(0)}) if smooth else {}
    quantized, _ = quantize_per_token(model, factors=factors)
    with_zeros = x.copy()
    with_zeros[0, 2] = 0.0  # LayerNorm of a constant row is beta: zeros here
    up, side, y = _run(quantized, ["up", "side", "y"], with_zeros)
    assert np.all(up[0, 2] == 0) and np.all(side[0, 2] == 0)
    assert np.all(np.isfinite(y))
    (clean,) = _run(quantized, ["y"], x)
    others = np.ones(x.shape[:2], bool)
    others[0, 2] = False
    np.testing.assert_array_equal(y[others], clean[others])


def test_kept_nodes_stay_float():
    model, described = quantize_per_token(_layer_model(), keep=["side/MatMul"])
    kept = [n for n in model.graph.node if n.op_type == "MatMul"]
    assert [n.name for n in kept] == ["side/MatMul"]
    assert described["kept_in_float"] == ["side/MatMul"]
    assert described["int8_matmuls"] == 2


def test_one_tensor_of_zero_points_per_scale_shape():
    """QuantizeLinear wants its 128s shaped like the scales: inputs whose scales have the
    same shape share one tensor (fewer operators per query); a scale of another shape gets
    its own, or the graph would fail to run."""
    model, _ = quantize_per_token(_layer_model())
    kinds = [node.op_type for node in model.graph.node]
    assert kinds.count("QuantizeLinear") == 2 and kinds.count("ConstantOfShape") == 1

    two_ranks = _layer_model()
    graph = two_ranks.graph
    graph.input.append(helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["b", HIDDEN]))
    graph.output.append(helper.make_tensor_value_info("head", TensorProto.FLOAT, ["b", HIDDEN]))
    graph.initializer.append(numpy_helper.from_array(
        np.eye(HIDDEN, dtype=np.float32), "w_head"))
    graph.node.append(helper.make_node("MatMul", ["pooled", "w_head"], ["head"],
                                       name="head/MatMul"))
    quantized, described = quantize_per_token(two_ranks)
    assert described["int8_matmuls"] == 4
    assert [node.op_type for node in quantized.graph.node].count("ConstantOfShape") == 2
    pooled = np.random.default_rng(3).standard_normal((2, HIDDEN)).astype(np.float32)
    session = create_session(quantized.SerializeToString(), threads=1)
    head = session.run(["head"], {"x": _inputs(), "pooled": pooled})[0]
    np.testing.assert_allclose(head, simulate(pooled, np.eye(HIDDEN)), rtol=1e-4, atol=1e-4)


def _biased_readers_model(expose_products: bool) -> onnx.ModelProto:
    """LayerNorm → three MatMul + bias readers of its output, as an attention's query, key
    and value; with `expose_products` the raw products are graph outputs too, which keeps
    each MatMul on its own (its output is needed as it is)."""
    rng = np.random.default_rng(4)
    names = ("query", "key", "value")
    nodes = [helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"], axis=-1)]
    initializers = [numpy_helper.from_array(np.ones(HIDDEN, np.float32), "gamma"),
                    numpy_helper.from_array(np.zeros(HIDDEN, np.float32), "beta")]
    for index, name in enumerate(names):
        width = HIDDEN + 8 * index  # unequal widths: the Split must cut at the right places
        nodes += [helper.make_node("MatMul", ["ln", f"w_{name}"], [f"{name}_product"],
                                   name=f"{name}/MatMul"),
                  helper.make_node("Add", [f"b_{name}", f"{name}_product"], [name])]
        initializers += [
            numpy_helper.from_array((rng.standard_normal((HIDDEN, width)) * 0.1)
                                    .astype(np.float32), f"w_{name}"),
            numpy_helper.from_array(rng.standard_normal(width).astype(np.float32), f"b_{name}")]
    outputs = list(names) + ([f"{name}_product" for name in names] if expose_products else [])
    graph = helper.make_graph(
        nodes, "readers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", HIDDEN])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["b", "s", "width"])
         for name in outputs],
        initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_readers_of_one_input_merge_into_one_product_with_the_same_numbers():
    merged, described = quantize_per_token(_biased_readers_model(expose_products=False))
    separate, separate_described = quantize_per_token(_biased_readers_model(expose_products=True))
    kinds = [node.op_type for node in merged.graph.node]
    assert kinds.count("MatMulIntegerToFloat") == 1 and kinds.count("Split") == 1
    assert kinds.count("Add") == 1
    assert described["int8_matmuls"] == 3
    assert list(described["merged_matmuls"].values()) == [
        ["query/MatMul", "key/MatMul", "value/MatMul"]]
    assert [node.op_type for node in separate.graph.node].count("MatMulIntegerToFloat") == 3
    assert separate_described["merged_matmuls"] == {}
    x = _inputs(rows=11)
    names = ["query", "key", "value"]
    got = create_session(merged.SerializeToString(), threads=2).run(names, {"x": x})
    expected = create_session(separate.SerializeToString(), threads=2).run(names, {"x": x})
    for name, a, b in zip(names, got, expected, strict=True):
        assert a.shape == b.shape == (2, 11, HIDDEN + 8 * names.index(name))
        np.testing.assert_array_equal(a, b, err_msg=cpu_note())
