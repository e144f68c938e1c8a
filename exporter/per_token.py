"""Per-token int8 (the `int8` method): every weight MatMul runs int8 × int8, with one
activation scale per token, built from standard ops the CPU provider runs fast.

Why per token: onnxruntime's dynamic int8 (`int8-dynamic`) gives all activations of a batch
one scale. Encoders have a few outlier tokens and channels, so one scale crushes the other
values, and a text's vector depends on the other texts of its batch. Here every token (row)
gets its own scale, max|x| / 127, so a text's vector is the same alone or in any batch.

Why smoothing: LayerNorm outputs carry a few outlier channels, which a per-token scale still
has to cover. Their range moves into the weights (SmoothQuant): the graph multiplies x by
1/m and the weights hold m·W, with m = sqrt(max|x_c| / max|W_c|) per channel, measured on
calibration texts and rounded to a power of two (exact in float, and the same factors from
any CPU's measurements).

Why limited weight pairs: AVX2 CPUs multiply uint8 × int8 with `vpmaddubsw`, which adds
the products of two neighbouring rows into a saturating int16. Keeping |w[2k]| + |w[2k+1]|
≤ 128 bounds that sum by 255 × 128 < 32768, so AVX2 and AVX-512 VNNI compute the same
integers. Only columns whose largest pair exceeds the limit get a coarser scale.

Each quantized input becomes, once for all the MatMuls that read it:
    [Mul 1/m] → Abs → ReduceMax(last axis) → Mul 1/127                  = scale [..., 1]
    QuantizeLinear(x, scale, 128, block_size=channels)                   = uint8 codes
(int8 codes shifted by 128: onnxruntime's u8·s8 kernels are its fast ones; the tensor of
128s QuantizeLinear wants, shaped like the scale, is built once per scale shape: one
operator per input fewer), and each MatMul
    MatMulIntegerToFloat(codes, int8 W, scale, weight scales, 128)       = float output
whose per-row activation scale onnxruntime applies inside the kernel. The bias Add stays
where it was, so onnxruntime's own fusions (bias + GELU) still apply. A row of zeros gets
scale 0: its codes mean nothing, but the kernel multiplies their sums by that 0, so the row
comes out exactly 0 with no guard operator (one fewer per input: short queries pay for each)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

ACTIVATION_MAX = 127
PAIR_LIMIT = 128  # 255 × 128 = 32,640 ≤ 32,767: no int16 saturation on AVX2
ZERO_POINT = 128
SMOOTHING_ALPHA = 0.5
MIN_OPSET = 21  # QuantizeLinear with block_size: one scale per row
# MatMuls whose input comes from these ops get smoothing factors
SMOOTHED_PRODUCERS = ("LayerNormalization", "SkipLayerNormalization")
_MS_DOMAIN = "com.microsoft"


def weight_matmuls(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """MatMul nodes whose second input is a stored 2-D float weight."""
    weights = {init.name: init for init in model.graph.initializer}
    return [node for node in model.graph.node
            if node.op_type == "MatMul" and node.input[1] in weights
            and len(weights[node.input[1]].dims) == 2
            and weights[node.input[1]].data_type == onnx.TensorProto.FLOAT]


def pair_limited_int8(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output column (scale = max|w| / 127) with every pair of rows
    (2k, 2k+1) holding |q[2k]| + |q[2k+1]| ≤ PAIR_LIMIT. Returns (int8 [K, N], float32 [N])."""
    w = np.asarray(weight, np.float64)
    magnitude = np.abs(w)
    if len(w) % 2:
        magnitude = np.vstack([magnitude, np.zeros((1, w.shape[1]))])
    pairs = magnitude[0::2] + magnitude[1::2]
    scale = np.maximum(magnitude.max(axis=0) / ACTIVATION_MAX, pairs.max(axis=0) / PAIR_LIMIT)
    scale = np.maximum(scale, np.finfo(np.float32).tiny)
    q = np.clip(np.round(w / scale), -ACTIVATION_MAX, ACTIVATION_MAX)
    # rounding can lift a pair sum to PAIR_LIMIT + 1: step its smaller member back
    padded = np.vstack([q, np.zeros((1, q.shape[1]))]) if len(q) % 2 else q
    even, odd = padded[0::2], padded[1::2]
    over = np.abs(even) + np.abs(odd) > PAIR_LIMIT
    smaller_even = np.abs(even) <= np.abs(odd)
    even -= np.where(over & smaller_even, np.sign(even), 0)
    odd -= np.where(over & ~smaller_even, np.sign(odd), 0)
    padded[0::2], padded[1::2] = even, odd
    return padded[:len(q)].astype(np.int8), scale.astype(np.float32)


def smoothing_factors(activation_absmax: np.ndarray, weight_absmax: np.ndarray,
                      alpha: float = SMOOTHING_ALPHA) -> np.ndarray:
    """Per-channel m = max|x|^alpha / max|W|^(1-alpha), rounded to a power of two."""
    activation = np.maximum(np.asarray(activation_absmax, np.float64), 1e-6)
    weight = np.maximum(np.asarray(weight_absmax, np.float64), 1e-6)
    factors = activation ** alpha / weight ** (1 - alpha)
    return (2.0 ** np.round(np.log2(factors))).astype(np.float32)


def smoothed_inputs(model: onnx.ModelProto, keep: Sequence[str] = ()) -> list[str]:
    """The quantized MatMul inputs that a LayerNorm produces: the ones smoothing helps."""
    producers = {out: node.op_type for node in model.graph.node for out in node.output}
    kept = set(keep)
    return sorted({node.input[0] for node in weight_matmuls(model)
                   if node.name not in kept
                   and producers.get(node.input[0]) in SMOOTHED_PRODUCERS})


def simulate(x: np.ndarray, weight: np.ndarray, factors: np.ndarray | None = None) -> np.ndarray:
    """What the quantized MatMul computes for rows `x`, in numpy: `auto` uses it to measure
    each node's error without building a graph, and the tests check the graph against it."""
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    if factors is not None:
        x, weight = x / factors, weight * factors[:, None]
    row_scale = np.maximum(np.abs(x).max(axis=-1, keepdims=True) / ACTIVATION_MAX, 1e-12)
    codes = np.clip(np.round(x / row_scale), -ACTIVATION_MAX, ACTIVATION_MAX)
    q, column_scale = pair_limited_int8(weight)
    return (codes @ q.astype(np.float64)) * row_scale * column_scale


def plan_smoothing(model: onnx.ModelProto, channel_absmax: Mapping[str, np.ndarray],
                   keep: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Smoothing factors per quantized input, from its measured per-channel max|x| and the
    largest weight of each channel over the MatMuls that read it."""
    weights = {init.name: init for init in model.graph.initializer}
    kept = set(keep)
    factors = {}
    for name, absmax in channel_absmax.items():
        readers = [numpy_helper.to_array(weights[node.input[1]]) for node in weight_matmuls(model)
                   if node.input[0] == name and node.name not in kept]
        if readers:
            weight_absmax = np.max([np.abs(w).max(axis=1) for w in readers], axis=0)
            factors[name] = smoothing_factors(absmax, weight_absmax)
    return factors


def quantize_per_token(model: onnx.ModelProto, keep: Sequence[str] = (),
                       factors: Mapping[str, np.ndarray] | None = None,
                       ) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """A copy of `model` with every weight MatMul not in `keep` as per-token int8.

    `factors`: smoothing factors per MatMul input (`plan_smoothing`); other inputs are
    quantized unsmoothed. Returns the graph and what was done, for the manifest."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    kept = set(keep)
    targets = [node for node in weight_matmuls(model) if node.name not in kept]
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer
               if init.name in {node.input[1] for node in targets}}
    factors = dict(factors or {})
    added: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        added.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    # imported here: the AVX2 test runs this file's weight functions alone under emulation
    from .simplify import inferred_dims

    dims = inferred_dims(model, sorted({node.input[0] for node in targets}))
    zero_points: dict[tuple, str] = {}  # scale shape → its tensor of 128s, built once

    def zero_points_for(source: str, scale: str, prefix: str) -> tuple[str, list]:
        """QuantizeLinear wants zero points shaped like the scales: one tensor serves every
        input whose scale has the same (symbolic) shape, e.g. [batch, sequence, 1]."""
        known = dims.get(source)
        key = tuple(known[:-1]) if known and None not in known else None
        if key in zero_points:
            return zero_points[key], []
        name = f"{prefix}/zero_points"
        if key is not None:
            zero_points[key] = name
        return name, [
            helper.make_node("Shape", [scale], [f"{prefix}/scale_shape"],
                             name=f"{prefix}/ScaleShape"),
            helper.make_node("ConstantOfShape", [f"{prefix}/scale_shape"], [name],
                             value=zero_value, name=f"{prefix}/ZeroPoints")]

    inv_max = const("per_token/inv_127", np.array(1.0 / ACTIVATION_MAX, np.float32))
    last_axis = const("per_token/last_axis", np.array([-1], np.int64))
    zero_point = const("per_token/zero_point", np.array(ZERO_POINT, np.uint8))
    zero_value = numpy_helper.from_array(np.array([ZERO_POINT], np.uint8), "value")

    quantized: dict[str, tuple[str, str]] = {}  # input → (codes, row scale)
    replacements: dict[str, list[onnx.NodeProto]] = {}
    for node in targets:
        source, weight = node.input[0], weights[node.input[1]].astype(np.float32)
        prelude: list[onnx.NodeProto] = []
        if source not in quantized:
            prefix, x = f"per_token/{source}", source
            if source in factors:
                prelude.append(helper.make_node(
                    "Mul", [source, const(f"{prefix}/inv_smoothing", 1.0 / factors[source])],
                    [f"{prefix}/smoothed"], name=f"{prefix}/Smooth"))
                x = f"{prefix}/smoothed"
            prelude += [
                helper.make_node("Abs", [x], [f"{prefix}/abs"], name=f"{prefix}/Abs"),
                helper.make_node("ReduceMax", [f"{prefix}/abs", last_axis], [f"{prefix}/absmax"],
                                 keepdims=1, name=f"{prefix}/ReduceMax"),
                helper.make_node("Mul", [f"{prefix}/absmax", inv_max], [f"{prefix}/scale"],
                                 name=f"{prefix}/Scale"),
            ]
            zero_points_name, zero_point_nodes = zero_points_for(source, f"{prefix}/scale",
                                                                 prefix)
            prelude += [*zero_point_nodes, helper.make_node(
                "QuantizeLinear", [x, f"{prefix}/scale", zero_points_name], [f"{prefix}/codes"],
                axis=-1, block_size=weight.shape[0], name=f"{prefix}/Quantize")]
            quantized[source] = (f"{prefix}/codes", f"{prefix}/scale")
        if source in factors:
            weight = weight * factors[source][:, None]
        q, column_scale = pair_limited_int8(weight)
        codes, row_scale = quantized[source]
        replacements[node.name] = prelude + [helper.make_node(
            "MatMulIntegerToFloat",
            [codes, const(f"{node.name}/int8_weight", q), row_scale,
             const(f"{node.name}/weight_scale", column_scale), zero_point],
            [node.output[0]], name=f"{node.name}/Int8", domain=_MS_DOMAIN)]

    nodes = [new for node in graph.node for new in replacements.get(node.name, [node])]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(added)
    merged = merge_shared_readers(model)
    used = {name for node in graph.node for name in node.input}
    remaining = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(remaining)
    _require_opsets(model)
    onnx.checker.check_model(model)
    return model, {
        "method": "int8",
        "weights": "int8 per output channel, symmetric; neighbouring rows limited to "
                   f"|w[2k]| + |w[2k+1]| <= {PAIR_LIMIT}, so AVX2 and VNNI compute alike",
        "activations": f"int8 per token (max|x| / {ACTIVATION_MAX}), computed in the graph",
        "smoothed_inputs": len(factors),
        "smoothing": f"SmoothQuant alpha {SMOOTHING_ALPHA}, power-of-two factors, on "
                     "LayerNorm outputs" if factors else "none",
        "int8_matmuls": len(targets),
        "merged_matmuls": merged,
        "kept_in_float": sorted(kept),
    }


def merge_shared_readers(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Per-token MatMuls that read the same codes and each feed one bias Add (an encoder
    layer's query, key and value) become one wide MatMulIntegerToFloat, one Add and a Split.
    Changes `model` in place; returns {merged node: the nodes it replaces}.

    Why: on two threads onnxruntime runs one 384×1152 int8 product faster than three
    384×384 ones (a 22-token query: 43 vs 51 µs), and a short query pays for every
    operator. The numbers are the same bit for bit: each output column is computed alone,
    with its own weight scale and bias."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    graph_outputs = {output.name for output in graph.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def per_column(name: str, width: int) -> bool:
        return name in initializers and list(initializers[name].dims) == [width]

    def bias_add(node: onnx.NodeProto) -> tuple[onnx.NodeProto, str] | None:
        """For a product as quantize_per_token writes it (codes, stored 2-D int8 weight, row
        scale, per-column weight scale, zero point), the Add that alone reads its output
        with a stored per-column bias, and that bias."""
        if node.op_type != "MatMulIntegerToFloat" or node.domain != _MS_DOMAIN \
                or len(node.input) != 5 or len(node.output) != 1 \
                or node.input[1] not in initializers or len(initializers[node.input[1]].dims) != 2:
            return None
        width = initializers[node.input[1]].dims[1]
        after = readers.get(node.output[0], [])
        if not per_column(node.input[3], width) or node.output[0] in graph_outputs \
                or len(after) != 1 or after[0].op_type != "Add" or len(after[0].input) != 2:
            return None
        bias = [name for name in after[0].input if name != node.output[0]]
        return (after[0], bias[0]) if len(bias) == 1 and per_column(bias[0], width) else None

    groups: dict[tuple[str, ...], list[tuple[onnx.NodeProto, onnx.NodeProto, str]]] = {}
    for node in graph.node:
        if found := bias_add(node):
            key = (node.input[0], node.input[2], node.input[4])
            groups.setdefault(key, []).append((node, *found))

    merged: dict[str, list[str]] = {}
    replacements: dict[str, list[onnx.NodeProto]] = {}
    removed: set[str] = set()
    for (codes, row_scale, zero_point), members in groups.items():
        if len(members) < 2:
            continue
        matmuls = [matmul for matmul, _, _ in members]
        prefix = f"{codes}/merged"
        arrays = {name: np.concatenate([numpy_helper.to_array(initializers[pick(m)])
                                        for m in members], axis=-1)
                  for name, pick in (("int8_weight", lambda m: m[0].input[1]),
                                     ("weight_scale", lambda m: m[0].input[3]),
                                     ("bias", lambda m: m[2]))}
        widths = [initializers[matmul.input[1]].dims[1] for matmul in matmuls]
        arrays["split"] = np.array(widths, np.int64)
        for name, array in arrays.items():
            graph.initializer.append(numpy_helper.from_array(array, f"{prefix}/{name}"))
        replacements[matmuls[0].output[0]] = [  # where the first product was: before readers
            helper.make_node("MatMulIntegerToFloat",
                             [codes, f"{prefix}/int8_weight", row_scale,
                              f"{prefix}/weight_scale", zero_point],
                             [f"{prefix}/product"], name=prefix, domain=_MS_DOMAIN),
            helper.make_node("Add", [f"{prefix}/product", f"{prefix}/bias"], [f"{prefix}/sum"],
                             name=f"{prefix}/Bias"),
            helper.make_node("Split", [f"{prefix}/sum", f"{prefix}/split"],
                             [add.output[0] for _, add, _ in members], axis=-1,
                             name=f"{prefix}/Split")]
        removed |= {node.output[0] for member in members for node in member[:2]}
        merged[prefix] = [matmul.name.removesuffix("/Int8") for matmul in matmuls]
    if merged:
        nodes = []
        for node in graph.node:  # told apart by their first output: names may be empty
            first = node.output[0] if node.output else ""
            nodes += replacements.get(first, [] if first in removed else [node])
        del graph.node[:]
        graph.node.extend(nodes)
    return merged


def _require_opsets(model: onnx.ModelProto) -> None:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, MIN_OPSET)
    if not any(opset.domain == _MS_DOMAIN for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid(_MS_DOMAIN, 1))
