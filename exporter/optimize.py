"""Graph optimisation before quantization: at level 0 the exported graph with its reshape
targets made constant (`simplify`) and its attention scale moved into the query weights
(`attention_scale`), at levels 1-2 onnxruntime's transformer fusions (attention,
skip-layernorm, gelu).

Fused operators matter twice: they are faster in float, and the fused Attention becomes
QAttention under int8 quantization instead of a dozen separately quantized MatMuls."""

from __future__ import annotations

import logging

import onnx

from edgembed.errors import ExportError

from .attention_scale import fold_attention_scales
from .simplify import simplify_shapes
from .source import SourceModel

# 0: the graph as exported, its provable reshape targets made constant (`simplify`) and
# its attention scale folded into the query projection (`attention_scale`);
# 1: transformer fusions (Attention, SkipLayerNormalization, BiasGelu,
# EmbedLayerNormalization); 2: fusions plus onnxruntime's extended graph rewrites.
LEVELS = (0, 1, 2)


def optimize(model: onnx.ModelProto, source: SourceModel, level: int = 1) -> tuple[
        onnx.ModelProto, dict]:
    """Return the optimised graph and the fused-operator counts, for the manifest."""
    if level not in LEVELS:
        raise ExportError(f"optimize level must be one of {LEVELS}, got {level!r}")
    if level == 0:
        model, constant = simplify_shapes(model)
        model, folded = fold_attention_scales(model)
        return model, {"level": 0, "constant_shapes": constant,
                       "attention_scales_folded": folded}
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    optimized = optimize_model(
        model, model_type="bert",  # the BERT patterns cover every encoder family we export
        num_heads=int(source.config.get("num_attention_heads", 0)),
        hidden_size=source.hidden_size,
        opt_level=0 if level == 1 else 1,
    )
    graph = optimized.model
    if not any(opset.domain == "com.microsoft" for opset in graph.opset_import):
        graph.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    fused = {name: count for name, count in optimized.get_fused_operator_statistics().items()
             if count}
    return graph, {"level": level, "fused_operators": fused}
