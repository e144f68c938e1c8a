"""Structured pruning of attention heads and FFN neurons (ZipLM-style: remove whole rows
and columns, so the smaller matrices are faster on any runtime, no sparse kernels needed).

Importance is measured on calibration texts: a head's score is the mean norm of what it
adds to the attention output, a neuron's is its mean |activation| times the norm of its
output weights. Every layer loses the same number of heads / neurons, so the pruned model
stays a regular config (one intermediate_size) and its speed-up is predictable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from edgembed.errors import ExportError

from .feeds import forward_inputs
from .prune_layers import layer_list

Batches = Sequence[dict[str, Any]]


def check_ratio(name: str, ratio: float) -> float:
    if not 0 <= ratio < 1:
        raise ExportError(f"{name} is the fraction to remove, in [0, 1); got {ratio}")
    return float(ratio)


def _bert_parts(layer: Any) -> tuple[Any, Any, Any, Any]:
    """(self-attention, attention output dense, intermediate dense, output dense)."""
    try:
        return (layer.attention.self, layer.attention.output.dense, layer.intermediate.dense,
                layer.output.dense)
    except AttributeError:
        raise ExportError(f"head/FFN pruning supports BERT-style layers; "
                          f"{type(layer).__name__} is not one") from None


def importance(model: Any, batches: Batches) -> tuple[list[Any], list[Any]]:
    """Per-layer head scores [heads] and FFN neuron scores [intermediate] on `batches`
    (dicts of int64 arrays: input_ids, attention_mask, token_type_ids)."""
    import torch

    layers = layer_list(model)
    parts = [_bert_parts(layer) for layer in layers]
    heads = [torch.zeros(p[0].num_attention_heads) for p in parts]
    neurons = [torch.zeros(p[2].out_features) for p in parts]
    state: dict[str, Any] = {}

    def on_attention_output(i: int) -> Callable:
        def hook(module: Any, inputs: tuple) -> None:
            context, mask = inputs[0], state["mask"]
            size = parts[i][0].attention_head_size
            for h in range(len(heads[i])):
                piece = context[..., h * size:(h + 1) * size]
                added = piece @ module.weight[:, h * size:(h + 1) * size].T
                heads[i][h] += (added.norm(dim=-1) * mask).sum() / mask.sum()
        return hook

    def on_ffn_output(i: int) -> Callable:
        def hook(module: Any, inputs: tuple) -> None:
            active, mask = inputs[0].abs(), state["mask"].unsqueeze(-1)
            mean = (active * mask).sum(dim=(0, 1)) / mask.sum()
            neurons[i] += mean * module.weight.norm(dim=0)
        return hook

    handles = []
    for i, (_, attention_out, _, ffn_out) in enumerate(parts):
        handles.append(attention_out.register_forward_pre_hook(on_attention_output(i)))
        handles.append(ffn_out.register_forward_pre_hook(on_ffn_output(i)))
    model.eval()
    try:
        with torch.inference_mode():
            for batch in batches:
                feeds = forward_inputs(model, batch)
                state["mask"] = feeds["attention_mask"].float()
                model(**feeds)
    finally:
        for handle in handles:
            handle.remove()
    return heads, neurons


def _least(scores: Any, count: int) -> list[int]:
    return sorted(int(i) for i in scores.argsort()[:count])


def prune_heads(model: Any, scores: Sequence[Any], ratio: float) -> dict[int, list[int]]:
    """Remove the `ratio` least important heads of every layer (in place); returns them."""
    plan = {}
    for i, layer_scores in enumerate(scores):
        count = int(ratio * len(layer_scores))
        if count:
            plan[i] = _least(layer_scores, count)
    if plan:
        model.prune_heads(plan)
    return plan


def prune_ffn(model: Any, scores: Sequence[Any], ratio: float) -> int:
    """Remove the `ratio` least important FFN neurons of every layer (in place): rows of
    the intermediate projection and the matching columns of the output projection.
    Returns the new intermediate size."""
    import torch

    size = len(scores[0])
    keep_count = size - int(ratio * size)
    for layer, layer_scores in zip(layer_list(model), scores, strict=True):
        _, _, up, down = _bert_parts(layer)
        keep = torch.tensor(sorted(int(i) for i in layer_scores.argsort()[-keep_count:]))
        new_up = torch.nn.Linear(up.in_features, keep_count)
        new_up.weight.data, new_up.bias.data = up.weight.data[keep].clone(), up.bias.data[keep]
        new_down = torch.nn.Linear(keep_count, down.out_features)
        new_down.weight.data = down.weight.data[:, keep].clone()
        new_down.bias.data = down.bias.data.clone()
        layer.intermediate.dense, layer.output.dense = new_up, new_down
    model.config.intermediate_size = keep_count
    return keep_count
