"""The export pipeline: read → [compress] → export → optimise → head → [shape] →
[4-bit token table] → quantize (optionally 4-bit weights) → write → validate → calibrate.
(int8-static quantizes the dynamic-shape graph, then fixes its shape.)

Each step is a function of its own module; this one only composes them and records
what was done in the manifest. Compression (compress.py) rewrites the torch model into a
temporary folder that the rest of the pipeline exports; the quality card still compares
the package with the original model."""

from __future__ import annotations

import importlib.metadata as metadata
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgembed import Encoder
from edgembed.bench.machine import cpu_info
from edgembed.manifest import Manifest

from .activations import channel_absmax
from .autoquant import choose_kept_nodes, local_errors
from .calibrate import calibrate
from .compress import check_compression, compress_source
from .feeds import tokenized_batches
from .graph_record import graph_record
from .head import OUTPUT, add_pooling_head
from .hub import download, is_hub_id
from .onnx_export import export_onnx
from .optimize import optimize
from .options import ExportOptions
from .per_token import plan_smoothing, simulate, smoothed_inputs
from .quantize import matching_nodes, quantize, simulate_4bit
from .shape import fix_shape
from .source import SourceModel, read_source
from .static_quant import quantize_static_mixed
from .texts import builtin_texts
from .token_table import quantize_token_table
from .validate import reference_embeddings, retrieval_quality, throughput, validate_package
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


def _quality_card(source: SourceModel, package: Encoder, texts: list[str], custom_texts: bool,
                  eval_data: str | Path | None, reference_dir: Path | None,
                  dims: int | None = None) -> dict[str, Any]:
    """Measure the written package: cosine to torch, speed against the fp32 graph, and
    retrieval quality when BEIR data is given. Every number here is measured, never copied.
    `source` is the original model, also for compressed packages; with `dims` its vectors
    are cut to the same first dimensions (cosine renormalises)."""
    reference = reference_embeddings(source, texts)
    agreement = validate_package(package, reference[:, :dims] if dims else reference, texts)
    card: dict[str, Any] = {
        "reference": "torch fp32 " + ("sentence-transformers" if source.is_sentence_transformers
                                      else "transformers + same pooling")
        + (f", original (uncompressed) model, first {dims} dimensions" if dims else ""),
        "texts": "caller-supplied texts" if custom_texts else "edgembed built-in validation set",
        **agreement,
        "how": "cosine between edgembed runtime and torch embeddings of the same texts, "
               "one row per text; mean and min over rows",
        # int8 kernels round differently on AVX2 and AVX-512 VNNI CPUs: say which measured
        "cpu": cpu_info(),
    }
    encoders = {"package": package}
    if reference_dir is not None:
        encoders["fp32"] = Encoder.load(reference_dir, verify=False)
        speed = throughput({name: encoder.encode for name, encoder in encoders.items()}, texts)
        card["speed_vs_fp32"] = round(float(np.median(speed["package"] / speed["fp32"])), 2)
        card["speed_how"] = ("sentences/s on the validation texts, batch 32, package and fp32 "
                             "graph taking turns over 3 rounds in one process; median of the "
                             "per-round ratios")
    if eval_data is not None:
        card["retrieval"] = {"data": Path(eval_data).name, "split": "test",
                             **{name: retrieval_quality(encoder, eval_data)
                                for name, encoder in encoders.items()}}
    return card


def export_model(source: str | Path, output: str | Path,
                 options: ExportOptions | None = None) -> Manifest:
    """Export a Hugging Face / sentence-transformers folder, or a Hub id (org/name[@revision],
    downloaded into the Hub cache: see hub.py), to an edgembed package, as `options` say
    (default: auto, per-token int8, validated against torch; see ExportOptions). Returns the
    manifest, whose `quality` card holds what validation measured."""
    options = options or ExportOptions()
    output = Path(output)
    check_output_dir(output)  # fail before minutes of export work, not after
    snapshot = download(source) if is_hub_id(source) else None
    if snapshot is not None:
        source = snapshot.path
    original = read_source(source, pooling=options.pooling, prefixes=options.prefixes)
    if snapshot is not None:
        original = replace(original, hub_id=snapshot.repo_id, revision=snapshot.commit)
        options = replace(options, name=options.name or snapshot.name,
                          source_name=options.source_name or snapshot.repo_id)
    if options.target == "npu" and options.static_shape is None:
        # NPUs compile for one shape; the model's whole length keeps its retrieval quality
        options = replace(options, static_shape=f"1x{original.max_seq_length}")
    shape = options.shape
    compression = options.compression
    check_compression(compression, original, options.quantize, options.optimize)
    calibration = list(options.calibration_texts or builtin_texts("calibration"))
    held_out = list(options.validation_texts or builtin_texts("validation"))
    workdir = Path(tempfile.mkdtemp(prefix="edgembed-compress-"))
    try:
        model_source, applied = original, {}
        if compression.changes_model:
            folder, applied = compress_source(original, compression, workdir, calibration)
            model_source = read_source(folder, pooling=options.pooling,
                                       prefixes=options.prefixes)
        if shape and shape[1] < model_source.max_seq_length:
            model_source = replace(model_source, max_seq_length=shape[1])
            original = replace(original, max_seq_length=shape[1])
        return _export(original, model_source, applied, output, options,
                       calibration=calibration, held_out=held_out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _quantize(fp32: onnx.ModelProto, base: onnx.ModelProto, options: ExportOptions,
              keep: list[str], batches: Callable[[list[str]], list[dict]],
              calibration: list[str]) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The quantization step: `base` quantized by the requested method, `fp32` the float
    reference `auto` measures against. Returns the graph and its manifest description."""
    method, weight_bits = options.quantize, options.compression.weight_bits or 8
    if method not in ("int8", "auto"):
        return quantize(base, method, keep, weight_bits=weight_bits)
    calibration_batches = batches(calibration)
    factors = plan_smoothing(base, channel_absmax(base, smoothed_inputs(base),
                                                  calibration_batches))

    def int8_keeping(kept: Sequence[str]) -> tuple[onnx.ModelProto, dict[str, Any]]:
        return quantize(base, "int8", sorted(set(keep) | set(kept)), weight_bits=weight_bits,
                        smoothing=factors)

    if method == "int8":
        return int8_keeping(())
    if options.auto_kept is not None:  # a recipe replays what auto chose when it was built
        auto = {"max_loss": options.max_loss, "kept_in_float": list(options.auto_kept),
                "replayed": True}
    else:
        # ranked on 64 calibration texts, stopped on the others: the validation texts stay
        # unseen until the quality card measures them
        errors = local_errors(base, batches(calibration[:64]), factors,
                              simulate_4bit if weight_bits == 4 else simulate)
        auto = choose_kept_nodes(fp32, errors, lambda kept: int8_keeping(kept)[0],
                                 batches(calibration[64:]), options.max_loss)
    graph, described = int8_keeping(auto["kept_in_float"])
    return graph, {**described, "method": "auto", "auto": auto}


def _static_int8(model: onnx.ModelProto, options: ExportOptions, keep: list[str],
                 tokenizer_file: Path, max_length: int, calibration: list[str]
                 ) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """int8-static on the dynamic-shape graph: ranges from every calibration text alone
    (no padding rows), ranking on the first 64, the 16-bit search stopped on the others;
    the validation texts stay unseen until the quality card."""
    singles = tokenized_batches(tokenizer_file, calibration, max_length, batch_size=1)
    held_out = tokenized_batches(tokenizer_file, calibration[64:] or calibration, max_length)
    return quantize_static_mixed(model, singles, singles[:64], held_out, options.max_loss, keep)


def _export(original: SourceModel, model_source: SourceModel, applied: dict[str, Any],
            output: Path, options: ExportOptions, *, calibration: list[str],
            held_out: list[str]) -> Manifest:
    """The pipeline after reading (and compressing) the source: `original` is the model as
    given (what the package is validated against), `model_source` the one exported."""
    compression, shape = options.compression, options.shape
    fp32 = export_onnx(model_source)
    fp32, optimization = optimize(fp32, model_source, options.optimize)
    fp32 = add_pooling_head(fp32, model_source.pooling, model_source.normalize,
                            model_source.embedding_dim, compression.dims, model_source.dense)
    unshaped = fp32  # int8-static calibrates on single unpadded texts, then fixes the shape
    if shape:
        fp32 = fix_shape(fp32, *shape)
    base = fp32  # what quantization starts from; fp32 stays the float reference
    if compression.table_bits:
        base, table = quantize_token_table(fp32, compression.table_bits)
        applied = {**applied, **table}
    if compression.dims:
        applied = {**applied, "dims": {"kept": compression.dims,
                                       "original_dims": model_source.embedding_dim}}
    tokenizer_file = model_source.path / "tokenizer.json"

    def batches(texts: list[str]) -> list[dict]:
        return tokenized_batches(tokenizer_file, texts, model_source.max_seq_length,
                                 batch_size=shape[0] if shape else 8,
                                 pad_to=shape[1] if shape else None)

    keep = matching_nodes(fp32, options.keep_nodes)
    if options.quantize == "int8-static":
        graph, quantization = _static_int8(unshaped, options, keep, tokenizer_file,
                                           model_source.max_seq_length, calibration)
        if shape:
            graph = fix_shape(graph, *shape)
    else:
        graph, quantization = _quantize(fp32, base, options, keep, batches, calibration)
    quantization = {**quantization, "graph": graph_record(graph)}
    manifest = write_package(output, graph, tokenizer_file, {
        "name": options.name or original.path.name,
        "source": {"model": options.source_name or original.path.name,
                   "weights_file": original.weights_file,
                   "weights_sha256": original.weights_sha256,
                   "model_type": original.model_type,
                   **({"hub_id": original.hub_id, "revision": original.revision}
                      if original.hub_id else {})},
        "dim": compression.dims or model_source.embedding_dim,
        "max_seq_length": model_source.max_seq_length,
        "pooling": model_source.pooling,
        "normalized": model_source.normalize,
        "prefixes": model_source.prefixes,
        "prompts": original.prompts,
        "default_prompt_name": original.default_prompt_name,
        "output": OUTPUT,
        "static_shape": shape,
        "optimization": optimization,
        "quantization": quantization,
        "compression": {"requested": compression.describe(), "applied": applied}
        if applied else None,
        "calibration": None,
        "exporter": _versions(),
        "quality": None,
    })
    package = Encoder.load(output)  # checks what was written against its checksums
    if options.validate:
        with tempfile.TemporaryDirectory(prefix="edgembed-fp32-") as workdir:
            reference_dir = None
            if options.quantize != "none":
                reference_dir = Path(workdir) / "fp32"
                write_package(reference_dir, fp32, tokenizer_file, {
                    key: getattr(manifest, key) for key in (
                        "name", "dim", "max_seq_length", "pooling", "normalized", "prefixes",
                        "prompts", "default_prompt_name", "output")})
            manifest = replace(manifest, quality=_quality_card(
                original, package, held_out, options.validation_texts is not None,
                options.eval_data, reference_dir, compression.dims))
    # output-embedding quantization statistics (int8 ranges, residual scales); the manifest
    # is not checksummed, so this rewrites no checksummed file
    manifest = replace(manifest, calibration=calibrate(package))
    write_manifest(output, manifest)
    return manifest
