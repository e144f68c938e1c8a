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
    if args.recipe:
        manifest = build_from_recipe(args.recipe, args.output)
    elif args.source:
        manifest = export_model(args.source, args.output, quantize_method=args.quantize,
                                exclude_nodes=args.exclude_nodes or (), name=args.name,
                                source_name=args.source_name, pooling=args.pooling,
                                validate=not args.no_validate)
    else:
        raise EdgembedError("export needs a source folder or --recipe FILE")
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    quality = manifest.get("quality") or {}
    size = manifest["files"]["model.onnx"]["bytes"] / 1e6
    print(f"{'package':<40} {'quantize':<14} {'size MB':>8} {'mean cos':>9} {'min cos':>8}")
    print(f"{str(args.output):<40} {manifest['quantization']['method']:<14} {size:>8.2f} "
          f"{quality.get('mean_cosine', float('nan')):>9.4f} "
          f"{quality.get('min_cosine', float('nan')):>8.4f}")
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
    export.add_argument("--quantize", default="int8-dynamic", choices=("none", "int8-dynamic"))
    export.add_argument("--exclude-nodes", nargs="*", metavar="GLOB",
                        help="node-name globs kept in float32")
    export.add_argument("--pooling", choices=("cls", "mean", "max"),
                        help="override the folder's pooling")
    export.add_argument("--name", help="package name (default: source folder name)")
    export.add_argument("--source-name", help="source model id recorded in the manifest")
    export.add_argument("--no-validate", action="store_true",
                        help="skip the comparison against torch")
    export.add_argument("--json", action="store_true")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EdgembedError as exc:
        print(f"edgembed: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
