"""Weight quantization of the exported graph with onnxruntime.quantization.

Methods:
* ``int8``: per-token int8 activations and int8 weights on every weight MatMul, smoothed
  LayerNorm outputs (per_token.py): accurate on any encoder, and a text's vector does not
  depend on its batch. Embedding tables are int8 (weight-only).
* ``int8-dynamic``: per-channel int8 weights, uint8 activations quantized per batch.
  Nodes listed in ``keep`` stay in float compute; their weights are stored as 8-bit
  blocks (MatMulNBits, block 32, fp32 accumulate), which costs ~1/4 of fp32's bytes and
  almost none of its accuracy. This is what `auto` uses to spend its accuracy budget.
* ``int8-static``: QDQ with activation ranges calibrated on texts (fixed scales, so a
  text's vector does not depend on its batch neighbours), per-channel weights, uint16 on
  the activations uint8 hurts most: static_quant.py (it needs its own calibration and
  search, so the pipeline calls it directly).
* ``fp16``: float16 weights and compute, float32 inputs/outputs (for accelerators).

``weight_bits=4`` (with ``int8``, ``int8-dynamic`` or ``none``; ``auto`` chooses ``keep``
for it) first stores every weight MatMul not in ``keep`` as symmetric 4-bit blocks of 32
(MatMulNBits, fp32 compute): 5 bits per weight instead of 8, for packages that must be
small more than fast (see benchmarks/results/compression.json). With ``int8`` the kept
MatMuls are per-token int8.
"""

from __future__ import annotations

import fnmatch
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from edgembed.errors import ExportError

from . import per_token
from .head import HIDDEN

METHODS = ("none", "fp16", "int8", "int8-dynamic", "int8-static", "auto")
WEIGHT_BITS = (8, 4)
FOUR_BIT_METHODS = ("none", "int8", "int8-dynamic", "auto")
PER_TOKEN_METHODS = ("int8", "auto")  # per_token.py: they quantize unfused MatMuls only
BLOCK_SIZE = 32


def matching_nodes(model: onnx.ModelProto, patterns: Sequence[str]) -> list[str]:
    """Node names matching any glob pattern, e.g. '*/output/dense/MatMul' for FFN outputs."""
    return [node.name for node in model.graph.node
            if any(fnmatch.fnmatchcase(node.name, pattern) for pattern in patterns)]


def weight_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul nodes whose second input is a stored weight: the ones
    quantization touches."""
    return [node.name for node in per_token.weight_matmuls(model)]


def _quiet() -> None:
    logging.getLogger().setLevel(logging.ERROR)  # the quantizers log every node they skip


def block_quantize(model: onnx.ModelProto, nodes: Sequence[str], op_type: str,
                   bits: int) -> onnx.ModelProto:
    """A copy whose `nodes` (MatMuls or Gathers of stored weights) keep their weights as
    symmetric `bits`-bit blocks of BLOCK_SIZE with float32 scales: MatMulNBits (blocks along
    the input axis) or GatherBlockQuantized (blocks along the hidden axis). Weight-only:
    compute stays float32. Every other node is left as it is."""
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    # the quantizer ORs its include list with the op types, so exclude everything else
    wanted = set(nodes)
    others = [node.name for node in model.graph.node
              if node.op_type in ("MatMul", "Gather") and node.name not in wanted]
    axis = 0 if op_type == "MatMul" else 1
    config = DefaultWeightOnlyQuantConfig(
        block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=0, bits=bits,
        quant_format=QuantFormat.QOperator, op_types_to_quantize=(op_type,),
        quant_axes=((op_type, axis),))
    _quiet()
    model = onnx.ModelProto.FromString(model.SerializeToString())  # it edits in place
    quantizer = MatMulNBitsQuantizer(
        model, bits=bits, block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=0,
        nodes_to_exclude=others, op_types_to_quantize=(op_type,), algo_config=config)
    quantizer.process()
    return quantizer.model.model


def simulate_4bit(x: np.ndarray, weight: np.ndarray, factors: np.ndarray | None = None
                  ) -> np.ndarray:
    """Roughly what a 4-bit block MatMul computes for rows `x` (symmetric blocks of
    BLOCK_SIZE along the input axis): how `auto` ranks nodes under `weight_bits=4`."""
    w = np.asarray(weight, np.float64)
    padded = np.vstack([w, np.zeros((-len(w) % BLOCK_SIZE, w.shape[1]))])
    blocks = padded.reshape(-1, BLOCK_SIZE, w.shape[1])
    scale = np.maximum(np.abs(blocks).max(axis=1, keepdims=True) / 7, 1e-30)
    dequantized = (np.clip(np.round(blocks / scale), -8, 7) * scale).reshape(padded.shape)
    return np.asarray(x, np.float64) @ dequantized[:len(w)]


def _int8_tables(model: onnx.ModelProto) -> onnx.ModelProto:
    """Embedding tables (Gather of a stored weight) as int8 rows: weight-only, so exact up to
    rounding of the stored values."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="edgembed-quant-") as workdir:
        output = Path(workdir) / "model.onnx"
        quantize_dynamic(model, output, per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["Gather"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        return onnx.load(str(output))


def _int8_dynamic(model: onnx.ModelProto, keep: Sequence[str]) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if keep:
        model = block_quantize(model, keep, "MatMul", bits=8)
    with tempfile.TemporaryDirectory(prefix="edgembed-quant-") as workdir:
        output = Path(workdir) / "model.onnx"
        quantize_dynamic(model, output, per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gather", "Attention",
                                               "EmbedLayerNormalization"],
                         nodes_to_exclude=list(keep),
                         extra_options={"MatMulConstBOnly": True,
                                        "DefaultTensorType": onnx.TensorProto.FLOAT})
        return onnx.load(str(output))


def _fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # onnx's type inference stops at the fused operators of --optimize 1/2, so the converter
    # would not know that the pooling head's input is float, and would leave the head's
    # float32 epsilons beside float16 values (a graph onnxruntime refuses): say so
    model = onnx.ModelProto.FromString(model.SerializeToString())
    if HIDDEN not in {info.name for info in model.graph.value_info}:
        model.graph.value_info.append(
            onnx.helper.make_tensor_value_info(HIDDEN, onnx.TensorProto.FLOAT, None))
    return convert_float_to_float16(model, keep_io_types=True)


def check_weight_bits(weight_bits: int, method: str) -> None:
    if weight_bits not in WEIGHT_BITS:
        raise ExportError(f"--weight-bits must be one of {WEIGHT_BITS}, got {weight_bits}")
    if weight_bits == 4 and method not in FOUR_BIT_METHODS:
        raise ExportError(f"--weight-bits 4 stores the MatMul weights itself; pair it with "
                          f"--quantize {', '.join(FOUR_BIT_METHODS)}, not {method}")


def quantize(model: onnx.ModelProto, method: str, keep: Sequence[str] = (),
             weight_bits: int = 8,
             smoothing: Mapping[str, np.ndarray] | None = None) -> tuple[onnx.ModelProto, dict]:
    """Return the quantized graph and a description of what was done, for the manifest.

    `keep`: node names left in higher precision; `weight_bits=4`: the other weight
    MatMuls as 4-bit blocks; `smoothing`: per-input smoothing factors for int8
    (`per_token.plan_smoothing`). (`auto` chooses `keep` first, see autoquant.py, then
    calls int8; int8-static is static_quant.quantize_static_mixed.)"""
    if method not in METHODS or method in ("auto", "int8-static"):
        raise ExportError(f"quantize method must be one of {', '.join(METHODS)}, "
                          f"got {method!r}")
    check_weight_bits(weight_bits, method)
    unknown = set(keep) - {node.name for node in model.graph.node}
    if unknown:
        raise ExportError(f"no such node(s) to keep in float: {', '.join(sorted(unknown))}")
    _quiet()
    if weight_bits == 4:
        kept = set(keep)
        four_bit = [name for name in weight_matmuls(model) if name not in kept]
        blocks = block_quantize(model, four_bit, "MatMul", bits=4)
        # with int8, the MatMuls left as MatMul are the kept ones: they become int8
        graph, described = quantize(blocks, method, () if method == "int8" else keep,
                                    smoothing=smoothing)
        others = {"int8": "kept ones as per-token int8", "int8-dynamic": "as int8-dynamic",
                  "none": "float32"}[method]
        return graph, {**described, "weight_bits": 4, "kept_in_float": list(keep),
                       "weights": f"{len(four_bit)} MatMuls as symmetric 4-bit blocks of "
                       f"{BLOCK_SIZE} (MatMulNBits, fp32 compute); other MatMuls {others}"}
    if method == "none":
        return model, {"method": "none", "weights": "float32"}
    if method == "fp16":
        return _fp16(model), {"method": "fp16", "weights": "float16", "io": "float32"}
    if method == "int8":
        graph, described = per_token.quantize_per_token(model, keep, smoothing)
        return _int8_tables(graph), {**described, "tables": "int8 rows (weight-only)"}
    return _int8_dynamic(model, keep), {
        "method": method, "weights": "int8 per-channel", "activations": "uint8 per batch",
        "op_types": ["MatMul", "Gather", "Attention", "EmbedLayerNormalization"],
        "kept_in_float": list(keep),
        "kept_storage": f"int8 blocks of {BLOCK_SIZE} (MatMulNBits), fp32 compute"}
