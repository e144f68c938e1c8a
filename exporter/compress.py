"""Compose the compression steps on the torch model, before ONNX export.

Vocabulary pruning, layer dropping, head/FFN pruning and healing each live in their own
module; this one checks that the requested combination makes sense, applies them in that
order to a copy of the source model, and saves the result as a model folder that the
ordinary export pipeline then exports and quantizes. `dims` and the 4-bit token table are
graph-level steps (head.py, token_table.py) that the pipeline applies itself."""

from __future__ import annotations

import copy
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgembed.errors import ExportError

from .feeds import tokenized_batches
from .heal import MAX_LENGTH as HEAL_LENGTH
from .heal import builtin_heal_texts, heal
from .prune_layers import keep_layers, layers_to_keep
from .prune_structure import check_ratio, importance, prune_ffn, prune_heads
from .prune_vocab import (
    SLOW_TOKENIZER_FILES,
    kept_vocabulary,
    prune_embeddings,
    prune_tokenizer,
    prune_tokenizer_config,
    read_vocabulary,
    script_names,
    vocab_txt,
)
from .quantize import check_weight_bits
from .source import SourceModel
from .st_modules import WEIGHT_FILES
from .texts import read_texts

TABLE_BITS = (4,)
IMPORTANCE_TEXTS = 128
IMPORTANCE_LENGTH = 128  # tokens per text (fewer if the model's position table is shorter)


@dataclass(frozen=True)
class Compression:
    """What to remove. `prune_vocab` / `heal`: True for the built-in texts, or a path to a
    file of texts (one per line). `keep_scripts`: script sets (latin, cyrillic, cjk...; see
    prune_vocab.SCRIPT_SETS) or Unicode script names whose tokens the vocabulary keeps,
    alone or on top of `prune_vocab`'s. Ratios are the fraction of heads / FFN neurons
    removed in every layer. `table_bits=4` stores the token table as 4-bit blocks; `weight_bits=4`
    every weight MatMul (see quantize.py)."""

    prune_vocab: bool | str | Path = False
    keep_scripts: Sequence[str] | None = None
    layers: int | None = None
    keep_layers: Sequence[int] | None = None
    prune_heads: float = 0.0
    prune_ffn: float = 0.0
    heal: bool | str | Path = False
    heal_minutes: float = 5.0
    heal_steps: int | None = None
    dims: int | None = None
    table_bits: int | None = None
    weight_bits: int | None = None

    @property
    def changes_model(self) -> bool:
        return bool(self.prune_vocab or self.keep_scripts or self.layers is not None
                    or self.keep_layers is not None or self.prune_heads or self.prune_ffn
                    or self.heal)

    def describe(self) -> dict[str, Any]:
        """The requested options, for the manifest (paths as names, defaults left out)."""
        fields = asdict(self)
        for key in ("prune_vocab", "heal"):
            if isinstance(fields[key], (str, Path)):
                fields[key] = Path(fields[key]).name
        if not self.heal:
            fields.pop("heal_minutes"), fields.pop("heal_steps")
        for key in ("keep_layers", "keep_scripts"):
            if fields[key] is not None:
                fields[key] = list(fields[key])
        return {key: value for key, value in fields.items()
                if value not in (None, False, 0.0) or key == "heal"}


def layer_count(source: SourceModel) -> int:
    return int(source.config.get("num_hidden_layers") or source.config.get("n_layers") or 0)


def check_compression(compression: Compression, source: SourceModel, quantize_method: str,
                      optimize_level: int) -> list[int]:
    """Refuse combinations that make no sense, before minutes of work; returns the layers
    to keep."""
    if compression.keep_scripts is not None:
        script_names(compression.keep_scripts)
    if compression.prune_vocab or compression.keep_scripts:  # refuses a kind it cannot prune
        read_vocabulary(json.loads((source.path / "tokenizer.json").read_text("utf-8")))
    total = layer_count(source)
    kept = layers_to_keep(total, compression.layers, compression.keep_layers)
    check_ratio("--prune-heads", compression.prune_heads)
    check_ratio("--prune-ffn", compression.prune_ffn)
    if compression.dims is not None and not 1 <= compression.dims <= source.embedding_dim:
        raise ExportError(f"--dims must be between 1 and the model's {source.embedding_dim} "
                          f"dimensions, got {compression.dims}")
    if compression.heal and compression.dims is not None and source.dense:
        raise ExportError("--heal with --dims: healing teaches the transformer's pooled "
                          "vector, but on this model --dims cuts the output of its Dense "
                          "module; heal without --dims, or cut without --heal")
    if source.model_type == "modernbert" and kept != list(range(len(kept))):
        raise ExportError("--keep-layers on ModernBERT must keep the first layers (use "
                          "--layers N): a ModernBERT layer's local or global attention is "
                          "decided by its position, so a moved layer would change kind")
    structural = (len(kept) < total or compression.prune_heads or compression.prune_ffn
                  or compression.dims is not None)
    if compression.heal and not structural:
        raise ExportError("--heal has nothing to heal: it needs --layers, --keep-layers, "
                          "--prune-heads, --prune-ffn or --dims (vocabulary pruning leaves "
                          "the kept tokens' embeddings exact)")
    if not compression.heal and (compression.heal_steps is not None):
        raise ExportError("--heal-steps needs --heal")
    if compression.prune_heads and optimize_level:
        raise ExportError("--prune-heads leaves layers with fewer heads than the config says; "
                          "the fused Attention of --optimize 1/2 cannot express that: use "
                          "--optimize 0")
    if compression.table_bits is not None:
        if compression.table_bits not in TABLE_BITS:
            raise ExportError(f"--table-bits must be one of {TABLE_BITS}, "
                              f"got {compression.table_bits}")
        if quantize_method == "fp16":
            raise ExportError("--table-bits 4 needs a float32 graph; not with --quantize fp16")
    if compression.weight_bits is not None:
        check_weight_bits(compression.weight_bits, quantize_method)
    return kept


def _copy_side_files(source: Path, target: Path) -> None:
    """Everything but weights and config.json: tokenizer files and sentence-transformers
    module configs (modules.json names the sub-folders, e.g. 1_Pooling)."""
    for item in source.iterdir():
        if item.is_file() and item.name not in WEIGHT_FILES and item.name != "config.json" \
                and item.suffix not in (".onnx", ".bin", ".safetensors", ".h5", ".msgpack"):
            shutil.copy(item, target / item.name)
    modules = source / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text(encoding="utf-8")):
            folder = module.get("path", "")
            if folder and (source / folder).is_dir():
                shutil.copytree(source / folder, target / folder, dirs_exist_ok=True)


def _heal_texts(option: bool | str | Path) -> tuple[list[str], str]:
    if option is True:
        return builtin_heal_texts(), "built-in calibration sentences, passages joined from " \
            f"them, Python {sys.version_info.major}.{sys.version_info.minor} standard-library " \
            "prose, and random sequences of built-in English words"
    return read_texts(option), f"file {Path(option).name}"


def _prune_vocabulary(source: Path, folder: Path, model: Any,
                      compression: Compression) -> dict[str, Any]:
    """Prune the token table of `model` and the tokenizer files copied into `folder`; the
    slow tokenizers' files go (WordPiece's vocab.txt is rewritten), since they would no
    longer match tokenizer.json."""
    kept, described = kept_vocabulary(source / "tokenizer.json", compression.prune_vocab,
                                      compression.keep_scripts)
    original = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    pruned = prune_tokenizer(original, kept)
    (folder / "tokenizer.json").write_text(json.dumps(pruned, ensure_ascii=False),
                                           encoding="utf-8")
    config_file = folder / "tokenizer_config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config_file.write_text(json.dumps(prune_tokenizer_config(config, kept), indent=2,
                                          ensure_ascii=False), encoding="utf-8")
    for name in SLOW_TOKENIZER_FILES:
        (folder / name).unlink(missing_ok=True)
    if pruned["model"]["type"] == "WordPiece":
        (folder / "vocab.txt").write_text(vocab_txt(pruned), encoding="utf-8")
    prune_embeddings(model, kept)
    return {**described, "kept_tokens": len(kept),
            "original_tokens": len(original["model"]["vocab"])}


def compress_source(source: SourceModel, compression: Compression, workdir: Path,
                    calibration: Sequence[str]) -> tuple[Path, dict[str, Any]]:
    """Write the compressed model as a model folder in `workdir`; return the folder and
    what was done (the manifest's `compression.applied`)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    kept_layers = check_compression(compression, source, "none", 0)
    folder = Path(workdir) / "compressed"
    folder.mkdir(parents=True)
    _copy_side_files(source.path, folder)
    model = AutoModel.from_pretrained(str(source.path), local_files_only=True).eval()
    tokenizer_file = folder / "tokenizer.json"
    applied: dict[str, Any] = {}

    if compression.prune_vocab or compression.keep_scripts:
        applied["vocabulary"] = _prune_vocabulary(source.path, folder, model, compression)
    # the teacher is the original model with the same vocabulary, so both see the same ids
    teacher = copy.deepcopy(model) if compression.heal else None
    total = layer_count(source)
    if len(kept_layers) < total:
        keep_layers(model, kept_layers)
        applied["layers"] = {"kept": kept_layers, "original_layers": total}
    if compression.prune_heads or compression.prune_ffn:
        batches = tokenized_batches(tokenizer_file, list(calibration)[:IMPORTANCE_TEXTS],
                                    min(IMPORTANCE_LENGTH, source.max_seq_length),
                                    batch_size=16)
        head_scores, neuron_scores = importance(model, batches)
        how = (f"calibration: {min(len(calibration), IMPORTANCE_TEXTS)} built-in calibration "
               "texts; head = mean norm of its attention-output contribution, neuron = mean "
               "|activation| × output-weight norm; the same count removed in every layer")
        if compression.prune_heads:
            plan = prune_heads(model, head_scores, compression.prune_heads)
            applied["heads"] = {"ratio": compression.prune_heads,
                                "removed": {str(k): v for k, v in plan.items()},
                                "original_heads": len(head_scores[0]), "importance": how}
        if compression.prune_ffn:
            size = prune_ffn(model, neuron_scores, compression.prune_ffn)
            applied["ffn"] = {"ratio": compression.prune_ffn, "intermediate_size": size,
                              "original_size": len(neuron_scores[0]), "importance": how}
    if compression.heal:
        texts, described = _heal_texts(compression.heal)
        report = heal(model, teacher, texts, tokenizer_file, source.pooling,
                      compression.heal_minutes, layer_map=kept_layers,
                      max_steps=compression.heal_steps, dims=compression.dims,
                      max_length=min(HEAL_LENGTH, source.max_seq_length))
        applied["heal"] = {"texts_source": described,
                           "teacher": "the original transformer, with the same vocabulary",
                           **report}
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder, applied
