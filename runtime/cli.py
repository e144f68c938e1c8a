"""The `edgembed` command: a thin layer over the Python API.

Every expected failure is an EdgembedError, printed as one line with exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .encoder import Encoder
from .errors import EdgembedError
from .index import META_FILE, Index
from .package import open_package, package_sizes


def _read_lines(source: str) -> list[str]:
    """Lines of a file or stdin ('-'), without their line endings; empty lines are kept so
    that row i of the output is always line i of the input."""
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        raise EdgembedError(f"cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise EdgembedError(f"{source} is not UTF-8 text (byte {exc.start})") from None
    return text.splitlines()


def cmd_embed(args: argparse.Namespace) -> int:
    texts = _read_lines(args.input)
    encoder = Encoder.load(args.model, threads=args.threads)
    vectors = encoder.encode(texts, batch_size=args.batch_size, kind=args.kind)
    output = args.output
    if output and output.endswith(".npy") and not args.json:
        np.save(output, vectors)
        print(f"wrote {vectors.shape[0]} × {vectors.shape[1]} float32 to {output}",
              file=sys.stderr)
        return 0
    lines = (json.dumps({"index": i, "embedding": row.tolist()}) + "\n"
             for i, row in enumerate(vectors))
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
    else:
        sys.stdout.writelines(lines)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    package = open_package(args.package, verify=True)  # raises on a missing/tampered file
    sizes = package_sizes(package)
    if args.json:
        print(json.dumps({"path": str(package.path), "package_id": package.package_id,
                          "checksums": "ok", "sizes": sizes, "manifest": package.manifest},
                         indent=2))
        return 0
    manifest = package.manifest
    quality = manifest.get("quality") or {}
    rows = [
        ("package", str(package.path)),
        ("name", manifest["name"]),
        ("source", (manifest.get("source") or {}).get("model", "?")),
        ("dim", manifest["dim"]),
        ("max_seq_length", manifest["max_seq_length"]),
        ("pooling", f"{manifest['pooling']}, normalized={manifest['normalized']}"),
        ("prefixes", json.dumps(manifest.get("prefixes") or {})),
        ("quantization", (manifest.get("quantization") or {}).get("method", "?")),
        ("quality", ", ".join(f"{k}={quality[k]}" for k in ("mean_cosine", "min_cosine")
                              if k in quality) or "not measured"),
        ("checksums", "ok"),
    ]
    rows += [(f"  {name}", f"{size / 1e6:.2f} MB") for name, size in sizes.items()]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from edgembed.export import build_from_recipe, export_model
    except ImportError as exc:
        raise EdgembedError(f"edgembed export needs the export extra ({exc.name} is missing): "
                            "pip install 'edgembed[export]'") from None
    from edgembed.export.texts import read_texts

    if args.recipe and args.source:
        raise EdgembedError("give a source folder or --recipe FILE, not both")
    compression = _compression(args)
    if args.recipe:
        if compression is not None:
            raise EdgembedError("compression options apply to a source folder, not --recipe")
        manifest = build_from_recipe(args.recipe, args.output)
    elif args.source:
        manifest = export_model(
            args.source, args.output, quantize_method=args.quantize,
            optimize_level=args.optimize, static_shape=args.static_shape,
            keep_nodes=args.keep_nodes or (), max_loss=args.max_loss,
            calibration_texts=read_texts(args.calibration) if args.calibration else None,
            eval_data=args.eval_data, name=args.name, source_name=args.source_name,
            pooling=args.pooling, validate=not args.no_validate, compression=compression)
    else:
        raise EdgembedError("export needs a source folder or --recipe FILE")
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    _print_export_table(manifest, args.output)
    return 0


def _compression(args: argparse.Namespace):
    """The export's compression options as an edgembed.export.compress.Compression, or None."""
    from edgembed.export.compress import Compression

    if args.heal_minutes is not None and not args.heal:
        raise EdgembedError("--heal-minutes needs --heal")
    keep = None
    if args.keep_layers is not None:
        try:
            keep = [int(part) for part in args.keep_layers.split(",") if part.strip()]
        except ValueError:
            raise EdgembedError(f"--keep-layers takes comma-separated layer numbers, e.g. "
                                f"0,1,2,5; got {args.keep_layers!r}") from None
    compression = Compression(
        prune_vocab=args.prune_vocab, layers=args.layers, keep_layers=keep,
        prune_heads=args.prune_heads, prune_ffn=args.prune_ffn, heal=args.heal,
        heal_minutes=args.heal_minutes if args.heal_minutes is not None else 5.0,
        heal_steps=args.heal_steps, dims=args.dims, table_bits=args.table_bits,
        weight_bits=args.weight_bits)
    return None if compression == Compression() else compression


def _print_export_table(manifest: dict, output: str) -> None:
    """One row per variant: the fp32 graph the package was measured against, and the package."""
    quality = manifest.get("quality") or {}
    retrieval = quality.get("retrieval") or {}
    size = manifest["files"]["model.onnx"]["bytes"] / 1e6
    method = manifest["quantization"]["method"]
    rows = []
    if "speed_vs_fp32" in quality:
        rows.append(("fp32 (reference)", "none", "-", "1.0000", "-", "1.00",
                     retrieval.get("fp32", {}).get("ndcg@10", "-")))
    rows.append((str(output), method, f"{size:.2f}", f"{quality.get('mean_cosine', '-')}",
                 f"{quality.get('min_cosine', '-')}", f"{quality.get('speed_vs_fp32', '-')}",
                 retrieval.get("package", {}).get("ndcg@10", "-")))
    header = ("variant", "quantize", "size MB", "mean cos", "min cos", "speed×fp32", "nDCG@10")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    kept = manifest["quantization"].get("kept_in_float") or []
    if kept:
        print(f"kept in higher precision ({len(kept)}): {', '.join(kept)}")
    print("cosine: against torch fp32 on the held-out texts; speed: same process, same texts")


def _open_or_create_index(args: argparse.Namespace, create: bool) -> Index:
    encoder = Encoder.load(args.model, threads=args.threads) if args.model else None
    if (Path(args.index) / META_FILE).is_file():
        return Index.open(args.index, encoder=encoder)
    if not create:
        raise EdgembedError(f"no index at {args.index}; build one with: edgembed index PATH "
                            f"--index {args.index}")
    return Index.create(args.index, encoder or Encoder.load(threads=args.threads),
                        mode=args.mode)


def cmd_index(args: argparse.Namespace) -> int:
    from .ingest import index_paths

    index = _open_or_create_index(args, create=True)
    try:
        report = index_paths(index, args.paths)
    finally:
        index.close()
    print(f"{args.index}: {report.added_files} new, {report.updated_files} changed, "
          f"{report.unchanged_files} unchanged, {report.removed_files} removed files; "
          f"+{report.passages_added} / -{report.passages_removed} passages; "
          f"{len(index)} passages in the index", file=sys.stderr)
    return 0


def _display_path(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def cmd_search(args: argparse.Namespace) -> int:
    encoder = Encoder.load(args.model, threads=args.threads) if args.model else None
    index = Index.open(args.index, encoder=encoder, view=True)
    try:
        hits = index.search(args.query, k=args.k, rescore=args.rescore)
    finally:
        index.close()
    results = []
    for rank, hit in enumerate(hits, start=1):
        meta = hit.metadata or {}
        results.append({"rank": rank, "score": round(hit.score, 4), "id": hit.id,
                        "file": _display_path(meta["file"]) if "file" in meta else None,
                        "passage": meta.get("passage"), "text": hit.text, "metadata": meta})
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return 0
    if not results:
        print("no results (the index is empty)", file=sys.stderr)
    for row in results:
        snippet = " ".join((row["text"] or "").split())
        snippet = snippet if len(snippet) <= 160 else snippet[:159] + "…"
        where = f"{row['file']} #{row['passage']}" if row["file"] else str(row["id"])
        print(f"{row['rank']:>2}. {row['score']:.3f}  {where}\n    {snippet}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, format_table

    encoder = Encoder.load(args.model, threads=args.threads)
    report = evaluate(args.data, encoder, split=args.split, cache=args.cache,
                      rescore=args.rescore)
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise EdgembedError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(text if args.json else format_table(report), end="" if args.json else "\n")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import harness, report

    settings = harness.Settings(model=args.model, source=args.source, data=args.data,
                                quick=args.quick, threads=args.threads, reps=args.reps,
                                out=args.out, cache=args.cache)
    result = harness.run(settings)
    print(report.text_table(report.ENCODER_HEADER, report.encoder_rows(result)))
    print(f"wrote {Path(args.out) / 'bench.json'} and bench.md", file=sys.stderr)
    return 0


SERVE_LIMITS = ("max_body_bytes", "max_inputs", "max_batch", "batch_wait_ms", "max_queue",
                "max_connections")


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .server import Limits, serve
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("starlette", "uvicorn"):
            raise
        raise EdgembedError("edgembed serve needs the serve extra: "
                            "pip install 'edgembed[serve]'") from None
    chosen = {name: getattr(args, name) for name in SERVE_LIMITS
              if getattr(args, name) is not None}
    serve(model=args.model, index=args.index, host=args.host, port=args.port,
          threads=args.threads, limits=Limits(**chosen), log_level=args.log_level)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgembed", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    embed = commands.add_parser("embed", help="embed lines of a file (or stdin)")
    embed.add_argument("input", nargs="?", default="-", help="text file, one text per line; "
                       "'-' or nothing reads stdin")
    embed.add_argument("-o", "--output", help="*.npy for a float32 matrix; otherwise JSON "
                       "lines (default: JSON lines on stdout)")
    embed.add_argument("--model", help="model package directory (default: bundled)")
    embed.add_argument("--kind", choices=("document", "query"), default="document")
    embed.add_argument("--batch-size", type=int, default=32)
    embed.add_argument("--threads", type=int)
    embed.add_argument("--json", action="store_true", help="write JSON lines even to *.npy")
    embed.set_defaults(func=cmd_embed)

    info = commands.add_parser("info", help="show a package's manifest, verify its checksums")
    info.add_argument("package", nargs="?", help="package directory (default: bundled)")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    export = commands.add_parser("export", help="export a HF / sentence-transformers folder")
    export.add_argument("source", nargs="?", help="model folder")
    export.add_argument("-o", "--output", required=True, help="package directory to write")
    export.add_argument("--recipe", help="build from a recipe TOML instead of SOURCE")
    export.add_argument("--quantize", default="int8-dynamic",
                        choices=("none", "fp16", "int8-dynamic", "int8-static", "auto"),
                        help="auto keeps the most sensitive nodes in higher precision until the "
                        "held-out cosine loss is within --max-loss")
    export.add_argument("--max-loss", type=float, default=0.005,
                        help="auto: allowed 1 - mean cosine to fp32 (default 0.005)")
    export.add_argument("--keep-nodes", nargs="*", metavar="GLOB",
                        help="node-name globs kept in higher precision")
    export.add_argument("--calibration", metavar="FILE",
                        help="calibration texts, one per line (default: built-in set)")
    export.add_argument("--optimize", type=int, choices=(0, 1, 2), default=0,
                        help="transformer fusions: 0 none (fastest int8 here), 1 fusions, "
                        "2 fusions + extended rewrites")
    export.add_argument("--static-shape", metavar="BxS",
                        help="fixed input shape, e.g. 1x128, for NPUs")
    export.add_argument("--eval-data", metavar="BEIR_DIR",
                        help="also report nDCG@10 and recall@100 on this BEIR folder")
    export.add_argument("--pooling", choices=("cls", "mean", "max"),
                        help="override the folder's pooling")
    export.add_argument("--name", help="package name (default: source folder name)")
    export.add_argument("--source-name", help="source model id recorded in the manifest")
    export.add_argument("--no-validate", action="store_true",
                        help="skip the comparison against torch")
    export.add_argument("--json", action="store_true")
    shrink = export.add_argument_group("compression (composable with --quantize)")
    shrink.add_argument("--prune-vocab", nargs="?", const=True, default=False,
                        metavar="SOURCE", help="keep only the tokens needed for a word list or "
                        "corpus file (one text per line), or built-in english-20/35/50 "
                        "(default english-35), or built-in latin (every Latin/Greek-script "
                        "token; drops [unused] rows and other scripts)")
    shrink.add_argument("--table-bits", type=int, choices=(4,),
                        help="store the token-embedding table as 4-bit blocks")
    shrink.add_argument("--weight-bits", type=int, choices=(4,),
                        help="store every weight MatMul as 4-bit blocks (smaller, ~0.7x the "
                        "speed); with --quantize int8-dynamic, auto or none")
    shrink.add_argument("--layers", type=int, metavar="N", help="keep the first N layers")
    shrink.add_argument("--keep-layers", metavar="LIST", help="keep these layers, e.g. 0,1,2,5")
    shrink.add_argument("--prune-heads", type=float, default=0.0, metavar="R",
                        help="remove this fraction of attention heads in every layer")
    shrink.add_argument("--prune-ffn", type=float, default=0.0, metavar="R",
                        help="remove this fraction of FFN neurons in every layer")
    shrink.add_argument("--heal", nargs="?", const=True, default=False, metavar="TEXTS",
                        help="distil the pruned model from the original on these texts "
                        "(one per line; default: built-in), on the CPU")
    shrink.add_argument("--heal-minutes", type=float, metavar="M",
                        help="time limit of --heal (default 5)")
    shrink.add_argument("--heal-steps", type=int, metavar="N", help="step limit of --heal")
    shrink.add_argument("--dims", type=int, metavar="D",
                        help="keep the first D output dimensions (renormalised)")
    export.set_defaults(func=cmd_export)

    index = commands.add_parser("index", help="index .txt/.md/.jsonl files for search "
                                "(incremental: unchanged files are skipped)")
    index.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    index.add_argument("--index", required=True, metavar="DIR", help="index directory")
    index.add_argument("--model", help="model package (default: the index's, or bundled)")
    index.add_argument("--mode", choices=("exact", "hnsw"), default="exact",
                       help="search mode of a new index (default: exact)")
    index.add_argument("--threads", type=int)
    index.set_defaults(func=cmd_index)

    search = commands.add_parser("search", help="search an index")
    search.add_argument("query")
    search.add_argument("--index", required=True, metavar="DIR")
    search.add_argument("-k", type=int, default=10, help="results (default 10)")
    search.add_argument("--rescore", type=int, default=4, metavar="M",
                        help="int8-rescore k·M binary candidates; 0: binary only (default 4)")
    search.add_argument("--model", help="model package (default: the index's)")
    search.add_argument("--threads", type=int)
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=cmd_search)

    evaluation = commands.add_parser("eval", help="nDCG@10, recall@100 and latency of every "
                                     "precision on a BEIR dataset")
    evaluation.add_argument("--data", required=True, metavar="BEIR_DIR")
    evaluation.add_argument("--model", help="model package (default: bundled)")
    evaluation.add_argument("--split", default="test")
    evaluation.add_argument("--rescore", type=int, default=4, metavar="M")
    evaluation.add_argument("--cache", metavar="DIR", help="cache embeddings here")
    evaluation.add_argument("--threads", type=int)
    evaluation.add_argument("--json", action="store_true", help="print JSON, not a table")
    evaluation.add_argument("--out", metavar="FILE", help="also write the JSON report here")
    evaluation.set_defaults(func=cmd_eval)

    server = commands.add_parser("serve", help="local HTTP server: OpenAI-compatible "
                                 "/v1/embeddings, /v1/search over an index, /health")
    server.add_argument("--model", help="model package (default: the index's, or bundled)")
    server.add_argument("--index", metavar="DIR", help="index served by /v1/search (read-only)")
    server.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; others warn: no auth)")
    server.add_argument("--port", type=int, default=8000, help="default 8000; 0 picks one")
    server.add_argument("--threads", type=int, help="onnxruntime threads (default: all cores)")
    server.add_argument("--max-body-bytes", type=int, metavar="N",
                        help="larger request bodies get 413 (default 4194304)")
    server.add_argument("--max-inputs", type=int, metavar="N",
                        help="texts per request (default 2048)")
    server.add_argument("--max-batch", type=int, metavar="N",
                        help="texts gathered from concurrent requests into one encode "
                        "(default 64)")
    server.add_argument("--batch-wait-ms", type=float, metavar="MS",
                        help="how long to wait for more texts before encoding (default 2)")
    server.add_argument("--max-queue", type=int, metavar="N",
                        help="texts waiting to be encoded before requests get 503 "
                        "(default 16384)")
    server.add_argument("--max-connections", type=int, metavar="N",
                        help="open connections before requests get 503 (default 512)")
    server.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"),
                        help="debug also logs every request")
    server.set_defaults(func=cmd_serve)

    bench = commands.add_parser("bench", help="measure this model against the installed peers "
                                "(sentence-transformers, fastembed, plain onnxruntime)")
    bench.add_argument("--model", help="model package (default: bundled)")
    bench.add_argument("--source", metavar="DIR", help="the model's sentence-transformers "
                       "folder: enables the torch peer and the fp32 / int8 variants")
    bench.add_argument("--data", metavar="BEIR_DIR", help="SciFact (BEIR layout): long "
                       "documents, queries and nDCG@10")
    bench.add_argument("--quick", action="store_true", help="tiny inputs, a smoke test")
    bench.add_argument("--threads", type=int, default=2, help="threads per system (default 2)")
    bench.add_argument("--reps", type=int, help="rounds (default 5; --quick 1)")
    bench.add_argument("--out", default="edgembed-bench", metavar="DIR",
                       help="bench.json, bench.md and plots go here (default edgembed-bench)")
    bench.add_argument("--cache", metavar="DIR", help="exported variants and SciFact "
                       "embeddings (default ~/.cache/edgembed/bench)")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EdgembedError as exc:
        message = " ".join(str(exc).split())  # one line, even if a library's text has more
        print(f"edgembed: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
