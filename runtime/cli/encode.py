"""`edgembed embed` and `edgembed info`: texts to vectors, and what a package holds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..errors import EdgembedError
from ..package import open_package, package_sizes
from ..targets import graph_facts, suitability
from . import scale
from .backend import add_backend_options, load_encoder


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


def add_prompt_options(parser: argparse.ArgumentParser, what: str) -> None:
    """--prompt-name and --prompt, which choose the text put before `what` (as
    `Encoder.encode`'s prompt_name= and prompt=)."""
    parser.add_argument("--prompt-name", metavar="NAME",
                        help=f"put the package's prompt NAME before {what} (`edgembed info` "
                        "lists them)")
    parser.add_argument("--prompt", metavar="TEXT", help=f"put TEXT before {what}")


def cmd_embed(args: argparse.Namespace) -> int:
    if args.ray is not None:
        chosen = [flag for flag, value in (("--kind", args.kind), ("--prompt-name",
                  args.prompt_name), ("--prompt", args.prompt)) if value is not None]
        if chosen:
            raise EdgembedError(f"--ray embeds documents with the package's document prefix; "
                                f"{', '.join(chosen)} apply without --ray")
        return scale.cmd_embed_ray(args)
    texts = _read_lines(args.input)
    encoder = load_encoder(args, args.model)
    vectors = encoder.encode(texts, batch_size=args.batch_size, kind=args.kind,
                             prompt_name=args.prompt_name, prompt=args.prompt)
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
    facts = graph_facts(package.manifest)
    suits = suitability(facts)
    if args.json:
        print(json.dumps({"path": str(package.path), "package_id": package.package_id,
                          "checksums": "ok", "sizes": sizes,
                          "backends": {s.backend: {"suits": s.suits, "why": s.why}
                                       for s in suits},
                          "manifest": package.manifest.to_dict()},
                         indent=2))
        return 0
    manifest = package.manifest
    quality = manifest.quality or {}
    rows = [
        ("package", str(package.path)),
        ("name", manifest.name),
        ("source", (manifest.source or {}).get("model", "?")),
        ("dim", manifest.dim),
        ("max_seq_length", manifest.max_seq_length),
        ("pooling", f"{manifest.pooling}, normalized={manifest.normalized}"),
        ("prefixes", json.dumps(dict(manifest.prefixes or {}))),
        ("prompts", json.dumps(dict(manifest.prompts)) + (
            f", default {manifest.default_prompt_name}" if manifest.default_prompt_name else "")),
        ("quantization", (manifest.quantization or {}).get("method", "?")),
        ("quality", ", ".join(f"{k}={quality[k]}" for k in ("mean_cosine", "min_cosine")
                              if k in quality) or "not measured"),
        ("checksums", "ok"),
        ("shapes", "static {}x{}".format(*facts.static_shape) if facts.static_shape
         else "dynamic (batch, sequence)"),
        ("graph", facts.kind + ("" if facts.recorded else " (implied by the method; "
                                "re-export to record the graph)")),
        ("opset", facts.opset if facts.opset is not None else "not recorded"),
        ("non-standard ops", ", ".join(facts.non_standard_ops) or "none"),
    ]
    if facts.quantized_nodes:
        rows.append(("quantized nodes", ", ".join(f"{count} {label}" for label, count
                                                  in facts.quantized_nodes.items())))
    after_checksums = rows.index(("checksums", "ok")) + 1
    rows[after_checksums:after_checksums] = [
        (f"  {name}", f"{size / 1e6:.2f} MB") for name, size in sizes.items()]
    rows += [(f"suits {s.backend}", s.why if s.suits else f"no: {s.why}") for s in suits]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    embed = commands.add_parser("embed", help="embed lines of a file (or stdin)")
    embed.add_argument("input", nargs="?", default="-", help="text file, one text per line; "
                       "'-' or nothing reads stdin")
    embed.add_argument("-o", "--output", help="*.npy for a float32 matrix; otherwise JSON "
                       "lines (default: JSON lines on stdout)")
    embed.add_argument("--model", help="model package directory (default: bundled)")
    embed.add_argument("--kind", choices=("document", "query"),
                       help="use the package's document (default) or query prefix")
    add_prompt_options(embed, "every text")
    embed.add_argument("--batch-size", type=int, default=32)
    embed.add_argument("--threads", type=int)
    add_backend_options(embed)
    embed.add_argument("--json", action="store_true", help="write JSON lines even to *.npy")
    scale.add_ray_options(embed)
    embed.set_defaults(func=cmd_embed)

    info = commands.add_parser("info", help="show a package's manifest, verify its checksums")
    info.add_argument("package", nargs="?", help="package directory (default: bundled)")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)
