"""The token-embedding table as 4-bit blocks (onnxruntime's GatherBlockQuantized).

The table is looked up, never multiplied, so it tolerates coarse storage well: 4-bit
symmetric blocks of 32 values with a float32 scale each cost 5 bits per weight instead of
int8's 8, which is what lets a pruned-vocabulary package fit in 15 MB. Done before the
int8 pass, which then leaves the already-quantized lookup alone."""

from __future__ import annotations

import onnx

from edgembed.errors import ExportError

from .quantize import BLOCK_SIZE, block_quantize


def token_gather(model: onnx.ModelProto) -> onnx.NodeProto:
    """The Gather that looks input_ids up in a stored table."""
    weights = {init.name for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[1] == "input_ids" and node.input[0] in weights:
            return node
    raise ExportError("no token-embedding lookup (Gather of input_ids) in the graph")


def quantize_token_table(model: onnx.ModelProto, bits: int = 4) -> tuple[onnx.ModelProto, dict]:
    """Return a copy whose token lookup is a 4-bit GatherBlockQuantized, and its description."""
    if bits != 4:
        raise ExportError(f"the token table can be stored at 4 bits, not {bits}")
    result = block_quantize(model, [token_gather(model).name], "Gather", bits=4)
    if not any(node.op_type == "GatherBlockQuantized" for node in result.graph.node):
        raise ExportError("onnxruntime did not quantize the token table")
    return result, {"token_table": f"int4 symmetric blocks of {BLOCK_SIZE} along the hidden "
                                   "axis, float32 scales (GatherBlockQuantized)"}
