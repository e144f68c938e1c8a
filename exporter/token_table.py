"""The token-embedding table as 4-bit blocks (onnxruntime's GatherBlockQuantized).

The table is looked up, never multiplied, so it tolerates coarse storage well: 4-bit
symmetric blocks of 32 values with a float32 scale each cost 5 bits per weight instead of
int8's 8, which is what lets a pruned-vocabulary package fit in 15 MB. Done before the
int8 pass, which then leaves the already-quantized lookup alone."""

from __future__ import annotations

import logging

import onnx

from edgembed.errors import ExportError

BLOCK_SIZE = 32


def token_gather(model: onnx.ModelProto) -> onnx.NodeProto:
    """The Gather that looks input_ids up in a stored table."""
    weights = {init.name for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[1] == "input_ids" and node.input[0] in weights:
            return node
    raise ExportError("no token-embedding lookup (Gather of input_ids) in the graph")


def quantize_token_table(model: onnx.ModelProto, bits: int = 4) -> tuple[onnx.ModelProto, dict]:
    """Return a copy whose token lookup is a 4-bit GatherBlockQuantized, and its description."""
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    if bits != 4:
        raise ExportError(f"the token table can be stored at 4 bits, not {bits}")
    target = token_gather(model).name
    others = [node.name for node in model.graph.node
              if node.op_type in ("Gather", "MatMul") and node.name != target]
    config = DefaultWeightOnlyQuantConfig(
        block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=0, bits=4,
        quant_format=QuantFormat.QOperator, op_types_to_quantize=("Gather",),
        quant_axes=(("Gather", 1),))
    logging.getLogger().setLevel(logging.ERROR)
    model = onnx.ModelProto.FromString(model.SerializeToString())  # it edits in place
    quantizer = MatMulNBitsQuantizer(
        model, bits=4, block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=0,
        nodes_to_exclude=others, op_types_to_quantize=("Gather",), algo_config=config)
    quantizer.process()
    result = quantizer.model.model
    if not any(node.op_type == "GatherBlockQuantized" for node in result.graph.node):
        raise ExportError("onnxruntime did not quantize the token table")
    return result, {"token_table": f"int4 symmetric blocks of {BLOCK_SIZE} along the hidden "
                                   "axis, float32 scales (GatherBlockQuantized)"}
