"""The sentence-transformers modules after the transformer: Pooling, Dense and Normalize,
read from a folder's modules.json.

The exported head (head.py) reproduces them inside the graph, so they are read once here
and refused when they cannot be reproduced: a module of another kind, modules out of the
order sentence-transformers models use (Transformer, Pooling, Dense..., Normalize), a Dense
activation with no plain ONNX operator, or code shipped with the model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgembed.errors import ExportError

POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
                "pooling_mode_max_tokens": "max"}
# the order a sentence-transformers pipeline of these modules must have
ORDER = ("Transformer", "Pooling", "Dense", "Normalize")
ST_PACKAGE = "sentence_transformers."
# Dense activations (the class path sentence-transformers records) → ONNX operator
ACTIVATIONS = {"torch.nn.modules.linear.Identity": None,
               "torch.nn.modules.activation.Tanh": "Tanh",
               "torch.nn.modules.activation.ReLU": "Relu",
               "torch.nn.modules.activation.Sigmoid": "Sigmoid"}
# the weight files transformers and sentence-transformers write, preferred first: a model
# folder and a Dense module folder alike
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")



def find_weights(folder: Path, what: str = "weights") -> Path:
    """The folder's weight file, the preferred kind first; `what` names it in the error."""
    found = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if found is None:
        raise ExportError(f"{folder} has no {what} ({' or '.join(WEIGHT_FILES)})")
    return found

@dataclass(frozen=True)
class Dense:
    """A Dense module: y = activation(x W + b), x the pooled (or previous Dense) vector."""

    folder: Path
    in_features: int
    out_features: int
    bias: bool
    activation: str | None  # ONNX operator, None for identity

    def weights(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(W [in, out] float32, b [out] float32 or None), from the module's own weights."""
        found = find_weights(self.folder, "Dense weights")
        if found.suffix == ".safetensors":
            from safetensors.numpy import load_file

            tensors = load_file(str(found))
        else:
            import torch

            tensors = {k: v.numpy() for k, v in torch.load(str(found), map_location="cpu",
                                                          weights_only=True).items()}
        try:
            weight = np.asarray(tensors["linear.weight"], np.float32)
            bias = np.asarray(tensors["linear.bias"], np.float32) if self.bias else None
        except KeyError as exc:
            raise ExportError(f"{found} has no {exc.args[0]!r} tensor") from None
        if weight.shape != (self.out_features, self.in_features):
            raise ExportError(f"{found}: linear.weight is {list(weight.shape)}, but the "
                              f"config says {self.in_features} → {self.out_features}")
        return np.ascontiguousarray(weight.T), bias

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """The module on pooled vectors, in numpy (the torch reference's last step when it
        pools by itself)."""
        weight, bias = self.weights()
        out = np.asarray(vectors, np.float32) @ weight + (0 if bias is None else bias)
        if self.activation == "Tanh":
            return np.tanh(out)
        if self.activation == "Relu":
            return np.maximum(out, 0)
        if self.activation == "Sigmoid":
            return 1 / (1 + np.exp(-out))
        return out


@dataclass(frozen=True)
class Modules:
    pooling: str
    dense: tuple[Dense, ...]
    normalize: bool


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None


def pooling_from(config: dict[str, Any], path: Path) -> str:
    """The one pooling mode a Pooling config turns on: `pooling_mode` (a mode or a list of
    them, as sentence-transformers 5 writes it) or the older `pooling_mode_*_token(s)`
    flags. Prompt tokens must be pooled like the others (`include_prompt`), since the
    runtime prepends the prompt to the text."""
    if config.get("include_prompt", True) is False:
        raise ExportError(f"{path}: include_prompt false (prompt tokens left out of the "
                          "pooling) is not supported: the exported graph pools every token")
    given = config.get("pooling_mode")
    if given is not None:
        found = [given] if isinstance(given, str) else list(given)
        modes = [mode for mode in found if mode in POOLING_KEYS.values()]
        unsupported = [mode for mode in found if mode not in modes]
    else:
        modes = [name for key, name in POOLING_KEYS.items() if config.get(key)]
        unsupported = [key for key, value in config.items()
                       if key.startswith("pooling_mode_") and value and key not in POOLING_KEYS]
    if unsupported or len(modes) != 1:
        raise ExportError(f"{path}: pooling must be exactly one of cls, mean or max; "
                          f"found {modes + unsupported or 'none'}")
    return modes[0]


def _dense(folder: Path) -> Dense:
    config_path = folder / "config.json"
    config = _read_json(config_path)
    activation = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    if activation not in ACTIVATIONS:
        raise ExportError(f"{config_path}: Dense activation {activation!r} is not supported "
                          f"(supported: {', '.join(a.rsplit('.', 1)[-1] for a in ACTIVATIONS)})")
    try:
        return Dense(folder=folder, in_features=int(config["in_features"]),
                     out_features=int(config["out_features"]), bias=bool(config.get("bias", True)),
                     activation=ACTIVATIONS[activation])
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{config_path}: Dense config needs integer in_features and "
                          f"out_features ({exc})") from None


def read_modules(path: Path, hidden_size: int) -> Modules:
    """Pooling, Dense modules and normalisation from `path`/modules.json."""
    modules = _read_json(path / "modules.json")
    kinds, pooling, dense, normalize = [], "mean", [], False
    for module in modules if isinstance(modules, list) else []:
        full = str(module.get("type", ""))
        kind = full.rsplit(".", 1)[-1]
        if not full.startswith(ST_PACKAGE):
            raise ExportError(f"{path}: modules.json names module {full!r}, code shipped with "
                              "the model rather than sentence-transformers' own; edgembed "
                              "never runs a model's own code (trust_remote_code)")
        if kind not in ORDER:
            raise ExportError(f"{path}: unsupported sentence-transformers module {kind!r} "
                              f"(supported: {', '.join(ORDER)})")
        folder = path / module.get("path", "")
        if kind == "Pooling":
            pooling = pooling_from(_read_json(folder / "config.json"), folder / "config.json")
        elif kind == "Dense":
            dense.append(_dense(folder))
        normalize = normalize or kind == "Normalize"
        kinds.append(kind)
    ranks = [ORDER.index(kind) for kind in kinds]
    if (ranks != sorted(ranks) or kinds[:1] != ["Transformer"] or kinds.count("Transformer") > 1
            or kinds.count("Pooling") > 1 or kinds.count("Normalize") > 1
            or (dense and "Pooling" not in kinds)):
        raise ExportError(f"{path}: modules.json has {' → '.join(kinds) or 'no modules'}; "
                          "edgembed reproduces Transformer → Pooling → Dense (any number) → "
                          "Normalize (each after the transformer optional)")
    width = hidden_size
    for module in dense:
        if module.in_features != width:
            raise ExportError(f"{module.folder}: Dense takes {module.in_features} features, "
                              f"but its input has {width}")
        width = module.out_features
    return Modules(pooling=pooling, dense=tuple(dense), normalize=normalize)
