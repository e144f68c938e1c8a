"""What the float graph computes inside: the inputs of chosen nodes on calibration batches.

Per-token quantization reads them twice: their per-channel ranges choose the smoothing
factors, and `auto` ranks MatMuls by the error int8 adds to each one on these inputs,
without building and running a graph per node."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import onnx

from edgembed.session import create_session


def rows(model: onnx.ModelProto, tensors: Sequence[str],
         batches: Sequence[dict]) -> Iterator[dict[str, np.ndarray]]:
    """Per batch, each named tensor as (rows, channels) float32. A [batch, sequence,
    channels] tensor keeps only the rows of real tokens (padding rows are never pooled, so
    their errors do not matter); a [batch, channels] one keeps all its rows."""
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    outputs = {output.name for output in probe.graph.output}
    for name in tensors:
        if name not in outputs:
            probe.graph.output.append(onnx.helper.make_value_info(name, onnx.TypeProto()))
    session = create_session(probe.SerializeToString())
    feeds = {node.name for node in session.get_inputs()}
    for batch in batches:
        values = session.run(list(tensors), {k: v for k, v in batch.items() if k in feeds})
        real = batch["attention_mask"].astype(bool)
        out = {}
        for name, value in zip(tensors, values, strict=True):
            if value.ndim == 3 and value.shape[:2] == real.shape:
                value = value[real]
            out[name] = value.reshape(-1, value.shape[-1]).astype(np.float32, copy=False)
        yield out


def channel_absmax(model: onnx.ModelProto, tensors: Sequence[str],
                   batches: Sequence[dict]) -> dict[str, np.ndarray]:
    """Per-channel max|x| of each named tensor over the batches' real tokens."""
    result: dict[str, np.ndarray] = {}
    if not tensors:
        return result
    for values in rows(model, tensors, batches):
        for name, value in values.items():
            absmax = np.abs(value).max(axis=0)
            result[name] = np.maximum(result[name], absmax) if name in result else absmax
    return result
