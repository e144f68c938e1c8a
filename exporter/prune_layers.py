"""Layer dropping: keep a subset of the transformer layers (the first N, or chosen ones).

Each layer costs the same, so dropping k of L layers removes about k/L of the encoder's
compute; healing (heal.py) then recovers most of the quality."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgembed.errors import ExportError

# (owner attribute, layer list attribute): encoder.layer in BERT-like models (MPNet and
# the RoBERTa family too), transformer.layer in DistilBERT, layers in ModernBERT
LAYER_PATHS = (("encoder", "layer"), ("transformer", "layer"), (None, "layers"))


def _layer_owner(model: Any) -> tuple[Any, str]:
    for owner, attribute in LAYER_PATHS:
        holder = model if owner is None else getattr(model, owner, None)
        if getattr(holder, attribute, None) is not None:
            return holder, attribute
    raise ExportError(f"cannot find the transformer layers of {type(model).__name__}")


def layer_list(model: Any) -> Any:
    """The ModuleList of transformer layers."""
    holder, attribute = _layer_owner(model)
    return getattr(holder, attribute)


def layers_to_keep(total: int, layers: int | None = None,
                   keep_layers: Sequence[int] | None = None) -> list[int]:
    """Validate `--layers N` / `--keep-layers i,j,…` against a model of `total` layers."""
    if layers is not None and keep_layers is not None:
        raise ExportError("give --layers N or --keep-layers LIST, not both")
    if layers is not None:
        if not 1 <= layers <= total:
            raise ExportError(f"--layers must be between 1 and {total} (the model's layer "
                              f"count), got {layers}")
        return list(range(layers))
    if keep_layers is None:
        return list(range(total))
    chosen = list(keep_layers)
    if not chosen:
        raise ExportError("--keep-layers needs at least one layer")
    bad = [i for i in chosen if not 0 <= i < total]
    if bad:
        raise ExportError(f"--keep-layers: no layer {bad[0]} in a {total}-layer model "
                          f"(layers are numbered 0..{total - 1})")
    if sorted(set(chosen)) != chosen:
        raise ExportError(f"--keep-layers must be increasing and without repeats, got {chosen}")
    return chosen


def keep_layers(model: Any, kept: Sequence[int]) -> Any:
    """Keep only layers `kept` of a transformers model (modified in place and returned)."""
    import torch

    holder, attribute = _layer_owner(model)
    layers = getattr(holder, attribute)
    setattr(holder, attribute, torch.nn.ModuleList([layers[i] for i in kept]))
    for key in ("num_hidden_layers", "n_layers"):
        if hasattr(model.config, key):
            setattr(model.config, key, len(kept))
    # pruned heads are recorded per layer index; renumber them with the layers
    pruned = getattr(model.config, "pruned_heads", None) or {}
    model.config.pruned_heads = {new_index: pruned[old] for new_index, old in enumerate(kept)
                                 if old in pruned}
    return model
