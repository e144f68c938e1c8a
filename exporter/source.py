"""Read a Hugging Face / sentence-transformers model folder into a `SourceModel`.

Everything the exporter and the manifest need to know about the source is decided here,
once, so later steps never re-read config files or guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgembed.errors import ExportError
from edgembed.package import sha256_file

from .st_modules import POOLING_KEYS, Dense, find_weights, read_modules

# Encoder-only families that optimum-onnx exports for feature-extraction.
ENCODER_TYPES = frozenset({
    "albert", "bert", "camembert", "convbert", "deberta", "deberta-v2", "distilbert",
    "electra", "ernie", "megatron-bert", "mobilebert", "modernbert", "mpnet", "roberta",
    "roformer", "xlm-roberta",
})
# families whose position ids start after the padding index (create_position_ids_from_input_ids)
PADDING_OFFSET_TYPES = frozenset({"camembert", "mpnet", "roberta", "xlm-roberta"})
# auto_map entries that replace the model transformers would build: remote code
REMOTE_CODE_KEYS = ("AutoConfig", "AutoModel")


@dataclass(frozen=True)
class SourceModel:
    path: Path
    model_type: str
    hidden_size: int
    max_seq_length: int
    pooling: str
    normalize: bool
    prefixes: dict[str, str]
    weights_file: str
    weights_sha256: str
    # the folder's own sentence-transformers pipeline computes these vectors: the torch
    # reference uses it (not when `pooling` overrides the folder's pooling)
    is_sentence_transformers: bool
    config: dict[str, Any] = field(repr=False)
    # config_sentence_transformers.json's named prompts and the one used when none is named
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    # where the folder came from, for the manifest: a Hub id and the commit it resolved to
    hub_id: str | None = None
    revision: str | None = None
    # sentence-transformers Dense modules after pooling, in order (the head applies them)
    dense: tuple[Dense, ...] = ()

    @property
    def embedding_dim(self) -> int:
        """The width of the sentence embedding: the last Dense module's, else the hidden size."""
        return self.dense[-1].out_features if self.dense else self.hidden_size


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from None


def _prompts(path: Path) -> tuple[dict[str, str], str | None]:
    """config_sentence_transformers.json's `prompts` (name → text) and `default_prompt_name`,
    checked as sentence-transformers would use them."""
    config_path = path / "config_sentence_transformers.json"
    config = _read_json(config_path) if config_path.is_file() else {}
    prompts = config.get("prompts") or {}
    default = config.get("default_prompt_name")
    if not isinstance(prompts, dict) or not all(
            isinstance(name, str) and isinstance(text, str) for name, text in prompts.items()):
        raise ExportError(f"{config_path}: prompts must be an object of name → text")
    if default is not None and default not in prompts:
        raise ExportError(f"{config_path}: default_prompt_name {default!r} is not one of its "
                          f"prompts ({', '.join(prompts) or 'none'})")
    return prompts, default


def _prefixes(prompts: dict[str, str]) -> dict[str, str]:
    query = prompts.get("query", "")
    document = prompts.get("document", prompts.get("passage", prompts.get("doc", "")))
    return {"query": query or "", "document": document or ""}


def check_pooling(pooling: str | None) -> None:
    """None (the folder decides) or one of the poolings the exported head can apply."""
    if pooling is not None and pooling not in POOLING_KEYS.values():
        raise ExportError(f"pooling must be cls, mean or max, got {pooling!r}")


def position_limit(config: dict[str, Any]) -> int:
    """The longest sequence the position table covers. RoBERTa-style families number
    positions from padding_idx + 1 (the pad token's id), so their 514 rows hold 512 tokens."""
    limit = int(config.get("max_position_embeddings", 512))
    if config.get("model_type") in PADDING_OFFSET_TYPES:
        limit -= int(config.get("pad_token_id", 1)) + 1
    return limit


def _max_seq_length(path: Path, config: dict[str, Any]) -> int:
    limit = position_limit(config)
    st_config = path / "sentence_bert_config.json"
    if st_config.is_file() and _read_json(st_config).get("max_seq_length"):
        return min(int(_read_json(st_config)["max_seq_length"]), limit)
    tok_config = path / "tokenizer_config.json"
    if tok_config.is_file():
        declared = _read_json(tok_config).get("model_max_length")
        if isinstance(declared, int) and 0 < declared < limit:
            return declared
    return limit


def check_no_remote_code(path: Path, config: dict[str, Any]) -> None:
    """Refuse a model whose architecture is code shipped with it (NomicBERT, Jina, ...):
    transformers would build it only with trust_remote_code, and optimum-onnx has no
    exporter for it. Building the stock class of its model_type instead would load some
    weights and silently drop the rest."""
    custom = {key: value for key, value in (config.get("auto_map") or {}).items()
              if key in REMOTE_CODE_KEYS}
    if not custom:
        return
    named = "; ".join(f"{key} → {value if isinstance(value, str) else value[0]}"
                      for key, value in custom.items())
    files = sorted({(value if isinstance(value, str) else value[0]).split("--")[-1]
                    .rsplit(".", 1)[0] + ".py" for value in custom.values()})
    missing = [name for name in files if not (path / name).is_file()]
    raise ExportError(
        f"{path / 'config.json'}: model type {config.get('model_type')!r} needs remote code "
        f"(auto_map: {named}); edgembed never runs a model's own code "
        f"(trust_remote_code), and optimum-onnx has no exporter for it"
        + (f"; not in the folder either: {', '.join(missing)}" if missing else ""))


def read_source(path: str | Path, pooling: str | None = None,
                prefixes: dict[str, str] | None = None) -> SourceModel:
    """Inspect a model folder; `pooling` and `prefixes` override what the folder says."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ExportError(f"source model folder not found: {path}")
    if not (path / "config.json").is_file():
        raise ExportError(f"{path} has no config.json: not a Hugging Face model folder")
    if not (path / "tokenizer.json").is_file():
        raise ExportError(f"{path} has no tokenizer.json (a fast tokenizer file is required)")
    config = _read_json(path / "config.json")
    model_type = config.get("model_type", "")
    check_no_remote_code(path, config)
    if model_type not in ENCODER_TYPES:
        raise ExportError(f"unsupported architecture {model_type!r} in {path / 'config.json'}; "
                          f"supported encoder families: {', '.join(sorted(ENCODER_TYPES))}")
    weights = find_weights(path).name
    is_st = (path / "modules.json").is_file()
    # DistilBERT's config calls the hidden size `dim`
    hidden_size = int(config.get("hidden_size") or config.get("dim") or 0)
    if hidden_size < 1:
        raise ExportError(f"{path / 'config.json'} gives no hidden_size")
    modules = read_modules(path.resolve(), hidden_size) if is_st else None
    found_pooling = modules.pooling if modules else "mean"
    check_pooling(pooling)
    prompts, default_prompt_name = _prompts(path)
    return SourceModel(
        path=path.resolve(),
        model_type=model_type,
        hidden_size=hidden_size,
        max_seq_length=_max_seq_length(path, config),
        pooling=pooling or found_pooling,
        normalize=modules.normalize if modules else True,
        prefixes={**_prefixes(prompts), **(prefixes or {})},
        weights_file=weights,
        weights_sha256=sha256_file(path / weights),
        is_sentence_transformers=is_st and pooling in (None, found_pooling),
        config=config,
        prompts=prompts,
        default_prompt_name=default_prompt_name,
        dense=modules.dense if modules else (),
    )
