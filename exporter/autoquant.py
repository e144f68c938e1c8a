"""Accuracy-aware int8: keep the most quantization-sensitive nodes in float until the
held-out loss fits the budget.

Sensitivity of a node = how much the calibration texts' mean cosine to fp32 recovers when
that node alone is left unquantized. Nodes are then kept in float, most sensitive first,
until the mean cosine loss on other texts is within `max_loss` (a bisection over that
order, which assumes keeping more nodes never hurts; the final choice is re-measured)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx

from edgembed.session import create_session

from .head import OUTPUT

QuantizeFn = Callable[[Sequence[str]], onnx.ModelProto]


def embed_batches(model: onnx.ModelProto, batches: list[dict]) -> np.ndarray:
    """Run a graph on tokenized batches and return normalised sentence embeddings."""
    session = create_session(model.SerializeToString())
    names = {node.name for node in session.get_inputs()}
    rows = [session.run([OUTPUT], {k: v for k, v in batch.items() if k in names})[0]
            for batch in batches]
    vectors = np.concatenate(rows)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def mean_cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.mean(np.sum(reference * candidate, axis=1)))


def choose_float_nodes(fp32: onnx.ModelProto, candidates: Sequence[str],
                       quantize_without: QuantizeFn, calibration: list[dict],
                       held_out: list[dict], max_loss: float) -> dict:
    """Return the nodes to keep in float and the measurements that chose them.

    `quantize_without(excluded)` must return the int8 graph with `excluded` left in float."""
    calib_ref = embed_batches(fp32, calibration)
    held_ref = embed_batches(fp32, held_out)

    def held_out_loss(excluded: Sequence[str], graph: onnx.ModelProto | None = None) -> float:
        graph = graph or quantize_without(excluded)
        return 1.0 - mean_cosine(held_ref, embed_batches(graph, held_out))

    all_int8 = quantize_without([])  # quantizing takes seconds: once for both uses
    base = mean_cosine(calib_ref, embed_batches(all_int8, calibration))
    gains = {name: mean_cosine(calib_ref, embed_batches(quantize_without([name]), calibration))
             - base for name in candidates}
    order = sorted(candidates, key=lambda name: gains[name], reverse=True)
    losses = {0: held_out_loss([], all_int8)}
    if losses[0] <= max_loss:
        count = 0
    else:  # smallest prefix of `order` whose held-out loss fits; all-float always fits
        low, high = 0, len(order)
        while high - low > 1:
            middle = (low + high) // 2
            losses[middle] = held_out_loss(order[:middle])
            low, high = (low, middle) if losses[middle] <= max_loss else (middle, high)
        count = high
        if count not in losses:  # (setdefault would quantize and embed again regardless)
            losses[count] = held_out_loss(order[:count])
    return {
        "max_loss": max_loss,
        "kept_in_float": order[:count],
        "held_out_mean_cosine": round(1.0 - losses[count], 6),
        "sensitivity": {name: round(gains[name], 6) for name in order},
        "tried": {str(k): round(1.0 - v, 6) for k, v in sorted(losses.items())},
    }
