"""`edgembed export`: a Hugging Face / sentence-transformers folder (or a recipe) to a
model package. The exporter needs the `export` extra, so it is imported only when run."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ..errors import EdgembedError
from ..manifest import Manifest

if TYPE_CHECKING:  # the exporter is imported only when the command runs
    from edgembed.export import Compression, ExportOptions


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from edgembed.export import build_from_recipe, export_model
    except ImportError as exc:
        raise EdgembedError(f"edgembed export needs the export extra ({exc.name} is missing): "
                            "pip install 'edgembed[export]'") from None

    compression = _compression(args)
    if args.recipe:
        if compression is not None:
            raise EdgembedError("compression options apply to a source folder, not --recipe")
        manifest = build_from_recipe(args.recipe, args.output, folder=args.source)
    elif args.source:
        manifest = export_model(args.source, args.output, _options(args, compression))
    else:
        raise EdgembedError("export needs a source (a model folder or a Hub id) or --recipe "
                            "NAME")
    if args.json:
        print(json.dumps(manifest.to_dict(), indent=2))
        return 0
    _print_export_table(manifest, args.output)
    return 0


def _options(args: argparse.Namespace, compression: Compression | None) -> ExportOptions:
    """The command line as ExportOptions, which check every value (as for recipes and the
    Python API)."""
    from edgembed.export import ExportOptions
    from edgembed.export.texts import read_texts

    return ExportOptions(
        quantize=args.quantize, target=args.target, optimize=args.optimize,
        static_shape=args.static_shape,
        keep_nodes=args.keep_nodes or (), max_loss=args.max_loss,
        calibration_texts=read_texts(args.calibration) if args.calibration else None,
        eval_data=args.eval_data, name=args.name, source_name=args.source_name,
        pooling=args.pooling, validate=not args.no_validate,
        **({"compression": compression} if compression is not None else {}))


def _compression(args: argparse.Namespace) -> Compression | None:
    """The export's compression options as an edgembed.export.Compression, or None."""
    from edgembed.export import Compression

    if args.heal_minutes is not None and not args.heal:
        raise EdgembedError("--heal-minutes needs --heal")
    keep = None
    if args.keep_layers is not None:
        try:
            keep = [int(part) for part in args.keep_layers.split(",") if part.strip()]
        except ValueError:
            raise EdgembedError(f"--keep-layers takes comma-separated layer numbers, e.g. "
                                f"0,1,2,5; got {args.keep_layers!r}") from None
    scripts = None
    if args.keep_scripts is not None:
        scripts = [name.strip() for name in args.keep_scripts.split(",") if name.strip()]
    compression = Compression(
        prune_vocab=args.prune_vocab, keep_scripts=scripts, layers=args.layers, keep_layers=keep,
        prune_heads=args.prune_heads, prune_ffn=args.prune_ffn, heal=args.heal,
        heal_minutes=args.heal_minutes if args.heal_minutes is not None else 5.0,
        heal_steps=args.heal_steps, dims=args.dims, table_bits=args.table_bits,
        weight_bits=args.weight_bits)
    return None if compression == Compression() else compression


def _print_export_table(manifest: Manifest, output: str) -> None:
    """One row per variant: the fp32 graph the package was measured against, and the package."""
    quality = manifest.quality or {}
    retrieval = quality.get("retrieval") or {}
    size = manifest.files["model.onnx"].bytes / 1e6
    method = manifest.quantization["method"]
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
    kept = manifest.quantization.get("kept_in_float") or []
    if kept:
        print(f"kept in higher precision ({len(kept)}): {', '.join(kept)}")
    print("cosine: against torch fp32 on the held-out texts; speed: same process, same texts")


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="export a HF / sentence-transformers model")
    export.add_argument("source", nargs="?", help="model folder, or Hugging Face Hub id "
                        "ORG/NAME[@REVISION] (downloaded into the Hub cache); with --recipe, "
                        "a local copy of the recipe's model")
    export.add_argument("-o", "--output", required=True, help="package directory to write")
    export.add_argument("--recipe", metavar="NAME", help="build a catalog recipe (edgembed "
                        "models lists them) or a recipe TOML file")
    export.add_argument("--quantize", default="auto", metavar="METHOD",
                        help="auto (default): per-token int8, keeping the MatMuls it hurts "
                        "most in float until the held-out cosine loss is within --max-loss; "
                        "int8: per-token int8 everywhere; int8-dynamic (onnxruntime's "
                        "per-batch int8), int8-static (QDQ, static scales, for NPUs), fp16 or none")
    export.add_argument("--target", choices=("npu",),
                        help="npu: a static int8 package NPUs can run (QDQ, static scales, "
                        "8/16-bit activations, standard ops, static shape 1xMAX_SEQ_LENGTH "
                        "unless --static-shape)")
    export.add_argument("--max-loss", type=float, default=0.005,
                        help="auto and int8-static: allowed 1 - mean cosine to fp32 "
                        "(default 0.005)")
    export.add_argument("--keep-nodes", nargs="*", metavar="GLOB",
                        help="node-name globs kept in higher precision")
    export.add_argument("--calibration", metavar="FILE",
                        help="calibration texts, one per line (default: built-in set)")
    export.add_argument("--optimize", type=int, default=0, metavar="LEVEL",
                        help="transformer fusions: 0 none (default; fastest int8 here), "
                        "1 fusions, 2 fusions + extended rewrites")
    export.add_argument("--static-shape", metavar="BxS",
                        help="fixed input shape, e.g. 1x128, for NPUs")
    export.add_argument("--eval-data", metavar="BEIR_DIR",
                        help="also report nDCG@10 and recall@100 on this BEIR folder")
    export.add_argument("--pooling", help="cls, mean or max: override the folder's pooling")
    export.add_argument("--name", help="package name (default: source folder name)")
    export.add_argument("--source-name", help="source model id recorded in the manifest")
    export.add_argument("--no-validate", action="store_true",
                        help="skip the comparison against torch")
    export.add_argument("--json", action="store_true")
    shrink = export.add_argument_group("compression (composable with --quantize)")
    shrink.add_argument("--prune-vocab", nargs="?", const=True, default=False,
                        metavar="SOURCE", help="keep only the tokens needed for a word list or "
                        "corpus file (one text per line), or built-in english-20/35/50 "
                        "(default english-35), or built-in latin (= --keep-scripts "
                        "latin,greek); WordPiece, Unigram and BPE tokenizers")
    shrink.add_argument("--keep-scripts", metavar="LIST",
                        help="keep every token written in these scripts, e.g. latin,cyrillic "
                        "(sets: latin, greek, cyrillic, arabic, hebrew, devanagari, thai, cjk; "
                        "or Unicode script names); with --prune-vocab SOURCE, on top of its "
                        "tokens")
    shrink.add_argument("--table-bits", type=int, choices=(4,),
                        help="store the token-embedding table as 4-bit blocks")
    shrink.add_argument("--weight-bits", type=int, choices=(4,),
                        help="store every weight MatMul as 4-bit blocks (smaller, ~0.7x the "
                        "speed); with --quantize auto, int8, int8-dynamic or none")
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
