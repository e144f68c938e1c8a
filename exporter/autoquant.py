"""Accuracy-aware quantization (`auto`): keep the MatMuls int8 hurts most in higher
precision until the held-out loss fits the budget.

Ranking costs one float pass: each MatMul's error is measured on its own captured inputs,
comparing its quantized output (computed in numpy, `per_token.simulate`) with the exact one.
Only the stopping rule runs real graphs: a bisection over how many of the worst nodes to
keep, each step one quantize + embed of the held-out texts (which assumes keeping more
nodes never hurts; the final choice is re-measured). So the search takes a handful of
passes instead of one per node.

The measurements run on this CPU's kernels and differ slightly between CPUs, so the choice
is recorded in the manifest, and a recipe replays it (`auto_kept`) instead of searching."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from edgembed.session import create_session

from .activations import rows
from .head import OUTPUT
from .per_token import simulate, weight_matmuls

QuantizeFn = Callable[[Sequence[str]], onnx.ModelProto]


def embed_batches(model: onnx.ModelProto, batches: list[dict]) -> np.ndarray:
    """Run a graph on tokenized batches and return normalised sentence embeddings."""
    session = create_session(model.SerializeToString())
    names = {node.name for node in session.get_inputs()}
    vectors = np.concatenate([session.run([OUTPUT], {k: v for k, v in batch.items()
                                                     if k in names})[0] for batch in batches])
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def mean_cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.mean(np.sum(reference * candidate, axis=1)))


def local_errors(fp32: onnx.ModelProto, batches: list[dict],
                 factors: Mapping[str, np.ndarray] | None = None,
                 simulate_fn: Callable[..., np.ndarray] = simulate) -> dict[str, float]:
    """Each weight MatMul's relative squared error, ||quantized - exact||² / ||exact||², on
    its inputs from `batches` (one float pass, accumulated batch by batch)."""
    nodes = weight_matmuls(fp32)
    weights = {init.name: numpy_helper.to_array(init).astype(np.float64)
               for init in fp32.graph.initializer if init.name in {n.input[1] for n in nodes}}
    factors = factors or {}
    inputs = sorted({node.input[0] for node in nodes})
    error = dict.fromkeys((node.name for node in nodes), 0.0)
    energy = dict.fromkeys((node.name for node in nodes), 0.0)
    for values in rows(fp32, inputs, batches):
        for node in nodes:
            x, weight = values[node.input[0]], weights[node.input[1]]
            exact = x.astype(np.float64) @ weight
            quantized = simulate_fn(x, weight, factors.get(node.input[0]))
            error[node.name] += float(np.sum((quantized - exact) ** 2))
            energy[node.name] += float(np.sum(exact ** 2))
    return {name: error[name] / max(energy[name], 1e-30) for name in error}


def choose_kept_nodes(fp32: onnx.ModelProto, errors: Mapping[str, float],
                      quantize_keeping: QuantizeFn, held_out: list[dict],
                      max_loss: float) -> dict:
    """The fewest highest-error nodes to keep so that the held-out mean cosine loss against
    the float graph is within `max_loss`, and the measurements that chose them.

    `quantize_keeping(kept)` returns the quantized graph with `kept` in higher precision."""
    reference = embed_batches(fp32, held_out)
    order = sorted(errors, key=lambda name: errors[name], reverse=True)
    losses: dict[int, float] = {}

    def loss(count: int) -> float:
        if count not in losses:
            graph = quantize_keeping(order[:count])
            losses[count] = 1.0 - mean_cosine(reference, embed_batches(graph, held_out))
        return losses[count]

    count = 0
    if loss(0) > max_loss:  # smallest prefix of `order` whose loss fits; all kept always fits
        low, high = 0, len(order)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if loss(middle) <= max_loss else (middle, high)
        count = high
        loss(count)
    return {
        "max_loss": max_loss,
        "kept_in_float": order[:count],
        "held_out_mean_cosine": round(1.0 - losses[count], 6),
        "sensitivity": {name: float(f"{errors[name]:.4g}") for name in order},
        "sensitivity_how": "relative squared error of each MatMul's quantized output on its "
                           "own calibration inputs (numpy), highest first",
        "tried": {str(k): round(1.0 - v, 6) for k, v in sorted(losses.items())},
    }
