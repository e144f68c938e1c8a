"""The export pipeline: read → export → head → quantize → write → validate.

Each step is a function of its own module; this one only composes them and records
what was done in the manifest."""

from __future__ import annotations

import importlib.metadata as metadata
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .head import OUTPUT, add_pooling_head
from .onnx_export import export_onnx
from .optimize import optimize
from .quantize import quantize
from .shape import fix_shape, parse_static_shape
from .source import read_source
from .texts import builtin_texts
from .validate import reference_embeddings, validate_package
from .writer import check_output_dir, write_manifest, write_package


def _versions() -> dict[str, str]:
    names = ("edgembed", "optimum-onnx", "onnx", "onnxruntime", "torch", "transformers",
             "sentence-transformers")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def export_model(
    source: str | Path,
    output: str | Path,
    *,
    quantize_method: str = "int8-dynamic",
    optimize_level: int = 1,
    static_shape: str | None = None,
    exclude_nodes: Sequence[str] = (),
    name: str | None = None,
    source_name: str | None = None,
    pooling: str | None = None,
    prefixes: dict[str, str] | None = None,
    validation_texts: Sequence[str] | None = None,
    validate: bool = True,
) -> dict[str, Any]:
    """Export a Hugging Face / sentence-transformers folder to an edgembed package.

    Returns the manifest, whose `quality` card holds the cosine agreement with the torch
    model on held-out texts (the built-in validation set unless others are given)."""
    output = Path(output)
    check_output_dir(output)  # fail before minutes of export work, not after
    shape = parse_static_shape(static_shape) if static_shape else None
    model_source = read_source(source, pooling=pooling, prefixes=prefixes)
    if shape and shape[1] < model_source.max_seq_length:
        model_source = replace(model_source, max_seq_length=shape[1])
    graph = export_onnx(model_source)
    graph, optimization = optimize(graph, model_source, optimize_level)
    graph = add_pooling_head(graph, model_source.pooling, model_source.normalize,
                             model_source.hidden_size)
    if shape:
        graph = fix_shape(graph, *shape)
    graph, quantization = quantize(graph, quantize_method, exclude=exclude_nodes)
    manifest = write_package(output, graph, model_source.path / "tokenizer.json", {
        "name": name or model_source.path.name,
        "source": {"model": source_name or model_source.path.name,
                   "weights_file": model_source.weights_file,
                   "weights_sha256": model_source.weights_sha256,
                   "model_type": model_source.model_type},
        "dim": model_source.hidden_size,
        "max_seq_length": model_source.max_seq_length,
        "pooling": model_source.pooling,
        "normalized": model_source.normalize,
        "prefixes": model_source.prefixes,
        "output": OUTPUT,
        "static_shape": list(shape) if shape else None,
        "optimization": optimization,
        "quantization": quantization,
        "calibration": None,
        "exporter": _versions(),
        "quality": None,
    })
    if validate:
        texts = list(validation_texts or builtin_texts("validation"))
        reference = reference_embeddings(model_source, texts)
        agreement = validate_package(output, reference, texts)
        manifest["quality"] = {
            "reference": "torch fp32 "
                         + ("sentence-transformers" if model_source.is_sentence_transformers
                            else "transformers + same pooling"),
            "texts": "edgembed built-in validation set" if validation_texts is None
                     else "caller-supplied texts",
            **agreement,
            "how": "cosine between edgembed runtime and torch embeddings of the same texts, "
                   "one row per text; mean and min over rows",
        }
        write_manifest(output, manifest)
    return manifest
